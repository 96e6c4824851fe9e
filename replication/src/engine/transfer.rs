//! The block transfer of one snapshot: the scan (reader and hashing threads) feeds the blocks to
//! send to upload tasks; each accepted block goes to the recorder; when every block is in, the
//! manifest is stored, CompleteSnapshot is sent and the snapshot recorded completed.
//!
//! Uploads take a permit from the replicator's semaphore and the scan borrows buffers from the
//! replicator's pool, so several transfers at once would share one bound on blocks in flight
//! and on memory.

use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::{JoinError, JoinSet};

use crate::aws::AwsFailure;
use crate::error::ReplicationError;
use crate::job::DiskJob;
use crate::manifest::Manifest;
use crate::progress::DiskProgress;
use crate::recorder::Recorder;
use crate::report::SnapshotReport;
use crate::scan::{self, Decision, Reference, Scan, ScanConfig};
use crate::snapshot;
use crate::source::DiskSource;
use crate::state::{RunPhase, SnapshotCounts, SnapshotRecord, WrittenBlock};

use super::{Replicator, RunContext};

/// An upload task's outcome: the bytes sent, or the block and why it failed; with the task's
/// upload permit, so a finished upload counts as in flight until the feed loop has seen its
/// outcome (a failure stops the feed before another block is sent).
type UploadResult = (OwnedSemaphorePermit, Result<u64, (u64, AwsFailure)>);

/// The snapshot a transfer writes and where its accepted blocks are reported.
struct Target<'a> {
    ctx: &'a RunContext<'a>,
    disk: &'a DiskJob,
    snapshot_id: &'a str,
    recorder: &'a Recorder,
    progress: &'a Arc<DiskProgress>,
}

impl Target<'_> {
    fn upload_failed(
        &self,
        joined: Result<UploadResult, JoinError>,
        counts: &mut SnapshotCounts,
    ) -> Option<ReplicationError> {
        let server = &self.ctx.job.server;
        match joined.map(|(_permit, outcome)| outcome) {
            Ok(Ok(bytes)) => {
                counts.blocks_uploaded += 1;
                counts.bytes_uploaded += bytes;
                None
            }
            Ok(Err((index, f))) => Some(ReplicationError::aws(
                server,
                Some(&self.disk.name),
                Some(index),
                f,
            )),
            Err(e) => Some(ReplicationError::invalid(
                server,
                Some(&self.disk.name),
                format!("upload task failed: {e}"),
            )),
        }
    }

    fn invalid(&self, message: &str) -> ReplicationError {
        ReplicationError::invalid(&self.ctx.job.server, Some(&self.disk.name), message)
    }
}

impl Replicator {
    /// Scans the source and sends the blocks the snapshot needs, then completes it.
    pub(super) async fn transfer(
        &self,
        ctx: &RunContext<'_>,
        disk: &DiskJob,
        rec: &SnapshotRecord,
        parent: Option<Arc<Manifest>>,
        source: DiskSource,
        t0: Instant,
    ) -> Result<SnapshotReport, ReplicationError> {
        let state_err = ctx.state_err();
        let id = rec.snapshot_id.clone();
        let written = self
            .store
            .written_blocks(&ctx.key, &id)
            .await
            .map_err(&state_err)?;
        let blocks_resumed = written.len() as u64;
        let block_count = source
            .block_count()
            .max(parent.as_ref().map_or(0, |p| p.len()));
        let blocks_total = source.block_count();
        let reference = Arc::new(Reference {
            parent,
            written: written.into_iter().map(|b| (b.index, b.xxh3)).collect(),
        });
        self.store
            .set_phase(&ctx.key, &ctx.run_id, RunPhase::Uploading)
            .await
            .map_err(&state_err)?;

        let progress = Arc::new(self.lock_progress().disk(
            &ctx.job.server,
            &disk.name,
            block_count,
        ));
        let recorder = Recorder::start(Arc::clone(&self.store), ctx.key.clone(), id.clone());
        let scan = scan::start(
            source,
            block_count,
            reference,
            ScanConfig {
                hash_threads: self.opts.hash_threads.max(1),
                queue: self.opts.upload_concurrency.max(4),
            },
            &self.scan,
        );
        let target = Target {
            ctx,
            disk,
            snapshot_id: &id,
            recorder: &recorder,
            progress: &progress,
        };
        let fed = self.feed(&target, scan, block_count, blocks_total).await;
        let (manifest, mut counts, scanned) = match fed {
            Ok(done) => done,
            Err((err, counts)) => {
                let _ = recorder.flush().await;
                let mut partial = counts;
                partial.seconds = t0.elapsed().as_secs_f64();
                let _ = self.store.add_partial_counts(&ctx.key, &id, &partial).await;
                progress.finish("failed");
                return Err(err);
            }
        };
        if scanned != block_count {
            return Err(target.invalid(&format!("scanned {scanned} of {block_count} blocks")));
        }
        recorder.flush().await.map_err(|message| {
            target.invalid(&format!("cannot record accepted blocks: {message}"))
        })?;
        drop(recorder);

        // Everything accepted: fix the manifest, then complete.
        let (changed, linear) = self
            .store
            .written_checksum(&ctx.key, &id)
            .await
            .map_err(&state_err)?;
        counts.blocks_changed = changed;
        counts.seconds = t0.elapsed().as_secs_f64();
        self.store
            .mark_completing(&ctx.key, &id, &manifest, &counts)
            .await
            .map_err(&state_err)?;
        self.store
            .set_phase(&ctx.key, &ctx.run_id, RunPhase::Completing)
            .await
            .map_err(&state_err)?;
        snapshot::complete(&self.ebs, &id, changed, (changed > 0).then_some(linear))
            .await
            .map_err(ctx.aws_err(Some(&disk.name)))?;
        self.store
            .mark_snapshot_completed(&ctx.key, &id, OffsetDateTime::now_utc())
            .await
            .map_err(&state_err)?;
        progress.finish(&format!(
            "{} blocks sent, snapshot {id} completed",
            counts.blocks_uploaded
        ));
        tracing::info!(
            "server {}, disk {}: snapshot {id} completed: {} blocks scanned, {} sent, {} written in all, {:.1} s",
            ctx.job.server,
            disk.name,
            counts.blocks_scanned,
            counts.blocks_uploaded,
            changed,
            counts.seconds
        );
        Ok(SnapshotReport {
            disk: disk.name.clone(),
            snapshot_id: id,
            parent_snapshot_id: rec.parent_snapshot_id.clone(),
            blocks_total,
            blocks_scanned: counts.blocks_scanned,
            blocks_uploaded: counts.blocks_uploaded,
            bytes_uploaded: counts.bytes_uploaded,
            seconds: counts.seconds,
            blocks_changed: changed,
            blocks_resumed,
            volume_size_gib: rec.volume_size_gib,
            reused: false,
        })
    }

