//! Records accepted blocks in the state store from a task of its own, committing whatever has
//! arrived as one batch (group commit): the uploads never wait for the store, and a killed run
//! loses at most the acknowledgements of the batch being written.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::state::{ServerKey, StateStore, WrittenBlock};

const MAX_BATCH: usize = 512;

enum Msg {
    Block(WrittenBlock),
    Flush(oneshot::Sender<Result<(), String>>),
}

pub struct Recorder {
    tx: mpsc::UnboundedSender<Msg>,
}

#[derive(Clone)]
pub struct RecorderHandle {
    tx: mpsc::UnboundedSender<Msg>,
}

impl RecorderHandle {
    pub fn record(&self, block: WrittenBlock) {
        // The task only ends when every sender is gone.
        let _ = self.tx.send(Msg::Block(block));
    }
}

impl Recorder {
    /// Starts recording the accepted blocks of one snapshot (on the current tokio runtime).
    pub fn start(store: Arc<dyn StateStore>, server: ServerKey, snapshot_id: String) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        tokio::spawn(run(store, server, snapshot_id, rx));
        Recorder { tx }
    }

    pub fn handle(&self) -> RecorderHandle {
        RecorderHandle {
            tx: self.tx.clone(),
        }
    }

    /// Waits until everything recorded so far is committed; reports the first failure.
    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Flush(tx))
            .map_err(|_| "block recorder stopped".to_string())?;
        rx.await.map_err(|_| "block recorder stopped".to_string())?
    }
}

async fn run(
    store: Arc<dyn StateStore>,
    server: ServerKey,
    snapshot_id: String,
    mut rx: mpsc::UnboundedReceiver<Msg>,
) {
    let mut failed: Option<String> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        // Everything that arrived while the last batch was being written is the next batch.
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Block(b) => batch.push(b),
                Msg::Flush(reply) => flushes.push(reply),
            }
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty()
            && failed.is_none()
            && let Err(e) = store.record_written(&server, &snapshot_id, &batch).await
        {
            tracing::error!("cannot record accepted blocks of {snapshot_id}: {e}");
            failed = Some(e.to_string());
        }
        batch.clear();
        for reply in flushes.drain(..) {
            let _ = reply.send(failed.clone().map_or(Ok(()), Err));
        }
    }
}
