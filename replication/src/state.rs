//! The embedded state store: replication runs, snapshots, AMIs, manifests and the blocks already
//! accepted by an open snapshot. SQLite in WAL mode; every state transition is one transaction, so
//! a killed process leaves a consistent database and never a half-done run marked completed.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::manifest::{BlockHash, Manifest};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    app          TEXT NOT NULL,
    server       TEXT NOT NULL,
    grp          TEXT NOT NULL,
    status       TEXT NOT NULL,          -- running | completed | failed
    phase        TEXT NOT NULL,          -- scanning | uploading | completing | registering | completed | failed
    started_at   INTEGER NOT NULL,       -- unix ms, first attempt
    attempted_at INTEGER NOT NULL,       -- unix ms, latest attempt
    finished_at  INTEGER,
    attempts     INTEGER NOT NULL DEFAULT 1,
    ami_name     TEXT,
    ami_id       TEXT,
    error        TEXT,
    timings      TEXT                    -- JSON object: phase -> seconds
);
CREATE INDEX IF NOT EXISTS runs_by_server ON runs (app, server, started_at);

CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id        TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL REFERENCES runs (run_id),
    app                TEXT NOT NULL,
    server             TEXT NOT NULL,
    disk               TEXT NOT NULL,
    parent_snapshot_id TEXT,
    status             TEXT NOT NULL,    -- open | completing | completed | abandoned | deleted
    volume_size_gib    INTEGER NOT NULL,
    block_count        INTEGER NOT NULL,
    encrypted          INTEGER NOT NULL,
    kms_key_arn        TEXT,
    started_at         INTEGER NOT NULL,
    completed_at       INTEGER,
    blocks_total       INTEGER NOT NULL DEFAULT 0,
    blocks_scanned     INTEGER NOT NULL DEFAULT 0,
    blocks_uploaded    INTEGER NOT NULL DEFAULT 0,
    bytes_uploaded     INTEGER NOT NULL DEFAULT 0,
    blocks_changed     INTEGER NOT NULL DEFAULT 0,
    seconds            REAL NOT NULL DEFAULT 0,
    manifest           BLOB              -- set from `completing` on
);
CREATE INDEX IF NOT EXISTS snapshots_by_disk ON snapshots (app, server, disk, status);
CREATE INDEX IF NOT EXISTS snapshots_by_run ON snapshots (run_id, disk);

