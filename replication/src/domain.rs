//! The domain values an application file names and the replication engine acts on, defined once:
//! CPU architecture, boot mode, licence type and replication frequency.
//!
//! Each enum carries the application file's spelling (its serde name, which the JSON Schema
//! shows, and [`Choice::CHOICES`], which the decoder reads) and the EC2 API string as a method.
//! The orchestrator depends on this crate, so these types live here and nowhere else.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
        assert_eq!(Architecture::CHOICES.len(), 2);
        assert_eq!(BootMode::CHOICES.len(), 3);
        assert_eq!(LicenseType::CHOICES.len(), 3);
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
