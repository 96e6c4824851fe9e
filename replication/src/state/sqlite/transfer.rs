//! A server's whole record set out of and into SQLite, for `rehost state migrate`.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::amis::ami_from_row;
use super::runs::{RUN_COLUMNS, run_from_row, with_snapshots};
use super::snapshots;
use super::{Db, SqliteStore, stored, transaction};
use crate::clock::unix_ms;
use crate::state::{
    AmiEntry, ImportOutcome, Inventory, ServerDump, ServerKey, StateError, StateInventory,
    StoredText,
};

/// An AMI's stored status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AmiStatus {
    Available,
    Deregistered,
}

impl StoredText for AmiStatus {
    const ALL: &'static [Self] = &[AmiStatus::Available, AmiStatus::Deregistered];
    fn as_str(self) -> &'static str {
        match self {
            AmiStatus::Available => "available",
            AmiStatus::Deregistered => "deregistered",
        }
    }
}

pub(super) fn servers(db: &Db<'_>) -> Result<Vec<ServerKey>, StateError> {
    db.rows(
        "list servers",
        "SELECT app, server FROM runs UNION SELECT app, server FROM snapshots \
         UNION SELECT app, server FROM amis ORDER BY 1, 2",
        [],
        |r| {
            Ok(ServerKey::new(
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        },
    )
}

/// Every application with any record, and every server with an inspection or accepted risks.
fn inventory(db: &Db<'_>) -> Result<Inventory, StateError> {
    let apps = db.rows(
        "list applications",
        "SELECT app FROM runs UNION SELECT app FROM snapshots UNION SELECT app FROM amis \
         UNION SELECT app FROM account_bindings UNION SELECT app FROM launches \
         UNION SELECT app FROM inspections UNION SELECT app FROM accepted_risks",
        [],
        |r| Ok(r.get::<_, String>(0)?),
    )?;
    let guests = db.rows(
        "list inspected servers",
        "SELECT app, server FROM inspections UNION SELECT app, server FROM accepted_risks",
        [],
        |r| {
            Ok(ServerKey::new(
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
            ))
        },
    )?;
    Ok(Inventory {
        apps: apps.into_iter().collect(),
        guests: guests.into_iter().collect(),
    })
}

#[async_trait]
impl StateInventory for SqliteStore {
    async fn inventory(&self) -> Result<Inventory, StateError> {
        self.call("list the state", move |conn, path| {
            inventory(&Db { conn, path })
        })
        .await
    }
}

pub(super) fn export(db: &Db<'_>, server: &ServerKey) -> Result<ServerDump, StateError> {
    let mut dump = ServerDump::new(server.clone());
    dump.runs = db
        .rows(
            "export runs",
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE app = ?1 AND server = ?2 ORDER BY started_at, run_id"
            ),
            params![server.app, server.server],
            run_from_row,
        )?
        .into_iter()
        .map(|run| with_snapshots(db, run))
        .collect::<Result<_, _>>()?;
    dump.amis = db.rows(
        "export AMIs",
        "SELECT ami_id, name, run_id, created_at, snapshot_ids, encrypted, kms_key_id, status \
         FROM amis WHERE app = ?1 AND server = ?2 ORDER BY created_at, ami_id",
        params![server.app, server.server],
        |r| {
            let ami = ami_from_row(r, 0)?;
            let status: AmiStatus = stored("amis", &ami.ami_id, "status", &r.get::<_, String>(7)?)?;
            Ok(AmiEntry {
                ami,
                deregistered: status == AmiStatus::Deregistered,
            })
        },
    )?;
    let ids: Vec<String> = dump
        .runs
        .iter()
        .flat_map(|r| r.snapshots.iter().map(|s| s.snapshot_id.clone()))
        .collect();
    for id in ids {
        if let Some(manifest) = snapshots::manifest(db, server, &id)? {
            dump.manifests.insert(id.clone(), manifest);
        }
        let written = snapshots::written(db, server, &id)?;
        if !written.is_empty() {
            dump.written.insert(id, written);
        }
    }
    Ok(dump.normalized())
}

pub(super) fn import(
    conn: &mut Connection,
    path: &Path,
    dump: &ServerDump,
) -> Result<ImportOutcome, StateError> {
    let key = &dump.key;
    transaction(conn, path, "import server", |db| {
        let existing = export(db, key)?;
        if !existing.is_empty() {
            return if existing == dump.clone().normalized() {
                Ok(ImportOutcome::Identical)
            } else {
                Err(StateError::Differs {
                    location: path.display().to_string(),
                    server: key.to_string(),
                })
            };
        }
        for run in &dump.runs {
            let timings = (!run.timings.is_empty())
                .then(|| serde_json::to_string(&run.timings).unwrap_or_default());
            db.execute(
                "import run",
                "INSERT INTO runs (run_id, app, server, grp, status, phase, started_at, attempted_at, finished_at, \
                 attempts, ami_name, ami_id, error, timings) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    run.run_id,
                    key.app,
                    key.server,
                    run.group,
                    run.status.as_str(),
                    run.phase.as_str(),
                    unix_ms(run.started_at),
                    unix_ms(run.attempted_at),
                    run.finished_at.map(unix_ms),
                    run.attempts,
                    run.ami_name,
                    run.ami_id,
                    run.error,
                    timings
                ],
            )?;
            for s in &run.snapshots {
                let manifest = dump.manifests.get(&s.snapshot_id).map(|m| m.encode());
                db.execute(
                    "import snapshot",
                    "INSERT INTO snapshots (snapshot_id, run_id, app, server, disk, parent_snapshot_id, status, \
                     volume_size_gib, block_count, encrypted, kms_key_arn, started_at, completed_at, blocks_total, \
                     blocks_scanned, blocks_uploaded, bytes_uploaded, blocks_changed, seconds, manifest) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
                    params![
                        s.snapshot_id,
                        s.run_id,
                        key.app,
                        key.server,
                        s.disk,
                        s.parent_snapshot_id,
                        s.status.as_str(),
                        s.volume_size_gib as i64,
                        s.block_count as i64,
                        s.encrypted,
                        s.kms_key_arn,
                        unix_ms(s.started_at),
                        s.completed_at.map(unix_ms),
                        s.counts.blocks_total as i64,
                        s.counts.blocks_scanned as i64,
                        s.counts.blocks_uploaded as i64,
                        s.counts.bytes_uploaded as i64,
                        s.counts.blocks_changed as i64,
                        s.counts.seconds,
                        manifest
                    ],
                )?;
            }
        }
        for (id, blocks) in &dump.written {
            for b in blocks {
                db.execute(
                    "import written block",
                    "INSERT OR REPLACE INTO written_blocks (snapshot_id, block_index, xxh3, sha256) VALUES (?1, ?2, ?3, ?4)",
                    params![id, b.index as i64, &b.xxh3[..], &b.sha256[..]],
                )?;
            }
        }
        for entry in &dump.amis {
            let a = &entry.ami;
            let status = if entry.deregistered {
                AmiStatus::Deregistered
            } else {
                AmiStatus::Available
            };
            db.execute(
                "import AMI",
                "INSERT INTO amis (ami_id, app, server, run_id, name, created_at, snapshot_ids, encrypted, kms_key_id, status) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    a.ami_id,
                    key.app,
                    key.server,
                    a.run_id,
                    a.name,
                    unix_ms(a.created_at),
                    serde_json::to_string(&a.snapshot_ids).unwrap_or_else(|_| "[]".into()),
                    a.encrypted,
                    a.kms_key_id,
                    status.as_str()
                ],
            )?;
        }
        Ok(ImportOutcome::Created)
    })
}
