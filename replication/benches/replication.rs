//! Replication benchmark on a 1 GiB image (run: `cargo bench -p rehost-replication`).
//!
//! Prints one table: seed scan throughput (xxh3 + zero check + SHA-256 of every block, 1 and 2
//! hashing threads) against `openssl dgst -sha256` on the same file; incremental scan throughput
//! (unchanged blocks need xxh3 only) against a plain sequential read with `dd`; wall time and
//! blocks sent of a seed run and of a 1%-change run against the moto emulator; peak RSS.
//! The image is read from the page cache (it was just written), so the scan figures are CPU
//! figures. Against the emulator only "blocks sent" compares across tools: moto spends about
//! 3 ms of CPU per PutSnapshotBlock.
//!
//! Then parallel replication (alone: `-- parallel`): 16 servers of 32 MiB each seeded with
//! `--parallel` 1, 4 and 16, each in a child process of its own (this binary again,
//! `--parallel-child N`) so that each peak RSS is its own, with wall time and blocks sent. Last, a state of 1,000 servers on S3 (in moto): reading every server's
//! history as `status` does, and the latest AMIs as `render` does.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rehost_replication::manifest::{BLOCK_SIZE, Manifest};
use rehost_replication::scan::{self, Reference, ScanConfig, ScanShared};
use rehost_replication::source::{DiskSource, QemuTools};
use rehost_replication::watch::{ScheduledJob, replicate_all};
use rehost_replication::{ProgressMode, ReportStatus};
use rehost_testkit::Moto;

const GIB: u64 = 1 << 30;
const BLOCKS: u64 = GIB / BLOCK_SIZE as u64;

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// Scans the image; returns the time and the manifest.
fn scan_once(
    path: &Path,
    threads: usize,
    parent: Option<Arc<Manifest>>,
) -> (Duration, Manifest, u64) {
    let t = Instant::now();
    let source = DiskSource::open(path, None, &QemuTools::default()).expect("open");
    let n = source.block_count();
    let mut s = scan::start(
        source,
        n,
        Arc::new(Reference {
            parent,
            written: Default::default(),
        }),
        ScanConfig {
            hash_threads: threads,
            queue: 16,
        },
        &ScanShared::new(2 * 16 + 3 * threads + 2, threads),
    );
    let mut manifest = Manifest::with_len(n);
    let mut to_send = 0;
    while let Some(b) = s.blocks.blocking_recv() {
        manifest.set(b.index, b.hash);
        to_send += u64::from(b.upload.is_some());
    }
    (t.elapsed(), manifest, to_send)
}

fn time_command(cmd: &mut Command) -> Duration {
    let t = Instant::now();
    let status = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "{cmd:?} failed"
    );
    t.elapsed()
}

