//! What to replicate: one server of an application and its disks.

use std::path::PathBuf;

pub use crate::domain::{Architecture, BootMode, DiskFormat, LicenseType};

use crate::error::ReplicationError;
use crate::source::{DiskSource, QemuTools};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerJob {
    pub app: String,
    pub server: String,
    pub group: String,
    /// The first disk is the boot disk.
    pub disks: Vec<DiskJob>,
    pub architecture: Architecture,
    pub boot_mode: Option<BootMode>,
    pub ena_support: bool,
    pub license_type: LicenseType,
    pub encryption: Option<Encryption>,
    /// How many of the server's most recent AMIs to keep; 0 keeps all.
    pub keep_recent_amis: u32,
    /// The application's own tags, added to snapshots and AMIs.
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskJob {
    /// "disk0", "disk1", ...
    pub name: String,
    /// A raw image or block device, or a qcow2, VMDK, VHD or VHDX image.
    pub source: PathBuf,
    /// Declared in the application file or given by the source's extension; never probed.
    pub format: DiskFormat,
}

impl DiskJob {
    /// A disk whose format its path implies (extension, or `/dev/` for a block device); `None`
    /// when the path implies none and a format must be declared.
    pub fn implied(name: impl Into<String>, source: impl Into<PathBuf>) -> Option<DiskJob> {
        let source = source.into();
        let format = DiskFormat::implied_by(&source)?;
        Some(DiskJob {
            name: name.into(),
            source,
            format,
        })
    }

    /// Disks `disk0`, `disk1`, … of a server from paths that imply their formats.
    pub fn implied_all(paths: &[PathBuf]) -> Option<Vec<DiskJob>> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| DiskJob::implied(format!("disk{i}"), p.clone()))
            .collect()
    }
}

impl ServerJob {
    /// Checks every disk as [`DiskSource::inspect`] does, before anything is read or sent.
    pub fn inspect_disks(&self, tools: &QemuTools) -> Result<(), ReplicationError> {
        for disk in &self.disks {
            DiskSource::inspect(&disk.source, Some(disk.format.source_format()), tools).map_err(
                |source| ReplicationError::Source {
                    server: self.server.clone(),
                    disk: disk.name.clone(),
                    source,
                },
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encryption {
    /// `alias/...`, a key id or a key ARN; `None` uses the account's default EBS key.
    pub kms_key_id: Option<String>,
}
