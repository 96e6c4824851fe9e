//! One server's object on S3 (`apps/<app>/servers/<server>.json`): its runs, snapshots and
//! AMIs, and the ids of the last updates applied to it. Everything here is pure: the store
//! reads the object, applies one of these changes, and writes it back conditionally.
//!
//! The same rules as the SQLite store, record for record (the contract suite checks both).
//! Statuses are kept as text and read with [`StoredText`]: text this rehost does not know is
//! corruption, never a default.
//!
//! Size: ~850 lines, most of them the pure per-record rules that mirror the SQLite store one for
//! one (runs, snapshots, AMIs, pruning), kept together so the two stores can be read side by side.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::{from_unix_ms, unix_ms};
use crate::ids::new_run_id;
use crate::state::{
    AmiEntry, AmiRecord, NewSnapshot, RunPhase, RunRecord, RunStatus, ServerDump, ServerKey,
    SnapshotCounts, SnapshotRecord, SnapshotStatus, StoredText,
};

/// The object format this rehost reads and writes.
pub const FORMAT: u32 = 1;
/// Update ids remembered, so an update whose answer was lost is recognised, not applied twice.
const OPS_KEPT: usize = 32;
/// Runs always kept; older ones go once nothing needs them (see [`ServerDoc::prune`]).
pub const RUNS_KEPT: usize = 100;

const AMI_AVAILABLE: &str = "available";
const AMI_DEREGISTERED: &str = "deregistered";

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

impl RunDoc {
    fn status(&self) -> Result<RunStatus, Corrupt> {
        stored("runs", &self.run_id, "status", &self.status)
    }
}

impl SnapDoc {
    pub fn status(&self) -> Result<SnapshotStatus, Corrupt> {
        stored("snapshots", &self.snapshot_id, "status", &self.status)
    }

