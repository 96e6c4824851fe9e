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
