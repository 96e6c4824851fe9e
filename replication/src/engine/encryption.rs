//! A server's encryption setting resolved for StartSnapshot, which takes only key ARNs.

use crate::aws::AwsFailure;
use crate::error::ReplicationError;
use crate::job::ServerJob;
use crate::state::SnapshotRecord;

use super::Replicator;

/// Encryption as this run applies it: on or off, and the KMS key's ARN (`None`: the account's
/// default EBS key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResolvedEncryption {
    pub enabled: bool,
    pub kms_key_arn: Option<String>,
}

impl ResolvedEncryption {
    /// Whether a snapshot was made with these settings (an increment or a resumed snapshot
    /// must be).
    pub fn matches(&self, snapshot: &SnapshotRecord) -> bool {
        snapshot.encrypted == self.enabled && snapshot.kms_key_arn == self.kms_key_arn
    }
}

impl Replicator {
    /// Resolves the job's key id or alias to its ARN through KMS (an ARN is taken as is).
    pub(super) async fn resolve_encryption(
        &self,
        job: &ServerJob,
    ) -> Result<ResolvedEncryption, ReplicationError> {
        let Some(enc) = &job.encryption else {
            return Ok(ResolvedEncryption {
                enabled: false,
                kms_key_arn: None,
            });
        };
        let Some(key) = &enc.kms_key_id else {
            return Ok(ResolvedEncryption {
                enabled: true,
                kms_key_arn: None,
            });
        };
        if key.starts_with("arn:") && key.contains(":key/") {
            return Ok(ResolvedEncryption {
                enabled: true,
                kms_key_arn: Some(key.clone()),
            });
        }
        let out = self
            .kms
            .describe_key()
            .key_id(key)
            .send()
            .await
            .map_err(|e| {
                ReplicationError::aws(
                    &job.server,
                    None,
                    None,
                    AwsFailure::from_sdk("DescribeKey", &e),
                )
            })?;
        let arn = out
            .key_metadata()
            .and_then(|m| m.arn())
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        match arn {
            Some(arn) => Ok(ResolvedEncryption {
                enabled: true,
                kms_key_arn: Some(arn),
            }),
            None => Err(ReplicationError::invalid(
                &job.server,
                None,
                format!("KMS key {key} has no ARN"),
            )),
        }
    }
}
