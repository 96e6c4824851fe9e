//! Issue 10 part 5 against the emulator: `rehost cutover` runs its hooks, a final sync of every
//! server and the guarded production launch, recorded as one launch; `--dry-run` changes
//! nothing; a failing preCutover hook stops everything and runs postRollback; `rehost
//! rollback` deletes the cutover stack and runs postRollback; a signal during the hooks or
//! the final sync rolls back and is recorded `cancelled`.

mod launch_common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use launch_common::*;
use serde_json::Value;

/// Two servers with small raw disks, a preCutover hook run without a shell (a script that logs
/// "stopped <args>") and a postRollback hook run by the shell.
fn app(dir: &Path, name: &str, infra: &Infra) -> PathBuf {
    let file = replicable_small_app(dir, name, infra, 7);
    stop_script(dir, 0);
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(concat!(
        "hooks:\n  preCutover:\n    - {name: stop, command: [./stop.sh, all services], timeoutSeconds: 30}\n",
        "  postRollback:\n    - {name: start, shell: 'echo started >> events.log'}\n",
    ));
    std::fs::write(&file, text).unwrap();
    file
}

fn stop_script(dir: &Path, exit: i32) {
    let path = dir.join("stop.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"stopped $1\" >> events.log\necho stopping; exit {exit}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

fn events(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("events.log")).unwrap_or_default()
}

fn launches(dir: &Path, f: &str) -> Vec<Value> {
    let h = json(&rehost(dir, &["history", f, "--output", "json"]));
    h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "launch")
        .cloned()
        .collect()
}

/// The application replicated once and launched in test mode (what the cutover's test rule
/// asks for), in a scratch directory of its own.
fn replicated_and_tested(name: &str) -> (PathBuf, PathBuf) {
    let dir = scratch(&format!("runbook-{name}"));
    let infra = rt().block_on(infra(name));
    let file = app(&dir, name, &infra);
    let f = file.to_str().unwrap();
    ok(&rehost(&dir, &["replicate", f]));
    ok(&rehost(&dir, &["launch", f, "--no-health-gate"]));
    (dir, file)
}

#[test]
fn the_runbook_runs_hooks_a_final_sync_and_the_launch_and_rollback_undoes_it() {
    let (dir, file) = replicated_and_tested("rbk");
    let f = file.to_str().unwrap();
    let stack = "rehost-rbk-cutover";

    // The runbook is the explicit decision: without --yes nothing runs.
    let err = refused(&rehost(&dir, &["cutover", f, "--no-health-gate"]));
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(events(&dir), "");

    // --dry-run shows everything and changes nothing: no stack, no snapshot, no hook, the
    // state as it was.
    let state_before = launches(&dir, f);
    let snaps_before = rt().block_on(own_snapshots());
    let out = ok(&rehost(
        &dir,
        &["cutover", f, "--dry-run", "--no-health-gate"],
    ));
    for part in [
        "dry run: nothing is changed",
        "stop: ./stop.sh all services (timeout 30s)",
        "   a: no increment recorded yet",
        "hold: a test of this definition succeeded",
        "start: sh -c \"echo started >> events.log\"",
        "the cutover launch:",
        "rehost-rbk-cutover",
    ] {
        assert!(out.contains(part), "{part}: {out}");
    }
    assert_eq!(events(&dir), "", "no hook ran");
    assert!(!rt().block_on(stack_exists(stack)));
    assert_eq!(rt().block_on(own_snapshots()), snaps_before, "no snapshot");
    assert_eq!(launches(&dir, f), state_before, "the history is unchanged");

    // The runbook, starting two seconds from now.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let started = Instant::now();
    let out = rehost(
        &dir,
        &["cutover", f, "--yes", "--no-health-gate", "--at", &at],
    );
    let stdout = ok(&out);
    assert!(started.elapsed().as_secs_f64() >= 1.0, "waited for --at");
    assert_eq!(
        events(&dir),
        "stopped all services\n",
        "one argument, no shell"
    );
    assert!(
        stdout.contains("final sync a: ") && stdout.contains("final sync b: "),
        "{stdout}"
    );
    assert!(rt().block_on(stack_exists(stack)));
    // (The emulator's own snapshot count moves with launches too: the state says what ran.)
    assert!(
        rt().block_on(own_snapshots()) > snaps_before,
        "the final sync made snapshots"
    );
    assert_eq!(
        completed_replications(&dir, f),
        4,
        "one increment per server after the first replication"
    );
    let l = launches(&dir, f);
    let top = &l[0];
    assert_eq!(
        (top["kind"].as_str(), top["outcome"].as_str()),
        (Some("cutover"), Some("succeeded")),
        "{top}"
    );
    assert_eq!(top["hooks"][0]["name"], "stop");
    assert_eq!(top["hooks"][0]["outcome"], "succeeded");
    assert_eq!(top["hooks"][0]["output"], "stopping\n", "output captured");
    let sync = top["final_sync"].as_array().unwrap();
    assert_eq!(sync.len(), 2);
    for s in sync {
        let server = s["server"].as_str().unwrap();
        assert_eq!(
            top["amis"][server], s["ami_id"],
            "launched exactly the final sync's AMIs"
        );
        assert!(s["error"].is_null());
    }
    let deployed = rt().block_on(deployed_template(stack));
    assert_eq!(
        deployed["Parameters"]["AImageId"]["Default"], sync[0]["ami_id"],
        "{sync:?}"
    );

    // Rollback: --yes, then the stack is gone and postRollback ran.
    refused(&rehost(&dir, &["rollback", f]));
    assert!(rt().block_on(stack_exists(stack)));
    ok(&rehost(&dir, &["rollback", f, "--yes"]));
    assert!(!rt().block_on(stack_exists(stack)));
    assert_eq!(events(&dir), "stopped all services\nstarted\n");
    let l = launches(&dir, f);
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["outcome"].as_str()),
        (Some("rollback"), Some("succeeded"))
    );
    assert_eq!(l[0]["hooks"][0]["name"], "start");

    // A failing preCutover hook stops the cutover before the final sync; postRollback runs.
    stop_script(&dir, 4);
    let snaps = rt().block_on(own_snapshots());
    let out = rehost(&dir, &["cutover", f, "--yes", "--no-health-gate"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hook preCutover stop: failed"),
        "{}",
        stderr(&out)
    );
    assert_eq!(rt().block_on(own_snapshots()), snaps, "no final sync");
    assert!(!rt().block_on(stack_exists(stack)));
    assert_eq!(
        events(&dir),
        "stopped all services\nstarted\nstopped all services\nstarted\n"
    );
    let l = launches(&dir, f);
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["outcome"].as_str()),
        (Some("cutover"), Some("failed"))
    );
    assert_eq!(l[0]["hooks"][0]["exit_code"], 4);
    assert_eq!(l[0]["hooks"][1]["phase"], "postRollback");
    assert!(
        l[0]["failure"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("preCutover hook stop failed"),
        "{}",
        l[0]
    );
}

