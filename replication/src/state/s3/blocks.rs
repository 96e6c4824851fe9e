//! The blocks an open snapshot accepted: the journal segments this handle appends next, and
//! the store's reads and writes of them.

use super::*;

impl S3Store {
    pub(super) fn next_segment(&self, key: &ServerKey, snapshot_id: &str) -> Option<u64> {
        let journals = self
            .inner
            .journals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        journals
            .get(&(key.clone(), snapshot_id.to_string()))
            .copied()
    }

    pub(super) fn set_next_segment(&self, key: &ServerKey, snapshot_id: &str, next: Option<u64>) {
        let mut journals = self
            .inner
            .journals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let k = (key.clone(), snapshot_id.to_string());
        match next {
            Some(n) => journals.insert(k, n),
            None => journals.remove(&k),
        };
    }

    pub(super) async fn drop_journal(&self, key: &ServerKey, snapshot_id: &str) {
        self.set_next_segment(key, snapshot_id, None);
        journal::drop_all(self.objects(), &layout::journal(key, snapshot_id)).await;
    }

    /// The accepted blocks of a snapshot whose journal still counts (open or completing).
    pub(super) async fn journal_of(
        &self,
        key: &ServerKey,
        doc: &ServerDoc,
        snapshot_id: &str,
    ) -> Result<Vec<WrittenBlock>, StateError> {
        if !doc
            .snap(snapshot_id)
            .is_some_and(doc::SnapDoc::keeps_journal)
        {
            return Ok(Vec::new());
        }
        let (blocks, next) =
            journal::read(self.objects(), &layout::journal(key, snapshot_id)).await?;
        if self.next_segment(key, snapshot_id).is_none() {
            self.set_next_segment(key, snapshot_id, Some(next));
        }
        Ok(blocks)
    }
}

pub(super) async fn record_written(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
    blocks: &[WrittenBlock],
) -> Result<(), StateError> {
    if blocks.is_empty() {
        return Ok(());
    }
    // Only for a snapshot of this server (as the last read or write of it showed, else as
    // S3 shows it now).
    let known = |doc: &ServerDoc| doc.snap(snapshot_id).is_some();
    let ours = match store.cached(server) {
        Some((_, doc)) if known(&doc) => true,
        _ => known(&store.read(server).await?),
    };
    if !ours {
        return Ok(());
    }
    let mut next = store.next_segment(server, snapshot_id);
    let appended = journal::append(
        store.objects(),
        &layout::journal(server, snapshot_id),
        &mut next,
        blocks,
    )
    .await;
    store.set_next_segment(server, snapshot_id, next);
    appended
}

pub(super) async fn written_blocks(
    store: &S3Store,
    server: &ServerKey,
    snapshot_id: &str,
) -> Result<Vec<WrittenBlock>, StateError> {
    let doc = store.read(server).await?;
    store.journal_of(server, &doc, snapshot_id).await
}
