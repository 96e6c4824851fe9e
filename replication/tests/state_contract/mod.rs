//! The state-store contract: every behaviour the engine and the CLI rely on, written against
//! `&dyn StateStore`, one test per behaviour. A backend runs the whole suite with one line,
//! `state_contract::suite!(name, fixture)`, where the fixture opens handles on one fresh store
//! and can damage stored text the way a broken or newer store would.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use rehost_replication::manifest::{Manifest, block_hash};
use rehost_replication::state::{
    AmiRecord, NewSnapshot, RunPhase, RunStatus, ServerKey, SnapshotCounts, SnapshotStatus,
    StateError, StateStore, WrittenBlock,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

/// Stored text to overwrite, as a damaged store (or a newer rehost) would hold it.
#[derive(Debug, Clone, Copy)]
pub enum Damage<'a> {
    RunStatus { run_id: &'a str, text: &'a str },
    RunPhase { run_id: &'a str, text: &'a str },
    SnapshotStatus { snapshot_id: &'a str, text: &'a str },
}

/// One fresh store of a backend.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A handle on the store; each call is another handle on the same store, as another
    /// process would open it.
    async fn open(&self) -> Arc<dyn StateStore>;
    /// Overwrites stored text behind the store's back.
    async fn damage(&self, damage: Damage<'_>);
}

/// Instantiates the whole contract for a backend: `suite!(sqlite, SqliteFixture::new())`
/// makes a module `sqlite` with one test per behaviour, each with a fixture of its own.
macro_rules! suite {
    ($backend:ident, $fixture:expr) => {
        $crate::state_contract::suite!(@tests $backend, $fixture, [
            a_second_holder_of_the_lock_is_refused,
            runs_resume_and_only_completed_runs_give_amis,
            one_run_per_server_is_in_progress,
            a_failed_run_keeps_its_error_until_it_completes,
            history_is_newest_first_and_limited,
            the_ami_name_of_a_run_is_fixed_once,
            snapshots_go_open_completing_completed,
            a_snapshot_recorded_twice_is_recorded_once,
            partial_counts_add_up_while_open,
            written_blocks_manifest_and_linear_checksum,
            abandoned_snapshots_are_forgotten_then_deleted,
            the_parent_is_the_newest_completed_snapshot_of_the_disk,
            newest_snapshot_per_disk,
            latest_amis_are_per_server_and_newest,
            records_of_one_server_are_not_seen_through_another,
            unknown_status_text_is_corrupt,
        ]);
    };
    (@tests $backend:ident, $fixture:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = $fixture;
                    $crate::state_contract::$test(&fixture).await;
                }
            )*
        }
    };
}
pub(crate) use suite;

fn key(server: &str) -> ServerKey {
    ServerKey::new("shop", server)
}

fn ami(id: &str, run: &str, at: OffsetDateTime) -> AmiRecord {
    AmiRecord {
        ami_id: id.into(),
        name: format!("rehost-shop-web-{id}"),
        run_id: run.into(),
        created_at: at,
        snapshot_ids: vec!["snap-1".into()],
        encrypted: false,
        kms_key_id: None,
    }
}

fn new_snapshot(id: &str, run_id: &str, disk: &str) -> NewSnapshot {
    NewSnapshot {
        snapshot_id: id.into(),
        run_id: run_id.into(),
        disk: disk.into(),
        parent_snapshot_id: None,
        volume_size_gib: 1,
        block_count: 2048,
        encrypted: false,
        kms_key_arn: None,
    }
}

fn block(i: u64) -> WrittenBlock {
    WrittenBlock {
        index: i,
        xxh3: block_hash(&i.to_le_bytes()),
        sha256: Sha256::digest(i.to_le_bytes()).into(),
    }
}

/// A run of `server` begun now, with snapshot `id` of disk0 open in it; returns the run id.
async fn open_snapshot(s: &dyn StateStore, server: &ServerKey, id: &str) -> String {
    let now = OffsetDateTime::now_utc();
    let (run, _) = s.begin_run(server, "back", now).await.unwrap();
    s.insert_snapshot(server, &new_snapshot(id, &run.run_id, "disk0"), now)
        .await
        .unwrap();
    run.run_id
}

