//! Launch pre-flight against the guest inspections, on the emulator (which reports each
//! instance type's hypervisor: t3 is nitro, m4 xen), with real guest images from the test kit:
//! a xen-only server refused on t3 and accepted on m4, a will-not-boot server refused, a
//! no-agent server refused under the health gate and accepted with --no-health-gate, every
//! refusal in one report, `--accept-risk` letting one through loudly and recorded in the state,
//! and a random-data (unknown) or never-inspected server only warned about.
//!
//! The AMIs are the emulator's own (`--ami`): what pre-flight judges is the cached inspection of
//! each server's disks, not the image (replicate's own use of it is tested in replicate_guest).

mod launch_common;

use std::path::Path;

use launch_common::*;
use rehost_testkit::guest::images::{self, WindowsSpec};

fn app_file(dir: &Path, infra: &Infra) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: guests\ndefaults:\n  launch:\n    instanceType: t3.large\n    subnet: {}\n    securityGroups: [{}]\n    test: {{subnet: {}, securityGroups: [{}]}}\nservers:\n\
         \x20 - {{id: old01, os: linux, disks: [{{source: old01.raw}}]}}\n\
         \x20 - {{id: xen01, os: linux, disks: [{{source: old01.raw}}], launch: {{instanceType: m4.large}}}}\n\
         \x20 - {{id: dead01, os: windows, disks: [{{source: dead01.raw}}]}}\n\
         \x20 - {{id: bare01, os: windows, disks: [{{source: bare01.raw}}]}}\n\
         \x20 - {{id: rand01, os: linux, disks: [{{source: rand01.raw}}]}}\n\
         groups:\n  - {{name: g, servers: [old01, xen01, dead01, bare01, rand01]}}\n",
        infra.subnet, infra.sg, infra.test_subnet, infra.test_sg
    );
    let file = dir.join("guests.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn preflight_refuses_what_cannot_boot_and_accept_risk_lets_one_through() {
    let dir = scratch("guests");
    let infra = rt().block_on(infra("guests"));
    images::rhel6_image(&dir, "old01");
    images::windows_image(&dir, "dead01", &WindowsSpec::default());
    images::windows_image(
        &dir,
        "bare01",
        &WindowsSpec {
            uefi: true,
            aws_nvme: true,
            ena: true,
            ..Default::default()
        },
    );
    images::random_image(&dir, "rand01", 4 << 20);
    let file = app_file(&dir, &infra);
    let file = file.to_str().unwrap();
    let ami = rt().block_on(async { amazon_image(&sdk().await).await });
    let amis: Vec<String> = ["old01", "xen01", "dead01", "bare01", "rand01"]
        .iter()
        .map(|s| format!("{s}={ami}"))
        .collect();
    let launch = |extra: &[&str]| {
        let mut args = vec!["launch", file, "--no-wait"];
        for a in &amis {
            args.extend(["--ami", a.as_str()]);
        }
        args.extend(extra);
        rehost(&dir, &args)
    };

    // Never inspected: warnings only, the launch goes ahead (and the stack is removed again).
    let out = launch(&[]);
    let err = stderr(&out);
    ok(&out);
    assert!(
        err.contains("warning: server old01: never inspected"),
        "{err}"
    );
    ok(&rehost(&dir, &["terminate", file]));

    ok(&rehost(&dir, &["inspect", file]));

    // status shows each server's verdict from the cache, as text and JSON.
    let status = json(&rehost(&dir, &["status", file, "--output", "json"]));
    let verdicts: Vec<(&str, &str)> = status["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["server"].as_str().unwrap(),
                s["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("old01", "xen-only"),
            ("xen01", "xen-only"),
            ("dead01", "will-not-boot"),
            ("bare01", "no-agent"),
            ("rand01", "unknown")
        ]
    );
    let text = ok(&rehost(&dir, &["status", file]));
    let dead = text.lines().find(|l| l.starts_with("dead01")).unwrap();
    assert!(dead.contains(" will-not-boot "), "{text}");

    // Every guest problem in one report, exit 2, nothing launched.
    let err = refused(&launch(&[]));
    assert!(err.contains("pre-flight found 3 problems"), "{err}");
    assert!(
        err.contains("server old01: boots only on Xen instance types")
            && err.contains("t3.large is a Nitro type"),
        "{err}"
    );
    assert!(!err.contains("server xen01:"), "m4 is a Xen type: {err}");
    assert!(err.contains("server dead01: will not boot"), "{err}");
    assert!(
        err.contains("server bare01: nothing in the image runs user data")
            && err.contains("--no-health-gate"),
        "{err}"
    );
    assert!(
        err.contains("warning: server rand01: inspection could not tell"),
        "unknown only warns: {err}"
    );
    assert!(!rt().block_on(stack_exists("rehost-guests-test")));

    // Without the gate the no-agent server passes; the others are still refused.
    let err = refused(&launch(&["--no-health-gate"]));
    assert!(err.contains("pre-flight found 2 problems"), "{err}");
    assert!(!err.contains("server bare01"), "{err}");

    // An unknown server name is refused before anything.
    let err = refused(&launch(&["--accept-risk", "nope"]));
    assert!(err.contains("--accept-risk nope: no such server"), "{err}");

    // Accepting old01 and dead01: launched, said loudly, recorded with the caller's ARN.
    let out = launch(&[
        "--no-health-gate",
        "--accept-risk",
        "old01",
        "--accept-risk",
        "dead01",
    ]);
    let err = stderr(&out);
    ok(&out);
    assert!(
        err.contains(
            "warning: RISK ACCEPTED (--accept-risk old01): server old01: boots only on Xen"
        ),
        "{err}"
    );
    assert!(
        err.contains("warning: RISK ACCEPTED (--accept-risk dead01): server dead01: will not boot"),
        "{err}"
    );
    assert!(rt().block_on(stack_exists("rehost-guests-test")));
    let conn = rusqlite::Connection::open(dir.join(".rehost/state.db")).unwrap();
    let rows: Vec<(String, String, String, String)> = conn
        .prepare("SELECT server, mode, findings, caller_arn FROM accepted_risks ORDER BY server")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].1.as_str()), ("dead01", "test"));
    assert!(rows[0].2.contains("will not boot"), "{rows:?}");
    assert_eq!(rows[1].0, "old01");
    assert!(rows[1].2.contains("Nitro"), "{rows:?}");
    for r in &rows {
        assert!(r.3.starts_with("arn:aws:"), "the caller's ARN: {r:?}");
    }
    ok(&rehost(&dir, &["terminate", file]));
}