    /// Takes the scanned blocks, sends those to send (each under an upload permit) and waits
    /// for every upload. Returns the manifest, the counters and how many blocks the scan
    /// covered; on failure, the first error and the counters so far (the scan and the uploads
    /// still in flight are stopped).
    async fn feed(
        &self,
        target: &Target<'_>,
        mut scan: Scan,
        block_count: u64,
        blocks_total: u64,
    ) -> Result<(Manifest, SnapshotCounts, u64), (ReplicationError, SnapshotCounts)> {
        let mut manifest = Manifest::with_len(block_count);
        let mut counts = SnapshotCounts {
            blocks_total,
            ..Default::default()
        };
        let mut tasks: JoinSet<UploadResult> = JoinSet::new();
        let mut failure: Option<ReplicationError> = None;

        'feed: loop {
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Some(e) = target.upload_failed(joined, &mut counts) {
                        failure = Some(e);
                        break 'feed;
                    }
                }
                block = scan.blocks.recv() => {
                    let Some(block) = block else { break 'feed };
                    manifest.set(block.index, block.hash);
                    if block.read {
                        counts.blocks_scanned += 1;
                    }
                    target.progress.scanned(1);
                    if block.decision == Decision::AlreadyWritten {
                        continue;
                    }
                    let Some(up) = block.upload else { continue };
                    // One bound on blocks in flight for every transfer of this replicator;
                    // finished uploads are taken in (and their permits returned) first.
                    let permit = loop {
                        tokio::select! {
                            biased;
                            Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                                if let Some(e) = target.upload_failed(joined, &mut counts) {
                                    failure = Some(e);
                                    break 'feed;
                                }
                            }
                            permit = Arc::clone(&self.uploads).acquire_owned() => match permit {
                                Ok(p) => break p,
                                Err(_) => {
                                    failure = Some(target.invalid("the upload limiter was closed"));
                                    break 'feed;
                                }
                            },
                        }
                    };
                    let (ebs, sid, record, progress) = (
                        self.ebs.clone(),
                        target.snapshot_id.to_string(),
                        target.recorder.handle(),
                        Arc::clone(target.progress),
                    );
                    let (index, hash) = (block.index, block.hash);
                    tasks.spawn(async move {
                        let len = up.data.len() as u64;
                        let sent = snapshot::put_block(&ebs, &sid, index, up.data.clone(), &up.sha256).await;
                        if let Err(f) = sent {
                            return (permit, Err((index, f)));
                        }
                        record.record(WrittenBlock { index, xxh3: hash, sha256: up.sha256 });
                        progress.uploaded();
                        up.recycle();
                        (permit, Ok(len))
                    });
                }
            }
        }
        if failure.is_none() {
            while let Some(joined) = tasks.join_next().await {
                if let Some(e) = target.upload_failed(joined, &mut counts) {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(err) = failure {
            scan.stop();
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            return Err((err, counts));
        }
        match (&mut scan.done).await {
            Ok(Ok(totals)) => Ok((manifest, counts, totals.blocks)),
            Ok(Err(source)) => {
                let err = ReplicationError::Source {
                    server: target.ctx.job.server.clone(),
                    disk: target.disk.name.clone(),
                    source,
                };
                Err((err, counts))
            }
            Err(_) => Err((
                target.invalid("the reader thread stopped without a result"),
                counts,
            )),
        }
    }
}
