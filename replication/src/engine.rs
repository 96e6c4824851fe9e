//! The replication of one server: every disk to a completed EBS snapshot (resuming an
//! interrupted run where it stopped), then an AMI, then retention.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::task::JoinSet;

use crate::ami::{self, AmiSpec, DiskImage};
use crate::aws::AwsFailure;
use crate::error::ReplicationError;
use crate::job::{DiskJob, ServerJob};
use crate::manifest::{BLOCK_SIZE_U64, Manifest};
use crate::progress::{Progress, ProgressMode};
use crate::recorder::Recorder;
use crate::report::{ReportStatus, ServerReport, SnapshotReport};
use crate::scan::{self, Decision, Reference, ScanConfig};
use crate::snapshot::{self, RemoteState, StartRequest};
use crate::source::{DiskSource, QemuTools};
use crate::state::{
    AmiRecord, NewSnapshot, RunPhase, RunRecord, SnapshotCounts, SnapshotRecord, SnapshotStatus,
    StateError, StateStore, WrittenBlock,
};
use crate::tags;

const GIB: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// PutSnapshotBlock calls in flight per disk.
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
        }
    }
}

pub struct Replicator {
    ebs: aws_sdk_ebs::Client,
    ec2: aws_sdk_ec2::Client,
    kms: aws_sdk_kms::Client,
    store: StateStore,
    opts: ReplicateOptions,
    progress: Mutex<Progress>,
}

/// Encryption as resolved for this run.
#[derive(Debug, Clone, PartialEq, Eq)]
struct EncryptionPlan {
    enabled: bool,
    kms_key_arn: Option<String>,
}

/// A disk whose snapshot is completed.
struct DiskDone {
    report: SnapshotReport,
}

/// An upload task's outcome: (block, bytes) sent, or the block and why it failed.
type UploadResult = Result<(u64, u64), (u64, AwsFailure)>;

/// How a disk's snapshot gets written.
enum Plan {
    Fresh,
    Resume(Box<SnapshotRecord>),
}

impl Replicator {
    pub fn new(sdk: &aws_config::SdkConfig, store: StateStore, opts: ReplicateOptions) -> Self {
        Replicator {
            ebs: aws_sdk_ebs::Client::new(sdk),
            ec2: aws_sdk_ec2::Client::new(sdk),
            kms: aws_sdk_kms::Client::new(sdk),
            progress: Mutex::new(Progress::new(opts.progress)),
            store,
            opts,
        }
    }

    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn options(&self) -> &ReplicateOptions {
        &self.opts
    }

    /// The bars' owner, so a CLI can print log lines above the bars
    /// (`multi.suspend(|| ...)` in its tracing writer) instead of through them.
    pub fn multi_progress(&self) -> indicatif::MultiProgress {
        self.lock_progress().multi()
    }

    /// Replicates one server. Never panics: a failure lands in the report (and the state), and
    /// the next call for the server resumes where this one stopped.
    pub async fn replicate(&self, job: &ServerJob) -> ServerReport {
        let t0 = Instant::now();
        let mut report = ServerReport {
            server: job.server.clone(),
            ami_id: None,
            snapshots: Vec::new(),
            status: ReportStatus::Failed,
            error: None,
            run_id: String::new(),
            app: job.app.clone(),
            ami_name: None,
            resumed: false,
            seconds: 0.0,
            warnings: Vec::new(),
            deregistered_amis: Vec::new(),
            deleted_snapshots: Vec::new(),
        };
        let mut timings = BTreeMap::new();
        let result = self.run(job, &mut report, &mut timings).await;
        self.lock_progress().finish_server();
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
                if !report.run_id.is_empty() {
                    timings.insert("total".into(), report.seconds);
                    let run_id = report.run_id.clone();
                    let msg = message.clone();
                    let now = OffsetDateTime::now_utc();
                    if let Err(e) = self
                        .db(&job.server, move |s| {
                            s.fail_run(&run_id, &msg, &timings, now)
                        })
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

    /// Runs a state store call off the async threads.
    async fn db<T, F>(&self, server: &str, f: F) -> Result<T, ReplicationError>
    where
        T: Send + 'static,
        F: FnOnce(&StateStore) -> Result<T, StateError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(|source| ReplicationError::State {
                server: server.to_string(),
                source: Box::new(source),
            }),
            Err(e) => Err(ReplicationError::Invalid {
                server: server.to_string(),
                disk: None,
                message: format!("state store task failed: {e}"),
            }),
        }
    }

