//! A server object's runs: starting, resuming, failing and completing them, reading them back
//! as records, and dropping the history no longer needed.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::amis::AMI_AVAILABLE;
use super::{AmiDoc, Corrupt, RUNS_KEPT, RunDoc, ServerDoc, SnapDoc, stored};
use crate::clock::{from_unix_ms, unix_ms};
use crate::ids::new_run_id;
use crate::state::{AmiRecord, RunPhase, RunRecord, RunStatus, SnapshotStatus};

impl RunDoc {
    pub(super) fn status(&self) -> Result<RunStatus, Corrupt> {
        stored("runs", &self.run_id, "status", &self.status)
    }
}

impl ServerDoc {
    pub(super) fn run_record(&self, run: &RunDoc) -> Result<RunRecord, Corrupt> {
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
}
