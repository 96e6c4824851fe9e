//! The signals that ask rehost to stop: Ctrl-C (SIGINT) and SIGTERM (a service manager, or
//! `kill`).
//!
//! Once `interrupted` has been polled, such a signal no longer ends the process by itself
//! (tokio keeps its handler for the life of the process): whoever listens decides what it does,
//! and a phase that stops listening must say what a further signal does.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Which signal arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    Interrupt,
    Terminate,
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interruption::Interrupt => "Ctrl-C (SIGINT)",
            Interruption::Terminate => "SIGTERM",
        })
    }
}

/// Resolves at the next SIGINT or SIGTERM.
pub async fn interrupted() -> Interruption {
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Interruption::Interrupt,
        () = term => Interruption::Terminate,
    }
}

/// Signals while a launch is followed: `stop` turns true at the `count`th SIGINT or SIGTERM
/// (the launch stops before anything is created, or rehost stops following the stack); each
/// earlier one is answered by `warning` (logged). Listening ends when this is dropped.
pub struct StopOnSignal {
    pub stop: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl StopOnSignal {
    pub fn new(count: usize, warning: &'static str) -> StopOnSignal {
        let (tx, stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            for _ in 1..count.max(1) {
                let signal = interrupted().await;
                tracing::warn!("{signal}: {warning}");
            }
            interrupted().await;
            let _ = tx.send(true);
        });
        StopOnSignal { stop, task }
    }
}

impl Drop for StopOnSignal {
    fn drop(&mut self) {
        self.task.abort();
    }
}
