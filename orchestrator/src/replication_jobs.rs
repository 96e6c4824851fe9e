//! What `rehost replicate` and `rehost migrate` hand the replication engine: one scheduled job
//! per server, derived from the validated application. Pure.

use std::collections::BTreeMap;

use rehost_replication::{AmiRecord, Architecture, DiskJob, Encryption, ScheduledJob, ServerJob};
use time::{Duration, OffsetDateTime};

use crate::app::{App, AppServer};

/// One server's replication job; `architecture` overrides the server's own (`--architecture`).
pub fn server_job(app: &App, server: &AppServer, architecture: Option<Architecture>) -> ServerJob {
    let r = &server.replication;
    ServerJob {
        app: app.name.clone(),
        server: server.id.clone(),
        group: app.group_of(server).name.clone(),
        disks: server
            .disks
            .iter()
            .enumerate()
            .map(|(i, disk)| DiskJob {
                name: format!("disk{i}"),
                source: disk.source.clone(),
                format: disk.format,
            })
            .collect(),
        architecture: architecture.unwrap_or(server.architecture),
        boot_mode: server.boot_mode,
        ena_support: server.ena_support,
        license_type: r.license_type,
        encryption: r.encrypted.then(|| Encryption {
            kms_key_id: r.kms_key_id.clone(),
        }),
        keep_recent_amis: r.keep_recent_amis,
        tags: app.tags.clone(),
    }
}

/// One job per chosen server (all when `only` is empty), in launch order, with its schedule.
pub fn scheduled_jobs(
    app: &App,
    only: &[String],
    architecture: Option<Architecture>,
) -> Vec<ScheduledJob> {
    app.servers_in_launch_order()
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.id))
        .map(|s| ScheduledJob {
            job: server_job(app, s, architecture),
            frequency: s.replication.frequency,
            seed_time: s.replication.seed_time,
        })
        .collect()
}

/// A server whose latest AMI is recent enough to launch without replicating again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reused {
    pub server: String,
    pub ami_id: String,
    pub created_at: OffsetDateTime,
}

