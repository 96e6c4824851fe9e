//! `rehost replicate --watch`: replicate each server on its schedule until told to stop.

use std::future::Future;

use time::OffsetDateTime;

use crate::engine::Replicator;
use crate::job::ServerJob;
use crate::report::ServerReport;
use crate::schedule::{Frequency, next_run};
use crate::state::{ServerKey, StateError};

#[derive(Debug, Clone)]
pub struct WatchEntry {
    pub job: ServerJob,
    pub frequency: Frequency,
    pub seed_time: Option<OffsetDateTime>,
}

/// Replicates every server when it is due (see [`next_run`]), one after another, handing each
/// report to `on_report`. A failed run does not stop the loop: the server is retried at its next
/// slot. Returns when `shutdown` resolves (an interrupted run resumes next time) or when no
/// server needs another run (every one is `Once` and done).
pub async fn watch<S, F>(
    replicator: &Replicator,
    entries: &[WatchEntry],
    shutdown: S,
    mut on_report: F,
) -> Result<(), StateError>
where
    S: Future<Output = ()>,
    F: FnMut(&ServerReport),
{
    tokio::pin!(shutdown);
    loop {
        let now = OffsetDateTime::now_utc();
        let mut due = Vec::new();
        let mut earliest: Option<OffsetDateTime> = None;
        for (i, e) in entries.iter().enumerate() {
            let (success, attempt) = replicator
                .store()
                .last_times(&ServerKey::new(&e.job.app, &e.job.server))
                .await?;
            match next_run(e.frequency, e.seed_time, success, attempt, now) {
                None => {}
                Some(t) if t <= now => due.push(i),
                Some(t) => earliest = Some(earliest.map_or(t, |x| x.min(t))),
            }
        }
        if due.is_empty() {
            let Some(at) = earliest else { return Ok(()) };
            let wait = (at - now).max(time::Duration::ZERO);
            tracing::info!("next replication at {at} (in {} s)", wait.whole_seconds());
            let wait = std::time::Duration::try_from(wait).unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = &mut shutdown => return Ok(()),
            }
        }
        for i in due {
            let report = tokio::select! {
                r = replicator.replicate(&entries[i].job) => r,
                _ = &mut shutdown => return Ok(()),
            };
            on_report(&report);
        }
    }
}