/// Interrupting the runbook once its hooks have started is a rollback, not a crash: the step
/// under way stops (the final sync's uploads, held here by a proxy; a hook's processes, killed),
/// the postRollback hooks start the sources again, and the launch is recorded `cancelled`;
/// nothing is launched and the interrupted runs resume at the next replication.
#[test]
fn interrupting_the_runbook_stops_the_step_under_way_and_rolls_back() {
    let (dir, file) = replicated_and_tested("rbc");
    let f = file.to_str().unwrap();
    let stack = "rehost-rbc-cutover";
    let cutover = || rehost_at(&dir).args(["cutover", f, "--yes", "--no-health-gate"]);

    // Ctrl-C during the final sync, whose snapshots the proxy holds unstarted.
    let (proxy, running) = held_at(
        &dir,
        &["cutover", f, "--yes", "--no-health-gate"],
        "StartSnapshot",
    );
    assert_eq!(events(&dir), "stopped all services\n");
    // One runbook at a time: a second one meanwhile is refused before its hooks.
    let second = cutover().run();
    let second_err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{second_err}");
    assert!(
        second_err.contains("application 'rbc' is in use by another rehost"),
        "{second_err}"
    );
    assert_eq!(
        events(&dir),
        "stopped all services\n",
        "its hooks did not run"
    );
    let err = ended_by_signal(&proxy, running, libc::SIGINT);
    assert!(
        err.contains("cancelled by Ctrl-C (SIGINT) during the final sync")
            && err.contains("running the postRollback hooks"),
        "{err}"
    );
    assert_eq!(events(&dir), "stopped all services\nstarted\n");
    assert!(!rt().block_on(stack_exists(stack)), "nothing launched");
    let l = launches(&dir, f);
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["outcome"].as_str()),
        (Some("cutover"), Some("cancelled")),
        "{}",
        l[0]
    );
    let phases: Vec<(&str, &str)> = l[0]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["phase"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        phases,
        [("preCutover", "succeeded"), ("postRollback", "succeeded")]
    );
    assert!(
        l[0]["failure"]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("during the final sync"),
        "{}",
        l[0]
    );
    // The interrupted runs resume: the next replication completes every server.
    let before = completed_replications(&dir, f);
    ok(&rehost(&dir, &["replicate", f]));
    assert_eq!(completed_replications(&dir, f), before + 2);

    // The operator's session closes (SIGHUP) while a preCutover hook runs: the hook and what
    // it started are killed at once, and the runbook rolls back.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text = text.replace(
        "timeoutSeconds: 30}\n",
        "timeoutSeconds: 30}\n    - {name: drain, shell: 'echo draining; echo draining >> events.log; sleep 300 & sleep 300', timeoutSeconds: 600}\n",
    );
    std::fs::write(&file, text).unwrap();
    let started = Instant::now();
    let running = cutover().spawn();
    while !events(&dir).ends_with("draining\n") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            events(&dir)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running.signal(libc::SIGHUP);
    let out = running.wait_within(Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cancelled by SIGHUP (the terminal closed) while preCutover hook drain ran"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the hook's sleeps were killed, not waited for"
    );
    assert!(events(&dir).ends_with("stopped all services\ndraining\nstarted\n"));
    let l = launches(&dir, f);
    assert_eq!(l[0]["outcome"], "cancelled", "{}", l[0]);
    let hooks: Vec<(&str, &str)> = l[0]["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["name"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("stop", "succeeded"),
            ("drain", "cancelled"),
            ("start", "succeeded")
        ]
    );
    assert_eq!(
        l[0]["hooks"][1]["output"], "draining\n",
        "its output so far is kept"
    );
    assert!(!rt().block_on(stack_exists(stack)));
}

