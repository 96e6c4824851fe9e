//! One test per rule of the verdict, starting from a server that is ready and changing one fact.

use super::*;
use crate::inspect::facts::{BootFacts, FstabEntry};

fn base(os: OsFacts) -> Facts {
    Facts {
        os: Some(os),
        boot: BootFacts {
            uefi_loader: Some("\\EFI\\BOOT\\BOOTX64.EFI".into()),
            table_read: true,
            ..Default::default()
        },
        os_machine: Some(("ntoskrnl.exe".into(), Machine::X86_64)),
        ..Default::default()
    }
}

fn present(start: u32) -> Option<Service> {
    Some(Service::Present {
        start,
        file: Some(true),
    })
}

fn win() -> WindowsFacts {
    WindowsFacts {
        location: "disk0 partition 3".into(),
        product: Some("Windows Server 2022 Datacenter".into()),
        version: Some("10.0.20348".into()),
        bits64: Some(true),
        aws_nvme: present(0),
        stornvme: present(3),
        ena: present(3),
        xen_storage: Some(Service::Missing),
        agent: Some(Agent::Found("EC2Launch v2".into())),
        ..Default::default()
    }
}

fn lin() -> LinuxFacts {
    LinuxFacts {
        location: "disk0 partition 1".into(),
        name: "Ubuntu".into(),
        version: Some("22.04".into()),
        kernels: vec!["5.15.0-91-generic".into()],
        default_kernel: Some("5.15.0-91-generic".into()),
        default_from: Some("/boot/grub/grub.cfg".into()),
        nvme: Some(Module::BuiltIn),
        ena: Some(Module::Tree),
        xen_blk: Some(Module::Tree),
        agent: Some(Agent::Found("cloud-init".into())),
        ..Default::default()
    }
}

fn windows_with(f: impl FnOnce(&mut WindowsFacts)) -> Evaluation {
    let mut w = win();
    f(&mut w);
    evaluate(&base(OsFacts::Windows(w)))
}

fn linux_with(f: impl FnOnce(&mut LinuxFacts)) -> Evaluation {
    let mut l = lin();
    f(&mut l);
    evaluate(&base(OsFacts::Linux(l)))
}

fn severity_of(e: &Evaluation, code: &str) -> Option<Severity> {
    e.findings
        .iter()
        .find(|f| f.code == code)
        .map(|f| f.severity)
}

#[test]
fn ready_servers() {
    let w = windows_with(|_| {});
    assert_eq!(w.verdict, Verdict::Ready);
    assert_eq!(w.boot_mode, Some(InspectedBootMode::Uefi));
    assert_eq!(w.architecture, Some(InspectedArch::X86_64));
    assert_eq!(w.os.as_ref().unwrap().family, OsFamily::Windows);
    assert!(
        w.findings.iter().all(|f| f.severity == Severity::Info),
        "{:#?}",
        w.findings
    );
    let l = linux_with(|_| {});
    assert_eq!(l.verdict, Verdict::Ready);
    assert!(
        l.findings.iter().all(|f| f.severity == Severity::Info),
        "{:#?}",
        l.findings
    );
}

#[test]
fn windows_nvme_rules() {
    let e = windows_with(|w| w.aws_nvme = Some(Service::Missing));
    assert_eq!(e.verdict, Verdict::WillNotBoot);
    assert_eq!(
        severity_of(&e, "nvme-driver-missing"),
        Some(Severity::Error)
    );
    let e = windows_with(|w| w.aws_nvme = present(3));
    assert_eq!(e.verdict, Verdict::WillNotBoot);
    assert_eq!(
        severity_of(&e, "nvme-driver-not-boot-start"),
        Some(Severity::Error)
    );
    let e = windows_with(|w| {
        w.aws_nvme = Some(Service::Present {
            start: 0,
            file: Some(false),
        })
    });
    assert_eq!(
        severity_of(&e, "nvme-driver-file-missing"),
        Some(Severity::Error)
    );
    assert_eq!(e.verdict, Verdict::WillNotBoot);
    let e = windows_with(|w| {
        w.aws_nvme = Some(Service::Missing);
        w.stornvme = present(0);
    });
    assert_eq!(e.verdict, Verdict::Ready);
    assert_eq!(
        severity_of(&e, "nvme-inbox-driver-only"),
        Some(Severity::Warning)
    );
    let e = windows_with(|w| w.aws_nvme = Some(Service::Unknown("SYSTEM hive unreadable".into())));
    assert_eq!(e.verdict, Verdict::Unknown);
    assert_eq!(
        severity_of(&e, "nvme-driver-unknown"),
        Some(Severity::Warning)
    );
}

