//! Replication against the moto emulator: seeds from every source format, increments,
//! idempotent re-runs, retention, encryption and the JSON report.

mod common;

use common::*;
use rehost_replication::manifest::BLOCK_SIZE;
use rehost_replication::{ReportStatus, ServerKey, StateStore};
use rehost_testkit::Moto;

const BLOCK: u64 = BLOCK_SIZE as u64;

/// 40 blocks minus 64 KiB: random, written zeros, holes, and a short last block.
fn seed_layout() -> Vec<(u64, u64, Fill)> {
    vec![
        (0, 6, Fill::Random),
        (6, 4, Fill::Zeros),
        (10, 8, Fill::Hole),
        (18, 10, Fill::Random),
        (28, 4, Fill::Zeros),
        (32, 3, Fill::Random),
        (35, 5, Fill::Random),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_from_every_format_reads_back_exactly() {
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("seed.raw");
    write_raw(&raw, 40 * BLOCK - 64 * 1024, &seed_layout(), 7);
    let expected = raw_blocks(&raw);
    let nonzero = expected.iter().filter(|b| b.is_some()).count() as u64;

    let rep = replicator(
        &moto.endpoint(),
        &dir.path().join("state.db"),
        test_options(),
    )
    .await;
    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    let ebs = aws_sdk_ebs::Client::new(&sdk);
    let mut sources = vec![("raw".to_string(), raw.clone())];
    for f in FORMATS {
        sources.push((f.to_string(), convert(&raw, dir.path(), f)));
    }
    for (format, path) in &sources {
        let report = rep
            .replicate(&job("seed", &format!("srv-{format}"), &[("disk0", path)]))
            .await;
        assert_eq!(
            report.status,
            ReportStatus::Completed,
            "{format}: {:?}",
            report.error
        );
        let snap = &report.snapshots[0];
        assert_eq!(snap.blocks_total, 40, "{format}");
        assert_eq!(
            snap.blocks_uploaded, nonzero,
            "{format}: only non-zero blocks are sent in a seed"
        );
        assert_eq!(snap.parent_snapshot_id, None);
        // Holes are never read (the written zeros of the raw file are; qemu formats may drop them).
        // qemu's VHDX driver reports no allocation map (`qemu-img map` says all data), so a VHDX
        // scan reads its unallocated regions too; they are zeros and still not sent.
        if format != "vhdx" {
            assert!(
                snap.blocks_scanned <= 40 - 8,
                "{format}: scanned {}",
                snap.blocks_scanned
            );
        }
        let blocks = read_snapshot(&ebs, &snap.snapshot_id).await;
        assert_seed_matches(&blocks, &expected, format);
        assert!(report.ami_id.is_some());
    }
}

/// Reads a snapshot chain back into a full disk: the parent's blocks overlaid with the child's.
/// (The emulator's children do not inherit their parent's blocks, so the overlay is explicit.)
async fn read_chain(
    ebs: &aws_sdk_ebs::Client,
    ids: &[&str],
    blocks: usize,
) -> Vec<Option<Vec<u8>>> {
    let mut disk: Vec<Option<Vec<u8>>> = vec![None; blocks];
    for id in ids {
        for (i, data) in read_snapshot(ebs, id).await {
            disk[i as usize] = if data.iter().all(|&b| b == 0) {
                None
            } else {
                Some(data)
            };
        }
    }
    disk
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increment_sends_exactly_the_changed_blocks() {
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("inc.raw");
    write_raw(
        &raw,
        48 * BLOCK,
        &[
            (0, 30, Fill::Random),
            (30, 10, Fill::Zeros),
            (40, 8, Fill::Random),
        ],
        11,
    );
    let state = dir.path().join("state.db");
    let rep = replicator(&moto.endpoint(), &state, test_options()).await;
    let ebs = aws_sdk_ebs::Client::new(&sdk_config(&moto.endpoint(), &Default::default()).await);
    let job = job("inc", "db1", &[("disk0", &raw)]);

    let seed = rep.replicate(&job).await;
    assert_eq!(seed.status, ReportStatus::Completed, "{:?}", seed.error);
    assert_eq!(seed.snapshots[0].blocks_uploaded, 38);

    // k = 5 scattered changes; block 20 (random before) becomes zeros, block 35 (zeros before)
    // becomes data.
    let changed = [2u64, 20, 29, 35, 47];
    change_blocks(&raw, &changed, Some(20), 99);
    let inc = rep.replicate(&job).await;
    assert_eq!(inc.status, ReportStatus::Completed, "{:?}", inc.error);
    let s = &inc.snapshots[0];
    assert_eq!(
        s.blocks_uploaded,
        changed.len() as u64,
        "exactly the changed blocks are sent"
    );
    assert_eq!(s.bytes_uploaded, changed.len() as u64 * BLOCK);
    assert_eq!(
        s.parent_snapshot_id.as_deref(),
        Some(seed.snapshots[0].snapshot_id.as_str())
    );
    assert_ne!(s.snapshot_id, seed.snapshots[0].snapshot_id);

    // The child holds exactly the new data of the changed blocks, the zeroed one included.
    let expected = raw_blocks(&raw);
    let child = read_snapshot(&ebs, &s.snapshot_id).await;
    assert_eq!(child.keys().copied().collect::<Vec<_>>(), changed.to_vec());
    for i in changed {
        let want = expected[i as usize]
            .clone()
            .unwrap_or_else(|| vec![0u8; BLOCK_SIZE]);
        assert!(
            child[&i] == want,
            "block {i} of the child differs from the new data"
        );
    }
    assert!(child[&20].iter().all(|&b| b == 0));
    // Parent + child = the changed disk.
    let disk = read_chain(&ebs, &[&seed.snapshots[0].snapshot_id, &s.snapshot_id], 48).await;
    assert!(disk == expected, "parent + child differ from the source");

    // Nothing changed: nothing sent, still a new snapshot and AMI on top of the last one.
    let same = rep.replicate(&job).await;
    assert_eq!(same.status, ReportStatus::Completed);
    assert_eq!(same.snapshots[0].blocks_uploaded, 0);
    assert_eq!(
        same.snapshots[0].parent_snapshot_id.as_deref(),
        Some(s.snapshot_id.as_str())
    );

    // The JSON report carries the names scripts rely on.
    let v = serde_json::to_value(&inc).unwrap();
    for key in ["server", "ami_id", "snapshots", "status"] {
        assert!(v.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(v["status"], "completed");
    for key in [
        "disk",
        "snapshot_id",
        "parent_snapshot_id",
        "blocks_total",
        "blocks_scanned",
        "blocks_uploaded",
        "bytes_uploaded",
        "seconds",
    ] {
        assert!(
            v["snapshots"][0].get(key).is_some(),
            "snapshot report lacks {key}"
        );
    }
    assert_eq!(v["snapshots"][0]["blocks_uploaded"], 5);

    // The state knows the latest AMI and the history.
    let store = rehost_replication::SqliteStore::open(&state).await.unwrap();
    let latest = store.latest_amis("inc").await.unwrap();
    assert_eq!(latest["db1"].ami_id, same.ami_id.clone().unwrap());
    let history = store
        .server_history(&ServerKey::new("inc", "db1"), 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history
            .iter()
            .all(|r| r.status == rehost_replication::state::RunStatus::Completed)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_disk_ami_with_encryption_tags_and_retention() {
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot.raw");
    let data = dir.path().join("data.qcow2");
    write_raw(&boot, 16 * BLOCK, &[(0, 16, Fill::Random)], 1);
    let data_raw = dir.path().join("data.raw");
    write_raw(&data_raw, 8 * BLOCK, &[(0, 4, Fill::Random)], 2);
    let converted = convert(&data_raw, dir.path(), "qcow2");
    std::fs::rename(&converted, &data).unwrap();

    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    let kms = aws_sdk_kms::Client::new(&sdk);
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let key = kms.create_key().send().await.unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    kms.create_alias()
        .alias_name("alias/rehost-retention")
        .target_key_id(&key_id)
        .send()
        .await
        .unwrap();

    let state = dir.path().join("state.db");
    let rep = replicator(&moto.endpoint(), &state, test_options()).await;
    let mut job = job("ret", "app1", &[("disk0", &boot), ("disk1", &data)]);
    job.keep_recent_amis = 2;
    job.encryption = Some(rehost_replication::Encryption {
        kms_key_id: Some("alias/rehost-retention".into()),
    });

    let mut reports = Vec::new();
    for round in 0..4u64 {
        if round > 0 {
            change_blocks(&boot, &[round], None, 100 + round);
        }
        let r = rep.replicate(&job).await;
        assert_eq!(
            r.status,
            ReportStatus::Completed,
            "round {round}: {:?}",
            r.error
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        if round > 0 {
            assert_eq!(r.snapshots[0].blocks_uploaded, 1, "round {round}");
            assert_eq!(r.snapshots[1].blocks_uploaded, 0, "round {round}");
        }
        reports.push(r);
    }

    // The AMI carries app, group, server, run id, license type, snapshot ids and encryption.
    // (The emulator ignores RegisterImage's block-device mappings, so the snapshot ids are
    // checked through the tags rehost puts on the image and through the state.)
    let last = reports.last().unwrap();
    let img = ec2
        .describe_images()
        .image_ids(last.ami_id.clone().unwrap())
        .send()
        .await
        .unwrap();
    let img = &img.images()[0];
    let tag = |k: &str| {
        img.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_string)
    };
    assert_eq!(tag("rehost:app").as_deref(), Some("ret"));
    assert_eq!(tag("rehost:group").as_deref(), Some("web"));
    assert_eq!(tag("rehost:server").as_deref(), Some("app1"));
    assert_eq!(tag("rehost:run-id").as_deref(), Some(last.run_id.as_str()));
    assert_eq!(tag("rehost:license-type").as_deref(), Some("BYOL"));
    assert_eq!(
        tag("rehost:snapshot:disk0").as_deref(),
        Some(last.snapshots[0].snapshot_id.as_str())
    );
    assert_eq!(
        tag("rehost:snapshot:disk1").as_deref(),
        Some(last.snapshots[1].snapshot_id.as_str())
    );
    assert_eq!(tag("rehost:encrypted").as_deref(), Some("true"));
    assert_eq!(tag("rehost:kms-key").as_deref(), Some(key_arn.as_str()));
    assert_eq!(tag("owner").as_deref(), Some("tests"));
    assert!(img.name().unwrap().starts_with("rehost-ret-app1-"));

    let store = rehost_replication::SqliteStore::open(&state).await.unwrap();
    let latest = &store.latest_amis("ret").await.unwrap()["app1"];
    assert_eq!(latest.ami_id, last.ami_id.clone().unwrap());
    assert_eq!(
        latest.snapshot_ids,
        vec![
            last.snapshots[0].snapshot_id.clone(),
            last.snapshots[1].snapshot_id.clone()
        ]
    );
    assert!(latest.encrypted);
    assert_eq!(latest.kms_key_id.as_deref(), Some(key_arn.as_str()));

    // Retention: the two newest AMIs remain; the older two are deregistered with their
    // snapshots, except snapshots a kept AMI still uses (disk1 never changed, but each run made
    // a new disk1 snapshot, so those of dropped runs go too).
    let remaining = ec2
        .describe_images()
        .owners("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:rehost:app")
                .values("ret")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut remaining: Vec<String> = remaining
        .images()
        .iter()
        .map(|i| i.image_id().unwrap().to_string())
        .collect();
    remaining.sort();
    let mut want: Vec<String> = reports[2..]
        .iter()
        .map(|r| r.ami_id.clone().unwrap())
        .collect();
    want.sort();
    assert_eq!(remaining, want);
    let deregistered: Vec<String> = reports
        .iter()
        .flat_map(|r| r.deregistered_amis.clone())
        .collect();
    assert_eq!(
        deregistered,
        vec![
            reports[0].ami_id.clone().unwrap(),
            reports[1].ami_id.clone().unwrap()
        ]
    );
    let deleted: std::collections::BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r.deleted_snapshots.clone())
        .collect();
    let expect_deleted: std::collections::BTreeSet<String> = reports[..2]
        .iter()
        .flat_map(|r| r.snapshots.iter().map(|s| s.snapshot_id.clone()))
        .collect();
    assert_eq!(deleted, expect_deleted);
    for id in &expect_deleted {
        let gone = ec2.describe_snapshots().snapshot_ids(id).send().await;
        assert!(
            gone.is_err() || gone.unwrap().snapshots().is_empty(),
            "snapshot {id} still exists"
        );
    }
    for r in &reports[2..] {
        for s in &r.snapshots {
            let kept = ec2
                .describe_snapshots()
                .snapshot_ids(&s.snapshot_id)
                .send()
                .await
                .unwrap();
            assert_eq!(
                kept.snapshots().len(),
                1,
                "kept snapshot {} was deleted",
                s.snapshot_id
            );
        }
    }

    // The next increment still finds its parent.
    change_blocks(&boot, &[9], None, 999);
    let next = rep.replicate(&job).await;
    assert_eq!(next.status, ReportStatus::Completed, "{:?}", next.error);
    assert_eq!(
        next.snapshots[0].parent_snapshot_id.as_deref(),
        Some(last.snapshots[0].snapshot_id.as_str())
    );
    assert_eq!(next.snapshots[0].blocks_uploaded, 1);
}

/// Issue 8 item 15: retention removes only AMIs and snapshots this application's state
/// recorded. An AMI of the same application and server made through another state file, and
/// one tagged by hand as rehost's (with a snapshot tag), are older than everything the state
/// below keeps, yet stay registered with their snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_removes_an_ami_the_state_did_not_record() {
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("boot.raw");
    write_raw(&boot, 4 * BLOCK, &[(0, 4, Fill::Random)], 7);
    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);

    // Another state file replicates the same server first.
    let other = replicator(
        &moto.endpoint(),
        &dir.path().join("other.db"),
        test_options(),
    )
    .await;
    let mut job = job("foreign", "web", &[("disk0", &boot)]);
    let theirs = other.replicate(&job).await;
    assert_eq!(theirs.status, ReportStatus::Completed, "{:?}", theirs.error);
    let their_ami = theirs.ami_id.clone().unwrap();

    // An image tagged by hand as the server's, naming its own snapshot (the one the emulator
    // maps for every image it registers).
    let hand_ami = ec2
        .register_image()
        .name("hand-made-web")
        .root_device_name("/dev/sda1")
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_string();
    let described = ec2
        .describe_images()
        .image_ids(&hand_ami)
        .send()
        .await
        .unwrap();
    let hand_snapshot = described.images()[0].block_device_mappings()[0]
        .ebs()
        .and_then(|e| e.snapshot_id())
        .unwrap()
        .to_string();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    ec2.create_tags()
        .resources(&hand_ami)
        .tags(tag("rehost:app", "foreign"))
        .tags(tag("rehost:server", "web"))
        .tags(tag("rehost:snapshot:disk0", &hand_snapshot))
        .send()
        .await
        .unwrap();

    // This state keeps one AMI: its own first one goes, nothing else does.
    let rep = replicator(
        &moto.endpoint(),
        &dir.path().join("state.db"),
        test_options(),
    )
    .await;
    job.keep_recent_amis = 1;
    let first = rep.replicate(&job).await;
    assert_eq!(first.status, ReportStatus::Completed, "{:?}", first.error);
    change_blocks(&boot, &[1], None, 70);
    let second = rep.replicate(&job).await;
    assert_eq!(second.status, ReportStatus::Completed, "{:?}", second.error);
    assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    let removed: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|r| r.deregistered_amis.clone())
        .collect();
    assert_eq!(removed, [first.ami_id.clone().unwrap()]);
    let deleted: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|r| r.deleted_snapshots.clone())
        .collect();
    assert_eq!(deleted, [first.snapshots[0].snapshot_id.clone()]);

    for ami in [&their_ami, &hand_ami, second.ami_id.as_ref().unwrap()] {
        let img = ec2.describe_images().image_ids(ami).send().await.unwrap();
        assert_eq!(
            img.images()
                .first()
                .and_then(|i| i.state())
                .map(|s| s.as_str()),
            Some("available"),
            "{ami} was deregistered"
        );
    }
    for snapshot in [&theirs.snapshots[0].snapshot_id, &hand_snapshot] {
        let found = ec2
            .describe_snapshots()
            .snapshot_ids(snapshot)
            .send()
            .await
            .unwrap();
        assert_eq!(found.snapshots().len(), 1, "{snapshot} was deleted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_kms_key_fails_fast_with_its_code() {
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("k.raw");
    write_raw(&raw, 2 * BLOCK, &[(0, 2, Fill::Random)], 3);
    let rep = replicator(
        &moto.endpoint(),
        &dir.path().join("state.db"),
        test_options(),
    )
    .await;
    let mut job = job("kms", "k1", &[("disk0", &raw)]);
    job.encryption = Some(rehost_replication::Encryption {
        kms_key_id: Some("alias/does-not-exist".into()),
    });
    let t = std::time::Instant::now();
    let r = rep.replicate(&job).await;
    assert_eq!(r.status, ReportStatus::Failed);
    let err = r.error.unwrap();
    assert!(
        err.contains("server k1")
            && err.contains("DescribeKey")
            && err.contains("NotFoundException"),
        "{err}"
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replicates_due_servers_and_stops_when_none_is_left() {
    use rehost_replication::schedule::Frequency;
    use rehost_replication::watch::{ScheduledJob, watch};
    init_tracing();
    let moto = Moto::shared();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("w.raw");
    write_raw(&raw, 2 * BLOCK, &[(0, 2, Fill::Random)], 4);
    let missing = dir.path().join("missing.raw");
    let rep = replicator(
        &moto.endpoint(),
        &dir.path().join("state.db"),
        test_options(),
    )
    .await;
    let entries = vec![
        ScheduledJob {
            job: job("watch", "once", &[("disk0", &raw)]),
            frequency: Frequency::Once,
            seed_time: None,
        },
        // A server whose run fails is retried at its next slot, an hour away: the loop keeps
        // going, so it is stopped from outside.
        ScheduledJob {
            job: job("watch", "broken", &[("disk0", &missing)]),
            frequency: Frequency::Hours(1),
            seed_time: None,
        },
    ];
    let mut reports = Vec::new();
    let shutdown = tokio::time::sleep(std::time::Duration::from_secs(5));
    watch(&rep, &entries, 2, shutdown, |r| reports.push(r.clone()))
        .await
        .unwrap();
    assert_eq!(reports.len(), 2, "each server ran once: {reports:?}");
    let once = reports.iter().find(|r| r.server == "once").unwrap();
    assert_eq!(once.status, ReportStatus::Completed);
    let broken = reports.iter().find(|r| r.server == "broken").unwrap();
    assert_eq!(broken.status, ReportStatus::Failed);
    assert!(broken.error.as_deref().unwrap().contains("missing.raw"));

    // Only the once server: done after its single success.
    let only_once = &entries[..1];
    let t = std::time::Instant::now();
    watch(&rep, only_once, 2, std::future::pending(), |_| {
        panic!("already replicated")
    })
    .await
    .unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_replicate_at_once_under_one_bound_on_blocks_in_flight() {
    use rehost_replication::watch::{ScheduledJob, replicate_all};
    use rehost_testkit::proxy::{Action, Proxy};
    init_tracing();
    let moto = Moto::shared();
    let proxy = Proxy::start(moto.port());
    // Each block takes a little while, as over a real uplink, so uploads overlap.
    proxy.set_policy(|req| {
        if req.operation == "PutSnapshotBlock" {
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
        Action::Forward
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = test_options();
    opts.upload_concurrency = 4;
    let rep = replicator(&proxy.endpoint(), &dir.path().join("state.db"), opts).await;
    let scheduled =
        |app: &str, servers: usize, blocks: u64| -> Vec<(ScheduledJob, std::path::PathBuf)> {
            (0..servers)
                .map(|n| {
                    let raw = dir.path().join(format!("{app}-{n}.raw"));
                    write_raw(
                        &raw,
                        blocks * BLOCK,
                        &[(0, blocks - 2, Fill::Random), (blocks - 2, 2, Fill::Zeros)],
                        100 + n as u64,
                    );
                    let job = ScheduledJob {
                        job: job(app, &format!("srv{n}"), &[("disk0", &raw)]),
                        frequency: rehost_replication::Frequency::Hours(1),
                        seed_time: None,
                    };
                    (job, raw)
                })
                .collect()
        };

    // Five servers, five at once, four blocks in flight in all.
    let five = scheduled("par", 5, 12);
    let jobs: Vec<ScheduledJob> = five.iter().map(|(j, _)| j.clone()).collect();
    let reports = replicate_all(&rep, &jobs, 5).await;
    let peak = proxy.peak_in_flight("PutSnapshotBlock");
    let servers_at_once = proxy.peak_snapshots_in_flight();
    assert!(peak <= 4, "{peak} blocks in flight, bound 4");
    assert!(peak >= 2, "uploads overlapped: {peak}");
    assert!(
        servers_at_once >= 2,
        "several servers were sending at once: {servers_at_once}"
    );
    let sdk = sdk_config(&moto.endpoint(), &Default::default()).await;
    let ebs = aws_sdk_ebs::Client::new(&sdk);
    assert_eq!(reports.len(), 5);
    for ((job, raw), report) in five.iter().zip(&reports) {
        assert_eq!(
            report.server, job.job.server,
            "reports in the order of the jobs"
        );
        assert_eq!(report.status, ReportStatus::Completed, "{:?}", report.error);
        assert_eq!(report.snapshots[0].blocks_uploaded, 10);
        let blocks = read_snapshot(&ebs, &report.snapshots[0].snapshot_id).await;
        assert_seed_matches(&blocks, &raw_blocks(raw), &job.job.server);
    }
    assert_eq!(proxy.blocks_sent_twice(), 0);

    // The same with one server at a time: never two snapshots in flight.
    proxy.reset_counters();
    let two = scheduled("serial", 2, 6);
    let jobs: Vec<ScheduledJob> = two.iter().map(|(j, _)| j.clone()).collect();
    let reports = replicate_all(&rep, &jobs, 1).await;
    assert!(reports.iter().all(|r| r.status == ReportStatus::Completed));
    assert_eq!(proxy.peak_snapshots_in_flight(), 1);
}
