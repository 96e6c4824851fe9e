//! The domain values an application file names and the replication engine acts on, defined once:
//! CPU architecture, boot mode, licence type, replication frequency and disk image format.
//!
//! Each enum carries the application file's spelling (its serde name, which the JSON Schema
//! shows, and [`Choice::CHOICES`], which the decoder reads) and the EC2 API string as a method.
//! The orchestrator depends on this crate, so these types live here and nowhere else.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::source::SourceFormat;

/// An enum written as one of a fixed set of words in the application file.
pub trait Choice: Copy + Sized + 'static {
    /// Every value with its spelling in the application file, in the order messages list them.
    const CHOICES: &'static [(&'static str, Self)];

    /// The spelling of this value in the application file.
    fn file_name(self) -> &'static str;
}

/// `impl Choice` from one list of (spelling, value) pairs, so the spelling is written once.
#[macro_export]
macro_rules! choices {
    ($ty:ty { $($name:literal => $value:expr),+ $(,)? }) => {
        impl $crate::domain::Choice for $ty {
            const CHOICES: &'static [(&'static str, Self)] = &[$(($name, $value)),+];

            fn file_name(self) -> &'static str {
                Self::CHOICES
                    .iter()
                    .find(|(_, v)| *v == self)
                    .map(|(n, _)| *n)
                    .expect("every value has a spelling")
            }
        }
    };
}

/// CPU architecture of a server's AMI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

choices!(Architecture {
    "x86_64" => Architecture::X86_64,
    "arm64" => Architecture::Arm64,
});

impl Architecture {
    /// The EC2 API value (RegisterImage, DescribeInstanceTypes).
    pub fn as_aws(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

/// Firmware an AMI boots with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum BootMode {
    #[serde(rename = "legacy-bios")]
    LegacyBios,
    #[serde(rename = "uefi")]
    Uefi,
    #[serde(rename = "uefi-preferred")]
    UefiPreferred,
}

choices!(BootMode {
    "legacy-bios" => BootMode::LegacyBios,
    "uefi" => BootMode::Uefi,
    "uefi-preferred" => BootMode::UefiPreferred,
});

impl BootMode {
    /// The EC2 API value (RegisterImage's BootMode).
    pub fn as_aws(self) -> &'static str {
        match self {
            BootMode::LegacyBios => "legacy-bios",
            BootMode::Uefi => "uefi",
            BootMode::UefiPreferred => "uefi-preferred",
        }
    }
}

// How the migrated server's OS is licensed (the SMS field of the same name). A plain comment:
// a doc comment would become the schema's description of `licenseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum LicenseType {
    #[serde(rename = "AUTO")]
    Auto,
    #[serde(rename = "AWS")]
    Aws,
    #[serde(rename = "BYOL")]
    Byol,
}

choices!(LicenseType {
    "AUTO" => LicenseType::Auto,
    "AWS" => LicenseType::Aws,
    "BYOL" => LicenseType::Byol,
});

impl LicenseType {
    /// The value of the `rehost:license-type` tag on AMIs.
    pub fn as_tag(self) -> &'static str {
        match self {
            LicenseType::Auto => "AUTO",
            LicenseType::Aws => "AWS",
            LicenseType::Byol => "BYOL",
        }
    }
}

/// How often a server is replicated (`frequencyHours` or `runOnce` in the application file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// Every 1..=24 hours (values outside are clamped).
    Hours(u8),
    /// Replicate once (runOnce).
    Once,
}

impl std::fmt::Display for Frequency {
    /// `every 12h` or `once`, as `rehost status` shows the schedule.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frequency::Hours(h) => write!(f, "every {h}h"),
            Frequency::Once => f.write_str("once"),
        }
    }
}

/// How a disk's bytes are laid out, as the application file says (`format:`) or as the source's
/// extension says. Never guessed from the bytes: an image that claims another format in its
/// own header is still read as declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
}

choices!(DiskFormat {
    "raw" => DiskFormat::Raw,
    "qcow2" => DiskFormat::Qcow2,
    "vmdk" => DiskFormat::Vmdk,
    "vhd" => DiskFormat::Vhd,
    "vhdx" => DiskFormat::Vhdx,
});

/// What a source's extension says about its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionFormat {
    /// `.raw`, `.qcow2`, `.vmdk`, `.vhd`, `.vhdx` (any case): that format and no other.
    Exact(DiskFormat),
    /// `.img`: raw unless `format:` says otherwise (cloud images named `.img` are often qcow2).
    RawUnlessDeclared,
    /// Any other extension, or none: the format must be declared.
    Unknown,
}

impl DiskFormat {
    /// The reader the replication engine opens the source with.
    pub fn source_format(self) -> SourceFormat {
        match self {
            DiskFormat::Raw => SourceFormat::Raw,
            DiskFormat::Qcow2 => SourceFormat::Qcow2,
            DiskFormat::Vmdk => SourceFormat::Vmdk,
            DiskFormat::Vhd => SourceFormat::Vpc,
            DiskFormat::Vhdx => SourceFormat::Vhdx,
        }
    }