    fn aws_err(
        job: &ServerJob,
        disk: Option<&str>,
        block: Option<u64>,
        failure: AwsFailure,
    ) -> ReplicationError {
        ReplicationError::Aws {
            server: job.server.clone(),
            disk: disk.map(str::to_string),
            block,
            failure: Box::new(failure),
        }
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
            .map_err(|e| ReplicationError::Invalid {
                server: job.server.clone(),
                disk: None,
                message: format!("inspecting the disks failed: {e}"),
            })??;
        let (app, server, group) = (job.app.clone(), job.server.clone(), job.group.clone());
        let now = OffsetDateTime::now_utc();
        let (run, resumed) = self
            .db(&job.server, move |s| {
                s.begin_run(&app, &server, &group, now)
            })
            .await?;
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
        self.cleanup_abandoned(job, report).await;
        let encryption = self.resolve_encryption(job).await?;

        self.lock_progress().start_server(&job.server);

        for disk in &job.disks {
            let t = Instant::now();
            let done = self.replicate_disk(job, &run, disk, &encryption).await?;
            timings.insert(disk.name.clone(), t.elapsed().as_secs_f64());
            report.snapshots.push(done.report);
        }

        let run_id = run.run_id.clone();
        self.db(&job.server, move |s| {
            s.set_phase(&run_id, RunPhase::Registering)
        })
        .await?;
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
        .map_err(|f| Self::aws_err(job, None, None, f))?;
        let ami = self
            .ensure_ami(job, &run, &report.snapshots, &encryption)
            .await?;
        timings.insert("register".into(), t.elapsed().as_secs_f64());
        timings.insert("total".into(), t0.elapsed().as_secs_f64());
        report.ami_id = Some(ami.ami_id.clone());
        report.ami_name = Some(ami.name.clone());

        let (run_id, app, server, timings) = (
            run.run_id.clone(),
            job.app.clone(),
            job.server.clone(),
            timings.clone(),
        );
        self.db(&job.server, move |s| {
            s.complete_run(
                &run_id,
                &app,
                &server,
                &ami,
                &timings,
                OffsetDateTime::now_utc(),
            )
        })
        .await?;

        if let Err(e) = self.apply_retention(job, report).await {
            tracing::warn!("retention: {e}");
            report.warnings.push(format!("retention: {e}"));
        }
        Ok(())
    }

