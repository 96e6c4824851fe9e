//! One worker of `rehost replicate FILE --worker --parallel N`, step by step as the worker
//! protocol (issue 11 part 4, `replication/WORKERS.md` on the workers branch) states it; each
//! step is marked `Step k` so the two can be checked against each other. The worker knows only
//! what it read from the store; the ground truth (`World::truth`) is written here only to be
//! checked, never read to decide.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::rc::Rc;

use super::exec::{self, Ms, Signal};
use super::run_cost::INCREMENT;
use super::store::{Cond, Kind, Lease, Purpose};
use super::world::{Params, SECOND, World};

/// `CLAIM_ATTEMPTS` of `state/s3/lease.rs`.
const CLAIM_ATTEMPTS: u32 = 8;
/// Segments between two compactions of a journal (`journal::COMPACT_EVERY`).
const COMPACT_EVERY: u64 = 64;
/// Of a run's measured GETs, those made before it starts sending blocks (the server object's
/// reads of `begin_run`); the rest are made when it completes.
const RUN_GETS_AT_START: u32 = 5;

pub struct Worker {
    pub id: usize,
    world: Rc<World>,
    /// Step 1: the servers this host can read, by global index.
    servers: Vec<usize>,
    /// Step 2: next slot of each readable server (cached; `None`: no further run).
    next_due: RefCell<Vec<Option<Ms>>>,
    /// Step 4: when a server held by another is looked at again.
    recheck_at: RefCell<Vec<Option<Ms>>>,
    in_flight: RefCell<Vec<bool>>,
    /// When each server next becomes due here, and the servers due now (not yet started).
    wake_at: RefCell<Vec<Ms>>,
    timeline: RefCell<BinaryHeap<Reverse<(Ms, u32)>>>,
    ready: RefCell<Vec<u32>>,
    queued: RefCell<Vec<bool>>,
    busy: Cell<usize>,
    signal: Rc<Signal>,
    rng: RefCell<fastrand::Rng>,
    tokens: Cell<u64>,
}

/// A lease this worker holds while it runs a server (`HeldLease`).
struct Held {
    server: usize,
    lease: Cell<Lease>,
    etag: Cell<u64>,
    lost: Cell<bool>,
    done: Cell<bool>,
    renewing: Cell<bool>,
}

enum Claim {
    Won {
        lease: Lease,
        etag: u64,
        took_over: Option<Lease>,
    },
    Held(Lease),
    Contended,
}

impl Worker {
    pub fn new(id: usize, world: Rc<World>, servers: Vec<usize>) -> Rc<Worker> {
        let n = servers.len();
        let seed = world.params.seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        Rc::new(Worker {
            id,
            world,
            servers,
            next_due: RefCell::new(vec![None; n]),
            recheck_at: RefCell::new(vec![None; n]),
            in_flight: RefCell::new(vec![false; n]),
            wake_at: RefCell::new(vec![Ms::MAX; n]),
            timeline: RefCell::new(BinaryHeap::new()),
            ready: RefCell::new(Vec::new()),
            queued: RefCell::new(vec![false; n]),
            busy: Cell::new(0),
            signal: Rc::new(Signal::default()),
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
            tokens: Cell::new(0),
        })
    }

    /// The worker's life: start-up, then the loop, until the simulation ends or it is killed.
    pub async fn run(self: Rc<Self>) {
        // Step 1: the readable servers were given (`servers`): the scenario decides them.
        // Step 2: one GET of each readable server's object, READ_FANOUT at a time.
        let next = Rc::new(Cell::new(0usize));
        let left = Rc::new(Cell::new(self.servers.len()));
        for _ in 0..self.world.params.fanout.min(self.servers.len()) {
            let (w, next, left) = (Rc::clone(&self), Rc::clone(&next), Rc::clone(&left));
            exec::spawn(self.id, async move {
                while next.get() < w.servers.len() {
                    let i = next.get();
                    next.set(i + 1);
                    let s = w.servers[i];
                    let (doc, _) = w.world.store.get_server(w.id, Purpose::Startup, s).await;
                    w.next_due.borrow_mut()[i] = w.world.next_due(s, &doc, exec::now());
                    w.schedule(i);
                    left.set(left.get() - 1);
                }
                w.signal.raise();
            });
        }
        while left.get() > 0 {
            self.signal.wait(Ms::MAX).await;
        }
        {
            let mut truth = self.world.truth.borrow_mut();
            truth.startup_done = truth.startup_done.max(exec::now());
        }
        loop {
            // Step 3: due servers (next_due and re-check time passed, not in flight here),
            // visited in an order random per worker, up to N at once.
            let now = exec::now();
            self.collect_due(now);
            while self.busy.get() < self.world.params.parallel {
                let Some(i) = self.pick() else { break };
                self.in_flight.borrow_mut()[i] = true;
                self.busy.set(self.busy.get() + 1);
                let w = Rc::clone(&self);
                exec::spawn(self.id, async move { w.visit(i).await });
            }
            let deadline = if self.busy.get() < self.world.params.parallel {
                self.timeline
                    .borrow()
                    .peek()
                    .map_or(Ms::MAX, |Reverse((t, _))| *t)
            } else {
                Ms::MAX // only a finished visit frees a place
            };
            self.signal.wait(deadline).await;
        }
    }

