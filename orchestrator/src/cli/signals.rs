//! The signals that ask rehost to stop: Ctrl-C (SIGINT) and SIGTERM (a service manager, or
//! `kill`).
//!
//! Once `interrupted` has been polled, such a signal no longer ends the process by itself
//! (tokio keeps its handler for the life of the process): whoever listens decides what it does,
//! and a phase that stops listening must say what a further signal does.

use tokio::signal::unix::{SignalKind, signal};

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
