//! Running scheduled server jobs: once each (`rehost replicate`, `rehost migrate`) or on each
//! server's schedule until told to stop (`rehost replicate --watch`).

use std::future::Future;

use time::OffsetDateTime;

use crate::domain::Frequency;
use crate::engine::Replicator;
use crate::job::ServerJob;
use crate::report::ServerReport;
use crate::schedule::next_run;
use crate::state::{ServerKey, StateError};

/// One server's replication job and when it runs.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub job: ServerJob,
    pub frequency: Frequency,
    pub seed_time: Option<OffsetDateTime>,
}

/// Replicates each job once, one after another (each disk already keeps its uploads in flight
/// and both cores hashing), and returns their reports in order.
pub async fn replicate_each(replicator: &Replicator, jobs: &[ScheduledJob]) -> Vec<ServerReport> {
    let mut reports = Vec::with_capacity(jobs.len());
    for scheduled in jobs {
        reports.push(replicator.replicate(&scheduled.job).await);
    }
    reports
}

/// Replicates every server when it is due (see [`next_run`]), one after another, handing each
/// report to `on_report`. A failed run does not stop the loop: the server is retried at its next
/// slot. Returns when `shutdown` resolves (an interrupted run resumes next time) or when no
/// server needs another run (every one is `Once` and done).
pub async fn watch<S, F>(
    replicator: &Replicator,
    jobs: &[ScheduledJob],
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
        for (i, e) in jobs.iter().enumerate() {
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
                r = replicator.replicate(&jobs[i].job) => r,
                _ = &mut shutdown => return Ok(()),
            };
            on_report(&report);
        }
    }
}