#[test]
fn windows_ena_rules() {
    let e = windows_with(|w| w.ena = Some(Service::Missing));
    assert_eq!(
        (e.verdict, severity_of(&e, "ena-driver-missing")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = windows_with(|w| w.ena = present(4));
    assert_eq!(
        (e.verdict, severity_of(&e, "ena-driver-disabled")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = windows_with(|w| {
        w.ena = Some(Service::Present {
            start: 3,
            file: Some(false),
        })
    });
    assert_eq!(
        severity_of(&e, "ena-driver-file-missing"),
        Some(Severity::Error)
    );
    let e = windows_with(|w| w.ena = Some(Service::Unknown("x".into())));
    assert_eq!(e.verdict, Verdict::Unknown);
}

#[test]
fn windows_xen_agent_and_bitness_rules() {
    let e = windows_with(|w| {
        w.aws_nvme = Some(Service::Missing);
        w.ena = Some(Service::Missing);
        w.xen_storage = present(0);
    });
    assert_eq!(e.verdict, Verdict::XenOnly);
    assert_eq!(severity_of(&e, "xen-pv-drivers"), Some(Severity::Info));
    let e = windows_with(|w| w.agent = Some(Agent::Missing));
    assert_eq!(
        (e.verdict, severity_of(&e, "no-agent")),
        (Verdict::NoAgent, Some(Severity::Error))
    );
    let e = windows_with(|w| {
        w.agent = Some(Agent::Disabled(
            "the EC2Launch v2 service is disabled".into(),
        ))
    });
    assert_eq!(e.verdict, Verdict::NoAgent);
    assert!(
        e.findings
            .iter()
            .any(|f| f.code == "no-agent" && f.message.contains("disabled"))
    );
    let e = windows_with(|w| w.agent = Some(Agent::Unknown("x".into())));
    assert_eq!(e.verdict, Verdict::Unknown);
    let e = windows_with(|w| w.bits64 = Some(false));
    assert_eq!(e.verdict, Verdict::WillNotBoot, "32-bit and no Xen drivers");
    let e = windows_with(|w| w.hive_dirty = true);
    assert_eq!(
        (e.verdict, severity_of(&e, "hive-dirty")),
        (Verdict::Ready, Some(Severity::Info))
    );
}

#[test]
fn linux_storage_rules() {
    let e = linux_with(|l| l.nvme = Some(Module::Tree));
    assert_eq!(
        (e.verdict, severity_of(&e, "nvme-not-in-initramfs")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = linux_with(|l| l.nvme = Some(Module::Missing));
    assert_eq!(
        (e.verdict, severity_of(&e, "nvme-driver-missing")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = linux_with(|l| l.nvme = Some(Module::Initramfs));
    assert_eq!(e.verdict, Verdict::Ready);
    let e = linux_with(|l| l.nvme = Some(Module::Unknown("initramfs compressed with lz4".into())));
    assert_eq!(
        (e.verdict, severity_of(&e, "nvme-driver-unknown")),
        (Verdict::Unknown, Some(Severity::Warning))
    );
    let e = linux_with(|l| {
        l.nvme = Some(Module::Missing);
        l.xen_blk = Some(Module::Initramfs);
    });
    assert_eq!(e.verdict, Verdict::XenOnly);
    let e = linux_with(|l| {
        l.nvme = Some(Module::Missing);
        l.xen_blk = Some(Module::Unknown("x".into()));
    });
    assert_eq!(e.verdict, Verdict::Unknown);
}

#[test]
fn linux_network_agent_and_kernel_rules() {
    let e = linux_with(|l| l.ena = Some(Module::Missing));
    assert_eq!(
        (e.verdict, severity_of(&e, "ena-driver-missing")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = linux_with(|l| l.agent = Some(Agent::Disabled("cloud-init is disabled".into())));
    assert_eq!(e.verdict, Verdict::NoAgent);
    let e = linux_with(|l| l.agent = Some(Agent::Missing));
    assert_eq!(e.verdict, Verdict::NoAgent);
    let e = linux_with(|l| {
        l.default_kernel = None;
        l.kernels.clear();
    });
    assert_eq!(
        (e.verdict, severity_of(&e, "no-kernel")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = linux_with(|l| l.default_from = None);
    assert_eq!(
        (e.verdict, severity_of(&e, "default-kernel-guessed")),
        (Verdict::Ready, Some(Severity::Warning))
    );
}

#[test]
fn linux_device_name_rules() {
    let entry = |spec: &str, mp: &str, fstype: &str, nofail| FstabEntry {
        spec: spec.into(),
        mountpoint: mp.into(),
        fstype: fstype.into(),
        nofail,
    };
    let e = linux_with(|l| l.fstab_device_names = vec![entry("/dev/sda1", "/", "ext4", false)]);
    assert_eq!(
        (e.verdict, severity_of(&e, "fstab-device-name")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
    let e = linux_with(|l| {
        l.fstab_device_names = vec![entry("/dev/sda1", "/", "ext4", false)];
        l.xen_blk = Some(Module::BuiltIn);
    });
    assert_eq!(e.verdict, Verdict::XenOnly);
    let e = linux_with(|l| {
        l.fstab_device_names = vec![
            entry("/dev/xvdb", "/data", "xfs", true),
            entry("/dev/sdb2", "none", "swap", false),
        ]
    });
    assert_eq!(
        (e.verdict, severity_of(&e, "fstab-device-name")),
        (Verdict::Ready, Some(Severity::Warning))
    );
    let e = linux_with(|l| l.root_device_name = Some("/dev/xvda1".into()));
    assert_eq!(
        (e.verdict, severity_of(&e, "root-device-name")),
        (Verdict::WillNotBoot, Some(Severity::Error))
    );
}

#[test]
fn boot_mode_rules() {
    let mut f = base(OsFacts::Linux(lin()));
    f.boot.bios = Some("MBR boot code and an active partition".into());
    assert_eq!(
        evaluate(&f).boot_mode,
        Some(InspectedBootMode::UefiPreferred)
    );
    f.boot.uefi_loader = None;
    assert_eq!(evaluate(&f).boot_mode, Some(InspectedBootMode::LegacyBios));
    f.boot.bios = None;
    let e = evaluate(&f);
    assert_eq!(
        (e.verdict, e.boot_mode, severity_of(&e, "no-boot-loader")),
        (Verdict::WillNotBoot, None, Some(Severity::Error))
    );
    f.boot.esp_unreadable = Some("cluster chain loops".into());
    let e = evaluate(&f);
    assert_eq!(
        (e.verdict, severity_of(&e, "boot-mode-unknown")),
        (Verdict::Unknown, Some(Severity::Warning))
    );
    assert_eq!(severity_of(&e, "esp-unreadable"), Some(Severity::Warning));
    f.boot.esp_unreadable = None;
    f.boot.table_read = false;
    assert_eq!(evaluate(&f).verdict, Verdict::Unknown);
}

#[test]
fn architecture_rules() {
    let mut f = base(OsFacts::Linux(lin()));
    f.os_machine = None;
    f.loader_machine = Some(Machine::Arm64);
    let e = evaluate(&f);
    assert_eq!(
        (e.architecture, e.verdict),
        (Some(InspectedArch::Arm64), Verdict::Ready)
    );
    f.loader_machine = None;
    let e = evaluate(&f);
    assert_eq!(
        (
            e.architecture,
            e.verdict,
            severity_of(&e, "architecture-unknown")
        ),
        (None, Verdict::Unknown, Some(Severity::Warning))
    );
    f.os_machine = Some(("/bin/sh".into(), Machine::I386));
    let e = evaluate(&f);
    assert_eq!(
        (e.architecture, e.verdict, severity_of(&e, "32-bit-os")),
        (None, Verdict::WillNotBoot, Some(Severity::Error))
    );
    f.os_machine = Some(("/bin/sh".into(), Machine::X86_64));
    f.loader_machine = Some(Machine::Arm64);
    assert_eq!(
        severity_of(&evaluate(&f), "architecture-mismatch"),
        Some(Severity::Warning)
    );
}

#[test]
fn no_system_found_damaged_disks_and_dynamic_disks() {
    let f = Facts {
        unreadable: vec!["disk0 partition 1 holds XFS, which rehost cannot read yet".into()],
        dynamic_disk: true,
        ..Default::default()
    };
    let e = evaluate(&f);
    assert_eq!((e.verdict, e.os.clone()), (Verdict::Unknown, None));
    assert!(
        e.findings
            .iter()
            .any(|x| x.code == "os-not-found" && x.message.contains("XFS"))
    );
    assert_eq!(
        severity_of(&e, "windows-dynamic-disk"),
        Some(Severity::Warning)
    );
    let mut f = base(OsFacts::Linux(lin()));
    f.damaged = true;
    f.problems
        .push("disk0: partition 1 ends past the end of the disk".into());
    let e = evaluate(&f);
    assert_eq!(
        (e.verdict, severity_of(&e, "disk-problem")),
        (Verdict::Unknown, Some(Severity::Warning))
    );
}

#[test]
fn every_error_and_warning_says_what_to_do() {
    let mut cases = vec![
        windows_with(|w| {
            w.aws_nvme = Some(Service::Missing);
            w.ena = Some(Service::Missing);
            w.agent = Some(Agent::Missing);
        }),
        linux_with(|l| {
            l.nvme = Some(Module::Tree);
            l.ena = Some(Module::Missing);
            l.agent = Some(Agent::Missing);
            l.root_device_name = Some("/dev/sda1".into());
        }),
    ];
    cases.push(evaluate(&Facts::default()));
    for e in cases {
        for f in &e.findings {
            assert_eq!(f.fix.is_some(), f.severity != Severity::Info, "{f:?}");
        }
    }
}
