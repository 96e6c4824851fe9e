//! A server object's snapshots: open, completing, completed, abandoned, deleted; their
//! counters and manifests, and the parents of the next increments.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{Corrupt, ServerDoc, SnapDoc, stored};
use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{NewSnapshot, SnapshotCounts, SnapshotRecord, SnapshotStatus};

impl SnapDoc {
    pub fn status(&self) -> Result<SnapshotStatus, Corrupt> {
        stored("snapshots", &self.snapshot_id, "status", &self.status)
    }

    pub(super) fn record(&self) -> Result<SnapshotRecord, Corrupt> {
        Ok(SnapshotRecord {
            snapshot_id: self.snapshot_id.clone(),
            run_id: self.run_id.clone(),
            disk: self.disk.clone(),
            parent_snapshot_id: self.parent_snapshot_id.clone(),
            status: self.status()?,
            volume_size_gib: self.volume_size_gib,
            block_count: self.block_count,
            encrypted: self.encrypted,
            kms_key_arn: self.kms_key_arn.clone(),
            started_at: from_unix_ms(self.started_at),
            completed_at: self.completed_at.map(from_unix_ms),
            counts: SnapshotCounts {
                blocks_total: self.blocks_total,
                blocks_scanned: self.blocks_scanned,
                blocks_uploaded: self.blocks_uploaded,
                bytes_uploaded: self.bytes_uploaded,
                blocks_changed: self.blocks_changed,
                seconds: self.seconds,
            },
        })
    }

    /// Its accepted blocks are still wanted (they go when it completes or is given up).
    pub fn keeps_journal(&self) -> bool {
        matches!(
            self.status(),
            Ok(SnapshotStatus::Open | SnapshotStatus::Completing)
        )
    }
}

impl ServerDoc {
    pub fn insert_snapshot(&mut self, s: &NewSnapshot, now: OffsetDateTime) -> bool {
        if self.snap(&s.snapshot_id).is_some() {
            return false;
        }
        self.snapshots.push(SnapDoc {
            snapshot_id: s.snapshot_id.clone(),
            run_id: s.run_id.clone(),
            disk: s.disk.clone(),
            parent_snapshot_id: s.parent_snapshot_id.clone(),
            status: SnapshotStatus::Open.as_str().into(),
            volume_size_gib: s.volume_size_gib,
            block_count: s.block_count,
            encrypted: s.encrypted,
            kms_key_arn: s.kms_key_arn.clone(),
            started_at: unix_ms(now),
            completed_at: None,
            blocks_total: s.block_count,
            blocks_scanned: 0,
            blocks_uploaded: 0,
            bytes_uploaded: 0,
            blocks_changed: 0,
            seconds: 0.0,
            manifest: None,
        });
        true
    }

    pub fn snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, Corrupt> {
        self.snap(id).map(SnapDoc::record).transpose()
    }

