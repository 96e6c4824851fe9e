//! Issue 10 parts 1 and 2 against the emulator: every launch lands in the history (refusals
//! included, with the caller's ARN), and a cutover is refused (exit 2, every reason at once,
//! no stack, no snapshot) until a test launch of the same definition succeeded and every
//! replica is fresh and no cached inspection verdict forbids it; `--force --reason` lets it
//! through and is recorded.

mod launch_common;

use std::path::Path;

use launch_common::*;
use rehost_testkit::guest::images::{self, WindowsSpec};
use serde_json::Value;

fn history(dir: &Path, f: &str) -> Vec<Value> {
    let h = json(&rehost(dir, &["history", f, "--output", "json"]));
    h["entries"].as_array().unwrap().clone()
}

fn launches(entries: &[Value]) -> Vec<&Value> {
    entries.iter().filter(|e| e["type"] == "launch").collect()
}

/// Moves every AMI of the application `hours` into the past in the state, as if its
/// replication had completed then.
fn age_replicas(dir: &Path, hours: i64) {
    let db = rusqlite::Connection::open(dir.join(".rehost/state.db")).unwrap();
    let n = db
        .execute(
            "UPDATE amis SET created_at = created_at - ?1",
            [hours * 3600 * 1000],
        )
        .unwrap();
    assert!(n >= 2);
}