-- Blocks an open snapshot has accepted (PutSnapshotBlock answered), so a resumed run does not
-- send them again; dropped when the snapshot completes.
CREATE TABLE IF NOT EXISTS written_blocks (
    snapshot_id TEXT NOT NULL,
    block_index INTEGER NOT NULL,
    xxh3        BLOB NOT NULL,
    sha256      BLOB NOT NULL,
    PRIMARY KEY (snapshot_id, block_index)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS amis (
    ami_id       TEXT PRIMARY KEY,
    app          TEXT NOT NULL,
    server       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    snapshot_ids TEXT NOT NULL,          -- JSON array, boot disk first
    encrypted    INTEGER NOT NULL,
    kms_key_id   TEXT,
    status       TEXT NOT NULL           -- available | deregistered
);
CREATE INDEX IF NOT EXISTS amis_by_server ON amis (app, server, created_at);
"#;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create directory {path} for the state database: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {operation}: {source}")]
    Sql {
        path: PathBuf,
        operation: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "state database {path} has schema version {found}; this rehost knows version {known} (upgrade rehost)"
    )]
    Schema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("state database {path}: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error(
        "application '{app}' is already being replicated by another rehost (process {holder}); lock file {path}. \
         Wait for it to finish or stop it"
    )]
    Locked {
        app: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot use lock file {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> RunStatus {
        match s {
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Running,
        }
    }
}

/// Where a run is; recorded at each transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunPhase {
    Scanning,
    Uploading,
    Completing,
    Registering,
    Completed,
    Failed,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Scanning => "scanning",
            RunPhase::Uploading => "uploading",
            RunPhase::Completing => "completing",
            RunPhase::Registering => "registering",
            RunPhase::Completed => "completed",
            RunPhase::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotStatus {
    /// Started; blocks are being written.
    Open,
    /// Every block accepted, manifest stored, CompleteSnapshot sent or about to be.
    Completing,
    Completed,
    /// Could not be continued; to be deleted in AWS.
    Abandoned,
    Deleted,
}

impl SnapshotStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotStatus::Open => "open",
            SnapshotStatus::Completing => "completing",
            SnapshotStatus::Completed => "completed",
            SnapshotStatus::Abandoned => "abandoned",
            SnapshotStatus::Deleted => "deleted",
        }
    }
    fn parse(s: &str) -> SnapshotStatus {
        match s {
            "completing" => SnapshotStatus::Completing,
            "completed" => SnapshotStatus::Completed,
            "abandoned" => SnapshotStatus::Abandoned,
            "deleted" => SnapshotStatus::Deleted,
            _ => SnapshotStatus::Open,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub run_id: String,
    pub app: String,
    pub server: String,
    pub group: String,
    pub status: RunStatus,
    pub phase: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub attempted_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub attempts: u32,
    pub ami_id: Option<String>,
    pub ami_name: Option<String>,
    pub error: Option<String>,
    /// Seconds per phase and per disk ("disk0", "register", "total", ...).
    pub timings: BTreeMap<String, f64>,
    pub snapshots: Vec<SnapshotRecord>,
}

impl RunRecord {
    /// Snapshot ids of the run, in disk order of recording.
    pub fn snapshot_ids(&self) -> Vec<String> {
        self.snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotRecord {
    pub snapshot_id: String,
    pub run_id: String,
    pub disk: String,
    pub parent_snapshot_id: Option<String>,
    pub status: SnapshotStatus,
    pub volume_size_gib: u64,
    pub block_count: u64,
    pub encrypted: bool,
    pub kms_key_arn: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
    pub blocks_total: u64,
    pub blocks_scanned: u64,
    pub blocks_uploaded: u64,
    pub bytes_uploaded: u64,
    /// Blocks written to the snapshot (ChangedBlocksCount), across resumed attempts.
    pub blocks_changed: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmiRecord {
    pub ami_id: String,
    pub name: String,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Boot disk first.
    pub snapshot_ids: Vec<String>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
}

/// Counters stored with a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SnapshotCounts {
    pub blocks_total: u64,
    pub blocks_scanned: u64,
    pub blocks_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blocks_changed: u64,
    pub seconds: f64,
}

/// What a new snapshot row holds.
#[derive(Debug, Clone)]
pub struct NewSnapshot<'a> {
    pub snapshot_id: &'a str,
    pub run_id: &'a str,
    pub app: &'a str,
    pub server: &'a str,
    pub disk: &'a str,
    pub parent_snapshot_id: Option<&'a str>,
    pub volume_size_gib: u64,
    pub block_count: u64,
    pub encrypted: bool,
    pub kms_key_arn: Option<&'a str>,
}

/// One accepted block.
#[derive(Debug, Clone, Copy)]
pub struct WrittenBlock {
    pub index: u64,
    pub xxh3: BlockHash,
    pub sha256: [u8; 32],
}

/// The state database. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// The default place of the state database: `.rehost/state.db` beside the application file.
pub fn default_state_path(app_file: &Path) -> PathBuf {
    let dir = app_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(".rehost").join("state.db")
}

fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_ms(v: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(v) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A new run id: UTC start time plus 32 random bits, e.g. `20250301T120000Z-1f2e3d4c`.
pub fn new_run_id(now: OffsetDateTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i128(now.unix_timestamp_nanos());
    h.write_u32(std::process::id());
    format!("{}-{:08x}", compact_utc(now), h.finish() as u32)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn compact_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl StateStore {
    /// Opens (creating if needed) the database and its directory.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
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
        let store = StateStore {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                conn: Mutex::new(conn),
            }),
        };
        store.init()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written: transactions roll back.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sql(&self, operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Sql {
            path: self.inner.path.clone(),
            operation,
            source,
        }
    }

    fn init(&self) -> Result<(), StateError> {
        let conn = self.conn();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(self.sql("set busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(self.sql("enable WAL"))?;
        // NORMAL in WAL mode: a commit survives a process kill; only an OS crash may lose the last ones.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(self.sql("set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(self.sql("enable foreign keys"))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.sql("read schema version"))?;
        if version > SCHEMA_VERSION {
            return Err(StateError::Schema {
                path: self.inner.path.clone(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        conn.execute_batch(SCHEMA)
            .map_err(self.sql("create schema"))?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(self.sql("set schema version"))?;
        Ok(())
    }

    /// Takes the application's exclusive lock for the whole run: `flock` on a file beside the
    /// database, released by the kernel even if the process is killed.
    pub fn lock_app(&self, app: &str) -> Result<AppLock, StateError> {
        let name = self
            .inner
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state.db".into());
        let safe: String = app
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self
            .inner
            .path
            .with_file_name(format!("{name}.{safe}.lock"));
        let lock_err = |source| StateError::Lock {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(lock_err)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StateError::Locked {
                    app: app.to_string(),
                    holder: if holder.is_empty() {
                        "unknown".into()
                    } else {
                        holder.to_string()
                    },
                    path,
                });
            }
            return Err(lock_err(err));
        }
        let describe = format!("{}", std::process::id());
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(describe.as_bytes()))
            .map_err(lock_err)?;
        Ok(AppLock {
            _file: file,
            path,
            app: app.to_string(),
        })
    }

    /// Starts a run of a server, or resumes its latest unfinished one (killed or failed): the same
    /// run id keeps snapshot client tokens and the AMI name stable. Returns the run and whether
    /// it was resumed.
    pub fn begin_run(
        &self,
        app: &str,
        server: &str,
        group: &str,
        now: OffsetDateTime,
    ) -> Result<(RunRecord, bool), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin run"))?;
        let unfinished: Option<String> = tx
            .query_row(
                "SELECT run_id FROM runs WHERE app = ?1 AND server = ?2 AND status != 'completed' \
                 ORDER BY started_at DESC LIMIT 1",
                params![app, server],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("find unfinished run"))?;
        let (run_id, resumed) = match unfinished {
            Some(run_id) => {
                tx.execute(
                    "UPDATE runs SET status = 'running', attempts = attempts + 1, attempted_at = ?2, error = NULL, grp = ?3 \
                     WHERE run_id = ?1",
                    params![run_id, ms(now), group],
                )
                .map_err(self.sql("resume run"))?;
                (run_id, true)
            }
            None => {
                let run_id = new_run_id(now);
                tx.execute(
                    "INSERT INTO runs (run_id, app, server, grp, status, phase, started_at, attempted_at) \
                     VALUES (?1, ?2, ?3, ?4, 'running', 'scanning', ?5, ?5)",
                    params![run_id, app, server, group, ms(now)],
                )
                .map_err(self.sql("insert run"))?;
                (run_id, false)
            }
        };
        tx.commit().map_err(self.sql("commit run start"))?;
        drop(conn);
        let run = self.run(&run_id)?.ok_or_else(|| StateError::Corrupt {
            path: self.inner.path.clone(),
            what: format!("run {run_id} vanished"),
        })?;
        Ok((run, resumed))
    }

    pub fn set_phase(&self, run_id: &str, phase: RunPhase) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE runs SET phase = ?2 WHERE run_id = ?1",
                params![run_id, phase.as_str()],
            )
            .map_err(self.sql("set run phase"))?;
        Ok(())
    }

    /// Fixes the AMI name of a run once, so a resumed run looks up the same name.
    pub fn ami_name_for(&self, run_id: &str, proposed: &str) -> Result<String, StateError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE runs SET ami_name = ?2 WHERE run_id = ?1 AND ami_name IS NULL",
            params![run_id, proposed],
        )
        .map_err(self.sql("set AMI name"))?;
        conn.query_row(
            "SELECT ami_name FROM runs WHERE run_id = ?1",
            params![run_id],
            |r| r.get(0),
        )
        .map_err(self.sql("read AMI name"))
    }

    pub fn fail_run(
        &self,
        run_id: &str,
        error: &str,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let timings = serde_json::to_string(timings).unwrap_or_default();
        self.conn()
            .execute(
                "UPDATE runs SET status = 'failed', phase = 'failed', error = ?2, timings = ?3, finished_at = ?4 WHERE run_id = ?1",
                params![run_id, error, timings, ms(now)],
            )
            .map_err(self.sql("record failed run"))?;
        Ok(())
    }

    /// Records the AMI and marks the run completed, in one transaction.
    pub fn complete_run(
        &self,
        run_id: &str,
        app: &str,
        server: &str,
        ami: &AmiRecord,
        timings: &BTreeMap<String, f64>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(self.sql("begin run completion"))?;
        let snapshot_ids = serde_json::to_string(&ami.snapshot_ids).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO amis (ami_id, app, server, run_id, name, created_at, snapshot_ids, encrypted, kms_key_id, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'available') \
             ON CONFLICT (ami_id) DO UPDATE SET status = 'available', snapshot_ids = excluded.snapshot_ids",
            params![ami.ami_id, app, server, ami.run_id, ami.name, ms(ami.created_at), snapshot_ids, ami.encrypted, ami.kms_key_id],
        )
        .map_err(self.sql("record AMI"))?;
        let timings = serde_json::to_string(timings).unwrap_or_default();
        tx.execute(
            "UPDATE runs SET status = 'completed', phase = 'completed', ami_id = ?2, ami_name = ?3, error = NULL, \
             timings = ?4, finished_at = ?5 WHERE run_id = ?1",
            params![run_id, ami.ami_id, ami.name, timings, ms(now)],
        )
        .map_err(self.sql("mark run completed"))?;
        tx.commit().map_err(self.sql("commit run completion"))?;
        Ok(())
    }

    pub fn run(&self, run_id: &str) -> Result<Option<RunRecord>, StateError> {
        let conn = self.conn();
        let run = conn
            .query_row(
                "SELECT run_id, app, server, grp, status, phase, started_at, attempted_at, finished_at, attempts, ami_id, \
                 ami_name, error, timings FROM runs WHERE run_id = ?1",
                params![run_id],
                row_to_run,
            )
            .optional()
            .map_err(self.sql("read run"))?;
        let Some(mut run) = run else { return Ok(None) };
        run.snapshots = snapshots_of_run(&conn, run_id).map_err(self.sql("read run snapshots"))?;
        Ok(Some(run))
    }

    /// The newest runs of a server, newest first, with their snapshots (for `rehost status`).
    pub fn server_history(
        &self,
        app: &str,
        server: &str,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT run_id, app, server, grp, status, phase, started_at, attempted_at, finished_at, attempts, ami_id, \
                 ami_name, error, timings FROM runs WHERE app = ?1 AND server = ?2 ORDER BY attempted_at DESC, started_at DESC LIMIT ?3",
            )
            .map_err(self.sql("prepare history"))?;
        let mut runs = stmt
            .query_map(params![app, server, limit as i64], row_to_run)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read history"))?;
        for run in &mut runs {
            run.snapshots =
                snapshots_of_run(&conn, &run.run_id).map_err(self.sql("read run snapshots"))?;
        }
        Ok(runs)
    }

    /// When the server last completed a run and last started (or resumed) one: the inputs of
    /// `schedule::next_run`.
    pub fn last_times(
        &self,
        app: &str,
        server: &str,
    ) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
        let conn = self.conn();
        let (success, attempt): (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT MAX(CASE WHEN status = 'completed' THEN finished_at END), MAX(attempted_at) \
                 FROM runs WHERE app = ?1 AND server = ?2",
                params![app, server],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.sql("read last run times"))?;
        Ok((success.map(from_ms), attempt.map(from_ms)))
    }

    /// Each server's latest AMI from a completed run, still registered.
    pub fn latest_amis(&self, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT a.server, a.ami_id, a.name, a.run_id, a.created_at, a.snapshot_ids, a.encrypted, a.kms_key_id \
                 FROM amis a JOIN runs r ON r.run_id = a.run_id \
                 WHERE a.app = ?1 AND a.status = 'available' AND r.status = 'completed' \
                 ORDER BY a.created_at ASC, a.name ASC",
            )
            .map_err(self.sql("prepare latest AMIs"))?;
        let rows = stmt
            .query_map(params![app], |r| {
                Ok((r.get::<_, String>(0)?, row_to_ami(r, 1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read latest AMIs"))?;
        // Ascending order: the last one per server wins.
        Ok(rows.into_iter().collect())
    }

    /// The server's AMIs still registered, oldest first.
    pub fn server_amis(&self, app: &str, server: &str) -> Result<Vec<AmiRecord>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT ami_id, name, run_id, created_at, snapshot_ids, encrypted, kms_key_id FROM amis \
                 WHERE app = ?1 AND server = ?2 AND status = 'available' ORDER BY created_at ASC, name ASC",
            )
            .map_err(self.sql("prepare server AMIs"))?;
        stmt.query_map(params![app, server], |r| row_to_ami(r, 0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read server AMIs"))
    }

    pub fn mark_ami_deregistered(&self, ami_id: &str) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE amis SET status = 'deregistered' WHERE ami_id = ?1",
                params![ami_id],
            )
            .map_err(self.sql("mark AMI deregistered"))?;
        Ok(())
    }

    /// The snapshot this run holds for a disk (not abandoned or deleted), if any.
    pub fn run_snapshot(
        &self,
        run_id: &str,
        disk: &str,
    ) -> Result<Option<SnapshotRecord>, StateError> {
        let conn = self.conn();
        conn.query_row(
            &format!(
                "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 AND disk = ?2 \
                 AND status IN ('open', 'completing', 'completed') ORDER BY started_at DESC LIMIT 1"
            ),
            params![run_id, disk],
            row_to_snapshot,
        )
        .optional()
        .map_err(self.sql("read run snapshot"))
    }

    /// How many snapshots of this run and disk were given up: part of the next client token, so
    /// a fresh start is a new snapshot while a retried StartSnapshot stays the same one.
    pub fn abandoned_count(&self, run_id: &str, disk: &str) -> Result<u32, StateError> {
        self.conn()
            .query_row(
                "SELECT COUNT(*) FROM snapshots WHERE run_id = ?1 AND disk = ?2 AND status IN ('abandoned', 'deleted')",
                params![run_id, disk],
                |r| r.get(0),
            )
            .map_err(self.sql("count abandoned snapshots"))
    }

    /// The disk's newest completed snapshot (from any run) with its manifest: the parent of the
    /// next increment.
    pub fn latest_completed_snapshot(
        &self,
        app: &str,
        server: &str,
        disk: &str,
    ) -> Result<Option<(SnapshotRecord, Manifest)>, StateError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!(
                    "SELECT {SNAPSHOT_COLUMNS}, manifest FROM snapshots WHERE app = ?1 AND server = ?2 AND disk = ?3 \
                     AND status = 'completed' AND manifest IS NOT NULL ORDER BY completed_at DESC, started_at DESC LIMIT 1"
                ),
                params![app, server, disk],
                |r| Ok((row_to_snapshot(r)?, r.get::<_, Vec<u8>>(SNAPSHOT_COLUMN_COUNT)?)),
            )
            .optional()
            .map_err(self.sql("read latest snapshot"))?;
        let Some((rec, blob)) = row else {
            return Ok(None);
        };
        let manifest = Manifest::decode(&blob).map_err(|e| StateError::Corrupt {
            path: self.inner.path.clone(),
            what: format!("manifest of snapshot {}: {e}", rec.snapshot_id),
        })?;
        Ok(Some((rec, manifest)))
    }

    /// The stored manifest of a snapshot in state `completing` or `completed`.
    pub fn snapshot_manifest(&self, snapshot_id: &str) -> Result<Option<Manifest>, StateError> {
        let blob: Option<Option<Vec<u8>>> = self
            .conn()
            .query_row(
                "SELECT manifest FROM snapshots WHERE snapshot_id = ?1",
                params![snapshot_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("read manifest"))?;
        match blob.flatten() {
            None => Ok(None),
            Some(b) => Manifest::decode(&b)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    path: self.inner.path.clone(),
                    what: format!("manifest of snapshot {snapshot_id}: {e}"),
                }),
        }
    }

    pub fn insert_snapshot(
        &self,
        s: &NewSnapshot<'_>,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        self.conn()
            .execute(
                "INSERT INTO snapshots (snapshot_id, run_id, app, server, disk, parent_snapshot_id, status, volume_size_gib, \
                 block_count, encrypted, kms_key_arn, started_at, blocks_total) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?9, ?10, ?11, ?8) \
                 ON CONFLICT (snapshot_id) DO NOTHING",
                params![
                    s.snapshot_id,
                    s.run_id,
                    s.app,
                    s.server,
                    s.disk,
                    s.parent_snapshot_id,
                    s.volume_size_gib as i64,
                    s.block_count as i64,
                    s.encrypted,
                    s.kms_key_arn,
                    ms(now)
                ],
            )
            .map_err(self.sql("record started snapshot"))?;
        Ok(())
    }

    /// Gives up an open snapshot: its accepted blocks are forgotten; the snapshot is deleted in
    /// AWS by the next cleanup.
    pub fn abandon_snapshot(&self, snapshot_id: &str) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin abandon"))?;
        tx.execute(
            "UPDATE snapshots SET status = 'abandoned' WHERE snapshot_id = ?1",
            params![snapshot_id],
        )
        .map_err(self.sql("abandon snapshot"))?;
        tx.execute(
            "DELETE FROM written_blocks WHERE snapshot_id = ?1",
            params![snapshot_id],
        )
        .map_err(self.sql("forget written blocks"))?;
        tx.commit().map_err(self.sql("commit abandon"))?;
        Ok(())
    }

    pub fn mark_snapshot_deleted(&self, snapshot_id: &str) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE snapshots SET status = 'deleted' WHERE snapshot_id = ?1",
                params![snapshot_id],
            )
            .map_err(self.sql("mark snapshot deleted"))?;
        Ok(())
    }

    /// Snapshots of a server given up earlier, to delete in AWS.
    pub fn abandoned_snapshots(&self, app: &str, server: &str) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT snapshot_id FROM snapshots WHERE app = ?1 AND server = ?2 AND status = 'abandoned'")
            .map_err(self.sql("prepare abandoned snapshots"))?;
        stmt.query_map(params![app, server], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read abandoned snapshots"))
    }

    /// The newest completed snapshot of each disk of a server: parents of the next increments.
    pub fn newest_snapshot_per_disk(
        &self,
        app: &str,
        server: &str,
    ) -> Result<Vec<String>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT snapshot_id FROM snapshots s WHERE app = ?1 AND server = ?2 AND status = 'completed' \
                 AND completed_at = (SELECT MAX(completed_at) FROM snapshots t WHERE t.app = s.app AND t.server = s.server \
                 AND t.disk = s.disk AND t.status = 'completed')",
            )
            .map_err(self.sql("prepare newest snapshots"))?;
        stmt.query_map(params![app, server], |r| r.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read newest snapshots"))
    }

    /// The blocks an open snapshot has accepted, by index.
    pub fn written_blocks(&self, snapshot_id: &str) -> Result<HashMap<u64, BlockHash>, StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT block_index, xxh3 FROM written_blocks WHERE snapshot_id = ?1")
            .map_err(self.sql("prepare written blocks"))?;
        let rows = stmt
            .query_map(params![snapshot_id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(self.sql("read written blocks"))?;
        let mut out = HashMap::with_capacity(rows.len());
        for (index, hash) in rows {
            let hash: BlockHash = hash
                .as_slice()
                .try_into()
                .map_err(|_| StateError::Corrupt {
                    path: self.inner.path.clone(),
                    what: format!(
                        "written block {index} of {snapshot_id} has a {}-byte hash",
                        hash.len()
                    ),
                })?;
            out.insert(index as u64, hash);
        }
        Ok(out)
    }

    /// Records accepted blocks in one transaction.
    pub fn record_written(
        &self,
        snapshot_id: &str,
        blocks: &[WrittenBlock],
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.sql("begin block record"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO written_blocks (snapshot_id, block_index, xxh3, sha256) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(self.sql("prepare block record"))?;
            for b in blocks {
                stmt.execute(params![
                    snapshot_id,
                    b.index as i64,
                    &b.xxh3[..],
                    &b.sha256[..]
                ])
                .map_err(self.sql("record written block"))?;
            }
        }
        tx.commit().map_err(self.sql("commit block record"))?;
        Ok(())
    }

    /// ChangedBlocksCount and the LINEAR aggregated checksum of everything written to a snapshot:
    /// SHA-256 over the blocks' SHA-256 digests in ascending block index. Streams the rows.
    pub fn written_checksum(&self, snapshot_id: &str) -> Result<(u64, [u8; 32]), StateError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT sha256 FROM written_blocks WHERE snapshot_id = ?1 ORDER BY block_index ASC",
            )
            .map_err(self.sql("prepare checksum"))?;
        let mut rows = stmt
            .query(params![snapshot_id])
            .map_err(self.sql("read checksums"))?;
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(self.sql("read checksums"))? {
            let digest: Vec<u8> = row.get(0).map_err(self.sql("read checksum"))?;
            hasher.update(&digest);
            count += 1;
        }
        Ok((count, hasher.finalize().into()))
    }

    /// All blocks accepted and the manifest known: the snapshot may now be completed in AWS.
    pub fn mark_completing(
        &self,
        snapshot_id: &str,
        manifest: &Manifest,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE snapshots SET status = 'completing', manifest = ?2, blocks_total = ?3, blocks_scanned = ?4, \
                 blocks_uploaded = blocks_uploaded + ?5, bytes_uploaded = bytes_uploaded + ?6, blocks_changed = ?7, \
                 seconds = seconds + ?8 WHERE snapshot_id = ?1",
                params![
                    snapshot_id,
                    manifest.encode(),
                    counts.blocks_total as i64,
                    counts.blocks_scanned as i64,
                    counts.blocks_uploaded as i64,
                    counts.bytes_uploaded as i64,
                    counts.blocks_changed as i64,
                    counts.seconds
                ],
            )
            .map_err(self.sql("mark snapshot completing"))?;
        Ok(())
    }

    /// Adds the upload counters of an interrupted attempt, so totals stay right after a resume.
    pub fn add_partial_counts(
        &self,
        snapshot_id: &str,
        counts: &SnapshotCounts,
    ) -> Result<(), StateError> {
        self.conn()
            .execute(
                "UPDATE snapshots SET blocks_uploaded = blocks_uploaded + ?2, bytes_uploaded = bytes_uploaded + ?3, \
                 seconds = seconds + ?4 WHERE snapshot_id = ?1 AND status = 'open'",
                params![snapshot_id, counts.blocks_uploaded as i64, counts.bytes_uploaded as i64, counts.seconds],
            )
            .map_err(self.sql("record partial counts"))?;
        Ok(())
    }

    pub fn mark_snapshot_completed(
        &self,
        snapshot_id: &str,
        now: OffsetDateTime,
    ) -> Result<(), StateError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction()
            .map_err(self.sql("begin snapshot completion"))?;
        tx.execute(
            "UPDATE snapshots SET status = 'completed', completed_at = ?2 WHERE snapshot_id = ?1 AND status = 'completing'",
            params![snapshot_id, ms(now)],
        )
        .map_err(self.sql("mark snapshot completed"))?;
        tx.execute(
            "DELETE FROM written_blocks WHERE snapshot_id = ?1",
            params![snapshot_id],
        )
        .map_err(self.sql("drop written blocks"))?;
        tx.commit()
            .map_err(self.sql("commit snapshot completion"))?;
        Ok(())
    }

    pub fn snapshot(&self, snapshot_id: &str) -> Result<Option<SnapshotRecord>, StateError> {
        self.conn()
            .query_row(
                &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE snapshot_id = ?1"),
                params![snapshot_id],
                row_to_snapshot,
            )
            .optional()
            .map_err(self.sql("read snapshot"))
    }
}

