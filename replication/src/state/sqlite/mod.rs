//! The state in one SQLite file (`.rehost/state.db` beside the application file, WAL mode).
//! Every state transition is one transaction. The trait's async methods copy their arguments
//! and run the SQL on tokio's blocking threads, so no caller blocks inside async code.
//!
//! The file format is `schema.sql` at `PRAGMA user_version = 4`; a database of a newer version is
//! refused rather than misread (an older rehost would not check the account binding), and one
//! of version 1, 2 or 3 is migrated on open (the tables it lacks are added, empty: a version 3
//! database may hold either the inspection tables or `launches`, two branches having both
//! numbered theirs 3).
//!
//! This file holds the store and the trait's dispatch; the SQL lives beside each record kind
//! (`runs`, `snapshots`, `amis`, `bindings`, `launches`, `guest`, `transfer`), the plumbing
//! they share in `db`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rusqlite::Connection;
use time::OffsetDateTime;

use super::{
    AcceptedRisk, AccountBinding, AmiRecord, AppLock, AppLockGuard, ImportOutcome,
    InspectionRecord, LaunchRecord, NewSnapshot, RunPhase, RunRecord, ServerDump, ServerKey,
    SnapshotCounts, SnapshotRecord, StateError, StateStore, WrittenBlock,
};
use crate::manifest::Manifest;
use db::{Db, RowError, json, stored, transaction};

mod amis;
mod bindings;
mod db;
mod guest;
mod launches;
mod runs;
mod snapshots;
mod transfer;

/// The version of `schema.sql` this rehost reads and writes.
pub const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = include_str!("../schema.sql");

