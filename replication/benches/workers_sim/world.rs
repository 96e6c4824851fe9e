//! What the workers share (the store, the parameters, each server's schedule) and what only the
//! simulation sees: the ground truth of which run is where, against which the protocol's safety
//! is checked (never two runs of one server at once, never two completed runs for one slot),
//! and the figures nobody could measure from inside (how long a dead worker's servers waited).

use std::cell::RefCell;
use std::collections::HashMap;

use rehost_replication::Frequency;
use rehost_replication::schedule::next_run;
use time::{Duration, OffsetDateTime};

use super::exec::Ms;
use super::store::{ServerDoc, Store};

pub const SECOND: Ms = 1_000;
pub const MINUTE: Ms = 60 * SECOND;
pub const HOUR: Ms = 60 * MINUTE;

/// The simulation's knobs (see `workers_sim.rs` for the values chosen and why).
#[derive(Debug, Clone)]
pub struct Params {
    /// Lease time to live (`REHOST_LEASE_SECONDS`).
    pub ttl: Ms,
    /// `CLOCK_SLACK` of `state/s3/lease.rs`.
    pub slack: Ms,
    /// Runs at once per worker (`--parallel`).
    pub parallel: usize,
    /// Server objects read at once at start-up and by `status` (`state::READ_FANOUT`).
    pub fanout: usize,
    /// Per-request latency, uniform, in ms.
    pub latency: (Ms, Ms),
    /// Increment duration: lognormal with this median and sigma, capped.
    pub run_median: Ms,
    pub run_sigma: f64,
    pub run_cap: Ms,
    /// Share of a run's seconds in which EBS accepts blocks.
    pub journal_share: f64,
    /// The S3 state's `record_interval`: one journal segment per interval in which blocks
    /// were accepted.
    pub record_interval: Ms,
    /// Take `schedule::next_run` as it is, where an unfinished run counts as a failed attempt
    /// (retried at the next slot), instead of resuming it at once.
    pub literal_next_run: bool,
    pub seed: u64,
}

/// The virtual clock's zero, one day after the grid's anchors, so every server was seeded the
/// day before the simulation starts.
fn origin() -> OffsetDateTime {
    time::macros::datetime!(2026-12-07 00:00 UTC)
}

fn at(ms: Ms) -> OffsetDateTime {
    origin() + Duration::milliseconds(ms as i64)
}

fn ms_of(t: OffsetDateTime) -> Ms {
    (t - origin()).whole_milliseconds().max(0) as Ms
}

/// How the protocol's steps turned out, counted.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Take-overs of a lease whose holder was alive (it failed to renew in time).
    pub live_takeovers: u64,
    /// Step 4: claims made, won, found held, and given up after `CLAIM_ATTEMPTS` (contention).
    pub claims: u64,
    pub claims_won: u64,
    pub claims_held: u64,
    pub claims_contended: u64,
    /// Step 4 re-checks that found the slot already done (no claim needed).
    pub rechecks_done: u64,
    /// Step 5: won, but the slot was done meanwhile (released at once).
    pub confirms_not_due: u64,
    pub runs_started: u64,
    pub runs_completed: u64,
    pub runs_lost: u64,
}

impl Tally {
    pub fn minus(&self, e: &Tally) -> Tally {
        Tally {
            live_takeovers: self.live_takeovers - e.live_takeovers,
            claims: self.claims - e.claims,
            claims_won: self.claims_won - e.claims_won,
            claims_held: self.claims_held - e.claims_held,
            claims_contended: self.claims_contended - e.claims_contended,
            rechecks_done: self.rechecks_done - e.rechecks_done,
            confirms_not_due: self.confirms_not_due - e.confirms_not_due,
            runs_started: self.runs_started - e.runs_started,
            runs_completed: self.runs_completed - e.runs_completed,
            runs_lost: self.runs_lost - e.runs_lost,
        }
    }
}

/// What only the simulation knows.
#[derive(Debug, Default)]
pub struct Truth {
    /// The worker running each server now.
    pub running: Vec<Option<usize>>,
    /// Completed runs per (server, slot).
    pub completed: HashMap<(usize, Ms), u32>,
    pub violations: Vec<String>,
    /// From the dead worker's last renewal to each take-over of its leases.
    pub detections: Vec<Ms>,
    /// Counters of the protocol's outcomes (snapshotted at the window's ends).
    pub tally: Tally,
    pub dead: Option<usize>,
    /// When the last worker finished step 2 (its start-up reads).
    pub startup_done: Ms,
}

pub struct World {
    pub store: Store,
    pub params: Params,
    /// Each server's grid anchor (`seed_time`), as virtual ms of its first slot (in hour 0).
    pub first_slot: Vec<Ms>,
    pub truth: RefCell<Truth>,
}

impl World {
    /// Every server seeded the day before, its last increment one period before `first_slot`.
    pub fn new(params: Params, first_slot: Vec<Ms>, clients: usize) -> World {
        let docs = first_slot
            .iter()
            .map(|&f| {
                let last = Some(f as i64 - HOUR as i64);
                ServerDoc {
                    last_success: last,
                    last_attempt: last,
                    unfinished: false,
                }
            })
            .collect();
        let store = Store::new(docs, clients, params.latency, params.seed ^ 0x5707e);
        let n = first_slot.len();
        World {
            store,
            params,
            first_slot,
            truth: RefCell::new(Truth {
                running: vec![None; n],
                ..Truth::default()
            }),
        }
    }

    fn seed_time(&self, server: usize) -> OffsetDateTime {
        at(self.first_slot[server]) - Duration::days(1)
    }

    /// `schedule::next_run` of the real `--watch` on what the server object says; except that
    /// an unfinished run (begun, neither completed nor failed: its worker died, or it runs
    /// now) is due at once, to be resumed, as the protocol's steps 4, 5 and 7 mean ("the slot
    /// may be done", "resumes the server's unfinished run", take-over within TTL + slack +
    /// jitter). `next_run` itself counts such an attempt as a failure and waits for the next
    /// slot: with `literal_next_run` the simulation does that, and a dead worker's servers
    /// wait up to a period for their take-over.
    pub fn next_due(&self, server: usize, doc: &ServerDoc, now: Ms) -> Option<Ms> {
        if doc.unfinished && !self.params.literal_next_run {
            return Some(doc.last_attempt.unwrap_or(0).max(0) as Ms);
        }
        let t = |ms: i64| origin() + Duration::milliseconds(ms);
        next_run(
            Frequency::Hours(1),
            Some(self.seed_time(server)),
            doc.last_success.map(t),
            doc.last_attempt.map(t),
            at(now),
        )
        .map(ms_of)
    }

    /// The slot a run starting at `t` serves: the last point of the server's grid at or before.
    pub fn slot_of(&self, server: usize, t: Ms) -> Ms {
        let first = self.first_slot[server];
        if t < first {
            return first;
        }
        first + (t - first) / HOUR * HOUR
    }

    /// An increment's duration: a function of server and slot only, so every scenario runs
    /// the same work whichever worker does it.
    pub fn run_duration(&self, server: usize, slot: Ms) -> Ms {
        let mut rng = fastrand::Rng::with_seed(
            self.params.seed ^ (server as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ slot,
        );
        // Box-Muller: a standard normal from two uniforms.
        let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let d = self.params.run_median as f64 * (self.params.run_sigma * z).exp();
        (d as Ms).clamp(5 * SECOND, self.params.run_cap)
    }
}
