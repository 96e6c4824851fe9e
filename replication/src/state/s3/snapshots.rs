//! Snapshots, kept in each server's object (their manifests and journals beside it).

use super::*;

pub(super) async fn insert_snapshot(
    store: &S3Store,
    server: &ServerKey,
    snapshot: &NewSnapshot,
    now: OffsetDateTime,
) -> Result<SnapshotRecord, StateError> {
    let record = store
        .update(server, |doc| {
            let inserted = doc.insert_snapshot(snapshot, now);
            Ok((doc.snapshot(&snapshot.snapshot_id)?, inserted))
        })
        .await?;
    record.ok_or_else(|| StateError::Corrupt {
        location: store.location(),
        table: "snapshots",
        id: snapshot.snapshot_id.clone(),
        what: format!("not recorded for {server}"),
    })
}

pub(super) async fn snapshot(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    store
        .read_with(server, |doc| doc.snapshot(snapshot_id))
        .await
}

pub(super) async fn run_snapshot(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    disk: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    store
        .read_with(server, |doc| doc.run_snapshot(run_id, disk))
        .await
}

pub(super) async fn abandoned_count(
    store: &S3Store,
    server: &ServerKey,
    run_id: &str,
    disk: &str,
) -> Result<u32, StateError> {
    store
        .read_with(server, |doc| doc.abandoned_count(run_id, disk))
        .await
}

pub(super) async fn latest_completed_snapshot(
    store: &S3Store,
    server: &ServerKey,
    disk: &str,
) -> Result<Option<SnapshotRecord>, StateError> {
    store
        .read_with(server, |doc| doc.latest_completed(disk))
        .await
}

pub(super) async fn newest_snapshot_per_disk(
    store: &S3Store,
    server: &ServerKey,
) -> Result<Vec<String>, StateError> {
    store.read_with(server, |doc| doc.newest_per_disk()).await
}

pub(super) async fn abandoned_snapshots(
    store: &S3Store,
    server: &ServerKey,
) -> Result<Vec<String>, StateError> {
    store.read_with(server, |doc| doc.abandoned()).await
}

pub(super) async fn abandon_snapshot(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<(), StateError> {
    let done = store
        .update(server, |doc| {
            let done = doc.abandon(snapshot_id);
            Ok((done, done))
        })
        .await?;
    if done {
        store.drop_journal(server, snapshot_id).await;
    }
    Ok(())
}

pub(super) async fn mark_snapshot_deleted(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<(), StateError> {
    store
        .update(server, |doc| changed(doc.mark_deleted(snapshot_id)))
        .await
}

pub(super) async fn add_partial_counts(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
    counts: &SnapshotCounts,
) -> Result<(), StateError> {
    store
        .update(server, |doc| {
            let done = doc.add_partial_counts(snapshot_id, counts)?;
            Ok(((), done))
        })
        .await
}

pub(super) async fn mark_completing(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
    manifest: &Manifest,
    counts: &SnapshotCounts,
) -> Result<(), StateError> {
    // The manifest first, under a key of its own; the record then points to it in the
    // same write that marks the snapshot completing.
    let rel = store.put_manifest(server, snapshot_id, manifest).await?;
    let outcome = store
        .update(server, |doc| {
            let replaced = doc.mark_completing(snapshot_id, &rel, counts);
            let changed = replaced.is_some();
            Ok((replaced, changed))
        })
        .await;
    let stale = match &outcome {
        Ok(Some(Some(old))) => vec![old.clone()],
        Ok(Some(None)) => Vec::new(),
        // No such snapshot, or the update failed: the new manifest is not referenced.
        Ok(None) | Err(_) => vec![rel],
    };
    if !stale.is_empty()
        && let Err(e) = store.objects().delete(&stale).await
    {
        tracing::warn!("cannot delete an unused manifest of {server}: {e}");
    }
    outcome.map(|_| ())
}

pub(super) async fn mark_snapshot_completed(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
    now: OffsetDateTime,
) -> Result<(), StateError> {
    let done = store
        .update(server, |doc| {
            let done = doc.mark_completed(snapshot_id, now)?;
            Ok((done, done))
        })
        .await?;
    if done {
        store.drop_journal(server, snapshot_id).await;
    }
    Ok(())
}

pub(super) async fn snapshot_manifest(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Option<Manifest>, StateError> {
    let doc = store.read(server).await?;
    let Some(snap) = doc.snap(snapshot_id) else {
        return Ok(None);
    };
    match &snap.manifest {
        None => Ok(None),
        Some(rel) => Ok(Some(store.manifest_at(rel, snap.block_count).await?)),
    }
}
