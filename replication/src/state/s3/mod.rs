//! The state on S3, shared by a team (`--state s3://BUCKET/PREFIX`): one small object per
//! server (`doc`), manifests as their own compressed objects, accepted blocks as a journal of
//! segments (`journal`), the application lock and worker leases as lease objects (`lease`),
//! all in a bucket checked to be the caller's own, private, encrypted and versioned
//! (`bucket`). Every change is a conditional write (`objects`): read the object and its ETag,
//! apply the change, write with `If-Match` (or `If-None-Match: *` for a new object); a lost
//! race re-reads and re-applies, a bounded number of times with jittered backoff. Each update
//! carries an id recorded in the object, so one whose answer was lost (the SDK retried a write
//! that had landed) is recognised rather than applied twice.
//!
//! Files: this one holds the store, its opening and the `StateStore` implementation, which
//! hands each method to the file of its records: `server_object` (cached reads and
//! conditional updates of the server objects), `runs`, `snapshots`, `manifests`, `blocks`
//! (accepted blocks of open snapshots), `claims` (what is held with leases), `transfer`
//! (export/import) and `setup` (`rehost state init`, the marker).

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::{
    AcceptedRisk, AccountBinding, AmiRecord, AppLockGuard, DueFacts, ImportOutcome,
    InspectionRecord, LaunchRecord, NewSnapshot, RunPhase, RunRecord, ServerClaim, ServerDump,
    ServerKey, SnapshotCounts, SnapshotRecord, StateError, StateStore, WrittenBlock,
};
use crate::aws::AwsFailure;
use crate::manifest::Manifest;

mod account;
mod blocks;
mod bucket;
mod claims;
mod doc;
mod guest;
mod journal;
mod launches;
mod lease;
mod manifests;
mod objects;
mod runs;
mod server_object;
mod setup;
mod snapshots;
mod transfer;

pub use crate::buckets::BucketEncryption;
pub use bucket::NONCURRENT_DAYS;
pub use doc::RUNS_KEPT;
pub use lease::{CLOCK_SLACK, LeaseBody, this_holder};
pub use setup::InitReport;

use doc::{Corrupt, ServerDoc};
use objects::{Objects, Put, layout};
use server_object::changed;
use setup::check_marker;

/// The version of the state layout this rehost reads and writes (the marker object's).
pub const LAYOUT_VERSION: u32 = 1;
/// Conditional-write attempts of one update before giving up.
const UPDATE_ATTEMPTS: u32 = 10;
/// First backoff after a lost race (doubling, capped, full jitter).
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
const JSON: &str = "application/json";

#[derive(Debug, Clone)]
pub struct S3Options {
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease_ttl: Duration,
    /// How long the block recorder gathers accepted blocks into one journal segment (a batch
    /// also ends at 512 blocks, `recorder::MAX_BATCH`).
    pub record_interval: Duration,
    /// Objects read at once by application-wide reads (`latest_amis`, `servers`).
    pub fanout: usize,
}

/// The lease time to live from `REHOST_LEASE_SECONDS` (whole seconds, at least 1), else 60 s:
/// how long a dead holder keeps a server (or the application lock) from the others.
pub fn lease_ttl_from_env() -> Duration {
    const DEFAULT: Duration = Duration::from_secs(60);
    match std::env::var("REHOST_LEASE_SECONDS") {
        Err(_) => DEFAULT,
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(secs) if secs >= 1 => Duration::from_secs(secs),
            _ => {
                tracing::warn!(
                    "REHOST_LEASE_SECONDS={text:?} is not a whole number of seconds (at least 1): using 60"
                );
                DEFAULT
            }
        },
    }
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            lease_ttl: Duration::from_secs(60),
            // Journal segments were most of an increment's S3 requests at one a second (about
            // 130 of 154): ten seconds cut them ten-fold, and a killed run resends at most ten
            // seconds of blocks, never more than a batch (512 blocks, 256 MiB).
            record_interval: Duration::from_secs(10),
            fanout: 32,
        }
    }
}

/// The state in a bucket. Cheap to clone; clones share a cache of the server objects this
/// handle last read or wrote (only ever a starting point: a write that finds the object
/// changed re-reads it).
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    objects: Objects,
    opts: S3Options,
    /// Server objects as last seen: ETag and content.
    cache: Mutex<HashMap<ServerKey, (String, ServerDoc)>>,
    /// The next journal segment number of each open snapshot this handle appends to.
    journals: Mutex<HashMap<(ServerKey, String), u64>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.inner.objects.location)
            .finish()
    }
}

