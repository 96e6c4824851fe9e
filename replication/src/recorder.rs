//! Records accepted blocks in the state store from a dedicated thread, committing whatever has
//! arrived in one transaction (group commit), so the async uploader never blocks on SQLite and a
//! killed run loses at most the acknowledgements of the last few milliseconds.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::state::{StateError, StateStore, WrittenBlock};

const MAX_BATCH: usize = 512;

enum Msg {
    Block(WrittenBlock),
    Flush(oneshot::Sender<Result<(), String>>),
}

pub struct Recorder {
    tx: mpsc::Sender<Msg>,
}

#[derive(Clone)]
pub struct RecorderHandle {
    tx: mpsc::Sender<Msg>,
}

impl RecorderHandle {
    pub fn record(&self, block: WrittenBlock) {
        // The thread only ends when every sender is gone.
        let _ = self.tx.send(Msg::Block(block));
    }
}

impl Recorder {
    pub fn start(store: StateStore, snapshot_id: String) -> std::io::Result<Recorder> {
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("rehost-record".into())
            .spawn(move || run(&store, &snapshot_id, &rx))?;
        Ok(Recorder { tx })
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

fn run(store: &StateStore, snapshot_id: &str, rx: &mpsc::Receiver<Msg>) {
    let mut failed: Option<String> = None;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut flushes = Vec::new();
    while let Ok(first) = rx.recv() {
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
            && let Err(e) = store.record_written(snapshot_id, &batch)
        {
            let e: StateError = e;
            tracing::error!("cannot record accepted blocks of {snapshot_id}: {e}");
            failed = Some(e.to_string());
        }
        batch.clear();
        for reply in flushes.drain(..) {
            let _ = reply.send(failed.clone().map_or(Ok(()), Err));
        }
    }
}
