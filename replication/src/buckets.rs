//! S3 bucket steps both of rehost's buckets take (the template bucket of launches, the state
//! bucket of a team): finding the caller's own buckets, creating one, blocking public access,
//! default encryption. Every call on a bucket carries `ExpectedBucketOwner`; since S3 (and the
//! emulator) may not enforce it, ownership is decided by the caller's own ListBuckets.

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};

use crate::aws::AwsFailure;

/// How a bucket's objects are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketEncryption {
    /// SSE-S3 (AES256).
    S3Managed,
    /// SSE-KMS with this key (id, alias or ARN).
    Kms(String),
}

impl std::fmt::Display for BucketEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BucketEncryption::S3Managed => f.write_str("SSE-S3 (AES256)"),
            BucketEncryption::Kms(key) => write!(f, "SSE-KMS with key {key}"),
        }
    }
}

fn construction(operation: &'static str, e: impl std::fmt::Display) -> AwsFailure {
    AwsFailure {
        operation,
        code: "ConstructionFailure".into(),
        message: e.to_string(),
    }
}

/// The caller's own buckets whose names start with `prefix`, sorted (ListBuckets lists only
/// the caller's buckets, whatever S3 does with `ExpectedBucketOwner`).
pub async fn own_buckets(s3: &aws_sdk_s3::Client, prefix: &str) -> Result<Vec<String>, AwsFailure> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_buckets()
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| AwsFailure::from_sdk("s3:ListBuckets", &e))?;
        names.extend(
            out.buckets()
                .iter()
                .filter_map(|b| b.name())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string),
        );
        match out.continuation_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    names.sort();
    Ok(names)
}

/// Creates `bucket` in `region`. `Ok(false)` when the name belongs to someone else.
pub async fn create_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
) -> Result<bool, AwsFailure> {
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let failure = AwsFailure::from_sdk("s3:CreateBucket", &e);
            match failure.code.as_str() {
                "BucketAlreadyOwnedByYou" => Ok(true),
                "BucketAlreadyExists" => Ok(false),
                _ => Err(failure),
            }
        }
    }
}

/// All four settings of the bucket's public access block on.
pub async fn block_public_access(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: &str,
) -> Result<(), AwsFailure> {
    s3.put_public_access_block()
        .bucket(bucket)
        .expected_bucket_owner(owner)
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
        .map_err(|e| AwsFailure::from_sdk("s3:PutPublicAccessBlock", &e))?;
    Ok(())
}

/// The bucket's default encryption (with an S3 bucket key for KMS, to keep KMS requests down).
pub async fn encrypt_by_default(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    owner: &str,
    encryption: &BucketEncryption,
) -> Result<(), AwsFailure> {
    const OP: &str = "s3:PutBucketEncryption";
    let default = match encryption {
        BucketEncryption::S3Managed => ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::Aes256)
            .build(),
        BucketEncryption::Kms(key) => ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .kms_master_key_id(key)
            .build(),
    }
    .map_err(|e| construction(OP, e))?;
    let rule = ServerSideEncryptionRule::builder()
        .apply_server_side_encryption_by_default(default)
        .bucket_key_enabled(matches!(encryption, BucketEncryption::Kms(_)))
        .build();
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(|e| construction(OP, e))?;
    s3.put_bucket_encryption()
        .bucket(bucket)
        .expected_bucket_owner(owner)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .map_err(|e| AwsFailure::from_sdk(OP, &e))?;
    Ok(())
}
