//! Snapshots in SQLite: their lifecycle (open → completing → completed, or abandoned →
//! deleted), their manifests, and the blocks an open snapshot has accepted.

use std::path::Path;

use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use super::{Db, RowError, stored, transaction};
use crate::clock::{from_unix_ms, unix_ms};
use crate::manifest::Manifest;
use crate::state::{
    NewSnapshot, ServerKey, SnapshotCounts, SnapshotRecord, StateError, WrittenBlock,
};

pub(super) const SNAPSHOT_COLUMNS: &str = "snapshot_id, run_id, disk, parent_snapshot_id, status, volume_size_gib, block_count, encrypted, \
     kms_key_arn, started_at, completed_at, blocks_total, blocks_scanned, blocks_uploaded, bytes_uploaded, blocks_changed, seconds";

/// Records a started snapshot (once) and returns it as stored.
pub(super) fn insert(
    db: &Db<'_>,
    server: &ServerKey,
    s: &NewSnapshot,
    now: OffsetDateTime,
) -> Result<SnapshotRecord, StateError> {
    db.execute(
        "record started snapshot",
        "INSERT INTO snapshots (snapshot_id, run_id, app, server, disk, parent_snapshot_id, status, volume_size_gib, \
         block_count, encrypted, kms_key_arn, started_at, blocks_total) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'open', ?7, ?8, ?9, ?10, ?11, ?8) \
         ON CONFLICT (snapshot_id) DO NOTHING",
        params![
            s.snapshot_id,
            s.run_id,
            server.app,
            server.server,
            s.disk,
            s.parent_snapshot_id,
            s.volume_size_gib as i64,
            s.block_count as i64,
            s.encrypted,
            s.kms_key_arn,
            unix_ms(now)
        ],
    )?;
    read(db, server, &s.snapshot_id)?.ok_or_else(|| StateError::Corrupt {
        location: db.path.display().to_string(),
        table: "snapshots",
        id: s.snapshot_id.clone(),
        what: format!("recorded for another server than {server}"),
    })
}

pub(super) fn read(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    db.first(
        "read snapshot",
        &format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3"
        ),
        params![snapshot_id, server.app, server.server],
        snapshot_from_row,
    )
}

pub(super) fn of_run_disk(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
    disk: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    db.first(
        "read run snapshot",
        &format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE run_id = ?1 AND disk = ?2 AND app = ?3 AND server = ?4 \
             AND status IN ('open', 'completing', 'completed') ORDER BY started_at DESC LIMIT 1"
        ),
        params![run_id, disk, server.app, server.server],
        snapshot_from_row,
    )
}

pub(super) fn abandoned_count(
    db: &Db<'_>,
    server: &ServerKey,
    run_id: &str,
    disk: &str,
) -> Result<u32, StateError> {
    let count = db.first(
        "count abandoned snapshots",
        "SELECT COUNT(*) FROM snapshots WHERE run_id = ?1 AND disk = ?2 AND app = ?3 AND server = ?4 \
         AND status IN ('abandoned', 'deleted')",
        params![run_id, disk, server.app, server.server],
        |r| Ok(r.get::<_, u32>(0)?),
    )?;
    Ok(count.unwrap_or(0))
}

pub(super) fn latest_completed(
    db: &Db<'_>,
    server: &ServerKey,
    disk: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    db.first(
        "read latest snapshot",
        &format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE app = ?1 AND server = ?2 AND disk = ?3 \
             AND status = 'completed' AND manifest IS NOT NULL ORDER BY completed_at DESC, started_at DESC LIMIT 1"
        ),
        params![server.app, server.server, disk],
        snapshot_from_row,
    )
}

