//! Retention: keep a server's `keepRecentAmis` newest AMIs, deregister the rest and delete
//! their snapshots unless something still needs them. What to remove is a pure plan
//! ([`retention_plan`]); [`Replicator::apply_retention`] carries it out.
//!
//! Only what this application's state recorded is ever removed: an AMI is a candidate when the
//! state recorded it for the server (EC2's tags alone prove nothing: anyone who can tag an
//! image can make it look like rehost's, and another state file's AMIs carry the same tags),
//! and a retired AMI's snapshots are those its state record names, never its tags.

use std::collections::{BTreeMap, BTreeSet};

use crate::ami::{self, FoundImage};
use crate::error::ReplicationError;
use crate::report::ServerReport;
use crate::snapshot;
use crate::state::AmiRecord;
use crate::tags;

use super::{Replicator, RunContext};

/// An AMI to deregister and those of its snapshots to delete after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Retire {
    pub ami_id: String,
    pub name: String,
    pub delete_snapshots: Vec<String>,
}

/// What retention removes, oldest AMI first, given the server's images as EC2 shows them (any
/// order; those already deregistered are ignored), the AMIs the state recorded for the server,
/// the AMI this run made (`current`, always kept whatever the clocks say), how many to keep (0
/// keeps all) and the snapshots protected besides those of kept AMIs (this run's, and each
/// disk's newest, the parent of the next increment).
///
/// Only images the state recorded count and can be retired; any other image (hand-tagged, or
/// another state's) is left alone, and so are the snapshots it names. Recorded images are
/// ordered by creation date, then name; the `keep` newest stay (the current one counts among
/// them). A retired AMI's snapshots (from its state record) are deleted unless a kept or
/// unrecorded image uses them or they are protected.
pub(super) fn retention_plan(
    mut images: Vec<FoundImage>,
    recorded: &[AmiRecord],
    current: Option<&str>,
    keep: usize,
    protected: &BTreeSet<String>,
) -> Vec<Retire> {
    if keep == 0 {
        return Vec::new();
    }
    let records: BTreeMap<&str, &AmiRecord> =
        recorded.iter().map(|r| (r.ami_id.as_str(), r)).collect();
    images.retain(|i| i.state != "deregistered");
    images.sort_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)));
    let (ours, unrecorded): (Vec<_>, Vec<_>) = images
        .into_iter()
        .partition(|i| records.contains_key(i.ami_id.as_str()));
    let (current, mut others): (Vec<_>, Vec<_>) = ours
        .into_iter()
        .partition(|i| Some(i.ami_id.as_str()) == current);
    let drop_count = (others.len() + current.len())
        .saturating_sub(keep)
        .min(others.len());
    let kept = others.split_off(drop_count);
    let old = others;
    let mut needed = protected.clone();
    for img in current.iter().chain(&kept).chain(&unrecorded) {
        needed.extend(tags::snapshot_ids(&img.tags));
        needed.extend(img.mapped_snapshots.iter().cloned());
        if let Some(record) = records.get(img.ami_id.as_str()) {
            needed.extend(record.snapshot_ids.iter().cloned());
        }
    }
    old.into_iter()
        .map(|img| Retire {
            delete_snapshots: records[img.ami_id.as_str()]
                .snapshot_ids
                .iter()
                .filter(|s| !needed.contains(*s))
                .cloned()
                .collect(),
            ami_id: img.ami_id,
            name: img.name,
        })
        .collect()
}

