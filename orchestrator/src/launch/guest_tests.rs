//! The guest check, from fixed inspections: what refuses, what warns, what `--accept-risk`
//! lets through, and the refusal text as the CLI prints it (`tests/expected/cli/`).

use std::path::Path;

use rehost_replication::inspect::{Finding, ServerInspection, Severity, Verdict};

use super::*;
use crate::launch::LaunchError;

fn app() -> App {
    let text = concat!(
        "apiVersion: rehost/v1\nkind: Application\nname: estate\n",
        "defaults:\n  launch: {instanceType: t3.large}\n",
        "servers:\n",
        "  - {id: old01, os: linux, disks: [{source: a.img}]}\n",
        "  - {id: xen01, os: linux, disks: [{source: b.img}], launch: {instanceType: m4.large}}\n",
        "  - {id: dead01, os: linux, disks: [{source: c.img}]}\n",
        "  - {id: bare01, os: windows, disks: [{source: d.img}], launch: {signalTimeoutMinutes: 45}}\n",
        "  - {id: ok01, os: linux, disks: [{source: e.img}]}\n",
        "  - {id: rand01, os: linux, disks: [{source: f.img}]}\n",
        "  - {id: new01, os: linux, disks: [{source: g.img}]}\n",
        "groups:\n  - {name: all, servers: [old01, xen01, dead01, bare01, ok01, rand01, new01]}\n",
    );
    crate::load::load_with(text.as_bytes(), Path::new("estate.yaml"), |_| {
        Default::default()
    })
    .unwrap()
    .app
}

fn inspection(
    server: &str,
    verdict: Verdict,
    findings: &[(&str, Severity, &str)],
) -> ServerInspection {
    ServerInspection {
        server: server.into(),
        verdict,
        boot_mode: None,
        architecture: None,
        os: None,
        findings: findings
            .iter()
            .map(|(code, severity, message)| Finding {
                code: (*code).into(),
                severity: *severity,
                message: (*message).into(),
                fix: (*severity == Severity::Error).then(|| format!("fix {code}")),
            })
            .collect(),
        disks: Vec::new(),
    }
}

fn policy(accept: &[&str]) -> GuestPolicy {
    let e = Severity::Error;
    let list = [
        inspection(
            "old01",
            Verdict::XenOnly,
            &[("no-nvme-driver", e, "no nvme in the initramfs")],
        ),
        inspection(
            "xen01",
            Verdict::XenOnly,
            &[("no-nvme-driver", e, "no nvme in the initramfs")],
        ),
        inspection(
            "dead01",
            Verdict::WillNotBoot,
            &[("no-boot-loader", e, "no boot loader found")],
        ),
        inspection(
            "bare01",
            Verdict::NoAgent,
            &[("no-agent", e, "no EC2Launch, EC2Config or cloud-init")],
        ),
        inspection("ok01", Verdict::Ready, &[]),
        inspection(
            "rand01",
            Verdict::Unknown,
            &[(
                "no-partition-table",
                Severity::Warning,
                "no partition table or filesystem found",
            )],
        ),
    ];
    GuestPolicy {
        inspections: list.into_iter().map(|i| (i.server.clone(), i)).collect(),
        accept_risk: accept.iter().map(|s| s.to_string()).collect(),
    }
}

fn hypervisors() -> BTreeMap<String, Hypervisor> {
    [
        ("t3.large".to_string(), Hypervisor::Nitro),
        ("m4.large".to_string(), Hypervisor::Xen),
    ]
    .into_iter()
    .collect()
}

#[test]
fn every_guest_problem_is_refused_at_once_and_unknown_only_warns() {
    let c = check(&app(), Mode::Test, true, &policy(&[]), &hypervisors());
    let servers: Vec<&str> = c
        .refusals
        .iter()
        .map(|r| r.split(':').next().unwrap())
        .collect();
    // xen01 runs on m4 (Xen): accepted; ok01 is ready; rand01 unknown and new01 never
    // inspected only warn.
    assert_eq!(servers, ["server old01", "server dead01", "server bare01"]);
    assert!(
        c.refusals[0].contains("t3.large is a Nitro type")
            && c.refusals[0].contains("fix no-nvme-driver")
    );
    assert!(c.refusals[2].contains("--no-health-gate") && c.refusals[2].contains("45 minutes"));
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].starts_with("server rand01: inspection could not tell"));
    assert!(c.warnings[1].contains("rehost inspect estate.yaml --server new01"));
    assert!(c.accepted.is_empty());

    // Without the gate, a guest without an agent launches.
    let ungated = check(&app(), Mode::Test, false, &policy(&[]), &hypervisors());
    assert_eq!(ungated.refusals.len(), 2);
    assert!(!ungated.refusals.iter().any(|r| r.contains("bare01")));
}

#[test]
fn accept_risk_lets_a_named_server_through_loudly() {
    let c = check(
        &app(),
        Mode::Test,
        true,
        &policy(&["old01", "ok01"]),
        &hypervisors(),
    );
    assert!(!c.refusals.iter().any(|r| r.contains("old01")));
    assert_eq!(c.refusals.len(), 2, "others are still refused");
    assert_eq!(c.accepted.len(), 1);
    assert_eq!(c.accepted[0].server, "old01");
    assert!(c.accepted[0].findings[0].contains("Nitro"));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("RISK ACCEPTED (--accept-risk old01): server old01"))
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("--accept-risk ok01: nothing to accept"))
    );
}

#[test]
fn the_refusal_reads_as_the_expected_file() {
    let c = check(&app(), Mode::Test, true, &policy(&[]), &hypervisors());
    let mut text = String::new();
    for w in &c.warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    text.push_str(&format!("error: {}\n", LaunchError::Preflight(c.refusals)));
    let path = rehost_testkit::workspace_root().join("tests/expected/cli/preflight-guest.txt");
    if std::env::var_os("REHOST_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        text,
        "rerun with REHOST_BLESS=1 to accept a deliberate change"
    );
}

/// The instance type judged is the one the mode launches: a test launch on its own
/// `test.instanceType` (Nitro here) is refused where the cutover type (Xen) is fine.
#[test]
fn the_modes_own_instance_type_is_judged() {
    let text = concat!(
        "apiVersion: rehost/v1\nkind: Application\nname: estate\n",
        "defaults:\n  launch: {instanceType: m4.large, test: {instanceType: t3.large}}\n",
        "servers:\n  - {id: old01, os: linux, disks: [{source: a.img}]}\n",
        "groups:\n  - {name: all, servers: [old01]}\n",
    );
    let app = crate::load::load_with(text.as_bytes(), Path::new("estate.yaml"), |_| {
        Default::default()
    })
    .unwrap()
    .app;
    let p = policy(&[]);
    let cutover = check(&app, Mode::Cutover, true, &p, &hypervisors());
    assert!(cutover.refusals.is_empty(), "{:?}", cutover.refusals);
    let test = check(&app, Mode::Test, true, &p, &hypervisors());
    assert_eq!(test.refusals.len(), 1);
    assert!(test.refusals[0].contains("t3.large is a Nitro type"));
}
