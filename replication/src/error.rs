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

    /// The AWS error code, when an AWS call failed.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            ReplicationError::Aws { failure, .. } => Some(&failure.code),
            _ => None,
        }
    }
}
