//! The signals that ask rehost to stop: Ctrl-C (SIGINT), SIGTERM (a service manager, or
//! `kill`) and SIGHUP (the operator's terminal or SSH session closed). A hangup is handled as
//! the others are, so a closed session rolls a cutover back, stops a watch cleanly or stops
//! following a launch, instead of killing rehost wherever it stands; what rehost prints after
//! it may go nowhere, so nothing that matters depends on printing.
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
    Hangup,
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Interruption::Interrupt => "Ctrl-C (SIGINT)",
            Interruption::Terminate => "SIGTERM",
            Interruption::Hangup => "SIGHUP (the terminal closed)",
        })
    }
}

/// Resolves at the next SIGINT, SIGTERM or SIGHUP.
pub async fn interrupted() -> Interruption {
    let next = |kind: SignalKind| async move {
        match signal(kind) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Interruption::Interrupt,
        () = next(SignalKind::terminate()) => Interruption::Terminate,
        () = next(SignalKind::hangup()) => Interruption::Hangup,
    }
}

/// Signals while a launch is followed: `stop` turns true at the `count`th of those signals
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
