//! Guest inspection against real disk images built without root (sfdisk, mkfs.ext4 -d,
//! mkfs.fat + mcopy, mkntfs + ntfs-3g, mkfs.xfs, cpio + gzip/xz/zstd, hive and LVM writers from
//! the test kit), each read as raw, qcow2, VMDK and VHDX: the same answer every time.

use std::path::{Path, PathBuf};
use std::process::Command;

use rehost_replication::DiskJob;
use rehost_replication::inspect::{
    InspectedArch, InspectedBootMode, Limits, OsFamily, ServerInspection, Severity, Verdict,
    inspect_server,
};
use rehost_replication::source::QemuTools;
use rehost_testkit::guest::images::{self, WindowsSpec};
use rehost_testkit::guest::tools::{MIB, convert, peek, poke};
use rehost_testkit::scratch_dir;

/// Inspects `raw` and its qcow2, VMDK and VHDX conversions; all four must agree.
fn inspect(raw: &Path) -> ServerInspection {
    let tools = QemuTools::default();
    let limits = Limits::default();
    let first =
        inspect_server("srv", &disks(&[raw.to_path_buf()]), &tools, &limits).expect("opens");
    for format in ["qcow2", "vmdk", "vhdx"] {
        let image = convert(raw, format);
        let other = inspect_server("srv", &disks(std::slice::from_ref(&image)), &tools, &limits)
            .expect("opens");
        assert_eq!(other, first, "{format} differs from raw");
        let _ = std::fs::remove_file(image);
    }
    first
}

/// The disks of a server made of these images, in their extensions' formats.
fn disks(paths: &[PathBuf]) -> Vec<DiskJob> {
    DiskJob::implied_all(paths).expect("test images carry their format's extension")
}

fn codes(r: &ServerInspection) -> Vec<&str> {
    r.findings.iter().map(|f| f.code.as_str()).collect()
}

fn has(r: &ServerInspection, code: &str, severity: Severity) -> bool {
    r.findings
        .iter()
        .any(|f| f.code == code && f.severity == severity)
}

fn dir(name: &str) -> PathBuf {
    scratch_dir("inspect", name)
}

#[test]
fn windows_uefi_with_aws_drivers_and_ec2launch_v2_is_ready() {
    let d = dir("win-ready");
    let raw = images::windows_image(&d, "win", &WindowsSpec::ready(true));
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Ready, "{:#?}", r.findings);
    assert_eq!(r.boot_mode, Some(InspectedBootMode::Uefi));
    assert_eq!(r.architecture, Some(InspectedArch::X86_64));
    let os = r.os.as_ref().unwrap();
    assert_eq!(os.family, OsFamily::Windows);
    assert_eq!(os.name, "Windows Server 2019 Datacenter");
    assert_eq!(os.version.as_deref(), Some("10.0.17763"));
    assert_eq!(r.disks[0].partition_table, "gpt");
    let kinds: Vec<(&str, Option<&str>)> = r.disks[0]
        .partitions
        .iter()
        .map(|p| (p.kind.as_str(), p.filesystem.as_deref()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("efi-system", Some("vfat")),
            ("microsoft-reserved", None),
            ("microsoft-basic-data", Some("ntfs"))
        ]
    );
    assert_eq!(r.disks[0].partitions[0].start, MIB);
    assert!(codes(&r).contains(&"user-data-agent"));
}

#[test]
fn windows_bios_without_drivers_or_agent_will_not_boot() {
    let d = dir("win-bare");
    let raw = images::windows_image(&d, "win", &WindowsSpec::default());
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::WillNotBoot, "{:#?}", r.findings);
    assert_eq!(r.boot_mode, Some(InspectedBootMode::LegacyBios));
    assert_eq!(r.disks[0].partition_table, "mbr");
    for code in ["nvme-driver-missing", "ena-driver-missing", "no-agent"] {
        assert!(
            has(&r, code, Severity::Error),
            "{code} in {:#?}",
            r.findings
        );
    }
    assert!(
        r.findings
            .iter()
            .all(|f| f.severity != Severity::Error || f.fix.is_some())
    );
}

#[test]
fn windows_with_drivers_but_no_agent_is_no_agent() {
    let d = dir("win-noagent");
    let raw = images::windows_image(
        &d,
        "win",
        &WindowsSpec {
            uefi: true,
            aws_nvme: true,
            ena: true,
            ..Default::default()
        },
    );
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::NoAgent, "{:#?}", r.findings);
    assert!(has(&r, "no-agent", Severity::Error));
}

#[test]
fn windows_with_xen_pv_drivers_only_is_xen_only() {
    let d = dir("win-xen");
    let raw = images::windows_image(
        &d,
        "win",
        &WindowsSpec {
            xen_pv: true,
            ec2launch_v2: true,
            ..Default::default()
        },
    );
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::XenOnly, "{:#?}", r.findings);
    assert!(has(&r, "nvme-driver-missing", Severity::Error));
    assert!(has(&r, "xen-pv-drivers", Severity::Info));
}

