//! The state store: the contract every backend keeps (`state_contract`), run here against
//! SQLite, and what only the SQLite file does.

mod state_contract;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use rehost_replication::state::{SqliteStore, StateStore};
use state_contract::{Damage, Fixture};

/// A fresh database in a directory of its own.
struct SqliteFixture {
    dir: tempfile::TempDir,
}

impl SqliteFixture {
    fn new() -> SqliteFixture {
        SqliteFixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join(".rehost/state.db")
    }
}

#[async_trait]
impl Fixture for SqliteFixture {
    async fn open(&self) -> Arc<dyn StateStore> {
        Arc::new(SqliteStore::open(&self.path()).await.unwrap())
    }

    async fn damage(&self, damage: Damage<'_>) {
        let (sql, id, text) = match damage {
            Damage::RunStatus { run_id, text } => (
                "UPDATE runs SET status = ?2 WHERE run_id = ?1",
                run_id,
                text,
            ),
            Damage::RunPhase { run_id, text } => {
                ("UPDATE runs SET phase = ?2 WHERE run_id = ?1", run_id, text)
            }
            Damage::SnapshotStatus { snapshot_id, text } => (
                "UPDATE snapshots SET status = ?2 WHERE snapshot_id = ?1",
                snapshot_id,
                text,
            ),
        };
        let (path, id, text) = (self.path(), id.to_string(), text.to_string());
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            assert_eq!(conn.execute(sql, [&id, &text]).unwrap(), 1, "{sql}");
        })
        .await
        .unwrap();
    }

    async fn open_other(&self) -> Arc<dyn StateStore> {
        Arc::new(
            SqliteStore::open(&self.dir.path().join("other/state.db"))
                .await
                .unwrap(),
        )
    }
}

state_contract::suite!(sqlite, crate::SqliteFixture::new());

#[tokio::test]
async fn the_sqlite_store_runs_in_wal_mode() {
    let fixture = SqliteFixture::new();
    let store = fixture.open().await;
    let _lock = store.lock_app("shop").await.unwrap();
    assert!(
        fixture.dir.path().join(".rehost/state.db-wal").exists(),
        "WAL mode"
    );
    assert!(
        fixture
            .dir
            .path()
            .join(".rehost/state.db.shop.lock")
            .exists(),
        "the lock file sits beside the database"
    );
}
