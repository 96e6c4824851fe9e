//! rehost's replication engine: reads each disk of a server (raw, block device, qcow2, VMDK,
//! VHD, VHDX), sends the 512 KiB blocks that changed since the last run to a new EBS snapshot
//! through the EBS direct APIs, and registers an AMI from the snapshots.
//!
//! Entry points: [`Replicator::replicate`] for one server, [`aws::load_sdk_config`] for the AWS
//! configuration every rehost client shares, [`state::StateStore`] for the state (implemented
//! by [`state::SqliteStore`]) and [`schedule::next_run`] for `--watch`.

pub mod ami;
pub mod aws;
pub mod buckets;
pub mod clock;
pub mod domain;
mod engine;
pub mod error;
pub mod ids;
pub mod inspect;
pub mod job;
pub mod manifest;
mod progress;
mod recorder;
pub mod report;
pub mod scan;
pub mod schedule;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod tags;
pub mod watch;
pub mod worker;

pub use domain::{Architecture, BootMode, Choice, DiskFormat, Frequency, LicenseType};
pub use engine::{ReplicateOptions, Replicator};
pub use error::ReplicationError;
pub use ids::{ami_name, client_token};
pub use job::{DiskJob, Encryption, ServerJob};
pub use progress::ProgressMode;
pub use report::{ReportStatus, ServerReport, SnapshotReport};
pub use state::{
    AmiRecord, AppLock, AppLockGuard, RunRecord, ServerKey, SqliteStore, StateError, StateStore,
};
pub use watch::ScheduledJob;