/// Splits jobs for `migrate --max-age`: the servers whose latest AMI is at most `max_age` old
/// (at `now`) are reused, the others replicated. Without a maximum age every server replicates.
pub fn split_fresh(
    jobs: Vec<ScheduledJob>,
    latest: &BTreeMap<String, AmiRecord>,
    max_age: Option<Duration>,
    now: OffsetDateTime,
) -> (Vec<ScheduledJob>, Vec<Reused>) {
    let mut stale = Vec::new();
    let mut reused = Vec::new();
    for scheduled in jobs {
        match (max_age, latest.get(&scheduled.job.server)) {
            (Some(age), Some(ami)) if now - ami.created_at <= age => reused.push(Reused {
                server: scheduled.job.server.clone(),
                ami_id: ami.ami_id.clone(),
                created_at: ami.created_at,
            }),
            _ => stale.push(scheduled),
        }
    }
    (stale, reused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{DiskFormat, Frequency};

    fn app() -> App {
        let text = concat!(
            "apiVersion: rehost/v1\nkind: Application\nname: shop\ntags: {Team: web}\n",
            "defaults:\n  launch: {instanceType: m5.large}\n",
            "  replication: {licenseType: BYOL, keepRecentAmis: 3}\n",
            "servers:\n",
            "  - {id: db, os: linux, architecture: arm64, bootMode: uefi,",
            " disks: [{source: db.img}, {source: /data/db2.img}]}\n",
            "  - {id: web, os: linux, disks: [{source: web.img}],",
            " replication: {runOnce: true, encrypted: true, kmsKeyId: alias/k}}\n",
            "groups:\n  - {name: web, servers: [web], dependsOn: [db]}\n",
            "  - {name: db, servers: [db]}\n",
        );
        crate::load::load_with(
            text.as_bytes(),
            std::path::Path::new("apps/shop.yaml"),
            |_| Default::default(),
        )
        .expect("valid")
        .app
    }

    #[test]
    fn jobs_carry_the_merged_settings_in_launch_order() {
        let app = app();
        let jobs = scheduled_jobs(&app, &[], None);
        let servers: Vec<&str> = jobs.iter().map(|j| j.job.server.as_str()).collect();
        assert_eq!(servers, ["db", "web"]);
        let db = &jobs[0].job;
        assert_eq!(db.architecture, Architecture::Arm64);
        assert_eq!(db.boot_mode, Some(rehost_replication::BootMode::Uefi));
        assert_eq!(db.license_type, rehost_replication::LicenseType::Byol);
        assert_eq!(db.keep_recent_amis, 3);
        assert_eq!(db.disks[0].source, std::path::Path::new("apps/db.img"));
        assert_eq!(db.disks[1].source, std::path::Path::new("/data/db2.img"));
        assert_eq!(db.disks[1].name, "disk1");
        assert_eq!(db.tags, [("Team".to_string(), "web".to_string())]);
        assert_eq!(db.encryption, None);
        assert_eq!(jobs[0].frequency, Frequency::Hours(12));
        assert_eq!(jobs[1].frequency, Frequency::Once);
        assert_eq!(
            jobs[1]
                .job
                .encryption
                .as_ref()
                .unwrap()
                .kms_key_id
                .as_deref(),
            Some("alias/k")
        );
        let only = scheduled_jobs(&app, &["web".into()], Some(Architecture::X86_64));
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].job.architecture, Architecture::X86_64);
    }

    /// `rehost replicate` opens each disk with the format the file declares or its extension
    /// gives, never one probed from the image.
    #[test]
    fn jobs_carry_each_disks_declared_or_derived_format() {
        let text = concat!(
            "apiVersion: rehost/v1\nkind: Application\nname: shop\n",
            "defaults:\n  launch: {instanceType: m5.large}\n",
            "servers:\n  - {id: db, os: linux, disks: [{source: boot.VMDK}, {source: /dev/sdb},",
            " {source: cloud.img, format: qcow2}, {source: export/disk-7, format: vhdx}]}\n",
            "groups:\n  - {name: db, servers: [db]}\n",
        );
        let app =
            crate::load::load_with(text.as_bytes(), std::path::Path::new("shop.yaml"), |_| {
                Default::default()
            })
            .expect("valid")
            .app;
        let job = server_job(&app, &app.servers[0], None);
        let formats: Vec<DiskFormat> = job.disks.iter().map(|d| d.format).collect();
        assert_eq!(
            formats,
            [
                DiskFormat::Vmdk,
                DiskFormat::Raw,
                DiskFormat::Qcow2,
                DiskFormat::Vhdx
            ]
        );
        assert_eq!(job.disks[3].source, std::path::Path::new("export/disk-7"));
    }

    #[test]
    fn only_amis_younger_than_the_maximum_age_are_reused() {
        let app = app();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let ami = |id: &str, hours: i64| AmiRecord {
            ami_id: id.into(),
            name: String::new(),
            run_id: String::new(),
            created_at: now - Duration::hours(hours),
            snapshot_ids: vec![],
            encrypted: false,
            kms_key_id: None,
        };
        let latest = BTreeMap::from([
            ("db".to_string(), ami("ami-1", 2)),
            ("web".to_string(), ami("ami-2", 7)),
        ]);
        let jobs = scheduled_jobs(&app, &[], None);
        let (stale, reused) = split_fresh(jobs.clone(), &latest, Some(Duration::hours(6)), now);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].job.server, "web");
        assert_eq!(reused.len(), 1);
        assert_eq!(reused[0].ami_id, "ami-1");
        let (stale, reused) = split_fresh(jobs, &latest, None, now);
        assert_eq!((stale.len(), reused.len()), (2, 0));
    }
}
