//! A whole server's records, whichever backend keeps them: what `rehost state migrate` moves
//! from one state to another, and compares to tell "already there" from "something else there".

use std::collections::BTreeMap;

use super::{AmiRecord, RunRecord, ServerKey, WrittenBlock};
use crate::manifest::Manifest;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerDump {
    pub key: ServerKey,
    /// Every run, with its snapshots (every status, abandoned and deleted ones included).
    pub runs: Vec<RunRecord>,
    pub amis: Vec<AmiEntry>,
    /// The manifests stored so far (snapshots from `completing` on), by snapshot id.
    pub manifests: BTreeMap<String, Manifest>,
    /// Accepted blocks of snapshots not yet completed, by snapshot id, ascending.
    pub written: BTreeMap<String, Vec<WrittenBlock>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AmiEntry {
    pub ami: AmiRecord,
    /// Deregistered by retention (kept for history); otherwise available.
    pub deregistered: bool,
}

/// What importing a server's records did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    /// The destination had no records of the server; now it has these.
    Created,
    /// The destination already held exactly these records (a migration run again).
    Identical,
}

impl ServerDump {
    pub fn new(key: ServerKey) -> ServerDump {
        ServerDump {
            key,
            runs: Vec::new(),
            amis: Vec::new(),
            manifests: BTreeMap::new(),
            written: BTreeMap::new(),
        }
    }

    /// No records at all.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
            && self.amis.is_empty()
            && self.manifests.is_empty()
            && self.written.is_empty()
    }

    /// One order for everything, so two backends' dumps of the same records compare equal:
    /// runs by start then id, their snapshots by disk, start and id, AMIs by creation then id.
    pub fn normalized(mut self) -> ServerDump {
        self.runs
            .sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        for run in &mut self.runs {
            run.snapshots.sort_by(|a, b| {
                (&a.disk, a.started_at, &a.snapshot_id).cmp(&(
                    &b.disk,
                    b.started_at,
                    &b.snapshot_id,
                ))
            });
        }
        self.amis.sort_by(|a, b| {
            (a.ami.created_at, &a.ami.ami_id).cmp(&(b.ami.created_at, &b.ami.ami_id))
        });
        for blocks in self.written.values_mut() {
            blocks.sort_by_key(|b| b.index);
        }
        self
    }
}