#[test]
fn debian_with_nvme_built_in_ena_and_cloud_init_is_ready() {
    let d = dir("debian");
    let raw = images::debian_image(&d, "debian", 64 * MIB);
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Ready, "{:#?}", r.findings);
    assert_eq!(r.boot_mode, Some(InspectedBootMode::UefiPreferred));
    assert_eq!(r.architecture, Some(InspectedArch::X86_64));
    let os = r.os.as_ref().unwrap();
    assert_eq!(
        (os.family, os.name.as_str(), os.version.as_deref()),
        (OsFamily::Linux, "Debian GNU/Linux", Some("12"))
    );
    let kernel = r
        .findings
        .iter()
        .find(|f| f.code == "default-kernel")
        .expect("default kernel");
    assert!(
        kernel.message.contains("6.1.0-18-amd64") && kernel.message.contains("/boot/grub/grub.cfg"),
        "{}",
        kernel.message
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "nvme-driver" && f.message.contains("built into"))
    );
    let kinds: Vec<&str> = r.disks[0]
        .partitions
        .iter()
        .map(|p| p.kind.as_str())
        .collect();
    assert_eq!(kinds, ["bios-boot", "efi-system", "linux-filesystem"]);
}

#[test]
fn old_rhel_with_xen_drivers_and_sda_in_fstab_is_xen_only() {
    let d = dir("rhel6");
    let raw = images::rhel6_image(&d, "rhel6");
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::XenOnly, "{:#?}", r.findings);
    assert_eq!(r.boot_mode, Some(InspectedBootMode::LegacyBios));
    let os = r.os.as_ref().unwrap();
    assert_eq!(
        (os.name.as_str(), os.version.as_deref()),
        ("Red Hat Enterprise Linux Server", Some("6.10"))
    );
    assert!(
        has(&r, "nvme-not-in-initramfs", Severity::Error)
            || has(&r, "nvme-driver-missing", Severity::Error),
        "{:#?}",
        r.findings
    );
    assert!(has(&r, "ena-driver-missing", Severity::Error));
    let fstab: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.code == "fstab-device-name")
        .map(|f| f.message.as_str())
        .collect();
    assert!(
        fstab
            .iter()
            .any(|m| m.contains("/dev/sda1") && m.contains("emergency")),
        "{fstab:?}"
    );
    assert!(
        has(&r, "fstab-device-name", Severity::Warning),
        "the swap line is a warning"
    );
    let xen = r
        .findings
        .iter()
        .find(|f| f.code == "xen-pv-drivers")
        .expect("xen drivers seen in the gzip initramfs");
    assert!(xen.message.contains("2.6.32-754.el6.x86_64"));
}

#[test]
fn rhel8_root_on_lvm_with_bls_and_xz_initramfs_is_ready() {
    let d = dir("rhel8");
    let raw = images::rhel8_lvm_image(&d, "rhel8");
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Ready, "{:#?}", r.findings);
    assert_eq!(r.boot_mode, Some(InspectedBootMode::Uefi));
    let os = r.os.as_ref().unwrap();
    assert_eq!(
        (os.name.as_str(), os.version.as_deref()),
        ("Red Hat Enterprise Linux", Some("8.9"))
    );
    let root = r.findings.iter().find(|f| f.code == "os").unwrap();
    assert!(
        root.message.contains("LVM volume rhel/root"),
        "{}",
        root.message
    );
    let kernel = r
        .findings
        .iter()
        .find(|f| f.code == "default-kernel")
        .unwrap();
    assert!(
        kernel.message.contains("4.18.0-513.el8.x86_64")
            && kernel.message.contains("/boot/loader/entries/"),
        "{}",
        kernel.message
    );
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "nvme-driver" && f.message.contains("initramfs"))
    );
    assert_eq!(r.disks[0].partitions[2].filesystem.as_deref(), Some("lvm2"));
}

#[test]
fn xfs_root_is_unknown_with_the_reason() {
    let d = dir("xfs");
    let raw = images::xfs_image(&d, "xfs");
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.os, None);
    let f = r
        .findings
        .iter()
        .find(|f| f.code == "os-not-found")
        .unwrap();
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.message.contains("XFS"), "{}", f.message);
    assert_eq!(r.disks[0].partitions[0].filesystem.as_deref(), Some("xfs"));
}

#[test]
fn random_bytes_are_unknown() {
    let d = dir("random");
    let raw = images::random_image(&d, "random", 8 * MIB);
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(
        (r.boot_mode, r.architecture, r.os.clone()),
        (None, None, None)
    );
    assert_eq!(r.disks[0].partition_table, "none");
}

