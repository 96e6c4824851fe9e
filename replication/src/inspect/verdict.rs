//! The verdict: a pure function of the facts. It asks "does it boot on a Nitro instance type?",
//! then "on a Xen one?", then "does anything run user data?", and says for every finding what
//! to do. A blind spot (a fact that could not be read) makes `unknown`, never a guess.
//!
//! Size: ~650 lines: the Windows and Linux rules are read together (the same questions asked of
//! both families); the tests are already in `verdict_tests.rs`.

use super::binfmt::Machine;
use super::facts::{Agent, Facts, LinuxFacts, Module, OsFacts, Service, WindowsFacts};
use super::report::{
    Finding, InspectedArch, InspectedBootMode, OsFamily, OsInfo, Severity, Verdict,
};

const WIN_SCRIPT: &str = "launch-scripts/prepare/prepare-windows-for-ec2.ps1";
const LINUX_SCRIPT: &str = "launch-scripts/prepare/prepare-linux-for-ec2.sh";

/// Yes, no, or could not tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Unknown,
}

fn all(items: &[Tri]) -> Tri {
    if items.contains(&Tri::No) {
        Tri::No
    } else if items.contains(&Tri::Unknown) {
        Tri::Unknown
    } else {
        Tri::Yes
    }
}

/// The verdict and what the report says besides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub verdict: Verdict,
    pub boot_mode: Option<InspectedBootMode>,
    pub architecture: Option<InspectedArch>,
    pub os: Option<OsInfo>,
    pub findings: Vec<Finding>,
}

struct Out(Vec<Finding>);

impl Out {
    fn add(&mut self, code: &str, severity: Severity, message: String, fix: Option<String>) {
        self.0.push(Finding {
            code: code.into(),
            severity,
            message,
            fix,
        });
    }
    fn error(&mut self, code: &str, message: String, fix: impl Into<String>) {
        self.add(code, Severity::Error, message, Some(fix.into()));
    }
    fn warning(&mut self, code: &str, message: String, fix: impl Into<String>) {
        self.add(code, Severity::Warning, message, Some(fix.into()));
    }
    fn info(&mut self, code: &str, message: String) {
        self.add(code, Severity::Info, message, None);
    }
}

pub fn evaluate(f: &Facts) -> Evaluation {
    let mut out = Out(Vec::new());
    for p in &f.problems {
        out.warning(
            "disk-problem",
            p.clone(),
            "check the image: it may be damaged or truncated",
        );
    }
    let (boot_mode, boot_ok) = boot_mode(f, &mut out);
    let (architecture, arch64) = architecture(f, &mut out);

    let Some(os) = &f.os else {
        if f.dynamic_disk {
            out.warning(
                "windows-dynamic-disk",
                "the disk is a Windows dynamic disk (LDM), which rehost cannot read".into(),
                "convert it to a basic disk on the source, or check the server by hand",
            );
        }
        let why = if f.unreadable.is_empty() {
            "no Windows or Linux system volume on any disk".to_string()
        } else {
            format!("no readable system volume: {}", f.unreadable.join("; "))
        };
        out.warning(
            "os-not-found",
            why,
            "check the disks in the application file; set bootMode and architecture there",
        );
        return Evaluation {
            verdict: Verdict::Unknown,
            boot_mode,
            architecture,
            os: None,
            findings: out.0,
        };
    };
    for u in &f.unreadable {
        out.info("volume-unreadable", u.clone());
    }
    let (info, checks) = match os {
        OsFacts::Windows(w) => windows(w, &mut out),
        OsFacts::Linux(l) => linux(l, &mut out),
    };
    let nitro = all(&[
        checks.nitro_storage,
        checks.nitro_network,
        arch64,
        checks.nitro_other,
    ]);
    let verdict = if boot_ok == Tri::No || checks.bootable == Tri::No {
        Verdict::WillNotBoot
    } else {
        match nitro {
            Tri::Yes => match checks.agent {
                Tri::Yes => Verdict::Ready,
                Tri::No => Verdict::NoAgent,
                Tri::Unknown => Verdict::Unknown,
            },
            Tri::No => match checks.xen {
                Tri::Yes => Verdict::XenOnly,
                Tri::No => Verdict::WillNotBoot,
                Tri::Unknown => Verdict::Unknown,
            },
            Tri::Unknown => Verdict::Unknown,
        }
    };
    let blind = boot_ok == Tri::Unknown || checks.bootable == Tri::Unknown || f.damaged;
    let verdict = if verdict != Verdict::WillNotBoot && blind {
        Verdict::Unknown
    } else {
        verdict
    };
    Evaluation {
        verdict,
        boot_mode,
        architecture,
        os: Some(info),
        findings: out.0,
    }
}

