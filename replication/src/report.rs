//! What `rehost replicate --output json` prints per server. Scripts rely on these field names.

use serde::{Deserialize, Serialize};

use crate::domain::{Architecture, BootMode};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerReport {
    pub server: String,
    pub ami_id: Option<String>,
    pub snapshots: Vec<SnapshotReport>,
    pub status: ReportStatus,
    pub error: Option<String>,
    /// The failure is a refusal of the server's disks by the source checks (a format that
    /// cannot be told, an image chain leaving its directory): the operator's to fix, not a
    /// run to retry.
    #[serde(default)]
    pub refused: bool,
    pub run_id: String,
    pub app: String,
    pub ami_name: Option<String>,
    /// What the AMI is registered with: the file's setting, `--architecture`, or what the
    /// inspection of the disks found (`boot_mode` null: EC2's default).
    #[serde(default)]
    pub architecture: Option<Architecture>,
    #[serde(default)]
    pub boot_mode: Option<BootMode>,
    /// True when this call continued a run that had been interrupted or had failed.
    pub resumed: bool,
    pub seconds: f64,
    /// Problems that did not fail the run (retention, cleanup of stale snapshots).
    pub warnings: Vec<String>,
    /// AMIs deregistered by retention after this run.
    pub deregistered_amis: Vec<String>,
    pub deleted_snapshots: Vec<String>,
}

impl ServerReport {
    /// A failed report with nothing done yet: where a run starts, and what a server that did
    /// not run here (or was stopped) reports.
    pub fn not_run(job: &crate::job::ServerJob) -> ServerReport {
        ServerReport {
            server: job.server.clone(),
            ami_id: None,
            snapshots: Vec::new(),
            status: ReportStatus::Failed,
            error: None,
            refused: false,
            run_id: String::new(),
            app: job.app.clone(),
            ami_name: None,
            architecture: Some(job.architecture),
            boot_mode: job.boot_mode,
            resumed: false,
            seconds: 0.0,
            warnings: Vec::new(),
            deregistered_amis: Vec::new(),
            deleted_snapshots: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotReport {
    pub disk: String,
    pub snapshot_id: String,
    pub parent_snapshot_id: Option<String>,
    /// Blocks of 512 KiB covering the disk.
    pub blocks_total: u64,
    /// Blocks read from the source (regions without data are known to be zeros and not read).
    pub blocks_scanned: u64,
    /// Blocks sent by this call (PutSnapshotBlock accepted).
    pub blocks_uploaded: u64,
    pub bytes_uploaded: u64,
    pub seconds: f64,
    /// Blocks written to the snapshot in all (ChangedBlocksCount), including those accepted
    /// before an interruption.
    pub blocks_changed: u64,
    /// Blocks an interrupted attempt had already written and this call did not resend.
    pub blocks_resumed: u64,
    pub volume_size_gib: u64,
    /// The finished snapshot of an interrupted run was reused as is.
    pub reused: bool,
}
