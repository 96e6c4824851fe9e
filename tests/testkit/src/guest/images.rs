//! The guest images of the inspection tests and benchmark: Windows-like (UEFI or BIOS, with or
//! without the AWS drivers and an agent), Debian-like, old-RHEL-like, RHEL-8-like on LVM, an XFS
//! root, and raw random bytes. Each is a raw image file; `tools::convert` makes the others.

use std::path::{Path, PathBuf};

use super::hive::{RegKey, write_hive};
use super::lvm::{LvSpec, PE_START, pv_header};
use super::tools::{
    MIB, compress, cpio, elf_stub, mkfs_ext4, mkfs_fat, mkfs_ntfs, pe_stub, place, poke, run,
    sfdisk, sparse, tree,
};

const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
const LINUX_TYPE: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
const LVM_TYPE: &str = "E6D6D379-F507-44C2-A23C-238F2A3DF928";

/// What a Windows-like image holds.
#[derive(Debug, Clone, Default)]
pub struct WindowsSpec {
    pub uefi: bool,
    pub aws_nvme: bool,
    pub ena: bool,
    pub xen_pv: bool,
    pub ec2launch_v2: bool,
    /// Every subkey list of the SYSTEM hive claims 65535 entries.
    pub absurd_hive_counts: bool,
}

impl WindowsSpec {
    /// AWS NVMe and ENA drivers and EC2Launch v2: what `ready` needs.
    pub fn ready(uefi: bool) -> WindowsSpec {
        WindowsSpec {
            uefi,
            aws_nvme: true,
            ena: true,
            ec2launch_v2: true,
            ..Default::default()
        }
    }
}

