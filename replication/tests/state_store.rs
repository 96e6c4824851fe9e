//! The state store on its own: the per-application lock, run resumption, what counts as the
//! latest AMI, manifests and the linear checksum of written blocks.

use std::collections::BTreeMap;

use rehost_replication::manifest::{Manifest, block_hash};
use rehost_replication::state::{
    NewSnapshot, RunStatus, SnapshotCounts, SnapshotStatus, StateError, WrittenBlock,
    default_state_path,
};
use rehost_replication::{AmiRecord, StateStore};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::datetime;

fn store() -> (tempfile::TempDir, StateStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = StateStore::open(&dir.path().join(".rehost/state.db")).unwrap();
    (dir, s)
}

#[test]
fn default_path_is_beside_the_application_file() {
    assert_eq!(
        default_state_path("apps/shop.yaml".as_ref()),
        std::path::Path::new("apps/.rehost/state.db")
    );
    assert_eq!(
        default_state_path("shop.yaml".as_ref()),
        std::path::Path::new("./.rehost/state.db")
    );
}

#[test]
fn a_second_replication_of_the_same_app_is_refused() {
    let (dir, a) = store();
    let lock = a.lock_app("shop").unwrap();
    // Another process would open its own store; a second handle behaves the same.
    let b = StateStore::open(&dir.path().join(".rehost/state.db")).unwrap();
    let err = b.lock_app("shop").unwrap_err();
    assert!(matches!(err, StateError::Locked { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("'shop'") && msg.contains(&std::process::id().to_string()),
        "{msg}"
    );
    // Other applications are independent.
    let _other = b.lock_app("crm").unwrap();
    drop(lock);
    let _again = b.lock_app("shop").unwrap();
    assert!(dir.path().join(".rehost/state.db-wal").exists(), "WAL mode");
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

#[test]
fn runs_resume_and_only_completed_runs_give_amis() {
    let (_dir, s) = store();
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let (run, resumed) = s.begin_run("shop", "web", "front", t0).unwrap();
    assert!(!resumed);
    assert!(run.run_id.starts_with("20250301T100000Z-"));
    // Killed (still "running") or failed: the next call resumes the same run.
    let (again, resumed) = s
        .begin_run("shop", "web", "front", t0 + time::Duration::minutes(5))
        .unwrap();
    assert!(resumed);
    assert_eq!(again.run_id, run.run_id);
    assert_eq!(again.attempts, 2);
    s.fail_run(
        &run.run_id,
        "boom",
        &BTreeMap::new(),
        t0 + time::Duration::minutes(6),
    )
    .unwrap();
    assert!(s.latest_amis("shop").unwrap().is_empty());
    assert_eq!(
        s.last_times("shop", "web").unwrap().0,
        None,
        "no success yet"
    );

    let (third, resumed) = s
        .begin_run("shop", "web", "front", t0 + time::Duration::minutes(7))
        .unwrap();
    assert!(resumed);
    let done_at = t0 + time::Duration::minutes(9);
    s.complete_run(
        &third.run_id,
        "shop",
        "web",
        &ami("ami-1", &third.run_id, done_at),
        &BTreeMap::new(),
        done_at,
    )
    .unwrap();
    let latest = s.latest_amis("shop").unwrap();
    assert_eq!(latest["web"].ami_id, "ami-1");
    let (success, attempt) = s.last_times("shop", "web").unwrap();
    assert_eq!(success, Some(done_at));
    assert_eq!(attempt, Some(t0 + time::Duration::minutes(7)));

    // A new run after a completed one is a new run; until it completes the old AMI stays latest.
    let (next, resumed) = s
        .begin_run("shop", "web", "front", t0 + time::Duration::hours(2))
        .unwrap();
    assert!(!resumed);
    assert_ne!(next.run_id, run.run_id);
    assert_eq!(s.latest_amis("shop").unwrap()["web"].ami_id, "ami-1");
    let history = s.server_history("shop", "web", 10).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].status, RunStatus::Running);
    assert_eq!(history[1].status, RunStatus::Completed);
    assert_eq!(history[1].ami_id.as_deref(), Some("ami-1"));

    // A deregistered AMI is no longer offered.
    s.mark_ami_deregistered("ami-1").unwrap();
    assert!(s.latest_amis("shop").unwrap().is_empty());
}

#[test]
fn written_blocks_manifest_and_linear_checksum() {
    let (_dir, s) = store();
    let (run, _) = s
        .begin_run("shop", "db", "back", OffsetDateTime::now_utc())
        .unwrap();
    s.insert_snapshot(
        &NewSnapshot {
            snapshot_id: "snap-a",
            run_id: &run.run_id,
            app: "shop",
            server: "db",
            disk: "disk0",
            parent_snapshot_id: None,
            volume_size_gib: 1,
            block_count: 2048,
            encrypted: false,
            kms_key_arn: None,
        },
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let block = |i: u64| WrittenBlock {
        index: i,
        xxh3: block_hash(&i.to_le_bytes()),
        sha256: Sha256::digest(i.to_le_bytes()).into(),
    };
    // Acknowledged out of order, one of them twice.
    s.record_written("snap-a", &[block(7), block(2)]).unwrap();
    s.record_written("snap-a", &[block(5), block(2)]).unwrap();
    let written = s.written_blocks("snap-a").unwrap();
    assert_eq!(written.len(), 3);
    assert_eq!(written[&5], block(5).xxh3);

    let (count, sum) = s.written_checksum("snap-a").unwrap();
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
        s.latest_completed_snapshot("shop", "db", "disk0")
            .unwrap()
            .is_none()
    );
    let manifest = Manifest::from_hashes(vec![block(0).xxh3, block(1).xxh3]);
    s.mark_completing(
        "snap-a",
        &manifest,
        &SnapshotCounts {
            blocks_changed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        s.latest_completed_snapshot("shop", "db", "disk0")
            .unwrap()
            .is_none()
    );
    s.mark_snapshot_completed("snap-a", OffsetDateTime::now_utc())
        .unwrap();
    let (rec, m) = s
        .latest_completed_snapshot("shop", "db", "disk0")
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, SnapshotStatus::Completed);
    assert_eq!(rec.blocks_changed, 3);
    assert_eq!(m, manifest);
    assert!(
        s.written_blocks("snap-a").unwrap().is_empty(),
        "accepted-block records dropped once completed"
    );
}
