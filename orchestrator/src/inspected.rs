//! What the guest inspections mean for the validated application (pure: the CLI loads the
//! cached or fresh inspections, then calls these). An AMI's `bootMode` and `architecture` come
//! from the inspection when the file does not set them; a setting the inspection contradicts,
//! and an `os:` of another family than the one found on the disks, is an error at its
//! FILE:LINE:COL. What the inspection could not tell (`null`) leaves the file's value or the
//! default.

use std::collections::BTreeMap;

use rehost_replication::inspect::{InspectedArch, InspectedBootMode, OsFamily, ServerInspection};
use rehost_replication::{Architecture, BootMode, ServerJob};

use crate::app::{App, AppServer};
use crate::diag::{Diagnostic, Severity};
use crate::model::Os;

fn boot_mode(b: InspectedBootMode) -> BootMode {
    match b {
        InspectedBootMode::LegacyBios => BootMode::LegacyBios,
        InspectedBootMode::Uefi => BootMode::Uefi,
        InspectedBootMode::UefiPreferred => BootMode::UefiPreferred,
    }
}

fn architecture(a: InspectedArch) -> Architecture {
    match a {
        InspectedArch::X86_64 => Architecture::X86_64,
        InspectedArch::Arm64 => Architecture::Arm64,
    }
}

/// Whether an AMI registered with `set` boots a disk the inspection found booting `found`.
/// A disk with both a UEFI loader and BIOS boot code boots either way; `uefi-preferred` boots
/// a UEFI-only disk (UEFI wherever the instance type has it), never a BIOS-only one on Nitro.
fn boot_mode_fits(set: BootMode, found: InspectedBootMode) -> bool {
    matches!(
        (set, found),
        (_, InspectedBootMode::UefiPreferred)
            | (BootMode::LegacyBios, InspectedBootMode::LegacyBios)
            | (
                BootMode::Uefi | BootMode::UefiPreferred,
                InspectedBootMode::Uefi
            )
    )
}

/// Every setting of the file an inspection contradicts, as errors at the setting, in launch
/// order. Servers without an inspection are not checked.
pub fn contradictions(
    app: &App,
    inspections: &BTreeMap<String, ServerInspection>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut error = |pos, message: String| {
        out.push(Diagnostic {
            pos,
            severity: Severity::Error,
            message,
        })
    };
    for server in app.servers_in_launch_order() {
        let Some(found) = inspections.get(&server.id) else {
            continue;
        };
        let id = &server.id;
        let again = "(if the disks changed, `rehost inspect --fresh` reads them again)";
        if let (Some(pos), Some(set), Some(b)) =
            (server.boot_mode_pos, server.boot_mode, found.boot_mode)
            && !boot_mode_fits(set, b)
        {
            error(
                pos,
                format!(
                    "server {id}: bootMode {} contradicts its disks, which boot {}: an AMI \
                     registered so would not start; remove bootMode (the inspection's is used) \
                     or set it to {} {again}",
                    set.as_aws(),
                    b.as_str(),
                    b.as_str()
                ),
            );
        }
        if let (Some(pos), Some(a)) = (server.architecture_pos, found.architecture)
            && architecture(a) != server.architecture
        {
            error(
                pos,
                format!(
                    "server {id}: architecture {} contradicts its disks, whose binaries are {}; \
                     remove architecture (the inspection's is used) or set it to {} {again}",
                    server.architecture.as_aws(),
                    a.as_str(),
                    a.as_str()
                ),
            );
        }
        if let Some(os) = &found.os {
            let family = match os.family {
                OsFamily::Windows => Os::Windows,
                OsFamily::Linux => Os::Linux,
            };
            if family != server.os {
                error(
                    server.os_pos,
                    format!(
                        "server {id}: os {} contradicts its disks, which hold {} ({}); its \
                         configure script and user data would be of the wrong kind {again}",
                        os_name(server.os),
                        os_name(family),
                        os.name
                    ),
                );
            }
        }
    }
    out
}

fn os_name(os: Os) -> &'static str {
    match os {
        Os::Windows => "windows",
        Os::Linux => "linux",
    }
}

/// Fills in the job's AMI settings the file leaves open from the server's inspection:
/// `bootMode` when unset, `architecture` when neither the file nor `--architecture`
/// (`overridden`) sets it. An unknown value leaves the job as it is.
pub fn fill_ami_settings(
    job: &mut ServerJob,
    server: &AppServer,
    inspection: &ServerInspection,
    overridden: bool,
) {
    if server.boot_mode_pos.is_none()
        && let Some(b) = inspection.boot_mode
    {
        job.boot_mode = Some(boot_mode(b));
    }
    if server.architecture_pos.is_none()
        && !overridden
        && let Some(a) = inspection.architecture
    {
        job.architecture = architecture(a);
    }
}

#[cfg(test)]
#[path = "inspected_tests.rs"]
mod tests;
