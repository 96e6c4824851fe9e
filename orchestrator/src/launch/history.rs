//! `rehost history`: the application's launches and replication runs in one timeline, newest
//! first (pure: the CLI reads them from the state).

use rehost_replication::state::{LaunchRecord, RunRecord, RunStatus};
use serde::Serialize;
use time::OffsetDateTime;

/// What `rehost history --output json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct History {
    pub application: String,
    /// Newest first, by start time.
    pub entries: Vec<Entry>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Entry {
    Launch(LaunchRecord),
    Replication(Replication),
}

impl Entry {
    pub fn started_at(&self) -> OffsetDateTime {
        match self {
            Entry::Launch(l) => l.started_at,
            Entry::Replication(r) => r.started_at,
        }
    }

    fn id(&self) -> &str {
        match self {
            Entry::Launch(l) => &l.launch_id,
            Entry::Replication(r) => &r.run_id,
        }
    }
}

/// One replication run of one server, summed over its disks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Replication {
    pub run_id: String,
    pub server: String,
    pub status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub ami_id: Option<String>,
    /// Blocks written to the snapshots (the run's delta) and bytes sent.
    pub blocks_changed: u64,
    pub bytes_uploaded: u64,
    pub error: Option<String>,
}

impl From<&RunRecord> for Replication {
    fn from(r: &RunRecord) -> Self {
        Replication {
            run_id: r.run_id.clone(),
            server: r.server.clone(),
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            ami_id: r.ami_id.clone(),
            blocks_changed: r.snapshots.iter().map(|s| s.counts.blocks_changed).sum(),
            bytes_uploaded: r.snapshots.iter().map(|s| s.counts.bytes_uploaded).sum(),
            error: r.error.clone(),
        }
    }
}

/// Launches and runs merged, newest first (ties: the larger id first), at most `limit`.
pub fn timeline(
    application: &str,
    launches: Vec<LaunchRecord>,
    runs: &[RunRecord],
    limit: usize,
) -> History {
    let mut entries: Vec<Entry> = launches
        .into_iter()
        .map(Entry::Launch)
        .chain(runs.iter().map(|r| Entry::Replication(r.into())))
        .collect();
    entries.sort_by(|a, b| {
        b.started_at()
            .cmp(&a.started_at())
            .then_with(|| b.id().cmp(a.id()))
    });
    entries.truncate(limit);
    History {
        application: application.to_string(),
        entries,
    }
}