    pub fn run_snapshot(
        &self,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, Corrupt> {
        let mut best: Option<&SnapDoc> = None;
        for s in self
            .snapshots
            .iter()
            .filter(|s| s.run_id == run_id && s.disk == disk)
        {
            let live = matches!(
                s.status()?,
                SnapshotStatus::Open | SnapshotStatus::Completing | SnapshotStatus::Completed
            );
            if live && best.is_none_or(|b| b.started_at <= s.started_at) {
                best = Some(s);
            }
        }
        best.map(SnapDoc::record).transpose()
    }

    pub fn abandoned_count(&self, run_id: &str, disk: &str) -> Result<u32, Corrupt> {
        let mut n = 0;
        for s in self
            .snapshots
            .iter()
            .filter(|s| s.run_id == run_id && s.disk == disk)
        {
            if matches!(
                s.status()?,
                SnapshotStatus::Abandoned | SnapshotStatus::Deleted
            ) {
                n += 1;
            }
        }
        Ok(n)
    }

    pub fn latest_completed(&self, disk: &str) -> Result<Option<SnapshotRecord>, Corrupt> {
        let mut best: Option<&SnapDoc> = None;
        for s in self.snapshots.iter().filter(|s| s.disk == disk) {
            if s.status()? == SnapshotStatus::Completed
                && s.manifest.is_some()
                && best.is_none_or(|b| {
                    (b.completed_at, b.started_at) <= (s.completed_at, s.started_at)
                })
            {
                best = Some(s);
            }
        }
        best.map(SnapDoc::record).transpose()
    }

    pub fn newest_per_disk(&self) -> Result<Vec<String>, Corrupt> {
        let mut newest: BTreeMap<&str, Option<i64>> = BTreeMap::new();
        for s in &self.snapshots {
            if s.status()? == SnapshotStatus::Completed {
                let e = newest.entry(&s.disk).or_insert(None);
                *e = (*e).max(s.completed_at);
            }
        }
        let mut out = Vec::new();
        for s in &self.snapshots {
            if s.status()? == SnapshotStatus::Completed
                && s.completed_at.is_some()
                && newest.get(s.disk.as_str()) == Some(&s.completed_at)
            {
                out.push(s.snapshot_id.clone());
            }
        }
        Ok(out)
    }

    pub fn abandoned(&self) -> Result<Vec<String>, Corrupt> {
        let mut out = Vec::new();
        for s in &self.snapshots {
            if s.status()? == SnapshotStatus::Abandoned {
                out.push(s.snapshot_id.clone());
            }
        }
        Ok(out)
    }

    fn set_snapshot_status(&mut self, id: &str, status: SnapshotStatus) -> bool {
        match self.snap_mut(id) {
            Some(s) if s.status != status.as_str() => {
                s.status = status.as_str().into();
                true
            }
            _ => false,
        }
    }

    pub fn abandon(&mut self, id: &str) -> bool {
        self.set_snapshot_status(id, SnapshotStatus::Abandoned)
    }

    pub fn mark_deleted(&mut self, id: &str) -> bool {
        self.set_snapshot_status(id, SnapshotStatus::Deleted)
    }

    pub fn add_partial_counts(
        &mut self,
        id: &str,
        counts: &SnapshotCounts,
    ) -> Result<bool, Corrupt> {
        let Some(s) = self.snap_mut(id) else {
            return Ok(false);
        };
        if s.status()? != SnapshotStatus::Open {
            return Ok(false);
        }
        s.blocks_uploaded += counts.blocks_uploaded;
        s.bytes_uploaded += counts.bytes_uploaded;
        s.seconds += counts.seconds;
        Ok(true)
    }

    /// Marks a snapshot completing with its manifest object; returns the manifest object it
    /// replaced (an earlier attempt's), if any, or `None` when there is no such snapshot.
    pub fn mark_completing(
        &mut self,
        id: &str,
        manifest: &str,
        counts: &SnapshotCounts,
    ) -> Option<Option<String>> {
        let s = self.snap_mut(id)?;
        s.status = SnapshotStatus::Completing.as_str().into();
        let replaced = s.manifest.replace(manifest.to_string());
        s.blocks_total = counts.blocks_total;
        s.blocks_scanned = counts.blocks_scanned;
        s.blocks_uploaded += counts.blocks_uploaded;
        s.bytes_uploaded += counts.bytes_uploaded;
        s.blocks_changed = counts.blocks_changed;
        s.seconds += counts.seconds;
        Some(replaced.filter(|old| old != manifest))
    }

    pub fn mark_completed(&mut self, id: &str, now: OffsetDateTime) -> Result<bool, Corrupt> {
        let Some(s) = self.snap_mut(id) else {
            return Ok(false);
        };
        if s.status()? != SnapshotStatus::Completing {
            return Ok(false);
        }
        s.status = SnapshotStatus::Completed.as_str().into();
        s.completed_at = Some(unix_ms(now));
        Ok(true)
    }
}
