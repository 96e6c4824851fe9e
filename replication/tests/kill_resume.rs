//! SIGKILL at several points of a replication, then a restart: the final snapshot reads back
//! exactly, nothing half-done is recorded as completed, and blocks sent twice are counted.
//!
//! The replication runs in a child process: this test binary re-executes itself with
//! `--exact child_replicate --ignored` and `REHOST_TEST_CHILD` set; the child takes the
//! application lock like the CLI, replicates one server through the fault proxy and prints its
//! report. The parent steers the kill point with the proxy (holding a request, unforwarded, or
//! holding the answer of a forwarded one) and watches the state database.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_replication::state::{RunStatus, SnapshotStatus};
use rehost_replication::{ServerKey, ServerReport, SqliteStore, StateStore};
use rehost_testkit::Moto;
use rehost_testkit::proxy::{Action, Proxy};
use serde::{Deserialize, Serialize};

const BLOCK: u64 = BLOCK_SIZE as u64;
const BLOCKS: u64 = 40;
const APP: &str = "killapp";
const CONCURRENCY: usize = 4;

#[derive(Serialize, Deserialize)]
struct ChildConfig {
    state: PathBuf,
    image: PathBuf,
    server: String,
}

/// The child: one replication, report on stdout. Does nothing when not started by the parent.
#[test]
#[ignore = "run by kill_at_several_points_and_resume as a child process"]
fn child_replicate() {
    let Ok(cfg) = std::env::var("REHOST_TEST_CHILD") else {
        return;
    };
    let cfg: ChildConfig = serde_json::from_str(&cfg).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(async {
        // The standard chain, as the CLI uses it: endpoint, credentials and the shortened
        // timeouts come from the environment.
        let sdk = rehost_replication::aws::load_sdk_config(&Default::default()).await;
        let store = SqliteStore::open(&cfg.state).await.unwrap();
        let _lock = store.lock_app(APP).await.unwrap();
        let mut opts = test_options();
        opts.upload_concurrency = CONCURRENCY;
        let rep = rehost_replication::Replicator::new(&sdk, std::sync::Arc::new(store), opts);
        rep.replicate(&job(APP, &cfg.server, &[("disk0", &cfg.image)]))
            .await
    });
    println!("REPORT:{}", serde_json::to_string(&report).unwrap());
}

struct Harness {
    moto: &'static Moto,
    proxy: Proxy,
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Harness {
    fn new() -> Harness {
        let moto = Moto::shared();
        let proxy = Proxy::start(moto.port());
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.raw");
        write_raw(&image, BLOCKS * BLOCK, &[(0, BLOCKS, Fill::Random)], 21);
        Harness {
            moto,
            proxy,
            dir,
            image,
        }
    }

    fn state_path(&self, server: &str) -> PathBuf {
        self.dir.path().join(format!("{server}.db"))
    }

    fn spawn(&self, server: &str) -> Child {
        let cfg = ChildConfig {
            state: self.state_path(server),
            image: self.image.clone(),
            server: server.into(),
        };
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "child_replicate",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ]);
        for (k, v) in self.moto.env() {
            cmd.env(k, v);
        }
        cmd.env("AWS_ENDPOINT_URL", self.proxy.endpoint())
            .env("REHOST_AWS_ATTEMPT_TIMEOUT_SECS", "10")
            .env("REHOST_AWS_CONNECT_TIMEOUT_SECS", "2")
            .env("REHOST_AWS_MAX_BACKOFF_SECS", "0.5")
            .env("REHOST_TEST_CHILD", serde_json::to_string(&cfg).unwrap())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    }

    fn finish(&self, child: Child) -> ServerReport {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("REPORT:").map(|(_, r)| r))
            .unwrap_or_else(|| panic!("no report: {stdout}"));
        serde_json::from_str(line).unwrap()
    }

    /// Written-block count of the server's open snapshot, from the state database.
    async fn written(&self, server: &str) -> usize {
        let Ok(store) = SqliteStore::open(&self.state_path(server)).await else {
            return 0;
        };
        let key = ServerKey::new(APP, server);
        let Ok(history) = store.server_history(&key, 1).await else {
            return 0;
        };
        let Some(run) = history.first() else { return 0 };
        let mut written = 0;
        for s in run
            .snapshots
            .iter()
            .filter(|s| s.status == SnapshotStatus::Open)
        {
            written += store
                .written_blocks(&key, &s.snapshot_id)
                .await
                .map(|w| w.len())
                .unwrap_or(0);
        }
        written
    }

    async fn wait_until(&self, what: &str, mut cond: impl AsyncFnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&self, mut child: Child) {
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        self.proxy.release_holds();
        self.proxy.clear_policy();
    }

    async fn verify(&self, report: &ServerReport) {
        let sdk = sdk_config(&self.moto.endpoint(), &Default::default()).await;
        let ebs = aws_sdk_ebs::Client::new(&sdk);
        let snap = &report.snapshots[0];
        assert_seed_matches(
            &read_snapshot(&ebs, &snap.snapshot_id).await,
            &raw_blocks(&self.image),
            &report.server,
        );
        let store = SqliteStore::open(&self.state_path(&report.server))
            .await
            .unwrap();
        let runs = store
            .server_history(&ServerKey::new(APP, &report.server), 10)
            .await
            .unwrap();
        assert_eq!(
            runs.len(),
            1,
            "the interrupted run was resumed, not duplicated"
        );
        assert_eq!(runs[0].status, RunStatus::Completed);
        assert_eq!(
            store.latest_amis(APP).await.unwrap()[&report.server].ami_id,
            report.ami_id.clone().unwrap()
        );
    }
}

