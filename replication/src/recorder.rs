//! Records accepted blocks in the state store from a task of its own, committing whatever has
//! arrived as one batch (group commit): the uploads never wait for the store, and a killed run
//! loses at most the acknowledgements of the batch being written. A store whose writes are
//! requests that cost (S3) asks for batches no more often than its `record_interval`; a batch
//! of [`MAX_BATCH`] blocks, and a flush (before a snapshot completes), write at once. The first
//! batch of a snapshot is written as soon as it arrives, so a run killed early has a record.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::state::{ServerKey, StateStore, WrittenBlock};

/// Blocks in one batch at most: what a killed run may resend, whatever the interval.
pub const MAX_BATCH: usize = 512;

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
    let interval = store.record_interval();
    let mut failed: Option<String> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    let mut last_write: Option<Instant> = None;
    while let Some(first) = rx.recv().await {
        // Everything that arrived while the last batch was being written is the next batch;
        // with an interval, so is everything arriving until it has passed.
        let due = last_write.map(|t| t + interval);
        let mut next = Some(first);
        loop {
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
            let waiting = due.filter(|_| flushes.is_empty() && batch.len() < MAX_BATCH);
            match waiting {
                Some(due) if due > Instant::now() => {
                    match tokio::time::timeout_at(due.into(), rx.recv()).await {
                        Ok(Some(msg)) => next = Some(msg),
                        Ok(None) | Err(_) => break,
                    }
                }
                _ => break,
            }
        }
        if !interval.is_zero() {
            last_write = Some(Instant::now());
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