/// The state database. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database and its directory.
    pub async fn open(path: &Path) -> Result<SqliteStore, StateError> {
        let owned = path.to_path_buf();
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(&owned))
            .await
            .map_err(|e| StateError::Worker {
                location: path.display().to_string(),
                operation: "open",
                message: e.to_string(),
            })?
    }

    fn open_blocking(path: &Path) -> Result<SqliteStore, StateError> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| StateError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        init(&Db { conn: &conn, path })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` with the connection on a blocking thread.
    async fn call<T, F>(&self, operation: &'static str, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T, StateError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&mut inner.conn(), &inner.path))
            .await
            .map_err(|e| StateError::Worker {
                location: self.location(),
                operation,
                message: e.to_string(),
            })?
    }
}

impl Inner {
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: transactions roll back.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn init(db: &Db<'_>) -> Result<(), StateError> {
    let conn = db.conn;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db.sql("set busy timeout"))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db.sql("enable WAL"))?;
    // NORMAL in WAL mode: a commit survives a process kill; only an OS crash may lose the last ones.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db.sql("set synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(db.sql("enable foreign keys"))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db.sql("read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StateError::Schema {
            path: db.path.to_path_buf(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        // Opening a current database writes nothing: a reader (`rehost status` while a
        // replication runs) never takes the write lock from the writer.
        return Ok(());
    }
    // Creating or migrating: one immediate transaction, so two processes opening a new file at
    // once create it once, and the schema and its version change together.
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
    ))
    .map_err(db.sql("create schema"))?;
    Ok(())
}

#[async_trait]
impl StateStore for SqliteStore {
    fn location(&self) -> String {
        self.inner.path.display().to_string()
    }

    async fn lock_app(&self, app: &str) -> Result<Box<dyn AppLockGuard>, StateError> {
        let app = app.to_string();
        self.call("lock the application", move |_, path| {
            Ok(Box::new(AppLock::acquire(path, &app)?) as Box<dyn AppLockGuard>)
        })
        .await
    }

    async fn record_launch(&self, app: &str, launch: &LaunchRecord) -> Result<(), StateError> {
        launches::record_launch(self, app, launch).await
    }

    async fn launches(&self, app: &str, limit: usize) -> Result<Vec<LaunchRecord>, StateError> {
        launches::launches(self, app, limit).await
    }

    async fn begin_run(
        &self,
        server: &ServerKey,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(RunRecord, bool), StateError> {
        let (server, group) = (server.clone(), group.to_string());
        self.call("begin run", move |conn, path| {
            runs::begin(conn, path, &server, &group, now)
        })
        .await
    }

    async fn set_phase(
        &self,
        server: &ServerKey,
        run_id: &str,
        phase: RunPhase,
    ) -> Result<(), StateError> {
        let (server, run_id) = (server.clone(), run_id.to_string());
        self.call("set run phase", move |conn, path| {
            runs::set_phase(&Db { conn, path }, &server, &run_id, phase)
        })
        .await
    }

    async fn ami_name_for(
        &self,
        server: &ServerKey,
        run_id: &str,
        proposed: &str,
    ) -> Result<String, StateError> {
        let (server, run_id, proposed) = (server.clone(), run_id.to_string(), proposed.to_string());
        self.call("fix AMI name", move |conn, path| {
            runs::ami_name_for(&Db { conn, path }, &server, &run_id, &proposed)
        })
        .await
    }

    async fn fail_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let (server, run_id, error) = (server.clone(), run_id.to_string(), error.to_string());
        let timings = serde_json::to_string(timings).unwrap_or_default();
        self.call("record failed run", move |conn, path| {
            runs::fail(&Db { conn, path }, &server, &run_id, &error, &timings, now)
        })
        .await
    }

    async fn complete_run(
        &self,
        server: &ServerKey,
        run_id: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let (server, run_id, ami) = (server.clone(), run_id.to_string(), ami.clone());
        let timings = serde_json::to_string(timings).unwrap_or_default();
        self.call("complete run", move |conn, path| {
            runs::complete(conn, path, &server, &run_id, &ami, &timings, now)
        })
        .await
    }

    async fn run(&self, server: &ServerKey, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        let (server, run_id) = (server.clone(), run_id.to_string());
        self.call("read run", move |conn, path| {
            runs::read(&Db { conn, path }, &server, &run_id)
        })
        .await
    }

    async fn server_history(
        &self,
        server: &ServerKey,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let server = server.clone();
        self.call("read history", move |conn, path| {
            runs::history(&Db { conn, path }, &server, limit)
        })
        .await
    }

    async fn last_times(
        &self,
        server: &ServerKey,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
        let server = server.clone();
        self.call("read last run times", move |conn, path| {
            runs::last_times(&Db { conn, path }, &server)
        })
        .await
    }

    async fn latest_amis(&self, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError> {
        let app = app.to_string();
        self.call("read latest AMIs", move |conn, path| {
            amis::latest(&Db { conn, path }, &app)
        })
        .await
    }

    async fn recorded_amis(&self, server: &ServerKey) -> Result<Vec<AmiRecord>, StateError> {
        let server = server.clone();
        self.call("read recorded AMIs", move |conn, path| {
            amis::recorded(&Db { conn, path }, &server)
        })
        .await
    }

    async fn bind_account(
        &self,
        app: &str,
        proposed: &AccountBinding,
    ) -> Result<AccountBinding, StateError> {
        let (app, proposed) = (app.to_string(), proposed.clone());
        let now = OffsetDateTime::now_utc();
        self.call("bind account", move |conn, path| {
            bindings::bind(&Db { conn, path }, &app, &proposed, now)
        })
        .await
    }

    async fn account_binding(&self, app: &str) -> Result<Option<AccountBinding>, StateError> {
        let app = app.to_string();
        self.call("read account binding", move |conn, path| {
            bindings::binding(&Db { conn, path }, &app)
        })
        .await
    }

    async fn store_inspection(
        &self,
        server: &ServerKey,
        record: &InspectionRecord,
    ) -> Result<(), StateError> {
        guest::store_inspection(self, server, record).await
    }

    async fn inspection(&self, server: &ServerKey) -> Result<Option<InspectionRecord>, StateError> {
        guest::inspection(self, server).await
    }

    async fn record_accepted_risk(
        &self,
        server: &ServerKey,
        risk: &AcceptedRisk,
    ) -> Result<(), StateError> {
        guest::record_accepted_risk(self, server, risk).await
    }

    async fn accepted_risks(&self, server: &ServerKey) -> Result<Vec<AcceptedRisk>, StateError> {
        guest::accepted_risks(self, server).await
    }

    async fn mark_ami_deregistered(
        &self,
        server: &ServerKey,
        ami_id: &str,
    ) -> Result<(), StateError> {
        let (server, ami_id) = (server.clone(), ami_id.to_string());
        self.call("mark AMI deregistered", move |conn, path| {
            amis::mark_deregistered(&Db { conn, path }, &server, &ami_id)
        })
        .await
    }

    async fn insert_snapshot(
        &self,
        server: &ServerKey,
        snapshot: &NewSnapshot,
        now: OffsetDateTime,
    ) -> Result<SnapshotRecord, StateError> {
        let (server, snapshot) = (server.clone(), snapshot.clone());
        self.call("record started snapshot", move |conn, path| {
            snapshots::insert(&Db { conn, path }, &server, &snapshot, now)
        })
        .await
    }

    async fn snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("read snapshot", move |conn, path| {
            snapshots::read(&Db { conn, path }, &server, &id)
        })
        .await
    }

    async fn run_snapshot(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        let (server, run_id, disk) = (server.clone(), run_id.to_string(), disk.to_string());
        self.call("read run snapshot", move |conn, path| {
            snapshots::of_run_disk(&Db { conn, path }, &server, &run_id, &disk)
        })
        .await
    }

    async fn abandoned_count(
        &self,
        server: &ServerKey,
        run_id: &str,
        disk: &str,
    ) -> Result<u32, StateError> {
        let (server, run_id, disk) = (server.clone(), run_id.to_string(), disk.to_string());
        self.call("count abandoned snapshots", move |conn, path| {
            snapshots::abandoned_count(&Db { conn, path }, &server, &run_id, &disk)
        })
        .await
    }

    async fn latest_completed_snapshot(
        &self,
        server: &ServerKey,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        let (server, disk) = (server.clone(), disk.to_string());
        self.call("read latest snapshot", move |conn, path| {
            snapshots::latest_completed(&Db { conn, path }, &server, &disk)
        })
        .await
    }

    async fn newest_snapshot_per_disk(
        &self,
        server: &ServerKey,
    ) -> Result<Vec<String>, StateError> {
        let server = server.clone();
        self.call("read newest snapshots", move |conn, path| {
            snapshots::newest_per_disk(&Db { conn, path }, &server)
        })
        .await
    }

    async fn abandoned_snapshots(&self, server: &ServerKey) -> Result<Vec<String>, StateError> {
        let server = server.clone();
        self.call("read abandoned snapshots", move |conn, path| {
            snapshots::abandoned(&Db { conn, path }, &server)
        })
        .await
    }

    async fn abandon_snapshot(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("abandon snapshot", move |conn, path| {
            snapshots::abandon(conn, path, &server, &id)
        })
        .await
    }

    async fn mark_snapshot_deleted(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<(), StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("mark snapshot deleted", move |conn, path| {
            snapshots::mark_deleted(&Db { conn, path }, &server, &id)
        })
        .await
    }

    async fn add_partial_counts(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        let (server, id, counts) = (server.clone(), snapshot_id.to_string(), *counts);
        self.call("record partial counts", move |conn, path| {
            snapshots::add_partial_counts(&Db { conn, path }, &server, &id, &counts)
        })
        .await
    }

    async fn mark_completing(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        manifest: &Manifest,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        let (server, id, counts) = (server.clone(), snapshot_id.to_string(), *counts);
        let manifest = manifest.encode();
        self.call("mark snapshot completing", move |conn, path| {
            snapshots::mark_completing(&Db { conn, path }, &server, &id, &manifest, &counts)
        })
        .await
    }

    async fn mark_snapshot_completed(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("mark snapshot completed", move |conn, path| {
            snapshots::mark_completed(conn, path, &server, &id, now)
        })
        .await
    }

    async fn snapshot_manifest(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Option<Manifest>, StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("read manifest", move |conn, path| {
            snapshots::manifest(&Db { conn, path }, &server, &id)
        })
        .await
    }

    async fn record_written(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
        blocks: &[WrittenBlock],
    ) -> Result<(), StateError> {
        let (server, id, blocks) = (server.clone(), snapshot_id.to_string(), blocks.to_vec());
        self.call("record written blocks", move |conn, path| {
            snapshots::record_written(conn, path, &server, &id, &blocks)
        })
        .await
    }

    async fn written_blocks(
        &self,
        server: &ServerKey,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError> {
        let (server, id) = (server.clone(), snapshot_id.to_string());
        self.call("read written blocks", move |conn, path| {
            snapshots::written(&Db { conn, path }, &server, &id)
        })
        .await
    }

    async fn servers(&self) -> Result<Vec<ServerKey>, StateError> {
        self.call("list servers", move |conn, path| {
            transfer::servers(&Db { conn, path })
        })
        .await
    }

    async fn export_server(&self, server: &ServerKey) -> Result<ServerDump, StateError> {
        let server = server.clone();
        self.call("export server", move |conn, path| {
            transfer::export(&Db { conn, path }, &server)
        })
        .await
    }

    async fn import_server(&self, dump: &ServerDump) -> Result<ImportOutcome, StateError> {
        let dump = dump.clone();
        self.call("import server", move |conn, path| {
            transfer::import(conn, path, &dump)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