fn boot_mode(f: &Facts, out: &mut Out) -> (Option<InspectedBootMode>, Tri) {
    let b = &f.boot;
    let mode = match (&b.uefi_loader, &b.bios) {
        (Some(_), Some(_)) => Some(InspectedBootMode::UefiPreferred),
        (Some(_), None) => Some(InspectedBootMode::Uefi),
        (None, Some(_)) => Some(InspectedBootMode::LegacyBios),
        (None, None) => None,
    };
    if let Some(l) = &b.uefi_loader {
        out.info("uefi-loader", format!("UEFI boot loader {l}"));
    } else if let Some(why) = &b.esp_unreadable {
        out.warning(
            "esp-unreadable",
            format!("the EFI system partition could not be read: {why}"),
            "check the EFI system partition on the source (fsck.vfat)",
        );
    }
    if let Some(bios) = &b.bios {
        out.info("bios-boot", format!("BIOS boot: {bios}"));
    }
    if mode.is_some() {
        return (mode, Tri::Yes);
    }
    if b.esp_unreadable.is_some() {
        out.warning(
            "boot-mode-unknown",
            "no BIOS boot code, and the EFI system partition could not be read".into(),
            "set bootMode for the server in the application file",
        );
        return (None, Tri::Unknown);
    }
    if !b.table_read {
        out.warning(
            "boot-mode-unknown",
            "the boot disk could not be read, so its boot mode is unknown".into(),
            "set bootMode for the server in the application file",
        );
        return (None, Tri::Unknown);
    }
    out.error(
        "no-boot-loader",
        "the boot disk has neither BIOS boot code nor a UEFI boot loader on an EFI system partition"
            .into(),
        "check that disk0 is the boot disk; reinstall the boot loader on the source",
    );
    (None, Tri::No)
}

fn architecture(f: &Facts, out: &mut Out) -> (Option<InspectedArch>, Tri) {
    let from = |m: Machine| match m {
        Machine::X86_64 => Some(InspectedArch::X86_64),
        Machine::Arm64 => Some(InspectedArch::Arm64),
        _ => None,
    };
    if let Some((what, m)) = &f.os_machine {
        if let Some(loader) = f.loader_machine
            && loader != *m
            && from(loader).is_some()
        {
            out.warning(
                "architecture-mismatch",
                format!(
                    "{what} is {} but the UEFI loader is {}",
                    m.name(),
                    loader.name()
                ),
                "check the disks belong to one server",
            );
        }
        return match from(*m) {
            Some(a) => (Some(a), Tri::Yes),
            None if matches!(m, Machine::I386 | Machine::Arm32) => {
                out.error(
                    "32-bit-os",
                    format!("{what} is {}: Nitro instance types run 64-bit systems only", m.name()),
                    "upgrade the server to a 64-bit system; 32-bit guests run on Xen types (t2, m3, c3) only",
                );
                (None, Tri::No)
            }
            None => {
                out.error(
                    "unsupported-architecture",
                    format!("{what} is for {}, which EC2 does not run", m.name()),
                    "rehost moves x86_64 and arm64 servers only",
                );
                (None, Tri::No)
            }
        };
    }
    if let Some(a) = f.loader_machine.and_then(from) {
        out.info(
            "architecture-from-loader",
            format!("architecture {} from the UEFI loader", a.as_str()),
        );
        return (Some(a), Tri::Yes);
    }
    out.warning(
        "architecture-unknown",
        "no binary of the system could be read to tell its architecture".into(),
        "set architecture for the server in the application file",
    );
    (None, Tri::Unknown)
}