/// A run of `server` begun at `at`, with snapshot `id` of `disk` taken through completing to
/// completed at `done`.
async fn completed_snapshot(
    s: &dyn StateStore,
    server: &ServerKey,
    id: &str,
    disk: &str,
    at: OffsetDateTime,
    done: OffsetDateTime,
) -> String {
    let (run, _) = s.begin_run(server, "front", at).await.unwrap();
    s.insert_snapshot(server, &new_snapshot(id, &run.run_id, disk), at)
        .await
        .unwrap();
    s.mark_completing(
        server,
        id,
        &Manifest::from_hashes(vec![block(0).xxh3]),
        &SnapshotCounts::default(),
    )
    .await
    .unwrap();
    s.mark_snapshot_completed(server, id, done).await.unwrap();
    run.run_id
}

pub async fn a_second_holder_of_the_lock_is_refused(f: &dyn Fixture) {
    let a = f.open().await;
    let lock = a.lock_app("shop").await.unwrap();
    assert_eq!(lock.app(), "shop");
    // Another process would open its own store; a second handle behaves the same.
    let b = f.open().await;
    let err = b.lock_app("shop").await.unwrap_err();
    assert!(matches!(err, StateError::Locked { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("'shop'") && msg.contains(&std::process::id().to_string()),
        "{msg}"
    );
    // Other applications are independent.
    let _other = b.lock_app("crm").await.unwrap();
    drop(lock);
    let _again = b.lock_app("shop").await.unwrap();
}

pub async fn runs_resume_and_only_completed_runs_give_amis(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, resumed) = s.begin_run(&web, "front", t0).await.unwrap();
    assert!(!resumed);
    assert!(run.run_id.starts_with("20250301T100000Z-"));
    // Killed (still "running") or failed: the next call resumes the same run.
    let (again, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(5))
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!(again.run_id, run.run_id);
    assert_eq!(again.attempts, 2);
    s.fail_run(
        &web,
        &run.run_id,
        "boom",
        &BTreeMap::new(),
        t0 + time::Duration::minutes(6),
    )
    .await
    .unwrap();
    assert!(s.latest_amis("shop").await.unwrap().is_empty());
    assert_eq!(s.last_times(&web).await.unwrap().0, None, "no success yet");

    let (third, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(7))
        .await
        .unwrap();
    assert!(resumed);
    let done_at = t0 + time::Duration::minutes(9);
    s.complete_run(
        &web,
        &third.run_id,
        &ami("ami-1", &third.run_id, done_at),
        &BTreeMap::new(),
        done_at,
    )
    .await
    .unwrap();
    let latest = s.latest_amis("shop").await.unwrap();
    assert_eq!(latest["web"].ami_id, "ami-1");
    let (success, attempt) = s.last_times(&web).await.unwrap();
    assert_eq!(success, Some(done_at));
    assert_eq!(attempt, Some(t0 + time::Duration::minutes(7)));

    // A new run after a completed one is a new run; until it completes the old AMI stays latest.
    let (next, resumed) = s
        .begin_run(&web, "front", t0 + time::Duration::hours(2))
        .await
        .unwrap();
    assert!(!resumed);
    assert_ne!(next.run_id, run.run_id);
    assert_eq!(s.latest_amis("shop").await.unwrap()["web"].ami_id, "ami-1");
    let history = s.server_history(&web, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, RunStatus::Running);
    assert_eq!(history[1].status, RunStatus::Completed);
    assert_eq!(history[1].ami_id.as_deref(), Some("ami-1"));

    // A deregistered AMI is no longer offered.
    s.mark_ami_deregistered(&web, "ami-1").await.unwrap();
    assert!(s.latest_amis("shop").await.unwrap().is_empty());
}

pub async fn one_run_per_server_is_in_progress(f: &dyn Fixture) {
    let s = f.open().await;
    let now = datetime!(2025-03-01 10:00 UTC);
    let (web, _) = s.begin_run(&key("web"), "front", now).await.unwrap();
    let (db, resumed) = s.begin_run(&key("db"), "back", now).await.unwrap();
    assert!(!resumed, "another server's run is not resumed");
    assert_ne!(web.run_id, db.run_id);
    let other_app = ServerKey::new("crm", "web");
    let (crm, resumed) = s.begin_run(&other_app, "front", now).await.unwrap();
    assert!(
        !resumed,
        "nor another application's server of the same name"
    );
    assert_ne!(crm.run_id, web.run_id);
    let (again, resumed) = s
        .begin_run(&key("web"), "front-renamed", now)
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!(again.run_id, web.run_id);
    assert_eq!(again.group, "front-renamed", "the group follows the file");
    assert_eq!(again.status, RunStatus::Running);
    assert_eq!(s.server_history(&key("web"), 10).await.unwrap().len(), 1);
}

pub async fn a_failed_run_keeps_its_error_until_it_completes(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, _) = s.begin_run(&web, "front", t0).await.unwrap();
    s.set_phase(&web, &run.run_id, RunPhase::Uploading)
        .await
        .unwrap();
    assert_eq!(
        s.run(&web, &run.run_id).await.unwrap().unwrap().phase,
        RunPhase::Uploading
    );
    let timings = BTreeMap::from([("disk0".to_string(), 1.5), ("total".to_string(), 2.0)]);
    let failed_at = t0 + time::Duration::minutes(1);
    s.fail_run(
        &web,
        &run.run_id,
        "disk0: AccessDenied",
        &timings,
        failed_at,
    )
    .await
    .unwrap();
    let failed = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.phase, RunPhase::Failed);
    assert_eq!(failed.error.as_deref(), Some("disk0: AccessDenied"));
    assert_eq!(failed.timings, timings);
    assert_eq!(failed.finished_at, Some(failed_at));

    let (resumed, _) = s
        .begin_run(&web, "front", t0 + time::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(resumed.status, RunStatus::Running);
    assert_eq!(
        resumed.error, None,
        "a resumed run starts without the error"
    );
    let done = t0 + time::Duration::minutes(3);
    s.complete_run(
        &web,
        &run.run_id,
        &ami("ami-1", &run.run_id, done),
        &timings,
        done,
    )
    .await
    .unwrap();
    let completed = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(completed.status, RunStatus::Completed);
    assert_eq!(completed.phase, RunPhase::Completed);
    assert_eq!(completed.ami_id.as_deref(), Some("ami-1"));
    assert_eq!(completed.ami_name.as_deref(), Some("rehost-shop-web-ami-1"));
    assert_eq!(completed.error, None);
    assert_eq!(completed.finished_at, Some(done));
}

