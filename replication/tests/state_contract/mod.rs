//! The state-store contract: every behaviour the engine and the CLI rely on, written against
//! `&dyn StateStore`, one test per behaviour. A backend runs the whole suite with one line,
//! `state_contract::suite!(name, fixture)`, where the fixture opens handles on one fresh store
//! and can damage stored text the way a broken or newer store would.
#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use rehost_replication::manifest::{Manifest, block_hash};
use rehost_replication::state::{
    AmiRecord, NewSnapshot, ServerKey, SnapshotCounts, StateStore, WrittenBlock,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Stored text to overwrite, as a damaged store (or a newer rehost) would hold it.
#[derive(Debug, Clone, Copy)]
pub enum Damage<'a> {
    RunStatus { run_id: &'a str, text: &'a str },
    RunPhase { run_id: &'a str, text: &'a str },
    SnapshotStatus { snapshot_id: &'a str, text: &'a str },
}

/// One fresh store of a backend.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A handle on the store; each call is another handle on the same store, as another
    /// process would open it.
    async fn open(&self) -> Arc<dyn StateStore>;
    /// Overwrites stored text behind the store's back.
    async fn damage(&self, damage: Damage<'_>);
    /// A handle on another, empty store of the same backend (a migration's destination).
    async fn open_other(&self) -> Arc<dyn StateStore>;
}

/// Instantiates the whole contract for a backend: `suite!(sqlite, SqliteFixture::new())`
/// makes a module `sqlite` with one test per behaviour, each with a fixture of its own.
macro_rules! suite {
    ($backend:ident, $fixture:expr) => {
        $crate::state_contract::suite!(@tests $backend, $fixture, [
            a_second_holder_of_the_lock_is_refused,
            a_server_is_claimed_by_one_holder_at_a_time,
            runs_resume_and_only_completed_runs_give_amis,
            one_run_per_server_is_in_progress,
            a_failed_run_keeps_its_error_until_it_completes,
            history_is_newest_first_and_limited,
            the_ami_name_of_a_run_is_fixed_once,
            snapshots_go_open_completing_completed,
            a_snapshot_recorded_twice_is_recorded_once,
            partial_counts_add_up_while_open,
            written_blocks_manifest_and_linear_checksum,
            abandoned_snapshots_are_forgotten_then_deleted,
            the_parent_is_the_newest_completed_snapshot_of_the_disk,
            newest_snapshot_per_disk,
            latest_amis_are_per_server_and_newest,
            records_of_one_server_are_not_seen_through_another,
            unknown_status_text_is_corrupt,
            a_server_moves_whole_and_moving_it_again_changes_nothing,
            a_destination_with_other_records_is_refused,
            a_migration_carries_the_account_binding,
            the_first_account_binding_wins_per_application,
            another_account_or_region_is_refused,
            recorded_amis_are_the_servers_available_ones_oldest_first,
            launches_are_replaced_whole_and_listed_newest_first,
            launches_of_one_application_are_not_seen_through_another,
            an_inspection_is_kept_per_server_and_replaced_whole,
            accepted_risks_are_appended_per_server_oldest_first,
            a_migration_carries_inspections_accepted_risks_and_launches,
            an_interrupted_migration_of_accepted_risks_is_finished_by_running_it_again,
            other_inspections_risks_or_launches_in_the_destination_are_refused_by_name,
        ]);
    };
    (@tests $backend:ident, $fixture:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let fixture = $fixture;
                    $crate::state_contract::$test(&fixture).await;
                }
            )*
        }
    };
}
pub(crate) use suite;

mod accounts;
mod claims;
mod guest;
mod launches;
mod migration;
mod runs;
mod snapshots;
mod transfer;

pub use accounts::*;
pub use claims::*;
pub use guest::*;
pub use launches::*;
pub use migration::*;
pub use runs::*;
pub use snapshots::*;
pub use transfer::*;

pub fn key(server: &str) -> ServerKey {
    ServerKey::new("shop", server)
}

fn ami(id: &str, run: &str, at: OffsetDateTime) -> AmiRecord {
    AmiRecord {
        ami_id: id.into(),
        name: format!("rehost-shop-web-{id}"),
        run_id: run.into(),
        created_at: at,
        snapshot_ids: vec!["snap-1".into()],
        encrypted: false,
        kms_key_id: None,
    }
}

pub fn new_snapshot(id: &str, run_id: &str, disk: &str) -> NewSnapshot {
    NewSnapshot {
        snapshot_id: id.into(),
        run_id: run_id.into(),
        disk: disk.into(),
        parent_snapshot_id: None,
        volume_size_gib: 1,
        block_count: 2048,
        encrypted: false,
        kms_key_arn: None,
    }
}

fn block(i: u64) -> WrittenBlock {
    WrittenBlock {
        index: i,
        xxh3: block_hash(&i.to_le_bytes()),
        sha256: Sha256::digest(i.to_le_bytes()).into(),
    }
}

/// A run of `server` begun now, with snapshot `id` of disk0 open in it; returns the run id.
pub async fn open_snapshot(s: &dyn StateStore, server: &ServerKey, id: &str) -> String {
    let now = OffsetDateTime::now_utc();
    let (run, _) = s.begin_run(server, "back", now).await.unwrap();
    s.insert_snapshot(server, &new_snapshot(id, &run.run_id, "disk0"), now)
        .await
        .unwrap();
    run.run_id
}

/// A run of `server` begun at `at`, with snapshot `id` of `disk` taken through completing to
/// completed at `done`.
async fn completed_snapshot(
    s: &dyn StateStore,
    server: &ServerKey,
    id: &str,
    disk: &str,
    at: OffsetDateTime,
    done: OffsetDateTime,
) -> String {
    let (run, _) = s.begin_run(server, "front", at).await.unwrap();
    s.insert_snapshot(server, &new_snapshot(id, &run.run_id, disk), at)
        .await
        .unwrap();
    s.mark_completing(
        server,
        id,
        &Manifest::from_hashes(vec![block(0).xxh3]),
        &SnapshotCounts::default(),
    )
    .await
    .unwrap();
    s.mark_snapshot_completed(server, id, done).await.unwrap();
    run.run_id
}