    /// When server `i` is next due here, from its cached slot and re-check time.
    fn schedule(&self, i: usize) {
        let Some(due) = self.next_due.borrow()[i] else {
            self.wake_at.borrow_mut()[i] = Ms::MAX;
            return;
        };
        let t = due.max(self.recheck_at.borrow()[i].unwrap_or(0));
        self.wake_at.borrow_mut()[i] = t;
        self.timeline.borrow_mut().push(Reverse((t, i as u32)));
    }

    fn collect_due(&self, now: Ms) {
        let mut timeline = self.timeline.borrow_mut();
        while let Some(&Reverse((t, i))) = timeline.peek() {
            if t > now {
                break;
            }
            timeline.pop();
            let i = i as usize;
            let current = self.wake_at.borrow()[i] == t;
            if current && !self.in_flight.borrow()[i] && !self.queued.borrow()[i] {
                self.queued.borrow_mut()[i] = true;
                self.ready.borrow_mut().push(i as u32);
            }
        }
    }

    fn pick(&self) -> Option<usize> {
        let mut ready = self.ready.borrow_mut();
        while !ready.is_empty() {
            let k = self.rng.borrow_mut().usize(..ready.len());
            let i = ready.swap_remove(k) as usize;
            self.queued.borrow_mut()[i] = false;
            if self.wake_at.borrow()[i] <= exec::now() && !self.in_flight.borrow()[i] {
                return Some(i);
            }
        }
        None
    }

    /// One visit of a due server: steps 4 to 7.
    async fn visit(self: Rc<Self>, i: usize) {
        let s = self.servers[i];
        let store = &self.world.store;
        // Step 4 (re-check): first GET the server object: the slot may be done, then just
        // update next_due, no claim.
        if self.recheck_at.borrow_mut()[i].take().is_some() {
            let (doc, _) = store.get_server(self.id, Purpose::ServerRead, s).await;
            let due = self.world.next_due(s, &doc, exec::now());
            self.next_due.borrow_mut()[i] = due;
            if due.is_none_or(|d| d > exec::now()) {
                self.world.truth.borrow_mut().tally.rechecks_done += 1;
                return self.finish(i);
            }
        }
        // Step 4: claim the lease.
        self.world.truth.borrow_mut().tally.claims += 1;
        let (lease, etag, took_over) = match self.claim(s).await {
            Claim::Won {
                lease,
                etag,
                took_over,
            } => (lease, etag, took_over),
            Claim::Held(holder) => {
                // Held by a live holder: no wait; look again once it could have expired.
                let jitter = self.rng.borrow_mut().u64(0..=self.world.params.ttl / 10);
                let at = holder.expires_at + self.world.params.slack + jitter;
                self.recheck_at.borrow_mut()[i] = Some(at.max(exec::now() + 1));
                self.world.truth.borrow_mut().tally.claims_held += 1;
                return self.finish(i);
            }
            Claim::Contended => {
                // Others kept changing it: as good as held; look again shortly.
                let jitter = self.rng.borrow_mut().u64(1..=self.world.params.ttl / 10);
                self.recheck_at.borrow_mut()[i] = Some(exec::now() + jitter);
                self.world.truth.borrow_mut().tally.claims_contended += 1;
                return self.finish(i);
            }
        };
        self.world.truth.borrow_mut().tally.claims_won += 1;
        // Step 7: a take-over of an expired lease is logged; here, measured.
        if let Some(old) = took_over {
            let mut truth = self.world.truth.borrow_mut();
            if truth.dead == Some(old.holder) {
                truth.detections.push(exec::now() - old.renewed_at);
            } else {
                truth.tally.live_takeovers += 1;
            }
        }
        let held = Rc::new(Held {
            server: s,
            lease: Cell::new(lease),
            etag: Cell::new(etag),
            lost: Cell::new(false),
            done: Cell::new(false),
            renewing: Cell::new(false),
        });
        // Step 5: won: GET the server object again and recompute next_due.
        let (doc, doc_etag) = store.get_server(self.id, Purpose::ServerRead, s).await;
        let now = exec::now();
        let due = self.world.next_due(s, &doc, now);
        if due.is_none_or(|d| d > now) {
            // Another worker finished this slot meanwhile: release, update the cache, done.
            self.world.truth.borrow_mut().tally.confirms_not_due += 1;
            self.release(&held).await;
            self.next_due.borrow_mut()[i] = due;
            return self.finish(i);
        }
        // Step 5: still due: replicate, renewing the lease every TTL/3.
        let w = Rc::clone(&self);
        let renewer = Rc::clone(&held);
        exec::spawn(self.id, async move { w.renew(renewer).await });
        let completed = self.replicate(&held, doc_etag).await;
        held.done.set(true);
        while held.renewing.get() {
            exec::sleep(1).await; // a renewal in flight ends before the release (one mutex)
        }
        if !completed {
            // Lost: the server goes back to step 4.
            self.world.truth.borrow_mut().tally.runs_lost += 1;
            return self.finish(i);
        }
        // Step 6: run ended: release the lease; next_due from the state (one GET).
        self.release(&held).await;
        let (doc, _) = store.get_server(self.id, Purpose::ServerRead, s).await;
        self.next_due.borrow_mut()[i] = self.world.next_due(s, &doc, exec::now());
        self.finish(i)
    }

