//! Inspections and accepted risks in SQLite: one inspection row per server (replaced), one
//! accepted-risk row per acceptance (appended).

use rusqlite::params;

use super::{Db, SqliteStore, json};
use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{AcceptedRisk, InspectionRecord, ServerKey, StateError};

// The trait's guest methods: each copies its arguments and runs its SQL on a blocking thread.

pub(super) async fn store_inspection(
    store: &SqliteStore,
    server: &ServerKey,
    record: &InspectionRecord,
) -> Result<(), StateError> {
    let (server, record) = (server.clone(), record.clone());
    store
        .call("store inspection", move |conn, path| {
            write_inspection(&Db { conn, path }, &server, &record)
        })
        .await
}

pub(super) async fn inspection(
    store: &SqliteStore,
    server: &ServerKey,
) -> Result<Option<InspectionRecord>, StateError> {
    let server = server.clone();
    store
        .call("read inspection", move |conn, path| {
            read_inspection(&Db { conn, path }, &server)
        })
        .await
}

pub(super) async fn record_accepted_risk(
    store: &SqliteStore,
    server: &ServerKey,
    risk: &AcceptedRisk,
) -> Result<(), StateError> {
    let (server, risk) = (server.clone(), risk.clone());
    store
        .call("record accepted risk", move |conn, path| {
            append_accepted_risk(&Db { conn, path }, &server, &risk)
        })
        .await
}

pub(super) async fn accepted_risks(
    store: &SqliteStore,
    server: &ServerKey,
) -> Result<Vec<AcceptedRisk>, StateError> {
    let server = server.clone();
    store
        .call("read accepted risks", move |conn, path| {
            read_accepted_risks(&Db { conn, path }, &server)
        })
        .await
}

fn write_inspection(
    db: &Db<'_>,
    server: &ServerKey,
    record: &InspectionRecord,
) -> Result<(), StateError> {
    let text = serde_json::to_string(&record.inspection).map_err(|e| StateError::Corrupt {
        location: db.path.display().to_string(),
        table: "inspections",
        id: server.to_string(),
        what: format!("cannot encode the inspection: {e}"),
    })?;
    db.execute(
        "store inspection",
        "INSERT INTO inspections (app, server, fingerprint, inspected_at, inspection) \
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (app, server) DO UPDATE SET \
         fingerprint = excluded.fingerprint, inspected_at = excluded.inspected_at, \
         inspection = excluded.inspection",
        params![
            server.app,
            server.server,
            record.fingerprint,
            unix_ms(record.inspected_at),
            text
        ],
    )?;
    Ok(())
}

fn read_inspection(
    db: &Db<'_>,
    server: &ServerKey,
) -> Result<Option<InspectionRecord>, StateError> {
    let id = server.to_string();
    db.first(
        "read inspection",
        "SELECT fingerprint, inspected_at, inspection FROM inspections \
         WHERE app = ?1 AND server = ?2",
        params![server.app, server.server],
        |r| {
            let text: String = r.get(2)?;
            Ok(InspectionRecord {
                fingerprint: r.get(0)?,
                inspected_at: from_unix_ms(r.get(1)?),
                inspection: json("inspections", &id, "inspection", &text)?,
            })
        },
    )
}

fn append_accepted_risk(
    db: &Db<'_>,
    server: &ServerKey,
    risk: &AcceptedRisk,
) -> Result<(), StateError> {
    let findings = serde_json::to_string(&risk.findings).unwrap_or_else(|_| "[]".into());
    db.execute(
        "record accepted risk",
        "INSERT INTO accepted_risks (app, server, mode, findings, accepted_at, caller_arn) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            server.app,
            server.server,
            risk.mode,
            findings,
            unix_ms(risk.accepted_at),
            risk.caller_arn
        ],
    )?;
    Ok(())
}

fn read_accepted_risks(db: &Db<'_>, server: &ServerKey) -> Result<Vec<AcceptedRisk>, StateError> {
    let id = server.to_string();
    db.rows(
        "read accepted risks",
        "SELECT mode, findings, accepted_at, caller_arn FROM accepted_risks \
         WHERE app = ?1 AND server = ?2 ORDER BY accepted_at ASC, rowid ASC",
        params![server.app, server.server],
        |r| {
            let findings: String = r.get(1)?;
            Ok(AcceptedRisk {
                mode: r.get(0)?,
                findings: json("accepted_risks", &id, "findings", &findings)?,
                accepted_at: from_unix_ms(r.get(2)?),
                caller_arn: r.get(3)?,
            })
        },
    )
}
