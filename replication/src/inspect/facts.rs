//! What inspection learned about a server: the input of the pure verdict. Each fact says what
//! was seen, or that it could not be read and why.

use super::binfmt::Machine;

/// A Windows service as the current control set records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    Missing,
    /// Present, with its Start type (0 boot, 1 system, 2 automatic, 3 demand, 4 disabled) and
    /// whether its driver file exists (`None` for services without an image path we check).
    Present {
        start: u32,
        file: Option<bool>,
    },
    Unknown(String),
}

/// A Linux kernel module for the default kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Module {
    BuiltIn,
    /// In the default kernel's initramfs.
    Initramfs,
    /// In the module tree only (for a storage driver: not in the initramfs, which was read).
    Tree,
    Missing,
    Unknown(String),
}

/// Something that runs user data at boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agent {
    Found(String),
    /// Installed but switched off, with why.
    Disabled(String),
    Missing,
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowsFacts {
    /// Where the Windows volume is (`disk0 partition 3`).
    pub location: String,
    pub product: Option<String>,
    /// `10.0.17763`
    pub version: Option<String>,
    pub bits64: Option<bool>,
    pub aws_nvme: Option<Service>,
    /// Microsoft's inbox NVMe driver.
    pub stornvme: Option<Service>,
    pub ena: Option<Service>,
    /// AWS / Citrix / Red Hat PV storage driver (xenvbd, rhelscsi).
    pub xen_storage: Option<Service>,
    pub agent: Option<Agent>,
    pub hive_dirty: bool,
    /// Hives or files that could not be read, with why.
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub mountpoint: String,
    pub fstype: String,
    pub nofail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinuxFacts {
    pub location: String,
    pub name: String,
    pub version: Option<String>,
    pub kernels: Vec<String>,
    pub default_kernel: Option<String>,
    /// Where the default came from (`/boot/grub/grub.cfg`), `None` when guessed (newest).
    pub default_from: Option<String>,
    pub nvme: Option<Module>,
    pub ena: Option<Module>,
    pub xen_blk: Option<Module>,
    pub initramfs: Option<String>,
    pub agent: Option<Agent>,
    /// fstab entries naming kernel devices (`/dev/sda1`, `/dev/xvdb`...).
    pub fstab_device_names: Vec<FstabEntry>,
    /// `root=` of the default kernel's command line when it names a kernel device.
    pub root_device_name: Option<String>,
    pub unreadable: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsFacts {
    Windows(WindowsFacts),
    Linux(LinuxFacts),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootFacts {
    /// The UEFI loader found on an EFI system partition.
    pub uefi_loader: Option<String>,
    /// Why an EFI system partition could not be read.
    pub esp_unreadable: Option<String>,
    /// What makes the disk BIOS-bootable (boot code + active partition, BIOS boot partition).
    pub bios: Option<String>,
    /// The boot disk's partition table was read (so "no loader" is a fact, not a blind spot).
    pub table_read: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub os: Option<OsFacts>,
    /// Volumes that could not be read, and why (XFS, BitLocker, damaged...).
    pub unreadable: Vec<String>,
    /// Windows dynamic disk partitions seen.
    pub dynamic_disk: bool,
    pub boot: BootFacts,
    /// The OS's own binary (`ntoskrnl.exe`, `/bin/sh`) and its machine.
    pub os_machine: Option<(String, Machine)>,
    /// The machine of the UEFI loader.
    pub loader_machine: Option<Machine>,
    /// Problems with disks and partition tables.
    pub problems: Vec<String>,
    /// A disk is damaged (a partition past its end): no verdict better than `unknown`.
    pub damaged: bool,
}
