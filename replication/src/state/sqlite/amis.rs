//! AMIs in SQLite: one row per registered image, `available` until retention deregisters it.

use std::collections::BTreeMap;

use rusqlite::{Row, params};

use super::{Db, RowError, json};
use crate::clock::from_unix_ms;
use crate::state::{AmiRecord, ServerKey, StateError};

/// Each server's latest AMI of a completed run, still registered. One ordered scan of the
/// application's rows; on a per-server store this is one read per server.
pub(super) fn latest(db: &Db<'_>, app: &str) -> Result<BTreeMap<String, AmiRecord>, StateError> {
    let rows = db.rows(
        "read latest AMIs",
        "SELECT a.server, a.ami_id, a.name, a.run_id, a.created_at, a.snapshot_ids, a.encrypted, a.kms_key_id \
         FROM amis a JOIN runs r ON r.run_id = a.run_id \
         WHERE a.app = ?1 AND a.status = 'available' AND r.status = 'completed' \
         ORDER BY a.created_at ASC, a.name ASC",
        params![app],
        |r| Ok((r.get::<_, String>(0)?, ami_from_row(r, 1)?)),
    )?;
    // Ascending order: the last one per server wins.
    Ok(rows.into_iter().collect())
}

/// The server's AMIs not marked deregistered, oldest first (creation time, then name).
pub(super) fn recorded(db: &Db<'_>, server: &ServerKey) -> Result<Vec<AmiRecord>, StateError> {
    db.rows(
        "read recorded AMIs",
        "SELECT ami_id, name, run_id, created_at, snapshot_ids, encrypted, kms_key_id FROM amis \
         WHERE app = ?1 AND server = ?2 AND status = 'available' ORDER BY created_at ASC, name ASC",
        params![server.app, server.server],
        |r| ami_from_row(r, 0),
    )
}

pub(super) fn mark_deregistered(
    db: &Db<'_>,
    server: &ServerKey,
    ami_id: &str,
) -> Result<(), StateError> {
    db.execute(
        "mark AMI deregistered",
        "UPDATE amis SET status = 'deregistered' WHERE ami_id = ?1 AND app = ?2 AND server = ?3",
        params![ami_id, server.app, server.server],
    )?;
    Ok(())
}

/// An AMI from the columns ami_id, name, run_id, created_at, snapshot_ids, encrypted,
/// kms_key_id starting at `at`.
pub(super) fn ami_from_row(r: &Row<'_>, at: usize) -> Result<AmiRecord, RowError> {
    let ami_id: String = r.get(at)?;
    let snapshot_ids: String = r.get(at + 4)?;
    Ok(AmiRecord {
        name: r.get(at + 1)?,
        run_id: r.get(at + 2)?,
        created_at: from_unix_ms(r.get(at + 3)?),
        snapshot_ids: json("amis", &ami_id, "snapshot_ids", &snapshot_ids)?,
        encrypted: r.get(at + 5)?,
        kms_key_id: r.get(at + 6)?,
        ami_id,
    })
}
