//! The contract for snapshots: lifecycle, counters, written blocks, manifests, parents.

use std::collections::{BTreeMap, HashMap};

use rehost_replication::manifest::Manifest;
use rehost_replication::state::{SnapshotCounts, SnapshotStatus};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

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
