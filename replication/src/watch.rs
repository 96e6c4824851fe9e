//! Running scheduled server jobs: once each (`rehost replicate`, `rehost migrate`) or on each
//! server's schedule until told to stop (`rehost replicate --watch`), up to `parallel` servers
//! at once. The servers in flight share the replicator's bounds (blocks in flight, buffers,
//! hashing permits), so running more of them at once costs no more memory or CPU.

use std::future::Future;

use futures_util::stream::{self, FuturesUnordered, StreamExt};
use time::OffsetDateTime;

use crate::domain::Frequency;
use crate::engine::Replicator;
use crate::job::ServerJob;
use crate::report::ServerReport;
use crate::schedule::next_run;
use crate::state::{READ_FANOUT, ServerKey, StateError};

/// Servers replicated at once unless told otherwise (`--parallel`).
pub const DEFAULT_PARALLEL: usize = 4;

/// One server's replication job and when it runs.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub job: ServerJob,
    pub frequency: Frequency,
    pub seed_time: Option<OffsetDateTime>,
}

/// Replicates each job once, up to `parallel` at a time, and returns their reports in the
/// order of `jobs`.
pub async fn replicate_all(
    replicator: &Replicator,
    jobs: &[ScheduledJob],
    parallel: usize,
) -> Vec<ServerReport> {
    let mut done: Vec<(usize, ServerReport)> = stream::iter(jobs.iter().enumerate())
        .map(|(i, scheduled)| async move { (i, replicator.replicate(&scheduled.job).await) })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, report)| report).collect()
}

/// Replicates every server when it is due (see [`next_run`]), up to `parallel` at once, handing
/// each report to `on_report` as it finishes. A server that becomes due while others run starts
/// as soon as a place is free; a long seed never holds back the other servers' increments
/// beyond that. A failed run does not stop the loop: the server is retried at its next slot.
/// Returns when `shutdown` resolves (runs in flight stop; each resumes next time) or when no
/// server needs another run (every one is `Once` and done).
pub async fn watch<S, F>(
    replicator: &Replicator,
    jobs: &[ScheduledJob],
    parallel: usize,
    shutdown: S,
    mut on_report: F,
) -> Result<(), StateError>
where
    S: Future<Output = ()>,
    F: FnMut(&ServerReport),
{
    let parallel = parallel.max(1);
    tokio::pin!(shutdown);
    // When each server is next due (None: never again). Only a server's own runs change its
    // times, so after the first look each is read again only when its run ends.
    let now = OffsetDateTime::now_utc();
    let mut next: Vec<Option<OffsetDateTime>> = stream::iter(jobs)
        .map(|scheduled| next_time(replicator, scheduled, None, now))
        .buffered(READ_FANOUT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut in_flight = vec![false; jobs.len()];
    let mut running = FuturesUnordered::new();
    loop {
        let now = OffsetDateTime::now_utc();
        for (i, scheduled) in jobs.iter().enumerate() {
            if running.len() >= parallel {
                break;
            }
            if !in_flight[i] && next[i].is_some_and(|t| t <= now) {
                in_flight[i] = true;
                running.push(async move { (i, now, replicator.replicate(&scheduled.job).await) });
            }
        }
        let waiting = (0..jobs.len())
            .filter(|&i| !in_flight[i])
            .filter_map(|i| next[i])
            .min();
        if running.is_empty() && waiting.is_none() {
            return Ok(());
        }
        // With a place free, wake for the next server due; otherwise for a run to end.
        let wake = waiting.filter(|_| running.len() < parallel);
        let sleep = wake.map(|at| {
            let wait = (at - now).max(time::Duration::ZERO);
            if running.is_empty() {
                tracing::info!("next replication at {at} (in {} s)", wait.whole_seconds());
            }
            std::time::Duration::try_from(wait).unwrap_or_default()
        });
        tokio::select! {
            Some((i, began, report)) = running.next(), if !running.is_empty() => {
                in_flight[i] = false;
                on_report(&report);
                next[i] = next_time(replicator, &jobs[i], Some(began), OffsetDateTime::now_utc()).await?;
            }
            _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
}

/// When a server is next due, from its last success and attempt in the state; `began` is when
/// a run of it just started here (an attempt even when it failed before the state heard of it).
async fn next_time(
    replicator: &Replicator,
    scheduled: &ScheduledJob,
    began: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, StateError> {
    let key = ServerKey::new(&scheduled.job.app, &scheduled.job.server);
    let (success, attempt) = replicator.store().last_times(&key).await?;
    let attempt = attempt.max(began);
    Ok(next_run(
        scheduled.frequency,
        scheduled.seed_time,
        success,
        attempt,
        now,
    ))
}
