//! The replication of one server: every disk to a completed EBS snapshot (resuming an
//! interrupted run where it stopped), then an AMI, then retention.
//!
//! - this module: the [`Replicator`] and a run's lifecycle (begin or resume, disks, AMI,
//!   completion or failure);
//! - `resume`: where a disk of an interrupted run picks up (pure);
//! - `disk`: carrying that step out, starting and giving up snapshots;
//! - `transfer`: scan → uploads → recorder → CompleteSnapshot;
//! - `image`: the AMI and its tags; `retention`: the pure retention plan and its application;
//! - `encryption`: the server's encryption resolved to a key ARN;
//! - `claimed`: the run under the server's lease on a shared state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::ami;
use crate::aws::AwsFailure;
use crate::error::ReplicationError;
use crate::job::ServerJob;
use crate::progress::{Progress, ProgressMode};
use crate::report::{ReportStatus, ServerReport};
use crate::scan::ScanShared;
use crate::snapshot;
use crate::source::QemuTools;
use crate::state::{RunPhase, ServerKey, StateError, StateStore};

mod claimed;
mod disk;
mod encryption;
mod image;
mod resume;
mod retention;
mod transfer;

use encryption::ResolvedEncryption;

#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// PutSnapshotBlock calls in flight, across every disk the replicator sends.
    pub upload_concurrency: usize,
    /// Threads hashing blocks.
    pub hash_threads: usize,
    pub progress: ProgressMode,
    /// StartSnapshot's Timeout: an open snapshot with no block written for this long is
    /// cancelled by EBS. Long, so an interrupted run can be resumed the next day.
    pub snapshot_timeout_minutes: u32,
    /// Bound of the polls for a completed snapshot and an available AMI.
    pub wait_timeout: Duration,
    pub poll_interval: Duration,
    pub qemu: QemuTools,
    /// How long a run waits for a server another host is replicating (a worker's lease on a
    /// shared state) before it gives up on the server.
    pub lease_wait: Duration,
}

impl Default for ReplicateOptions {
    fn default() -> Self {
        ReplicateOptions {
            upload_concurrency: 16,
            hash_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            progress: ProgressMode::auto(),
            snapshot_timeout_minutes: 1440,
            wait_timeout: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(5),
            qemu: QemuTools::default(),
            lease_wait: Duration::from_secs(3600),
        }
    }
}

/// Replicates servers against one state store. Owns the bounds every transfer shares — the
/// permits for blocks in flight and the pool of block buffers — so that running several
/// servers at once would keep one bound on uploads and on memory.
pub struct Replicator {
    ebs: aws_sdk_ebs::Client,
    ec2: aws_sdk_ec2::Client,
    kms: aws_sdk_kms::Client,
    store: Arc<dyn StateStore>,
    opts: ReplicateOptions,
    progress: Mutex<Progress>,
    /// One permit per PutSnapshotBlock in flight.
    uploads: Arc<Semaphore>,
    /// What every scan shares: the 512 KiB buffers (2 per upload in flight, 3 per hashing
    /// thread, 2 more) and the hashing permits (one per hashing thread), whatever the number of
    /// servers replicated at once.
    scan: ScanShared,
}

/// What every step of one server's run needs.
pub(super) struct RunContext<'a> {
    job: &'a ServerJob,
    key: ServerKey,
    run_id: String,
    encryption: ResolvedEncryption,
}

impl RunContext<'_> {
    /// Turns a state failure into the server's error.
    fn state_err(&self) -> impl Fn(StateError) -> ReplicationError + '_ {
        move |e| ReplicationError::state(&self.job.server, e)
    }

    /// Turns an AWS failure into the server's (and disk's) error.
    fn aws_err<'a>(
        &'a self,
        disk: Option<&'a str>,
    ) -> impl Fn(AwsFailure) -> ReplicationError + 'a {
        move |f| ReplicationError::aws(&self.job.server, disk, None, f)
    }
}

