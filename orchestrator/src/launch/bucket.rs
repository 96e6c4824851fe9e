//! The S3 bucket rehost owns for templates too large to send inline:
//! `rehost-templates-<account>-<region>`, encrypted, never public, objects expiring after a week
//! (CloudFormation keeps its own copy once a stack or change set exists).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, CreateBucketConfiguration,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use sha2::{Digest, Sha256};

use crate::launch::{AwsClients, LaunchError, aws};

pub fn bucket_name(account: &str, region: &str) -> String {
    format!("rehost-templates-{account}-{region}")
}

/// Creates the bucket if needed and makes sure its protections are in place (idempotent: a
/// bucket left half-configured by an interrupted run is finished here).
pub async fn ensure_bucket(clients: &AwsClients, bucket: &str) -> Result<(), LaunchError> {
    let exists = clients.s3.head_bucket().bucket(bucket).send().await.is_ok();
    if !exists {
        let mut create = clients.s3.create_bucket().bucket(bucket);
        if clients.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(clients.region.as_str()))
                    .build(),
            );
        }
        if let Err(e) = create.send().await {
            let failure = rehost_replication::aws::AwsFailure::from_sdk("s3:CreateBucket", &e);
            if failure.code != "BucketAlreadyOwnedByYou" {
                return Err(LaunchError::Aws(failure));
            }
        }
    }
    clients
        .s3
        .put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(aws("s3:PutPublicAccessBlock"))?;
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::Aes256)
                        .build()
                        .map_err(|e| LaunchError::Unexpected(e.to_string()))?,
                )
                .build(),
        )
        .build()
        .map_err(|e| LaunchError::Unexpected(e.to_string()))?;
    clients
        .s3
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(aws("s3:PutBucketEncryption"))?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("rehost-expire-templates")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(LifecycleExpiration::builder().days(7).build())
                .build()
                .map_err(|e| LaunchError::Unexpected(e.to_string()))?,
        )
        .build()
        .map_err(|e| LaunchError::Unexpected(e.to_string()))?;
    clients
        .s3
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(aws("s3:PutBucketLifecycleConfiguration"))?;
    Ok(())
}

/// Uploads the template under a content-addressed key and returns the URL CloudFormation reads.
pub async fn upload_template(
    clients: &AwsClients,
    stack: &str,
    body: &str,
) -> Result<String, LaunchError> {
    let account = clients.account_id().await?;
    let bucket = bucket_name(&account, &clients.region);
    ensure_bucket(clients, &bucket).await?;
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{stack}/{hex}.json");
    clients
        .s3
        .put_object()
        .bucket(&bucket)
        .key(&key)
        .content_type("application/json")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send()
        .await
        .map_err(aws("s3:PutObject"))?;
    Ok(match &clients.endpoint_url {
        Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
        None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", clients.region),
    })
}
