//! Runs in SQLite: one row per run of a server, its status and phase, attempts, AMI and timings.

use std::path::Path;

use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use super::snapshots::{self, SNAPSHOT_COLUMNS};
use super::{Db, RowError, json, stored, transaction};
use crate::clock::{from_unix_ms, unix_ms};
use crate::ids::new_run_id;
use crate::state::{AmiRecord, RunPhase, RunRecord, ServerKey, StateError};

pub(super) const RUN_COLUMNS: &str = "run_id, app, server, grp, status, phase, started_at, attempted_at, finished_at, attempts, \
     ami_id, ami_name, error, timings";

pub(super) fn begin(
    conn: &mut Connection,
    path: &Path,
    server: &ServerKey,
    group: &str,
    now: OffsetDateTime,
) -> Result<(RunRecord, bool), StateError> {
    let (run_id, resumed) = transaction(conn, path, "begin run", |db| {
        let unfinished = db.first(
            "find unfinished run",
            "SELECT run_id FROM runs WHERE app = ?1 AND server = ?2 AND status != 'completed' \
             ORDER BY started_at DESC LIMIT 1",
            params![server.app, server.server],
            |r| Ok(r.get::<_, String>(0)?),
        )?;
        Ok(match unfinished {
            Some(run_id) => {
                db.execute(
                    "resume run",
                    "UPDATE runs SET status = 'running', attempts = attempts + 1, attempted_at = ?2, error = NULL, grp = ?3 \
                     WHERE run_id = ?1",
                    params![run_id, unix_ms(now), group],
                )?;
                (run_id, true)
            }
            None => {
                let run_id = new_run_id(now);
                db.execute(
                    "insert run",
                    "INSERT INTO runs (run_id, app, server, grp, status, phase, started_at, attempted_at) \
                     VALUES (?1, ?2, ?3, ?4, 'running', 'scanning', ?5, ?5)",
                    params![run_id, server.app, server.server, group, unix_ms(now)],
                )?;
                (run_id, false)
            }
        })
    })?;
    let db = Db { conn, path };
    let run = read(&db, server, &run_id)?.ok_or_else(|| StateError::Corrupt {
        location: path.display().to_string(),
        table: "runs",
        id: run_id.clone(),
        what: "vanished right after it was recorded".into(),
    })?;
    Ok((run, resumed))
}

pub(super) fn set_phase(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
    phase: RunPhase,
) -> Result<(), StateError> {
    db.execute(
        "set run phase",
        "UPDATE runs SET phase = ?4 WHERE run_id = ?1 AND app = ?2 AND server = ?3",
        params![run_id, server.app, server.server, phase.as_str()],
    )?;
    Ok(())
}

pub(super) fn ami_name_for(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
    proposed: &str,
) -> Result<String, StateError> {
    db.execute(
        "set AMI name",
        "UPDATE runs SET ami_name = ?4 WHERE run_id = ?1 AND app = ?2 AND server = ?3 AND ami_name IS NULL",
        params![run_id, server.app, server.server, proposed],
    )?;
    db.first(
        "read AMI name",
        "SELECT ami_name FROM runs WHERE run_id = ?1 AND app = ?2 AND server = ?3",
        params![run_id, server.app, server.server],
        |r| Ok(r.get::<_, Option<String>>(0)?),
    )?
    .flatten()
    .ok_or_else(|| StateError::Corrupt {
        location: db.path.display().to_string(),
        table: "runs",
        id: run_id.to_string(),
        what: format!("no such run of {server} to name its AMI"),
    })
}

pub(super) fn fail(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
    error: &str,
    timings: &str,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    db.execute(
        "record failed run",
        "UPDATE runs SET status = 'failed', phase = 'failed', error = ?4, timings = ?5, finished_at = ?6 \
         WHERE run_id = ?1 AND app = ?2 AND server = ?3",
        params![run_id, server.app, server.server, error, timings, unix_ms(now)],
    )?;
    Ok(())
}

