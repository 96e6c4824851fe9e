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
        "application '{app}' is in use by another rehost ({holder}: a replication or a cutover \
         runbook); {location}. Wait for it to finish or stop it"
    )]
    Locked {
        app: String,
        /// Who holds it: `process 1234`, or `process 1234 on host, lease until 12:00:00Z`.
        holder: String,
        /// `lock file PATH` or `lease s3://...`.
        location: String,
    },
    #[error("cannot use lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An S3 call of the state store failed (after the SDK's own retries).
    #[error("state {location}: {failure}")]
    S3 {
        location: String,
        failure: crate::aws::AwsFailure,
    },
    /// A conditional write kept losing races (other writers changed the object each time).
    #[error(
        "state {location}: {key} kept changing under this update ({attempts} attempts); another rehost is writing it"
    )]
    Contention {
        location: String,
        key: String,
        attempts: u32,
    },
    /// The state bucket is not one rehost may use, and what to do about it.
    #[error("state bucket {bucket} cannot hold rehost's state:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Bucket {
        bucket: String,
        problems: Vec<String>,
    },
    /// No state was set up at this place.
    #[error("no rehost state at {location}: create it with `rehost state init {location}`")]
    NotInitialized { location: String },
    /// `--state`, `REHOST_STATE` or the application's `state:` is not a place rehost knows.
    #[error("state location `{text}`: {why}")]
    BadLocation { text: String, why: String },
    /// A migration would overwrite records that differ.
    #[error("state {location} already holds other records of {server}: refusing to overwrite them")]
    Differs { location: String, server: String },
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
    /// Replication workers (or anything else that claims servers) need a state several hosts
    /// share; a local file is not one.
    #[error(
        "state {location} is a local file, which other hosts cannot share: replication workers \
         need a shared state (--state s3://BUCKET/PREFIX, set up with `rehost state init`)"
    )]
    NotShared { location: String },
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
    /// the state's, a wrong state location, an unfit or missing S3 state, a migration onto
    /// other records) rather than retry.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            StateError::OtherAccount { .. }
                | StateError::BadLocation { .. }
                | StateError::Bucket { .. }
                | StateError::NotInitialized { .. }
                | StateError::Differs { .. }
                | StateError::NotShared { .. }
        )
    }
}
