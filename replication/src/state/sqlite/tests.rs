//! SQLite-specific behaviour: the file format (schema version, compatibility with databases
//! written before the store was split), WAL mode, and what unreadable rows turn into. The
//! behaviour every store shares is in `replication/tests/state_contract`.

use super::*;
use crate::state::{RunStatus, SnapshotStatus};

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join(".rehost/state.db"))
        .await
        .unwrap()
}

fn raw(dir: &tempfile::TempDir) -> Connection {
    Connection::open(dir.path().join(".rehost/state.db")).unwrap()
}

#[tokio::test]
async fn opening_creates_the_directory_and_a_wal_database_at_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    assert_eq!(store.path(), dir.path().join(".rehost/state.db"));
    let conn = raw(&dir);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 4);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_database_of_a_newer_rehost_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir).await);
    raw(&dir)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = SqliteStore::open(&dir.path().join(".rehost/state.db"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StateError::Schema {
                found: 5,
                known: 4,
                ..
            }
        ),
        "{err}"
    );
}

/// A database of schema version 1, written by rehost before the store was split and before
/// account bindings (its tables, rows inserted as that version wrote them), is migrated to the
/// current version on open: it reads the same, its application binds on first use and its
/// launch history starts empty.
#[tokio::test]
async fn a_version_1_database_is_migrated_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".rehost")).unwrap();
    let conn = raw(&dir);
    conn.execute_batch(SCHEMA).unwrap();
    // Version 1 had no account_bindings table (2), no inspections and risks (3), no launches (4).
    conn.execute_batch(
        "DROP TABLE account_bindings; DROP TABLE inspections; DROP TABLE accepted_risks; \
         DROP TABLE launches",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.execute_batch(
        "INSERT INTO runs (run_id, app, server, grp, status, phase, started_at, attempted_at, finished_at, attempts, \
         ami_name, ami_id, error, timings) VALUES ('r1', 'shop', 'web', 'front', 'completed', 'completed', \
         1740823200000, 1740823200000, 1740823500000, 1, 'rehost-shop-web-x', 'ami-1', NULL, '{\"total\":300.0}');
         INSERT INTO snapshots (snapshot_id, run_id, app, server, disk, parent_snapshot_id, status, volume_size_gib, \
         block_count, encrypted, kms_key_arn, started_at, completed_at, blocks_total, blocks_changed, manifest) \
         VALUES ('snap-1', 'r1', 'shop', 'web', 'disk0', NULL, 'completed', 1, 2048, 0, NULL, 1740823200000, \
         1740823400000, 2048, 3, NULL);
         INSERT INTO amis (ami_id, app, server, run_id, name, created_at, snapshot_ids, encrypted, kms_key_id, status) \
         VALUES ('ami-1', 'shop', 'web', 'r1', 'rehost-shop-web-x', 1740823500000, '[\"snap-1\"]', 0, NULL, 'available');",
    )
    .unwrap();
    drop(conn);
    let store = open(&dir).await;
    let web = ServerKey::new("shop", "web");
    let history = store.server_history(&web, 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].status, RunStatus::Completed);
    assert_eq!(history[0].phase, RunPhase::Completed);
    assert_eq!(history[0].timings["total"], 300.0);
    assert_eq!(history[0].snapshots[0].status, SnapshotStatus::Completed);
    assert_eq!(history[0].snapshot_ids(), vec!["snap-1".to_string()]);
    let latest = store.latest_amis("shop").await.unwrap();
    assert_eq!(latest["web"].snapshot_ids, vec!["snap-1".to_string()]);
    let (success, _) = store.last_times(&web).await.unwrap();
    assert_eq!(success.map(crate::clock::unix_ms), Some(1_740_823_500_000));
    let version: i64 = raw(&dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION, "migrated");
    assert_eq!(store.account_binding("shop").await.unwrap(), None);
    assert!(store.launches("shop", 10).await.unwrap().is_empty());
    assert_eq!(store.inspection(&web).await.unwrap(), None);
    let here = AccountBinding {
        account: "123456789012".into(),
        region: "us-east-1".into(),
    };
    store.ensure_account("shop", &here).await.unwrap();
    assert_eq!(store.account_binding("shop").await.unwrap(), Some(here));
}

#[tokio::test]
async fn malformed_json_and_manifests_are_corrupt_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let web = ServerKey::new("shop", "web");
    let (run, _) = store
        .begin_run(&web, "front", OffsetDateTime::now_utc())
        .await
        .unwrap();
    raw(&dir)
        .execute(
            "UPDATE runs SET timings = 'not json' WHERE run_id = ?1",
            [&run.run_id],
        )
        .unwrap();
    let err = store.server_history(&web, 1).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { table: "runs", id, .. } if *id == run.run_id),
        "{err}"
    );
    assert!(err.to_string().contains("timings"), "{err}");

    store
        .insert_snapshot(
            &web,
            &NewSnapshot {
                snapshot_id: "snap-m".into(),
                run_id: run.run_id.clone(),
                disk: "disk0".into(),
                parent_snapshot_id: None,
                volume_size_gib: 1,
                block_count: 2048,
                encrypted: false,
                kms_key_arn: None,
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();
    raw(&dir)
        .execute(
            "UPDATE snapshots SET manifest = x'00010203' WHERE snapshot_id = 'snap-m'",
            [],
        )
        .unwrap();
    let err = store.snapshot_manifest(&web, "snap-m").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { table: "snapshots", id, .. } if id == "snap-m"),
        "{err}"
    );
}

