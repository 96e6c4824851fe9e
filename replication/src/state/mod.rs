//! The replication state: runs, snapshots, AMIs, manifests and the blocks an open snapshot has
//! already accepted, behind one trait, [`StateStore`], so the engine does not know where the state
//! lives. [`SqliteStore`] (a file beside the application, WAL) is the implementation today; a
//! store on S3 shared by a team (issue 11) is the next.
//!
//! The trait is shaped for a store that is a set of objects updated with conditional writes:
//! - everything about one server is addressed by its [`ServerKey`], so a backend can keep one
//!   server's runs, snapshots and AMIs together and never needs a cross-server transaction or a
//!   global index (a snapshot or run id is only looked up within its server);
//! - a manifest is its own value (16 bytes per 512 KiB block), written once when a snapshot
//!   starts completing and read back whole;
//! - an open snapshot's accepted blocks are appended in batches (the recorder's group commits)
//!   and read back whole;
//! - application-wide reads ([`StateStore::latest_amis`]) are "for each server" reads a backend
//!   may run in parallel;
//! - the application lock is a guard object: an `flock` here, a lease there.
//!
//! - the AWS account and region an application's state belongs to is one value per
//!   application, written once (a conditional create) and read back.
//!
//! - the launch history is one record per launch of an application, written when the launch
//!   starts and again when it ends (one object per launch, its id sorting by time), and read
//!   back newest first.
//!
//! - each server's latest guest inspection is one value per server (replaced whole), and the
//!   risks an operator accepted for it are appended per server.
//!
//! - a server is claimed for one replication with a lease (`claim_server`) on a state several
//!   hosts share, so replication workers need no coordinator; a local state is not shared.
//!
//! Every state transition is atomic in the backend, so a killed process leaves a consistent
//! state and never a half-done run marked completed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::manifest::Manifest;

// First: its `stored_text!` macro is used by the record modules after it.
#[macro_use]
mod records;
mod claim;
mod dump;
mod error;
mod guest;
mod launches;
mod location;
mod lock;
mod migrate;
pub mod s3;
mod sqlite;

pub use claim::{LeaseGuard, LeaseHolder, ServerClaim};
pub use dump::{AmiEntry, ImportOutcome, ServerDump};
pub use error::StateError;
pub use guest::{AcceptedRisk, InspectionRecord};
pub use launches::{
    HookOutcome, HookPhase, HookRecord, LaunchFailure, LaunchKind, LaunchMode, LaunchOutcome,
    LaunchRecord, Override, SyncRecord,
};
pub use location::StateLocation;

/// What decides when a server is next due: the status of its newest run (one still running
/// may have been interrupted) and when it last completed a run and last started one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueFacts {
    pub newest: Option<RunStatus>,
    pub success: Option<OffsetDateTime>,
    pub attempt: Option<OffsetDateTime>,
}
pub use lock::AppLock;
pub use migrate::{Inventory, Migration, StateInventory, migrate};
pub use records::{
    AccountBinding, AmiRecord, NewSnapshot, RunPhase, RunRecord, RunStatus, ServerKey,
    SnapshotCounts, SnapshotRecord, SnapshotStatus, StoredText, WrittenBlock, linear_checksum,
};
pub use s3::{S3Options, S3Store};
pub use sqlite::{SCHEMA_VERSION, SqliteStore};

/// Held for a whole replication of an application; dropping it (or the process dying) lets
/// another rehost take it.
pub trait AppLockGuard: Send + Sync + std::fmt::Debug {
    fn app(&self) -> &str;
    /// Where the lock lives, for messages (a lock file; for a lease, its object).
    fn location(&self) -> String;
    /// Whether another holder took the lock over (a lease that expired before its holder could
    /// renew it); a file lock is never lost.
    fn is_lost(&self) -> bool {
        false
    }
}

