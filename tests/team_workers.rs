//! Replication workers with no coordinator (issue 11 part 4), through the `rehost` binary
//! against the emulator: three `rehost replicate --worker` processes share one S3 state and
//! twelve servers; one is SIGKILLed in the middle of an upload. Every server is replicated
//! exactly once for its slot (`runOnce`), the killed worker's server is taken over once its
//! lease expires and its run resumed (same run, same snapshot, the blocks its journal recorded
//! not sent again), every snapshot reads back exactly, and the state ends consistent. A worker
//! that can read only some servers' disks claims only those.
//!
//! Each worker talks to the emulator through a proxy of its own, so what each one sent is
//! counted apart; the proxies slow every PutSnapshotBlock so a run lasts seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rehost_replication::state::s3::{LeaseBody, S3Options, S3Store};
use rehost_replication::state::{RunStatus, ServerKey, StateStore};
use rehost_testkit::cli::{refused, succeeded as ok};
use rehost_testkit::images::{Fill, raw_blocks, write_raw};
use rehost_testkit::proxy::{Action, Proxy};
use rehost_testkit::{Moto, Rehost};
use serde_json::Value;

const BLOCK: u64 = 512 * 1024;
/// Blocks of each server's disk (3 MiB, random: the emulator keeps every block in memory).
const BLOCKS: u64 = 6;
const SERVERS: usize = 12;
const APP: &str = "fleet";
const PREFIX: &str = "workers";
/// Each PutSnapshotBlock is held this long by the proxies: a server's upload takes seconds.
const BLOCK_DELAY: Duration = Duration::from_millis(400);

fn server(n: usize) -> String {
    format!("s{n:02}")
}

fn application(dir: &Path, state: &str) {
    let servers: String = (1..=SERVERS)
        .map(|n| {
            format!(
                "  - {{id: {s}, os: linux, disks: [{{source: {s}.raw}}]}}\n",
                s = server(n)
            )
        })
        .collect();
    let names: Vec<String> = (1..=SERVERS).map(server).collect();
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: {APP}\nstate: {state}\n\
         defaults:\n  replication: {{runOnce: true}}\n  launch: {{instanceType: m5.large, subnet: subnet-0a1b2c3d, securityGroups: [sg-0a1b2c3d]}}\n\
         servers:\n{servers}groups:\n  - {{name: all, servers: [{}]}}\n",
        names.join(", ")
    );
    std::fs::write(dir.join("fleet.yaml"), text).unwrap();
}

/// A replication host: its own copy of the application, with links to the images it can read.
fn host(root: &Path, name: &str, images: &Path, state: &str, readable: &[usize]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    application(&dir, state);
    for &n in readable {
        let image = format!("{}.raw", server(n));
        std::os::unix::fs::symlink(images.join(&image), dir.join(&image)).unwrap();
    }
    dir
}

fn rehost(dir: &Path, endpoint: Option<&str>) -> Rehost {
    let mut r = Rehost::new(env!("CARGO_BIN_EXE_rehost"))
        .current_dir(dir)
        .env_moto(Moto::shared())
        .env_remove("REHOST_STATE")
        .env("REHOST_LEASE_SECONDS", "3");
    if let Some(e) = endpoint {
        r = r.env("AWS_ENDPOINT_URL", e);
    }
    r
}

