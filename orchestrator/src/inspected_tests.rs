//! The inspection against the file: settings filled in, contradictions at their FILE:LINE:COL.

use std::path::Path;

use rehost_replication::inspect::{OsInfo, Verdict};

use super::*;
use crate::replication_jobs::server_job;

fn app() -> App {
    let text = concat!(
        "apiVersion: rehost/v1\nkind: Application\nname: estate\n",
        "defaults:\n  launch: {instanceType: m5.large}\n",
        "servers:\n",
        "  - id: plain\n    os: linux\n    disks: [{source: a.img}]\n",
        "  - id: set\n    os: windows\n    architecture: arm64\n    bootMode: legacy-bios\n    disks: [{source: b.img}]\n",
        "groups:\n  - {name: all, servers: [plain, set]}\n",
    );
    crate::load::load_with(text.as_bytes(), Path::new("estate.yaml"), |_| {
        Default::default()
    })
    .unwrap()
    .app
}

fn found(
    server: &str,
    boot: Option<InspectedBootMode>,
    arch: Option<InspectedArch>,
    family: Option<OsFamily>,
) -> ServerInspection {
    ServerInspection {
        server: server.into(),
        verdict: Verdict::Ready,
        boot_mode: boot,
        architecture: arch,
        os: family.map(|family| OsInfo {
            family,
            name: "Some OS".into(),
            version: None,
        }),
        findings: Vec::new(),
        disks: Vec::new(),
    }
}

fn lines(app: &App, inspections: &[ServerInspection]) -> Vec<String> {
    let map = inspections
        .iter()
        .map(|i| (i.server.clone(), i.clone()))
        .collect();
    contradictions(app, &map)
        .iter()
        .map(|d| d.display(&app.file).to_string())
        .collect()
}

#[test]
fn unset_settings_come_from_the_inspection_and_unknown_leaves_the_default() {
    let app = app();
    let plain = app.server("plain").unwrap();
    let uefi_arm = found(
        "plain",
        Some(InspectedBootMode::Uefi),
        Some(InspectedArch::Arm64),
        Some(OsFamily::Linux),
    );
    let mut job = server_job(&app, plain, None);
    assert_eq!(
        (job.boot_mode, job.architecture),
        (None, Architecture::X86_64)
    );
    fill_ami_settings(&mut job, plain, &uefi_arm, false);
    assert_eq!(job.boot_mode, Some(BootMode::Uefi));
    assert_eq!(job.architecture, Architecture::Arm64);
    // --architecture wins over the inspection.
    let mut job = server_job(&app, plain, Some(Architecture::X86_64));
    fill_ami_settings(&mut job, plain, &uefi_arm, true);
    assert_eq!(job.architecture, Architecture::X86_64);
    // Nothing found: the file's value or the default stays.
    let mut job = server_job(&app, plain, None);
    fill_ami_settings(&mut job, plain, &found("plain", None, None, None), false);
    assert_eq!(
        (job.boot_mode, job.architecture),
        (None, Architecture::X86_64)
    );
    // Settings the file makes are never replaced.
    let set = app.server("set").unwrap();
    let mut job = server_job(&app, set, None);
    fill_ami_settings(&mut job, set, &uefi_arm, false);
    assert_eq!(job.boot_mode, Some(BootMode::LegacyBios));
    assert_eq!(job.architecture, Architecture::Arm64);
    assert!(
        lines(&app, &[uefi_arm]).is_empty(),
        "nothing is set on plain"
    );
}

#[test]
fn a_contradicting_setting_is_an_error_at_its_position() {
    let app = app();
    let other = found(
        "set",
        Some(InspectedBootMode::Uefi),
        Some(InspectedArch::X86_64),
        Some(OsFamily::Linux),
    );
    let got = lines(&app, &[other]);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(
        got[0].starts_with("estate.yaml:13:15: error: server set: bootMode legacy-bios contradicts its disks, which boot uefi"),
        "{got:#?}"
    );
    assert!(
        got[1].starts_with("estate.yaml:12:19: error: server set: architecture arm64 contradicts its disks, whose binaries are x86_64"),
        "{got:#?}"
    );
    assert!(
        got[2].starts_with(
            "estate.yaml:11:9: error: server set: os windows contradicts its disks, which hold linux"
        ),
        "{got:#?}"
    );
    // What fits, or what could not be told, is no contradiction.
    let fits = found(
        "set",
        Some(InspectedBootMode::UefiPreferred),
        Some(InspectedArch::Arm64),
        Some(OsFamily::Windows),
    );
    assert!(lines(&app, &[fits]).is_empty());
    assert!(lines(&app, &[found("set", None, None, None)]).is_empty());
}

#[test]
fn boot_modes_that_boot_the_disk_fit() {
    use BootMode as B;
    use InspectedBootMode as I;
    assert!(boot_mode_fits(B::Uefi, I::Uefi));
    assert!(boot_mode_fits(B::UefiPreferred, I::Uefi));
    assert!(!boot_mode_fits(B::LegacyBios, I::Uefi));
    assert!(boot_mode_fits(B::LegacyBios, I::LegacyBios));
    assert!(!boot_mode_fits(B::Uefi, I::LegacyBios));
    assert!(!boot_mode_fits(B::UefiPreferred, I::LegacyBios));
    for b in [B::Uefi, B::UefiPreferred, B::LegacyBios] {
        assert!(boot_mode_fits(b, I::UefiPreferred));
    }
}