#[test]
fn damaged_debian_images_end_in_unknown_or_a_partial_answer_without_panicking() {
    let d = dir("damaged");
    let raw = images::debian_image(&d, "debian", 64 * MIB);
    // Truncated: the root filesystem is cut short.
    let truncated = d.join("truncated.raw");
    std::fs::copy(&raw, &truncated).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(24 * MIB)
        .unwrap();
    let r = inspect(&truncated);
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    assert!(codes(&r).contains(&"disk-problem"), "{:#?}", r.findings);

    // Zeroed ext4 superblock: no root filesystem is found.
    let zeroed = d.join("zeroed.raw");
    std::fs::copy(&raw, &zeroed).unwrap();
    poke(&zeroed, images::DEBIAN_ROOT_OFFSET + 1024, &[0u8; 1024]);
    let r = inspect(&zeroed);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(codes(&r).contains(&"os-not-found"));

    // A directory loop in the EFI system partition: /EFI's cluster chain points to itself.
    let looped = d.join("looped.raw");
    std::fs::copy(&raw, &looped).unwrap();
    let esp = 2 * MIB;
    let boot = peek(&looped, esp, 512);
    let le16 = |b: &[u8], at: usize| u64::from(u16::from_le_bytes([b[at], b[at + 1]]));
    let (reserved, fats, root_entries, fat_size) = (
        le16(&boot, 14),
        u64::from(boot[16]),
        le16(&boot, 17),
        le16(&boot, 22),
    );
    assert!(
        fat_size > 0 && root_entries > 0,
        "an 8 MiB ESP is FAT12 or FAT16"
    );
    let fat_start = esp + reserved * 512;
    let root = peek(
        &looped,
        fat_start + fats * fat_size * 512,
        (root_entries * 32) as usize,
    );
    let efi = root
        .chunks(32)
        .find(|e| &e[..11] == b"EFI        ")
        .expect("/EFI entry");
    let cluster = le16(efi, 26);
    let fat12 = boot[54..62] == *b"FAT12   ";
    if fat12 {
        let at = fat_start + cluster * 3 / 2;
        let cur = le16(&peek(&looped, at, 2), 0) as u16;
        let c = cluster as u16;
        let v = if cluster % 2 == 0 {
            (cur & 0xF000) | c
        } else {
            (cur & 0x000F) | (c << 4)
        };
        poke(&looped, at, &v.to_le_bytes());
    } else {
        poke(
            &looped,
            fat_start + cluster * 2,
            &(cluster as u16).to_le_bytes(),
        );
    }
    let r = inspect(&looped);
    let esp_finding = r
        .findings
        .iter()
        .find(|f| f.code == "esp-unreadable")
        .unwrap_or_else(|| panic!("{:#?}", r.findings));
    assert!(
        esp_finding.message.contains("loops"),
        "{}",
        esp_finding.message
    );
    assert_eq!(
        r.boot_mode,
        Some(InspectedBootMode::LegacyBios),
        "BIOS boot still seen"
    );
}

#[test]
fn absurd_counts_in_a_windows_hive_make_unknown() {
    let d = dir("win-absurd");
    let raw = images::windows_image(
        &d,
        "win",
        &WindowsSpec {
            uefi: true,
            aws_nvme: true,
            ena: true,
            ec2launch_v2: true,
            absurd_hive_counts: true,
            ..Default::default()
        },
    );
    let r = inspect(&raw);
    assert_eq!(r.verdict, Verdict::Unknown, "{:#?}", r.findings);
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "windows-unreadable" && f.message.contains("SYSTEM")),
        "{:#?}",
        r.findings
    );
}

#[test]
fn absurd_gpt_entry_count_is_reported_not_followed() {
    let d = dir("gpt-absurd");
    let raw = images::debian_image(&d, "debian", 64 * MIB);
    // Claim 2^20 entries and fix the header CRC so only the count is absurd.
    let mut h = peek(&raw, 512, 92);
    h[80..84].copy_from_slice(&(1u32 << 20).to_le_bytes());
    h[16..20].fill(0);
    let crc = crc32(&h);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    poke(&raw, 512, &h);
    let r = inspect_server(
        "srv",
        &disks(&[raw]),
        &QemuTools::default(),
        &Limits::default(),
    )
    .unwrap();
    assert!(
        r.findings
            .iter()
            .any(|f| f.code == "disk-problem" && f.message.contains("entries")),
        "{:#?}",
        r.findings
    );
    assert!(r.disks[0].partitions.is_empty());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_missing_disk_is_an_open_error() {
    let err = inspect_server(
        "srv",
        &disks(&[PathBuf::from("/nonexistent/disk.raw")]),
        &QemuTools::default(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("disk0"), "{err}");
}

#[test]
fn hivexsh_reads_the_test_kit_hives() {
    let d = dir("hivex");
    let system = d.join("SYSTEM");
    std::fs::write(
        &system,
        images::system_hive(&WindowsSpec {
            aws_nvme: true,
            ..Default::default()
        }),
    )
    .unwrap();
    let out = Command::new("hivexsh")
        .arg(&system)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"cd ControlSet001\\Services\\AWSNVMe\nlsval Start\nlsval ImagePath\n",
            )?;
            c.wait_with_output()
        })
        .expect("hivexsh runs (libhivex-bin, installed by tests/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(text.lines().next(), Some("0"), "Start is 0 (boot): {text}");
    assert!(text.contains("AWSNVMe.sys"), "{text}");
}
