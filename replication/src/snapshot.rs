//! EBS snapshot calls: the EBS direct APIs (StartSnapshot, PutSnapshotBlock, CompleteSnapshot)
//! and the EC2 view of a snapshot (its state, deletion). Retries are the SDK's.

use std::time::{Duration, Instant};

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::{ChecksumAggregationMethod, ChecksumAlgorithm, Tag};
use aws_sdk_ec2::types::SnapshotState;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;

use crate::aws::AwsFailure;
use crate::manifest::BLOCK_SIZE;

pub struct StartRequest<'a> {
    pub volume_size_gib: u64,
    pub parent_snapshot_id: Option<&'a str>,
    pub client_token: &'a str,
    pub description: &'a str,
    pub tags: &'a [(String, String)],
    pub encrypted: bool,
    pub kms_key_arn: Option<&'a str>,
    pub timeout_minutes: u32,
}

pub async fn start(
    ebs: &aws_sdk_ebs::Client,
    req: &StartRequest<'_>,
) -> Result<String, AwsFailure> {
    let mut call = ebs
        .start_snapshot()
        .volume_size(req.volume_size_gib as i64)
        .client_token(req.client_token)
        .description(req.description)
        .timeout(req.timeout_minutes.clamp(10, 4320) as i32)
        .set_parent_snapshot_id(req.parent_snapshot_id.map(str::to_string))
        .set_tags(Some(
            req.tags
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ));
    if req.encrypted {
        call = call
            .encrypted(true)
            .set_kms_key_arn(req.kms_key_arn.map(str::to_string));
    }
    let out = call
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("StartSnapshot", &e))?;
    let id = out
        .snapshot_id()
        .map(str::to_string)
        .ok_or_else(|| AwsFailure {
            operation: "StartSnapshot",
            code: "MissingSnapshotId".into(),
            message: "the response carries no snapshot id".into(),
        })?;
    match out.block_size() {
        Some(size) if size as usize != BLOCK_SIZE => {
            tracing::warn!(
                "snapshot {id}: StartSnapshot reports block size {size}; writing 524288-byte blocks anyway"
            )
        }
        _ => {}
    }
    Ok(id)
}

pub fn b64(digest: &[u8; 32]) -> String {
    B64.encode(digest)
}

pub async fn put_block(
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    index: u64,
    data: Bytes,
    sha256: &[u8; 32],
) -> Result<(), AwsFailure> {
    let index = i32::try_from(index).map_err(|_| AwsFailure {
        operation: "PutSnapshotBlock",
        code: "BlockIndexOutOfRange".into(),
        message: format!("block index {index} exceeds the API's range"),
    })?;
    ebs.put_snapshot_block()
        .snapshot_id(snapshot_id)
        .block_index(index)
        .data_length(data.len() as i32)
        // Bytes-backed: the SDK can replay the body when it retries.
        .block_data(ByteStream::from(data))
        .checksum(b64(sha256))
        .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("PutSnapshotBlock", &e))?;
    Ok(())
}

/// Completes a snapshot; `linear_checksum` covers every written block (none when nothing was).
pub async fn complete(
    ebs: &aws_sdk_ebs::Client,
    snapshot_id: &str,
    changed_blocks: u64,
    linear_checksum: Option<[u8; 32]>,
) -> Result<(), AwsFailure> {
    let mut call = ebs
        .complete_snapshot()
        .snapshot_id(snapshot_id)
        .changed_blocks_count(changed_blocks as i32);
    if let Some(sum) = linear_checksum {
        call = call
            .checksum(b64(&sum))
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .checksum_aggregation_method(ChecksumAggregationMethod::ChecksumAggregationLinear);
    }
    let out = call
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk("CompleteSnapshot", &e))?;
    if let Some(aws_sdk_ebs::types::Status::Error) = out.status() {
        return Err(AwsFailure {
            operation: "CompleteSnapshot",
            code: "SnapshotError".into(),
            message: format!("snapshot {snapshot_id} went to state error"),
        });
    }
    Ok(())
}

/// A snapshot as EC2 sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteState {
    Pending,
    Completed,
    Error,
    Missing,
    Other(String),
}

pub async fn remote_state(
    ec2: &aws_sdk_ec2::Client,
    snapshot_id: &str,
) -> Result<RemoteState, AwsFailure> {
    let out = match ec2
        .describe_snapshots()
        .snapshot_ids(snapshot_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let failure = AwsFailure::from_sdk("DescribeSnapshots", &e);
            return if failure.is_not_found() {
                Ok(RemoteState::Missing)
            } else {
                Err(failure)
            };
        }
    };
    let Some(snap) = out
        .snapshots()
        .iter()
        .find(|s| s.snapshot_id() == Some(snapshot_id))
    else {
        return Ok(RemoteState::Missing);
    };
    Ok(match snap.state() {
        Some(SnapshotState::Pending) => RemoteState::Pending,
        Some(SnapshotState::Completed) => RemoteState::Completed,
        Some(SnapshotState::Error) => RemoteState::Error,
        Some(other) => RemoteState::Other(other.as_str().to_string()),
        None => RemoteState::Other("unknown".into()),
    })
}

/// Deletes a snapshot; one already gone is fine.
pub async fn delete(ec2: &aws_sdk_ec2::Client, snapshot_id: &str) -> Result<(), AwsFailure> {
    match ec2.delete_snapshot().snapshot_id(snapshot_id).send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let failure = AwsFailure::from_sdk("DeleteSnapshot", &e);
            if failure.is_not_found() {
                Ok(())
            } else {
                Err(failure)
            }
        }
    }
}

/// Polls until every snapshot is completed (EBS finishes a completed direct-API snapshot
/// asynchronously; RegisterImage needs it done). Bounded by `timeout`.
pub async fn wait_completed(
    ec2: &aws_sdk_ec2::Client,
    snapshot_ids: &[String],
    timeout: Duration,
    interval: Duration,
) -> Result<(), AwsFailure> {
    let deadline = Instant::now() + timeout;
    for id in snapshot_ids {
        loop {
            match remote_state(ec2, id).await? {
                RemoteState::Completed => break,
                RemoteState::Pending | RemoteState::Other(_) if Instant::now() < deadline => {
                    tokio::time::sleep(interval).await;
                }
                state => {
                    return Err(AwsFailure {
                        operation: "DescribeSnapshots",
                        code: "SnapshotNotCompleted".into(),
                        message: format!(
                            "snapshot {id} is {state:?} after waiting {} s",
                            timeout.as_secs()
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}
