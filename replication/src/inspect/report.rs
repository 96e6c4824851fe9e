//! The inspection result: what `rehost inspect --output json` prints per server (camelCase;
//! `bootMode`, `architecture` and `os` are null when unknown) and what the state will cache.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Boots on Nitro instance types and runs user data.
    Ready,
    /// Boots only on Xen instance types (Xen PV drivers, no NVMe/ENA).
    XenOnly,
    /// Boots, but nothing runs user data: the health gate and configure scripts cannot work.
    NoAgent,
    WillNotBoot,
    /// What decides it could not be read; the findings say why.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ready => "ready",
            Verdict::XenOnly => "xen-only",
            Verdict::NoAgent => "no-agent",
            Verdict::WillNotBoot => "will-not-boot",
            Verdict::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InspectedBootMode {
    LegacyBios,
    Uefi,
    /// Both a UEFI loader and BIOS boot code: boots either way.
    UefiPreferred,
}

impl InspectedBootMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InspectedBootMode::LegacyBios => "legacy-bios",
            InspectedBootMode::Uefi => "uefi",
            InspectedBootMode::UefiPreferred => "uefi-preferred",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InspectedArch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl InspectedArch {
    pub fn as_str(self) -> &'static str {
        match self {
            InspectedArch::X86_64 => "x86_64",
            InspectedArch::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OsFamily {
    Windows,
    Linux,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsInfo {
    pub family: OsFamily,
    pub name: String,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, kebab-case: what pre-flight and scripts match on.
    pub code: String,
    pub severity: Severity,
    pub message: String,
    /// What to do about it; null for purely informational findings.
    pub fix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReport {
    pub index: u32,
    #[serde(rename = "type")]
    pub kind: String,
    /// Bytes from the start of the disk.
    pub start: u64,
    pub size: u64,
    pub filesystem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskReport {
    /// `disk0`, `disk1`... as in the replication reports.
    pub disk: String,
    /// `mbr`, `gpt` or `none`.
    pub partition_table: String,
    pub partitions: Vec<PartitionReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInspection {
    pub server: String,
    pub verdict: Verdict,
    pub boot_mode: Option<InspectedBootMode>,
    pub architecture: Option<InspectedArch>,
    pub os: Option<OsInfo>,
    pub findings: Vec<Finding>,
    pub disks: Vec<DiskReport>,
}