/// Starts `rehost replicate fleet.yaml --worker` in `dir`, through `proxy`.
fn start_worker(dir: &Path, proxy: &Proxy) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rehost"));
    for (k, v) in Moto::shared().env() {
        cmd.env(k, v);
    }
    cmd.env("AWS_ENDPOINT_URL", proxy.endpoint())
        .env("REHOST_LEASE_SECONDS", "3")
        .env_remove("REHOST_STATE")
        .current_dir(dir)
        .args([
            "-v",
            "replicate",
            "fleet.yaml",
            "--worker",
            "--parallel",
            "1",
            "--concurrency",
            "1",
            "--output",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a worker")
}

/// Waits for a worker to exit by itself, within `limit`.
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "worker still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The report lines (`--output json`) a worker printed.
fn reports(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Journal segments a proxy saw written: (server, snapshot).
type Journaled = Arc<Mutex<Vec<(String, String)>>>;

/// A proxy in front of the emulator holding each PutSnapshotBlock `BLOCK_DELAY`, noting the
/// journal segments written (server, snapshot) as it forwards them.
fn slow_proxy() -> (Proxy, Journaled) {
    let proxy = Proxy::start(Moto::shared().port());
    let journal = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&journal);
    proxy.set_policy(move |req| {
        if req.operation == "PutSnapshotBlock" {
            std::thread::sleep(BLOCK_DELAY);
        }
        if req.method == "PUT" {
            let path = req.path.split('?').next().unwrap_or("");
            let parts: Vec<&str> = path.split('/').collect();
            if let Some(at) = parts.iter().position(|p| *p == "journal")
                && parts.len() > at + 2
            {
                seen.lock()
                    .unwrap()
                    .push((parts[at + 1].to_string(), parts[at + 2].to_string()));
            }
        }
        Action::Forward
    });
    (proxy, journal)
}

/// Blocks of each snapshot the emulator accepted through `proxy`: snapshot → block → count.
fn accepted(proxy: &Proxy) -> BTreeMap<String, BTreeMap<u64, u32>> {
    let mut out: BTreeMap<String, BTreeMap<u64, u32>> = BTreeMap::new();
    for ((snap, block), n) in proxy.block_accepts() {
        out.entry(snap).or_default().insert(block, n);
    }
    out
}

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(Moto::shared().endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await
}

/// Every block of a snapshot, read back through the EBS direct APIs.
async fn read_snapshot(sdk: &aws_config::SdkConfig, id: &str) -> BTreeMap<u64, Vec<u8>> {
    let ebs = aws_sdk_ebs::Client::new(sdk);
    let listed = ebs
        .list_snapshot_blocks()
        .snapshot_id(id)
        .send()
        .await
        .expect("ListSnapshotBlocks");
    let mut blocks = BTreeMap::new();
    for b in listed.blocks() {
        let index = b.block_index().unwrap();
        let out = ebs
            .get_snapshot_block()
            .snapshot_id(id)
            .block_index(index)
            .block_token(b.block_token().unwrap())
            .send()
            .await
            .expect("GetSnapshotBlock");
        let data = out
            .block_data
            .collect()
            .await
            .unwrap()
            .into_bytes()
            .to_vec();
        blocks.insert(index as u64, data);
    }
    blocks
}

#[test]
fn three_workers_replicate_twelve_servers_once_each_and_a_killed_ones_server_is_resumed() {
    let bucket = format!("rehost-workers-{:012x}", fastrand::u64(..) >> 16);
    let state = format!("s3://{bucket}/{PREFIX}");
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for n in 1..=SERVERS {
        write_raw(
            &images.join(format!("{}.raw", server(n))),
            BLOCKS * BLOCK,
            &[(0, BLOCKS, Fill::Random)],
            900 + n as u64,
        );
    }
    let all: Vec<usize> = (1..=SERVERS).collect();
    let few: Vec<usize> = (1..=4).collect();
    let laptop = host(root.path(), "laptop", &images, &state, &[]);
    ok(&rehost(&laptop, None).args(["state", "init", &state]).run());

    // A local state cannot be shared: --worker is refused, naming the way out.
    let err = refused(
        &rehost(&laptop, None)
            .args(["replicate", "fleet.yaml", "--worker", "--state", "local.db"])
            .run(),
    );
    assert!(err.contains("--state s3://"), "{err}");

    let dirs = [
        host(root.path(), "host1", &images, &state, &all),
        host(root.path(), "host2", &images, &state, &all),
        host(root.path(), "host3", &images, &state, &few),
    ];
    let proxies: Vec<_> = (0..3).map(|_| slow_proxy()).collect();
    let mut workers: Vec<Option<Child>> = dirs
        .iter()
        .zip(&proxies)
        .map(|(dir, (proxy, _))| Some(start_worker(dir, proxy)))
        .collect();

    // Worker 1 is killed while uploading: some blocks of a snapshot accepted, at least one
    // journal segment of it written (so its resumption has recorded blocks to skip), not all.
    let (p1, journal1) = &proxies[0];
    let deadline = Instant::now() + Duration::from_secs(90);
    let (victim_server, victim_snapshot) = loop {
        assert!(Instant::now() < deadline, "worker 1 never got under way");
        let journaled: Vec<(String, String)> = journal1.lock().unwrap().clone();
        let uploading = accepted(p1).into_iter().find_map(|(snap, blocks)| {
            let (server, _) = journaled.iter().find(|(_, s)| *s == snap)?;
            (blocks.len() >= 2 && (blocks.len() as u64) < BLOCKS - 1)
                .then(|| (server.clone(), snap.clone()))
        });
        if let Some(found) = uploading {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut killed = workers[0].take().unwrap();
    let killed_pid = killed.id();
    killed.kill().expect("SIGKILL worker 1");
    let killed = killed.wait_with_output().unwrap();
    // A block in flight at the kill may still land at the emulator.
    std::thread::sleep(BLOCK_DELAY + Duration::from_millis(300));
    let before_kill: BTreeSet<u64> = accepted(p1)
        .remove(&victim_snapshot)
        .unwrap_or_default()
        .into_keys()
        .collect();
    assert!((before_kill.len() as u64) < BLOCKS, "{before_kill:?}");

    let outs: Vec<Output> = workers
        .iter_mut()
        .skip(1)
        .map(|w| finish(w.take().unwrap(), Duration::from_secs(240)))
        .collect();
    let (out2, out3) = (&outs[0], &outs[1]);
    let log2 = String::from_utf8_lossy(&out2.stderr);
    let log3 = String::from_utf8_lossy(&out3.stderr);
    assert!(out2.status.success(), "{log2}");
    assert!(out3.status.success(), "{log3}");

    // Every server completed exactly once, across the three workers.
    let mut completed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for out in [&killed, out2, out3] {
        for r in reports(out) {
            if r["status"] == "completed" {
                completed
                    .entry(r["server"].as_str().unwrap().to_string())
                    .or_default()
                    .push(r);
            }
        }
    }
    let names: Vec<String> = (1..=SERVERS).map(server).collect();
    assert_eq!(
        completed.keys().cloned().collect::<Vec<_>>(),
        names,
        "{completed:#?}"
    );
    for (s, runs) in &completed {
        assert_eq!(runs.len(), 1, "{s} replicated once: {runs:#?}");
    }

    // Worker 3 reads only s01..s04: it said so, and claimed nothing else.
    assert!(
        log3.contains("leaving 8 servers to other workers"),
        "{log3}"
    );
    let by3: BTreeSet<String> = reports(out3)
        .iter()
        .map(|r| r["server"].as_str().unwrap().to_string())
        .collect();
    assert!(
        by3.iter().all(|s| few.iter().any(|&n| server(n) == *s)),
        "{by3:?}"
    );

    // The killed worker's server: taken over after its lease expired, its run resumed with
    // the same snapshot, the blocks the journal had recorded not sent again.
    let taker = &completed[&victim_server][0];
    let taker_log = if reports(out2).iter().any(|r| r == taker) {
        &log2
    } else {
        &log3
    };
    assert!(
        taker_log.contains(&format!(
            "took over {victim_server} from process {killed_pid} on "
        )),
        "{taker_log}"
    );
    assert_eq!(taker["resumed"], true, "{taker:#}");
    let snap = &taker["snapshots"][0];
    assert_eq!(snap["snapshot_id"], victim_snapshot.as_str(), "{taker:#}");
    let resumed = snap["blocks_resumed"].as_u64().unwrap();
    let uploaded = snap["blocks_uploaded"].as_u64().unwrap();
    assert!(resumed >= 1, "the journal's blocks were skipped: {taker:#}");
    assert_eq!(resumed + uploaded, BLOCKS, "{taker:#}");
    let mut sends: BTreeMap<u64, u32> = BTreeMap::new();
    for (proxy, _) in &proxies {
        for (b, n) in accepted(proxy).remove(&victim_snapshot).unwrap_or_default() {
            *sends.entry(b).or_default() += n;
        }
    }
    let resent: u32 = sends.values().map(|n| n - 1).sum();
    assert_eq!(
        u64::from(resent),
        before_kill.len() as u64 - resumed,
        "only blocks accepted after the last journal segment are sent again: {sends:?}"
    );
    assert_eq!(sends.len() as u64, BLOCKS);

    // Every snapshot reads back exactly as its image; the state is consistent.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sdk = sdk().await;
        let store = S3Store::open(&sdk, &bucket, PREFIX, S3Options::default())
            .await
            .unwrap();
        for (n, name) in names.iter().enumerate() {
            let report = &completed[name][0];
            let id = report["snapshots"][0]["snapshot_id"].as_str().unwrap();
            let expected = raw_blocks(&images.join(format!("{name}.raw")));
            let got = read_snapshot(&sdk, id).await;
            assert_eq!(got.len() as u64, BLOCKS, "{name}");
            for (i, block) in expected.iter().enumerate() {
                assert_eq!(
                    got.get(&(i as u64)),
                    block.as_ref(),
                    "{name} block {i} reads back as the image's"
                );
            }
            // One run, completed: the killed one was resumed rather than started again.
            let history = store
                .server_history(&ServerKey::new(APP, name), 10)
                .await
                .unwrap();
            assert_eq!(history.len(), 1, "{name}: {history:#?}");
            assert_eq!(history[0].status, RunStatus::Completed, "{name}");
            assert_eq!(history[0].run_id, report["run_id"].as_str().unwrap());
            let attempts = if *name == victim_server { 2 } else { 1 };
            assert_eq!(history[0].attempts, attempts, "{name} (#{n})");
        }
        // No lease left held, no journal left behind.
        let s3 = rehost_replication::state::s3::s3_client(&sdk);
        let listed = s3
            .list_objects_v2()
            .bucket(&bucket)
            .prefix(format!("{PREFIX}/apps/{APP}/"))
            .send()
            .await
            .unwrap();
        let keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect();
        assert!(!keys.iter().any(|k| k.contains("/journal/")), "{keys:#?}");
        let leases: Vec<&String> = keys.iter().filter(|k| k.contains("/leases/")).collect();
        assert_eq!(leases.len(), SERVERS, "{keys:#?}");
        for key in leases {
            let body = s3
                .get_object()
                .bucket(&bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes();
            let lease: LeaseBody = serde_json::from_slice(&body).unwrap();
            assert!(lease.released, "{key}: {lease:?}");
        }
    });

    // From a laptop: status shows every server replicated.
    let status = ok(&rehost(&laptop, None)
        .args(["status", "fleet.yaml", "--output", "json"])
        .run());
    let doc: Value = serde_json::from_str(&status).unwrap();
    for s in doc["servers"].as_array().unwrap() {
        assert_eq!(s["last_run"]["status"], "completed", "{s:#}");
        assert!(s["last_success"]["ami_id"].is_string(), "{s:#}");
    }
}
