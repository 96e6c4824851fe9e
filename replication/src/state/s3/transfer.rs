//! The whole state of a server, exported and imported (`rehost state migrate`).

use super::*;

pub(super) async fn servers(store: &S3Store) -> Result<Vec<ServerKey>, StateError> {
    let apps = store.objects().list(&layout::apps(), true).await?.prefixes;
    let mut out = Vec::new();
    for app_dir in apps {
        let Some(app) = app_dir
            .strip_prefix(&layout::apps())
            .and_then(|a| a.strip_suffix('/'))
            .and_then(layout::decode)
        else {
            continue;
        };
        out.extend(
            store
                .server_objects(&app)
                .await?
                .into_iter()
                .map(|(k, _)| k),
        );
    }
    out.sort();
    Ok(out)
}

pub(super) async fn export_server(
    store: &S3Store,
    server: &ServerKey,
) -> Result<ServerDump, StateError> {
    let (etag, doc) = store.fetch(server).await?;
    if etag.is_none() {
        return Ok(ServerDump::new(server.clone()));
    }
    let mut dump = doc.dump().map_err(|c| store.corrupt(server, c))?;
    for snap in &doc.snapshots {
        if let Some(rel) = &snap.manifest {
            let manifest = store.manifest_at(rel, snap.block_count).await?;
            dump.manifests.insert(snap.snapshot_id.clone(), manifest);
        }
        let written = store.journal_of(server, &doc, &snap.snapshot_id).await?;
        if !written.is_empty() {
            dump.written.insert(snap.snapshot_id.clone(), written);
        }
    }
    Ok(dump.normalized())
}

pub(super) async fn import_server(
    store: &S3Store,
    dump: &ServerDump,
) -> Result<ImportOutcome, StateError> {
    let key = &dump.key;
    let wanted = dump.clone().normalized();
    let differs = || StateError::Differs {
        location: store.location(),
        server: key.to_string(),
    };
    let existing = store.export_server(key).await?;
    if !existing.is_empty() {
        return if existing == wanted {
            Ok(ImportOutcome::Identical)
        } else {
            Err(differs())
        };
    }
    // Manifests and journals first; the server's object last, created only if still absent,
    // so a half-done import is invisible and simply done again.
    let mut manifests = HashMap::new();
    for (id, manifest) in &dump.manifests {
        manifests.insert(id.clone(), store.put_manifest(key, id, manifest).await?);
    }
    for (id, blocks) in &dump.written {
        let dir = layout::journal(key, id);
        journal::drop_all(store.objects(), &dir).await;
        journal::append(store.objects(), &dir, &mut Some(0), blocks).await?;
    }
    let doc = ServerDoc::from_dump(dump, |id| manifests.get(id).cloned());
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    match store
        .objects()
        .create(&layout::server(key), body, JSON)
        .await?
    {
        Put::Written(etag) => {
            store.remember(key, etag, doc);
            Ok(ImportOutcome::Created)
        }
        Put::Conflict => {
            let orphans: Vec<String> = manifests.into_values().collect();
            let _ = store.objects().delete(&orphans).await;
            if store.export_server(key).await? == wanted {
                Ok(ImportOutcome::Identical)
            } else {
                Err(differs())
            }
        }
    }
}
