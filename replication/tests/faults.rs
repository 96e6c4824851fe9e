//! Network faults between rehost and the emulator, injected by the test kit's proxy: resets,
//! stalls longer than the attempt timeout and 503 throttling are retried by the SDK (the one
//! retry layer) and the run completes with the right data; access denials fail at once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rehost_replication::ReportStatus;
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_testkit::Moto;
use rehost_testkit::proxy::{Action, Proxy};

const BLOCK: u64 = BLOCK_SIZE as u64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_faults_are_retried_and_the_run_completes() {
    init_tracing();
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("f.raw");
    write_raw(&raw, 24 * BLOCK, &[(0, 20, Fill::Random)], 5);
    let stalled: Arc<Mutex<Option<(String, u64)>>> = Arc::default();
    let seen_stall = Arc::clone(&stalled);
    proxy.set_policy(move |r| match (r.operation.as_str(), r.op_seq) {
        ("StartSnapshot", 1) => Action::Throttle,
        ("PutSnapshotBlock", 2) => Action::Reset,
        ("PutSnapshotBlock", 4) | ("PutSnapshotBlock", 10) | ("PutSnapshotBlock", 11) => {
            Action::Throttle
        }
        ("PutSnapshotBlock", 6) => {
            *seen_stall.lock().unwrap() = r.block();
            Action::Stall(Duration::from_secs(12))
        }
        ("PutSnapshotBlock", 8) => Action::ForwardThenReset,
        ("CompleteSnapshot", 1) => Action::Reset,
        ("RegisterImage", 1) => Action::Throttle,
        ("DescribeImages", 1) => Action::Reset,
        _ => Action::Forward,
    });
    let rep = replicator(
        &proxy.endpoint(),
        &dir.path().join("state.db"),
        test_options(),
    )
    .await;
    let report = rep
        .replicate(&job("faults", "f1", &[("disk0", &raw)]))
        .await;
    assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
    let snap = &report.snapshots[0];
    assert_eq!(snap.blocks_uploaded, 20);

    // Every fault was met and retried: requests seen = accepted + faults (+1 for the block the
    // emulator accepted but whose answer was reset).
    assert_eq!(proxy.faults("PutSnapshotBlock"), 5);
    assert_eq!(proxy.seen("PutSnapshotBlock"), 20 + 5 + 1);
    assert_eq!(proxy.accepted("PutSnapshotBlock"), 21);
    assert_eq!(
        proxy.blocks_sent_twice(),
        1,
        "only the block whose answer was lost is sent again"
    );
    for op in [
        "StartSnapshot",
        "CompleteSnapshot",
        "RegisterImage",
        "DescribeImages",
    ] {
        assert!(proxy.faults(op) >= 1, "{op} saw no fault");
    }
    // The stalled block was sent again after the attempt timeout and is in the snapshot.
    let (snapshot, index) = stalled
        .lock()
        .unwrap()
        .clone()
        .expect("a block was stalled");
    assert_eq!(snapshot, snap.snapshot_id);
    assert_eq!(proxy.block_accepts()[&(snapshot, index)], 1);

    let ebs = aws_sdk_ebs::Client::new(&sdk_config(&moto.endpoint(), &Default::default()).await);
    let blocks = read_snapshot(&ebs, &snap.snapshot_id).await;
    assert_seed_matches(&blocks, &raw_blocks(&raw), "faulty run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_attempt_times_out_and_is_retried_by_the_sdk() {
    init_tracing();
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("s.raw");
    write_raw(&raw, 4 * BLOCK, &[(0, 4, Fill::Random)], 6);
    // The stall outlasts the 5 s attempt timeout by far: only a retry can finish in time.
    proxy.set_policy(|r| match (r.operation.as_str(), r.op_seq) {
        ("PutSnapshotBlock", 1) => Action::Stall(Duration::from_secs(30)),
        _ => Action::Forward,
    });
    let mut opts = test_options();
    opts.upload_concurrency = 1;
    let rep = replicator(&proxy.endpoint(), &dir.path().join("state.db"), opts).await;
    let t = Instant::now();
    let report = rep.replicate(&job("stall", "s1", &[("disk0", &raw)])).await;
    assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}: the stalled attempt was not cut short",
        t.elapsed()
    );
    assert_eq!(
        proxy.seen("PutSnapshotBlock"),
        5,
        "4 blocks + 1 retry of the stalled one"
    );
    assert_eq!(proxy.accepted("PutSnapshotBlock"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_not_retried_and_the_next_run_resumes() {
    init_tracing();
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("d.raw");
    write_raw(&raw, 6 * BLOCK, &[(0, 6, Fill::Random)], 8);
    let denied: Arc<Mutex<Vec<u64>>> = Arc::default();
    let record = Arc::clone(&denied);
    proxy.set_policy(move |r| match r.operation.as_str() {
        "PutSnapshotBlock" if r.op_seq >= 3 => {
            record.lock().unwrap().extend(r.block().map(|b| b.1));
            Action::AccessDenied
        }
        _ => Action::Forward,
    });
    let mut opts = test_options();
    opts.upload_concurrency = 1;
    let state = dir.path().join("state.db");
    let rep = replicator(&proxy.endpoint(), &state, opts.clone()).await;
    let job = job("denied", "d1", &[("disk0", &raw)]);
    let t = Instant::now();
    let failed = rep.replicate(&job).await;
    assert_eq!(failed.status, ReportStatus::Failed);
    let err = failed.error.clone().unwrap();
    let denied = denied.lock().unwrap().clone();
    assert_eq!(denied.len(), 1, "the denied request was not retried");
    let block = format!("block {}", denied[0]);
    for part in [
        "server d1",
        "disk disk0",
        block.as_str(),
        "PutSnapshotBlock",
        "AccessDeniedException",
    ] {
        assert!(err.contains(part), "error lacks {part:?}: {err}");
    }
    assert_eq!(
        proxy.seen("PutSnapshotBlock"),
        3,
        "the denied request was not retried"
    );
    assert!(t.elapsed() < Duration::from_secs(10));

    // Permission fixed: the next run continues the same run and snapshot, sending only the rest.
    proxy.clear_policy();
    let resumed = rep.replicate(&job).await;
    assert_eq!(
        resumed.status,
        ReportStatus::Completed,
        "{:?}",
        resumed.error
    );
    assert!(resumed.resumed);
    assert_eq!(resumed.run_id, failed.run_id);
    let s = &resumed.snapshots[0];
    assert_eq!(s.blocks_uploaded, 4);
    assert_eq!(s.blocks_resumed, 2);
    assert_eq!(s.blocks_changed, 6);
    assert_eq!(
        proxy.seen("StartSnapshot"),
        1,
        "the open snapshot was continued"
    );
    assert_eq!(proxy.blocks_sent_twice(), 0);
    let ebs = aws_sdk_ebs::Client::new(&sdk_config(&moto.endpoint(), &Default::default()).await);
    assert_seed_matches(
        &read_snapshot(&ebs, &s.snapshot_id).await,
        &raw_blocks(&raw),
        "resumed",
    );

    // A run whose RegisterImage is denied keeps its completed snapshot; the next one reuses it.
    change_blocks(&raw, &[1], None, 77);
    proxy.reset_counters();
    proxy.set_policy(|r| match r.operation.as_str() {
        "RegisterImage" => Action::AccessDenied,
        _ => Action::Forward,
    });
    let failed = rep.replicate(&job).await;
    assert_eq!(failed.status, ReportStatus::Failed);
    let err = failed.error.clone().unwrap();
    assert!(
        err.contains("RegisterImage") && err.contains("UnauthorizedOperation"),
        "{err}"
    );
    assert_eq!(proxy.seen("RegisterImage"), 1);
    proxy.clear_policy();
    proxy.reset_counters();
    let done = rep.replicate(&job).await;
    assert_eq!(done.status, ReportStatus::Completed, "{:?}", done.error);
    assert_eq!(done.run_id, failed.run_id);
    assert!(done.snapshots[0].reused);
    assert_eq!(
        done.snapshots[0].snapshot_id,
        failed.snapshots[0].snapshot_id
    );
    assert_eq!(
        proxy.seen("StartSnapshot")
            + proxy.seen("PutSnapshotBlock")
            + proxy.seen("CompleteSnapshot"),
        0
    );
    assert_eq!(proxy.seen("RegisterImage"), 1);
}