#[test]
fn cutover_is_refused_until_tested_and_fresh_and_forced_cutovers_are_recorded() {
    let dir = scratch("guardrails");
    let infra = rt().block_on(infra("guard"));
    let file = replicable_small_app(&dir, "guard", &infra, 1);
    let f = file.to_str().unwrap();
    let cutover = ["launch", f, "--mode", "cutover", "--no-health-gate"];
    let stack = "rehost-guard-cutover";

    // Nothing tested yet: migrate --mode cutover is refused before it replicates anything.
    let before = rt().block_on(own_snapshots());
    let err = refused(&rehost(
        &dir,
        &["migrate", f, "--mode", "cutover", "--no-health-gate"],
    ));
    assert!(err.contains("no test launch of this definition"), "{err}");
    assert_eq!(rt().block_on(own_snapshots()), before, "nothing replicated");
    assert!(!rt().block_on(stack_exists(stack)));

    ok(&rehost(&dir, &["replicate", f]));
    let err = refused(&rehost(&dir, &cutover));
    assert!(
        err.contains("refused: the cutover guardrails do not hold"),
        "{err}"
    );
    assert!(err.contains("no test launch of this definition"), "{err}");
    assert!(err.contains("--force --reason"), "{err}");
    assert!(!rt().block_on(stack_exists(stack)), "nothing launched");

    // A test launch of this definition: the cutover guardrails hold.
    ok(&rehost(&dir, &["launch", f, "--no-health-gate"]));
    // ... but not with stale replicas, nor with an AMI the state did not replicate, nor after
    // the definition changed: every reason at once.
    age_replicas(&dir, 4);
    let image = rt().block_on(amazon_image(&rt().block_on(sdk())));
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("m5.large", "m5.xlarge")).unwrap();
    let ami = format!("b={image}");
    let mut args = cutover.to_vec();
    args.extend(["--ami", &ami]);
    let err = refused(&rehost(&dir, &args));
    assert!(err.contains("no test launch of this definition"), "{err}");
    assert!(
        err.contains("a: ami-") && err.contains("more than maxLagMinutes 180"),
        "{err}"
    );
    assert!(
        err.contains(&format!("b: {image} was not replicated through this state")),
        "{err}"
    );
    assert!(!rt().block_on(stack_exists(stack)));
    std::fs::write(&file, &text).unwrap();

    // --force needs --reason (clap refuses, exit 2); with it the cutover goes through. Three
    // guardrails are overridden: the stale replicas, and the test, which is now older than the
    // last change to the definition (the refused launch of the changed file: changing it back
    // does not make the earlier test current again).
    let mut forced = cutover.to_vec();
    forced.push("--force");
    refused(&rehost(&dir, &forced));
    forced.extend(["--reason", "CAB-42: replicas of this morning accepted"]);
    let out = rehost(&dir, &forced);
    ok(&out);
    assert!(
        stderr(&out).contains("cutover forced past 3 guardrails"),
        "{}",
        stderr(&out)
    );
    assert!(rt().block_on(stack_exists(stack)));

    // A launch failing in pre-flight (an AMI that does not exist) is a refused record.
    let missing = [
        "launch",
        f,
        "--no-health-gate",
        "--ami",
        "a=ami-00000000000000001",
    ];
    refused(&rehost(&dir, &missing));

    let entries = history(&dir, f);
    let l = launches(&entries);
    let outcomes: Vec<(&str, &str)> = l
        .iter()
        .map(|e| (e["mode"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("test", "refused"),
            ("cutover", "succeeded"),
            ("cutover", "refused"),
            ("test", "succeeded"),
            ("cutover", "refused"),
            ("cutover", "refused"),
        ],
        "newest first: {entries:#?}"
    );
    assert_eq!(l[5]["kind"], "migrate");
    let preflight = l[0]["failure"]["reasons"].as_array().unwrap();
    assert!(
        preflight
            .iter()
            .any(|r| r.as_str().unwrap().contains("ami-00000000000000001")),
        "{preflight:?}"
    );
    let by = l[1]["caller"].as_str().unwrap();
    assert!(by.starts_with("arn:aws:"), "who ran it: {by}");
    assert_eq!(l[1]["forced"]["by"], by);
    assert_eq!(
        l[1]["forced"]["reason"],
        "CAB-42: replicas of this morning accepted"
    );
    let overridden: Vec<&str> = l[1]["forced"]["overridden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(overridden.len(), 3, "{overridden:?}");
    assert!(overridden[0].contains("test again"), "{overridden:?}");
    assert!(overridden[1].starts_with("a: ") && overridden[1].contains("maxLagMinutes"));
    assert_eq!(l[1]["stack"], stack);
    assert!(l[1]["amis"]["a"].as_str().unwrap().starts_with("ami-"));
    assert_eq!(
        l[1]["definition"], l[3]["definition"],
        "the test and the cutover launched one definition"
    );
    assert_ne!(l[2]["definition"], l[3]["definition"], "the changed file");
    assert!(l[1]["finished_at"].is_string());
    // Replication runs are in the same timeline.
    let runs = entries
        .iter()
        .filter(|e| e["type"] == "replication")
        .count();
    assert_eq!(runs, 2, "{entries:#?}");
    let text = ok(&rehost(&dir, &["history", f]));
    assert!(text.contains("forced by arn:aws:"), "{text}");
    assert!(text.contains("CAB-42"), "{text}");
}

/// The inspection guardrail reads the verdicts `rehost inspect` cached in the state: a server
/// that will not boot refuses the cutover runbook before its preCutover hooks stop anything,
/// the refusal is in the history, and `--accept-risk SERVER` lifts only that guardrail.
#[test]
fn a_cached_will_not_boot_verdict_refuses_the_runbook_before_its_hooks() {
    let dir = scratch("guard-inspection");
    let infra = rt().block_on(infra("guardinsp"));
    // A Windows disk without the AWS NVMe driver, legacy BIOS: will-not-boot.
    images::windows_image(&dir, "dead01", &WindowsSpec::default());
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: guardinsp\ndefaults:\n  launch:\n    instanceType: t3.large\n    subnet: {}\n    securityGroups: [{}]\n    test: {{subnet: {}, securityGroups: [{}]}}\nservers:\n\
         \x20 - {{id: dead01, os: windows, disks: [{{source: dead01.raw}}]}}\n\
         groups:\n  - {{name: g, servers: [dead01]}}\n\
         hooks:\n  preCutover:\n    - {{name: stop-source, shell: touch hook-ran}}\n",
        infra.subnet, infra.sg, infra.test_subnet, infra.test_sg
    );
    let file = dir.join("guardinsp.yaml");
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let runbook = ["cutover", f, "--yes", "--no-health-gate"];

    ok(&rehost(&dir, &["inspect", f]));
    let err = refused(&rehost(&dir, &runbook));
    assert!(
        err.contains("dead01: inspection verdict will-not-boot forbids cutover"),
        "{err}"
    );
    assert!(err.contains("no test launch of this definition"), "{err}");
    assert!(!dir.join("hook-ran").exists(), "refused before the hooks");
    assert!(!rt().block_on(stack_exists("rehost-guardinsp-cutover")));

    // Accepting the server's risk lifts the inspection guardrail, not the others.
    let mut accepted = runbook.to_vec();
    accepted.extend(["--accept-risk", "dead01"]);
    let err = refused(&rehost(&dir, &accepted));
    assert!(!err.contains("forbids cutover"), "{err}");
    assert!(err.contains("no test launch of this definition"), "{err}");
    assert!(!dir.join("hook-ran").exists());

    let entries = history(&dir, f);
    let l = launches(&entries);
    assert_eq!(l.len(), 2, "{entries:#?}");
    let reasons = |e: &Value| -> Vec<String> {
        e["failure"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        reasons(l[1]).iter().any(|r| r.contains("will-not-boot")),
        "{:?}",
        reasons(l[1])
    );
    assert!(!reasons(l[0]).iter().any(|r| r.contains("will-not-boot")));
    assert!(
        l.iter()
            .all(|e| e["outcome"] == "refused" && e["kind"] == "cutover")
    );
}
