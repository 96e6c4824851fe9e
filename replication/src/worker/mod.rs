//! `rehost replicate FILE --worker`: one of several replication hosts sharing one state, with
//! no coordinator (issue 11 part 4; the protocol is `replication/WORKERS.md`). Each worker
//! replicates the due servers whose disks it can read, claiming each with a lease on the
//! state for the run; a server another worker holds is left alone until that lease expires
//! (its holder died) and is then taken over, its run resumed where the state says.
//!
//! - `plan`: the decisions (which servers to try, when to wake, when a held server is looked
//!   at again), pure;
//! - this module: the loop that carries them out against the state and the engine.

use std::future::Future;
use std::time::Duration;

use futures_util::stream::{self, FuturesUnordered, StreamExt};
use time::OffsetDateTime;

use crate::engine::Replicator;
use crate::report::ServerReport;
use crate::schedule::next_run;
use crate::state::s3::this_holder;
use crate::state::{LeaseHolder, READ_FANOUT, ServerClaim, ServerKey, StateError};
use crate::watch::ScheduledJob;

pub mod plan;

use plan::Slot;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Servers replicated at once (`--parallel`).
    pub parallel: usize,
    /// The state's lease time to live (`REHOST_LEASE_SECONDS`): spreads the re-checks.
    pub lease_ttl: Duration,
}

/// The servers among `jobs` whose every disk opens for reading on this host.
pub fn readable(jobs: &[ScheduledJob]) -> (Vec<usize>, Vec<String>) {
    let mut can = Vec::new();
    let mut cannot = Vec::new();
    for (i, scheduled) in jobs.iter().enumerate() {
        let ok = scheduled
            .job
            .disks
            .iter()
            .all(|d| std::fs::File::open(&d.source).is_ok());
        if ok {
            can.push(i);
        } else {
            cannot.push(scheduled.job.server.clone());
        }
    }
    (can, cannot)
}

/// How an attempt at one server ended.
enum Attempt {
    /// Another host holds it.
    Held(LeaseHolder),
    /// Not due after all (another worker finished the slot): when it is due next.
    NotDue(Option<OffsetDateTime>),
    /// It ran here (to an end, or until its lease was lost); when it is due next.
    Ran(Box<ServerReport>, Option<OffsetDateTime>),
}

