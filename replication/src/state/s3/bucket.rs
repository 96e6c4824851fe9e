//! The state bucket: the caller's own (it appears in the caller's ListBuckets, since S3 may not
//! enforce `ExpectedBucketOwner`, which every call carries all the same), private (a public
//! access block with all four settings), encrypted by default (SSE-S3 or SSE-KMS) and
//! versioned (an overwritten or deleted state object can be recovered). `rehost state init`
//! creates such a bucket, or checks an existing one; every open checks it again, and a bucket
//! that falls short is refused with what to fix.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration,
    ServerSideEncryption, VersioningConfiguration,
};
use aws_smithy_runtime_api::client::result::SdkError;

use crate::aws::AwsFailure;
use crate::buckets::{self, BucketEncryption};
use crate::state::StateError;

/// Noncurrent versions of state objects are kept this long (to recover from a mistake), then
/// expire, so a versioned bucket does not grow without end.
pub const NONCURRENT_DAYS: i32 = 30;

/// A failed call on the bucket.
fn aws(bucket: &str) -> impl Fn(AwsFailure) -> StateError + '_ {
    move |failure| StateError::S3 {
        location: format!("s3://{bucket}"),
        failure,
    }
}

/// Whether the caller's own ListBuckets holds `bucket`.
pub async fn is_own(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool, StateError> {
    let own = buckets::own_buckets(s3, bucket)
        .await
        .map_err(aws(bucket))?;
    Ok(own.iter().any(|b| b == bucket))
}

/// Every way the bucket falls short of a state bucket, each with its fix; empty when it is fine.
/// Also the encryption it has.
pub async fn shortcomings(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: &str,
) -> Result<(Vec<String>, Option<BucketEncryption>), StateError> {
    let mut problems = Vec::new();
    if !is_own(s3, bucket).await? {
        problems.push(format!(
            "it is not in this account's ListBuckets ({owner}): it does not exist, or belongs to \
             another account. Create it with `rehost state init s3://{bucket}/...`, or choose a \
             bucket of this account"
        ));
        return Ok((problems, None));
    }
    let encryption = match s3
        .get_bucket_encryption()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await
    {
        Ok(out) => out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .and_then(|d| match d.sse_algorithm() {
                ServerSideEncryption::Aes256 => Some(BucketEncryption::S3Managed),
                ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse => Some(
                    BucketEncryption::Kms(d.kms_master_key_id().unwrap_or("aws/s3").to_string()),
                ),
                _ => None,
            }),
        Err(e) => {
            let f = AwsFailure::from_sdk("s3:GetBucketEncryption", &e);
            if f.code != "ServerSideEncryptionConfigurationNotFoundError" {
                return Err(aws(bucket)(f));
            }
            None
        }
    };
    if encryption.is_none() {
        problems.push(format!(
            "no default encryption: aws s3api put-bucket-encryption --bucket {bucket} \
             --server-side-encryption-configuration \
             '{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"AES256\"}}}}]}}' \
             (or aws:kms with your key)"
        ));
    }
    if !versioning_enabled(s3, bucket, owner).await? {
        problems.push(format!(
            "versioning is not enabled: aws s3api put-bucket-versioning --bucket {bucket} \
             --versioning-configuration Status=Enabled"
        ));
    }
    let block = match s3
        .get_public_access_block()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await
    {
        Ok(out) => out.public_access_block_configuration().is_some_and(|c| {
            [
                c.block_public_acls(),
                c.ignore_public_acls(),
                c.block_public_policy(),
                c.restrict_public_buckets(),
            ]
            .iter()
            .all(|v| *v == Some(true))
        }),
        Err(e) => {
            let f = AwsFailure::from_sdk("s3:GetPublicAccessBlock", &e);
            if f.code != "NoSuchPublicAccessBlockConfiguration" {
                return Err(aws(bucket)(f));
            }
            false
        }
    };
    if !block {
        problems.push(format!(
            "public access is not blocked: aws s3api put-public-access-block --bucket {bucket} \
             --public-access-block-configuration \
             BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
        ));
    }
    Ok((problems, encryption))
}

/// Whether the bucket keeps versions of its objects.
async fn versioning_enabled(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: &str,
) -> Result<bool, StateError> {
    let enabled = BucketVersioningStatus::Enabled;
    match s3
        .get_bucket_versioning()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .send()
        .await
    {
        Ok(out) => Ok(out.status() == Some(&enabled)),
        // The emulator answers 200 with the wrong root element (GetBucketVersioningResponse
        // instead of VersioningConfiguration), which the SDK cannot parse: read its Status.
        Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 200 => {
            let body = se.raw().body().bytes().unwrap_or_default();
            let text = String::from_utf8_lossy(body);
            let status = text
                .split_once("<Status>")
                .and_then(|(_, rest)| rest.split_once("</Status>"))
                .map(|(status, _)| status.trim());
            Ok(status == Some(enabled.as_str()))
        }
        Err(e) => Err(aws(bucket)(AwsFailure::from_sdk(
            "s3:GetBucketVersioning",
            &e,
        ))),
    }
}

/// Creates the bucket in `region`; `Ok(false)` when the name belongs to another account.
pub async fn create(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
) -> Result<bool, StateError> {
    buckets::create_bucket(s3, bucket, region)
        .await
        .map_err(aws(bucket))
}

/// Puts a new bucket's protections in place: public access block, default encryption,
/// versioning, and a lifecycle expiring noncurrent versions and abandoned uploads.
pub async fn protect(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: &str,
    encryption: &BucketEncryption,
) -> Result<(), StateError> {
    let build = |e: aws_sdk_s3::error::BuildError| {
        aws(bucket)(AwsFailure {
            operation: "s3:PutBucketLifecycleConfiguration",
            code: "ConstructionFailure".into(),
            message: e.to_string(),
        })
    };
    buckets::block_public_access(s3, bucket, owner)
        .await
        .map_err(aws(bucket))?;
    buckets::encrypt_by_default(s3, bucket, owner, encryption)
        .await
        .map_err(aws(bucket))?;
    s3.put_bucket_versioning()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws(bucket)(AwsFailure::from_sdk("s3:PutBucketVersioning", &e)))?;
    let lifecycle = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("rehost-state-old-versions")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(NONCURRENT_DAYS)
                        .build(),
                )
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(7)
                        .build(),
                )
                .build()
                .map_err(build)?,
        )
        .build()
        .map_err(build)?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .lifecycle_configuration(lifecycle)
        .send()
        .await
        .map_err(|e| {
            aws(bucket)(AwsFailure::from_sdk(
                "s3:PutBucketLifecycleConfiguration",
                &e,
            ))
        })?;
    Ok(())
}
