//! Errors of a replication, each naming the server and, where they apply, the disk, the block
//! and the AWS error code.

use crate::aws::AwsFailure;
use crate::source::SourceError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("server {server}, disk {disk}: {source}")]
    Source {
        server: String,
        disk: String,
        source: SourceError,
    },
    #[error("server {server}{}{}: {failure}", at_disk(disk), at_block(*block))]
    Aws {
        server: String,
        disk: Option<String>,
        block: Option<u64>,
        failure: Box<AwsFailure>,
    },
    #[error("server {server}: {source}")]
    State {
        server: String,
        source: Box<StateError>,
    },
    /// An open snapshot that EC2 still accepts cannot be continued with this run's settings
    /// (its parent's manifest is gone, the disk grew, the encryption changed): the engine gives
    /// it up and starts a fresh one.
    #[error("server {server}, disk {disk}: snapshot {snapshot_id} cannot be resumed: {why}")]
    CannotResume {
        server: String,
        disk: String,
        snapshot_id: String,
        why: String,
    },
    #[error("server {server}{}: {message}", at_disk(disk))]
    Invalid {
        server: String,
        disk: Option<String>,
        message: String,
    },
}

fn at_disk(disk: &Option<String>) -> String {
    disk.as_ref()
        .map(|d| format!(", disk {d}"))
        .unwrap_or_default()
}

fn at_block(block: Option<u64>) -> String {
    block.map(|b| format!(", block {b}")).unwrap_or_default()
}

impl ReplicationError {
    /// Whether the operator must fix a disk or its definition (a refused image, an unknown
    /// format) rather than retry.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ReplicationError::Source { source, .. } if source.is_refusal())
    }

    pub fn aws(server: &str, disk: Option<&str>, block: Option<u64>, failure: AwsFailure) -> Self {
        ReplicationError::Aws {
            server: server.to_string(),
            disk: disk.map(str::to_string),
            block,
            failure: Box::new(failure),
        }
    }

    pub fn state(server: &str, source: StateError) -> Self {
        ReplicationError::State {
            server: server.to_string(),
            source: Box::new(source),
        }
    }

    pub fn invalid(server: &str, disk: Option<&str>, message: impl Into<String>) -> Self {
        ReplicationError::Invalid {
            server: server.to_string(),
            disk: disk.map(str::to_string),
            message: message.into(),
        }
    }

    /// Whether a resumed snapshot must be given up for a fresh one: it cannot be continued with
    /// this run's settings, or EBS refused a block because the snapshot no longer accepts any
    /// or is gone.
    pub fn ends_resume(&self) -> bool {
        matches!(self, ReplicationError::CannotResume { .. })
            || matches!(
                self.aws_code(),
                Some("ValidationException" | "ResourceNotFoundException")
            )
    }

    /// The AWS error code, when an AWS call failed.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            ReplicationError::Aws { failure, .. } => Some(&failure.code),
            _ => None,
        }
    }
}
