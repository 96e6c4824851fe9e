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
//! Size: ~1,100 lines because two branches grew it at once (the S3 store, then inspections); a
//! split along its seams (types and open/init, cached access and conditional updates, the
//! `StateStore` implementation) is on branch `estates-workers` (fee2fcd) and lands with the
//! workers.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use time::OffsetDateTime;

use super::{
    AcceptedRisk, AccountBinding, AmiRecord, AppLockGuard, ImportOutcome, InspectionRecord,
    LaunchRecord, NewSnapshot, RunPhase, RunRecord, ServerDump, ServerKey, SnapshotCounts,
    SnapshotRecord, StateError, StateStore, WrittenBlock,
};
use crate::aws::AwsFailure;
use crate::manifest::Manifest;

mod account;
mod bucket;
mod doc;
mod guest;
mod journal;
mod launches;
mod lease;
mod objects;

pub use crate::buckets::BucketEncryption;
pub use bucket::NONCURRENT_DAYS;
pub use doc::RUNS_KEPT;
pub use lease::{CLOCK_SLACK, LeaseBody};

use doc::{Corrupt, ServerDoc};
use objects::{Objects, Put, layout};

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
    /// How long the block recorder gathers accepted blocks into one journal segment.
    pub record_interval: Duration,
    /// Objects read at once by application-wide reads (`latest_amis`, `servers`).
    pub fanout: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            lease_ttl: Duration::from_secs(60),
            record_interval: Duration::from_secs(1),
            fanout: 32,
        }
    }
}

/// What `rehost state init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub location: String,
    pub account: String,
    pub bucket_created: bool,
    pub encryption: BucketEncryption,
    /// The state was new here (else it was there already: init changes nothing).
    pub state_created: bool,
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

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    version: u32,
    created_at: String,
    created_by: String,
}