    /// What the extension of `source` says (compared without regard to case).
    pub fn from_extension(source: &Path) -> ExtensionFormat {
        let Some(ext) = source.extension().and_then(|e| e.to_str()) else {
            return ExtensionFormat::Unknown;
        };
        if ext.eq_ignore_ascii_case("img") {
            return ExtensionFormat::RawUnlessDeclared;
        }
        Self::CHOICES
            .iter()
            .find(|(name, _)| ext.eq_ignore_ascii_case(name))
            .map_or(ExtensionFormat::Unknown, |(_, f)| {
                ExtensionFormat::Exact(*f)
            })
    }

    /// Whether `source` names a block device (`/dev/...`), which is read raw.
    pub fn is_block_device_path(source: &Path) -> bool {
        source.starts_with("/dev")
    }

    /// The format of a source whose format is not declared: raw for a block device or a `.img`,
    /// else what its extension names; None when only `format:` can say.
    pub fn implied_by(source: &Path) -> Option<DiskFormat> {
        if Self::is_block_device_path(source) {
            return Some(DiskFormat::Raw);
        }
        match Self::from_extension(source) {
            ExtensionFormat::Exact(f) => Some(f),
            ExtensionFormat::RawUnlessDeclared => Some(DiskFormat::Raw),
            ExtensionFormat::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder's spellings and the schema's (serde) names are the same words.
    fn spellings_agree<T: Choice + Serialize + PartialEq + std::fmt::Debug>() {
        for &(name, value) in T::CHOICES {
            assert_eq!(serde_json::to_value(value).unwrap(), name);
            assert_eq!(value.file_name(), name);
        }
    }

    #[test]
    fn file_spellings_match_serde_names() {
        spellings_agree::<Architecture>();
        spellings_agree::<BootMode>();
        spellings_agree::<LicenseType>();
        spellings_agree::<DiskFormat>();
        assert_eq!(Architecture::CHOICES.len(), 2);
        assert_eq!(BootMode::CHOICES.len(), 3);
        assert_eq!(LicenseType::CHOICES.len(), 3);
        assert_eq!(DiskFormat::CHOICES.len(), 5);
    }

    #[test]
    fn disk_formats_from_extensions_and_to_readers() {
        let ext = |p: &str| DiskFormat::from_extension(Path::new(p));
        assert_eq!(
            ext("a/disk0.vmdk"),
            ExtensionFormat::Exact(DiskFormat::Vmdk)
        );
        assert_eq!(ext("D.VHDX"), ExtensionFormat::Exact(DiskFormat::Vhdx));
        assert_eq!(ext("x.vhd"), ExtensionFormat::Exact(DiskFormat::Vhd));
        assert_eq!(ext("x.qcow2"), ExtensionFormat::Exact(DiskFormat::Qcow2));
        assert_eq!(ext("x.raw"), ExtensionFormat::Exact(DiskFormat::Raw));
        assert_eq!(ext("cloud.img"), ExtensionFormat::RawUnlessDeclared);
        for unknown in ["disk", "disk.bin", "x.qcow", "x.vpc", "dir.vmdk/disk"] {
            assert_eq!(ext(unknown), ExtensionFormat::Unknown, "{unknown}");
        }
        assert_eq!(DiskFormat::Vhd.source_format(), SourceFormat::Vpc);
        assert_eq!(DiskFormat::Raw.source_format(), SourceFormat::Raw);
        assert!(DiskFormat::is_block_device_path(Path::new("/dev/sdb")));
        assert!(DiskFormat::is_block_device_path(Path::new(
            "/dev/mapper/vg-root"
        )));
        assert!(!DiskFormat::is_block_device_path(Path::new(
            "/devices/x.raw"
        )));
        assert!(!DiskFormat::is_block_device_path(Path::new("dev/sdb")));
        let implied = |p: &str| DiskFormat::implied_by(Path::new(p));
        assert_eq!(implied("/dev/vdb"), Some(DiskFormat::Raw));
        assert_eq!(implied("/dev/disk/by-id/x.vmdk"), Some(DiskFormat::Raw));
        assert_eq!(implied("a.img"), Some(DiskFormat::Raw));
        assert_eq!(implied("a.VMDK"), Some(DiskFormat::Vmdk));
        assert_eq!(implied("a"), None);
    }

    #[test]
    fn aws_strings() {
        assert_eq!(Architecture::Arm64.as_aws(), "arm64");
        assert_eq!(BootMode::UefiPreferred.as_aws(), "uefi-preferred");
        assert_eq!(LicenseType::Byol.as_tag(), "BYOL");
        assert_eq!(Frequency::Hours(6).to_string(), "every 6h");
        assert_eq!(Frequency::Once.to_string(), "once");
    }
}