    async fn resolve_encryption(
        &self,
        job: &ServerJob,
    ) -> Result<EncryptionPlan, ReplicationError> {
        let Some(enc) = &job.encryption else {
            return Ok(EncryptionPlan {
                enabled: false,
                kms_key_arn: None,
            });
        };
        let Some(key) = &enc.kms_key_id else {
            return Ok(EncryptionPlan {
                enabled: true,
                kms_key_arn: None,
            });
        };
        // StartSnapshot takes only a key ARN; KMS resolves key ids and aliases to it.
        if key.starts_with("arn:") && key.contains(":key/") {
            return Ok(EncryptionPlan {
                enabled: true,
                kms_key_arn: Some(key.clone()),
            });
        }
        let out = self
            .kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| Self::aws_err(job, None, None, AwsFailure::from_sdk("DescribeKey", &e)))?;
        let arn = out
            .key_metadata()
            .map(|m| m.arn().unwrap_or_default().to_string())
            .filter(|a| !a.is_empty());
        match arn {
            Some(arn) => Ok(EncryptionPlan {
                enabled: true,
                kms_key_arn: Some(arn),
            }),
            None => Err(ReplicationError::Invalid {
                server: job.server.clone(),
                disk: None,
                message: format!("KMS key {key} has no ARN"),
            }),
        }
    }

    /// Deletes snapshots that earlier runs gave up (best effort; failures become warnings).
    async fn cleanup_abandoned(&self, job: &ServerJob, report: &mut ServerReport) {
        let (app, server) = (job.app.clone(), job.server.clone());
        let stale = match self
            .db(&job.server, move |s| s.abandoned_snapshots(&app, &server))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                report.warnings.push(e.to_string());
                return;
            }
        };
        for id in stale {
            match snapshot::delete(&self.ec2, &id).await {
                Ok(()) => {
                    tracing::info!("server {}: deleted stale snapshot {id}", job.server);
                    let sid = id.clone();
                    if let Err(e) = self
                        .db(&job.server, move |s| s.mark_snapshot_deleted(&sid))
                        .await
                    {
                        report.warnings.push(e.to_string());
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
        job: &ServerJob,
        rec: &SnapshotRecord,
        why: &str,
    ) -> Result<(), ReplicationError> {
        tracing::warn!(
            "server {}, disk {}: snapshot {} cannot be continued ({why}); starting a fresh one",
            job.server,
            rec.disk,
            rec.snapshot_id
        );
        let id = rec.snapshot_id.clone();
        self.db(&job.server, move |s| s.abandon_snapshot(&id))
            .await?;
        if snapshot::delete(&self.ec2, &rec.snapshot_id).await.is_ok() {
            let id = rec.snapshot_id.clone();
            self.db(&job.server, move |s| s.mark_snapshot_deleted(&id))
                .await?;
        }
        Ok(())
    }

    async fn replicate_disk(
        &self,
        job: &ServerJob,
        run: &RunRecord,
        disk: &DiskJob,
        enc: &EncryptionPlan,
    ) -> Result<DiskDone, ReplicationError> {
        let aws =
            |block: Option<u64>, f: AwsFailure| Self::aws_err(job, Some(&disk.name), block, f);
        let mut fresh_after_failure = false;
        loop {
            let (run_id, name) = (run.run_id.clone(), disk.name.clone());
            let existing = self
                .db(&job.server, move |s| s.run_snapshot(&run_id, &name))
                .await?;
            let plan = match existing {
                None => Plan::Fresh,
                Some(rec) if rec.status == SnapshotStatus::Completed => return Ok(reused(rec)),
                Some(rec) if rec.status == SnapshotStatus::Completing => {
                    // Every block was accepted; CompleteSnapshot may or may not have gone through.
                    match snapshot::remote_state(&self.ec2, &rec.snapshot_id)
                        .await
                        .map_err(|f| aws(None, f))?
                    {
                        RemoteState::Completed => {}
                        RemoteState::Pending | RemoteState::Other(_) => {
                            let id = rec.snapshot_id.clone();
                            let (changed, sum) = self
                                .db(&job.server, move |s| s.written_checksum(&id))
                                .await?;
                            let done = snapshot::complete(
                                &self.ebs,
                                &rec.snapshot_id,
                                changed,
                                (changed > 0).then_some(sum),
                            )
                            .await;
                            match done {
                                Ok(()) => {}
                                // Completed before the interruption and still finishing in EBS:
                                // the wait before RegisterImage sees it through.
                                Err(f) if f.code == "ValidationException" => tracing::info!(
                                    "snapshot {} was already completed: {}",
                                    rec.snapshot_id,
                                    f.message
                                ),
                                Err(f) => return Err(aws(None, f)),
                            }
                        }
                        state => {
                            self.abandon(job, &rec, &format!("it is {state:?}")).await?;
                            continue;
                        }
                    }
                    let id = rec.snapshot_id.clone();
                    self.db(&job.server, move |s| {
                        s.mark_snapshot_completed(&id, OffsetDateTime::now_utc())
                    })
                    .await?;
                    return Ok(reused(rec));
                }
                Some(rec) => match snapshot::remote_state(&self.ec2, &rec.snapshot_id)
                    .await
                    .map_err(|f| aws(None, f))?
                {
                    // An open snapshot is `pending` in AWS. (The emulator reports `completed` for
                    // one still accepting blocks; on AWS a snapshot we never completed cannot be
                    // `completed`, and if it were, its first PutSnapshotBlock would be refused and
                    // the run would start afresh below.)
                    RemoteState::Pending | RemoteState::Completed => Plan::Resume(Box::new(rec)),
                    state => {
                        self.abandon(job, &rec, &format!("it is {state:?}")).await?;
                        continue;
                    }
                },
            };
            let resumed = matches!(plan, Plan::Resume(_));
            match self.write_disk(job, run, disk, enc, plan).await {
                Ok(done) => return Ok(done),
                Err((err, Some(rec)))
                    if resumed
                        && !fresh_after_failure
                        && matches!(
                            err.aws_code(),
                            Some("ValidationException" | "ResourceNotFoundException")
                        ) =>
                {
                    fresh_after_failure = true;
                    self.abandon(job, &rec, &err.to_string()).await?;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// Opens the source, starts or resumes the snapshot, streams the blocks and completes it.
    /// On failure also returns the snapshot record, if one was in use.
    async fn write_disk(
        &self,
        job: &ServerJob,
        run: &RunRecord,
        disk: &DiskJob,
        enc: &EncryptionPlan,
        plan: Plan,
    ) -> Result<DiskDone, (ReplicationError, Option<SnapshotRecord>)> {
        let server = job.server.clone();
        let t0 = Instant::now();
        let (run_id, phase_server) = (run.run_id.clone(), job.server.clone());
        self.db(&phase_server, move |s| {
            s.set_phase(&run_id, RunPhase::Scanning)
        })
        .await
        .map_err(|e| (e, None))?;

        let (path, format) = (disk.source.clone(), disk.format);
        let tools = self.opts.qemu.clone();
        let source = tokio::task::spawn_blocking(move || DiskSource::open(&path, format, &tools))
            .await
            .map_err(|e| {
                let err = ReplicationError::Invalid {
                    server: server.clone(),
                    disk: Some(disk.name.clone()),
                    message: format!("opening the source failed: {e}"),
                };
                (err, None)
            })?
            .map_err(|source| {
                (
                    ReplicationError::Source {
                        server: server.clone(),
                        disk: disk.name.clone(),
                        source,
                    },
                    None,
                )
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
        let needed_gib = source.size().div_ceil(GIB).max(1);

        let (rec, parent) = match plan {
            Plan::Resume(rec) => {
                let rec = *rec;
                let parent = match &rec.parent_snapshot_id {
                    None => None,
                    Some(pid) => {
                        let pid = pid.clone();
                        match self
                            .db(&job.server, move |s| s.snapshot_manifest(&pid))
                            .await
                            .map_err(|e| (e, None))?
                        {
                            Some(m) => Some(Arc::new(m)),
                            None => {
                                return Err((
                                    unusable(job, disk, "its parent's manifest is gone"),
                                    Some(rec),
                                ));
                            }
                        }
                    }
                };
                if rec.volume_size_gib < needed_gib {
                    return Err((
                        unusable(job, disk, "the disk grew since it was started"),
                        Some(rec),
                    ));
                }
                if rec.encrypted != enc.enabled || rec.kms_key_arn != enc.kms_key_arn {
                    return Err((
                        unusable(job, disk, "the encryption settings changed"),
                        Some(rec),
                    ));
                }
                tracing::info!(
                    "server {}, disk {}: continuing snapshot {}",
                    job.server,
                    disk.name,
                    rec.snapshot_id
                );
                (rec, parent)
            }
            Plan::Fresh => {
                let rec = self
                    .start_snapshot(job, run, disk, enc, needed_gib)
                    .await
                    .map_err(|e| (e, None))?;
                let parent = match &rec.parent_snapshot_id {
                    None => None,
                    Some(pid) => {
                        let pid = pid.clone();
                        self.db(&job.server, move |s| s.snapshot_manifest(&pid))
                            .await
                            .map_err(|e| (e, Some(rec.clone())))?
                            .map(Arc::new)
                    }
                };
                (rec, parent)
            }
        };
        self.transfer(job, run, disk, &rec, parent, source, t0)
            .await
            .map_err(|e| (e, Some(rec.clone())))
    }

    /// Starts a new snapshot, as an increment of the disk's previous one when there is one.
    async fn start_snapshot(
        &self,
        job: &ServerJob,
        run: &RunRecord,
        disk: &DiskJob,
        enc: &EncryptionPlan,
        needed_gib: u64,
    ) -> Result<SnapshotRecord, ReplicationError> {
        let (app, server, name) = (job.app.clone(), job.server.clone(), disk.name.clone());
        let previous = self
            .db(&job.server, move |s| {
                s.latest_completed_snapshot(&app, &server, &name)
            })
            .await?;
        let parent = match previous {
            Some((rec, _))
                if rec.encrypted != enc.enabled || rec.kms_key_arn != enc.kms_key_arn =>
            {
                tracing::info!(
                    "server {}, disk {}: encryption changed since snapshot {}; sending a full seed",
                    job.server,
                    disk.name,
                    rec.snapshot_id
                );
                None
            }
            Some((rec, _)) => {
                match snapshot::remote_state(&self.ec2, &rec.snapshot_id)
                    .await
                    .map_err(|f| Self::aws_err(job, Some(&disk.name), None, f))?
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
        let (run_id, name) = (run.run_id.clone(), disk.name.clone());
        let attempt = self
            .db(&job.server, move |s| s.abandoned_count(&run_id, &name))
            .await?;
        let token = client_token(&job.app, &job.server, &disk.name, &run.run_id, attempt);
        let mut snapshot_tags = common_tags(job, &run.run_id);
        snapshot_tags.push((tags::DISK.into(), disk.name.clone()));
        let description = format!(
            "rehost {}/{}/{} run {}",
            job.app, job.server, disk.name, run.run_id
        );
        let parent_id = parent.as_ref().map(|p| p.snapshot_id.clone());
        let snapshot_id = snapshot::start(
            &self.ebs,
            &StartRequest {
                volume_size_gib,
                parent_snapshot_id: parent_id.as_deref(),
                client_token: &token,
                description: &description,
                tags: &snapshot_tags,
                encrypted: enc.enabled,
                kms_key_arn: enc.kms_key_arn.as_deref(),
                timeout_minutes: self.opts.snapshot_timeout_minutes,
            },
        )
        .await
        .map_err(|f| Self::aws_err(job, Some(&disk.name), None, f))?;
        tracing::info!(
            "server {}, disk {}: started snapshot {snapshot_id} ({volume_size_gib} GiB{})",
            job.server,
            disk.name,
            parent_id
                .as_deref()
                .map(|p| format!(", increment of {p}"))
                .unwrap_or_else(|| ", seed".into())
        );
        let new = NewSnapshotOwned {
            snapshot_id: snapshot_id.clone(),
            run_id: run.run_id.clone(),
            app: job.app.clone(),
            server: job.server.clone(),
            disk: disk.name.clone(),
            parent_snapshot_id: parent_id,
            volume_size_gib,
            encrypted: enc.enabled,
            kms_key_arn: enc.kms_key_arn.clone(),
        };
        self.db(&job.server, move |s| {
            s.insert_snapshot(
                &NewSnapshot {
                    snapshot_id: &new.snapshot_id,
                    run_id: &new.run_id,
                    app: &new.app,
                    server: &new.server,
                    disk: &new.disk,
                    parent_snapshot_id: new.parent_snapshot_id.as_deref(),
                    volume_size_gib: new.volume_size_gib,
                    block_count: new.volume_size_gib * GIB / BLOCK_SIZE_U64,
                    encrypted: new.encrypted,
                    kms_key_arn: new.kms_key_arn.as_deref(),
                },
                OffsetDateTime::now_utc(),
            )?;
            s.snapshot(&new.snapshot_id)
        })
        .await?
        .ok_or_else(|| ReplicationError::Invalid {
            server: job.server.clone(),
            disk: Some(disk.name.clone()),
            message: format!(
                "snapshot {snapshot_id} missing from the state right after recording it"
            ),
        })
    }

    /// Scans the source and sends the blocks the snapshot needs, then completes it.
    #[allow(clippy::too_many_arguments)]
    async fn transfer(
        &self,
        job: &ServerJob,
        run: &RunRecord,
        disk: &DiskJob,
        rec: &SnapshotRecord,
        parent: Option<Arc<Manifest>>,
        source: DiskSource,
        t0: Instant,
    ) -> Result<DiskDone, ReplicationError> {
        let server = job.server.as_str();
        let id = rec.snapshot_id.clone();
        let sid = id.clone();
        let written = self.db(server, move |s| s.written_blocks(&sid)).await?;
        let blocks_resumed = written.len() as u64;
        let block_count = source
            .block_count()
            .max(parent.as_ref().map_or(0, |p| p.len()));
        let blocks_total = source.block_count();
        let reference = Arc::new(Reference { parent, written });
        let run_id = run.run_id.clone();
        self.db(server, move |s| s.set_phase(&run_id, RunPhase::Uploading))
            .await?;

        let progress = Arc::new(
            self.lock_progress()
                .disk(&job.server, &disk.name, block_count),
        );
        let recorder = Recorder::start(self.store.clone(), id.clone()).map_err(|e| {
            ReplicationError::Invalid {
                server: server.to_string(),
                disk: Some(disk.name.clone()),
                message: format!("cannot start the block recorder thread: {e}"),
            }
        })?;
        let concurrency = self.opts.upload_concurrency.max(1);
        let threads = self.opts.hash_threads.max(1);
        let mut scan = scan::start(
            source,
            block_count,
            reference,
            ScanConfig {
                hash_threads: threads,
                queue: concurrency.max(4),
                buffers: 2 * concurrency + 3 * threads + 2,
            },
        );

        let mut manifest = Manifest::with_len(block_count);
        let mut counts = SnapshotCounts {
            blocks_total,
            ..Default::default()
        };
        let mut tasks: JoinSet<UploadResult> = JoinSet::new();
        let mut failure: Option<ReplicationError> = None;
        let on_done = |joined: Result<UploadResult, tokio::task::JoinError>,
                       counts: &mut SnapshotCounts|
         -> Option<ReplicationError> {
            match joined {
                Ok(Ok((_, bytes))) => {
                    counts.blocks_uploaded += 1;
                    counts.bytes_uploaded += bytes;
                    None
                }
                Ok(Err((index, f))) => Some(Self::aws_err(job, Some(&disk.name), Some(index), f)),
                Err(e) => Some(ReplicationError::Invalid {
                    server: server.to_string(),
                    disk: Some(disk.name.clone()),
                    message: format!("upload task failed: {e}"),
                }),
            }
        };

        'feed: loop {
            while tasks.len() >= concurrency {
                if let Some(joined) = tasks.join_next().await
                    && let Some(e) = on_done(joined, &mut counts)
                {
                    failure = Some(e);
                    break 'feed;
                }
            }
            tokio::select! {
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Some(e) = on_done(joined, &mut counts) {
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
                    progress.scanned(1);
                    if block.decision == Decision::AlreadyWritten {
                        continue;
                    }
                    if let Some(up) = block.upload {
                        let (ebs, sid, rec_handle, progress) =
                            (self.ebs.clone(), id.clone(), recorder.handle(), Arc::clone(&progress));
                        let (index, hash) = (block.index, block.hash);
                        tasks.spawn(async move {
                            let len = up.data.len() as u64;
                            snapshot::put_block(&ebs, &sid, index, up.data.clone(), &up.sha256)
                                .await
                                .map_err(|f| (index, f))?;
                            rec_handle.record(WrittenBlock { index, xxh3: hash, sha256: up.sha256 });
                            progress.uploaded();
                            up.recycle();
                            Ok((index, len))
                        });
                    }
                }
            }
        }
        if failure.is_none() {
            while let Some(joined) = tasks.join_next().await {
                if let Some(e) = on_done(joined, &mut counts) {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(err) = failure {
            scan.stop();
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let _ = recorder.flush().await;
            counts.seconds = t0.elapsed().as_secs_f64();
            let (sid, partial) = (id.clone(), counts);
            let _ = self
                .db(server, move |s| s.add_partial_counts(&sid, &partial))
                .await;
            progress.finish("failed");
            return Err(err);
        }
        let totals = match (&mut scan.done).await {
            Ok(Ok(t)) => t,
            Ok(Err(source)) => {
                let _ = recorder.flush().await;
                progress.finish("failed");
                return Err(ReplicationError::Source {
                    server: server.to_string(),
                    disk: disk.name.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(ReplicationError::Invalid {
                    server: server.to_string(),
                    disk: Some(disk.name.clone()),
                    message: "the reader thread stopped without a result".into(),
                });
            }
        };
        if totals.blocks != block_count {
            return Err(ReplicationError::Invalid {
                server: server.to_string(),
                disk: Some(disk.name.clone()),
                message: format!("scanned {} of {block_count} blocks", totals.blocks),
            });
        }
        recorder
            .flush()
            .await
            .map_err(|message| ReplicationError::Invalid {
                server: server.to_string(),
                disk: Some(disk.name.clone()),
                message: format!("cannot record accepted blocks: {message}"),
            })?;
        drop(recorder);

        // Everything accepted: fix the manifest, then complete.
        let sid = id.clone();
        let (changed, linear) = self.db(server, move |s| s.written_checksum(&sid)).await?;
        counts.blocks_changed = changed;
        counts.seconds = t0.elapsed().as_secs_f64();
        let (sid, c, m) = (id.clone(), counts, manifest);
        let run_id = run.run_id.clone();
        self.db(server, move |s| {
            s.mark_completing(&sid, &m, &c)?;
            s.set_phase(&run_id, RunPhase::Completing)
        })
        .await?;
        snapshot::complete(&self.ebs, &id, changed, (changed > 0).then_some(linear))
            .await
            .map_err(|f| Self::aws_err(job, Some(&disk.name), None, f))?;
        let sid = id.clone();
        self.db(server, move |s| {
            s.mark_snapshot_completed(&sid, OffsetDateTime::now_utc())
        })
        .await?;
        progress.finish(&format!(
            "{} blocks sent, snapshot {id} completed",
            counts.blocks_uploaded
        ));
        tracing::info!(
            "server {}, disk {}: snapshot {id} completed: {} blocks scanned, {} sent, {} written in all, {:.1} s",
            job.server,
            disk.name,
            counts.blocks_scanned,
            counts.blocks_uploaded,
            changed,
            counts.seconds
        );
        Ok(DiskDone {
            report: SnapshotReport {
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
            },
        })
    }

    /// Registers the run's AMI, or finds the one an interrupted attempt registered (by name).
    async fn ensure_ami(
        &self,
        job: &ServerJob,
        run: &RunRecord,
        disks: &[SnapshotReport],
        enc: &EncryptionPlan,
    ) -> Result<AmiRecord, ReplicationError> {
        let aws = |f: AwsFailure| Self::aws_err(job, None, None, f);
        let proposed = ami_name(&job.app, &job.server, OffsetDateTime::now_utc());
        let run_id = run.run_id.clone();
        let name = self
            .db(&job.server, move |s| s.ami_name_for(&run_id, &proposed))
            .await?;

        let mut wanted = common_tags(job, &run.run_id);
        for d in disks {
            wanted.push((
                format!("{}{}", tags::SNAPSHOT_PREFIX, d.disk),
                d.snapshot_id.clone(),
            ));
        }
        let joined = disks
            .iter()
            .map(|d| d.snapshot_id.as_str())
            .collect::<Vec<_>>()
            .join(",");
        if joined.len() <= 256 {
            wanted.push((tags::SNAPSHOT_IDS.into(), joined));
        }
        wanted.push((tags::ENCRYPTED.into(), enc.enabled.to_string()));
        if let Some(k) = &enc.kms_key_arn {
            wanted.push((tags::KMS_KEY.into(), k.clone()));
        }

        let existing = ami::find_by_name(&self.ec2, &name).await.map_err(aws)?;
        let image = match existing.into_iter().next() {
            Some(img) => {
                if let Some(other) = img.tag(tags::RUN_ID).filter(|r| *r != run.run_id) {
                    return Err(ReplicationError::Invalid {
                        server: job.server.clone(),
                        disk: None,
                        message: format!(
                            "AMI name {name} is taken by {} of run {other}",
                            img.ami_id
                        ),
                    });
                }
                tracing::info!(
                    "server {}: found AMI {} ({name}) registered earlier by this run",
                    job.server,
                    img.ami_id
                );
                img
            }
            None => {
                let images: Vec<DiskImage<'_>> = disks
                    .iter()
                    .map(|d| DiskImage {
                        disk: &d.disk,
                        snapshot_id: &d.snapshot_id,
                        volume_size_gib: d.volume_size_gib,
                    })
                    .collect();
                let description = format!("rehost {}/{} run {}", job.app, job.server, run.run_id);
                let spec = AmiSpec {
                    name: &name,
                    description: &description,
                    architecture: job.architecture,
                    boot_mode: job.boot_mode,
                    ena_support: job.ena_support,
                    disks: &images,
                    tags: &wanted,
                };
                let ami_id = match ami::register(&self.ec2, &spec).await {
                    Ok(id) => id,
                    // A retried RegisterImage whose first attempt went through.
                    Err(f) if f.code == "InvalidAMIName.Duplicate" => {
                        ami::find_by_name(&self.ec2, &name)
                            .await
                            .map_err(aws)?
                            .into_iter()
                            .next()
                            .map(|i| i.ami_id)
                            .ok_or_else(|| aws(f))?
                    }
                    Err(f) => return Err(aws(f)),
                };
                tracing::info!("server {}: registered AMI {ami_id} ({name})", job.server);
                ami::describe(&self.ec2, &ami_id)
                    .await
                    .map_err(aws)?
                    .ok_or_else(|| ReplicationError::Invalid {
                        server: job.server.clone(),
                        disk: None,
                        message: format!("AMI {ami_id} not found right after registering it"),
                    })?
            }
        };
        ami::ensure_tags(&self.ec2, &image, &wanted)
            .await
            .map_err(aws)?;
        let image = ami::wait_available(
            &self.ec2,
            &image.ami_id,
            self.opts.wait_timeout,
            self.opts.poll_interval,
        )
        .await
        .map_err(aws)?;
        Ok(AmiRecord {
            ami_id: image.ami_id,
            name,
            run_id: run.run_id.clone(),
            created_at: OffsetDateTime::now_utc(),
            snapshot_ids: disks.iter().map(|d| d.snapshot_id.clone()).collect(),
            encrypted: enc.enabled,
            kms_key_id: enc.kms_key_arn.clone(),
        })
    }

    /// Keeps the server's `keep_recent_amis` newest AMIs; deregisters the rest and deletes
    /// their snapshots, except any a kept AMI or the next increment still needs.
    async fn apply_retention(
        &self,
        job: &ServerJob,
        report: &mut ServerReport,
    ) -> Result<(), ReplicationError> {
        let keep = job.keep_recent_amis as usize;
        if keep == 0 {
            return Ok(());
        }
        let aws = |f: AwsFailure| Self::aws_err(job, None, None, f);
        let mut images = ami::server_images(&self.ec2, &job.app, &job.server)
            .await
            .map_err(aws)?;
        images.retain(|i| i.state != "deregistered");
        images.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
        let current = report.ami_id.clone();
        // The AMI just made is always kept, whatever the clocks say.
        let (current_img, mut others): (Vec<_>, Vec<_>) = images
            .into_iter()
            .partition(|i| Some(&i.ami_id) == current.as_ref());
        let drop_count = (others.len() + current_img.len())
            .saturating_sub(keep)
            .min(others.len());
        let kept_others = others.split_off(drop_count);
        let old = others;
        if old.is_empty() {
            return Ok(());
        }
        let mut protected: BTreeSet<String> = BTreeSet::new();
        for img in current_img.iter().chain(&kept_others) {
            protected.extend(tags::snapshot_ids(&img.tags));
        }
        protected.extend(report.snapshots.iter().map(|s| s.snapshot_id.clone()));
        let (app, server) = (job.app.clone(), job.server.clone());
        protected.extend(
            self.db(&job.server, move |s| {
                s.newest_snapshot_per_disk(&app, &server)
            })
            .await?,
        );

        for img in old {
            ami::deregister(&self.ec2, &img.ami_id).await.map_err(aws)?;
            tracing::info!(
                "server {}: retention deregistered AMI {} ({})",
                job.server,
                img.ami_id,
                img.name
            );
            let id = img.ami_id.clone();
            self.db(&job.server, move |s| s.mark_ami_deregistered(&id))
                .await?;
            report.deregistered_amis.push(img.ami_id.clone());
            for snap in tags::snapshot_ids(&img.tags) {
                if protected.contains(&snap) {
                    continue;
                }
                snapshot::delete(&self.ec2, &snap).await.map_err(aws)?;
                let sid = snap.clone();
                self.db(&job.server, move |s| s.mark_snapshot_deleted(&sid))
                    .await?;
                report.deleted_snapshots.push(snap);
            }
        }
        Ok(())
    }
}

struct NewSnapshotOwned {
    snapshot_id: String,
    run_id: String,
    app: String,
    server: String,
    disk: String,
    parent_snapshot_id: Option<String>,
    volume_size_gib: u64,
    encrypted: bool,
    kms_key_arn: Option<String>,
}

fn unusable(job: &ServerJob, disk: &DiskJob, why: &str) -> ReplicationError {
    ReplicationError::Aws {
        server: job.server.clone(),
        disk: Some(disk.name.clone()),
        block: None,
        failure: Box::new(AwsFailure {
            operation: "resume",
            code: "ValidationException".into(),
            message: why.to_string(),
        }),
    }
}

fn reused(rec: SnapshotRecord) -> DiskDone {
    DiskDone {
        report: SnapshotReport {
            disk: rec.disk,
            snapshot_id: rec.snapshot_id,
            parent_snapshot_id: rec.parent_snapshot_id,
            blocks_total: rec.blocks_total,
            blocks_scanned: 0,
            blocks_uploaded: 0,
            bytes_uploaded: 0,
            seconds: 0.0,
            blocks_changed: rec.blocks_changed,
            blocks_resumed: rec.blocks_changed,
            volume_size_gib: rec.volume_size_gib,
            reused: true,
        },
    }
}

fn validate(job: &ServerJob) -> Result<(), ReplicationError> {
    let invalid = |message: String| ReplicationError::Invalid {
        server: job.server.clone(),
        disk: None,
        message,
    };
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

/// Tags on snapshots and AMIs: the application's own, then rehost's.
fn common_tags(job: &ServerJob, run_id: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = job
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("rehost:"))
        .cloned()
        .collect();
    t.extend([
        (tags::APP.into(), job.app.clone()),
        (tags::GROUP.into(), job.group.clone()),
        (tags::SERVER.into(), job.server.clone()),
        (tags::RUN_ID.into(), run_id.to_string()),
        (
            tags::LICENSE_TYPE.into(),
            job.license_type.as_tag().to_string(),
        ),
    ]);
    t
}

/// StartSnapshot's idempotency token: the same for a retried start of the same snapshot, new
/// after a snapshot was given up.
pub fn client_token(app: &str, server: &str, disk: &str, run_id: &str, attempt: u32) -> String {
    let mut h = Sha256::new();
    for part in [app, server, disk, run_id, &attempt.to_string()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `rehost-<app>-<server>-<UTC timestamp>`, with characters EC2 refuses in AMI names replaced.
pub fn ami_name(app: &str, server: &str, at: OffsetDateTime) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(48)
            .collect()
    };
    let at = at.to_offset(time::UtcOffset::UTC);
    // Milliseconds keep two runs of one server in the same second apart.
    let stamp = format!(
        "{}.{:03}Z",
        &crate::state::compact_utc(at).trim_end_matches('Z'),
        at.millisecond()
    );
    format!("rehost-{}-{}-{stamp}", clean(app), clean(server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ami_names() {
        assert_eq!(
            ami_name("shop", "web-1", datetime!(2025-03-01 12:34:56.789 UTC)),
            "rehost-shop-web-1-20250301T123456.789Z"
        );
        assert!(ami_name("a:b", "c", datetime!(2025-03-01 0:00 UTC)).starts_with("rehost-a-b-c-"));
    }

    #[test]
    fn client_tokens_are_deterministic() {
        let a = client_token("shop", "web", "disk0", "r1", 0);
        assert_eq!(a, client_token("shop", "web", "disk0", "r1", 0));
        assert_ne!(a, client_token("shop", "web", "disk0", "r1", 1));
        assert_ne!(a, client_token("shop", "web", "disk1", "r1", 0));
        assert_eq!(a.len(), 64);
    }
}