pub async fn history_is_newest_first_and_limited(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let mut runs = Vec::new();
    for hour in 0..3 {
        let at = t0 + time::Duration::hours(hour);
        let (run, _) = s.begin_run(&web, "front", at).await.unwrap();
        s.complete_run(
            &web,
            &run.run_id,
            &ami(&format!("ami-{hour}"), &run.run_id, at),
            &BTreeMap::new(),
            at,
        )
        .await
        .unwrap();
        runs.push(run.run_id);
    }
    let history = s.server_history(&web, 2).await.unwrap();
    let ids: Vec<&str> = history.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, [runs[2].as_str(), runs[1].as_str()]);
    assert!(s.server_history(&key("db"), 10).await.unwrap().is_empty());
    assert_eq!(s.last_times(&key("db")).await.unwrap(), (None, None));
}

pub async fn the_ami_name_of_a_run_is_fixed_once(f: &dyn Fixture) {
    let s = f.open().await;
    let web = key("web");
    let (run, _) = s
        .begin_run(&web, "front", OffsetDateTime::now_utc())
        .await
        .unwrap();
    let first = s
        .ami_name_for(&web, &run.run_id, "rehost-shop-web-1")
        .await
        .unwrap();
    assert_eq!(first, "rehost-shop-web-1");
    let again = s
        .ami_name_for(&web, &run.run_id, "rehost-shop-web-2")
        .await
        .unwrap();
    assert_eq!(again, "rehost-shop-web-1", "a resumed run keeps its name");
    let read = s.run(&web, &run.run_id).await.unwrap().unwrap();
    assert_eq!(read.ami_name.as_deref(), Some("rehost-shop-web-1"));
}