    fn record(&self) -> Result<SnapshotRecord, Corrupt> {
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

impl AmiDoc {
    fn record(&self) -> AmiRecord {
        AmiRecord {
            ami_id: self.ami_id.clone(),
            name: self.name.clone(),
            run_id: self.run_id.clone(),
            created_at: from_unix_ms(self.created_at),
            snapshot_ids: self.snapshot_ids.clone(),
            encrypted: self.encrypted,
            kms_key_id: self.kms_key_id.clone(),
        }
    }

    fn available(&self) -> Result<bool, Corrupt> {
        match self.status.as_str() {
            AMI_AVAILABLE => Ok(true),
            AMI_DEREGISTERED => Ok(false),
            other => Err(Corrupt {
                table: "amis",
                id: self.ami_id.clone(),
                what: format!("unknown status '{other}'"),
            }),
        }
    }
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

    fn run_record(&self, run: &RunDoc) -> Result<RunRecord, Corrupt> {
        let mut snapshots: Vec<&SnapDoc> = self
            .snapshots
            .iter()
            .filter(|s| s.run_id == run.run_id)
            .collect();
        snapshots.sort_by(|a, b| (&a.disk, a.started_at).cmp(&(&b.disk, b.started_at)));
        Ok(RunRecord {
            run_id: run.run_id.clone(),
            app: self.app.clone(),
            server: self.server.clone(),
            group: run.group.clone(),
            status: run.status()?,
            phase: stored("runs", &run.run_id, "phase", &run.phase)?,
            started_at: from_unix_ms(run.started_at),
            attempted_at: from_unix_ms(run.attempted_at),
            finished_at: run.finished_at.map(from_unix_ms),
            attempts: run.attempts,
            ami_id: run.ami_id.clone(),
            ami_name: run.ami_name.clone(),
            error: run.error.clone(),
            timings: run.timings.clone(),
            snapshots: snapshots
                .into_iter()
                .map(SnapDoc::record)
                .collect::<Result<_, _>>()?,
        })
    }

    // --- Runs ---

    /// Starts a run or resumes the latest unfinished one; returns its id and whether resumed.
    pub fn begin_run(
        &mut self,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(String, bool), Corrupt> {
        let mut unfinished: Option<usize> = None;
        for (i, r) in self.runs.iter().enumerate() {
            if r.status()? != RunStatus::Completed
                && unfinished.is_none_or(|u| self.runs[u].started_at <= r.started_at)
            {
                unfinished = Some(i);
            }
        }
        let now_ms = unix_ms(now);
        Ok(match unfinished {
            Some(i) => {
                let r = &mut self.runs[i];
                r.status = RunStatus::Running.as_str().into();
                r.attempts += 1;
                r.attempted_at = now_ms;
                r.error = None;
                r.group = group.to_string();
                (r.run_id.clone(), true)
            }
            None => {
                let run_id = new_run_id(now);
                self.runs.push(RunDoc {
                    run_id: run_id.clone(),
                    group: group.to_string(),
                    status: RunStatus::Running.as_str().into(),
                    phase: RunPhase::Scanning.as_str().into(),
                    started_at: now_ms,
                    attempted_at: now_ms,
                    finished_at: None,
                    attempts: 1,
                    ami_id: None,
                    ami_name: None,
                    error: None,
                    timings: BTreeMap::new(),
                });
                (run_id, false)
            }
        })
    }

    pub fn set_phase(&mut self, run_id: &str, phase: RunPhase) -> bool {
        match self.run_mut(run_id) {
            Some(r) if r.phase != phase.as_str() => {
                r.phase = phase.as_str().into();
                true
            }
            _ => false,
        }
    }

    /// Fixes the AMI name once; `None` when the run does not exist.
    pub fn ami_name_for(&mut self, run_id: &str, proposed: &str) -> Option<(String, bool)> {
        let r = self.run_mut(run_id)?;
        match &r.ami_name {
            Some(name) => Some((name.clone(), false)),
            None => {
                r.ami_name = Some(proposed.to_string());
                Some((proposed.to_string(), true))
            }
        }
    }

    pub fn fail_run(
        &mut self,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> bool {
        let Some(r) = self.run_mut(run_id) else {
            return false;
        };
        r.status = RunStatus::Failed.as_str().into();
        r.phase = RunPhase::Failed.as_str().into();
        r.error = Some(error.to_string());
        r.timings = timings.clone();
        r.finished_at = Some(unix_ms(now));
        true
    }

    pub fn complete_run(
        &mut self,
        run_id: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> bool {
        match self.amis.iter_mut().find(|a| a.ami_id == ami.ami_id) {
            Some(a) => {
                a.status = AMI_AVAILABLE.into();
                a.snapshot_ids = ami.snapshot_ids.clone();
            }
            None => self.amis.push(AmiDoc {
                ami_id: ami.ami_id.clone(),
                run_id: ami.run_id.clone(),
                name: ami.name.clone(),
                created_at: unix_ms(ami.created_at),
                snapshot_ids: ami.snapshot_ids.clone(),
                encrypted: ami.encrypted,
                kms_key_id: ami.kms_key_id.clone(),
                status: AMI_AVAILABLE.into(),
            }),
        }
        if let Some(r) = self.run_mut(run_id) {
            r.status = RunStatus::Completed.as_str().into();
            r.phase = RunPhase::Completed.as_str().into();
            r.ami_id = Some(ami.ami_id.clone());
            r.ami_name = Some(ami.name.clone());
            r.error = None;
            r.timings = timings.clone();
            r.finished_at = Some(unix_ms(now));
        }
        true
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, Corrupt> {
        self.runs
            .iter()
            .find(|r| r.run_id == run_id)
            .map(|r| self.run_record(r))
            .transpose()
    }

    pub fn history(&self, limit: usize) -> Result<Vec<RunRecord>, Corrupt> {
        let mut runs: Vec<&RunDoc> = self.runs.iter().collect();
        runs.sort_by_key(|r| std::cmp::Reverse((r.attempted_at, r.started_at)));
        runs.into_iter()
            .take(limit)
            .map(|r| self.run_record(r))
            .collect()
    }

    pub fn last_times(&self) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), Corrupt> {
        let mut success: Option<i64> = None;
        let mut attempt: Option<i64> = None;
        for r in &self.runs {
            if r.status()? == RunStatus::Completed {
                success = success.max(r.finished_at);
            }
            attempt = attempt.max(Some(r.attempted_at));
        }
        Ok((success.map(from_unix_ms), attempt.map(from_unix_ms)))
    }

    // --- AMIs ---

    /// The latest available AMI of a completed run (by creation time, then name).
    pub fn latest_ami(&self) -> Result<Option<AmiRecord>, Corrupt> {
        let mut best: Option<&AmiDoc> = None;
        for a in &self.amis {
            if !a.available()? {
                continue;
            }
            let completed = match self.runs.iter().find(|r| r.run_id == a.run_id) {
                Some(r) => r.status()? == RunStatus::Completed,
                None => false,
            };
            if completed && best.is_none_or(|b| (b.created_at, &b.name) <= (a.created_at, &a.name))
            {
                best = Some(a);
            }
        }
        Ok(best.map(AmiDoc::record))
    }

    /// The AMIs not marked deregistered, oldest first (creation time, then name): all that
    /// retention may ever remove.
    pub fn recorded_amis(&self) -> Result<Vec<AmiRecord>, Corrupt> {
        let mut kept = Vec::new();
        for a in &self.amis {
            if a.available()? {
                kept.push(a);
            }
        }
        kept.sort_by(|a, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
        Ok(kept.into_iter().map(AmiDoc::record).collect())
    }

    pub fn mark_ami_deregistered(&mut self, ami_id: &str) -> bool {
        match self.amis.iter_mut().find(|a| a.ami_id == ami_id) {
            Some(a) if a.status != AMI_DEREGISTERED => {
                a.status = AMI_DEREGISTERED.into();
                true
            }
            _ => false,
        }
    }

    // --- Snapshots ---

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

    // --- History that is no longer needed ---

    /// Drops runs beyond the newest [`RUNS_KEPT`] (by attempt) that nothing needs any more:
    /// not unfinished, no AMI of theirs still available, none of their snapshots the newest
    /// completed one of its disk (the next parent), abandoned (still to delete), or in
    /// progress. Their snapshots and deregistered AMIs go with them. Returns the manifest
    /// objects no record points to any more.
    pub fn prune(&mut self) -> Result<Vec<String>, Corrupt> {
        if self.runs.len() <= RUNS_KEPT {
            return Ok(Vec::new());
        }
        let newest: BTreeSet<String> = self.newest_per_disk()?.into_iter().collect();
        let mut needed: BTreeSet<String> = BTreeSet::new();
        for a in &self.amis {
            if a.available()? {
                needed.insert(a.run_id.clone());
            }
        }
        for s in &self.snapshots {
            let status = s.status()?;
            if newest.contains(&s.snapshot_id)
                || !matches!(status, SnapshotStatus::Completed | SnapshotStatus::Deleted)
            {
                needed.insert(s.run_id.clone());
            }
        }
        let mut by_age: Vec<(i64, i64, String)> = Vec::with_capacity(self.runs.len());
        for r in &self.runs {
            if r.status()? != RunStatus::Completed {
                needed.insert(r.run_id.clone());
            }
            by_age.push((r.attempted_at, r.started_at, r.run_id.clone()));
        }
        by_age.sort_by(|a, b| b.cmp(a)); // newest first
        let dropped: BTreeSet<String> = by_age
            .into_iter()
            .skip(RUNS_KEPT)
            .map(|(_, _, id)| id)
            .filter(|id| !needed.contains(id))
            .collect();
        if dropped.is_empty() {
            return Ok(Vec::new());
        }
        self.runs.retain(|r| !dropped.contains(&r.run_id));
        self.amis.retain(|a| !dropped.contains(&a.run_id));
        let mut manifests = Vec::new();
        self.snapshots.retain(|s| {
            let keep = !dropped.contains(&s.run_id);
            if !keep && let Some(m) = &s.manifest {
                manifests.push(m.clone());
            }
            keep
        });
        Ok(manifests)
    }

    // --- The whole server ---

    /// The records, as `export_server` gives them (manifests and accepted blocks are the
    /// store's to add).
    pub fn dump(&self) -> Result<ServerDump, Corrupt> {
        let mut dump = ServerDump::new(ServerKey::new(&self.app, &self.server));
        dump.runs = self
            .runs
            .iter()
            .map(|r| self.run_record(r))
            .collect::<Result<_, _>>()?;
        for a in &self.amis {
            dump.amis.push(AmiEntry {
                ami: a.record(),
                deregistered: !a.available()?,
            });
        }
        Ok(dump)
    }

    /// The object of a dump's records; `manifest_of` names each snapshot's manifest object.
    pub fn from_dump(dump: &ServerDump, manifest_of: impl Fn(&str) -> Option<String>) -> ServerDoc {
        let mut doc = ServerDoc::new(&dump.key);
        for run in &dump.runs {
            doc.runs.push(RunDoc {
                run_id: run.run_id.clone(),
                group: run.group.clone(),
                status: run.status.as_str().into(),
                phase: run.phase.as_str().into(),
                started_at: unix_ms(run.started_at),
                attempted_at: unix_ms(run.attempted_at),
                finished_at: run.finished_at.map(unix_ms),
                attempts: run.attempts,
                ami_id: run.ami_id.clone(),
                ami_name: run.ami_name.clone(),
                error: run.error.clone(),
                timings: run.timings.clone(),
            });
            for s in &run.snapshots {
                doc.snapshots.push(SnapDoc {
                    snapshot_id: s.snapshot_id.clone(),
                    run_id: s.run_id.clone(),
                    disk: s.disk.clone(),
                    parent_snapshot_id: s.parent_snapshot_id.clone(),
                    status: s.status.as_str().into(),
                    volume_size_gib: s.volume_size_gib,
                    block_count: s.block_count,
                    encrypted: s.encrypted,
                    kms_key_arn: s.kms_key_arn.clone(),
                    started_at: unix_ms(s.started_at),
                    completed_at: s.completed_at.map(unix_ms),
                    blocks_total: s.counts.blocks_total,
                    blocks_scanned: s.counts.blocks_scanned,
                    blocks_uploaded: s.counts.blocks_uploaded,
                    bytes_uploaded: s.counts.bytes_uploaded,
                    blocks_changed: s.counts.blocks_changed,
                    seconds: s.counts.seconds,
                    manifest: manifest_of(&s.snapshot_id),
                });
            }
        }
        for entry in &dump.amis {
            let a = &entry.ami;
            doc.amis.push(AmiDoc {
                ami_id: a.ami_id.clone(),
                run_id: a.run_id.clone(),
                name: a.name.clone(),
                created_at: unix_ms(a.created_at),
                snapshot_ids: a.snapshot_ids.clone(),
                encrypted: a.encrypted,
                kms_key_id: a.kms_key_id.clone(),
                status: if entry.deregistered {
                    AMI_DEREGISTERED
                } else {
                    AMI_AVAILABLE
                }
                .into(),
            });
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