const SNAPSHOT_COLUMNS: &str = "snapshot_id, run_id, disk, parent_snapshot_id, status, volume_size_gib, block_count, encrypted, \
     kms_key_arn, started_at, completed_at, blocks_total, blocks_scanned, blocks_uploaded, bytes_uploaded, blocks_changed, seconds";
const SNAPSHOT_COLUMN_COUNT: usize = 17;

fn row_to_snapshot(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        snapshot_id: r.get(0)?,
        run_id: r.get(1)?,
        disk: r.get(2)?,
        parent_snapshot_id: r.get(3)?,
        status: SnapshotStatus::parse(&r.get::<_, String>(4)?),
        volume_size_gib: r.get::<_, i64>(5)? as u64,
        block_count: r.get::<_, i64>(6)? as u64,
        encrypted: r.get(7)?,
        kms_key_arn: r.get(8)?,
        started_at: from_ms(r.get(9)?),
        completed_at: r.get::<_, Option<i64>>(10)?.map(from_ms),
        blocks_total: r.get::<_, i64>(11)? as u64,
        blocks_scanned: r.get::<_, i64>(12)? as u64,
        blocks_uploaded: r.get::<_, i64>(13)? as u64,
        bytes_uploaded: r.get::<_, i64>(14)? as u64,
        blocks_changed: r.get::<_, i64>(15)? as u64,
        seconds: r.get(16)?,
    })
}

