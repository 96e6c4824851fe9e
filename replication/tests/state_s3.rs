//! The state on S3, against the emulator: the whole contract suite (`state_contract`), and what
//! only S3 does: racing writers that never lose an update, a lost race re-read and re-applied,
//! an update whose answer was lost applied once, leases (in `s3_leases`: the application
//! lock and the server leases, refused, expired and taken over,
//! lost, raced), the bucket checks, `state init`, and the journal's compaction.

mod common;
mod s3_leases;
mod state_contract;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use rehost_replication::state::s3::{BucketEncryption, S3Options, S3Store};
use rehost_replication::state::{ServerKey, SnapshotCounts, StateError, StateStore};
use rehost_testkit::Moto;
use rehost_testkit::proxy::{Action, Proxy};
use state_contract::{Damage, Fixture, key, open_snapshot};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

const PREFIX: &str = "team/state";

fn unique_bucket() -> String {
    format!("rehost-state-test-{:012x}", fastrand::u64(..) >> 16)
}

fn s3(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    rehost_replication::state::s3::s3_client(sdk)
}

async fn moto_sdk(endpoint: &str) -> SdkConfig {
    common::sdk_config(endpoint, &common::fast_aws_options()).await
}

/// A state of its own in a bucket of its own, set up on first use.
struct S3Fixture {
    bucket: String,
    endpoint: String,
    opts: S3Options,
    sdk: OnceCell<SdkConfig>,
}

impl S3Fixture {
    fn new() -> S3Fixture {
        S3Fixture::with(&Moto::shared().endpoint(), S3Options::default())
    }

    fn with(endpoint: &str, opts: S3Options) -> S3Fixture {
        S3Fixture {
            bucket: unique_bucket(),
            endpoint: endpoint.to_string(),
            opts,
            sdk: OnceCell::new(),
        }
    }

    async fn sdk(&self) -> &SdkConfig {
        self.sdk
            .get_or_init(|| async {
                let sdk = moto_sdk(&self.endpoint).await;
                S3Store::init(&sdk, &self.bucket, PREFIX, BucketEncryption::S3Managed)
                    .await
                    .expect("state init");
                sdk
            })
            .await
    }

    async fn store(&self) -> S3Store {
        S3Store::open(self.sdk().await, &self.bucket, PREFIX, self.opts.clone())
            .await
            .expect("open the S3 state")
    }

    /// Rewrites every server object holding `id`, as `edit` says.
    async fn edit_servers(&self, id: &str, edit: impl Fn(&mut serde_json::Value)) {
        let client = s3(self.sdk().await);
        let listed = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{PREFIX}/apps/"))
            .send()
            .await
            .unwrap();
        let mut edited = 0;
        for key in listed.contents().iter().filter_map(|o| o.key()) {
            if !key.contains("/servers/") || !key.ends_with(".json") {
                continue;
            }
            let body = client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            if !String::from_utf8_lossy(&body).contains(id) {
                continue;
            }
            let mut doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
            edit(&mut doc);
            client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(serde_json::to_vec(&doc).unwrap().into())
                .send()
                .await
                .unwrap();
            edited += 1;
        }
        assert!(edited > 0, "no server object holds {id}");
    }
}

#[async_trait]
impl Fixture for S3Fixture {
    async fn open(&self) -> Arc<dyn StateStore> {
        Arc::new(self.store().await)
    }

    async fn damage(&self, damage: Damage<'_>) {
        let (list, id_field, id, field, text) = match damage {
            Damage::RunStatus { run_id, text } => ("runs", "run_id", run_id, "status", text),
            Damage::RunPhase { run_id, text } => ("runs", "run_id", run_id, "phase", text),
            Damage::SnapshotStatus { snapshot_id, text } => {
                ("snapshots", "snapshot_id", snapshot_id, "status", text)
            }
        };
        self.edit_servers(id, |doc| {
            for item in doc[list].as_array_mut().unwrap() {
                if item[id_field] == id {
                    item[field] = text.into();
                }
            }
        })
        .await;
    }

    async fn open_other(&self) -> Arc<dyn StateStore> {
        let sdk = self.sdk().await;
        S3Store::init(sdk, &self.bucket, "other", BucketEncryption::S3Managed)
            .await
            .unwrap();
        Arc::new(
            S3Store::open(sdk, &self.bucket, "other", self.opts.clone())
                .await
                .unwrap(),
        )
    }
}