    fn finish(&self, i: usize) {
        self.in_flight.borrow_mut()[i] = false;
        self.busy.set(self.busy.get() - 1);
        self.schedule(i);
        self.signal.raise();
    }

    fn fresh_lease(&self, token: u64) -> Lease {
        let now = exec::now();
        Lease {
            holder: self.id,
            token,
            renewed_at: now,
            expires_at: now + self.world.params.ttl,
            released: false,
        }
    }

    /// Step 4: GET lease; absent → PUT If-None-Match:*; released or expired → PUT If-Match;
    /// held by a live holder → held. A PUT that loses reads again (`lease::claim`).
    async fn claim(&self, s: usize) -> Claim {
        let store = &self.world.store;
        self.tokens.set(self.tokens.get() + 1);
        let token = (self.id as u64) << 32 | self.tokens.get();
        for _ in 0..CLAIM_ATTEMPTS {
            let now = exec::now();
            let fresh = self.fresh_lease(token);
            match store.get_lease(self.id, Purpose::Claim, s).await {
                None => match store
                    .put_lease(self.id, Purpose::Claim, s, fresh, Cond::Absent)
                    .await
                {
                    Ok(etag) => {
                        return Claim::Won {
                            lease: fresh,
                            etag,
                            took_over: None,
                        };
                    }
                    Err(_) => continue,
                },
                Some((current, etag))
                    if current.released || now > current.expires_at + self.world.params.slack =>
                {
                    match store
                        .put_lease(self.id, Purpose::Claim, s, fresh, Cond::Matches(etag))
                        .await
                    {
                        Ok(etag) => {
                            return Claim::Won {
                                lease: fresh,
                                etag,
                                took_over: (!current.released).then_some(current),
                            };
                        }
                        Err(_) => continue,
                    }
                }
                Some((current, _)) => return Claim::Held(current),
            }
        }
        Claim::Contended
    }

    /// Step 5: renew every TTL/3 with If-Match; a renewal that finds the lease changed means
    /// lost: the run stops at once.
    async fn renew(&self, held: Rc<Held>) {
        loop {
            exec::sleep(self.world.params.ttl / 3).await;
            if held.done.get() {
                return;
            }
            held.renewing.set(true);
            let mut lease = held.lease.get();
            lease.renewed_at = exec::now();
            lease.expires_at = lease.renewed_at + self.world.params.ttl;
            let cond = Cond::Matches(held.etag.get());
            let put = self
                .world
                .store
                .put_lease(self.id, Purpose::Renew, held.server, lease, cond)
                .await;
            held.renewing.set(false);
            match put {
                Ok(etag) => {
                    held.lease.set(lease);
                    held.etag.set(etag);
                }
                Err(_) => {
                    held.lost.set(true);
                    let mut truth = self.world.truth.borrow_mut();
                    if truth.running[held.server] == Some(self.id) {
                        truth.running[held.server] = None;
                    }
                    return;
                }
            }
        }
    }

    /// Steps 5 and 6: release (PUT If-Match, released=true); a 412 means not ours any more.
    async fn release(&self, held: &Held) {
        let mut lease = held.lease.get();
        lease.released = true;
        lease.expires_at = exec::now();
        let cond = Cond::Matches(held.etag.get());
        let _ = self
            .world
            .store
            .put_lease(self.id, Purpose::Release, held.server, lease, cond)
            .await;
    }

