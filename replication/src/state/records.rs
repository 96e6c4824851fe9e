//! What the state holds, independent of where it is kept: runs, snapshots, AMIs, accepted
//! blocks, and the statuses they move through.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::manifest::BlockHash;

/// One server of one application: the unit a backend keeps together. Every read or write of a
/// server's runs, snapshots and AMIs names it, so no backend needs a cross-server index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerKey {
    pub app: String,
    pub server: String,
}

impl ServerKey {
    pub fn new(app: impl Into<String>, server: impl Into<String>) -> ServerKey {
        ServerKey {
            app: app.into(),
            server: server.into(),
        }
    }
}

impl std::fmt::Display for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.app, self.server)
    }
}

/// A status stored as text. Reading text that is not one of `ALL` is corruption (or a newer
/// rehost's state), never a silent default.
pub trait StoredText: Copy + 'static {
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn from_text(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
}

/// Implements `as_str` (inherent, so callers need no import) and [`StoredText`] from one table.
macro_rules! stored_text {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }
        impl StoredText for $ty {
            const ALL: &'static [Self] = &[$($ty::$variant),+];
            fn as_str(self) -> &'static str {
                $ty::as_str(self)
            }
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
}

stored_text!(RunStatus {
    Running => "running",
    Completed => "completed",
    Failed => "failed",
});

/// Where a run is; recorded at each transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunPhase {
    Scanning,
    Uploading,
    Completing,
    Registering,
    Completed,
    Failed,
}

stored_text!(RunPhase {
    Scanning => "scanning",
    Uploading => "uploading",
    Completing => "completing",
    Registering => "registering",
    Completed => "completed",
    Failed => "failed",
});

impl std::fmt::Display for RunPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// Started; blocks are being written.
    Open,
    /// Every block accepted, manifest stored, CompleteSnapshot sent or about to be.
    Completing,
    Completed,
    /// Could not be continued; to be deleted in AWS.
    Abandoned,
    Deleted,
}

stored_text!(SnapshotStatus {
    Open => "open",
    Completing => "completing",
    Completed => "completed",
    Abandoned => "abandoned",
    Deleted => "deleted",
});

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub app: String,
    pub server: String,
    pub group: String,
    pub status: RunStatus,
    pub phase: RunPhase,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub attempts: u32,
    pub ami_id: Option<String>,
    pub ami_name: Option<String>,
    pub error: Option<String>,
    /// Seconds per phase and per disk ("disk0", "register", "total", ...).
    pub timings: BTreeMap<String, f64>,
    pub snapshots: Vec<SnapshotRecord>,
}

impl RunRecord {
    /// Snapshot ids of the run, in disk order of recording.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub run_id: String,
    pub disk: String,
    pub parent_snapshot_id: Option<String>,
    pub status: SnapshotStatus,
    pub volume_size_gib: u64,
    pub block_count: u64,
    pub encrypted: bool,
    pub kms_key_arn: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    #[serde(flatten)]
    pub counts: SnapshotCounts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmiRecord {
    pub ami_id: String,
    pub name: String,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Boot disk first.
    pub snapshot_ids: Vec<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

/// The AWS account and region an application's state is used with: recorded on first use
/// ([`crate::state::StateStore::bind_account`]), so one state never steers two accounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountBinding {
    pub account: String,
    pub region: String,
}

impl std::fmt::Display for AccountBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {} in {}", self.account, self.region)
    }
}

/// Counters stored with a snapshot; uploads and seconds add up across resumed attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SnapshotCounts {
    pub blocks_total: u64,
    pub blocks_scanned: u64,
    pub blocks_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Blocks written to the snapshot (ChangedBlocksCount), across resumed attempts.
    pub blocks_changed: u64,
    pub seconds: f64,
}

/// What a new snapshot record holds (its server is the key it is stored under).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSnapshot {
    pub snapshot_id: String,
    pub run_id: String,
    pub disk: String,
    pub parent_snapshot_id: Option<String>,
    pub volume_size_gib: u64,
    pub block_count: u64,
    pub encrypted: bool,
    pub kms_key_arn: Option<String>,
}

/// One block an open snapshot accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBlock {
    pub index: u64,
    pub xxh3: BlockHash,
    pub sha256: [u8; 32],
}

/// ChangedBlocksCount and the LINEAR aggregated checksum of what a snapshot accepted: SHA-256
/// over the blocks' SHA-256 digests in ascending block index. `blocks` must be in that order,
/// one per index (as [`crate::state::StateStore::written_blocks`] returns them).
pub fn linear_checksum(blocks: &[WrittenBlock]) -> (u64, [u8; 32]) {
    let mut hasher = Sha256::new();
    for b in blocks {
        hasher.update(b.sha256);
    }
    (blocks.len() as u64, hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: StoredText + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(T::from_text(v.as_str()), Some(v));
        }
        assert_eq!(T::from_text(""), None);
        assert_eq!(T::from_text("RUNNING"), None, "case matters");
    }

    #[test]
    fn stored_texts_round_trip_and_unknown_text_is_refused() {
        round_trips::<RunStatus>();
        round_trips::<RunPhase>();
        round_trips::<SnapshotStatus>();
        assert_eq!(SnapshotStatus::from_text("pending"), None);
    }

    #[test]
    fn stored_texts_match_the_serde_names() {
        for &v in RunPhase::ALL {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::from(v.as_str())
            );
        }
        for &v in SnapshotStatus::ALL {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::from(v.as_str())
            );
        }
    }

    #[test]
    fn linear_checksum_of_nothing_is_the_empty_digest() {
        let (count, sum) = linear_checksum(&[]);
        assert_eq!(count, 0);
        assert_eq!(sum, <[u8; 32]>::from(Sha256::digest([])));
    }

    #[test]
    fn linear_checksum_hashes_the_digests_in_the_given_order() {
        let b = |index: u64, fill: u8| WrittenBlock {
            index,
            xxh3: [0; 16],
            sha256: [fill; 32],
        };
        let (count, sum) = linear_checksum(&[b(1, 1), b(4, 2)]);
        assert_eq!(count, 2);
        let mut h = Sha256::new();
        h.update([1u8; 32]);
        h.update([2u8; 32]);
        assert_eq!(sum, <[u8; 32]>::from(h.finalize()));
    }
}
