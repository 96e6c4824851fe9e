//! The contract for moving a whole state (`rehost state migrate`): export, import, refusal.

use std::collections::BTreeMap;

use rehost_replication::manifest::Manifest;
use rehost_replication::state::{AccountBinding, ImportOutcome, ServerDump, StateError, migrate};
use time::macros::datetime;

use super::*;

/// A server with a bit of everything: a completed run with its AMI, a deregistered AMI, an
/// abandoned snapshot, and a run in progress with an open snapshot and accepted blocks.
pub(super) async fn eventful_server(s: &dyn StateStore, server: &ServerKey) {
    let t0 = datetime!(2025-03-01 10:00 UTC);
    let h = time::Duration::hours(1);
    let old = completed_snapshot(s, server, "snap-old", "disk0", t0, t0 + h).await;
    s.complete_run(
        server,
        &old,
        &ami("ami-old", &old, t0 + h),
        &BTreeMap::new(),
        t0 + h,
    )
    .await
    .unwrap();
    s.mark_ami_deregistered(server, "ami-old").await.unwrap();
    let run = completed_snapshot(s, server, "snap-1", "disk0", t0 + 2 * h, t0 + 3 * h).await;
    let timings = BTreeMap::from([("disk0".to_string(), 12.25), ("total".to_string(), 13.5)]);
    s.complete_run(
        server,
        &run,
        &ami("ami-1", &run, t0 + 3 * h),
        &timings,
        t0 + 3 * h,
    )
    .await
    .unwrap();
    let (open, _) = s.begin_run(server, "back", t0 + 4 * h).await.unwrap();
    s.insert_snapshot(
        server,
        &new_snapshot("snap-gone", &open.run_id, "disk1"),
        t0 + 4 * h,
    )
    .await
    .unwrap();
    s.abandon_snapshot(server, "snap-gone").await.unwrap();
    s.insert_snapshot(
        server,
        &new_snapshot("snap-open", &open.run_id, "disk0"),
        t0 + 4 * h,
    )
    .await
    .unwrap();
    s.record_written(server, "snap-open", &[block(4), block(1)])
        .await
        .unwrap();
    s.add_partial_counts(
        server,
        "snap-open",
        &SnapshotCounts {
            blocks_uploaded: 2,
            bytes_uploaded: 1 << 20,
            seconds: 0.75,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.fail_run(server, &open.run_id, "disk0: Timeout", &timings, t0 + 5 * h)
        .await
        .unwrap();
}

pub async fn a_server_moves_whole_and_moving_it_again_changes_nothing(f: &dyn Fixture) {
    let from = f.open().await;
    let (db, web) = (key("db"), key("web"));
    eventful_server(&*from, &db).await;
    open_snapshot(&*from, &ServerKey::new("crm", "db"), "snap-crm").await;
    let dump = from.export_server(&db).await.unwrap();
    assert_eq!(dump.runs.len(), 3);
    assert_eq!(dump.amis.len(), 2);
    assert!(
        dump.amis
            .iter()
            .any(|a| a.ami.ami_id == "ami-old" && a.deregistered)
    );
    assert_eq!(
        dump.manifests.keys().collect::<Vec<_>>(),
        ["snap-1", "snap-old"]
    );
    assert_eq!(dump.written["snap-open"], [block(1), block(4)]);
    assert_eq!(
        from.servers().await.unwrap(),
        [ServerKey::new("crm", "db"), db.clone()]
    );
    assert!(from.export_server(&web).await.unwrap().is_empty());

    let to = f.open_other().await;
    assert!(to.servers().await.unwrap().is_empty());
    assert_eq!(
        to.import_server(&dump).await.unwrap(),
        ImportOutcome::Created
    );
    assert_eq!(
        to.export_server(&db).await.unwrap(),
        dump,
        "every record moved"
    );
    assert_eq!(
        to.import_server(&dump).await.unwrap(),
        ImportOutcome::Identical
    );
    assert_eq!(to.servers().await.unwrap(), std::slice::from_ref(&db));

    // What moved works as before: the open run resumes with its accepted blocks, the parent
    // of the next increment and the latest AMI are the same.
    let (resumed, was) = to
        .begin_run(&db, "back", datetime!(2025-03-02 10:00 UTC))
        .await
        .unwrap();
    assert!(was);
    assert_eq!(resumed.attempts, 2);
    assert_eq!(
        to.written_blocks(&db, "snap-open").await.unwrap(),
        [block(1), block(4)]
    );
    assert_eq!(
        to.latest_completed_snapshot(&db, "disk0")
            .await
            .unwrap()
            .unwrap()
            .snapshot_id,
        "snap-1"
    );
    assert_eq!(
        to.snapshot_manifest(&db, "snap-1").await.unwrap(),
        Some(Manifest::from_hashes(vec![block(0).xxh3]))
    );
    assert_eq!(to.latest_amis("shop").await.unwrap()["db"].ami_id, "ami-1");
    assert_eq!(to.abandoned_snapshots(&db).await.unwrap(), ["snap-gone"]);
}

pub async fn a_destination_with_other_records_is_refused(f: &dyn Fixture) {
    let from = f.open().await;
    let db = key("db");
    eventful_server(&*from, &db).await;
    let dump = from.export_server(&db).await.unwrap();
    let to = f.open_other().await;
    to.import_server(&dump).await.unwrap();
    let mut other: ServerDump = dump.clone();
    other.runs[0].error = Some("something else".into());
    let err = to.import_server(&other).await.unwrap_err();
    assert!(matches!(err, StateError::Differs { .. }), "{err:?}");
    assert!(err.to_string().contains("shop/db"), "{err}");
    assert_eq!(
        to.export_server(&db).await.unwrap(),
        dump,
        "nothing was overwritten"
    );
}

/// A moved state stays bound to its account and region (else the first command run against
/// the destination, with any credentials, would bind it anew); a destination where the
/// application is bound to another account is refused, writing nothing.
pub async fn a_migration_carries_the_account_binding(f: &dyn Fixture) {
    let here = AccountBinding {
        account: "111111111111".into(),
        region: "us-east-1".into(),
    };
    let from = f.open().await;
    eventful_server(&*from, &key("db")).await;
    from.ensure_account("shop", &here).await.unwrap();
    let to = f.open_other().await;
    let done = migrate(&*from, &*to).await.unwrap();
    assert_eq!(done.moved, [key("db")]);
    assert_eq!(
        to.account_binding("shop").await.unwrap(),
        Some(here.clone())
    );
    let again = migrate(&*from, &*to).await.unwrap();
    assert_eq!(again.already_there, [key("db")], "idempotent");

    // Another application, bound to another account at the destination.
    let crm = ServerKey::new("crm", "db");
    open_snapshot(&*from, &crm, "snap-crm").await;
    from.ensure_account("crm", &here).await.unwrap();
    let elsewhere = AccountBinding {
        account: "222222222222".into(),
        region: "us-east-1".into(),
    };
    to.bind_account("crm", &elsewhere).await.unwrap();
    let err = migrate(&*from, &*to).await.unwrap_err();
    assert!(matches!(err, StateError::Differs { .. }), "{err:?}");
    assert!(err.to_string().contains("222222222222"), "{err}");
    assert!(
        to.export_server(&crm).await.unwrap().is_empty(),
        "nothing written"
    );
    assert_eq!(to.account_binding("crm").await.unwrap(), Some(elsewhere));
}