/// What the OS-specific rules decide.
struct Checks {
    nitro_storage: Tri,
    nitro_network: Tri,
    /// Other conditions of a Nitro boot (device names in fstab or on the kernel command line).
    nitro_other: Tri,
    xen: Tri,
    agent: Tri,
    /// A kernel to boot at all.
    bootable: Tri,
}

fn service_start(s: &Service) -> Option<u32> {
    match s {
        Service::Present { start, .. } => Some(*start),
        _ => None,
    }
}

fn windows(w: &WindowsFacts, out: &mut Out) -> (OsInfo, Checks) {
    let name = w.product.clone().unwrap_or_else(|| "Windows".into());
    found_os(
        out,
        &name,
        &w.version,
        &w.location,
        &w.unreadable,
        "windows-unreadable",
    );
    if w.hive_dirty {
        out.info(
            "hive-dirty",
            "a registry hive has unapplied transaction logs (the image was taken from a running system); recent changes may be missing".into(),
        );
    }
    let drivers_fix = format!(
        "install the AWS NVMe and ENA drivers on the source (AWS packages AWSNVMe and AWS ENA; {WIN_SCRIPT} installs them from the packages you download)"
    );
    let unknown = |s: &Option<Service>| match s {
        None => Some("not checked".to_string()),
        Some(Service::Unknown(r)) => Some(r.clone()),
        _ => None,
    };
    // Storage: AWSNVMe boot-start, or Microsoft's inbox stornvme boot-start.
    let nitro_storage = match (&w.aws_nvme, &w.stornvme) {
        (
            Some(Service::Present {
                start: 0,
                file: Some(false),
            }),
            _,
        ) => {
            out.error(
                "nvme-driver-file-missing",
                "the AWSNVMe service is registered but its driver file is missing: Windows stops at INACCESSIBLE_BOOT_DEVICE on Nitro instance types".into(),
                drivers_fix.clone(),
            );
            Tri::No
        }
        (Some(Service::Present { start: 0, .. }), _) => {
            out.info(
                "nvme-driver",
                "AWS NVMe driver (AWSNVMe) starts at boot".into(),
            );
            Tri::Yes
        }
        (Some(Service::Present { start, .. }), _) => {
            out.error(
                "nvme-driver-not-boot-start",
                format!("the AWSNVMe driver has Start={start}, not 0 (boot): Windows stops at INACCESSIBLE_BOOT_DEVICE on Nitro instance types"),
                format!("set HKLM\\SYSTEM\\CurrentControlSet\\Services\\AWSNVMe\\Start to 0 on the source, or reinstall the driver ({WIN_SCRIPT})"),
            );
            Tri::No
        }
        (Some(Service::Missing), Some(Service::Present { start: 0, .. })) => {
            out.warning(
                "nvme-inbox-driver-only",
                "only Microsoft's inbox NVMe driver (stornvme) starts at boot; AWS recommends its own NVMe driver on Nitro".into(),
                drivers_fix.clone(),
            );
            Tri::Yes
        }
        (Some(Service::Missing), Some(Service::Missing | Service::Present { .. })) => {
            out.error(
                "nvme-driver-missing",
                "no NVMe storage driver starts at boot (AWSNVMe missing): Windows stops at INACCESSIBLE_BOOT_DEVICE on every Nitro instance type".into(),
                drivers_fix.clone(),
            );
            Tri::No
        }
        (a, b) => {
            let why = unknown(a).or_else(|| unknown(b)).unwrap_or_default();
            out.warning(
                "nvme-driver-unknown",
                format!("NVMe driver state unknown: {why}"),
                "check the source by hand",
            );
            Tri::Unknown
        }
    };
    let nitro_network = match &w.ena {
        Some(Service::Present { start: 4, .. }) => {
            out.error(
                "ena-driver-disabled",
                "the ENA network driver is disabled (Start=4): no network on Nitro instance types"
                    .into(),
                "set HKLM\\SYSTEM\\CurrentControlSet\\Services\\ena\\Start to 3 on the source",
            );
            Tri::No
        }
        Some(Service::Present {
            file: Some(false), ..
        }) => {
            out.error(
                "ena-driver-file-missing",
                "the ena service is registered but its driver file is missing: no network on Nitro instance types".into(),
                drivers_fix.clone(),
            );
            Tri::No
        }
        Some(Service::Present { .. }) => {
            out.info("ena-driver", "ENA network driver installed".into());
            Tri::Yes
        }
        Some(Service::Missing) => {
            out.error(
                "ena-driver-missing",
                "the ENA network driver is not installed: no network on Nitro instance types"
                    .into(),
                drivers_fix.clone(),
            );
            Tri::No
        }
        other => {
            out.warning(
                "ena-driver-unknown",
                format!(
                    "ENA driver state unknown: {}",
                    unknown(other).unwrap_or_default()
                ),
                "check the source by hand",
            );
            Tri::Unknown
        }
    };
    let xen = match &w.xen_storage {
        Some(s @ Service::Present { .. }) if service_start(s) == Some(0) => {
            out.info(
                "xen-pv-drivers",
                "Xen PV storage driver starts at boot: the server boots on Xen instance types (t2, m4, c4, r4...)".into(),
            );
            Tri::Yes
        }
        Some(Service::Present { .. } | Service::Missing) => Tri::No,
        _ => Tri::Unknown,
    };
    let agent = agent(
        &w.agent,
        out,
        "Windows",
        "install EC2Launch v2 on the source (AWS package; the prepare script installs it from the MSI you download), or launch with --no-health-gate",
    );
    let bits = match w.bits64 {
        Some(false) => Tri::No,
        _ => Tri::Yes,
    };
    (
        OsInfo {
            family: OsFamily::Windows,
            name,
            version: w.version.clone(),
        },
        Checks {
            nitro_storage,
            nitro_network,
            nitro_other: bits,
            xen,
            agent,
            bootable: Tri::Yes,
        },
    )
}