impl Replicator {
    /// Applies the server's retention after a completed run, recording what it removed in the
    /// report and the state. A failure stops it (the caller turns it into a warning); what was
    /// removed so far stays recorded.
    pub(super) async fn apply_retention(
        &self,
        ctx: &RunContext<'_>,
        report: &mut ServerReport,
    ) -> Result<(), ReplicationError> {
        let keep = ctx.job.keep_recent_amis as usize;
        if keep == 0 {
            return Ok(());
        }
        let images = ami::server_images(&self.ec2, &ctx.job.app, &ctx.job.server)
            .await
            .map_err(ctx.aws_err(None))?;
        let mut protected: BTreeSet<String> = report
            .snapshots
            .iter()
            .map(|s| s.snapshot_id.clone())
            .collect();
        protected.extend(
            self.store
                .newest_snapshot_per_disk(&ctx.key)
                .await
                .map_err(ctx.state_err())?,
        );
        let recorded = self
            .store
            .recorded_amis(&ctx.key)
            .await
            .map_err(ctx.state_err())?;
        let plan = retention_plan(
            images,
            &recorded,
            report.ami_id.as_deref(),
            keep,
            &protected,
        );
        for retire in plan {
            ami::deregister(&self.ec2, &retire.ami_id)
                .await
                .map_err(ctx.aws_err(None))?;
            tracing::info!(
                "server {}: retention deregistered AMI {} ({})",
                ctx.job.server,
                retire.ami_id,
                retire.name
            );
            self.store
                .mark_ami_deregistered(&ctx.key, &retire.ami_id)
                .await
                .map_err(ctx.state_err())?;
            report.deregistered_amis.push(retire.ami_id);
            for snap in retire.delete_snapshots {
                snapshot::delete(&self.ec2, &snap)
                    .await
                    .map_err(ctx.aws_err(None))?;
                self.store
                    .mark_snapshot_deleted(&ctx.key, &snap)
                    .await
                    .map_err(ctx.state_err())?;
                report.deleted_snapshots.push(snap);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, created: &str, snapshots: &[&str]) -> FoundImage {
        FoundImage {
            ami_id: id.into(),
            name: format!("rehost-shop-web-{created}"),
            state: "available".into(),
            creation_date: created.into(),
            tags: snapshots
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("{}disk{i}", tags::SNAPSHOT_PREFIX), s.to_string()))
                .collect(),
            mapped_snapshots: Vec::new(),
        }
    }

