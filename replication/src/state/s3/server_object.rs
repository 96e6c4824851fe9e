//! The server objects: read (and remembered with their ETags), and changed with conditional
//! writes that re-read and re-apply after a lost race.

use super::*;

impl S3Store {
    pub(super) fn remember(&self, key: &ServerKey, etag: String, doc: ServerDoc) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key.clone(), (etag, doc));
    }

    pub(super) fn cached(&self, key: &ServerKey) -> Option<(String, ServerDoc)> {
        let cache = self.inner.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(key).cloned()
    }

    /// Reads a server's object: its ETag (`None` when there is none yet) and content.
    pub(super) async fn fetch(
        &self,
        key: &ServerKey,
    ) -> Result<(Option<String>, ServerDoc), StateError> {
        let rel = layout::server(key);
        let Some(found) = self.objects().get(&rel).await? else {
            return Ok((None, ServerDoc::new(key)));
        };
        let doc = self.parse(key, &rel, &found.body)?;
        self.remember(key, found.etag.clone(), doc.clone());
        Ok((Some(found.etag), doc))
    }

    pub(super) fn parse(
        &self,
        key: &ServerKey,
        rel: &str,
        body: &[u8],
    ) -> Result<ServerDoc, StateError> {
        let corrupt = |what: String| StateError::Corrupt {
            location: self.objects().location.clone(),
            table: "servers",
            id: self.objects().url(rel),
            what,
        };
        let doc: ServerDoc = serde_json::from_slice(body)
            .map_err(|e| corrupt(format!("not a server record: {e}")))?;
        if doc.format > doc::FORMAT {
            return Err(corrupt(format!(
                "format {} was written by a newer rehost (this one reads {}): upgrade rehost",
                doc.format,
                doc::FORMAT
            )));
        }
        if doc.app != key.app || doc.server != key.server {
            return Err(corrupt(format!(
                "holds {}/{}, not {key}",
                doc.app, doc.server
            )));
        }
        Ok(doc)
    }

    /// The current content of a server's object (fresh from S3).
    pub(super) async fn read(&self, key: &ServerKey) -> Result<ServerDoc, StateError> {
        Ok(self.fetch(key).await?.1)
    }

    /// Answers `query` from the current content of a server's object (fresh from S3).
    pub(super) async fn read_with<T>(
        &self,
        key: &ServerKey,
        query: impl FnOnce(&ServerDoc) -> Result<T, Corrupt>,
    ) -> Result<T, StateError> {
        query(&self.read(key).await?).map_err(|c| self.corrupt(key, c))
    }

    /// Applies `change` to a server's object with a conditional write, re-reading and
    /// re-applying after a lost race. `change` returns its result and whether it changed
    /// anything (nothing written when not).
    pub(super) async fn update<T>(
        &self,
        key: &ServerKey,
        mut change: impl FnMut(&mut ServerDoc) -> Result<(T, bool), Corrupt>,
    ) -> Result<T, StateError> {
        let rel = layout::server(key);
        let op = new_id();
        let mut base = self.cached(key).map(|(etag, doc)| (Some(etag), doc, true));
        let mut sent: Option<T> = None;
        for attempt in 0..UPDATE_ATTEMPTS {
            let (etag, doc, from_cache) = match base.take() {
                Some(b) => b,
                None => {
                    let (etag, doc) = self.fetch(key).await?;
                    (etag, doc, false)
                }
            };
            if doc.has_op(&op)
                && let Some(value) = sent.take()
            {
                // An earlier attempt landed; its answer was lost.
                return Ok(value);
            }
            let mut next = doc.clone();
            let (value, changed) = change(&mut next).map_err(|c| self.corrupt(key, c))?;
            if !changed {
                if from_cache {
                    continue; // the cache may be behind: decide on the object itself
                }
                return Ok(value);
            }
            next.note_op(&op);
            let orphans = next.prune().map_err(|c| self.corrupt(key, c))?;
            let body = serde_json::to_vec(&next).unwrap_or_default();
            let put = match &etag {
                Some(etag) => self.objects().replace(&rel, body, JSON, etag).await?,
                None => self.objects().create(&rel, body, JSON).await?,
            };
            match put {
                Put::Written(etag) => {
                    self.remember(key, etag, next);
                    if !orphans.is_empty()
                        && let Err(e) = self.objects().delete(&orphans).await
                    {
                        tracing::warn!("cannot delete manifests of pruned runs of {key}: {e}");
                    }
                    return Ok(value);
                }
                Put::Conflict => {
                    sent = Some(value);
                    if !from_cache {
                        tokio::time::sleep(backoff(attempt)).await;
                    }
                }
            }
        }
        Err(StateError::Contention {
            location: self.objects().location.clone(),
            key: self.objects().url(&rel),
            attempts: UPDATE_ATTEMPTS,
        })
    }

    /// Every server object of an application (relative keys).
    pub(super) async fn server_objects(
        &self,
        app: &str,
    ) -> Result<Vec<(ServerKey, String)>, StateError> {
        let dir = layout::servers(app);
        Ok(self
            .objects()
            .list(&dir, true)
            .await?
            .keys
            .into_iter()
            .filter_map(|rel| {
                let name = rel.strip_prefix(&dir)?.strip_suffix(".json")?;
                let server = layout::decode(name)?;
                Some((ServerKey::new(app, server), rel))
            })
            .collect())
    }

    /// The objects of many servers, read in parallel (bounded); servers without one are left out.
    pub(super) async fn read_many(
        &self,
        keys: Vec<ServerKey>,
    ) -> Result<Vec<ServerDoc>, StateError> {
        stream::iter(keys)
            .map(|key| async move { self.fetch(&key).await.map(|(etag, doc)| etag.map(|_| doc)) })
            .buffered(self.inner.opts.fanout.max(1))
            .try_filter_map(|doc| async move { Ok(doc) })
            .try_collect()
            .await
    }
}

/// Maps a pure change's `Option` result (None: the record does not exist) to "changed".
pub(super) fn changed(done: bool) -> Result<((), bool), Corrupt> {
    Ok(((), done))
}