/// The system found, and what of it could not be read.
fn found_os(
    out: &mut Out,
    name: &str,
    version: &Option<String>,
    location: &str,
    unreadable: &[String],
    code: &str,
) {
    let version = version
        .as_ref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    out.info("os", format!("{name}{version} on {location}"));
    for u in unreadable {
        out.warning(
            code,
            u.clone(),
            "check the system's volumes: they may be damaged",
        );
    }
}

fn agent(a: &Option<Agent>, out: &mut Out, os: &str, fix: &str) -> Tri {
    match a {
        Some(Agent::Found(name)) => {
            out.info("user-data-agent", format!("{name} runs user data at boot"));
            Tri::Yes
        }
        Some(Agent::Disabled(why)) => {
            out.error(
                "no-agent",
                format!("{why}: user data never runs, so the configure script and the health gate cannot work"),
                fix,
            );
            Tri::No
        }
        Some(Agent::Missing) => {
            out.error(
                "no-agent",
                format!("no {os} agent that runs user data is installed, so the configure script and the health gate cannot work"),
                fix,
            );
            Tri::No
        }
        Some(Agent::Unknown(why)) => {
            out.warning(
                "agent-unknown",
                format!("user-data agent unknown: {why}"),
                "check the source by hand",
            );
            Tri::Unknown
        }
        None => Tri::Unknown,
    }
}