    /// What the state recorded for an image: its id and the snapshots its tags name.
    fn record(img: &FoundImage) -> AmiRecord {
        AmiRecord {
            ami_id: img.ami_id.clone(),
            name: img.name.clone(),
            run_id: "r".into(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            snapshot_ids: tags::snapshot_ids(&img.tags),
            encrypted: false,
            kms_key_id: None,
        }
    }

    /// The plan when the state recorded every image (as the tags describe it).
    fn plan_all(
        images: Vec<FoundImage>,
        current: Option<&str>,
        keep: usize,
        protected: &BTreeSet<String>,
    ) -> Vec<Retire> {
        let recorded: Vec<AmiRecord> = images.iter().map(record).collect();
        retention_plan(images, &recorded, current, keep, protected)
    }

    fn ids(plan: &[Retire]) -> Vec<&str> {
        plan.iter().map(|r| r.ami_id.as_str()).collect()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn keep_zero_keeps_everything() {
        let images = vec![image("ami-1", "1", &["s1"]), image("ami-2", "2", &["s2"])];
        assert!(plan_all(images, Some("ami-2"), 0, &none()).is_empty());
    }

    #[test]
    fn the_oldest_beyond_keep_go_with_their_snapshots() {
        let images = vec![
            image("ami-3", "3", &["s3"]),
            image("ami-1", "1", &["s1"]),
            image("ami-4", "4", &["s4"]),
            image("ami-2", "2", &["s2"]),
        ];
        let plan = plan_all(images, Some("ami-4"), 2, &none());
        assert_eq!(ids(&plan), ["ami-1", "ami-2"], "oldest first");
        assert_eq!(plan[0].delete_snapshots, ["s1"]);
        assert_eq!(plan[1].delete_snapshots, ["s2"]);
    }

    #[test]
    fn fewer_images_than_keep_remove_nothing() {
        let images = vec![image("ami-1", "1", &["s1"]), image("ami-2", "2", &["s2"])];
        assert!(plan_all(images, Some("ami-2"), 2, &none()).is_empty());
    }

    #[test]
    fn the_current_ami_is_kept_even_when_its_clock_says_it_is_oldest() {
        let images = vec![
            image("ami-new", "0", &["sn"]),
            image("ami-1", "1", &["s1"]),
            image("ami-2", "2", &["s2"]),
        ];
        let plan = plan_all(images, Some("ami-new"), 1, &none());
        assert_eq!(ids(&plan), ["ami-1", "ami-2"]);
        let images = vec![image("ami-1", "1", &["s1"]), image("ami-2", "2", &["s2"])];
        let plan = plan_all(images, Some("ami-1"), 2, &none());
        assert!(plan.is_empty(), "current + one other fit keep = 2");
    }

    #[test]
    fn equal_creation_dates_are_ordered_by_name() {
        let mut a = image("ami-a", "1", &["sa"]);
        let mut b = image("ami-b", "1", &["sb"]);
        a.name = "rehost-x-2".into();
        b.name = "rehost-x-1".into();
        let plan = plan_all(
            vec![a, b, image("ami-c", "2", &[])],
            Some("ami-c"),
            2,
            &none(),
        );
        assert_eq!(ids(&plan), ["ami-b"]);
    }

    #[test]
    fn deregistered_images_are_ignored() {
        let mut gone = image("ami-0", "0", &["s0"]);
        gone.state = "deregistered".into();
        let images = vec![
            gone,
            image("ami-1", "1", &["s1"]),
            image("ami-2", "2", &["s2"]),
        ];
        let plan = plan_all(images, Some("ami-2"), 1, &none());
        assert_eq!(ids(&plan), ["ami-1"]);
    }

    #[test]
    fn snapshots_a_kept_ami_uses_are_not_deleted() {
        // disk1 never changed between the two oldest runs and the kept one: shared snapshot.
        let images = vec![
            image("ami-1", "1", &["s1", "shared"]),
            image("ami-2", "2", &["s2", "shared"]),
        ];
        let plan = plan_all(images, Some("ami-2"), 1, &none());
        assert_eq!(plan[0].delete_snapshots, ["s1"]);
    }

    #[test]
    fn protected_snapshots_are_not_deleted() {
        let images = vec![
            image("ami-1", "1", &["s1", "parent"]),
            image("ami-2", "2", &["s2"]),
        ];
        let protected = BTreeSet::from(["parent".to_string()]);
        let plan = plan_all(images, Some("ami-2"), 1, &protected);
        assert_eq!(plan[0].delete_snapshots, ["s1"]);
    }

    #[test]
    fn without_a_current_ami_the_newest_are_kept() {
        let images = vec![
            image("ami-1", "1", &["s1"]),
            image("ami-2", "2", &["s2"]),
            image("ami-3", "3", &["s3"]),
        ];
        let plan = plan_all(images, None, 2, &none());
        assert_eq!(ids(&plan), ["ami-1"]);
    }

    /// Issue 8 item 15: an image tagged as this server's that the state did not record (made
    /// through another state file, or tagged by hand) is never retired, does not count toward
    /// `keep`, and keeps its snapshots, even one a retired image's tags also name.
    #[test]
    fn an_image_the_state_did_not_record_is_never_retired() {
        let foreign = image("ami-foreign", "0", &["s-foreign", "s-shared"]);
        let ours = vec![
            image("ami-1", "1", &["s1"]),
            image("ami-2", "2", &["s2"]),
            image("ami-3", "3", &["s3"]),
        ];
        let mut recorded: Vec<AmiRecord> = ours.iter().map(record).collect();
        recorded[0].snapshot_ids.push("s-shared".into());
        let mut images = ours;
        images.insert(0, foreign);
        let plan = retention_plan(images, &recorded, Some("ami-3"), 2, &none());
        assert_eq!(
            ids(&plan),
            ["ami-1"],
            "the foreign image is neither removed nor counted"
        );
        assert_eq!(
            plan[0].delete_snapshots,
            ["s1"],
            "s-shared is the foreign image's too"
        );
        let only_foreign = vec![image("ami-foreign", "0", &["s-foreign"])];
        assert!(retention_plan(only_foreign, &[], None, 1, &none()).is_empty());
    }

    /// A recorded image whose tags were changed to name another snapshot: the snapshots deleted
    /// with it are those the state recorded, never what its tags say.
    #[test]
    fn a_retired_amis_snapshots_come_from_the_state_not_its_tags() {
        let old = image("ami-1", "1", &["s1"]);
        let recorded = vec![record(&old), record(&image("ami-2", "2", &["s2"]))];
        let mut retagged = old;
        retagged.tags = vec![(format!("{}disk0", tags::SNAPSHOT_PREFIX), "victim".into())];
        let images = vec![retagged, image("ami-2", "2", &["s2"])];
        let plan = retention_plan(images, &recorded, Some("ami-2"), 1, &none());
        assert_eq!(ids(&plan), ["ami-1"]);
        assert_eq!(plan[0].delete_snapshots, ["s1"]);
    }
}