/// Where rehost keeps its replication state. Object safe: used as `Arc<dyn StateStore>`.
/// Implementations never block the async caller (blocking I/O runs on blocking threads).
///
/// Methods that name a snapshot or run by id also take its server: an id of another server
/// reads as absent and writes change nothing. [`StateInventory`] lists the whole state for
/// `rehost state migrate`.
#[async_trait]
pub trait StateStore: StateInventory + Send + Sync + std::fmt::Debug {
    /// Where the state lives, for messages.
    fn location(&self) -> String;

    /// Takes the application's exclusive lock for a whole replication; refused with
    /// [`StateError::Locked`] while another holder has it.
    async fn lock_app(&self, app: &str) -> Result<Box<dyn AppLockGuard>, StateError>;

    /// Claims a server for one replication by `holder` (`process 1234 on host`): won (free,
    /// released or expired), or held by a live holder. A state that cannot be shared between
    /// hosts answers [`StateError::NotShared`] (its application lock already excludes others).
    async fn claim_server(
        &self,
        server: &ServerKey,
        holder: &str,
    ) -> Result<ServerClaim, StateError> {
        let _ = (server, holder);
        Err(StateError::NotShared {
            location: self.location(),
        })
    }

    // --- The AWS account and region (one per application) ---

    /// Records the AWS account and region the application's state is used with, unless one
    /// is recorded already: the first binding wins (a conditional create on an object store).
    /// Returns the binding as recorded.
    async fn bind_account(
        &self,
        app: &str,
        proposed: &AccountBinding,
    ) -> Result<AccountBinding, StateError>;

    /// The application's recorded binding, if any; records nothing.
    async fn account_binding(&self, app: &str) -> Result<Option<AccountBinding>, StateError>;

    /// Binds the application's state to `current` on first use, and refuses
    /// ([`StateError::OtherAccount`]) a state bound to another account or region.
    async fn ensure_account(&self, app: &str, current: &AccountBinding) -> Result<(), StateError> {
        let recorded = self.bind_account(app, current).await?;
        check_account(&self.location(), app, &recorded, current)
    }

    // --- Launch history (one record per launch of an application) ---

    /// Records a launch under its id: a new record when it starts, the same id again when it
    /// ends (the record is replaced whole). A record of that id kept for another application is
    /// left alone.
    async fn record_launch(&self, app: &str, launch: &LaunchRecord) -> Result<(), StateError>;

    /// The application's launches, newest first (by start time, then id), at most `limit`.
    async fn launches(&self, app: &str, limit: usize) -> Result<Vec<LaunchRecord>, StateError>;
    // --- Guest inspection (one value per server) and accepted risks ---

    /// Replaces the server's cached inspection.
    async fn store_inspection(
        &self,
        server: &ServerKey,
        record: &InspectionRecord,
    ) -> Result<(), StateError>;

    /// The server's cached inspection, if it was ever inspected.
    async fn inspection(&self, server: &ServerKey) -> Result<Option<InspectionRecord>, StateError>;

    /// Appends a `--accept-risk` of the server: what was let through, when, by whom.
    async fn record_accepted_risk(
        &self,
        server: &ServerKey,
        risk: &AcceptedRisk,
    ) -> Result<(), StateError>;

    /// Every accepted risk of the server, oldest first.
    async fn accepted_risks(&self, server: &ServerKey) -> Result<Vec<AcceptedRisk>, StateError>;

    // --- Runs (one per server in progress) ---

