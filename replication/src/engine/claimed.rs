//! Replicating a server under its lease on a shared state (issue 11 part 4): one host at a
//! time replicates a server. A one-off run (`replicate`, `--watch`, `migrate`, cutover's final
//! sync) waits while a worker holds the server, so it replicates after the worker's run
//! rather than beside it; a run whose lease is lost (its holder could not renew it, another
//! took it over) stops at once, and the new holder resumes it where the state says.

use std::time::{Duration, Instant};

use super::Replicator;
use crate::job::ServerJob;
use crate::report::ServerReport;
use crate::state::s3::this_holder;
use crate::state::{LeaseGuard, ServerClaim, ServerKey, StateError};

/// How often a run waiting for a server held by another host asks again (a released lease is
/// free at once; a live holder's lease is renewed, so waiting for its expiry would be late).
const WAIT_POLL: Duration = Duration::from_secs(5);

impl Replicator {
    /// Replicates one server. Never panics: a failure lands in the report (and the state), and
    /// the next call for the server resumes where this one stopped. On a shared state the
    /// server's lease is held for the run; while another host holds it, this waits (logging
    /// who holds it) up to [`super::ReplicateOptions::lease_wait`], then fails the server.
    pub async fn replicate(&self, job: &ServerJob) -> ServerReport {
        let key = ServerKey::new(&job.app, &job.server);
        let holder = this_holder();
        let started = Instant::now();
        let mut told: Option<String> = None;
        loop {
            match self.store.claim_server(&key, &holder).await {
                // A local state: the application lock already keeps every other rehost out.
                Err(StateError::NotShared { .. }) => return self.replicate_unclaimed(job).await,
                Err(e) => {
                    return failed_report(
                        job,
                        format!("server {}: cannot claim it: {e}", job.server),
                    );
                }
                Ok(ServerClaim::Won { guard, took_over }) => {
                    if let Some(old) = took_over {
                        old.warn_taken_over(&job.server);
                    }
                    let report = self.replicate_under(job, guard.as_ref()).await;
                    guard.release().await;
                    return report;
                }
                Ok(ServerClaim::Held(h)) => {
                    let waited = started.elapsed();
                    if waited >= self.opts.lease_wait {
                        return failed_report(
                            job,
                            format!(
                                "server {} is being replicated by {}; waited {} s for it to finish: run again later",
                                job.server,
                                h.describe(),
                                waited.as_secs()
                            ),
                        );
                    }
                    if told.as_deref() != Some(h.holder.as_str()) {
                        tracing::warn!(
                            "server {}: waiting for {} to finish replicating it",
                            job.server,
                            h.describe()
                        );
                        told = Some(h.holder.clone());
                    }
                    tokio::time::sleep(WAIT_POLL.min(self.opts.lease_wait - waited)).await;
                }
            }
        }
    }

    /// Replicates a server whose lease `guard` holds; stops at once when the lease is lost
    /// (nothing more is sent or recorded by this run: the new holder resumes it).
    pub async fn replicate_under(&self, job: &ServerJob, guard: &dyn LeaseGuard) -> ServerReport {
        tokio::select! {
            report = self.replicate_unclaimed(job) => report,
            () = guard.lost() => {
                self.lock_progress().finish_server(&job.server);
                failed_report(
                    job,
                    format!(
                        "server {}: stopped: its {} was lost (another host took it over); the new holder resumes the run",
                        job.server,
                        guard.location()
                    ),
                )
            }
        }
    }
}

/// The report of a server that did not run (or was stopped) here.
pub(super) fn failed_report(job: &ServerJob, error: String) -> ServerReport {
    tracing::error!("{error}");
    ServerReport {
        error: Some(error),
        ..ServerReport::not_run(job)
    }
}
