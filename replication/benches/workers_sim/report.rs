//! The simulation's figures, as Markdown tables ready for the README.

use std::io::{self, Write};
use std::time::Duration;

use super::exec::Ms;
use super::store::{Counts, Kind, PURPOSE_NAMES, Purpose};
use super::world::{Params, Tally};
use super::{Readable, Scenario, Seeds};

/// S3 Standard request prices, us-east-1, as the issue gives them (AWS's list prices,
/// unchanged since 2018, taken as of 2026-12-07): PUT, COPY, POST, LIST per 1,000; GET and
/// others per 1,000; DELETE free.
const PUT_LIST_PER_1000: f64 = 0.005;
const GET_PER_1000: f64 = 0.0004;
const HOURS_PER_MONTH: f64 = 730.0;

pub struct Outcome {
    pub scenario: Scenario,
    pub hours: u64,
    /// Requests in the measured window, per worker.
    pub counts: Vec<Counts>,
    /// Slots in the window, those with no completed run, those run more than once.
    pub slots: u64,
    pub missed: u64,
    pub twice: u64,
    pub violations: Vec<String>,
    pub detections: Vec<Ms>,
    pub held_at_kill: usize,
    pub startup_requests: u64,
    pub startup_ms: Ms,
    /// The busiest second's reads (GET, LIST) and writes (PUT, DELETE).
    pub peak_per_second: (u32, u32),
    pub tally: Tally,
    pub elapsed: Duration,
}

impl Outcome {
    fn total(&self) -> Counts {
        let mut all = Counts::default();
        for c in &self.counts {
            all.add(c);
        }
        all
    }

    fn per_hour(&self, n: u64) -> u64 {
        n / self.hours
    }

    fn dollars_per_month(&self) -> f64 {
        let t = self.total();
        let put_list = (t.kind(Kind::Put) + t.kind(Kind::List)) as f64;
        let get = t.kind(Kind::Get) as f64;
        (put_list / 1000.0 * PUT_LIST_PER_1000 + get / 1000.0 * GET_PER_1000) / self.hours as f64
            * HOURS_PER_MONTH
    }

    fn name(&self) -> String {
        let sc = &self.scenario;
        format!(
            "| {} | {} | {} | {} |",
            sc.workers,
            sc.parallel,
            match sc.readable {
                Readable::All => "all",
                Readable::Pairs => "pairs",
            },
            match sc.seeds {
                Seeds::Spread => "spread",
                Seeds::SameMinute => "same minute",
            }
        )
    }
}

pub struct Scan {
    pub servers: usize,
    pub lists: u64,
    pub gets: u64,
    pub millis: Ms,
    pub fanout: usize,
}

/// Thousands separated by commas, as the README writes figures.
fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn secs(ms: Ms) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

pub fn header(out: &mut impl Write, p: &Params, servers: usize, hours: u64) -> io::Result<()> {
    writeln!(
        out,
        "{servers} servers, hourly increments; lease TTL {} s, slack {} s; \
         request latency {}..{} ms; increments lognormal, median {} s, sigma {}, capped at {} s; \
         blocks accepted in {:.0}% of a run's seconds, a journal segment per {} s with any; seed {}; \
         {hours} h measured after 1 h warm-up; \
         an unfinished run is {}.\n",
        p.ttl / 1000,
        p.slack / 1000,
        p.latency.0,
        p.latency.1,
        p.run_median / 1000,
        p.run_sigma,
        p.run_cap / 1000,
        p.journal_share * 100.0,
        p.record_interval / 1000,
        p.seed,
        if p.literal_next_run {
            "retried at the next slot (schedule::next_run as it is)"
        } else {
            "resumed at once"
        },
    )
}