    /// Starts a run of a server, or resumes its latest unfinished one (killed or failed): the
    /// same run id keeps snapshot client tokens and the AMI name stable. Returns the run and
    /// whether it was resumed.
    async fn begin_run(
        &self,
        server: &ServerKey,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(RunRecord, bool), StateError>;

    async fn set_phase(
        &self,
        server: &ServerKey,
        run_id: &str,
        phase: RunPhase,
    ) -> Result<(), StateError>;

    /// Fixes the AMI name of a run once (the first proposal wins), so a resumed run looks up the
    /// same name. Returns the fixed name.
    async fn ami_name_for(
        &self,
        server: &ServerKey,
        run_id: &str,
        proposed: &str,
    ) -> Result<String, StateError>;

    async fn fail_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError>;

    /// Records the AMI and marks the run completed, atomically.
    async fn complete_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError>;

    /// A run with its snapshots.
    async fn run(&self, server: &ServerKey, run_id: &str) -> Result<Option<RunRecord>, StateError>;

    /// The newest runs of a server, newest attempt first, with their snapshots.
    async fn server_history(
        &self,
        server: &ServerKey,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError>;

    /// When the server last completed a run and last started (or resumed) one: the inputs of
    /// `schedule::next_run`.
    async fn last_times(
        &self,
        server: &ServerKey,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError>;

    /// What decides when a server is next due (a worker's look at a server): its newest run's
    /// status and [`last_times`](Self::last_times). One read of the server where the backend
    /// can (S3: one GET of its object, not two).
    async fn due_facts(&self, server: &ServerKey) -> Result<DueFacts, StateError> {
        let newest = self
            .server_history(server, 1)
            .await?
            .first()
            .map(|r| r.status);
        let (success, attempt) = self.last_times(server).await?;
        Ok(DueFacts {
            newest,
            success,
            attempt,
        })
    }

    // --- AMIs ---

    /// Each server's latest AMI (by creation time, then name) from a completed run, still
    /// registered. A per-server read for every server of the application.
    async fn latest_amis(&self, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError>;

    /// The server's AMIs this state recorded (from completed runs) and has not marked
    /// deregistered, oldest first: all that retention may ever remove.
    async fn recorded_amis(&self, server: &ServerKey) -> Result<Vec<AmiRecord>, StateError>;

    async fn mark_ami_deregistered(
        &self,
        server: &ServerKey,
        ami_id: &str,
    ) -> Result<(), StateError>;

    // --- Snapshots ---

    /// Records a snapshot just started (status `open`); recording the same id again changes
    /// nothing. Returns the record as stored.
    async fn insert_snapshot(
        &self,
        server: &ServerKey,
        snapshot: &NewSnapshot,
        now: OffsetDateTime,
    ) -> Result<SnapshotRecord, StateError>;

    async fn snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotRecord>, StateError>;

    /// The snapshot a run holds for a disk (open, completing or completed), if any.
    async fn run_snapshot(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError>;

    /// How many snapshots of this run and disk were given up (abandoned or deleted): part of
    /// the next client token, so a fresh start is a new snapshot while a retried StartSnapshot
    /// stays the same one.
    async fn abandoned_count(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<u32, StateError>;

    /// The disk's newest completed snapshot (from any run, by completion time): the parent of
    /// the next increment. Its manifest is [`StateStore::snapshot_manifest`].
    async fn latest_completed_snapshot(
        &self,
        server: &ServerKey,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError>;

    /// The newest completed snapshot of each disk of a server: parents of the next increments.
    async fn newest_snapshot_per_disk(&self, server: &ServerKey)
    -> Result<Vec<String>, StateError>;

    /// Snapshots of a server given up earlier, to delete in AWS.
    async fn abandoned_snapshots(&self, server: &ServerKey) -> Result<Vec<String>, StateError>;

    /// Gives up an open snapshot: status `abandoned`, its accepted blocks forgotten; it is
    /// deleted in AWS by the next cleanup.
    async fn abandon_snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError>;

    async fn mark_snapshot_deleted(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError>;

    /// Adds the upload counters of an interrupted attempt to an open snapshot, so totals stay
    /// right after a resume.
    async fn add_partial_counts(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError>;

    /// Every block accepted: stores the manifest and the counters (upload counters added to
    /// those of earlier attempts) and marks the snapshot `completing`.
    async fn mark_completing(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError>;

    /// A `completing` snapshot is completed in AWS: status `completed` with its completion
    /// time; its accepted-block records are dropped.
    async fn mark_snapshot_completed(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StateError>;

    /// The manifest of a snapshot from `completing` on; `None` before.
    async fn snapshot_manifest(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<Manifest>, StateError>;

    // --- Blocks an open snapshot accepted ---

    /// Appends a batch of accepted blocks atomically; a block recorded again replaces the
    /// earlier record of its index.
    async fn record_written(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        blocks: &[WrittenBlock],
    ) -> Result<(), StateError>;

    /// Everything an open snapshot accepted, one record per block index, ascending.
    async fn written_blocks(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError>;

    /// ChangedBlocksCount and the LINEAR checksum of what the snapshot accepted.
    async fn written_checksum(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(u64, [u8; 32]), StateError> {
        Ok(linear_checksum(
            &self.written_blocks(server, snapshot_id).await?,
        ))
    }

    /// How long the block recorder may gather accepted blocks before writing them as one batch:
    /// zero for a local database (every batch as soon as the last one is in), longer where each
    /// write is a request that costs (a killed run resends at most this much).
    fn record_interval(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }

    // --- The whole state (`rehost state migrate`) ---

    /// Every server the state holds records of, across applications, in order.
    async fn servers(&self) -> Result<Vec<ServerKey>, StateError>;

    /// Everything the state holds about a server (an empty dump for a server it does not know).
    async fn export_server(&self, server: &ServerKey) -> Result<ServerDump, StateError>;

    /// Writes a server's records where the state has none; [`ImportOutcome::Identical`] when it
    /// already holds exactly these, [`StateError::Differs`] (writing nothing) when it holds
    /// others.
    async fn import_server(&self, dump: &ServerDump) -> Result<ImportOutcome, StateError>;
}

/// Opens the state at `location`: a SQLite file (created when missing), or an S3 state (which
/// `rehost state init` must have set up) reached with `sdk`.
pub async fn open(
    location: &StateLocation,
    sdk: &aws_config::SdkConfig,
) -> Result<std::sync::Arc<dyn StateStore>, StateError> {
    Ok(match location {
        StateLocation::File(path) => std::sync::Arc::new(SqliteStore::open(path).await?),
        StateLocation::S3 { bucket, prefix } => {
            let opts = S3Options {
                lease_ttl: s3::lease_ttl_from_env(),
                ..S3Options::default()
            };
            std::sync::Arc::new(S3Store::open(sdk, bucket, prefix, opts).await?)
        }
    })
}

/// State reads at once when many servers are read (`status`, the watch loop): a state on S3
/// answers each in tens of milliseconds, so a thousand servers one after another would take
/// most of a minute.
pub const READ_FANOUT: usize = 32;

/// The newest `limit` runs of each server, read [`READ_FANOUT`] at a time, in the order of
/// `servers`.
pub async fn read_histories(
    store: &dyn StateStore,
    servers: &[ServerKey],
    limit: usize,
) -> Result<Vec<Vec<RunRecord>>, StateError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    stream::iter(servers)
        .map(|key| store.server_history(key, limit))
        .buffered(READ_FANOUT)
        .try_collect()
        .await
}

/// `Ok` when the state's recorded binding is `current`; else the refusal naming both.
pub fn check_account(
    location: &str,
    app: &str,
    recorded: &AccountBinding,
    current: &AccountBinding,
) -> Result<(), StateError> {
    if recorded == current {
        return Ok(());
    }
    Err(StateError::OtherAccount {
        location: location.to_string(),
        app: app.to_string(),
        recorded: Box::new(recorded.clone()),
        current: Box::new(current.clone()),
    })
}

/// The default place of the state database: `.rehost/state.db` beside the application file.
pub fn default_state_path(app_file: &Path) -> PathBuf {
    let dir = app_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(".rehost").join("state.db")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_beside_the_application_file() {
        assert_eq!(
            default_state_path("apps/shop.yaml".as_ref()),
            Path::new("apps/.rehost/state.db")
        );
        assert_eq!(
            default_state_path("shop.yaml".as_ref()),
            Path::new("./.rehost/state.db")
        );
    }
}
