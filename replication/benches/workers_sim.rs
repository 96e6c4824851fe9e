//! The 10,000-server worker simulation (issue 11 part 4): W workers (`rehost replicate FILE
//! --worker --parallel N`) sharing one S3 state, run as a deterministic discrete-event
//! simulation (seeded, virtual clock, no sleeping, no network). Run:
//!
//! ```sh
//! cargo bench -p rehost-replication --bench workers_sim
//! cargo bench -p rehost-replication --bench workers_sim -- --workers 50 --parallel 8
//! ```
//!
//! Options: `--servers N` (10000), `--workers W` (one scenario set instead of 10, 50, 200),
//! `--parallel N` (default: sized so the workers keep up, see `auto_parallel`), `--hours H`
//! measured (2, after one hour of warm-up), `--seed S`, `--literal-next-run` (an unfinished
//! run is retried at the next slot, as `schedule::next_run` has it; see `World::next_due`).
//!
//! Per scenario it prints S3 requests per hour (all workers, and per worker, by kind), lease
//! conflicts, slots missed and slots run twice, the time to detect a killed worker, and what
//! that costs at S3 request prices; then the cost of a full scan of the state (`status`).
//! A slot run twice, two runs of one server at once, or a run completed without its lease is a
//! safety violation of the protocol: the bench prints it and exits 1.
//!
//! Parameters chosen (the issue left them open):
//! - `--parallel` sized to the load (1.5 times the runs in flight an hour of slots needs,
//!   shared by W, at least 4): 4 runs at once per worker cannot keep 10,000 hourly servers
//!   going with 10 or 50 workers (40 or 200 runs at once where about 440 are needed), and an
//!   overloaded fleet measures its backlog, not the protocol; `--parallel 4` shows that case;
//! - lease TTL 60 s (the default of `REHOST_LEASE_SECONDS`), clock slack 2 s, renewal every
//!   TTL/3, re-check jitter 0..TTL/10;
//! - request latency uniform 20..40 ms (S3 from a host in the bucket's region);
//! - hourly increments lasting a lognormal time: median 2 min, sigma 0.75 (mean about 2.6 min,
//!   one in a thousand over 20 min), capped at 20 min, at least 5 s; each server's duration for
//!   a slot is the same whichever worker runs it;
//! - a run's S3 state requests as measured against the real backend (`run_cost.rs`: 10 GET,
//!   11 PUT, 3 LIST, 1 DELETE per increment, one journal segment included), plus one journal
//!   segment per record interval (the S3 state's default, 10 s) in which EBS accepts blocks,
//!   each second accepting blocks with probability one half (an increment's changed blocks are
//!   found all along the scan of the disk), with the journal's compaction every 64 segments;
//!   the blocks themselves are EBS calls, not S3 requests;
//! - every server seeded the day before; seed times spread evenly over the hour, or (the worst
//!   case) all within the same minute;
//! - one worker killed at a random time in the first measured hour.

#[path = "workers_sim/exec.rs"]
mod exec;
#[path = "workers_sim/report.rs"]
mod report;
#[path = "workers_sim/run_cost.rs"]
#[allow(dead_code)]
mod run_cost;
#[path = "workers_sim/store.rs"]
mod store;
#[path = "workers_sim/worker.rs"]
mod worker;
#[path = "workers_sim/world.rs"]
mod world;

use std::rc::Rc;
use std::time::Instant;

use exec::Ms;
use rehost_replication::state::S3Options;
use report::{Outcome, Scan};
use store::{Kind, Purpose};
use world::{HOUR, MINUTE, Params, World};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readable {
    /// (a) every worker reads every server: the most contention.
    All,
    /// (b) a host pair per cluster: each server readable by two workers.
    Pairs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeds {
    /// Slots spread evenly over the hour.
    Spread,
    /// Every slot within the same minute.
    SameMinute,
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub workers: usize,
    pub parallel: usize,
    pub readable: Readable,
    pub seeds: Seeds,
}

struct Options {
    servers: usize,
    workers: Vec<usize>,
    /// `None`: sized to the load (see `auto_parallel`).
    parallel: Option<usize>,
    hours: u64,
    seed: u64,
    literal_next_run: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        servers: 10_000,
        workers: vec![10, 50, 200],
        parallel: None,
        hours: 2,
        seed: 11,
        literal_next_run: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match a.as_str() {
            "--servers" => o.servers = value("--servers")? as usize,
            "--workers" => o.workers = vec![value("--workers")? as usize],
            "--parallel" => o.parallel = Some(value("--parallel")? as usize),
            "--hours" => o.hours = value("--hours")?.max(1),
            "--seed" => o.seed = value("--seed")?,
            "--literal-next-run" => o.literal_next_run = true,
            // cargo bench passes --bench (and maybe a filter): not ours.
            _ => {}
        }
    }
    if o.workers.iter().any(|&w| w < 2) || o.servers == 0 || o.parallel == Some(0) {
        return Err("--workers needs at least 2, --servers and --parallel at least 1".into());
    }
    Ok(o)
}