pub fn tables(out: &mut impl Write, outcomes: &[Outcome]) -> io::Result<()> {
    writeln!(
        out,
        "S3 requests per hour (all workers; per worker the mean of W):\n"
    )?;
    writeln!(
        out,
        "| W | N | readable | slots | requests/h | GET/h | PUT/h | LIST/h | per worker GET/PUT/LIST per h | peak reads/s, writes/s | $/month |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |"
    )?;
    for o in outcomes {
        let t = o.total();
        let w = o.counts.len() as u64;
        let ph = |k: Kind| o.per_hour(t.kind(k));
        writeln!(
            out,
            "{} {} | {} | {} | {} | {} / {} / {} | {} / {} | {:.0} |",
            o.name(),
            n(o.per_hour(t.total())),
            n(ph(Kind::Get)),
            n(ph(Kind::Put)),
            n(ph(Kind::List)),
            n(ph(Kind::Get) / w),
            n(ph(Kind::Put) / w),
            n(ph(Kind::List) / w),
            n(u64::from(o.peak_per_second.0)),
            n(u64::from(o.peak_per_second.1)),
            o.dollars_per_month(),
        )?;
    }
    writeln!(out, "\nRequests per hour by protocol step:\n")?;
    write!(out, "| W | N | readable | slots |")?;
    for name in &PURPOSE_NAMES[1..PURPOSE_NAMES.len() - 1] {
        write!(out, " {name} |")?;
    }
    writeln!(out, " start-up reads (once) | start-up time |")?;
    writeln!(
        out,
        "| ---: | ---: | --- | --- |{} ---: | ---: |",
        " ---: |".repeat(PURPOSE_NAMES.len() - 2)
    )?;
    for o in outcomes {
        let t = o.total();
        write!(out, "{}", o.name())?;
        for p in [
            Purpose::Claim,
            Purpose::ServerRead,
            Purpose::Renew,
            Purpose::Release,
            Purpose::Run,
        ] {
            write!(out, " {} |", n(o.per_hour(t.purpose(p))))?;
        }
        writeln!(
            out,
            " {} | {} s |",
            n(o.startup_requests),
            secs(o.startup_ms)
        )?;
    }
    writeln!(
        out,
        "\nLeases, slots and a killed worker (per hour unless said):\n"
    )?;
    writeln!(
        out,
        "| W | N | readable | slots | runs/h | claims/h | claims lost/h | PUT 412/h | slots missed | slots run twice | dead worker's leases taken over | detection min / median / max | sim time |"
    )?;
    writeln!(
        out,
        "| ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"
    )?;
    for o in outcomes {
        let t = o.total();
        let tally = &o.tally;
        let mut d = o.detections.clone();
        d.sort_unstable();
        let detection = if d.is_empty() {
            "none held".to_string()
        } else {
            format!(
                "{} / {} / {} s",
                secs(d[0]),
                secs(d[d.len() / 2]),
                secs(d[d.len() - 1])
            )
        };
        writeln!(
            out,
            "{} {} | {} | {} | {} | {} of {} ({:.1}%) | {} | {} of {} | {} | {:.1} s |",
            o.name(),
            n(o.per_hour(tally.runs_completed)),
            n(o.per_hour(tally.claims)),
            n(o.per_hour(tally.claims_held + tally.claims_contended)),
            n(o.per_hour(t.put_412)),
            n(o.missed),
            n(o.slots),
            o.missed as f64 * 100.0 / o.slots.max(1) as f64,
            o.twice,
            d.len(),
            o.held_at_kill,
            detection,
            o.elapsed.as_secs_f64(),
        )?;
    }
    for o in outcomes {
        for v in o.violations.iter().take(10) {
            writeln!(out, "\nSAFETY VIOLATION {} {v}", o.name())?;
        }
        if o.violations.len() > 10 {
            writeln!(out, "\n... and {} more", o.violations.len() - 10)?;
        }
        if o.tally.live_takeovers > 0 {
            writeln!(
                out,
                "\n{} leases of live workers taken over {}",
                o.tally.live_takeovers,
                o.name()
            )?;
        }
    }
    Ok(())
}

pub fn scan(out: &mut impl Write, s: &Scan) -> io::Result<()> {
    let dollars =
        s.lists as f64 / 1000.0 * PUT_LIST_PER_1000 + s.gets as f64 / 1000.0 * GET_PER_1000;
    writeln!(
        out,
        "\nA full scan of the state (`status`, {} servers): {} LIST pages one after another, then \
         {} GETs, {} in flight: {} s at the simulated latency, ${dollars:.4} a scan.",
        n(s.servers as u64),
        s.lists,
        n(s.gets),
        s.fanout,
        secs(s.millis),
    )
}
