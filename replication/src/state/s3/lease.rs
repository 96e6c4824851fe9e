//! Leases: exclusive, expiring claims held as small objects, with no coordinator. A lease is
//! created with `If-None-Match: *`; its holder renews it (`If-Match` on the ETag it last
//! wrote) well before it expires; a holder that stops renewing (killed, partitioned) loses it
//! when it expires, and the next claimant takes it over with `If-Match` on the ETag it read,
//! so of several claimants exactly one wins. Releasing writes an expired lease the same way.
//!
//! Expiry compares the holder's clock (it writes `expires_at`) with the claimant's: hosts must
//! keep their clocks in sync (NTP), as AWS request signing already requires within minutes;
//! `CLOCK_SLACK` more is allowed before a lease counts as expired.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Mutex;

use super::objects::{Objects, Put};
use crate::clock::{from_unix_ms, unix_ms};
use crate::state::{AppLockGuard, LeaseGuard, LeaseHolder, StateError};

/// How much later than its `expires_at` a lease counts as expired, for clocks slightly apart.
pub const CLOCK_SLACK: Duration = Duration::from_secs(2);
/// Claim attempts when others keep changing the lease at the same moment.
const CLAIM_ATTEMPTS: u32 = 8;
const CONTENT_TYPE: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaseBody {
    /// Who holds it, for people: `process 1234 on host`.
    pub holder: String,
    /// Unique per claim, so a holder recognises its own lease.
    pub token: String,
    pub acquired_at: i64,
    pub renewed_at: i64,
    pub expires_at: i64,
    /// Given back by its holder: free to take at once.
    #[serde(default)]
    pub released: bool,
}

impl LeaseBody {
    fn free_at(&self, now: OffsetDateTime) -> bool {
        self.released || unix_ms(now) > self.expires_at + CLOCK_SLACK.as_millis() as i64
    }

    /// Who holds it and until when.
    pub fn holder(&self) -> LeaseHolder {
        LeaseHolder {
            holder: self.holder.clone(),
            expires_at: from_unix_ms(self.expires_at),
        }
    }

    /// `process 1234 on host, lease until 2025-03-01T12:00:00Z`.
    pub fn describe(&self) -> String {
        let until = from_unix_ms(self.expires_at)
            .format(&Rfc3339)
            .unwrap_or_default();
        format!("{}, lease until {until}", self.holder)
    }
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// Ours now; the ETag of what we wrote, and whether we took it over from a holder whose
    /// lease had expired (rather than creating or reusing a released one).
    Won {
        etag: String,
        body: LeaseBody,
        took_over: Option<LeaseBody>,
    },
    /// Held by someone else until it expires.
    Held(LeaseBody),
}