fn best_of<T>(runs: usize, mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    let mut best = f();
    for _ in 1..runs {
        let r = f();
        if r.0 < best.0 {
            best = r;
        }
    }
    best
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

const PARALLEL_SERVERS: usize = 16;
const PARALLEL_IMAGE: u64 = 32 << 20;

fn parallel_image(dir: &Path, n: usize) -> std::path::PathBuf {
    dir.join(format!("par-{n}.raw"))
}

/// The child of the parallel measure: seeds every server with `parallel` at once, prints the
/// wall time and its own peak RSS.
fn parallel_child(parallel: usize) {
    let endpoint = std::env::var("REHOST_BENCH_ENDPOINT").expect("endpoint");
    let dir = std::path::PathBuf::from(std::env::var("REHOST_BENCH_DIR").expect("dir"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (seconds, sent) = rt.block_on(async {
        let mut opts = test_options();
        opts.upload_concurrency = 16;
        let state = dir.join(format!("parallel-{parallel}.db"));
        let rep = replicator(&endpoint, &state, opts).await;
        let jobs: Vec<ScheduledJob> = (0..PARALLEL_SERVERS)
            .map(|n| ScheduledJob {
                job: job(
                    &format!("par{parallel}"),
                    &format!("srv{n}"),
                    &[("disk0", &parallel_image(&dir, n))],
                ),
                frequency: rehost_replication::Frequency::Once,
                seed_time: None,
            })
            .collect();
        let t = Instant::now();
        let reports = replicate_all(&rep, &jobs, parallel).await;
        let seconds = t.elapsed().as_secs_f64();
        for r in &reports {
            assert_eq!(r.status, ReportStatus::Completed, "{:?}", r.error);
        }
        let sent: u64 = reports
            .iter()
            .flat_map(|r| &r.snapshots)
            .map(|s| s.blocks_uploaded)
            .sum();
        (seconds, sent)
    });
    println!("RESULT {seconds:.2} {:.1} {sent}", peak_rss_mib());
}

/// The 1-minute load average, to say how busy the machine was while a time was measured.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

const ESTATE: usize = 1000;

/// Reading a 1,000-server state on S3: (seconds to write it, to read every server's history as
/// `status` does, to read the latest AMIs as `render` does).
async fn estate_on_s3(moto: &Moto) -> (f64, f64, f64) {
    use futures_util::stream::{self, StreamExt};
    use rehost_replication::AmiRecord;
    use rehost_replication::state::s3::{BucketEncryption, S3Options, S3Store};
    use rehost_replication::state::{ServerKey, StateStore, read_histories};
    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    S3Store::init(
        &sdk,
        "rehost-bench-state",
        "team",
        BucketEncryption::S3Managed,
    )
    .await
    .expect("state init");
    let store = S3Store::open(&sdk, "rehost-bench-state", "team", S3Options::default())
        .await
        .expect("open");
    let keys: Vec<ServerKey> = (0..ESTATE)
        .map(|n| ServerKey::new("estate", format!("srv{n:04}")))
        .collect();
    let t = Instant::now();
    stream::iter(&keys)
        .for_each_concurrent(32, |key| {
            let store = store.clone();
            async move {
                let now = time::OffsetDateTime::now_utc();
                let (run, _) = store.begin_run(key, "g", now).await.unwrap();
                let ami = AmiRecord {
                    ami_id: format!("ami-{}", key.server),
                    name: format!("rehost-estate-{}", key.server),
                    run_id: run.run_id.clone(),
                    created_at: now,
                    snapshot_ids: vec![format!("snap-{}", key.server)],
                    encrypted: false,
                    kms_key_id: None,
                };
                store
                    .complete_run(key, &run.run_id, &ami, &Default::default(), now)
                    .await
                    .unwrap();
            }
        })
        .await;
    let written = t.elapsed().as_secs_f64();
    let reader = S3Store::open(&sdk, "rehost-bench-state", "team", S3Options::default())
        .await
        .expect("open");
    let t = Instant::now();
    let histories = read_histories(&reader, &keys, 50).await.expect("histories");
    let status = t.elapsed().as_secs_f64();
    assert!(histories.iter().all(|h| h.len() == 1));
    let t = Instant::now();
    let amis = reader.latest_amis("estate").await.expect("latest AMIs");
    let latest = t.elapsed().as_secs_f64();
    assert_eq!(amis.len(), ESTATE);
    (written, status, latest)
}

/// One `--parallel` measure: seconds, peak RSS in MiB, blocks sent, load average at its end.
struct ParallelRun {
    seconds: f64,
    rss: f64,
    sent: u64,
    load: f64,
}

/// Runs `parallel_child` in a child process.
fn measure_parallel(moto: &Moto, dir: &Path, parallel: usize) -> ParallelRun {
    moto.reset();
    let out = Command::new(std::env::current_exe().expect("bench binary"))
        .args(["--bench", "--parallel-child", &parallel.to_string()])
        .env("REHOST_BENCH_ENDPOINT", moto.endpoint())
        .env("REHOST_BENCH_DIR", dir)
        .output()
        .expect("parallel child");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("child result");
    let mut parts = line.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    let mut next = || parts.next().expect("three figures");
    ParallelRun {
        seconds: next(),
        rss: next(),
        sent: next() as u64,
        load: load_average(),
    }
}

/// Writes the 16 parallel images; then measures `--parallel` 1, 4 and 16 (the image writes
/// cost nothing in the children's RSS: each child is its own process).
fn parallel_runs(moto: &Moto, dir: &Path) -> Vec<(usize, ParallelRun)> {
    for n in 0..PARALLEL_SERVERS {
        let blocks = PARALLEL_IMAGE / BLOCK_SIZE as u64;
        write_raw(
            &parallel_image(dir, n),
            PARALLEL_IMAGE,
            &[(0, blocks, Fill::Random)],
            500 + n as u64,
        );
    }
    [1, 4, 16]
        .into_iter()
        .map(|n| (n, measure_parallel(moto, dir, n)))
        .collect()
}

fn print_parallel(parallel: &[(usize, ParallelRun)]) {
    println!(
        "\n{PARALLEL_SERVERS} servers × {} MiB seeded, each --parallel in its own process\n",
        PARALLEL_IMAGE >> 20
    );
    println!("| --parallel | peak RSS | wall time | blocks sent | load average (1 min) |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (n, r) in parallel {
        println!(
            "| {n} | {:.1} MiB | {:.1} s | {} | {:.2} |",
            r.rss, r.seconds, r.sent, r.load
        );
    }
    println!();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would too: only run under bench.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--parallel-child") {
        parallel_child(args[i + 1].parse().expect("parallel"));
        return;
    }
    // `cargo bench -p rehost-replication --bench replication -- parallel`: that measure alone.
    if args.iter().any(|a| a == "parallel") {
        let dir = tempfile::tempdir().unwrap();
        let moto = Moto::start();
        print_parallel(&parallel_runs(&moto, dir.path()));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("bench.raw");
    write_raw(&image, GIB, &[(0, BLOCKS, Fill::Random)], 2024);
    let path = image.to_string_lossy().to_string();
    // Warm the page cache for everyone.
    time_command(Command::new("dd").args([
        format!("if={path}").as_str(),
        "of=/dev/null",
        "bs=512K",
    ]));

    let (openssl, _) = best_of(3, || {
        (
            time_command(Command::new("openssl").args(["dgst", "-sha256", &path])),
            (),
        )
    });
    let (dd, _) = best_of(3, || {
        (
            time_command(Command::new("dd").args([
                format!("if={path}").as_str(),
                "of=/dev/null",
                "bs=512K",
            ])),
            (),
        )
    });
    let (seed1, _) = best_of(3, || {
        let (d, m, _) = scan_once(&image, 1, None);
        (d, m)
    });
    let (seed2, manifest) = best_of(3, || {
        let (d, m, _) = scan_once(&image, 2, None);
        (d, m)
    });
    let parent = Arc::new(manifest);
    let (inc2, sent) = best_of(3, || {
        let (d, _, s) = scan_once(&image, 2, Some(Arc::clone(&parent)));
        (d, s)
    });
    assert_eq!(sent, 0, "an unchanged image has nothing to send");

    // Against the emulator.
    let moto = Moto::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (seed_run, inc_run, changed) = rt.block_on(async {
        let mut opts = test_options();
        opts.progress = ProgressMode::Quiet;
        opts.upload_concurrency = 16;
        let rep = replicator(&moto.endpoint(), &dir.path().join("state.db"), opts).await;
        let job = job("bench", "bench1", &[("disk0", &image)]);
        let t = Instant::now();
        let seed = rep.replicate(&job).await;
        let seed_time = t.elapsed();
        assert_eq!(seed.status, ReportStatus::Completed, "{:?}", seed.error);
        // 1% of the blocks, scattered.
        let changed: Vec<u64> = (0..BLOCKS / 100 + 1)
            .map(|i| (i * 97 + 13) % BLOCKS)
            .collect();
        change_blocks(&image, &changed, None, 77);
        let t = Instant::now();
        let inc = rep.replicate(&job).await;
        let inc_time = t.elapsed();
        assert_eq!(inc.status, ReportStatus::Completed, "{:?}", inc.error);
        ((seed_time, seed), (inc_time, inc), changed.len())
    });
    let rss = peak_rss_mib();

    // Parallel replication: the same 16 servers with 1, 4 and 16 at once.
    let parallel = parallel_runs(&moto, dir.path());
    moto.reset();
    let estate = rt.block_on(estate_on_s3(&moto));

    let row =
        |what: &str, value: String, note: &str| println!("| {what:<44} | {value:>14} | {note} |");
    println!(
        "\nrehost replication benchmark: 1 GiB raw image of random data ({BLOCKS} blocks of 512 KiB), 2 cores\n"
    );
    println!("| {:<44} | {:>14} | reference |", "measure", "value");
    println!("|{}|{}|{}|", "-".repeat(46), "-".repeat(16), "-".repeat(40));
    row(
        "openssl dgst -sha256 (one core, SHA-NI)",
        format!("{:.0} MiB/s", mib_s(GIB, openssl)),
        "seed floor",
    );
    row(
        "seed scan, 1 hashing thread",
        format!("{:.0} MiB/s", mib_s(GIB, seed1)),
        "xxh3 + zero check + SHA-256",
    );
    row(
        "seed scan, 2 hashing threads",
        format!("{:.0} MiB/s", mib_s(GIB, seed2)),
        "goal: beat openssl",
    );
    row(
        "dd bs=512K (sequential read)",
        format!("{:.0} MiB/s", mib_s(GIB, dd)),
        "incremental floor",
    );
    row(
        "incremental scan, nothing changed",
        format!("{:.0} MiB/s", mib_s(GIB, inc2)),
        "xxh3 only, no SHA-256",
    );
    let (st, s) = &seed_run;
    row(
        "seed run against moto",
        format!("{:.1} s", st.as_secs_f64()),
        &format!("{} blocks sent", s.snapshots[0].blocks_uploaded),
    );
    let (it, i) = &inc_run;
    row(
        "1% change run against moto",
        format!("{:.1} s", it.as_secs_f64()),
        &format!(
            "{} blocks sent ({changed} changed)",
            i.snapshots[0].blocks_uploaded
        ),
    );
    row(
        "peak RSS of the benchmark process",
        format!("{rss:.0} MiB"),
        "VmHWM; image in page cache",
    );
    let (written, status, latest) = estate;
    row(
        "status reads of 1,000 servers, S3 state",
        format!("{status:.2} s"),
        &format!("32 at a time, against moto (written in {written:.1} s)"),
    );
    row(
        "latest AMIs of 1,000 servers, S3 state",
        format!("{latest:.2} s"),
        "one LIST, then 32 GETs at a time",
    );
    print_parallel(&parallel);
}
