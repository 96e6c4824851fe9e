//! The replication plan: what `rehost replicate` hands the replication engine for each server,
//! derived from the validated application. Pure.

use rehost_replication::schedule::Frequency as EngineFrequency;
use rehost_replication::watch::WatchEntry;
use rehost_replication::{Architecture, BootMode, DiskJob, Encryption, LicenseType, ServerJob};

use crate::app::{self, App, AppServer};

pub fn job(app: &App, server: &AppServer, architecture: Option<app::Architecture>) -> ServerJob {
    let r = &server.replication;
    ServerJob {
        app: app.name.clone(),
        server: server.id.clone(),
        group: app.group_of(server).name.clone(),
        disks: server
            .disks
            .iter()
            .enumerate()
            .map(|(i, source)| DiskJob {
                name: format!("disk{i}"),
                source: source.clone(),
                // Declared formats come with the disk's `format:` field (issue 8, phase 2).
                format: None,
            })
            .collect(),
        architecture: match architecture.unwrap_or(server.architecture) {
            app::Architecture::X86_64 => Architecture::X86_64,
            app::Architecture::Arm64 => Architecture::Arm64,
        },
        boot_mode: server.boot_mode.map(|b| match b {
            app::BootMode::LegacyBios => BootMode::LegacyBios,
            app::BootMode::Uefi => BootMode::Uefi,
            app::BootMode::UefiPreferred => BootMode::UefiPreferred,
        }),
        ena_support: server.ena_support,
        license_type: match r.license_type {
            app::LicenseType::Auto => LicenseType::Auto,
            app::LicenseType::Aws => LicenseType::Aws,
            app::LicenseType::Byol => LicenseType::Byol,
        },
        encryption: r.encrypted.then(|| Encryption {
            kms_key_id: r.kms_key_id.clone(),
        }),
        keep_recent_amis: r.keep_recent_amis,
        tags: app.tags.clone(),
    }
}

/// One entry per chosen server (all when `only` is empty), in launch order.
pub fn plan(
    app: &App,
    only: &[String],
    architecture: Option<app::Architecture>,
) -> Vec<WatchEntry> {
    app.servers_in_launch_order()
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.id))
        .map(|s| WatchEntry {
            job: job(app, s, architecture),
            frequency: match s.replication.frequency {
                app::Frequency::Hours(h) => EngineFrequency::Hours(h),
                app::Frequency::Once => EngineFrequency::Once,
            },
            seed_time: s.replication.seed_time,
        })
        .collect()
}