pub async fn snapshots_go_open_completing_completed(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, _) = s.begin_run(&db, "back", t0).await.unwrap();
    let mut new = new_snapshot("snap-a", &run.run_id, "disk0");
    new.parent_snapshot_id = Some("snap-parent".into());
    new.encrypted = true;
    new.kms_key_arn = Some("arn:aws:kms:us-east-1:1:key/k".into());
    let rec = s.insert_snapshot(&db, &new, t0).await.unwrap();
    assert_eq!(rec.status, SnapshotStatus::Open);
    assert_eq!(rec.run_id, run.run_id);
    assert_eq!(rec.parent_snapshot_id.as_deref(), Some("snap-parent"));
    assert!(rec.encrypted);
    assert_eq!(rec.kms_key_arn, new.kms_key_arn);
    assert_eq!((rec.volume_size_gib, rec.block_count), (1, 2048));
    assert_eq!(rec.started_at, t0);
    assert_eq!(rec.completed_at, None);
    assert_eq!(
        s.run_snapshot(&db, &run.run_id, "disk0").await.unwrap(),
        Some(rec.clone())
    );
    assert_eq!(
        s.run_snapshot(&db, &run.run_id, "disk1").await.unwrap(),
        None
    );
    assert_eq!(s.snapshot_manifest(&db, "snap-a").await.unwrap(), None);

    let manifest = Manifest::from_hashes(vec![block(0).xxh3, block(1).xxh3]);
    let counts = SnapshotCounts {
        blocks_total: 2,
        blocks_scanned: 2,
        blocks_uploaded: 2,
        bytes_uploaded: 1 << 20,
        blocks_changed: 2,
        seconds: 1.5,
    };
    s.mark_completing(&db, "snap-a", &manifest, &counts)
        .await
        .unwrap();
    let completing = s.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(completing.status, SnapshotStatus::Completing);
    assert_eq!(completing.counts, counts);
    assert_eq!(
        s.snapshot_manifest(&db, "snap-a").await.unwrap(),
        Some(manifest)
    );

    let done = t0 + time::Duration::minutes(1);
    s.mark_snapshot_completed(&db, "snap-a", done)
        .await
        .unwrap();
    let completed = s.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(completed.status, SnapshotStatus::Completed);
    assert_eq!(completed.completed_at, Some(done));
    let run = s.run(&db, &run.run_id).await.unwrap().unwrap();
    assert_eq!(run.snapshot_ids(), vec!["snap-a".to_string()]);
    assert_eq!(run.snapshots[0], completed);
}

pub async fn a_snapshot_recorded_twice_is_recorded_once(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, _) = s.begin_run(&db, "back", t0).await.unwrap();
    let first = s
        .insert_snapshot(&db, &new_snapshot("snap-a", &run.run_id, "disk0"), t0)
        .await
        .unwrap();
    s.record_written(&db, "snap-a", &[block(1)]).await.unwrap();
    // A retried StartSnapshot answers with the same id: recording it again changes nothing.
    let again = s
        .insert_snapshot(
            &db,
            &new_snapshot("snap-a", &run.run_id, "disk0"),
            t0 + time::Duration::minutes(1),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(s.written_blocks(&db, "snap-a").await.unwrap(), [block(1)]);
}

pub async fn partial_counts_add_up_while_open(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    open_snapshot(&*s, &db, "snap-a").await;
    let attempt = SnapshotCounts {
        blocks_uploaded: 3,
        bytes_uploaded: 3 << 19,
        seconds: 2.0,
        ..Default::default()
    };
    s.add_partial_counts(&db, "snap-a", &attempt).await.unwrap();
    s.add_partial_counts(&db, "snap-a", &attempt).await.unwrap();
    let last = SnapshotCounts {
        blocks_total: 10,
        blocks_scanned: 10,
        blocks_uploaded: 4,
        bytes_uploaded: 4 << 19,
        blocks_changed: 10,
        seconds: 1.0,
    };
    s.mark_completing(&db, "snap-a", &Manifest::with_len(10), &last)
        .await
        .unwrap();
    // Not open any more: a late partial count is not added.
    s.add_partial_counts(&db, "snap-a", &attempt).await.unwrap();
    let rec = s.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(
        rec.counts.blocks_uploaded, 10,
        "3 + 3 from interrupted attempts, 4 from the last"
    );
    assert_eq!(rec.counts.bytes_uploaded, 10 << 19);
    assert_eq!(rec.counts.seconds, 5.0);
    assert_eq!(rec.counts.blocks_changed, 10);
}