fn params(o: &Options, parallel: usize) -> Params {
    Params {
        ttl: 60_000,
        slack: 2_000,
        parallel,
        fanout: rehost_replication::state::READ_FANOUT,
        latency: (20, 40),
        run_median: 2 * MINUTE,
        run_sigma: 0.75,
        run_cap: 20 * MINUTE,
        journal_share: 0.5,
        record_interval: S3Options::default().record_interval.as_millis() as Ms,
        literal_next_run: o.literal_next_run,
        seed: o.seed,
    }
}

/// Which servers worker `w` of `workers` can read.
fn readable(sc: &Scenario, servers: usize, w: usize) -> Vec<usize> {
    match sc.readable {
        Readable::All => (0..servers).collect(),
        Readable::Pairs => {
            let pairs = sc.workers / 2;
            let pair = (w / 2).min(pairs - 1);
            (0..servers).filter(|s| s % pairs == pair).collect()
        }
    }
}

/// Runs at once per worker so that the workers keep up with a margin: the mean increment
/// (median × e^(sigma²/2)) times the slots per hour, over W, times 1.5; at least 4, the
/// default of `--parallel`.
fn auto_parallel(o: &Options, workers: usize) -> usize {
    let p = params(o, 4);
    let mean_run = p.run_median as f64 * (p.run_sigma * p.run_sigma / 2.0).exp();
    let busy = o.servers as f64 * mean_run / HOUR as f64;
    ((1.5 * busy / workers as f64).ceil() as usize).max(4)
}

fn simulate(sc: &Scenario, o: &Options) -> Outcome {
    let p = params(o, sc.parallel);
    let mut rng = fastrand::Rng::with_seed(o.seed);
    let first_slot: Vec<Ms> = (0..o.servers)
        .map(|_| match sc.seeds {
            Seeds::Spread => rng.u64(0..HOUR),
            Seeds::SameMinute => 30 * MINUTE + rng.u64(0..MINUTE),
        })
        .collect();
    let world = Rc::new(World::new(p, first_slot, sc.workers));
    let workers: Vec<Rc<worker::Worker>> = (0..sc.workers)
        .map(|w| worker::Worker::new(w, Rc::clone(&world), readable(sc, o.servers, w)))
        .collect();
    for w in &workers {
        exec::spawn(w.id, Rc::clone(w).run());
    }
    let (from, to) = (HOUR, HOUR + o.hours * HOUR);
    let victim = rng.usize(..sc.workers);
    let kill_at = from + rng.u64(0..HOUR);
    let before = Rc::new(std::cell::RefCell::new((
        Vec::new(),
        world::Tally::default(),
    )));
    let after = Rc::new(std::cell::RefCell::new((
        Vec::new(),
        world::Tally::default(),
    )));
    let held_at_kill = Rc::new(std::cell::Cell::new(0usize));
    let hooks: Vec<(Ms, Box<dyn FnOnce()>)> = vec![
        (from, {
            let (world, before) = (Rc::clone(&world), Rc::clone(&before));
            Box::new(move || {
                *before.borrow_mut() = (world.store.counts(), world.truth.borrow().tally.clone())
            })
        }),
        (kill_at, {
            let (world, held) = (Rc::clone(&world), Rc::clone(&held_at_kill));
            Box::new(move || {
                exec::kill(victim);
                let now = exec::now();
                let mut truth = world.truth.borrow_mut();
                truth.dead = Some(victim);
                for r in truth.running.iter_mut().filter(|r| **r == Some(victim)) {
                    *r = None; // its runs died with it
                }
                held.set(
                    (0..world.store.servers())
                        .filter_map(|s| world.store.peek_lease(s))
                        .filter(|l| l.holder == victim && !l.released && l.expires_at >= now)
                        .count(),
                );
            })
        }),
        (to, {
            let (world, after) = (Rc::clone(&world), Rc::clone(&after));
            Box::new(move || {
                *after.borrow_mut() = (world.store.counts(), world.truth.borrow().tally.clone())
            })
        }),
    ];
    // Past the window by the longest run, so runs of its last slots complete and are counted.
    exec::run_until(to + world.params.run_cap + 5 * MINUTE, hooks);
    drop(workers);
    let (before, after) = (before.borrow(), after.borrow());
    let counts: Vec<store::Counts> = after
        .0
        .iter()
        .zip(&before.0)
        .map(|(a, b)| a.minus(b))
        .collect();
    let tally = after.1.minus(&before.1);
    let truth = world.truth.borrow();
    let (mut missed, mut slots) = (0u64, 0u64);
    for (s, &first) in world.first_slot.iter().enumerate() {
        let mut slot = first;
        while slot < to {
            if slot >= from {
                slots += 1;
                missed += u64::from(!truth.completed.contains_key(&(s, slot)));
            }
            slot += HOUR;
        }
    }
    let twice = truth.completed.values().filter(|&&n| n > 1).count() as u64;
    Outcome {
        scenario: *sc,
        hours: o.hours,
        counts,
        slots,
        missed,
        twice,
        violations: truth.violations.clone(),
        detections: truth.detections.clone(),
        held_at_kill: held_at_kill.get(),
        startup_requests: world
            .store
            .counts()
            .iter()
            .map(|c| c.purpose(Purpose::Startup))
            .sum(),
        startup_ms: truth.startup_done,
        peak_per_second: world.store.peak_per_second(from, to),
        tally,
        elapsed: std::time::Duration::ZERO,
    }
}

