//! Where a disk of an interrupted run picks up: a pure decision from what the state recorded
//! for the disk's snapshot in this run and what EC2 shows for it. The engine carries the step
//! out (engine/disk.rs); nothing here talks to AWS or the store.

use crate::snapshot::RemoteState;
use crate::state::{SnapshotRecord, SnapshotStatus};

use super::encryption::ResolvedEncryption;

/// What to do with a disk's snapshot in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DiskStep {
    /// Nothing usable recorded: start a new snapshot.
    StartFresh,
    /// Completed earlier in this run: use it as it is.
    Reuse,
    /// Recorded as open or completing: ask EC2 what it shows, then decide again.
    LookUp,
    /// Every block was accepted and EC2 still has it pending: send CompleteSnapshot (again;
    /// its answer may have been lost), then record it completed.
    Complete,
    /// Every block was accepted and EC2 shows it completed: record it completed.
    RecordCompleted,
    /// Open and still accepting blocks: continue it, skipping the blocks it accepted.
    Resume,
    /// It cannot be continued: give it up (forget it, delete it in AWS), then decide again.
    Abandon { why: String },
}

/// The step for a disk whose snapshot in this run the state records with status `recorded`
/// (`None`: none recorded), and which EC2 shows as `remote` (`None`: not asked yet).
pub(super) fn disk_step(
    recorded: Option<SnapshotStatus>,
    remote: Option<&RemoteState>,
) -> DiskStep {
    use SnapshotStatus as S;
    match (recorded, remote) {
        // A snapshot given up earlier is not this run's any more.
        (None | Some(S::Abandoned | S::Deleted), _) => DiskStep::StartFresh,
        (Some(S::Completed), _) => DiskStep::Reuse,
        (Some(S::Open | S::Completing), None) => DiskStep::LookUp,
        (Some(S::Completing), Some(RemoteState::Completed)) => DiskStep::RecordCompleted,
        (Some(S::Completing), Some(RemoteState::Pending | RemoteState::Other(_))) => {
            DiskStep::Complete
        }
        // An open snapshot is `pending` in AWS. (The emulator reports `completed` for one still
        // accepting blocks; on AWS a snapshot we never completed cannot be `completed`, and if it
        // were, its first PutSnapshotBlock would be refused and the disk would start afresh.)
        (Some(S::Open), Some(RemoteState::Pending | RemoteState::Completed)) => DiskStep::Resume,
        (Some(S::Open | S::Completing), Some(state)) => DiskStep::Abandon {
            why: format!("it is {state:?}"),
        },
    }
}

