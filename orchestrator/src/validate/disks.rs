//! A server's disks: where each is read from and in which format. The format is declared
//! (`format:`) or given by the source's extension, a `/dev/` source is a raw block device, and
//! nothing else is accepted: an image's own header never decides how it is read, so a guest
//! cannot make rehost follow a qcow2 or VMDK reference it wrote into its raw disk.

use std::path::Path;

use rehost_replication::domain::{Choice, DiskFormat, ExtensionFormat};

use crate::app::AppDisk;
use crate::diag::Diagnostics;
use crate::model;

use super::layers::relative_to;

/// The server's disks with their formats; a disk whose format cannot be known is reported and
/// left out (the file is invalid then).
pub(super) fn resolve_disks(
    server: &model::Server,
    base_dir: &Path,
    diags: &mut Diagnostics,
) -> Vec<AppDisk> {
    server
        .disks
        .value
        .iter()
        .filter_map(|disk| {
            let format = disk_format(disk, diags)?;
            Some(AppDisk {
                source: relative_to(base_dir, &disk.source.value),
                format,
            })
        })
        .collect()
}

fn disk_format(disk: &model::Disk, diags: &mut Diagnostics) -> Option<DiskFormat> {
    let source = &disk.source.value;
    if source.trim().is_empty() {
        // Reported with the server's other fields.
        return None;
    }
    let path = Path::new(source);
    let declared = disk.format.as_ref();
    if DiskFormat::is_block_device_path(path) {
        return match declared {
            Some(f) if f.value != DiskFormat::Raw => {
                diags.error(
                    f.pos,
                    format!(
                        "`{source}` is a block device, read raw: `format: {}` cannot apply to it",
                        f.value.file_name()
                    ),
                );
                None
            }
            _ => Some(DiskFormat::Raw),
        };
    }
    match (DiskFormat::from_extension(path), declared) {
        (ExtensionFormat::Exact(by_name), Some(f)) if f.value != by_name => {
            diags.error(
                f.pos,
                format!(
                    "`format: {}` contradicts the extension of `{source}`, which names a {} image; \
                     fix one of them",
                    f.value.file_name(),
                    by_name.file_name()
                ),
            );
            None
        }
        (_, Some(f)) => Some(f.value),
        (ExtensionFormat::Exact(by_name), None) => Some(by_name),
        (ExtensionFormat::RawUnlessDeclared, None) => Some(DiskFormat::Raw),
        (ExtensionFormat::Unknown, None) => {
            let names: Vec<&str> = DiskFormat::CHOICES.iter().map(|(n, _)| *n).collect();
            diags.error(
                disk.source.pos,
                format!(
                    "the extension of `{source}` does not say its format: add `format:` ({}) to \
                     the disk; rehost never guesses a format from an image's contents",
                    names.join(", ")
                ),
            );
            None
        }
    }
}