state_contract::suite!(s3, crate::S3Fixture::new());

fn one_block() -> SnapshotCounts {
    SnapshotCounts {
        blocks_uploaded: 1,
        bytes_uploaded: 512 * 1024,
        ..Default::default()
    }
}

/// A state reached through the fault proxy, two handles on it (as two processes would have),
/// snapshot `snap-a` of server `db` open, and the proxy's name for writes of `db`'s object.
struct Raced {
    proxy: Proxy,
    a: S3Store,
    b: S3Store,
    db: ServerKey,
    put_db: String,
}

async fn raced() -> Raced {
    let proxy = Proxy::start(Moto::shared().port());
    let f = S3Fixture::with(&proxy.endpoint(), S3Options::default());
    let (a, b) = (f.store().await, f.store().await);
    let db = key("db");
    open_snapshot(&a, &db, "snap-a").await;
    let put_db = format!("PUT /{}/{PREFIX}/apps/shop/servers/db.json", f.bucket);
    Raced {
        proxy,
        a,
        b,
        db,
        put_db,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_racing_on_one_server_never_lose_an_update() {
    let Raced {
        proxy,
        a,
        b,
        db,
        put_db: op,
    } = raced().await;
    let writer = |s: S3Store| {
        let db = db.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                s.add_partial_counts(&db, "snap-a", &one_block())
                    .await
                    .unwrap();
            }
        })
    };
    let (ta, tb) = (writer(a.clone()), writer(b.clone()));
    ta.await.unwrap();
    tb.await.unwrap();
    let rec = a.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(
        rec.counts.blocks_uploaded, 40,
        "every update of both writers is in"
    );
    assert_eq!(rec.counts.bytes_uploaded, 40 * 512 * 1024);
    let (seen, accepted) = (proxy.seen(&op), proxy.accepted(&op));
    assert_eq!(accepted, 2 + 40, "one write per update (and two to set up)");
    assert!(
        seen > accepted,
        "the writers raced: {seen} writes tried, {accepted} won"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_race_is_read_again_and_applied_again() {
    let Raced {
        proxy,
        a,
        b,
        db,
        put_db: op,
    } = raced().await;
    // `a` last saw the object before `b` changed it: its write loses, then re-reads.
    b.add_partial_counts(&db, "snap-a", &one_block())
        .await
        .unwrap();
    proxy.reset_counters();
    a.add_partial_counts(&db, "snap-a", &one_block())
        .await
        .unwrap();
    assert_eq!(proxy.seen(&op), 2, "one lost write, one won");
    assert_eq!(proxy.accepted(&op), 1);
    let rec = b.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(rec.counts.blocks_uploaded, 2, "both updates are in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_answer_was_lost_is_applied_once() {
    let Raced {
        proxy,
        a: s,
        db,
        put_db: op,
        ..
    } = raced().await;
    // The first write lands, its answer never arrives; the SDK sends it again, which loses
    // (the ETag changed: by that very write), and the store re-reads.
    let target = op.clone();
    proxy.reset_counters();
    proxy.set_policy(move |req| {
        if req.operation == target && req.op_seq == 1 {
            Action::ForwardThenReset
        } else {
            Action::Forward
        }
    });
    s.add_partial_counts(&db, "snap-a", &one_block())
        .await
        .unwrap();
    assert_eq!(proxy.accepted(&op), 1, "the first write landed");
    assert!(proxy.seen(&op) >= 2, "and was sent again");
    let rec = s.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(rec.counts.blocks_uploaded, 1, "applied once, not twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_is_idempotent_and_open_needs_it() {
    let moto = Moto::shared();
    let sdk = moto_sdk(&moto.endpoint()).await;
    let bucket = unique_bucket();
    let first = S3Store::init(&sdk, &bucket, "p", BucketEncryption::S3Managed)
        .await
        .unwrap();
    assert!(first.bucket_created && first.state_created);
    assert_eq!(first.location, format!("s3://{bucket}/p"));
    let again = S3Store::init(&sdk, &bucket, "p", BucketEncryption::S3Managed)
        .await
        .unwrap();
    assert!(!again.bucket_created && !again.state_created);
    assert_eq!(again.encryption, BucketEncryption::S3Managed);
    // Another prefix of the same bucket is another state, not set up yet.
    let err = S3Store::open(&sdk, &bucket, "elsewhere", S3Options::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NotInitialized { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("rehost state init s3://{bucket}/elsewhere")),
        "{err}"
    );
    // Versioned: the marker got a version id. (The emulator's GetBucketVersioning answer has a
    // root element the SDK cannot parse; the store reads its Status itself, the test looks at
    // the object.)
    let marker = s3(&sdk)
        .head_object()
        .bucket(&bucket)
        .key("p/rehost-state.json")
        .send()
        .await
        .unwrap();
    assert!(
        marker.version_id().is_some_and(|v| v != "null"),
        "{:?}",
        marker.version_id()
    );
    assert!(
        marker.server_side_encryption().is_some(),
        "encrypted by default"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_is_not_protected_or_not_ours_is_refused_with_what_to_fix() {
    let moto = Moto::shared();
    let sdk = moto_sdk(&moto.endpoint()).await;
    let client = s3(&sdk);
    // The caller's own bucket, made by hand without any protection.
    let bare = unique_bucket();
    client.create_bucket().bucket(&bare).send().await.unwrap();
    for err in [
        S3Store::init(&sdk, &bare, "p", BucketEncryption::S3Managed)
            .await
            .unwrap_err(),
        S3Store::open(&sdk, &bare, "p", S3Options::default())
            .await
            .unwrap_err(),
    ] {
        let msg = err.to_string();
        assert!(matches!(err, StateError::Bucket { .. }), "{err:?}");
        for fix in ["put-bucket-versioning", "put-public-access-block"] {
            assert!(msg.contains(fix), "{msg}");
        }
    }
    // Another account's bucket: not in this caller's ListBuckets, whatever S3 lets it do.
    let other = other_account(&sdk, "111111111111").await;
    let theirs = unique_bucket();
    S3Store::init(&other, &theirs, "p", BucketEncryption::S3Managed)
        .await
        .unwrap();
    let err = S3Store::open(&sdk, &theirs, "p", S3Options::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not in this account's ListBuckets"),
        "{err}"
    );
    let err = S3Store::init(&sdk, &theirs, "p", BucketEncryption::S3Managed)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to another account"),
        "{err}"
    );
}

/// The SDK configuration of another account of the emulator (STS AssumeRole into it).
async fn other_account(sdk: &SdkConfig, account: &str) -> SdkConfig {
    let creds = aws_sdk_sts::Client::new(sdk)
        .assume_role()
        .role_arn(format!("arn:aws:iam::{account}:role/rehost-tests"))
        .role_session_name("rehost-tests")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sdk.endpoint_url().unwrap())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "assumed-role",
        ));
    rehost_replication::aws::configure_loader(loader, &common::fast_aws_options())
        .load()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_of_a_long_upload_is_compacted_and_reads_back_whole() {
    use rehost_replication::state::WrittenBlock;
    let f = S3Fixture::new();
    let s = f.store().await;
    let db = key("db");
    open_snapshot(&s, &db, "snap-a").await;
    let block = |i: u64, v: u8| WrittenBlock {
        index: i,
        xxh3: [v; 16],
        sha256: [v; 32],
    };
    for i in 0..150u64 {
        s.record_written(&db, "snap-a", &[block(i, 1)])
            .await
            .unwrap();
    }
    // A block accepted again (resent) replaces its earlier record.
    s.record_written(&db, "snap-a", &[block(7, 2)])
        .await
        .unwrap();
    let written = f.store().await.written_blocks(&db, "snap-a").await.unwrap();
    assert_eq!(written.len(), 150);
    assert!(written.windows(2).all(|w| w[0].index < w[1].index));
    assert_eq!(written[7], block(7, 2));
    let journal = s3(f.sdk().await)
        .list_objects_v2()
        .bucket(&f.bucket)
        .prefix(format!("{PREFIX}/apps/shop/journal/db/snap-a/"))
        .send()
        .await
        .unwrap();
    let objects = journal.contents().len();
    assert!(
        objects <= 64,
        "compacted: {objects} journal objects for 151 batches"
    );
    // Completed: the journal goes, and nothing is read for it any more.
    s.mark_completing(
        &db,
        "snap-a",
        &rehost_replication::manifest::Manifest::with_len(150),
        &SnapshotCounts::default(),
    )
    .await
    .unwrap();
    s.mark_snapshot_completed(&db, "snap-a", OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(s.written_blocks(&db, "snap-a").await.unwrap().is_empty());
    let left = s3(f.sdk().await)
        .list_objects_v2()
        .bucket(&f.bucket)
        .prefix(format!("{PREFIX}/apps/shop/journal/db/snap-a/"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.contents().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_kept_on_s3_resumes_without_sending_accepted_blocks_again() {
    use common::*;
    use rehost_replication::{Replicator, ReportStatus};
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    let f = S3Fixture::with(&proxy.endpoint(), S3Options::default());
    let store = Arc::new(f.store().await);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    let block = rehost_replication::manifest::BLOCK_SIZE as u64;
    write_raw(&raw, 8 * block, &[(0, 6, Fill::Random)], 11);
    // The third block is denied: two were accepted (and recorded in the journal) before.
    proxy.set_policy(|r| match r.operation.as_str() {
        "PutSnapshotBlock" if r.op_seq >= 3 => Action::AccessDenied,
        _ => Action::Forward,
    });
    let mut opts = test_options();
    opts.upload_concurrency = 1;
    let sdk = sdk_config(&proxy.endpoint(), &fast_aws_options()).await;
    let rep = Replicator::new(&sdk, store.clone(), opts);
    let job = job("onS3", "d1", &[("disk0", &raw)]);
    let failed = rep.replicate(&job).await;
    assert_eq!(failed.status, ReportStatus::Failed);

    proxy.clear_policy();
    let done = rep.replicate(&job).await;
    assert_eq!(done.status, ReportStatus::Completed, "{:?}", done.error);
    assert!(done.resumed);
    assert_eq!(done.run_id, failed.run_id);
    let s = &done.snapshots[0];
    assert_eq!((s.blocks_resumed, s.blocks_uploaded), (2, 4));
    assert_eq!(proxy.blocks_sent_twice(), 0);
    let blocks = read_snapshot(&aws_sdk_ebs::Client::new(&sdk), &s.snapshot_id).await;
    assert_seed_matches(&blocks, &raw_blocks(&raw), "resumed on S3 state");

    // Everything about it is in the server's object; its journal is gone.
    let key = ServerKey::new("onS3", "d1");
    let run = store.run(&key, &done.run_id).await.unwrap().unwrap();
    assert_eq!(run.ami_id, done.ami_id);
    assert_eq!(run.attempts, 2);
    let parent = store
        .latest_completed_snapshot(&key, "disk0")
        .await
        .unwrap()
        .unwrap();
    let manifest = store
        .snapshot_manifest(&key, &parent.snapshot_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.len(), 8);
    let journal = s3(f.sdk().await)
        .list_objects_v2()
        .bucket(&f.bucket)
        .prefix(format!("{PREFIX}/apps/onS3/journal/"))
        .send()
        .await
        .unwrap();
    assert_eq!(journal.contents().len(), 0);
}

/// Two rehosts binding one application at once (each its first command with its own
/// credentials): exactly one binding is recorded, and both are told the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_rehosts_binding_one_application_at_once_the_first_binding_wins() {
    use rehost_replication::state::AccountBinding;
    let f = S3Fixture::new();
    let stores: Vec<S3Store> = futures_util::future::join_all((0..4).map(|_| f.store())).await;
    let proposals: Vec<AccountBinding> = (0..4)
        .map(|i| AccountBinding {
            account: format!("{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}"),
            region: "us-east-1".into(),
        })
        .collect();
    let answers = futures_util::future::join_all(
        stores
            .iter()
            .zip(&proposals)
            .map(|(s, p)| s.bind_account("shop", p)),
    )
    .await;
    let answers: Vec<AccountBinding> = answers.into_iter().map(Result::unwrap).collect();
    assert!(proposals.contains(&answers[0]));
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(
        f.store().await.account_binding("shop").await.unwrap(),
        Some(answers[0].clone())
    );
}