/// `process <pid> on <host>`.
pub fn this_holder() -> String {
    format!("process {} on {}", std::process::id(), hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

fn new_token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn body_for(holder: &str, token: &str, ttl: Duration, acquired_at: i64) -> LeaseBody {
    let now = unix_ms(OffsetDateTime::now_utc());
    LeaseBody {
        holder: holder.to_string(),
        token: token.to_string(),
        acquired_at,
        renewed_at: now,
        expires_at: now + ttl.as_millis() as i64,
        released: false,
    }
}

fn corrupt(objects: &Objects, rel: &str, what: String) -> StateError {
    StateError::Corrupt {
        location: objects.location.clone(),
        table: "leases",
        id: objects.url(rel),
        what,
    }
}

fn encode(body: &LeaseBody) -> Vec<u8> {
    serde_json::to_vec_pretty(body).unwrap_or_default()
}

/// Reads a lease: its body and ETag, `None` when there is none.
pub async fn read(objects: &Objects, rel: &str) -> Result<Option<(LeaseBody, String)>, StateError> {
    let Some(found) = objects.get(rel).await? else {
        return Ok(None);
    };
    let body: LeaseBody = serde_json::from_slice(&found.body)
        .map_err(|e| corrupt(objects, rel, format!("not a lease: {e}")))?;
    Ok(Some((body, found.etag)))
}

/// Claims the lease at `rel` for `ttl`: creates it, or takes it over when it is released or
/// expired. Exactly one of several claimants at once wins.
pub async fn claim(
    objects: &Objects,
    rel: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Claim, StateError> {
    let token = new_token();
    for _ in 0..CLAIM_ATTEMPTS {
        let now = OffsetDateTime::now_utc();
        let fresh = body_for(holder, &token, ttl, unix_ms(now));
        match read(objects, rel).await? {
            None => match objects.create(rel, encode(&fresh), CONTENT_TYPE).await? {
                Put::Written(etag) => {
                    return Ok(Claim::Won {
                        etag,
                        body: fresh,
                        took_over: None,
                    });
                }
                Put::Conflict => continue,
            },
            Some((current, etag)) if current.free_at(now) => {
                match objects
                    .replace(rel, encode(&fresh), CONTENT_TYPE, &etag)
                    .await?
                {
                    Put::Written(etag) => {
                        let took_over = (!current.released).then_some(current);
                        return Ok(Claim::Won {
                            etag,
                            body: fresh,
                            took_over,
                        });
                    }
                    Put::Conflict => continue,
                }
            }
            Some((current, _)) => return Ok(Claim::Held(current)),
        }
    }
    Err(StateError::Contention {
        location: objects.location.clone(),
        key: rel.to_string(),
        attempts: CLAIM_ATTEMPTS,
    })
}

/// A lease this process holds: renewed in the background every third of its time to live,
/// released when dropped.
#[derive(Debug)]
pub struct HeldLease {
    objects: Objects,
    rel: String,
    app: String,
    state: Arc<Mutex<(LeaseBody, String)>>,
    /// Becomes true, once, when the lease is lost.
    lost: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
    released: AtomicBool,
}

impl HeldLease {
    pub fn start(
        objects: Objects,
        rel: String,
        app: String,
        body: LeaseBody,
        etag: String,
        ttl: Duration,
    ) -> HeldLease {
        let state = Arc::new(Mutex::new((body, etag)));
        let (lost_tx, lost) = watch::channel(false);
        let renewer = tokio::spawn(renew_loop(
            objects.clone(),
            rel.clone(),
            Arc::clone(&state),
            lost_tx,
            ttl,
        ));
        HeldLease {
            objects,
            rel,
            app,
            state,
            lost,
            renewer,
            released: AtomicBool::new(false),
        }
    }
}

async fn release(objects: &Objects, rel: &str, state: &Mutex<(LeaseBody, String)>) {
    let (body, etag) = state.lock().await.clone();
    let mut done = body;
    done.released = true;
    done.expires_at = unix_ms(OffsetDateTime::now_utc());
    match objects
        .replace(rel, encode(&done), CONTENT_TYPE, &etag)
        .await
    {
        Ok(Put::Written(_)) => {}
        Ok(Put::Conflict) => {} // not ours any more: nothing to give back
        Err(e) => tracing::warn!("cannot release lease {}: {e}", objects.url(rel)),
    }
}

async fn renew_loop(
    objects: Objects,
    rel: String,
    state: Arc<Mutex<(LeaseBody, String)>>,
    lost: watch::Sender<bool>,
    ttl: Duration,
) {
    let every = (ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let mut guard = state.lock().await;
        let (body, etag) = &*guard;
        let renewed = body_for(&body.holder, &body.token, ttl, body.acquired_at);
        match objects
            .replace(&rel, encode(&renewed), CONTENT_TYPE, etag)
            .await
        {
            Ok(Put::Written(etag)) => *guard = (renewed, etag),
            Ok(Put::Conflict) => {
                tracing::error!(
                    "lease {} was taken over by another holder (it expired before it could be renewed)",
                    objects.url(&rel)
                );
                lost.send_replace(true);
                return;
            }
            // Try again next time; the lease lasts three renewal periods. Past its expiry it
            // counts as lost here, before another claimant may take it (CLOCK_SLACK later):
            // the holder stops rather than run on beside a new one.
            Err(e) => {
                tracing::warn!("cannot renew lease {}: {e}", objects.url(&rel));
                if unix_ms(OffsetDateTime::now_utc()) >= body.expires_at {
                    tracing::error!(
                        "lease {} expired before it could be renewed",
                        objects.url(&rel)
                    );
                    lost.send_replace(true);
                    return;
                }
            }
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        self.renewer.abort();
        if self.released.swap(true, Ordering::SeqCst) {
            return;
        }
        // Given back before the drop returns, so the next claim (of this process or another)
        // finds it free at once. block_in_place needs the multi-threaded runtime (rehost's);
        // elsewhere the release runs as a task, and at worst the lease simply expires.
        let (objects, rel, state) = (
            self.objects.clone(),
            self.rel.clone(),
            Arc::clone(&self.state),
        );
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        match handle.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| {
                handle.block_on(release(&objects, &rel, &state));
            }),
            _ => {
                handle.spawn(async move { release(&objects, &rel, &state).await });
            }
        }
    }
}

impl AppLockGuard for HeldLease {
    fn app(&self) -> &str {
        &self.app
    }

    fn location(&self) -> String {
        format!("lease {}", self.objects.url(&self.rel))
    }

    fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }
}

#[async_trait::async_trait]
impl LeaseGuard for HeldLease {
    fn location(&self) -> String {
        format!("lease {}", self.objects.url(&self.rel))
    }

    fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    async fn lost(&self) {
        let mut lost = self.lost.clone();
        // An error: the renewer ended without losing it (the guard is being dropped).
        if lost.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn release(self: Box<Self>) {
        self.renewer.abort();
        if !self.released.swap(true, Ordering::SeqCst) {
            release(&self.objects, &self.rel, &self.state).await;
        }
    }
}