pub(super) fn newest_per_disk(db: &Db<'_>, server: &ServerKey) -> Result<Vec<String>, StateError> {
    db.rows(
        "read newest snapshots",
        "SELECT snapshot_id FROM snapshots s WHERE app = ?1 AND server = ?2 AND status = 'completed' \
         AND completed_at = (SELECT MAX(completed_at) FROM snapshots t WHERE t.app = s.app AND t.server = s.server \
         AND t.disk = s.disk AND t.status = 'completed')",
        params![server.app, server.server],
        |r| Ok(r.get(0)?),
    )
}

pub(super) fn abandoned(db: &Db<'_>, server: &ServerKey) -> Result<Vec<String>, StateError> {
    db.rows(
        "read abandoned snapshots",
        "SELECT snapshot_id FROM snapshots WHERE app = ?1 AND server = ?2 AND status = 'abandoned'",
        params![server.app, server.server],
        |r| Ok(r.get(0)?),
    )
}

pub(super) fn abandon(
    conn: &mut Connection,
    path: &Path,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<(), StateError> {
    transaction(conn, path, "abandon snapshot", |db| {
        let changed = db.execute(
            "abandon snapshot",
            "UPDATE snapshots SET status = 'abandoned' WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3",
            params![snapshot_id, server.app, server.server],
        )?;
        if changed > 0 {
            db.execute(
                "forget written blocks",
                "DELETE FROM written_blocks WHERE snapshot_id = ?1",
                params![snapshot_id],
            )?;
        }
        Ok(())
    })
}

pub(super) fn mark_deleted(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<(), StateError> {
    db.execute(
        "mark snapshot deleted",
        "UPDATE snapshots SET status = 'deleted' WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3",
        params![snapshot_id, server.app, server.server],
    )?;
    Ok(())
}

pub(super) fn add_partial_counts(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
    counts: &SnapshotCounts,
) -> Result<(), StateError> {
    db.execute(
        "record partial counts",
        "UPDATE snapshots SET blocks_uploaded = blocks_uploaded + ?4, bytes_uploaded = bytes_uploaded + ?5, \
         seconds = seconds + ?6 WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3 AND status = 'open'",
        params![
            snapshot_id,
            server.app,
            server.server,
            counts.blocks_uploaded as i64,
            counts.bytes_uploaded as i64,
            counts.seconds
        ],
    )?;
    Ok(())
}

pub(super) fn mark_completing(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
    manifest: &[u8],
    counts: &SnapshotCounts,
) -> Result<(), StateError> {
    db.execute(
        "mark snapshot completing",
        "UPDATE snapshots SET status = 'completing', manifest = ?4, blocks_total = ?5, blocks_scanned = ?6, \
         blocks_uploaded = blocks_uploaded + ?7, bytes_uploaded = bytes_uploaded + ?8, blocks_changed = ?9, \
         seconds = seconds + ?10 WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3",
        params![
            snapshot_id,
            server.app,
            server.server,
            manifest,
            counts.blocks_total as i64,
            counts.blocks_scanned as i64,
            counts.blocks_uploaded as i64,
            counts.bytes_uploaded as i64,
            counts.blocks_changed as i64,
            counts.seconds
        ],
    )?;
    Ok(())
}

pub(super) fn mark_completed(
    conn: &mut Connection,
    path: &Path,
    server: &ServerKey,
    snapshot_id: &str,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    transaction(conn, path, "complete snapshot", |db| {
        let changed = db.execute(
            "mark snapshot completed",
            "UPDATE snapshots SET status = 'completed', completed_at = ?4 \
             WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3 AND status = 'completing'",
            params![snapshot_id, server.app, server.server, unix_ms(now)],
        )?;
        if changed > 0 {
            db.execute(
                "drop written blocks",
                "DELETE FROM written_blocks WHERE snapshot_id = ?1",
                params![snapshot_id],
            )?;
        }
        Ok(())
    })
}

pub(super) fn manifest(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Option<Manifest>, StateError> {
    let found = db.first(
        "read manifest",
        "SELECT manifest FROM snapshots WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3",
        params![snapshot_id, server.app, server.server],
        |r| match r.get::<_, Option<Vec<u8>>>(0)? {
            None => Ok(None),
            Some(blob) => Manifest::decode(&blob)
                .map(Some)
                .map_err(|e| RowError::Corrupt {
                    table: "snapshots",
                    id: snapshot_id.to_string(),
                    what: format!("manifest: {e}"),
                }),
        },
    )?;
    Ok(found.flatten())
}

/// Records a batch of accepted blocks in one transaction; nothing when the snapshot is not one
/// of the server's.
pub(super) fn record_written(
    conn: &mut Connection,
    path: &Path,
    server: &ServerKey,
    snapshot_id: &str,
    blocks: &[WrittenBlock],
) -> Result<(), StateError> {
    transaction(conn, path, "record written blocks", |db| {
        let ours = db.first(
            "find snapshot of written blocks",
            "SELECT 1 FROM snapshots WHERE snapshot_id = ?1 AND app = ?2 AND server = ?3",
            params![snapshot_id, server.app, server.server],
            |_| Ok(()),
        )?;
        if ours.is_none() {
            return Ok(());
        }
        let mut stmt = db
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO written_blocks (snapshot_id, block_index, xxh3, sha256) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(db.sql("prepare block record"))?;
        for b in blocks {
            stmt.execute(params![
                snapshot_id,
                b.index as i64,
                &b.xxh3[..],
                &b.sha256[..]
            ])
            .map_err(db.sql("record written block"))?;
        }
        Ok(())
    })
}

/// The accepted blocks of a snapshot, ascending by index.
pub(super) fn written(
    db: &Db<'_>,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Vec<WrittenBlock>, StateError> {
    db.rows(
        "read written blocks",
        "SELECT w.block_index, w.xxh3, w.sha256 FROM written_blocks w \
         JOIN snapshots s ON s.snapshot_id = w.snapshot_id \
         WHERE w.snapshot_id = ?1 AND s.app = ?2 AND s.server = ?3 ORDER BY w.block_index ASC",
        params![snapshot_id, server.app, server.server],
        |r| {
            let index = r.get::<_, i64>(0)? as u64;
            let corrupt = |what: &str, len: usize| RowError::Corrupt {
                table: "written_blocks",
                id: format!("{snapshot_id} block {index}"),
                what: format!("{len}-byte {what}"),
            };
            let xxh3: Vec<u8> = r.get(1)?;
            let sha256: Vec<u8> = r.get(2)?;
            Ok(WrittenBlock {
                index,
                xxh3: xxh3
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("xxh3", xxh3.len()))?,
                sha256: sha256
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt("SHA-256", sha256.len()))?,
            })
        },
    )
}

pub(super) fn snapshot_from_row(r: &Row<'_>) -> Result<SnapshotRecord, RowError> {
    let snapshot_id: String = r.get(0)?;
    Ok(SnapshotRecord {
        run_id: r.get(1)?,
        disk: r.get(2)?,
        parent_snapshot_id: r.get(3)?,
        status: stored("snapshots", &snapshot_id, "status", &r.get::<_, String>(4)?)?,
        volume_size_gib: r.get::<_, i64>(5)? as u64,
        block_count: r.get::<_, i64>(6)? as u64,
        encrypted: r.get(7)?,
        kms_key_arn: r.get(8)?,
        started_at: from_unix_ms(r.get(9)?),
        completed_at: r.get::<_, Option<i64>>(10)?.map(from_unix_ms),
        counts: SnapshotCounts {
            blocks_total: r.get::<_, i64>(11)? as u64,
            blocks_scanned: r.get::<_, i64>(12)? as u64,
            blocks_uploaded: r.get::<_, i64>(13)? as u64,
            bytes_uploaded: r.get::<_, i64>(14)? as u64,
            blocks_changed: r.get::<_, i64>(15)? as u64,
            seconds: r.get(16)?,
        },
        snapshot_id,
    })
}