fn images_named(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> impl std::future::Future<Output = usize> {
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let name = name.to_string();
    async move {
        ec2.describe_images()
            .owners("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .unwrap()
            .images()
            .len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_at_several_points_and_resume() {
    init_tracing();
    let h = Harness::new();
    let mut twice_total = 0;

    // 1. Mid-upload, after 17 accepted blocks (later ones held, never forwarded).
    h.proxy.reset_counters();
    h.proxy.set_policy(|r| match r.operation.as_str() {
        "PutSnapshotBlock" if r.op_seq > 17 => Action::Hold,
        _ => Action::Forward,
    });
    let child = h.spawn("mid");
    h.wait_until("17 recorded blocks", async || {
        h.written("mid").await == 17 && h.proxy.held() >= 1
    })
    .await;
    // The lock is held by the running child: a second replication of the app is refused.
    let err = SqliteStore::open(&h.state_path("mid"))
        .await
        .unwrap()
        .lock_app(APP)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(APP) && err.contains(&child.id().to_string()),
        "{err}"
    );
    h.kill(child);
    let report = h.finish(h.spawn("mid"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    assert!(report.resumed);
    assert_eq!(report.snapshots[0].blocks_resumed, 17);
    assert_eq!(report.snapshots[0].blocks_uploaded, BLOCKS - 17);
    assert_eq!(h.proxy.seen("StartSnapshot"), 1);
    let twice = h.proxy.blocks_sent_twice();
    println!("kill mid-upload (clean point): blocks sent twice = {twice}");
    assert_eq!(twice, 0);
    h.verify(&report).await;

    // 2. Right after StartSnapshot: the open snapshot is continued, not started again.
    h.proxy.reset_counters();
    h.proxy.set_policy(|r| match r.operation.as_str() {
        "PutSnapshotBlock" => Action::Hold,
        _ => Action::Forward,
    });
    let child = h.spawn("start");
    h.wait_until("the first block", async || h.proxy.held() >= 1)
        .await;
    h.kill(child);
    let report = h.finish(h.spawn("start"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    assert_eq!(h.proxy.seen("StartSnapshot"), 1);
    assert_eq!(report.snapshots[0].blocks_uploaded, BLOCKS);
    let twice = h.proxy.blocks_sent_twice();
    println!("kill after StartSnapshot: blocks sent twice = {twice}");
    assert_eq!(twice, 0);
    h.verify(&report).await;

    // 3. At an arbitrary moment of the upload (no hold): blocks in flight may be sent again,
    // never more than the in-flight bound.
    h.proxy.reset_counters();
    let child = h.spawn("any");
    h.wait_until("20 accepted blocks", async || {
        h.proxy.accepted("PutSnapshotBlock") >= 20
    })
    .await;
    h.kill(child);
    let report = h.finish(h.spawn("any"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    let twice = h.proxy.blocks_sent_twice();
    twice_total += twice;
    println!(
        "kill at an arbitrary point of the upload: blocks sent twice = {twice} (in-flight bound {CONCURRENCY})"
    );
    // In flight when killed, or acknowledged but not yet committed by the recorder.
    assert!(twice <= 2 * CONCURRENCY as u64, "{twice} blocks sent twice");
    assert_eq!(
        report.snapshots[0].blocks_resumed + report.snapshots[0].blocks_uploaded,
        BLOCKS
    );
    h.verify(&report).await;

    // 4. CompleteSnapshot went through but its answer never arrived.
    h.proxy.reset_counters();
    h.proxy.set_policy(|r| match r.operation.as_str() {
        "CompleteSnapshot" => Action::ForwardThenHold,
        _ => Action::Forward,
    });
    let child = h.spawn("complete");
    h.wait_until("CompleteSnapshot", async || h.proxy.held() >= 1)
        .await;
    h.kill(child);
    let puts = h.proxy.seen("PutSnapshotBlock");
    let report = h.finish(h.spawn("complete"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    assert!(
        report.snapshots[0].reused,
        "the completed snapshot is reused"
    );
    assert_eq!(
        h.proxy.seen("PutSnapshotBlock"),
        puts,
        "no block sent after the restart"
    );
    assert_eq!(h.proxy.blocks_sent_twice(), 0);
    h.verify(&report).await;

    // 5. RegisterImage went through but its answer never arrived: the AMI is found by name.
    h.proxy.reset_counters();
    h.proxy.set_policy(|r| match r.operation.as_str() {
        "RegisterImage" => Action::ForwardThenHold,
        _ => Action::Forward,
    });
    let child = h.spawn("register");
    h.wait_until("RegisterImage", async || h.proxy.held() >= 1)
        .await;
    h.kill(child);
    let report = h.finish(h.spawn("register"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    assert_eq!(h.proxy.seen("RegisterImage"), 1, "not registered twice");
    assert_eq!(h.proxy.seen("StartSnapshot"), 1);
    let sdk = sdk_config(&h.moto.endpoint(), &Default::default()).await;
    assert_eq!(
        images_named(&sdk, report.ami_name.as_deref().unwrap()).await,
        1
    );
    h.verify(&report).await;

    // 6. The open snapshot is gone when the run restarts: a fresh one is started, the stale one
    // cleaned up.
    h.proxy.reset_counters();
    h.proxy.set_policy(|r| match r.operation.as_str() {
        "PutSnapshotBlock" if r.op_seq > 5 => Action::Hold,
        _ => Action::Forward,
    });
    let child = h.spawn("gone");
    h.wait_until("5 recorded blocks", async || {
        h.written("gone").await == 5 && h.proxy.held() >= 1
    })
    .await;
    h.kill(child);
    let store = SqliteStore::open(&h.state_path("gone")).await.unwrap();
    let gone = ServerKey::new(APP, "gone");
    let stale = store.server_history(&gone, 1).await.unwrap()[0].snapshots[0]
        .snapshot_id
        .clone();
    aws_sdk_ec2::Client::new(&sdk)
        .delete_snapshot()
        .snapshot_id(&stale)
        .send()
        .await
        .unwrap();
    let report = h.finish(h.spawn("gone"));
    assert_eq!(
        report.status,
        rehost_replication::ReportStatus::Completed,
        "{:?}",
        report.error
    );
    assert_ne!(report.snapshots[0].snapshot_id, stale);
    assert_eq!(report.snapshots[0].blocks_uploaded, BLOCKS);
    assert_eq!(h.proxy.seen("StartSnapshot"), 2);
    let stale_state = store.snapshot(&gone, &stale).await.unwrap().unwrap().status;
    assert!(
        matches!(
            stale_state,
            SnapshotStatus::Abandoned | SnapshotStatus::Deleted
        ),
        "{stale_state:?}"
    );
    h.verify(&report).await;

    println!("blocks sent twice over all kill points: {twice_total}");
}
