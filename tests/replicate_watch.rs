//! `rehost replicate FILE --watch` as a service runs it: it replicates every server that is due,
//! then waits for the next slot; SIGTERM (a service manager stopping it) ends it cleanly, exit 0,
//! its lock given back so the next command runs at once.

mod launch_common;

use std::time::{Duration, Instant};

use launch_common::*;

#[test]
fn a_watch_replicates_what_is_due_and_stops_cleanly_at_sigterm() {
    let dir = scratch("watch-term");
    let infra = rt().block_on(infra("wtc"));
    let file = replicable_small_app(&dir, "wtc", &infra, 11);
    let f = file.to_str().unwrap();
    let mut running = rehost_at(&dir).args(["replicate", f, "--watch"]).spawn();
    // Both servers were never replicated: due at once.
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed_replications(&dir, f) < 2 {
        assert!(
            running.still_running() && Instant::now() < deadline,
            "the watch did not replicate both servers"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(running.still_running(), "it waits for the next slot");
    running.signal(libc::SIGTERM);
    let out = running.wait_within(Duration::from_secs(30));
    let stdout = ok(&out);
    let err = stderr(&out);
    assert!(err.contains("stopping at SIGTERM"), "{err}");
    // One report line per run, as it finished: `a: ami-... (N of M blocks sent, S s)`.
    let mut reported: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(": ami-") && l.contains("blocks sent"))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    reported.sort_unstable();
    assert_eq!(reported, ["a", "b"], "{stdout}");
    assert_eq!(completed_replications(&dir, f), 2, "nothing ran twice");
    // Its application lock is given back: a one-off run starts at once.
    let started = Instant::now();
    ok(&rehost(&dir, &["replicate", f]));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(completed_replications(&dir, f), 4);
}
