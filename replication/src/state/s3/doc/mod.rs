//! One server's object on S3 (`apps/<app>/servers/<server>.json`): its runs, snapshots and
//! AMIs, and the ids of the last updates applied to it. Everything here is pure: the store
//! reads the object, applies one of these changes, and writes it back conditionally.
//!
//! The same rules as the SQLite store, record for record (the contract suite checks both).
//! Statuses are kept as text and read with [`StoredText`]: text this rehost does not know is
//! corruption, never a default.
//!
//! One file per record kind, as on the SQLite side: `runs` (and pruning the history no longer
//! needed), `snapshots`, `amis`, and `transfer` (the whole server, for `rehost state migrate`).
//! This file holds the object's format and the lookups they share.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::state::{ServerKey, StoredText};

mod amis;
mod runs;
mod snapshots;
mod transfer;

/// The object format this rehost reads and writes.
pub const FORMAT: u32 = 1;
/// Update ids remembered, so an update whose answer was lost is recognised, not applied twice.
const OPS_KEPT: usize = 32;
/// Runs always kept; older ones go once nothing needs them (see [`ServerDoc::prune`]).
pub const RUNS_KEPT: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerDoc {
    pub format: u32,
    pub app: String,
    pub server: String,
    #[serde(default)]
    pub runs: Vec<RunDoc>,
    #[serde(default)]
    pub snapshots: Vec<SnapDoc>,
    #[serde(default)]
    pub amis: Vec<AmiDoc>,
    /// Ids of the last updates applied, newest last.
    #[serde(default)]
    pub ops: VecDeque<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDoc {
    pub run_id: String,
    pub group: String,
    pub status: String,
    pub phase: String,
    pub started_at: i64,
    pub attempted_at: i64,
    pub finished_at: Option<i64>,
    pub attempts: u32,
    pub ami_id: Option<String>,
    pub ami_name: Option<String>,
    pub error: Option<String>,
    #[serde(default)]
    pub timings: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapDoc {
    pub snapshot_id: String,
    pub run_id: String,
    pub disk: String,
    pub parent_snapshot_id: Option<String>,
    pub status: String,
    pub volume_size_gib: u64,
    pub block_count: u64,
    pub encrypted: bool,
    pub kms_key_arn: Option<String>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub blocks_total: u64,
    pub blocks_scanned: u64,
    pub blocks_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blocks_changed: u64,
    pub seconds: f64,
    /// The manifest's object (relative key), from `completing` on.
    pub manifest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AmiDoc {
    pub ami_id: String,
    pub run_id: String,
    pub name: String,
    pub created_at: i64,
    pub snapshot_ids: Vec<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub status: String,
}

/// Stored text this rehost cannot read: which record and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Corrupt {
    pub table: &'static str,
    pub id: String,
    pub what: String,
}

fn stored<T: StoredText>(
    table: &'static str,
    id: &str,
    field: &str,
    text: &str,
) -> Result<T, Corrupt> {
    T::from_text(text).ok_or_else(|| Corrupt {
        table,
        id: id.to_string(),
        what: format!("unknown {field} '{text}'"),
    })
}

impl ServerDoc {
    pub fn new(key: &ServerKey) -> ServerDoc {
        ServerDoc {
            format: FORMAT,
            app: key.app.clone(),
            server: key.server.clone(),
            ..Default::default()
        }
    }

    /// Whether update `op` was applied already; records it as applied.
    pub fn note_op(&mut self, op: &str) {
        self.ops.push_back(op.to_string());
        while self.ops.len() > OPS_KEPT {
            self.ops.pop_front();
        }
    }

    pub fn has_op(&self, op: &str) -> bool {
        self.ops.iter().any(|o| o == op)
    }

    fn run_mut(&mut self, run_id: &str) -> Option<&mut RunDoc> {
        self.runs.iter_mut().find(|r| r.run_id == run_id)
    }

    pub fn snap(&self, id: &str) -> Option<&SnapDoc> {
        self.snapshots.iter().find(|s| s.snapshot_id == id)
    }

    fn snap_mut(&mut self, id: &str) -> Option<&mut SnapDoc> {
        self.snapshots.iter_mut().find(|s| s.snapshot_id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AmiRecord, NewSnapshot, SnapshotCounts};
    use time::macros::datetime;

    fn completed_run(doc: &mut ServerDoc, hour: i64, ami: Option<&str>) -> String {
        let at = datetime!(2025-01-01 0:00 UTC) + time::Duration::hours(hour);
        let (run_id, _) = doc.begin_run("g", at).unwrap();
        let snap = format!("snap-{hour}");
        doc.insert_snapshot(
            &NewSnapshot {
                snapshot_id: snap.clone(),
                run_id: run_id.clone(),
                disk: "disk0".into(),
                parent_snapshot_id: None,
                volume_size_gib: 1,
                block_count: 2048,
                encrypted: false,
                kms_key_arn: None,
            },
            at,
        );
        doc.mark_completing(&snap, &format!("m/{snap}"), &SnapshotCounts::default());
        doc.mark_completed(&snap, at).unwrap();
        let image = AmiRecord {
            ami_id: ami.map_or_else(|| format!("ami-{hour}"), str::to_string),
            name: format!("n-{hour}"),
            run_id: run_id.clone(),
            created_at: at,
            snapshot_ids: vec![snap.clone()],
            encrypted: false,
            kms_key_id: None,
        };
        doc.complete_run(&run_id, &image, &BTreeMap::new(), at);
        if ami.is_none() {
            doc.mark_ami_deregistered(&image.ami_id);
            doc.mark_deleted(&snap);
        }
        run_id
    }

    #[test]
    fn old_history_goes_but_what_is_needed_stays() {
        let mut doc = ServerDoc::new(&ServerKey::new("shop", "web"));
        // The oldest run's AMI is still available (kept by retention): its run stays.
        let kept = completed_run(&mut doc, 0, Some("ami-kept"));
        for hour in 1..=150 {
            completed_run(&mut doc, hour, None);
        }
        let dropped = doc.prune().unwrap();
        assert_eq!(doc.runs.len(), RUNS_KEPT + 1);
        assert!(doc.runs.iter().any(|r| r.run_id == kept));
        assert_eq!(doc.latest_ami().unwrap().unwrap().ami_id, "ami-kept");
        assert_eq!(dropped.len(), 50, "manifests of the 50 dropped runs");
        assert!(dropped.contains(&"m/snap-1".to_string()));
        assert_eq!(doc.snapshots.len(), RUNS_KEPT + 1);
        assert_eq!(doc.amis.len(), RUNS_KEPT + 1);
        // Nothing more to drop.
        assert!(doc.prune().unwrap().is_empty());
    }

    #[test]
    fn a_short_history_is_never_pruned() {
        let mut doc = ServerDoc::new(&ServerKey::new("shop", "web"));
        for hour in 0..10 {
            completed_run(&mut doc, hour, None);
        }
        assert!(doc.prune().unwrap().is_empty());
        assert_eq!(doc.runs.len(), 10);
    }

    #[test]
    fn update_ids_are_remembered_a_while() {
        let mut doc = ServerDoc::new(&ServerKey::new("shop", "web"));
        for i in 0..40 {
            doc.note_op(&format!("op-{i}"));
        }
        assert!(doc.has_op("op-39") && doc.has_op("op-8"));
        assert!(!doc.has_op("op-7"), "only the last {OPS_KEPT}");
    }
}
