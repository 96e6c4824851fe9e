//! One disk of a run: carry out the resume decision (reuse, complete, resume, start fresh,
//! abandon), start snapshots (increments of the disk's previous one when possible), and give
//! up snapshots that cannot be continued.

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;

use crate::error::ReplicationError;
use crate::ids::client_token;
use crate::job::{DiskJob, ServerJob};
use crate::manifest::{BLOCK_SIZE_U64, Manifest};
use crate::report::{ServerReport, SnapshotReport};
use crate::snapshot::{self, RemoteState, StartRequest};
use crate::source::DiskSource;
use crate::state::{NewSnapshot, ServerKey, SnapshotRecord};
use crate::tags;

use super::image::common_tags;
use super::resume::{DiskStep, disk_step, resume_blocker};
use super::{Replicator, RunContext};

const GIB: u64 = 1 << 30;

/// How a disk's snapshot gets written.
enum WriteFrom {
    /// A new snapshot.
    Fresh,
    /// The run's open snapshot, skipping the blocks it accepted.
    Open(Box<SnapshotRecord>),
}

impl Replicator {
    /// The disk's completed snapshot for this run: reused, completed, resumed or written anew.
    pub(super) async fn replicate_disk(
        &self,
        ctx: &RunContext<'_>,
        disk: &DiskJob,
    ) -> Result<SnapshotReport, ReplicationError> {
        let mut fresh_after_failure = false;
        loop {
            let recorded = self
                .store
                .run_snapshot(&ctx.key, &ctx.run_id, &disk.name)
                .await
                .map_err(ctx.state_err())?;
            let from = match recorded {
                None => WriteFrom::Fresh,
                Some(rec) => {
                    let mut remote: Option<RemoteState> = None;
                    let step = loop {
                        match disk_step(Some(rec.status), remote.as_ref()) {
                            DiskStep::LookUp => {
                                remote = Some(
                                    snapshot::remote_state(&self.ec2, &rec.snapshot_id)
                                        .await
                                        .map_err(ctx.aws_err(Some(&disk.name)))?,
                                );
                            }
                            step => break step,
                        }
                    };
                    match step {
                        // (LookUp never leaves the loop above.)
                        DiskStep::StartFresh | DiskStep::LookUp => WriteFrom::Fresh,
                        DiskStep::Reuse => return Ok(reused(rec)),
                        DiskStep::Complete => {
                            self.complete_again(ctx, disk, &rec).await?;
                            self.record_completed(ctx, &rec).await?;
                            return Ok(reused(rec));
                        }
                        DiskStep::RecordCompleted => {
                            self.record_completed(ctx, &rec).await?;
                            return Ok(reused(rec));
                        }
                        DiskStep::Resume => WriteFrom::Open(Box::new(rec)),
                        DiskStep::Abandon { why } => {
                            self.abandon(ctx, &rec, &why).await?;
                            continue;
                        }
                    }
                }
            };
            let resumed = matches!(from, WriteFrom::Open(_));
            match self.write_disk(ctx, disk, from).await {
                Ok(done) => return Ok(done),
                // A snapshot that cannot be continued, or that EBS no longer accepts blocks
                // for: give it up and start once more from scratch.
                Err((err, Some(rec))) if resumed && !fresh_after_failure && err.ends_resume() => {
                    fresh_after_failure = true;
                    self.abandon(ctx, &rec, &err.to_string()).await?;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Sends CompleteSnapshot for a snapshot whose blocks were all accepted; its first answer
    /// may have been lost.
    async fn complete_again(
        &self,
        ctx: &RunContext<'_>,
        disk: &DiskJob,
        rec: &SnapshotRecord,
    ) -> Result<(), ReplicationError> {
        let (changed, sum) = self
            .store
            .written_checksum(&ctx.key, &rec.snapshot_id)
            .await
            .map_err(ctx.state_err())?;
        match snapshot::complete(
            &self.ebs,
            &rec.snapshot_id,
            changed,
            (changed > 0).then_some(sum),
        )
        .await
        {
            Ok(()) => Ok(()),
            // Completed before the interruption and still finishing in EBS: the wait before
            // RegisterImage sees it through.
            Err(f) if f.code == "ValidationException" => {
                tracing::info!(
                    "snapshot {} was already completed: {}",
                    rec.snapshot_id,
                    f.message
                );
                Ok(())
            }
            Err(f) => Err(ctx.aws_err(Some(&disk.name))(f)),
        }
    }

    async fn record_completed(
        &self,
        ctx: &RunContext<'_>,
        rec: &SnapshotRecord,
    ) -> Result<(), ReplicationError> {
        self.store
            .mark_snapshot_completed(&ctx.key, &rec.snapshot_id, OffsetDateTime::now_utc())
            .await
            .map_err(ctx.state_err())
    }

    /// Deletes snapshots that earlier runs gave up (best effort; failures become warnings).
    pub(super) async fn cleanup_abandoned(
        &self,
        job: &ServerJob,
        key: &ServerKey,
        report: &mut ServerReport,
    ) {
        let stale = match self.store.abandoned_snapshots(key).await {
            Ok(s) => s,
            Err(e) => {
                report
                    .warnings
                    .push(ReplicationError::state(&job.server, e).to_string());
                return;
            }
        };
        for id in stale {
            match snapshot::delete(&self.ec2, &id).await {
                Ok(()) => {
                    tracing::info!("server {}: deleted stale snapshot {id}", job.server);
                    if let Err(e) = self.store.mark_snapshot_deleted(key, &id).await {
                        report
                            .warnings
                            .push(ReplicationError::state(&job.server, e).to_string());
                    }
                    report.deleted_snapshots.push(id);
                }
                Err(f) => report
                    .warnings
                    .push(format!("cannot delete stale snapshot {id}: {f}")),
            }
        }
    }

    /// Gives up a snapshot that cannot be continued: forgotten in the state, deleted in AWS
    /// (or left for the next cleanup).
    async fn abandon(
        &self,
        ctx: &RunContext<'_>,
        rec: &SnapshotRecord,
        why: &str,
    ) -> Result<(), ReplicationError> {
        tracing::warn!(
            "server {}, disk {}: snapshot {} cannot be continued ({why}); starting a fresh one",
            ctx.job.server,
            rec.disk,
            rec.snapshot_id
        );
        self.store
            .abandon_snapshot(&ctx.key, &rec.snapshot_id)
            .await
            .map_err(ctx.state_err())?;
        if snapshot::delete(&self.ec2, &rec.snapshot_id).await.is_ok() {
            self.store
                .mark_snapshot_deleted(&ctx.key, &rec.snapshot_id)
                .await
                .map_err(ctx.state_err())?;
        }
        Ok(())
    }

    /// Opens the source, starts or continues the snapshot and transfers the blocks. On failure
    /// also returns the snapshot record, if one was in use.
    async fn write_disk(
        &self,
        ctx: &RunContext<'_>,
        disk: &DiskJob,
        from: WriteFrom,
    ) -> Result<SnapshotReport, (ReplicationError, Option<SnapshotRecord>)> {
        let t0 = Instant::now();
        self.store
            .set_phase(&ctx.key, &ctx.run_id, crate::state::RunPhase::Scanning)
            .await
            .map_err(|e| (ctx.state_err()(e), None))?;
        let source = self
            .open_source(ctx.job, disk)
            .await
            .map_err(|e| (e, None))?;
        let needed_gib = source.size().div_ceil(GIB).max(1);

        let (rec, parent) = match from {
            WriteFrom::Open(rec) => {
                let rec = *rec;
                let parent = match self.parent_manifest(ctx, &rec).await {
                    Ok(parent) => parent,
                    Err(e) => return Err((e, Some(rec))),
                };
                if let Some(why) =
                    resume_blocker(&rec, parent.is_some(), needed_gib, &ctx.encryption)
                {
                    let err = ReplicationError::CannotResume {
                        server: ctx.job.server.clone(),
                        disk: disk.name.clone(),
                        snapshot_id: rec.snapshot_id.clone(),
                        why: why.to_string(),
                    };
                    return Err((err, Some(rec)));
                }
                tracing::info!(
                    "server {}, disk {}: continuing snapshot {}",
                    ctx.job.server,
                    disk.name,
                    rec.snapshot_id
                );
                (rec, parent)
            }
            WriteFrom::Fresh => {
                let rec = self
                    .start_snapshot(ctx, disk, needed_gib)
                    .await
                    .map_err(|e| (e, None))?;
                match self.parent_manifest(ctx, &rec).await {
                    Ok(parent) => (rec, parent),
                    Err(e) => return Err((e, Some(rec))),
                }
            }
        };
        self.transfer(ctx, disk, &rec, parent, source, t0)
            .await
            .map_err(|e| (e, Some(rec.clone())))
    }

    /// The manifest of the snapshot's parent, when it has one the state still knows.
    async fn parent_manifest(
        &self,
        ctx: &RunContext<'_>,
        rec: &SnapshotRecord,
    ) -> Result<Option<Arc<Manifest>>, ReplicationError> {
        let Some(parent) = &rec.parent_snapshot_id else {
            return Ok(None);
        };
        Ok(self
            .store
            .snapshot_manifest(&ctx.key, parent)
            .await
            .map_err(ctx.state_err())?
            .map(Arc::new))
    }

    async fn open_source(
        &self,
        job: &ServerJob,
        disk: &DiskJob,
    ) -> Result<DiskSource, ReplicationError> {
        let (path, format) = (disk.source.clone(), Some(disk.format.source_format()));
        let tools = self.opts.qemu.clone();
        let source = tokio::task::spawn_blocking(move || DiskSource::open(&path, format, &tools))
            .await
            .map_err(|e| {
                ReplicationError::invalid(
                    &job.server,
                    Some(&disk.name),
                    format!("opening the source failed: {e}"),
                )
            })?
            .map_err(|source| ReplicationError::Source {
                server: job.server.clone(),
                disk: disk.name.clone(),
                source,
            })?;
        tracing::info!(
            "server {}, disk {}: {} ({:?}, {} bytes, {} bytes with data)",
            job.server,
            disk.name,
            disk.source.display(),
            source.format(),
            source.size(),
            source.data_bytes()
        );
        Ok(source)
    }

    /// Starts a new snapshot, as an increment of the disk's previous one when there is one.
    async fn start_snapshot(
        &self,
        ctx: &RunContext<'_>,
        disk: &DiskJob,
        needed_gib: u64,
    ) -> Result<SnapshotRecord, ReplicationError> {
        let job = ctx.job;
        let previous = self
            .store
            .latest_completed_snapshot(&ctx.key, &disk.name)
            .await
            .map_err(ctx.state_err())?;
        let parent = match previous {
            Some(rec) if !ctx.encryption.matches(&rec) => {
                tracing::info!(
                    "server {}, disk {}: encryption changed since snapshot {}; sending a full seed",
                    job.server,
                    disk.name,
                    rec.snapshot_id
                );
                None
            }
            Some(rec) => {
                match snapshot::remote_state(&self.ec2, &rec.snapshot_id)
                    .await
                    .map_err(ctx.aws_err(Some(&disk.name)))?
                {
                    RemoteState::Completed => Some(rec),
                    state => {
                        tracing::warn!(
                            "server {}, disk {}: previous snapshot {} is {state:?}; sending a full seed",
                            job.server,
                            disk.name,
                            rec.snapshot_id
                        );
                        None
                    }
                }
            }
            None => None,
        };
        // EBS requires a child at least as large as its parent.
        let volume_size_gib = needed_gib.max(parent.as_ref().map_or(0, |p| p.volume_size_gib));
        let attempt = self
            .store
            .abandoned_count(&ctx.key, &ctx.run_id, &disk.name)
            .await
            .map_err(ctx.state_err())?;
        let token = client_token(&job.app, &job.server, &disk.name, &ctx.run_id, attempt);
        let mut snapshot_tags = common_tags(job, &ctx.run_id);
        snapshot_tags.push((tags::DISK.into(), disk.name.clone()));
        let description = format!(
            "rehost {}/{}/{} run {}",
            job.app, job.server, disk.name, ctx.run_id
        );
        let parent_id = parent.map(|p| p.snapshot_id);
        let snapshot_id = snapshot::start(
            &self.ebs,
            &StartRequest {
                volume_size_gib,
                parent_snapshot_id: parent_id.as_deref(),
                client_token: &token,
                description: &description,
                tags: &snapshot_tags,
                encrypted: ctx.encryption.enabled,
                kms_key_arn: ctx.encryption.kms_key_arn.as_deref(),
                timeout_minutes: self.opts.snapshot_timeout_minutes,
            },
        )
        .await
        .map_err(ctx.aws_err(Some(&disk.name)))?;
        tracing::info!(
            "server {}, disk {}: started snapshot {snapshot_id} ({volume_size_gib} GiB{})",
            job.server,
            disk.name,
            parent_id
                .as_deref()
                .map(|p| format!(", increment of {p}"))
                .unwrap_or_else(|| ", seed".into())
        );
        let new = NewSnapshot {
            snapshot_id,
            run_id: ctx.run_id.clone(),
            disk: disk.name.clone(),
            parent_snapshot_id: parent_id,
            volume_size_gib,
            block_count: volume_size_gib * GIB / BLOCK_SIZE_U64,
            encrypted: ctx.encryption.enabled,
            kms_key_arn: ctx.encryption.kms_key_arn.clone(),
        };
        self.store
            .insert_snapshot(&ctx.key, &new, OffsetDateTime::now_utc())
            .await
            .map_err(ctx.state_err())
    }
}

/// The report of a snapshot this run had already completed.
fn reused(rec: SnapshotRecord) -> SnapshotReport {
    SnapshotReport {
        disk: rec.disk,
        snapshot_id: rec.snapshot_id,
        parent_snapshot_id: rec.parent_snapshot_id,
        blocks_total: rec.counts.blocks_total,
        blocks_scanned: 0,
        blocks_uploaded: 0,
        bytes_uploaded: 0,
        seconds: 0.0,
        blocks_changed: rec.counts.blocks_changed,
        blocks_resumed: rec.counts.blocks_changed,
        volume_size_gib: rec.volume_size_gib,
        reused: true,
    }
}
