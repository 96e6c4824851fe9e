//! An in-memory object store with S3's conditional semantics, as the S3 state uses them: a GET
//! returns the body and its ETag (or 404), a PUT may carry `If-None-Match: *` (create only) or
//! `If-Match: <etag>` (replace only what was read) and answers 412 otherwise, a LIST returns
//! pages of 1,000 keys. Each request travels for a latency drawn per request (half before the
//! store acts, half after), so two workers' requests interleave in virtual time and a claim's
//! GET and PUT can be overtaken by another's: the races are real.
//!
//! Only the objects whose contents the protocol reads are modelled (leases and server
//! objects, as typed values); the run's other objects (journal segments, manifests) are
//! requests that are counted and take time, but hold nothing anyone reads back here.
//!
//! Requests are counted per worker, by purpose and billed kind. A worker's EBS calls (the
//! blocks of a run) are not S3 requests and are left out.

use std::cell::{Cell, RefCell};

use super::exec::{self, Ms};

/// How S3 bills a request: GET (and HEAD), PUT (and POST), LIST, DELETE (free).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Get = 0,
    Put = 1,
    List = 2,
    Delete = 3,
}
pub const KINDS: usize = 4;

/// Why a worker sent a request: which step of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Step 2: the server objects read once at start-up.
    Startup = 0,
    /// Step 4: GET and PUT of the lease while claiming.
    Claim = 1,
    /// Step 4 (re-check), 5 and 6: reads of the server object to learn its next slot.
    ServerRead = 2,
    /// Step 5: renewals of a held lease.
    Renew = 3,
    /// Steps 5 and 6: releases.
    Release = 4,
    /// Step 5: the run's own state writes (and the reads they need).
    Run = 5,
    /// `status` on a laptop: LIST pages and one GET per server.
    Scan = 6,
}
pub const PURPOSES: usize = 7;
pub const PURPOSE_NAMES: [&str; PURPOSES] = [
    "start-up reads",
    "claims",
    "server reads",
    "renewals",
    "releases",
    "run state",
    "status scan",
];

/// Requests of one worker: by purpose and kind, and the conditional PUTs that lost (412).
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub by: [[u64; KINDS]; PURPOSES],
    pub put_412: u64,
}

impl Counts {
    pub fn kind(&self, k: Kind) -> u64 {
        self.by.iter().map(|p| p[k as usize]).sum()
    }
    pub fn purpose(&self, p: Purpose) -> u64 {
        self.by[p as usize].iter().sum()
    }
    pub fn total(&self) -> u64 {
        self.by.iter().flatten().sum()
    }
    pub fn minus(&self, earlier: &Counts) -> Counts {
        let mut out = self.clone();
        for (p, row) in out.by.iter_mut().enumerate() {
            for (k, n) in row.iter_mut().enumerate() {
                *n -= earlier.by[p][k];
            }
        }
        out.put_412 -= earlier.put_412;
        out
    }
    pub fn add(&mut self, other: &Counts) {
        for (p, row) in self.by.iter_mut().enumerate() {
            for (k, n) in row.iter_mut().enumerate() {
                *n += other.by[p][k];
            }
        }
        self.put_412 += other.put_412;
    }
}

/// A lease object (`LeaseBody` of `state/s3/lease.rs`, times in virtual ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub holder: usize,
    pub token: u64,
    pub renewed_at: Ms,
    pub expires_at: Ms,
    pub released: bool,
}

/// What the schedule reads from a server object: run start times in virtual ms, signed (the
/// runs before the simulation started lie before its zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerDoc {
    pub last_success: Option<i64>,
    pub last_attempt: Option<i64>,
    /// A run begun and neither completed nor failed (its worker died, or runs it now).
    pub unfinished: bool,
}

/// A conditional PUT's precondition.
#[derive(Debug, Clone, Copy)]
pub enum Cond {
    /// `If-None-Match: *`
    Absent,
    /// `If-Match: <etag>`
    Matches(u64),
}

/// 412 Precondition Failed.
#[derive(Debug)]
pub struct PreconditionFailed;

pub struct Store {
    leases: RefCell<Vec<Option<(Lease, u64)>>>,
    servers: RefCell<Vec<(ServerDoc, u64)>>,
    next_etag: Cell<u64>,
    latency: (Ms, Ms),
    rng: RefCell<fastrand::Rng>,
    counts: RefCell<Vec<Counts>>,
    /// Requests per second of virtual time, [GET and LIST, PUT and DELETE]: S3's request
    /// rate limits per prefix are for those two classes.
    per_second: RefCell<Vec<[u32; 2]>>,
}