/// `status` on a laptop: LIST pages of 1,000 keys one after another, then one GET per server
/// object, READ_FANOUT in flight, as `S3Store::servers` and `read_many` do.
fn scan(o: &Options) -> Scan {
    let p = params(o, 1);
    let world = Rc::new(World::new(p.clone(), vec![0; o.servers], 1));
    let done = Rc::new(std::cell::Cell::new(0 as Ms));
    let (w, d) = (Rc::clone(&world), Rc::clone(&done));
    exec::spawn(0, async move {
        for _ in 0..o_pages(w.store.servers()) {
            w.store.other(0, Purpose::Scan, Kind::List).await;
        }
        let next = Rc::new(std::cell::Cell::new(0usize));
        let left = Rc::new(std::cell::Cell::new(w.store.servers()));
        for _ in 0..w.params.fanout {
            let (w, next, left, d) = (
                Rc::clone(&w),
                Rc::clone(&next),
                Rc::clone(&left),
                Rc::clone(&d),
            );
            exec::spawn(0, async move {
                while next.get() < w.store.servers() {
                    let s = next.get();
                    next.set(s + 1);
                    w.store.get_server(0, Purpose::Scan, s).await;
                    left.set(left.get() - 1);
                    if left.get() == 0 {
                        d.set(exec::now());
                    }
                }
            });
        }
    });
    exec::run_until(Ms::MAX - 1, Vec::new());
    let counts = world.store.counts().remove(0);
    Scan {
        servers: o.servers,
        lists: counts.kind(Kind::List),
        gets: counts.kind(Kind::Get),
        millis: done.get(),
        fanout: p.fanout,
    }
}

fn o_pages(keys: usize) -> usize {
    keys.div_ceil(1_000).max(1)
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("workers_sim: {e}");
            std::process::exit(2);
        }
    };
    let mut outcomes = Vec::new();
    for &workers in &o.workers {
        for readable in [Readable::All, Readable::Pairs] {
            for seeds in [Seeds::Spread, Seeds::SameMinute] {
                let sc = Scenario {
                    workers,
                    parallel: o.parallel.unwrap_or_else(|| auto_parallel(&o, workers)),
                    readable,
                    seeds,
                };
                let t = Instant::now();
                let mut outcome = simulate(&sc, &o);
                outcome.elapsed = t.elapsed();
                eprintln!(
                    "W = {workers}, {readable:?}, {seeds:?}: {:.1} s",
                    outcome.elapsed.as_secs_f64()
                );
                outcomes.push(outcome);
            }
        }
    }
    let violations: usize = outcomes.iter().map(|o| o.violations.len()).sum();
    let mut out = std::io::stdout().lock();
    let printed = report::header(&mut out, &params(&o, 0), o.servers, o.hours)
        .and_then(|_| report::tables(&mut out, &outcomes))
        .and_then(|_| report::scan(&mut out, &scan(&o)));
    if let Err(e) = printed {
        eprintln!("workers_sim: cannot write the report: {e}");
        std::process::exit(1);
    }
    if violations > 0 {
        eprintln!("workers_sim: {violations} safety violations of the protocol");
        std::process::exit(1);
    }
}