/// Runs the worker loop over `jobs` — the servers this host can read (the caller keeps them
/// with [`readable`], before inspecting them) — until `shutdown` resolves (runs in flight
/// stop; each is resumed by whoever claims the server next) or every server is `Once` and
/// done, handing each report to `on_report` as its run ends (or stops because its lease was
/// lost). A server that fails is retried at its next slot, like `--watch`.
pub async fn run_worker<S, F>(
    replicator: &Replicator,
    jobs: &[ScheduledJob],
    opts: &WorkerOptions,
    shutdown: S,
    mut on_report: F,
) -> Result<(), StateError>
where
    S: Future<Output = ()>,
    F: FnMut(&ServerReport),
{
    let parallel = opts.parallel.max(1);
    let holder = this_holder();
    tokio::pin!(shutdown);

    let now = OffsetDateTime::now_utc();
    let mut slots: Vec<Slot> = stream::iter(jobs)
        .map(|scheduled| due_time(replicator, scheduled, now))
        .buffered(READ_FANOUT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|due| {
            due.map(|next_due| Slot {
                next_due,
                ..Slot::default()
            })
        })
        .collect::<Result<_, _>>()?;
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    fastrand::shuffle(&mut order);

    let mut running = FuturesUnordered::new();
    loop {
        let now = OffsetDateTime::now_utc();
        let free = parallel.saturating_sub(running.len());
        for i in plan::to_start(&slots, &order, free, now) {
            // A re-check (the server was held) reads the server first: the slot may be done.
            let recheck = slots[i].recheck_at.take().is_some();
            slots[i].in_flight = true;
            let scheduled = &jobs[i];
            let holder = holder.as_str();
            running.push(async move { (i, attempt(replicator, scheduled, holder, recheck).await) });
        }
        if running.is_empty() && plan::finished(&slots) {
            return Ok(());
        }
        let wake = plan::wake_at(&slots).filter(|_| running.len() < parallel);
        let sleep = wake.map(|at| {
            let wait = (at - now).max(time::Duration::ZERO);
            std::time::Duration::try_from(wait).unwrap_or_default()
        });
        tokio::select! {
            Some((i, outcome)) = running.next(), if !running.is_empty() => {
                slots[i].in_flight = false;
                let server = &jobs[i].job.server;
                match outcome {
                    Ok(Attempt::Held(by)) => {
                        tracing::info!("{server}: held by {}; leaving it to that worker", by.describe());
                        slots[i].recheck_at =
                            Some(plan::recheck_time(by.expires_at, opts.lease_ttl, fastrand::f64()));
                    }
                    Ok(Attempt::NotDue(next)) => slots[i].next_due = next,
                    Ok(Attempt::Ran(report, next)) => {
                        on_report(&report);
                        slots[i].next_due = next;
                    }
                    // The state could not be read or the lease claimed (after the SDK's own
                    // retries): a worker is a long-lived service, so it tries the server again
                    // a lease time later rather than stop every other server.
                    Err(e) => {
                        tracing::error!("{server}: {e}; trying it again in {} s", opts.lease_ttl.as_secs());
                        slots[i].recheck_at = Some(OffsetDateTime::now_utc() + opts.lease_ttl);
                    }
                }
            }
            _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
}

/// One attempt at a server (protocol steps 4 to 6): on a re-check, read it first (the slot
/// may be done); claim its lease; read it again once won (another worker may have finished
/// the slot since our last read); replicate it under the lease (resuming its unfinished run);
/// give the lease back; read when it is due next.
async fn attempt(
    replicator: &Replicator,
    scheduled: &ScheduledJob,
    holder: &str,
    recheck: bool,
) -> Result<Attempt, StateError> {
    let key = ServerKey::new(&scheduled.job.app, &scheduled.job.server);
    let server = &scheduled.job.server;
    let due_now =
        |next: Option<OffsetDateTime>| next.is_some_and(|t| t <= OffsetDateTime::now_utc());
    if recheck {
        let next = due_time(replicator, scheduled, OffsetDateTime::now_utc()).await?;
        if !due_now(next) {
            return Ok(Attempt::NotDue(next));
        }
    }
    let (guard, took_over) = match replicator.store().claim_server(&key, holder).await? {
        ServerClaim::Held(by) => return Ok(Attempt::Held(by)),
        ServerClaim::Won { guard, took_over } => (guard, took_over),
    };
    if let Some(old) = &took_over {
        old.warn_taken_over(server);
    }
    let next = match due_time(replicator, scheduled, OffsetDateTime::now_utc()).await {
        Ok(next) => next,
        Err(e) => {
            guard.release().await;
            return Err(e);
        }
    };
    if !due_now(next) {
        guard.release().await;
        return Ok(Attempt::NotDue(next));
    }
    let report = replicator
        .replicate_under(&scheduled.job, guard.as_ref())
        .await;
    guard.release().await;
    let next = due_time(replicator, scheduled, OffsetDateTime::now_utc()).await?;
    Ok(Attempt::Ran(Box::new(report), next))
}

/// When a server is next due, from the state (see `plan::due_time`): its newest run (one
/// still running was interrupted, its holder dead, when nobody live holds the server) and its
/// schedule from the last success and attempt.
async fn due_time(
    replicator: &Replicator,
    scheduled: &ScheduledJob,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, StateError> {
    let key = ServerKey::new(&scheduled.job.app, &scheduled.job.server);
    let store = replicator.store();
    let facts = store.due_facts(&key).await?;
    let scheduled_at = next_run(
        scheduled.frequency,
        scheduled.seed_time,
        facts.success,
        facts.attempt,
        now,
    );
    Ok(plan::due_time(facts.newest, scheduled_at, now))
}