pub(super) fn complete(
    conn: &mut Connection,
    path: &Path,
    server: &ServerKey,
    run_id: &str,
    ami: &AmiRecord,
    timings: &str,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    let snapshot_ids = serde_json::to_string(&ami.snapshot_ids).unwrap_or_else(|_| "[]".into());
    transaction(conn, path, "complete run", |db| {
        db.execute(
            "record AMI",
            "INSERT INTO amis (ami_id, app, server, run_id, name, created_at, snapshot_ids, encrypted, kms_key_id, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'available') \
             ON CONFLICT (ami_id) DO UPDATE SET status = 'available', snapshot_ids = excluded.snapshot_ids",
            params![
                ami.ami_id,
                server.app,
                server.server,
                ami.run_id,
                ami.name,
                unix_ms(ami.created_at),
                snapshot_ids,
                ami.encrypted,
                ami.kms_key_id
            ],
        )?;
        db.execute(
            "mark run completed",
            "UPDATE runs SET status = 'completed', phase = 'completed', ami_id = ?4, ami_name = ?5, error = NULL, \
             timings = ?6, finished_at = ?7 WHERE run_id = ?1 AND app = ?2 AND server = ?3",
            params![
                run_id,
                server.app,
                server.server,
                ami.ami_id,
                ami.name,
                timings,
                unix_ms(now)
            ],
        )?;
        Ok(())
    })
}

pub(super) fn read(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
) -> Result<Option<RunRecord>, StateError> {
    let run = db.first(
        "read run",
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?1 AND app = ?2 AND server = ?3"),
        params![run_id, server.app, server.server],
        run_from_row,
    )?;
    run.map(|run| with_snapshots(db, run)).transpose()
}

pub(super) fn history(
    db: &Db<'_>,
    server: &ServerKey,
    limit: usize,
) -> Result<Vec<RunRecord>, StateError> {
    db.rows(
        "read history",
        &format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE app = ?1 AND server = ?2 \
             ORDER BY attempted_at DESC, started_at DESC LIMIT ?3"
        ),
        params![server.app, server.server, limit as i64],
        run_from_row,
    )?
    .into_iter()
    .map(|run| with_snapshots(db, run))
    .collect()
}

pub(super) fn last_times(
    db: &Db<'_>,
    server: &ServerKey,
) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), StateError> {
    let times = db.first(
        "read last run times",
        "SELECT MAX(CASE WHEN status = 'completed' THEN finished_at END), MAX(attempted_at) \
         FROM runs WHERE app = ?1 AND server = ?2",
        params![server.app, server.server],
        |r| Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?)),
    )?;
    let (success, attempt) = times.unwrap_or((None, None));
    Ok((success.map(from_unix_ms), attempt.map(from_unix_ms)))
}

pub(super) fn with_snapshots(db: &Db<'_>, mut run: RunRecord) -> Result<RunRecord, StateError> {
    run.snapshots = db.rows(
        "read run snapshots",
        &format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 ORDER BY disk ASC, started_at ASC"
        ),
        params![run.run_id],
        snapshots::snapshot_from_row,
    )?;
    Ok(run)
}

pub(super) fn run_from_row(r: &Row<'_>) -> Result<RunRecord, RowError> {
    let run_id: String = r.get(0)?;
    let timings = match r.get::<_, Option<String>>(13)? {
        Some(text) => json("runs", &run_id, "timings", &text)?,
        None => Default::default(),
    };
    Ok(RunRecord {
        app: r.get(1)?,
        server: r.get(2)?,
        group: r.get(3)?,
        status: stored("runs", &run_id, "status", &r.get::<_, String>(4)?)?,
        phase: stored("runs", &run_id, "phase", &r.get::<_, String>(5)?)?,
        started_at: from_unix_ms(r.get(6)?),
        attempted_at: from_unix_ms(r.get(7)?),
        finished_at: r.get::<_, Option<i64>>(8)?.map(from_unix_ms),
        attempts: r.get::<_, i64>(9)? as u32,
        ami_id: r.get(10)?,
        ami_name: r.get(11)?,
        error: r.get(12)?,
        timings,
        snapshots: Vec::new(),
        run_id,
    })
}
