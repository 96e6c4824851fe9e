//! Launch history in SQLite: one row per launch, replaced whole when the launch ends.

use std::collections::BTreeMap;

use rusqlite::{Row, params};
use serde::{Deserialize, Serialize};

use super::{Db, RowError, SqliteStore, json, stored};
use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{HookRecord, LaunchFailure, LaunchRecord, Override, StateError, SyncRecord};

// The trait's launch-history methods: each copies its arguments and runs its SQL on a blocking
// thread.

pub(super) async fn record_launch(
    store: &SqliteStore,
    app: &str,
    launch: &LaunchRecord,
) -> Result<(), StateError> {
    let (app, launch) = (app.to_string(), launch.clone());
    store
        .call("record launch", move |conn, path| {
            write(&Db { conn, path }, &app, &launch)
        })
        .await
}

pub(super) async fn launches(
    store: &SqliteStore,
    app: &str,
    limit: usize,
) -> Result<Vec<LaunchRecord>, StateError> {
    let app = app.to_string();
    store
        .call("read launches", move |conn, path| {
            read(&Db { conn, path }, &app, limit)
        })
        .await
}

/// What a launch row keeps in its `detail` JSON column.
#[derive(Serialize, Deserialize)]
struct Detail {
    amis: BTreeMap<String, String>,
    failure: Option<LaunchFailure>,
    forced: Option<Override>,
    hooks: Vec<HookRecord>,
    final_sync: Vec<SyncRecord>,
}

/// Inserts the launch, or replaces the row of its id when that row is this application's.
fn write(db: &Db<'_>, app: &str, l: &LaunchRecord) -> Result<(), StateError> {
    let detail = serde_json::to_string(&Detail {
        amis: l.amis.clone(),
        failure: l.failure.clone(),
        forced: l.forced.clone(),
        hooks: l.hooks.clone(),
        final_sync: l.final_sync.clone(),
    })
    .expect("launch details serialize");
    db.execute(
        "record launch",
        "INSERT INTO launches (launch_id, app, kind, mode, stack, definition, health_gate, started_at, \
         finished_at, outcome, caller, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (launch_id) DO UPDATE SET kind = excluded.kind, mode = excluded.mode, \
         stack = excluded.stack, definition = excluded.definition, health_gate = excluded.health_gate, \
         started_at = excluded.started_at, finished_at = excluded.finished_at, outcome = excluded.outcome, \
         caller = excluded.caller, detail = excluded.detail WHERE launches.app = excluded.app",
        params![
            l.launch_id,
            app,
            l.kind.as_str(),
            l.mode.as_str(),
            l.stack,
            l.definition,
            l.health_gate,
            unix_ms(l.started_at),
            l.finished_at.map(unix_ms),
            l.outcome.as_str(),
            l.caller,
            detail,
        ],
    )?;
    Ok(())
}

/// The application's launches, newest first.
fn read(db: &Db<'_>, app: &str, limit: usize) -> Result<Vec<LaunchRecord>, StateError> {
    db.rows(
        "read launches",
        "SELECT launch_id, kind, mode, stack, definition, health_gate, started_at, finished_at, outcome, \
         caller, detail FROM launches WHERE app = ?1 ORDER BY started_at DESC, launch_id DESC LIMIT ?2",
        params![app, i64::try_from(limit).unwrap_or(i64::MAX)],
        from_row,
    )
}

fn from_row(r: &Row<'_>) -> Result<LaunchRecord, RowError> {
    let id: String = r.get(0)?;
    let text = |i: usize| r.get::<_, String>(i);
    let detail: Detail = json("launches", &id, "detail", &text(10)?)?;
    Ok(LaunchRecord {
        kind: stored("launches", &id, "kind", &text(1)?)?,
        mode: stored("launches", &id, "mode", &text(2)?)?,
        stack: text(3)?,
        definition: text(4)?,
        health_gate: r.get(5)?,
        started_at: from_unix_ms(r.get(6)?),
        finished_at: r.get::<_, Option<i64>>(7)?.map(from_unix_ms),
        outcome: stored("launches", &id, "outcome", &text(8)?)?,
        caller: r.get(9)?,
        amis: detail.amis,
        failure: detail.failure,
        forced: detail.forced,
        hooks: detail.hooks,
        final_sync: detail.final_sync,
        launch_id: id,
    })
}