#[tokio::test]
async fn clones_share_one_connection_and_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir).await;
    let b = a.clone();
    let web = ServerKey::new("shop", "web");
    let (run, _) = a
        .begin_run(&web, "front", OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(
        b.run(&web, &run.run_id).await.unwrap().unwrap().run_id,
        run.run_id
    );
}

/// `kill_resume` once timed out because the parent, polling the state every 20 ms, opened it
/// with a schema write each time; the child's block recorder, in a deferred transaction, then
/// met SQLITE_BUSY and stopped recording. Opening a current database must not need the write
/// lock: it succeeds while another connection holds it.
#[tokio::test]
async fn opening_a_current_database_takes_no_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir).await);
    let writer = raw(&dir);
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let opened = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        SqliteStore::open(&dir.path().join(".rehost/state.db")),
    )
    .await
    .expect("open does not wait for the writer");
    let store = opened.unwrap();
    assert!(store.latest_amis("shop").await.unwrap().is_empty());
    writer.execute_batch("COMMIT").unwrap();
}

/// A version 2 database (account bindings, no inspections, no launches) gains the inspection
/// and launch tables on open, empty: its servers are inspected again on next use, its history
/// starts empty; its binding stays.
#[tokio::test]
async fn a_version_2_database_gains_the_inspection_and_launch_tables() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".rehost")).unwrap();
    let conn = raw(&dir);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch("DROP TABLE inspections; DROP TABLE accepted_risks; DROP TABLE launches")
        .unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    conn.execute_batch(
        "INSERT INTO account_bindings (app, account, region, bound_at) \
         VALUES ('shop', '123456789012', 'us-east-1', 1740823200000)",
    )
    .unwrap();
    drop(conn);
    let store = open(&dir).await;
    let web = ServerKey::new("shop", "web");
    assert_eq!(store.inspection(&web).await.unwrap(), None);
    assert!(store.accepted_risks(&web).await.unwrap().is_empty());
    assert!(store.launches("shop", 10).await.unwrap().is_empty());
    assert!(store.account_binding("shop").await.unwrap().is_some());
    let version: i64 = raw(&dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Two branches each called their new tables version 3: the guest inspection's
/// (`inspections`, `accepted_risks`) and the launch history's (`launches`). A version 3
/// database of either kind keeps what it holds and gains the tables it lacks on open.
#[tokio::test]
async fn a_version_3_database_of_either_branch_gains_the_tables_it_lacks() {
    let web = ServerKey::new("shop", "web");
    // The inspection branch's version 3: an accepted risk, no launches table.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".rehost")).unwrap();
    let conn = raw(&dir);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(
        "DROP TABLE launches; \
         INSERT INTO accepted_risks (app, server, mode, findings, accepted_at, caller_arn) \
         VALUES ('shop', 'web', 'cutover', '[\"no agent\"]', 1740823200000, 'arn:aws:iam::1:user/o')",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    let store = open(&dir).await;
    let risks = store.accepted_risks(&web).await.unwrap();
    assert_eq!(risks.len(), 1);
    assert_eq!(risks[0].findings, vec!["no agent".to_string()]);
    assert!(store.launches("shop", 10).await.unwrap().is_empty());
    let version: i64 = raw(&dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);

    // The launch history's version 3: a launch, no inspection tables.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".rehost")).unwrap();
    let conn = raw(&dir);
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(
        "DROP TABLE inspections; DROP TABLE accepted_risks; \
         INSERT INTO launches (launch_id, app, kind, mode, stack, definition, health_gate, \
         started_at, finished_at, outcome, caller, detail) VALUES ('20250301T120000Z-1', 'shop', \
         'launch', 'test', 'rehost-shop-test', 'sha256:ab', 1, 1740830400000, 1740830460000, \
         'succeeded', NULL, '{\"amis\":{},\"failure\":null,\"forced\":null,\"hooks\":[],\"final_sync\":[]}')",
    )
    .unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    let store = open(&dir).await;
    let launches = store.launches("shop", 10).await.unwrap();
    assert_eq!(launches.len(), 1);
    assert_eq!(launches[0].launch_id, "20250301T120000Z-1");
    assert_eq!(store.inspection(&web).await.unwrap(), None);
    assert!(store.accepted_risks(&web).await.unwrap().is_empty());
    let version: i64 = raw(&dir)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_malformed_stored_inspection_is_a_corrupt_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    raw(&dir)
        .execute(
            "INSERT INTO inspections (app, server, fingerprint, inspected_at, inspection) \
             VALUES ('shop', 'web', 'x', 0, '{\"verdict\": \"bootable-maybe\"}')",
            [],
        )
        .unwrap();
    let err = store
        .inspection(&ServerKey::new("shop", "web"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt { table: "inspections", id, .. } if id == "shop/web"),
        "{err}"
    );
}