fn scratch(dir: &Path, name: &str) -> PathBuf {
    let d = dir.join(format!("{name}.tree"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn boot_code(image: &Path) {
    // A stand-in for real boot code: anything but zeros in the MBR's first 440 bytes.
    let mut code = vec![0xEBu8, 0x63, 0x90];
    code.extend_from_slice(b"GRUB boot code stand-in");
    poke(image, 0, &code);
}

pub fn system_hive(spec: &WindowsSpec) -> Vec<u8> {
    let mut root = RegKey::new("ROOT");
    root.key("Select").dword("Current", 1).dword("Default", 1);
    let cs = "ControlSet001";
    root.key(&format!("{cs}\\Control\\Session Manager\\Environment"))
        .sz("PROCESSOR_ARCHITECTURE", "AMD64");
    let services = format!("{cs}\\Services");
    root.key(&format!("{services}\\stornvme"))
        .dword("Start", 3)
        .sz("ImagePath", "System32\\drivers\\stornvme.sys");
    root.key(&format!("{services}\\Tcpip")).dword("Start", 1);
    if spec.aws_nvme {
        root.key(&format!("{services}\\AWSNVMe"))
            .dword("Start", 0)
            .dword("Type", 1)
            .sz("ImagePath", "\\SystemRoot\\System32\\drivers\\AWSNVMe.sys");
    }
    if spec.ena {
        root.key(&format!("{services}\\ena"))
            .dword("Start", 3)
            .sz("ImagePath", "\\SystemRoot\\System32\\drivers\\ena.sys");
    }
    if spec.xen_pv {
        root.key(&format!("{services}\\xenvbd"))
            .dword("Start", 0)
            .sz("ImagePath", "System32\\drivers\\xenvbd.sys");
        root.key(&format!("{services}\\xennet")).dword("Start", 3);
    }
    if spec.ec2launch_v2 {
        root.key(&format!("{services}\\EC2Launch"))
            .dword("Start", 2)
            .sz(
                "ImagePath",
                "\"C:\\Program Files\\Amazon\\EC2Launch\\service\\EC2LaunchService.exe\"",
            );
    }
    let mut bytes = write_hive(&root);
    if spec.absurd_hive_counts {
        let mut i = 4096;
        while i + 8 < bytes.len() {
            if &bytes[i + 4..i + 6] == b"lf" {
                bytes[i + 6..i + 8].copy_from_slice(&0xFFFFu16.to_le_bytes());
            }
            i += 8;
        }
    }
    bytes
}

pub fn software_hive() -> Vec<u8> {
    let mut root = RegKey::new("ROOT");
    root.key("Microsoft\\Windows NT\\CurrentVersion")
        .sz("ProductName", "Windows Server 2019 Datacenter")
        .sz("CurrentBuildNumber", "17763")
        .sz("CurrentVersion", "6.3")
        .dword("CurrentMajorVersionNumber", 10)
        .dword("CurrentMinorVersionNumber", 0)
        .sz("EditionID", "ServerDatacenter");
    root.key("WOW6432Node\\Microsoft");
    write_hive(&root)
}

/// A Windows-like disk: GPT with an EFI system partition, MSR and NTFS (UEFI), or MBR with one
/// active NTFS partition and boot code (BIOS).
pub fn windows_image(dir: &Path, name: &str, spec: &WindowsSpec) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let t = scratch(dir, name);
    let mut files = vec![
        ("Windows/System32/config/SYSTEM", system_hive(spec)),
        ("Windows/System32/config/SOFTWARE", software_hive()),
        ("Windows/System32/ntoskrnl.exe", pe_stub(0x8664)),
        ("Windows/System32/drivers/stornvme.sys", pe_stub(0x8664)),
    ];
    if spec.aws_nvme {
        files.push(("Windows/System32/drivers/AWSNVMe.sys", pe_stub(0x8664)));
    }
    if spec.ena {
        files.push(("Windows/System32/drivers/ena.sys", pe_stub(0x8664)));
    }
    if spec.ec2launch_v2 {
        files.push((
            "Program Files/Amazon/EC2Launch/service/EC2LaunchService.exe",
            pe_stub(0x8664),
        ));
    }
    if !spec.uefi {
        files.push(("bootmgr", b"bootmgr stand-in".to_vec()));
    }
    tree(&t, &files);
    let ntfs = dir.join(format!("{name}.ntfs"));
    mkfs_ntfs(&ntfs, &t, 30 * MIB);
    if spec.uefi {
        sparse(&image, 48 * MIB);
        sfdisk(
            &image,
            &format!(
                "label: gpt\nstart=2048, size=16384, type={ESP_TYPE}\nstart=18432, size=2048, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE\nstart=20480, size=61440, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n"
            ),
        );
        let esp = dir.join(format!("{name}.esp"));
        mkfs_fat(
            &esp,
            8 * MIB,
            0x1234_ABCD,
            &[
                ("/EFI/Microsoft/Boot/bootmgfw.efi", pe_stub(0x8664)),
                ("/EFI/BOOT/BOOTX64.EFI", pe_stub(0x8664)),
            ],
        );
        place(&image, MIB, &esp);
        place(&image, 10 * MIB, &ntfs);
    } else {
        sparse(&image, 40 * MIB);
        sfdisk(
            &image,
            "label: dos\nstart=2048, size=61440, type=7, bootable\n",
        );
        boot_code(&image);
        place(&image, MIB, &ntfs);
    }
    let _ = std::fs::remove_dir_all(&t);
    image
}

fn symlink(dir: &Path, link: &str, target: &str) {
    let p = dir.join(link);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, p).unwrap();
}

fn initramfs(dir: &Path, modules: &[&str], tool: &str, microcode: bool) -> Vec<u8> {
    initramfs_with(dir, modules, tool, microcode, 0)
}

/// Filler modules of low-entropy pseudo-random bytes (they compress about 2:1, like real ones).
fn filler(bytes: u64) -> Vec<(String, Vec<u8>)> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let per = MIB as usize;
    (0..bytes.div_ceil(MIB))
        .map(|i| {
            let data = (0..per)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x as u8) & 0x0F
                })
                .collect();
            (
                format!("usr/lib/modules/filler/kernel/drivers/misc/filler{i}.ko"),
                data,
            )
        })
        .collect()
}