impl Replicator {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        store: Arc<dyn StateStore>,
        opts: ReplicateOptions,
    ) -> Self {
        let concurrency = opts.upload_concurrency.max(1);
        let threads = opts.hash_threads.max(1);
        Replicator {
            ebs: aws_sdk_ebs::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            progress: Mutex::new(Progress::new(opts.progress)),
            uploads: Arc::new(Semaphore::new(concurrency)),
            scan: ScanShared::new(2 * concurrency + 3 * threads + 2, threads),
            store,
            opts,
        }
    }

    pub fn store(&self) -> &dyn StateStore {
        &*self.store
    }

    /// Replicates one server without claiming it (see `replicate`, which claims it on a shared
    /// state). Never panics: a failure lands in the report (and the state).
    async fn replicate_unclaimed(&self, job: &ServerJob) -> ServerReport {
        let t0 = Instant::now();
        let mut report = ServerReport::not_run(job);
        let mut timings = BTreeMap::new();
        let result = self.run(job, &mut report, &mut timings).await;
        self.lock_progress().finish_server(&job.server);
        report.seconds = t0.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                report.status = ReportStatus::Completed;
                tracing::info!(
                    "server {}: AMI {} ready in {:.1} s",
                    job.server,
                    report.ami_id.as_deref().unwrap_or("?"),
                    report.seconds
                );
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!("{message}");
                report.refused = e.is_refusal();
                if !report.run_id.is_empty() {
                    timings.insert("total".into(), report.seconds);
                    let key = ServerKey::new(&job.app, &job.server);
                    let now = OffsetDateTime::now_utc();
                    if let Err(e) = self
                        .store
                        .fail_run(&key, &report.run_id, &message, &timings, now)
                        .await
                    {
                        tracing::error!("cannot record the failed run: {e}");
                    }
                }
                report.error = Some(message);
            }
        }
        report
    }

    fn lock_progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(
        &self,
        job: &ServerJob,
        report: &mut ServerReport,
        timings: &mut BTreeMap<String, f64>,
    ) -> Result<(), ReplicationError> {
        let t0 = Instant::now();
        validate(job)?;
        // Every disk's format and image chain are checked before any snapshot starts, so a
        // refused disk leaves nothing behind in EC2.
        let (inspected, tools) = (job.clone(), self.opts.qemu.clone());
        tokio::task::spawn_blocking(move || inspected.inspect_disks(&tools))
            .await
            .map_err(|e| {
                ReplicationError::invalid(
                    &job.server,
                    None,
                    format!("inspecting the disks failed: {e}"),
                )
            })??;
        let key = ServerKey::new(&job.app, &job.server);
        let (run, resumed) = self
            .store
            .begin_run(&key, &job.group, OffsetDateTime::now_utc())
            .await
            .map_err(|e| ReplicationError::state(&job.server, e))?;
        report.run_id = run.run_id.clone();
        report.resumed = resumed;
        if resumed {
            tracing::info!(
                "server {}: resuming run {} (attempt {})",
                job.server,
                run.run_id,
                run.attempts
            );
        } else {
            tracing::info!("server {}: run {}", job.server, run.run_id);
        }
        self.cleanup_abandoned(job, &key, report).await;
        let ctx = RunContext {
            encryption: self.resolve_encryption(job).await?,
            job,
            key,
            run_id: run.run_id,
        };

        self.lock_progress().start_server(&job.server);

        for disk in &job.disks {
            let t = Instant::now();
            let done = self.replicate_disk(&ctx, disk).await?;
            timings.insert(disk.name.clone(), t.elapsed().as_secs_f64());
            report.snapshots.push(done);
        }

        self.store
            .set_phase(&ctx.key, &ctx.run_id, RunPhase::Registering)
            .await
            .map_err(ctx.state_err())?;
        let t = Instant::now();
        let ids: Vec<String> = report
            .snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect();
        snapshot::wait_completed(
            &self.ec2,
            &ids,
            self.opts.wait_timeout,
            self.opts.poll_interval,
        )
        .await
        .map_err(ctx.aws_err(None))?;
        let ami = self.ensure_ami(&ctx, &report.snapshots).await?;
        timings.insert("register".into(), t.elapsed().as_secs_f64());
        timings.insert("total".into(), t0.elapsed().as_secs_f64());
        report.ami_id = Some(ami.ami_id.clone());
        report.ami_name = Some(ami.name.clone());

        self.store
            .complete_run(
                &ctx.key,
                &ctx.run_id,
                &ami,
                timings,
                OffsetDateTime::now_utc(),
            )
            .await
            .map_err(ctx.state_err())?;

        if let Err(e) = self.apply_retention(&ctx, report).await {
            tracing::warn!("retention: {e}");
            report.warnings.push(format!("retention: {e}"));
        }
        Ok(())
    }
}

/// A job the engine can run: at least one disk, unique disk names, device names for them all.
fn validate(job: &ServerJob) -> Result<(), ReplicationError> {
    let invalid = |message: String| ReplicationError::invalid(&job.server, None, message);
    if job.disks.is_empty() {
        return Err(invalid("no disks to replicate".into()));
    }
    let mut names = BTreeSet::new();
    for d in &job.disks {
        if !names.insert(&d.name) {
            return Err(invalid(format!("disk name {} appears twice", d.name)));
        }
    }
    ami::device_names(job.architecture, job.disks.len()).map_err(invalid)?;
    Ok(())
}