impl Store {
    /// `clients` counters (workers, and one more for `status`); latency in ms, uniform.
    pub fn new(docs: Vec<ServerDoc>, clients: usize, latency: (Ms, Ms), seed: u64) -> Store {
        let n = docs.len();
        Store {
            leases: RefCell::new(vec![None; n]),
            servers: RefCell::new(docs.into_iter().zip(1..).collect()),
            next_etag: Cell::new(n as u64 + 1),
            latency,
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
            counts: RefCell::new(vec![Counts::default(); clients]),
            per_second: RefCell::new(Vec::new()),
        }
    }

    pub fn counts(&self) -> Vec<Counts> {
        self.counts.borrow().clone()
    }

    /// The busiest second of `[from, to)` for reads (GET, LIST) and for writes (PUT, DELETE).
    pub fn peak_per_second(&self, from: Ms, to: Ms) -> (u32, u32) {
        let per = self.per_second.borrow();
        let (a, b) = (
            (from / 1000) as usize,
            ((to / 1000) as usize).min(per.len()),
        );
        per.get(a..b)
            .unwrap_or(&[])
            .iter()
            .fold((0, 0), |(r, w), s| (r.max(s[0]), w.max(s[1])))
    }

    fn etag(&self) -> u64 {
        let e = self.next_etag.get();
        self.next_etag.set(e + 1);
        e
    }

    fn count(&self, who: usize, purpose: Purpose, kind: Kind) {
        self.counts.borrow_mut()[who].by[purpose as usize][kind as usize] += 1;
        let second = (exec::now() / 1000) as usize;
        let mut per = self.per_second.borrow_mut();
        if per.len() <= second {
            per.resize(second + 1, [0, 0]);
        }
        per[second][usize::from(matches!(kind, Kind::Put | Kind::Delete))] += 1;
    }

    /// Sends one request: travels half its latency, `act`s on the store, travels back.
    async fn request<T>(
        &self,
        who: usize,
        purpose: Purpose,
        kind: Kind,
        act: impl FnOnce(&Store) -> T,
    ) -> T {
        let (lo, hi) = self.latency;
        let latency = self.rng.borrow_mut().u64(lo..=hi);
        exec::sleep(latency / 2).await;
        self.count(who, purpose, kind);
        let out = act(self);
        exec::sleep(latency - latency / 2).await;
        out
    }

    pub async fn get_lease(&self, who: usize, p: Purpose, server: usize) -> Option<(Lease, u64)> {
        self.request(who, p, Kind::Get, |s| s.leases.borrow()[server])
            .await
    }

    pub async fn put_lease(
        &self,
        who: usize,
        p: Purpose,
        server: usize,
        lease: Lease,
        cond: Cond,
    ) -> Result<u64, PreconditionFailed> {
        self.request(who, p, Kind::Put, |s| {
            let mut leases = s.leases.borrow_mut();
            let ok = match (cond, leases[server]) {
                (Cond::Absent, None) => true,
                (Cond::Matches(want), Some((_, have))) => want == have,
                _ => false,
            };
            if !ok {
                s.counts.borrow_mut()[who].put_412 += 1;
                return Err(PreconditionFailed);
            }
            let etag = s.etag();
            leases[server] = Some((lease, etag));
            Ok(etag)
        })
        .await
    }

    pub async fn get_server(&self, who: usize, p: Purpose, server: usize) -> (ServerDoc, u64) {
        self.request(who, p, Kind::Get, |s| s.servers.borrow()[server])
            .await
    }

    /// A change to a server object as the state makes it: `If-Match` on the ETag last seen,
    /// re-read and re-applied when it lost (it never should: only the lease holder writes).
    pub async fn update_server(
        &self,
        who: usize,
        server: usize,
        etag: u64,
        change: impl Fn(&mut ServerDoc),
    ) -> u64 {
        let mut etag = etag;
        loop {
            let written = self
                .request(who, Purpose::Run, Kind::Put, |s| {
                    let mut servers = s.servers.borrow_mut();
                    let (doc, have) = &mut servers[server];
                    if *have != etag {
                        s.counts.borrow_mut()[who].put_412 += 1;
                        return None;
                    }
                    change(doc);
                    *have = s.etag();
                    Some(*have)
                })
                .await;
            match written {
                Some(e) => return e,
                None => etag = self.get_server(who, Purpose::Run, server).await.1,
            }
        }
    }

    /// A request to an object nobody here reads back (journal, manifest, listing of them).
    pub async fn other(&self, who: usize, p: Purpose, kind: Kind) {
        self.request(who, p, kind, |_| ()).await
    }

    /// The lease as it stands (for the simulation's own bookkeeping, not a request).
    pub fn peek_lease(&self, server: usize) -> Option<Lease> {
        self.leases.borrow()[server].map(|(l, _)| l)
    }

    pub fn servers(&self) -> usize {
        self.servers.borrow().len()
    }
}