fn initramfs_with(
    dir: &Path,
    modules: &[&str],
    tool: &str,
    microcode: bool,
    filler_bytes: u64,
) -> Vec<u8> {
    let d = scratch(dir, "initramfs");
    let fill = filler(filler_bytes);
    let mut files: Vec<(&str, Vec<u8>)> =
        fill.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    files.extend(modules.iter().map(|m| (*m, elf_stub(62))));
    files.push(("init", b"#!/bin/sh\n".to_vec()));
    tree(&d, &files);
    let mut out = Vec::new();
    if microcode {
        let m = scratch(dir, "microcode");
        tree(
            &m,
            &[("kernel/x86/microcode/GenuineIntel.bin", vec![0x5A; 4096])],
        );
        out = cpio(&m);
        let _ = std::fs::remove_dir_all(&m);
    }
    out.extend(compress(tool, &cpio(&d)));
    let _ = std::fs::remove_dir_all(&d);
    out
}

const DEBIAN_K: &str = "6.1.0-18-amd64";
const DEBIAN_ROOT_UUID: &str = "0f3c2b4e-8d1a-4b6c-9e2f-5a7d8c9b0a11";

/// A current Debian-like system: GPT with a BIOS boot partition and an EFI system partition
/// (boots either way), ext4 root of `total - 11 MiB` with nvme built in, ena as a module,
/// cloud-init, fstab by UUID. `total` may be huge: the image is sparse.
pub fn debian_image(dir: &Path, name: &str, total: u64) -> PathBuf {
    debian_image_with(dir, name, total, 0)
}

/// `debian_image` whose initramfs also holds `initrd_filler` bytes of filler modules (the
/// benchmark's realistic 64 MiB initramfs).
pub fn debian_image_with(dir: &Path, name: &str, total: u64, initrd_filler: u64) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let t = scratch(dir, name);
    let k = DEBIAN_K;
    let grub = format!(
        "set default=\"0\"\nmenuentry 'Debian GNU/Linux' --class debian $menuentry_id_option 'gnulinux-simple-{DEBIAN_ROOT_UUID}' {{\n\tlinux\t/boot/vmlinuz-{k} root=UUID={DEBIAN_ROOT_UUID} ro quiet\n\tinitrd\t/boot/initrd.img-{k}\n}}\n"
    );
    tree(&t, &[
        ("etc/os-release", b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n".to_vec()),
        ("etc/fstab", format!("# /etc/fstab\nUUID={DEBIAN_ROOT_UUID} / ext4 errors=remount-ro 0 1\nUUID=DEB1-0001 /boot/efi vfat umask=0077 0 1\n").into_bytes()),
        ("boot/grub/grub.cfg", grub.into_bytes()),
        (&format!("boot/vmlinuz-{k}"), b"kernel image stand-in".to_vec()),
        (&format!("boot/config-{k}"), b"CONFIG_BLK_DEV_NVME=y\nCONFIG_ENA_ETHERNET=m\n".to_vec()),
        (&format!("boot/initrd.img-{k}"), initramfs_with(dir, &[&format!("usr/lib/modules/{k}/kernel/drivers/net/ethernet/amazon/ena/ena.ko")], "zstd", false, initrd_filler)),
        (&format!("usr/lib/modules/{k}/modules.builtin"), b"kernel/drivers/nvme/host/nvme-core.ko\nkernel/drivers/nvme/host/nvme.ko\n".to_vec()),
        (&format!("usr/lib/modules/{k}/modules.dep"), b"kernel/drivers/net/ethernet/amazon/ena/ena.ko:\nkernel/drivers/block/xen-blkfront.ko:\n".to_vec()),
        ("usr/bin/cloud-init", b"#!/usr/bin/python3\n".to_vec()),
        ("etc/cloud/cloud.cfg", b"users:\n - default\n".to_vec()),
        ("etc/cloud/cloud.cfg.d/90_dpkg.cfg", b"datasource_list: [ NoCloud, ConfigDrive, Ec2, None ]\n".to_vec()),
        ("usr/bin/dash", std::fs::read("/bin/sh").unwrap_or_else(|_| elf_stub(62))),
    ]);
    symlink(&t, "usr/bin/sh", "dash");
    symlink(&t, "bin", "usr/bin");
    symlink(&t, "lib", "usr/lib");
    sparse(&image, total);
    sfdisk(
        &image,
        &format!(
            "label: gpt\nstart=2048, size=2048, type={BIOS_BOOT_TYPE}\nstart=4096, size=16384, type={ESP_TYPE}\nstart=20480, type={LINUX_TYPE}\n"
        ),
    );
    boot_code(&image);
    let esp = dir.join(format!("{name}.esp"));
    mkfs_fat(&esp, 8 * MIB, 0xDEB1_0001, &[
        ("/EFI/debian/shimx64.efi", pe_stub(0x8664)),
        ("/EFI/debian/grubx64.efi", pe_stub(0x8664)),
        ("/EFI/debian/grub.cfg", format!("search.fs_uuid {DEBIAN_ROOT_UUID} root\nset prefix=($root)'/boot/grub'\nconfigfile $prefix/grub.cfg\n").into_bytes()),
        ("/EFI/BOOT/BOOTX64.EFI", pe_stub(0x8664)),
    ]);
    place(&image, 2 * MIB, &esp);
    let root_size = total - 11 * MIB;
    run(std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-U",
            DEBIAN_ROOT_UUID,
            "-L",
            "root",
            "-E",
            &format!("offset={},lazy_itable_init=1,lazy_journal_init=1", 10 * MIB),
            "-d",
        ])
        .arg(&t)
        .arg(&image)
        .arg(format!("{}k", root_size / 1024)));
    let _ = std::fs::remove_dir_all(&t);
    image
}