/// Once the cutover launch has started, CloudFormation carries it on whatever rehost does: a
/// first signal only says so and rehost keeps following; a second stops following, the launch
/// recorded `started` (as with `--no-wait`) and no rollback hook run (the stack's end is unknown).
#[test]
fn a_signal_during_the_launch_keeps_following_and_a_second_stops_following() {
    let (dir, file) = replicated_and_tested("rbf");
    let f = file.to_str().unwrap();
    // The stack is created; following it (its events) is held.
    let (proxy, mut running) = held_at(
        &dir,
        &["cutover", f, "--yes", "--no-health-gate"],
        "DescribeStackEvents",
    );
    running.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_secs(2));
    assert!(running.still_running(), "a first signal does not stop it");
    let err = ended_by_signal(&proxy, running, libc::SIGINT);
    assert!(
        err.contains("the cutover launch is under way in CloudFormation")
            && err.contains("stopped following stack rehost-rbf-cutover")
            && err.contains("no postRollback hook ran"),
        "{err}"
    );
    assert_eq!(
        events(&dir),
        "stopped all services\n",
        "no rollback hook ran"
    );
    let l = launches(&dir, f);
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["outcome"].as_str()),
        (Some("cutover"), Some("started")),
        "{}",
        l[0]
    );
    assert!(rt().block_on(stack_exists("rehost-rbf-cutover")));
}

/// A runbook killed outright (SIGKILL, the machine lost) cannot roll back, but it leaves its
/// trace: the cutover is in the history, `running`, with the hooks that had run.
#[test]
fn a_runbook_killed_outright_is_in_the_history_with_its_hooks() {
    let (dir, file) = replicated_and_tested("rbx");
    let f = file.to_str().unwrap();
    let (proxy, running) = held_at(
        &dir,
        &["cutover", f, "--yes", "--no-health-gate"],
        "StartSnapshot",
    );
    running.signal(libc::SIGKILL);
    let out = running.wait_within(Duration::from_secs(60));
    proxy.release_holds();
    assert_eq!(out.status.code(), None, "killed");
    let l = launches(&dir, f);
    assert_eq!(
        (l[0]["kind"].as_str(), l[0]["outcome"].as_str()),
        (Some("cutover"), Some("running")),
        "{}",
        l[0]
    );
    assert_eq!(l[0]["hooks"][0]["name"], "stop");
    assert_eq!(l[0]["hooks"][0]["outcome"], "succeeded");
    assert!(l[0]["finished_at"].is_null(), "{}", l[0]);
}

/// A signal while the runbook waits for `--at` cancels it: nothing ran, nothing is recorded.
#[test]
fn a_signal_while_waiting_for_the_start_time_cancels_with_nothing_run() {
    let (dir, file) = replicated_and_tested("rbw");
    let f = file.to_str().unwrap();
    let before = launches(&dir, f);
    let at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let at = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let running = rehost_at(&dir)
        .args(["cutover", f, "--yes", "--no-health-gate", "--at", &at])
        .spawn();
    // Signalled once it catches SIGTERM: while it waits for --at.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !running.catches(libc::SIGTERM) {
        assert!(Instant::now() < deadline, "never listened for signals");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.signal(libc::SIGTERM);
    let out = running.wait_within(Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cutover cancelled before it started: nothing was run or changed"),
        "{err}"
    );
    assert_eq!(events(&dir), "", "no hook ran");
    assert_eq!(launches(&dir, f), before, "nothing recorded");
    assert!(!rt().block_on(stack_exists("rehost-rbw-cutover")));
}