pub async fn written_blocks_manifest_and_linear_checksum(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    open_snapshot(&*s, &db, "snap-a").await;
    // Acknowledged out of order, one of them twice.
    s.record_written(&db, "snap-a", &[block(7), block(2)])
        .await
        .unwrap();
    s.record_written(&db, "snap-a", &[block(5), block(2)])
        .await
        .unwrap();
    let written: HashMap<u64, _> = s
        .written_blocks(&db, "snap-a")
        .await
        .unwrap()
        .into_iter()
        .map(|b| (b.index, b.xxh3))
        .collect();
    assert_eq!(written.len(), 3);
    assert_eq!(written[&5], block(5).xxh3);
    assert_eq!(
        s.written_blocks(&db, "snap-a").await.unwrap(),
        [block(2), block(5), block(7)],
        "whole records, ascending"
    );

    let (count, sum) = s.written_checksum(&db, "snap-a").await.unwrap();
    assert_eq!(count, 3);
    let mut h = Sha256::new();
    for i in [2u64, 5, 7] {
        h.update(block(i).sha256);
    }
    assert_eq!(
        sum,
        <[u8; 32]>::from(h.finalize()),
        "SHA-256 of the digests in ascending block order"
    );

    // Not a parent before it is completed.
    assert!(
        s.latest_completed_snapshot(&db, "disk0")
            .await
            .unwrap()
            .is_none()
    );
    let manifest = Manifest::from_hashes(vec![block(0).xxh3, block(1).xxh3]);
    s.mark_completing(
        &db,
        "snap-a",
        &manifest,
        &SnapshotCounts {
            blocks_changed: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        s.latest_completed_snapshot(&db, "disk0")
            .await
            .unwrap()
            .is_none()
    );
    s.mark_snapshot_completed(&db, "snap-a", OffsetDateTime::now_utc())
        .await
        .unwrap();
    let rec = s
        .latest_completed_snapshot(&db, "disk0")
        .await
        .unwrap()
        .unwrap();
    let m = s
        .snapshot_manifest(&db, &rec.snapshot_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, SnapshotStatus::Completed);
    assert_eq!(rec.counts.blocks_changed, 3);
    assert_eq!(m, manifest);
    assert!(
        s.written_blocks(&db, "snap-a").await.unwrap().is_empty(),
        "accepted-block records dropped once completed"
    );
}

pub async fn abandoned_snapshots_are_forgotten_then_deleted(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let run_id = open_snapshot(&*s, &db, "snap-a").await;
    s.record_written(&db, "snap-a", &[block(1), block(2)])
        .await
        .unwrap();
    assert_eq!(s.abandoned_count(&db, &run_id, "disk0").await.unwrap(), 0);

    s.abandon_snapshot(&db, "snap-a").await.unwrap();
    let rec = s.snapshot(&db, "snap-a").await.unwrap().unwrap();
    assert_eq!(rec.status, SnapshotStatus::Abandoned);
    assert!(s.written_blocks(&db, "snap-a").await.unwrap().is_empty());
    assert_eq!(
        s.run_snapshot(&db, &run_id, "disk0").await.unwrap(),
        None,
        "no longer the run's snapshot of the disk"
    );
    assert_eq!(s.abandoned_snapshots(&db).await.unwrap(), ["snap-a"]);
    assert_eq!(s.abandoned_count(&db, &run_id, "disk0").await.unwrap(), 1);

    s.mark_snapshot_deleted(&db, "snap-a").await.unwrap();
    assert_eq!(
        s.snapshot(&db, "snap-a").await.unwrap().unwrap().status,
        SnapshotStatus::Deleted
    );
    assert!(s.abandoned_snapshots(&db).await.unwrap().is_empty());
    assert_eq!(
        s.abandoned_count(&db, &run_id, "disk0").await.unwrap(),
        1,
        "deleted still counts: the next client token stays new"
    );

    // The fresh snapshot that replaces it is the run's snapshot of the disk.
    s.insert_snapshot(
        &db,
        &new_snapshot("snap-b", &run_id, "disk0"),
        OffsetDateTime::now_utc(),
    )
    .await
    .unwrap();
    assert_eq!(
        s.run_snapshot(&db, &run_id, "disk0")
            .await
            .unwrap()
            .unwrap()
            .snapshot_id,
        "snap-b"
    );
}

pub async fn the_parent_is_the_newest_completed_snapshot_of_the_disk(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let h = time::Duration::hours(1);
    completed_snapshot(&*s, &db, "snap-1", "disk0", t0, t0 + h).await;
    let run = completed_snapshot(&*s, &db, "snap-2", "disk0", t0 + h, t0 + 2 * h).await;
    s.complete_run(
        &db,
        &run,
        &ami("ami-2", &run, t0 + 2 * h),
        &BTreeMap::new(),
        t0 + 2 * h,
    )
    .await
    .unwrap();
    // A newer snapshot still open is not a parent.
    let (open_run, _) = s.begin_run(&db, "back", t0 + 3 * h).await.unwrap();
    s.insert_snapshot(
        &db,
        &new_snapshot("snap-3", &open_run.run_id, "disk0"),
        t0 + 3 * h,
    )
    .await
    .unwrap();
    let parent = s
        .latest_completed_snapshot(&db, "disk0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(parent.snapshot_id, "snap-2");
    assert!(
        s.latest_completed_snapshot(&db, "disk1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.latest_completed_snapshot(&key("web"), "disk0")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn newest_snapshot_per_disk(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let h = time::Duration::hours(1);
    let run = completed_snapshot(&*s, &db, "d0-old", "disk0", t0, t0 + h).await;
    s.complete_run(
        &db,
        &run,
        &ami("ami-1", &run, t0 + h),
        &BTreeMap::new(),
        t0 + h,
    )
    .await
    .unwrap();
    completed_snapshot(&*s, &db, "d0-new", "disk0", t0 + h, t0 + 2 * h).await;
    s.insert_snapshot(&db, &new_snapshot("d1", &run, "disk1"), t0)
        .await
        .unwrap();
    s.mark_completing(
        &db,
        "d1",
        &Manifest::with_len(1),
        &SnapshotCounts::default(),
    )
    .await
    .unwrap();
    s.mark_snapshot_completed(&db, "d1", t0 + h).await.unwrap();
    let mut newest = s.newest_snapshot_per_disk(&db).await.unwrap();
    newest.sort();
    assert_eq!(newest, ["d0-new", "d1"]);
    assert!(
        s.newest_snapshot_per_disk(&key("web"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn latest_amis_are_per_server_and_newest(f: &dyn Fixture) {
    let s = f.open().await;
    let t0 = datetime!(2025-03-01 10:00 UTC);
    for (server, hours) in [("web", [0, 1]), ("db", [2, 3])] {
        for h in hours {
            let at = t0 + time::Duration::hours(h);
            let (run, _) = s.begin_run(&key(server), "g", at).await.unwrap();
            let mut image = ami(&format!("ami-{server}-{h}"), &run.run_id, at);
            image.snapshot_ids = vec![format!("snap-{h}"), format!("snap-{h}-data")];
            image.encrypted = h % 2 == 1;
            image.kms_key_id = image
                .encrypted
                .then(|| "arn:aws:kms:us-east-1:1:key/k".into());
            s.complete_run(&key(server), &run.run_id, &image, &BTreeMap::new(), at)
                .await
                .unwrap();
        }
    }
    let (run, _) = s
        .begin_run(&ServerKey::new("crm", "web"), "g", t0)
        .await
        .unwrap();
    s.complete_run(
        &ServerKey::new("crm", "web"),
        &run.run_id,
        &ami("ami-crm", &run.run_id, t0 + time::Duration::hours(9)),
        &BTreeMap::new(),
        t0,
    )
    .await
    .unwrap();
    let latest = s.latest_amis("shop").await.unwrap();
    assert_eq!(latest.len(), 2, "{latest:?}");
    assert_eq!(latest["web"].ami_id, "ami-web-1");
    assert_eq!(latest["db"].ami_id, "ami-db-3");
    assert_eq!(latest["db"].snapshot_ids, ["snap-3", "snap-3-data"]);
    assert!(latest["db"].encrypted);
    assert_eq!(
        latest["db"].kms_key_id.as_deref(),
        Some("arn:aws:kms:us-east-1:1:key/k")
    );
    assert_eq!(latest["db"].created_at, t0 + time::Duration::hours(3));
    s.mark_ami_deregistered(&key("web"), "ami-web-1")
        .await
        .unwrap();
    assert_eq!(
        s.latest_amis("shop").await.unwrap()["web"].ami_id,
        "ami-web-0",
        "the one before a deregistered AMI is the latest again"
    );
}

pub async fn records_of_one_server_are_not_seen_through_another(f: &dyn Fixture) {
    let s = f.open().await;
    let (db, web) = (key("db"), key("web"));
    let run_id = open_snapshot(&*s, &db, "snap-a").await;
    s.record_written(&db, "snap-a", &[block(1)]).await.unwrap();
    assert_eq!(s.run(&web, &run_id).await.unwrap(), None);
    assert_eq!(s.snapshot(&web, "snap-a").await.unwrap(), None);
    assert_eq!(s.run_snapshot(&web, &run_id, "disk0").await.unwrap(), None);
    assert!(s.written_blocks(&web, "snap-a").await.unwrap().is_empty());
    // Writes through the wrong server change nothing.
    s.record_written(&web, "snap-a", &[block(2)]).await.unwrap();
    s.abandon_snapshot(&web, "snap-a").await.unwrap();
    s.set_phase(&web, &run_id, RunPhase::Registering)
        .await
        .unwrap();
    assert_eq!(s.written_blocks(&db, "snap-a").await.unwrap(), [block(1)]);
    assert_eq!(
        s.snapshot(&db, "snap-a").await.unwrap().unwrap().status,
        SnapshotStatus::Open
    );
    assert_eq!(
        s.run(&db, &run_id).await.unwrap().unwrap().phase,
        RunPhase::Scanning
    );
}

pub async fn unknown_status_text_is_corrupt(f: &dyn Fixture) {
    let s = f.open().await;
    let db = key("db");
    let run_id = open_snapshot(&*s, &db, "snap-a").await;
    let corrupt = |err: StateError, table: &str, id: &str, text: &str| {
        let msg = err.to_string();
        assert!(
            matches!(&err, StateError::Corrupt { table: t, id: i, .. } if *t == table && i == id),
            "{err:?}"
        );
        assert!(msg.contains(text) && msg.contains(id), "{msg}");
    };

    f.damage(Damage::SnapshotStatus {
        snapshot_id: "snap-a",
        text: "pending",
    })
    .await;
    corrupt(
        s.snapshot(&db, "snap-a").await.unwrap_err(),
        "snapshots",
        "snap-a",
        "pending",
    );
    corrupt(
        s.server_history(&db, 10).await.unwrap_err(),
        "snapshots",
        "snap-a",
        "pending",
    );
    f.damage(Damage::SnapshotStatus {
        snapshot_id: "snap-a",
        text: "open",
    })
    .await;
    assert!(s.snapshot(&db, "snap-a").await.is_ok());

    f.damage(Damage::RunStatus {
        run_id: &run_id,
        text: "paused",
    })
    .await;
    corrupt(
        s.run(&db, &run_id).await.unwrap_err(),
        "runs",
        &run_id,
        "paused",
    );
    f.damage(Damage::RunStatus {
        run_id: &run_id,
        text: "running",
    })
    .await;
    f.damage(Damage::RunPhase {
        run_id: &run_id,
        text: "verifying",
    })
    .await;
    corrupt(
        s.server_history(&db, 10).await.unwrap_err(),
        "runs",
        &run_id,
        "verifying",
    );
}
