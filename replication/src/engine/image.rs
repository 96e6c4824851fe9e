//! The run's AMI: registered once from the completed snapshots (boot disk as root) under a name
//! fixed in the state, found again by that name after an interruption, tagged, and waited for.

use time::OffsetDateTime;

use crate::ami::{self, AmiSpec, DiskImage, FoundImage};
use crate::error::ReplicationError;
use crate::ids::ami_name;
use crate::job::ServerJob;
use crate::report::SnapshotReport;
use crate::state::AmiRecord;
use crate::tags;

use super::encryption::ResolvedEncryption;
use super::{Replicator, RunContext};

impl Replicator {
    /// Registers the run's AMI, or finds the one an interrupted attempt registered (by name).
    pub(super) async fn ensure_ami(
        &self,
        ctx: &RunContext<'_>,
        disks: &[SnapshotReport],
    ) -> Result<AmiRecord, ReplicationError> {
        let job = ctx.job;
        let proposed = ami_name(&job.app, &job.server, OffsetDateTime::now_utc());
        let name = self
            .store
            .ami_name_for(&ctx.key, &ctx.run_id, &proposed)
            .await
            .map_err(ctx.state_err())?;
        let wanted = ami_tags(job, &ctx.run_id, disks, &ctx.encryption);

        let existing = ami::find_by_name(&self.ec2, &name)
            .await
            .map_err(ctx.aws_err(None))?;
        let image = match existing.into_iter().next() {
            Some(img) => {
                if let Some(other) = img.tag(tags::RUN_ID).filter(|r| *r != ctx.run_id) {
                    return Err(ReplicationError::invalid(
                        &job.server,
                        None,
                        format!("AMI name {name} is taken by {} of run {other}", img.ami_id),
                    ));
                }
                tracing::info!(
                    "server {}: found AMI {} ({name}) registered earlier by this run",
                    job.server,
                    img.ami_id
                );
                img
            }
            None => self.register(ctx, &name, disks, &wanted).await?,
        };
        ami::ensure_tags(&self.ec2, &image, &wanted)
            .await
            .map_err(ctx.aws_err(None))?;
        let image = ami::wait_available(
            &self.ec2,
            &image.ami_id,
            self.opts.wait_timeout,
            self.opts.poll_interval,
        )
        .await
        .map_err(ctx.aws_err(None))?;
        Ok(AmiRecord {
            ami_id: image.ami_id,
            name,
            run_id: ctx.run_id.clone(),
            created_at: OffsetDateTime::now_utc(),
            snapshot_ids: disks.iter().map(|d| d.snapshot_id.clone()).collect(),
            encrypted: ctx.encryption.enabled,
            kms_key_id: ctx.encryption.kms_key_arn.clone(),
        })
    }

    async fn register(
        &self,
        ctx: &RunContext<'_>,
        name: &str,
        disks: &[SnapshotReport],
        tags: &[(String, String)],
    ) -> Result<FoundImage, ReplicationError> {
        let job = ctx.job;
        let images: Vec<DiskImage<'_>> = disks
            .iter()
            .map(|d| DiskImage {
                disk: &d.disk,
                snapshot_id: &d.snapshot_id,
                volume_size_gib: d.volume_size_gib,
            })
            .collect();
        let description = format!("rehost {}/{} run {}", job.app, job.server, ctx.run_id);
        let spec = AmiSpec {
            name,
            description: &description,
            architecture: job.architecture,
            boot_mode: job.boot_mode,
            ena_support: job.ena_support,
            disks: &images,
            tags,
        };
        let ami_id = match ami::register(&self.ec2, &spec).await {
            Ok(id) => id,
            // A retried RegisterImage whose first attempt went through.
            Err(f) if f.code == "InvalidAMIName.Duplicate" => ami::find_by_name(&self.ec2, name)
                .await
                .map_err(ctx.aws_err(None))?
                .into_iter()
                .next()
                .map(|i| i.ami_id)
                .ok_or_else(|| ctx.aws_err(None)(f))?,
            Err(f) => return Err(ctx.aws_err(None)(f)),
        };
        tracing::info!("server {}: registered AMI {ami_id} ({name})", job.server);
        ami::describe(&self.ec2, &ami_id)
            .await
            .map_err(ctx.aws_err(None))?
            .ok_or_else(|| {
                ReplicationError::invalid(
                    &job.server,
                    None,
                    format!("AMI {ami_id} not found right after registering it"),
                )
            })
    }
}

/// Tags on snapshots and AMIs: the application's own, then rehost's.
pub(super) fn common_tags(job: &ServerJob, run_id: &str) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = job
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("rehost:"))
        .cloned()
        .collect();
    t.extend([
        (tags::APP.into(), job.app.clone()),
        (tags::GROUP.into(), job.group.clone()),
        (tags::SERVER.into(), job.server.clone()),
        (tags::RUN_ID.into(), run_id.to_string()),
        (
            tags::LICENSE_TYPE.into(),
            job.license_type.as_tag().to_string(),
        ),
    ]);
    t
}

/// The AMI's tags: the common ones, each disk's snapshot, all snapshot ids when they fit in
/// one tag value, and the encryption.
fn ami_tags(
    job: &ServerJob,
    run_id: &str,
    disks: &[SnapshotReport],
    encryption: &ResolvedEncryption,
) -> Vec<(String, String)> {
    let mut wanted = common_tags(job, run_id);
    for d in disks {
        wanted.push((
            format!("{}{}", tags::SNAPSHOT_PREFIX, d.disk),
            d.snapshot_id.clone(),
        ));
    }
    let joined = disks
        .iter()
        .map(|d| d.snapshot_id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    if joined.len() <= 256 {
        wanted.push((tags::SNAPSHOT_IDS.into(), joined));
    }
    wanted.push((tags::ENCRYPTED.into(), encryption.enabled.to_string()));
    if let Some(k) = &encryption.kms_key_arn {
        wanted.push((tags::KMS_KEY.into(), k.clone()));
    }
    wanted
}