    /// Step 5: one increment, its state requests as measured on the real backend
    /// (`run_cost::INCREMENT`), plus one journal segment per record interval with blocks
    /// accepted.
    /// Returns whether it completed (false: the lease was lost and the run stopped).
    async fn replicate(&self, held: &Held, etag: u64) -> bool {
        let (world, store, me, s) = (&self.world, &self.world.store, self.id, held.server);
        let start = exec::now();
        let slot = world.slot_of(s, start);
        {
            let mut truth = world.truth.borrow_mut();
            truth.tally.runs_started += 1;
            if let Some(other) = truth.running[s] {
                truth.violations.push(format!(
                    "server {s} run by worker {me} while worker {other} runs it"
                ));
            }
            truth.running[s] = Some(me);
        }
        // begin_run: the server object's reads, then the write that records the attempt.
        for _ in 0..RUN_GETS_AT_START {
            store.other(me, Purpose::Run, Kind::Get).await;
        }
        let begun = start as i64;
        let mut etag = store
            .update_server(me, s, etag, |d| {
                d.last_attempt = Some(begun);
                d.unfinished = true;
            })
            .await;
        // The blocks: no S3 request each (EBS); the journal writes at most one segment per
        // record interval in which blocks were accepted, and folds every 64 into a base.
        let duration = world.run_duration(s, slot);
        let segments = journal_segments(duration, &world.params);
        let extra = segments.saturating_sub(1); // the measured run includes one
        let end = start + duration;
        for seq in 1..=extra {
            exec::sleep_until(start + duration * seq / (extra + 1)).await;
            if held.lost.get() {
                return false;
            }
            store.other(me, Purpose::Run, Kind::Put).await;
            if (seq + 1) % COMPACT_EVERY == 0 {
                store.other(me, Purpose::Run, Kind::List).await;
                for _ in 0..COMPACT_EVERY + u64::from(seq + 1 > COMPACT_EVERY) {
                    store.other(me, Purpose::Run, Kind::Get).await;
                }
                store.other(me, Purpose::Run, Kind::Put).await;
                store.other(me, Purpose::Run, Kind::List).await;
                store.other(me, Purpose::Run, Kind::Delete).await;
            }
        }
        exec::sleep_until(end).await;
        if held.lost.get() {
            return false;
        }
        // Completion: manifest, snapshot and AMI records, the journal dropped, the success.
        let rest = INCREMENT.get - RUN_GETS_AT_START;
        for _ in 0..rest {
            store.other(me, Purpose::Run, Kind::Get).await;
        }
        for _ in 0..INCREMENT.list {
            store.other(me, Purpose::Run, Kind::List).await;
        }
        for _ in 0..INCREMENT.delete {
            store.other(me, Purpose::Run, Kind::Delete).await;
        }
        // The PUTs: begin_run's (above), the last (the success, below), the others here.
        for _ in 0..INCREMENT.put - 2 {
            store.other(me, Purpose::Run, Kind::Put).await;
        }
        if held.lost.get() {
            return false;
        }
        etag = store
            .update_server(me, s, etag, |d| {
                d.last_success = Some(begun);
                d.unfinished = false;
            })
            .await;
        let _ = etag;
        let mut truth = world.truth.borrow_mut();
        if truth.running[s] == Some(me) {
            truth.running[s] = None;
        }
        let lease_now = store.peek_lease(s);
        if lease_now.is_none_or(|l| l.token != held.lease.get().token) {
            truth.violations.push(format!(
                "server {s}: worker {me} completed a run without its lease"
            ));
        }
        truth.tally.runs_completed += 1;
        let n = {
            let n = truth.completed.entry((s, slot)).or_default();
            *n += 1;
            *n
        };
        if n > 1 {
            truth
                .violations
                .push(format!("server {s}: slot at {slot} ms run {n} times"));
        }
        true
    }
}

/// Journal segments of a run lasting `duration`: one per record interval in which EBS accepted
/// a block, each second accepting blocks with probability `journal_share`, independently (at a
/// one-second interval, `journal_share` of the run's seconds).
fn journal_segments(duration: Ms, p: &Params) -> u64 {
    let interval = p.record_interval.max(SECOND);
    let seconds_per_interval = (interval / SECOND) as i32;
    let any_accepted = 1.0 - (1.0 - p.journal_share).powi(seconds_per_interval);
    (duration as f64 / interval as f64 * any_accepted).round() as u64
}