fn linux(l: &LinuxFacts, out: &mut Out) -> (OsInfo, Checks) {
    found_os(
        out,
        &l.name,
        &l.version,
        &l.location,
        &l.unreadable,
        "linux-unreadable",
    );
    let initramfs_fix = format!(
        "add nvme to the initramfs on the source: RHEL/SUSE `dracut -f --add-drivers \"nvme nvme_core\"`, Debian/Ubuntu `echo nvme >> /etc/initramfs-tools/modules && update-initramfs -u`, Arch `mkinitcpio -P` with nvme in MODULES ({LINUX_SCRIPT} does it)"
    );
    let bootable = match (&l.default_kernel, l.kernels.is_empty()) {
        (Some(k), _) => {
            match &l.default_from {
                Some(src) => out.info("default-kernel", format!("default kernel {k} (from {src})")),
                None => out.warning(
                    "default-kernel-guessed",
                    format!("the boot loader configuration could not be read; assuming the newest kernel {k} boots"),
                    "check the boot loader's default entry on the source",
                ),
            }
            Tri::Yes
        }
        (None, true) => {
            out.error(
                "no-kernel",
                "no kernel under /boot or /lib/modules".into(),
                "check that the disks hold the whole system (is /boot on another disk?)",
            );
            Tri::No
        }
        (None, false) => Tri::Unknown,
    };
    let kernel = l.default_kernel.as_deref().unwrap_or("the default kernel");
    let nitro_storage = match &l.nvme {
        Some(Module::BuiltIn) => {
            out.info("nvme-driver", format!("nvme is built into {kernel}"));
            Tri::Yes
        }
        Some(Module::Initramfs) => {
            out.info(
                "nvme-driver",
                format!("nvme is in the initramfs of {kernel}"),
            );
            Tri::Yes
        }
        Some(Module::Tree) => {
            out.error(
                "nvme-not-in-initramfs",
                format!("nvme is a module of {kernel} but not in its initramfs{}: the root disk is not found on Nitro instance types", l.initramfs.as_ref().map(|i| format!(" ({i})")).unwrap_or_default()),
                initramfs_fix.clone(),
            );
            Tri::No
        }
        Some(Module::Missing) => {
            out.error(
                "nvme-driver-missing",
                format!("{kernel} has no nvme driver: the root disk is not found on Nitro instance types"),
                "install a kernel with the nvme driver (any distribution kernel since 3.x), then rebuild its initramfs",
            );
            Tri::No
        }
        Some(Module::Unknown(why)) => {
            out.warning(
                "nvme-driver-unknown",
                format!("nvme driver state unknown: {why}"),
                initramfs_fix.clone(),
            );
            Tri::Unknown
        }
        None => Tri::Unknown,
    };
    let nitro_network = match &l.ena {
        Some(Module::BuiltIn | Module::Initramfs | Module::Tree) => {
            out.info("ena-driver", format!("ena is available to {kernel}"));
            Tri::Yes
        }
        Some(Module::Missing) => {
            out.error(
                "ena-driver-missing",
                format!("{kernel} has no ena module: no network on Nitro instance types"),
                "install the ENA driver (kernel 4.9+ or AWS's amzn-drivers DKMS package) on the source",
            );
            Tri::No
        }
        Some(Module::Unknown(why)) => {
            out.warning(
                "ena-driver-unknown",
                format!("ena driver state unknown: {why}"),
                "check the source by hand",
            );
            Tri::Unknown
        }
        None => Tri::Unknown,
    };
    let xen = match &l.xen_blk {
        Some(Module::BuiltIn | Module::Initramfs) => {
            out.info(
                "xen-pv-drivers",
                format!("xen-blkfront is available at boot in {kernel}: boots on Xen instance types (t2, m4, c4, r4...)"),
            );
            Tri::Yes
        }
        Some(Module::Tree | Module::Missing) => Tri::No,
        _ => Tri::Unknown,
    };
    let mut nitro_other = Tri::Yes;
    for e in &l.fstab_device_names {
        let blocking = !e.nofail && e.fstype != "swap";
        let message = format!(
            "/etc/fstab mounts {} by kernel device name {}: on Nitro instance types disks are /dev/nvme*n*, so {}",
            e.mountpoint,
            e.spec,
            if blocking {
                "boot stops in emergency mode"
            } else {
                "it is not mounted"
            }
        );
        let fix = format!(
            "mount by UUID= or LABEL= instead on the source ({LINUX_SCRIPT} rewrites /etc/fstab)"
        );
        if blocking {
            nitro_other = Tri::No;
            out.error("fstab-device-name", message, fix);
        } else {
            out.warning("fstab-device-name", message, fix);
        }
    }
    if let Some(root) = &l.root_device_name {
        nitro_other = Tri::No;
        out.error(
            "root-device-name",
            format!("the kernel command line says root={root}: on Nitro instance types the root disk is /dev/nvme0n1"),
            "set root=UUID=... in the boot loader configuration on the source",
        );
    }
    let agent = agent(
        &l.agent,
        out,
        "Linux",
        "install and enable cloud-init with the Ec2 datasource on the source, or launch with --no-health-gate",
    );
    (
        OsInfo {
            family: OsFamily::Linux,
            name: l.name.clone(),
            version: l.version.clone(),
        },
        Checks {
            nitro_storage,
            nitro_network,
            nitro_other,
            xen,
            agent,
            bootable,
        },
    )
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