/// The byte offset of the Debian image's root filesystem.
pub const DEBIAN_ROOT_OFFSET: u64 = 10 * MIB;

const RHEL6_K: &str = "2.6.32-754.el6.x86_64";

/// An old RHEL-6-like system: MBR, one active ext4 partition, GRUB legacy, a kernel without
/// nvme or ena but with xen-blkfront in its gzip initramfs, `/dev/sda1` in fstab.
pub fn rhel6_image(dir: &Path, name: &str) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let t = scratch(dir, name);
    let k = RHEL6_K;
    let uuid = "6e1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    tree(&t, &[
        ("etc/redhat-release", b"Red Hat Enterprise Linux Server release 6.10 (Santiago)\n".to_vec()),
        ("etc/fstab", b"/dev/sda1 / ext4 defaults 1 1\n/dev/sda2 swap swap defaults 0 0\ntmpfs /dev/shm tmpfs defaults 0 0\nproc /proc proc defaults 0 0\n".to_vec()),
        ("boot/grub/grub.conf", format!("default=0\ntimeout=5\ntitle Red Hat Enterprise Linux ({k})\n\troot (hd0,0)\n\tkernel /boot/vmlinuz-{k} ro root=UUID={uuid} console=ttyS0\n\tinitrd /boot/initramfs-{k}.img\n").into_bytes()),
        (&format!("boot/vmlinuz-{k}"), b"kernel image stand-in".to_vec()),
        (&format!("boot/initramfs-{k}.img"), initramfs(dir, &[
            &format!("lib/modules/{k}/kernel/drivers/block/xen-blkfront.ko"),
            &format!("lib/modules/{k}/kernel/drivers/net/xen-netfront.ko"),
        ], "gzip", false)),
        (&format!("lib/modules/{k}/modules.dep"), b"kernel/drivers/block/xen-blkfront.ko:\nkernel/drivers/net/xen-netfront.ko:\nkernel/drivers/net/e1000/e1000.ko:\n".to_vec()),
        (&format!("lib/modules/{k}/modules.builtin"), Vec::new()),
        ("usr/bin/cloud-init", b"#!/usr/bin/python\n".to_vec()),
        ("etc/cloud/cloud.cfg", b"datasource_list: [ Ec2 ]\n".to_vec()),
        ("bin/sh", elf_stub(62)),
    ]);
    sparse(&image, 48 * MIB);
    sfdisk(&image, "label: dos\nstart=2048, type=83, bootable\n");
    boot_code(&image);
    run(std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-U",
            uuid,
            "-E",
            &format!("offset={}", MIB),
            "-d",
        ])
        .arg(&t)
        .arg(&image)
        .arg(format!("{}k", 46 * 1024)));
    let _ = std::fs::remove_dir_all(&t);
    image
}