fn snapshots_of_run(conn: &Connection, run_id: &str) -> rusqlite::Result<Vec<SnapshotRecord>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 ORDER BY disk ASC, started_at ASC"
    ))?;
    stmt.query_map(params![run_id], row_to_snapshot)?.collect()
}

fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let timings: Option<String> = r.get(13)?;
    Ok(RunRecord {
        run_id: r.get(0)?,
        app: r.get(1)?,
        server: r.get(2)?,
        group: r.get(3)?,
        status: RunStatus::parse(&r.get::<_, String>(4)?),
        phase: r.get(5)?,
        started_at: from_ms(r.get(6)?),
        attempted_at: from_ms(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(8)?.map(from_ms),
        attempts: r.get::<_, i64>(9)? as u32,
        ami_id: r.get(10)?,
        ami_name: r.get(11)?,
        error: r.get(12)?,
        timings: timings
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
        snapshots: Vec::new(),
    })
}

fn row_to_ami(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<AmiRecord> {
    let snapshot_ids: String = r.get(at + 4)?;
    Ok(AmiRecord {
        ami_id: r.get(at)?,
        name: r.get(at + 1)?,
        run_id: r.get(at + 2)?,
        created_at: from_ms(r.get(at + 3)?),
        snapshot_ids: serde_json::from_str(&snapshot_ids).unwrap_or_default(),
        encrypted: r.get(at + 5)?,
        kms_key_id: r.get(at + 6)?,
    })
}

/// Held for a whole replication of an application; dropping it (or the process dying) releases it.
#[derive(Debug)]
pub struct AppLock {
    _file: File,
    path: PathBuf,
    app: String,
}

impl AppLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn app(&self) -> &str {
        &self.app
    }
}