const MARKER_FORMAT: &str = "rehost-state";

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

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Decompresses at most `limit` bytes (a manifest cannot be larger than its snapshot allows).
fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("not gzip: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(out)
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

    /// Sets up the state at `s3://bucket/prefix`: creates the bucket (private, encrypted with
    /// `encryption`, versioned, old versions expiring) when the caller has none of that name,
    /// or checks the one it has; then writes the state's marker. Running it again changes
    /// nothing.
    pub async fn init(
        sdk: &SdkConfig,
        bucket: &str,
        prefix: &str,
        encryption: BucketEncryption,
    ) -> Result<InitReport, StateError> {
        let s3 = s3_client(sdk);
        let owner = account_id(sdk).await?;
        let region = sdk.region().map_or("us-east-1", |r| r.as_ref()).to_string();
        let mut bucket_created = false;
        let encryption = if bucket::is_own(&s3, bucket).await? {
            let (problems, found) = bucket::shortcomings(&s3, bucket, &owner).await?;
            if !problems.is_empty() {
                return Err(StateError::Bucket {
                    bucket: bucket.to_string(),
                    problems,
                });
            }
            found.unwrap_or(encryption)
        } else {
            if !bucket::create(&s3, bucket, &region).await? || !bucket::is_own(&s3, bucket).await? {
                return Err(StateError::Bucket {
                    bucket: bucket.to_string(),
                    problems: vec![
                        "the name belongs to another account (bucket names are global): choose another"
                            .into(),
                    ],
                });
            }
            bucket::protect(&s3, bucket, &owner, &encryption).await?;
            bucket_created = true;
            encryption
        };
        let objects = Objects::new(s3, bucket, prefix, &owner);
        let marker = Marker {
            format: MARKER_FORMAT.into(),
            version: LAYOUT_VERSION,
            created_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            created_by: format!("rehost {}", env!("CARGO_PKG_VERSION")),
        };
        let body = serde_json::to_vec_pretty(&marker).unwrap_or_default();
        let state_created = match objects.create(layout::MARKER, body, JSON).await? {
            Put::Written(_) => true,
            Put::Conflict => {
                let found = objects.get(layout::MARKER).await?.ok_or_else(|| {
                    StateError::NotInitialized {
                        location: objects.location.clone(),
                    }
                })?;
                check_marker(&objects, &found.body)?;
                false
            }
        };
        Ok(InitReport {
            location: objects.location.clone(),
            account: owner,
            bucket_created,
            encryption,
            state_created,
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

    fn remember(&self, key: &ServerKey, etag: String, doc: ServerDoc) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), (etag, doc));
    }

    fn cached(&self, key: &ServerKey) -> Option<(String, ServerDoc)> {
        let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).cloned()
    }

    /// Reads a server's object: its ETag (`None` when there is none yet) and content.
    async fn fetch(&self, key: &ServerKey) -> Result<(Option<String>, ServerDoc), StateError> {
        let rel = layout::server(key);
        let Some(found) = self.objects().get(&rel).await? else {
            return Ok((None, ServerDoc::new(key)));
        };
        let doc = self.parse(key, &rel, &found.body)?;
        self.remember(key, found.etag.clone(), doc.clone());
        Ok((Some(found.etag), doc))
    }

    fn parse(&self, key: &ServerKey, rel: &str, body: &[u8]) -> Result<ServerDoc, StateError> {
        let corrupt = |what: String| StateError::Corrupt {
            location: self.objects().location.clone(),
            table: "servers",
            id: self.objects().url(rel),
            what,
        };
        let doc: ServerDoc = serde_json::from_slice(body)
            .map_err(|e| corrupt(format!("not a server record: {e}")))?;
        if doc.format > doc::FORMAT {
            return Err(corrupt(format!(
                "format {} was written by a newer rehost (this one reads {}): upgrade rehost",
                doc.format,
                doc::FORMAT
            )));
        }
        if doc.app != key.app || doc.server != key.server {
            return Err(corrupt(format!(
                "holds {}/{}, not {key}",
                doc.app, doc.server
            )));
        }
        Ok(doc)
    }

    /// The current content of a server's object (fresh from S3).
    async fn read(&self, key: &ServerKey) -> Result<ServerDoc, StateError> {
        Ok(self.fetch(key).await?.1)
    }

    /// Applies `change` to a server's object with a conditional write, re-reading and
    /// re-applying after a lost race. `change` returns its result and whether it changed
    /// anything (nothing written when not).
    async fn update<T>(
        &self,
        key: &ServerKey,
        mut change: impl FnMut(&mut ServerDoc) -> Result<(T, bool), Corrupt>,
    ) -> Result<T, StateError> {
        let rel = layout::server(key);
        let op = new_id();
        let mut base = self.cached(key).map(|(etag, doc)| (Some(etag), doc, true));
        let mut sent: Option<T> = None;
        for attempt in 0..UPDATE_ATTEMPTS {
            let (etag, doc, from_cache) = match base.take() {
                Some(b) => b,
                None => {
                    let (etag, doc) = self.fetch(key).await?;
                    (etag, doc, false)
                }
            };
            if doc.has_op(&op)
                && let Some(value) = sent.take()
            {
                // An earlier attempt landed; its answer was lost.
                return Ok(value);
            }
            let mut next = doc.clone();
            let (value, changed) = change(&mut next).map_err(|c| self.corrupt(key, c))?;
            if !changed {
                if from_cache {
                    continue; // the cache may be behind: decide on the object itself
                }
                return Ok(value);
            }
            next.note_op(&op);
            let orphans = next.prune().map_err(|c| self.corrupt(key, c))?;
            let body = serde_json::to_vec(&next).unwrap_or_default();
            let put = match &etag {
                Some(etag) => self.objects().replace(&rel, body, JSON, etag).await?,
                None => self.objects().create(&rel, body, JSON).await?,
            };
            match put {
                Put::Written(etag) => {
                    self.remember(key, etag, next);
                    if !orphans.is_empty()
                        && let Err(e) = self.objects().delete(&orphans).await
                    {
                        tracing::warn!("cannot delete manifests of pruned runs of {key}: {e}");
                    }
                    return Ok(value);
                }
                Put::Conflict => {
                    sent = Some(value);
                    if !from_cache {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
        }
        Err(StateError::Contention {
            location: self.objects().location.clone(),
            key: self.objects().url(&rel),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// Every server object of an application (relative keys).
    async fn server_objects(&self, app: &str) -> Result<Vec<(ServerKey, String)>, StateError> {
        let dir = layout::servers(app);
        Ok(self
            .objects()
            .list(&dir, true)
            .await?
            .keys
            .into_iter()
            .filter_map(|rel| {
                let name = rel.strip_prefix(&dir)?.strip_suffix(".json")?;
                let server = layout::decode(name)?;
                Some((ServerKey::new(app, server), rel))
            })
            .collect())
    }

    /// The objects of many servers, read in parallel (bounded); servers without one are left out.
    async fn read_many(&self, keys: Vec<ServerKey>) -> Result<Vec<ServerDoc>, StateError> {
        stream::iter(keys)
            .map(|key| async move { self.fetch(&key).await.map(|(etag, doc)| etag.map(|_| doc)) })
            .buffered(self.inner.opts.fanout.max(1))
            .try_filter_map(|doc| async move { Ok(doc) })
            .try_collect()
            .await
    }

    async fn manifest_at(&self, rel: &str, block_count: u64) -> Result<Manifest, StateError> {
        let corrupt = |what: String| StateError::Corrupt {
            location: self.objects().location.clone(),
            table: "manifests",
            id: self.objects().url(rel),
            what,
        };
        let found = self
            .objects()
            .get(rel)
            .await?
            .ok_or_else(|| corrupt("the manifest object is missing".into()))?;
        // Header plus 16 bytes a block, for up to twice the snapshot's blocks (a disk that
        // shrank keeps its parent's length) and at least 1 Mi blocks.
        let limit = 20 + 16 * block_count.saturating_mul(2).max(1 << 20);
        let bytes = gunzip(&found.body, limit).map_err(&corrupt)?;
        Manifest::decode(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    async fn put_manifest(
        &self,
        key: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
    ) -> Result<String, StateError> {
        let body = gzip(&manifest.encode());
        loop {
            let rel = layout::manifest(key, snapshot_id, &new_id());
            if let Put::Written(_) = self
                .objects()
                .create(&rel, body.clone(), "application/gzip")
                .await?
            {
                return Ok(rel);
            }
        }
    }

    fn next_segment(&self, key: &ServerKey, snapshot_id: &str) -> Option<u64> {
        let journals = self
            .inner
            .journals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        journals
            .get(&(key.clone(), snapshot_id.to_string()))
            .copied()
    }

    fn set_next_segment(&self, key: &ServerKey, snapshot_id: &str, next: Option<u64>) {
        let mut journals = self
            .inner
            .journals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let k = (key.clone(), snapshot_id.to_string());
        match next {
            Some(n) => journals.insert(k, n),
            None => journals.remove(&k),
        };
    }

    async fn drop_journal(&self, key: &ServerKey, snapshot_id: &str) {
        self.set_next_segment(key, snapshot_id, None);
        journal::drop_all(self.objects(), &layout::journal(key, snapshot_id)).await;
    }

    /// The accepted blocks of a snapshot whose journal still counts (open or completing).
    async fn journal_of(
        &self,
        key: &ServerKey,
        doc: &ServerDoc,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError> {
        if !doc
            .snap(snapshot_id)
            .is_some_and(doc::SnapDoc::keeps_journal)
        {
            return Ok(Vec::new());
        }
        let (blocks, next) =
            journal::read(self.objects(), &layout::journal(key, snapshot_id)).await?;
        if self.next_segment(key, snapshot_id).is_none() {
            self.set_next_segment(key, snapshot_id, Some(next));
        }
        Ok(blocks)
    }
}

fn check_marker(objects: &Objects, body: &[u8]) -> Result<(), StateError> {
    let corrupt = |what: String| StateError::Corrupt {
        location: objects.location.clone(),
        table: "marker",
        id: objects.url(layout::MARKER),
        what,
    };
    let marker: Marker = serde_json::from_slice(body)
        .map_err(|e| corrupt(format!("not a rehost state marker: {e}")))?;
    if marker.format != MARKER_FORMAT {
        return Err(corrupt(format!(
            "format `{}` is not {MARKER_FORMAT}",
            marker.format
        )));
    }
    if marker.version > LAYOUT_VERSION {
        return Err(corrupt(format!(
            "layout version {} was written by a newer rehost (this one knows {LAYOUT_VERSION}): upgrade rehost",
            marker.version
        )));
    }
    Ok(())
}

/// Maps a pure change's `Option` result (None: the record does not exist) to "changed".
fn changed(done: bool) -> Result<((), bool), Corrupt> {
    Ok(((), done))
}

#[async_trait]
impl StateStore for S3Store {
    fn location(&self) -> String {
        self.objects().location.clone()
    }

    async fn lock_app(&self, app: &str) -> Result<Box<dyn AppLockGuard>, StateError> {
        let rel = layout::lock(app);
        let ttl = self.inner.opts.lease_ttl;
        match lease::claim(self.objects(), &rel, &lease::this_holder(), ttl).await? {
            lease::Claim::Won {
                etag,
                body,
                took_over,
            } => {
                if let Some(old) = took_over {
                    tracing::warn!(
                        "took over the lock of application {app}: its holder ({}) stopped renewing it",
                        old.describe()
                    );
                }
                Ok(Box::new(lease::HeldLease::start(
                    self.objects().clone(),
                    rel,
                    app.to_string(),
                    body,
                    etag,
                    ttl,
                )))
            }
            lease::Claim::Held(body) => Err(StateError::Locked {
                app: app.to_string(),
                holder: body.describe(),
                location: format!("lease {}", self.objects().url(&rel)),
            }),
        }
    }

    async fn begin_run(
        &self,
        server: &ServerKey,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(RunRecord, bool), StateError> {
        let (run_id, resumed) = self
            .update(server, |doc| Ok((doc.begin_run(group, now)?, true)))
            .await?;
        let doc = self.cached(server).map(|(_, d)| d).unwrap_or_default();
        let run = match doc.run(&run_id).map_err(|c| self.corrupt(server, c))? {
            Some(run) => run,
            None => self
                .read(server)
                .await?
                .run(&run_id)
                .map_err(|c| self.corrupt(server, c))?
                .ok_or_else(|| StateError::Corrupt {
                    location: self.location(),
                    table: "runs",
                    id: run_id.clone(),
                    what: "vanished right after it was recorded".into(),
                })?,
        };
        Ok((run, resumed))
    }

    async fn set_phase(
        &self,
        server: &ServerKey,
        run_id: &str,
        phase: RunPhase,
    ) -> Result<(), StateError> {
        self.update(server, |doc| changed(doc.set_phase(run_id, phase)))
            .await
    }

    async fn ami_name_for(
        &self,
        server: &ServerKey,
        run_id: &str,
        proposed: &str,
    ) -> Result<String, StateError> {
        let name = self
            .update(server, |doc| {
                Ok(match doc.ami_name_for(run_id, proposed) {
                    Some((name, changed)) => (Some(name), changed),
                    None => (None, false),
                })
            })
            .await?;
        name.ok_or_else(|| StateError::Corrupt {
            location: self.location(),
            table: "runs",
            id: run_id.to_string(),
            what: format!("no such run of {server} to name its AMI"),
        })
    }

    async fn fail_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        self.update(server, |doc| {
            changed(doc.fail_run(run_id, error, timings, now))
        })
        .await
    }

    async fn complete_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        self.update(server, |doc| {
            changed(doc.complete_run(run_id, ami, timings, now))
        })
        .await
    }

    async fn run(&self, server: &ServerKey, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        self.read(server)
            .await?
            .run(run_id)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn server_history(
        &self,
        server: &ServerKey,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        self.read(server)
            .await?
            .history(limit)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn last_times(
        &self,
        server: &ServerKey,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
        self.read(server)
            .await?
            .last_times()
            .map_err(|c| self.corrupt(server, c))
    }

    async fn latest_amis(&self, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError> {
        let keys = self
            .server_objects(app)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut out = BTreeMap::new();
        for doc in self.read_many(keys).await? {
            let key = ServerKey::new(&doc.app, &doc.server);
            if let Some(ami) = doc.latest_ami().map_err(|c| self.corrupt(&key, c))? {
                out.insert(doc.server.clone(), ami);
            }
        }
        Ok(out)
    }

    async fn recorded_amis(&self, server: &ServerKey) -> Result<Vec<AmiRecord>, StateError> {
        self.read(server)
            .await?
            .recorded_amis()
            .map_err(|c| self.corrupt(server, c))
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
        self.update(server, |doc| changed(doc.mark_ami_deregistered(ami_id)))
            .await
    }

    async fn insert_snapshot(
        &self,
        server: &ServerKey,
        snapshot: &NewSnapshot,
        now: OffsetDateTime,
    ) -> Result<SnapshotRecord, StateError> {
        let record = self
            .update(server, |doc| {
                let inserted = doc.insert_snapshot(snapshot, now);
                Ok((doc.snapshot(&snapshot.snapshot_id)?, inserted))
            })
            .await?;
        record.ok_or_else(|| StateError::Corrupt {
            location: self.location(),
            table: "snapshots",
            id: snapshot.snapshot_id.clone(),
            what: format!("not recorded for {server}"),
        })
    }

    async fn snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        self.read(server)
            .await?
            .snapshot(snapshot_id)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn run_snapshot(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        self.read(server)
            .await?
            .run_snapshot(run_id, disk)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn abandoned_count(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<u32, StateError> {
        self.read(server)
            .await?
            .abandoned_count(run_id, disk)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn latest_completed_snapshot(
        &self,
        server: &ServerKey,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        self.read(server)
            .await?
            .latest_completed(disk)
            .map_err(|c| self.corrupt(server, c))
    }

    async fn newest_snapshot_per_disk(
        &self,
        server: &ServerKey,
    ) -> Result<Vec<String>, StateError> {
        self.read(server)
            .await?
            .newest_per_disk()
            .map_err(|c| self.corrupt(server, c))
    }

    async fn abandoned_snapshots(&self, server: &ServerKey) -> Result<Vec<String>, StateError> {
        self.read(server)
            .await?
            .abandoned()
            .map_err(|c| self.corrupt(server, c))
    }

    async fn abandon_snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        let done = self
            .update(server, |doc| {
                let done = doc.abandon(snapshot_id);
                Ok((done, done))
            })
            .await?;
        if done {
            self.drop_journal(server, snapshot_id).await;
        }
        Ok(())
    }

    async fn mark_snapshot_deleted(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        self.update(server, |doc| changed(doc.mark_deleted(snapshot_id)))
            .await
    }

    async fn add_partial_counts(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        self.update(server, |doc| {
            let done = doc.add_partial_counts(snapshot_id, counts)?;
            Ok(((), done))
        })
        .await
    }

    async fn mark_completing(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        // The manifest first, under a key of its own; the record then points to it in the
        // same write that marks the snapshot completing.
        let rel = self.put_manifest(server, snapshot_id, manifest).await?;
        let outcome = self
            .update(server, |doc| {
                let replaced = doc.mark_completing(snapshot_id, &rel, counts);
                let changed = replaced.is_some();
                Ok((replaced, changed))
            })
            .await;
        let stale = match &outcome {
            Ok(Some(Some(old))) => vec![old.clone()],
            Ok(Some(None)) => Vec::new(),
            // No such snapshot, or the update failed: the new manifest is not referenced.
            Ok(None) | Err(_) => vec![rel],
        };
        if !stale.is_empty()
            && let Err(e) = self.objects().delete(&stale).await
        {
            tracing::warn!("cannot delete an unused manifest of {server}: {e}");
        }
        outcome.map(|_| ())
    }

    async fn mark_snapshot_completed(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let done = self
            .update(server, |doc| {
                let done = doc.mark_completed(snapshot_id, now)?;
                Ok((done, done))
            })
            .await?;
        if done {
            self.drop_journal(server, snapshot_id).await;
        }
        Ok(())
    }

    async fn snapshot_manifest(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<Manifest>, StateError> {
        let doc = self.read(server).await?;
        let Some(snap) = doc.snap(snapshot_id) else {
            return Ok(None);
        };
        match &snap.manifest {
            None => Ok(None),
            Some(rel) => Ok(Some(self.manifest_at(rel, snap.block_count).await?)),
        }
    }

    async fn record_written(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        blocks: &[WrittenBlock],
    ) -> Result<(), StateError> {
        if blocks.is_empty() {
            return Ok(());
        }
        // Only for a snapshot of this server (as the last read or write of it showed, else as
        // S3 shows it now).
        let known = |doc: &ServerDoc| doc.snap(snapshot_id).is_some();
        let ours = match self.cached(server) {
            Some((_, doc)) if known(&doc) => true,
            _ => known(&self.read(server).await?),
        };
        if !ours {
            return Ok(());
        }
        let mut next = self.next_segment(server, snapshot_id);
        let appended = journal::append(
            self.objects(),
            &layout::journal(server, snapshot_id),
            &mut next,
            blocks,
        )
        .await;
        self.set_next_segment(server, snapshot_id, next);
        appended
    }

    async fn written_blocks(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError> {
        let doc = self.read(server).await?;
        self.journal_of(server, &doc, snapshot_id).await
    }

    fn record_interval(&self) -> Duration {
        self.inner.opts.record_interval
    }

    async fn servers(&self) -> Result<Vec<ServerKey>, StateError> {
        let apps = self.objects().list(&layout::apps(), true).await?.prefixes;
        let mut out = Vec::new();
        for app_dir in apps {
            let Some(app) = app_dir
                .strip_prefix(&layout::apps())
                .and_then(|a| a.strip_suffix('/'))
                .and_then(layout::decode)
            else {
                continue;
            };
            out.extend(self.server_objects(&app).await?.into_iter().map(|(k, _)| k));
        }
        out.sort();
        Ok(out)
    }

    async fn export_server(&self, server: &ServerKey) -> Result<ServerDump, StateError> {
        let (etag, doc) = self.fetch(server).await?;
        if etag.is_none() {
            return Ok(ServerDump::new(server.clone()));
        }
        let mut dump = doc.dump().map_err(|c| self.corrupt(server, c))?;
        for snap in &doc.snapshots {
            if let Some(rel) = &snap.manifest {
                let manifest = self.manifest_at(rel, snap.block_count).await?;
                dump.manifests.insert(snap.snapshot_id.clone(), manifest);
            }
            let written = self.journal_of(server, &doc, &snap.snapshot_id).await?;
            if !written.is_empty() {
                dump.written.insert(snap.snapshot_id.clone(), written);
            }
        }
        Ok(dump.normalized())
    }

    async fn import_server(&self, dump: &ServerDump) -> Result<ImportOutcome, StateError> {
        let key = &dump.key;
        let wanted = dump.clone().normalized();
        let differs = || StateError::Differs {
            location: self.location(),
            server: key.to_string(),
        };
        let existing = self.export_server(key).await?;
        if !existing.is_empty() {
            return if existing == wanted {
                Ok(ImportOutcome::Identical)
            } else {
                Err(differs())
            };
        }
        // Manifests and journals first; the server's object last, created only if still absent,
        // so a half-done import is invisible and simply done again.
        let mut manifests = HashMap::new();
        for (id, manifest) in &dump.manifests {
            manifests.insert(id.clone(), self.put_manifest(key, id, manifest).await?);
        }
        for (id, blocks) in &dump.written {
            let dir = layout::journal(key, id);
            journal::drop_all(self.objects(), &dir).await;
            journal::append(self.objects(), &dir, &mut Some(0), blocks).await?;
        }
        let doc = ServerDoc::from_dump(dump, |id| manifests.get(id).cloned());
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        match self
            .objects()
            .create(&layout::server(key), body, JSON)
            .await?
        {
            Put::Written(etag) => {
                self.remember(key, etag, doc);
                Ok(ImportOutcome::Created)
            }
            Put::Conflict => {
                let orphans: Vec<String> = manifests.into_values().collect();
                let _ = self.objects().delete(&orphans).await;
                if self.export_server(key).await? == wanted {
                    Ok(ImportOutcome::Identical)
                } else {
                    Err(differs())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_compress_and_a_bomb_is_refused() {
        let sparse = Manifest::with_len(200_000);
        let packed = gzip(&sparse.encode());
        assert!(
            packed.len() < 20_000,
            "{} bytes for a sparse 100 GiB disk",
            packed.len()
        );
        let limit = 20 + 16 * 200_000;
        assert_eq!(gunzip(&packed, limit).unwrap(), sparse.encode());
        assert!(
            gunzip(&packed, limit - 1)
                .unwrap_err()
                .contains("larger than")
        );
        assert!(gunzip(b"not gzip", 100).is_err());
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_CAP);
            assert!(d <= BACKOFF_BASE * (1 << attempt.min(16)));
        }
    }
}
