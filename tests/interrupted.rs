//! What Ctrl-C and SIGTERM do to rehost's long-running commands (the cutover runbook's are in
//! `cutover_runbook`): `replicate --watch` stops cleanly, its lock given back; a launch being
//! followed stops being followed, the stack going on in CloudFormation and recorded `started`.

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

/// Ctrl-C while a launch is followed stops following it (exit 1): the stack goes on in
/// CloudFormation, and the history says `started`, as after `--no-wait`, not `running`.
#[test]
fn a_signal_while_a_launch_is_followed_stops_following_and_records_it_started() {
    let dir = scratch("launch-detach");
    let infra = rt().block_on(infra("ldt"));
    let file = replicable_small_app(&dir, "ldt", &infra, 13);
    let f = file.to_str().unwrap();
    ok(&rehost(&dir, &["replicate", f]));
    let (proxy, running) = held_at(
        &dir,
        &["launch", f, "--no-health-gate"],
        "DescribeStackEvents",
    );
    let err = ended_by_signal(&proxy, running, libc::SIGINT);
    assert!(
        err.contains("stopped following stack rehost-ldt-test: it goes on in CloudFormation"),
        "{err}"
    );
    let h = json(&rehost(&dir, &["history", f, "--output", "json"]));
    let launch = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "launch")
        .expect("the launch is recorded");
    assert_eq!(
        (launch["kind"].as_str(), launch["outcome"].as_str()),
        (Some("launch"), Some("started")),
        "{launch}"
    );
    assert!(launch["finished_at"].is_string(), "{launch}");
    assert!(rt().block_on(stack_exists("rehost-ldt-test")));
}