/// Replicate inspects before it starts a server's run (once: an unchanged disk is not read
/// again), registers the AMI with the boot mode and architecture it found where the file is
/// silent, and refuses a setting the disks contradict at its FILE:LINE:COL before any snapshot.
/// The emulator's RegisterImage ignores BootMode (DescribeImages always says uefi), so the
/// registered values are asserted in the replication report, which carries what was sent.
/// render, offline, judges the same cached inspections.
#[test]
fn replicate_uses_the_inspection_and_refuses_a_contradicting_setting() {
    let dir = scratch("guests-replicate");
    let infra = rt().block_on(infra("guests-replicate"));
    images::rhel6_image(&dir, "old01");
    images::windows_image(&dir, "win01", &WindowsSpec::ready(true));
    let text = format!(
        "apiVersion: rehost/v1\nkind: Application\nname: guests2\ndefaults:\n  launch:\n    instanceType: m4.large\n    subnet: {}\n    securityGroups: [{}]\nservers:\n\
         \x20 - id: old01\n    os: linux\n    disks: [{{source: old01.raw}}]\n\
         \x20 - id: win01\n    os: windows\n    bootMode: legacy-bios\n    disks: [{{source: win01.raw}}]\n\
         groups:\n  - {{name: g, servers: [old01, win01]}}\n",
        infra.subnet, infra.sg
    );
    std::fs::write(dir.join("guests2.yaml"), text).unwrap();
    let state = dir.join(".rehost/state.db");
    let inspected_at = |server: &str| -> Option<i64> {
        let conn = rusqlite::Connection::open(&state).ok()?;
        conn.query_row(
            "SELECT inspected_at FROM inspections WHERE server = ?1",
            [server],
            |r| r.get(0),
        )
        .ok()
    };

    let report = json(&rehost(
        &dir,
        &[
            "replicate",
            "guests2.yaml",
            "--server",
            "old01",
            "--output",
            "json",
        ],
    ));
    let old = &report["servers"][0];
    assert_eq!(old["status"], "completed", "{report:#}");
    assert_eq!(
        old["boot_mode"], "legacy-bios",
        "from the inspection: {report:#}"
    );
    assert_eq!(old["architecture"], "x86_64");
    let first = inspected_at("old01").expect("replicate stored the inspection");

    // Again: the unchanged disk is not inspected again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(&rehost(
        &dir,
        &["replicate", "guests2.yaml", "--server", "old01"],
    ));
    assert_eq!(inspected_at("old01"), Some(first));

    // win01's disks boot UEFI only: bootMode legacy-bios is refused where it is written
    // (line 15, column 15), exit 2, and no run of win01 begins.
    let err = refused(&rehost(
        &dir,
        &["replicate", "guests2.yaml", "--server", "win01"],
    ));
    assert!(
        err.contains("guests2.yaml:15:15: error: server win01: bootMode legacy-bios contradicts its disks, which boot uefi"),
        "{err}"
    );
    let conn = rusqlite::Connection::open(&state).unwrap();
    let runs: i64 = conn
        .query_row(
            "SELECT count(*) FROM runs WHERE server = 'win01'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(runs, 0, "nothing replicated");

    // render reads no disk: it refuses from the cached inspection, and renders without it.
    let err = refused(&rehost(&dir, &["render", "guests2.yaml"]));
    assert!(err.contains("guests2.yaml:15:15: error:"), "{err}");
    let other_state = dir.join("empty-state.db");
    ok(&rehost(
        &dir,
        &[
            "render",
            "guests2.yaml",
            "--state",
            other_state.to_str().unwrap(),
        ],
    ));
}