const RHEL8_K: &str = "4.18.0-513.el8.x86_64";

/// A RHEL-8-like system: GPT, EFI system partition with shim, a separate ext4 /boot with Boot
/// Loader Specification entries and an xz initramfs behind an early-microcode cpio, and the
/// root in an LVM logical volume of two segments (placed out of order on the physical volume).
pub fn rhel8_lvm_image(dir: &Path, name: &str) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let k = RHEL8_K;
    let old = "4.18.0-80.el8.x86_64";
    let id = "3f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let boot_uuid = "b0072b00-1111-4222-8333-944455556666";
    // /boot
    let b = scratch(dir, &format!("{name}-boot"));
    tree(&b, &[
        (&format!("loader/entries/{id}-{k}.conf"), format!("title Red Hat Enterprise Linux ({k}) 8.9 (Ootpa)\nversion {k}\nlinux /vmlinuz-{k}\ninitrd /initramfs-{k}.img $tuned_initrd\noptions $kernelopts $tuned_params\nid rhel-20231010-{k}\n").into_bytes()),
        (&format!("loader/entries/{id}-{old}.conf"), format!("title Red Hat Enterprise Linux ({old}) 8.0 (Ootpa)\nversion {old}\nlinux /vmlinuz-{old}\ninitrd /initramfs-{old}.img\noptions $kernelopts\n").into_bytes()),
        ("grub2/grubenv", format!("# GRUB Environment Block\nsaved_entry={id}-{k}\nkernelopts=root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root\nboot_success=0\n").into_bytes()),
        (&format!("vmlinuz-{k}"), b"kernel image stand-in".to_vec()),
        (&format!("vmlinuz-{old}"), b"kernel image stand-in".to_vec()),
        (&format!("config-{k}"), b"CONFIG_BLK_DEV_NVME=m\nCONFIG_ENA_ETHERNET=m\n".to_vec()),
        (&format!("initramfs-{k}.img"), initramfs(dir, &[
            &format!("usr/lib/modules/{k}/kernel/drivers/nvme/host/nvme.ko.xz"),
            &format!("usr/lib/modules/{k}/kernel/drivers/nvme/host/nvme-core.ko.xz"),
        ], "xz", true)),
        (&format!("initramfs-{old}.img"), initramfs(dir, &[], "xz", true)),
    ]);
    let boot_fs = dir.join(format!("{name}.boot"));
    mkfs_ext4(&boot_fs, &b, 16 * MIB, boot_uuid, "boot");
    // root
    let r = scratch(dir, &format!("{name}-root"));
    tree(&r, &[
        ("etc/os-release", b"NAME=\"Red Hat Enterprise Linux\"\nVERSION=\"8.9 (Ootpa)\"\nID=\"rhel\"\nVERSION_ID=\"8.9\"\n".to_vec()),
        ("etc/fstab", format!("/dev/mapper/rhel-root / ext4 defaults 0 0\nUUID={boot_uuid} /boot ext4 defaults 1 2\nUUID=4E11-0001 /boot/efi vfat umask=0077,shortname=winnt 0 2\n/dev/mapper/rhel-swap none swap defaults 0 0\n").into_bytes()),
        (&format!("usr/lib/modules/{k}/modules.dep"), b"kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz\nkernel/drivers/nvme/host/nvme-core.ko.xz:\nkernel/drivers/net/ethernet/amazon/ena/ena.ko.xz:\n".to_vec()),
        (&format!("usr/lib/modules/{k}/modules.builtin"), b"kernel/drivers/scsi/sd_mod.ko\n".to_vec()),
        (&format!("usr/lib/modules/{old}/modules.dep"), b"kernel/drivers/nvme/host/nvme.ko.xz:\n".to_vec()),
        ("usr/bin/cloud-init", b"#!/usr/libexec/platform-python\n".to_vec()),
        ("etc/cloud/cloud.cfg", b"datasource_list: [ Ec2, None ]\n".to_vec()),
        ("usr/bin/bash", elf_stub(62)),
    ]);
    symlink(&r, "usr/bin/sh", "bash");
    symlink(&r, "bin", "usr/bin");
    symlink(&r, "lib", "usr/lib");
    let root_fs = dir.join(format!("{name}.root"));
    mkfs_ext4(
        &root_fs,
        &r,
        32 * MIB,
        "a0000000-1111-4222-8333-944455556666",
        "root",
    );
    // disk: ESP at 1 MiB (8 MiB), /boot at 9 MiB (16 MiB), LVM PV at 25 MiB (40 MiB)
    sparse(&image, 72 * MIB);
    sfdisk(
        &image,
        &format!(
            "label: gpt\nstart=2048, size=16384, type={ESP_TYPE}\nstart=18432, size=32768, type={LINUX_TYPE}\nstart=51200, size=81920, type={LVM_TYPE}\n"
        ),
    );
    let esp = dir.join(format!("{name}.esp"));
    mkfs_fat(&esp, 8 * MIB, 0x4E11_0001, &[
        ("/EFI/redhat/shimx64.efi", pe_stub(0x8664)),
        ("/EFI/redhat/grubx64.efi", pe_stub(0x8664)),
        ("/EFI/redhat/grub.cfg", b"set default=\"${saved_entry}\"\nload_env -f ${config_directory}/grubenv\ninsmod blscfg\nblscfg\n".to_vec()),
        ("/EFI/BOOT/BOOTX64.EFI", pe_stub(0x8664)),
    ]);
    place(&image, MIB, &esp);
    place(&image, 9 * MIB, &boot_fs);
    let pv_start = 25 * MIB;
    let extent = 4 * MIB;
    let header = pv_header(
        40 * MIB,
        "rhel",
        extent,
        "PvUuid0000aaaabbbbccccddddeeeeff",
        &[LvSpec {
            name: "root",
            segments: vec![(0, 4, 5), (4, 4, 0)],
        }],
    );
    let h = dir.join(format!("{name}.pvheader"));
    std::fs::write(&h, &header).unwrap();
    place(&image, pv_start, &h);
    // LV bytes 0..16 MiB live at physical extent 5, 16..32 MiB at physical extent 0.
    let root = std::fs::read(&root_fs).unwrap();
    let half = dir.join(format!("{name}.half"));
    std::fs::write(&half, &root[..(16 * MIB) as usize]).unwrap();
    place(&image, pv_start + PE_START + 5 * extent, &half);
    std::fs::write(&half, &root[(16 * MIB) as usize..]).unwrap();
    place(&image, pv_start + PE_START, &half);
    for p in [&b, &r] {
        let _ = std::fs::remove_dir_all(p);
    }
    for p in [&boot_fs, &root_fs, &half, &h, &esp] {
        let _ = std::fs::remove_file(p);
    }
    image
}

/// A GPT disk whose only partition holds XFS (made by mkfs.xfs; 300 MiB is its minimum).
pub fn xfs_image(dir: &Path, name: &str) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let fs = dir.join(format!("{name}.xfs"));
    sparse(&fs, 300 * MIB);
    run(std::process::Command::new("mkfs.xfs")
        .args(["-q", "-f"])
        .arg(&fs));
    sparse(&image, 302 * MIB);
    sfdisk(
        &image,
        &format!(
            "label: gpt\nstart=2048, size={}, type={LINUX_TYPE}\n",
            300 * MIB / 512
        ),
    );
    boot_code(&image);
    place(&image, MIB, &fs);
    let _ = std::fs::remove_file(&fs);
    image
}

/// `size` bytes of deterministic pseudo-random data.
pub fn random_image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let image = dir.join(format!("{name}.raw"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&image, bytes).unwrap();
    image
}