/// An S3 client for the state: path-style addressing when an endpoint is set (emulators and
/// other S3-compatible endpoints rarely serve bucket names as host names).
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// The caller's account id.
pub async fn account_id(sdk: &SdkConfig) -> Result<String, StateError> {
    let out = aws_sdk_sts::Client::new(sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| StateError::S3 {
            location: "sts".into(),
            failure: AwsFailure::from_sdk("sts:GetCallerIdentity", &e),
        })?;
    out.account()
        .map(str::to_string)
        .ok_or_else(|| StateError::S3 {
            location: "sts".into(),
            failure: AwsFailure {
                operation: "sts:GetCallerIdentity",
                code: "NoAccount".into(),
                message: "the answer names no account".into(),
            },
        })
}

fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Full jitter: a random wait up to base · 2^attempt, capped.
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_CAP);
    Duration::from_millis(fastrand::u64(0..=ceiling.as_millis() as u64))
}

impl S3Store {
    /// Opens the state at `s3://bucket/prefix`: the bucket must be the caller's own and
    /// protected, and `rehost state init` must have set the state up there.
    pub async fn open(
        sdk: &SdkConfig,
        bucket: &str,
        prefix: &str,
        opts: S3Options,
    ) -> Result<S3Store, StateError> {
        let s3 = s3_client(sdk);
        let owner = account_id(sdk).await?;
        let (problems, _) = bucket::shortcomings(&s3, bucket, &owner).await?;
        if !problems.is_empty() {
            return Err(StateError::Bucket {
                bucket: bucket.to_string(),
                problems,
            });
        }
        let objects = Objects::new(s3, bucket, prefix, &owner);
        match objects.get(layout::MARKER).await? {
            None => {
                return Err(StateError::NotInitialized {
                    location: objects.location.clone(),
                });
            }
            Some(found) => check_marker(&objects, &found.body)?,
        }
        Ok(S3Store {
            inner: Arc::new(Inner {
                objects,
                opts,
                cache: Mutex::new(HashMap::new()),
                journals: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn objects(&self) -> &Objects {
        &self.inner.objects
    }

    fn corrupt(&self, key: &ServerKey, c: Corrupt) -> StateError {
        let _ = key;
        StateError::Corrupt {
            location: self.objects().location.clone(),
            table: c.table,
            id: c.id,
            what: c.what,
        }
    }
}

#[async_trait]
impl StateStore for S3Store {
    fn location(&self) -> String {
        self.objects().location.clone()
    }

    async fn lock_app(&self, app: &str) -> Result<Box<dyn AppLockGuard>, StateError> {
        claims::lock_app(self, app).await
    }

    async fn claim_server(
        &self,
        server: &ServerKey,
        holder: &str,
    ) -> Result<ServerClaim, StateError> {
        claims::claim_server(self, server, holder).await
    }

    async fn begin_run(
        &self,
        server: &ServerKey,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(RunRecord, bool), StateError> {
        runs::begin_run(self, server, group, now).await
    }

    async fn set_phase(
        &self,
        server: &ServerKey,
        run_id: &str,
        phase: RunPhase,
    ) -> Result<(), StateError> {
        runs::set_phase(self, server, run_id, phase).await
    }

    async fn ami_name_for(
        &self,
        server: &ServerKey,
        run_id: &str,
        proposed: &str,
    ) -> Result<String, StateError> {
        runs::ami_name_for(self, server, run_id, proposed).await
    }

    async fn fail_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        runs::fail_run(self, server, run_id, error, timings, now).await
    }

    async fn complete_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        runs::complete_run(self, server, run_id, ami, timings, now).await
    }

    async fn run(&self, server: &ServerKey, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        runs::run(self, server, run_id).await
    }

    async fn server_history(
        &self,
        server: &ServerKey,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        runs::server_history(self, server, limit).await
    }

    async fn last_times(
        &self,
        server: &ServerKey,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
        runs::last_times(self, server).await
    }

    async fn due_facts(&self, server: &ServerKey) -> Result<DueFacts, StateError> {
        runs::due_facts(self, server).await
    }

    async fn latest_amis(&self, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError> {
        runs::latest_amis(self, app).await
    }

    async fn recorded_amis(&self, server: &ServerKey) -> Result<Vec<AmiRecord>, StateError> {
        runs::recorded_amis(self, server).await
    }

    async fn bind_account(
        &self,
        app: &str,
        proposed: &AccountBinding,
    ) -> Result<AccountBinding, StateError> {
        account::bind(self.objects(), app, proposed, OffsetDateTime::now_utc()).await
    }

    async fn account_binding(&self, app: &str) -> Result<Option<AccountBinding>, StateError> {
        account::binding(self.objects(), app).await
    }

    async fn record_launch(&self, app: &str, launch: &LaunchRecord) -> Result<(), StateError> {
        launches::record(self.objects(), app, launch).await
    }

    async fn launches(&self, app: &str, limit: usize) -> Result<Vec<LaunchRecord>, StateError> {
        launches::list(self.objects(), app, limit).await
    }

    async fn store_inspection(
        &self,
        server: &ServerKey,
        record: &InspectionRecord,
    ) -> Result<(), StateError> {
        guest::store_inspection(self.objects(), server, record).await
    }

    async fn inspection(&self, server: &ServerKey) -> Result<Option<InspectionRecord>, StateError> {
        guest::inspection(self.objects(), server).await
    }

    async fn record_accepted_risk(
        &self,
        server: &ServerKey,
        risk: &AcceptedRisk,
    ) -> Result<(), StateError> {
        guest::record_accepted_risk(self.objects(), server, risk).await
    }

    async fn accepted_risks(&self, server: &ServerKey) -> Result<Vec<AcceptedRisk>, StateError> {
        guest::accepted_risks(self.objects(), server).await
    }

    async fn mark_ami_deregistered(
        &self,
        server: &ServerKey,
        ami_id: &str,
    ) -> Result<(), StateError> {
        runs::mark_ami_deregistered(self, server, ami_id).await
    }

    async fn insert_snapshot(
        &self,
        server: &ServerKey,
        snapshot: &NewSnapshot,
        now: OffsetDateTime,
    ) -> Result<SnapshotRecord, StateError> {
        snapshots::insert_snapshot(self, server, snapshot, now).await
    }

    async fn snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        snapshots::snapshot(self, server, snapshot_id).await
    }

    async fn run_snapshot(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        snapshots::run_snapshot(self, server, run_id, disk).await
    }

    async fn abandoned_count(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<u32, StateError> {
        snapshots::abandoned_count(self, server, run_id, disk).await
    }

    async fn latest_completed_snapshot(
        &self,
        server: &ServerKey,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        snapshots::latest_completed_snapshot(self, server, disk).await
    }

    async fn newest_snapshot_per_disk(
        &self,
        server: &ServerKey,
    ) -> Result<Vec<String>, StateError> {
        snapshots::newest_snapshot_per_disk(self, server).await
    }

    async fn abandoned_snapshots(&self, server: &ServerKey) -> Result<Vec<String>, StateError> {
        snapshots::abandoned_snapshots(self, server).await
    }

    async fn abandon_snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        snapshots::abandon_snapshot(self, server, snapshot_id).await
    }

    async fn mark_snapshot_deleted(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        snapshots::mark_snapshot_deleted(self, server, snapshot_id).await
    }

    async fn add_partial_counts(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        snapshots::add_partial_counts(self, server, snapshot_id, counts).await
    }

    async fn mark_completing(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        snapshots::mark_completing(self, server, snapshot_id, manifest, counts).await
    }

    async fn mark_snapshot_completed(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        snapshots::mark_snapshot_completed(self, server, snapshot_id, now).await
    }

    async fn snapshot_manifest(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<Manifest>, StateError> {
        snapshots::snapshot_manifest(self, server, snapshot_id).await
    }

    async fn record_written(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        blocks: &[WrittenBlock],
    ) -> Result<(), StateError> {
        blocks::record_written(self, server, snapshot_id, blocks).await
    }

    async fn written_blocks(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError> {
        blocks::written_blocks(self, server, snapshot_id).await
    }

    fn record_interval(&self) -> Duration {
        self.inner.opts.record_interval
    }

    async fn servers(&self) -> Result<Vec<ServerKey>, StateError> {
        transfer::servers(self).await
    }

    async fn export_server(&self, server: &ServerKey) -> Result<ServerDump, StateError> {
        transfer::export_server(self, server).await
    }

    async fn import_server(&self, dump: &ServerDump) -> Result<ImportOutcome, StateError> {
        transfer::import_server(self, dump).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_CAP);
            assert!(d <= BACKOFF_BASE * (1 << attempt.min(16)));
        }
    }
}