/// Why an open snapshot that EC2 still accepts cannot be continued with this run's settings,
/// if it cannot: its parent's manifest is gone (the unchanged blocks could not be told
/// apart), the disk grew past it, or the encryption settings changed.
pub(super) fn resume_blocker(
    snapshot: &SnapshotRecord,
    parent_manifest_known: bool,
    needed_gib: u64,
    encryption: &ResolvedEncryption,
) -> Option<&'static str> {
    if snapshot.parent_snapshot_id.is_some() && !parent_manifest_known {
        Some("its parent's manifest is gone")
    } else if snapshot.volume_size_gib < needed_gib {
        Some("the disk grew since it was started")
    } else if !encryption.matches(snapshot) {
        Some("the encryption settings changed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    const ALL_REMOTE: [RemoteState; 5] = [
        RemoteState::Pending,
        RemoteState::Completed,
        RemoteState::Error,
        RemoteState::Missing,
        RemoteState::Other(String::new()),
    ];

    #[test]
    fn nothing_recorded_starts_fresh_without_asking_ec2() {
        assert_eq!(disk_step(None, None), DiskStep::StartFresh);
    }

    #[test]
    fn a_given_up_snapshot_is_not_continued() {
        for status in [SnapshotStatus::Abandoned, SnapshotStatus::Deleted] {
            assert_eq!(disk_step(Some(status), None), DiskStep::StartFresh);
            assert_eq!(
                disk_step(Some(status), Some(&RemoteState::Pending)),
                DiskStep::StartFresh
            );
        }
    }

    #[test]
    fn a_completed_snapshot_is_reused_whatever_ec2_shows() {
        assert_eq!(
            disk_step(Some(SnapshotStatus::Completed), None),
            DiskStep::Reuse
        );
        for remote in &ALL_REMOTE {
            assert_eq!(
                disk_step(Some(SnapshotStatus::Completed), Some(remote)),
                DiskStep::Reuse
            );
        }
    }

    #[test]
    fn open_and_completing_snapshots_are_looked_up_first() {
        for status in [SnapshotStatus::Open, SnapshotStatus::Completing] {
            assert_eq!(disk_step(Some(status), None), DiskStep::LookUp);
        }
    }

    #[test]
    fn once_ec2_was_asked_the_step_is_final() {
        // The engine asks EC2 on LookUp and decides again: that must end.
        for &status in &[SnapshotStatus::Open, SnapshotStatus::Completing] {
            for remote in &ALL_REMOTE {
                assert_ne!(disk_step(Some(status), Some(remote)), DiskStep::LookUp);
            }
        }
    }

    #[test]
    fn a_completing_snapshot_completed_in_ec2_is_only_recorded() {
        assert_eq!(
            disk_step(
                Some(SnapshotStatus::Completing),
                Some(&RemoteState::Completed)
            ),
            DiskStep::RecordCompleted
        );
    }

    #[test]
    fn a_completing_snapshot_still_pending_is_completed_again() {
        for remote in [
            RemoteState::Pending,
            RemoteState::Other("recoverable".into()),
        ] {
            assert_eq!(
                disk_step(Some(SnapshotStatus::Completing), Some(&remote)),
                DiskStep::Complete
            );
        }
    }

    #[test]
    fn an_open_snapshot_ec2_still_has_is_resumed() {
        // `completed` is how the emulator shows an open direct-API snapshot.
        for remote in [RemoteState::Pending, RemoteState::Completed] {
            assert_eq!(
                disk_step(Some(SnapshotStatus::Open), Some(&remote)),
                DiskStep::Resume
            );
        }
    }

    #[test]
    fn a_snapshot_in_error_or_gone_is_abandoned() {
        for status in [SnapshotStatus::Open, SnapshotStatus::Completing] {
            for remote in [RemoteState::Error, RemoteState::Missing] {
                let step = disk_step(Some(status), Some(&remote));
                assert_eq!(
                    step,
                    DiskStep::Abandon {
                        why: format!("it is {remote:?}")
                    }
                );
            }
        }
        assert!(matches!(
            disk_step(
                Some(SnapshotStatus::Open),
                Some(&RemoteState::Other("recoverable".into()))
            ),
            DiskStep::Abandon { .. }
        ));
    }

    fn open_snapshot(parent: Option<&str>, gib: u64, kms: Option<&str>) -> SnapshotRecord {
        SnapshotRecord {
            snapshot_id: "snap-1".into(),
            run_id: "r1".into(),
            disk: "disk0".into(),
            parent_snapshot_id: parent.map(str::to_string),
            status: SnapshotStatus::Open,
            volume_size_gib: gib,
            block_count: gib * 2048,
            encrypted: kms.is_some(),
            kms_key_arn: kms.map(str::to_string),
            started_at: OffsetDateTime::UNIX_EPOCH,
            completed_at: None,
            counts: Default::default(),
        }
    }

    fn plain() -> ResolvedEncryption {
        ResolvedEncryption {
            enabled: false,
            kms_key_arn: None,
        }
    }

    #[test]
    fn a_matching_open_snapshot_can_be_resumed() {
        assert_eq!(
            resume_blocker(&open_snapshot(None, 2, None), false, 2, &plain()),
            None
        );
        assert_eq!(
            resume_blocker(&open_snapshot(Some("snap-0"), 2, None), true, 1, &plain()),
            None
        );
    }

    #[test]
    fn an_increment_whose_parent_manifest_is_gone_cannot_be_resumed() {
        assert_eq!(
            resume_blocker(&open_snapshot(Some("snap-0"), 2, None), false, 2, &plain()),
            Some("its parent's manifest is gone")
        );
    }

    #[test]
    fn a_grown_disk_cannot_continue_a_smaller_snapshot() {
        assert_eq!(
            resume_blocker(&open_snapshot(None, 2, None), false, 3, &plain()),
            Some("the disk grew since it was started")
        );
    }

    #[test]
    fn changed_encryption_cannot_continue_a_snapshot() {
        let keyed = ResolvedEncryption {
            enabled: true,
            kms_key_arn: Some("arn:aws:kms:us-east-1:1:key/a".into()),
        };
        assert_eq!(
            resume_blocker(&open_snapshot(None, 2, None), false, 2, &keyed),
            Some("the encryption settings changed")
        );
        let other = open_snapshot(None, 2, Some("arn:aws:kms:us-east-1:1:key/b"));
        assert_eq!(
            resume_blocker(&other, false, 2, &keyed),
            Some("the encryption settings changed")
        );
        let same = open_snapshot(None, 2, Some("arn:aws:kms:us-east-1:1:key/a"));
        assert_eq!(resume_blocker(&same, false, 2, &keyed), None);
    }
}
