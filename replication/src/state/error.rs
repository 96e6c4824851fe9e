//! What can go wrong with the state, whichever backend keeps it.

use std::path::PathBuf;

use super::AccountBinding;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create directory {path} for the state database: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {operation}: {source}")]
    Sql {
        path: PathBuf,
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "state database {path} has schema version {found}; this rehost knows version {known} (upgrade rehost)"
    )]
    Schema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A stored value rehost cannot read: damaged, or written by a newer rehost.
    #[error("state {location}: {table} {id}: {what}")]
    Corrupt {
        location: String,
        table: &'static str,
        id: String,
        what: String,
    },
    #[error(
        "application '{app}' is already being replicated by another rehost (process {holder}); lock file {path}. \
         Wait for it to finish or stop it"
    )]
    Locked {
        app: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot use lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The state records another AWS account or region for this application than the one the
    /// credentials reach: one state never steers two accounts.
    #[error(
        "state {location}: application '{app}' is bound to AWS account {} in {}, but the \
         credentials reach account {} in {}; use that account and region, or another state \
         (--state) for this one",
        recorded.account, recorded.region, current.account, current.region
    )]
    OtherAccount {
        location: String,
        app: String,
        recorded: Box<AccountBinding>,
        current: Box<AccountBinding>,
    },
    /// The worker doing a blocking state operation stopped without an answer (it panicked, or
    /// the runtime is shutting down).
    #[error("state {location}: {operation}: the worker stopped: {message}")]
    Worker {
        location: String,
        operation: &'static str,
        message: String,
    },
}

impl StateError {
    /// Whether the operator must change what they asked for (another account or region than
    /// the state's) rather than retry.
    pub fn is_refusal(&self) -> bool {
        matches!(self, StateError::OtherAccount { .. })
    }
}
