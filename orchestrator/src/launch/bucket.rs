//! The S3 bucket rehost owns for templates too large to send inline: encrypted, never public,
//! objects expiring after a week (CloudFormation keeps its own copy once a stack or change set
//! exists).
//!
//! Bucket names are global, so another account can create `rehost-templates-<account>-<region>`
//! first and would then receive every large template (configure scripts included) and could
//! rewrite it before CloudFormation reads it. A bucket is therefore used only when it appears in
//! the caller's own ListBuckets, which does not depend on S3 enforcing `ExpectedBucketOwner`
//! (passed on every call all the same). When the preferred name is taken by someone else, rehost
//! creates `rehost-templates-<account>-<region>-<12 random hex digits>`, a name nobody can
//! predict, and finds it again the next time in its own ListBuckets: no state to keep, and the
//! launch still works.

use std::io::Read;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, ServerSideEncryption,
};
use rehost_replication::buckets::{self, BucketEncryption};
use sha2::{Digest, Sha256};

use crate::launch::{AwsClients, LaunchError, aws};

/// The name rehost prefers for the account's template bucket in a region.
pub fn bucket_name(account: &str, region: &str) -> String {
    format!("rehost-templates-{account}-{region}")
}

/// Whether `name` is the preferred bucket or one of its unguessable stand-ins.
fn is_template_bucket(name: &str, preferred: &str) -> bool {
    name == preferred
        || name.strip_prefix(preferred).is_some_and(|rest| {
            rest.len() == 13
                && rest.starts_with('-')
                && rest[1..].bytes().all(|b| b.is_ascii_hexdigit())
        })
}

/// The account's own buckets whose names start with `prefix`.
async fn own_buckets(clients: &AwsClients, prefix: &str) -> Result<Vec<String>, LaunchError> {
    buckets::own_buckets(&clients.s3, prefix)
        .await
        .map_err(LaunchError::Aws)
}

/// 12 hex digits from the kernel's random source.
fn random_suffix() -> Result<String, LaunchError> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| LaunchError::Unexpected(format!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Creates `bucket` in the clients' region. `Ok(false)` when the name belongs to someone else.
async fn create(clients: &AwsClients, bucket: &str) -> Result<bool, LaunchError> {
    buckets::create_bucket(&clients.s3, bucket, &clients.region)
        .await
        .map_err(LaunchError::Aws)
}

/// The account's template bucket in the clients' region: found in its own ListBuckets, or
/// created (under the preferred name, or an unguessable one when that is taken), verified to be
/// the account's own, and protected. Returns its name.
pub async fn ensure_bucket(clients: &AwsClients, account: &str) -> Result<String, LaunchError> {
    let preferred = bucket_name(account, &clients.region);
    let mut owned = own_buckets(clients, &preferred).await?;
    owned.retain(|b| is_template_bucket(b, &preferred));
    // The preferred name first (sorted names put it before its stand-ins), else a stand-in.
    let bucket = match owned.into_iter().next() {
        Some(bucket) => bucket,
        None if create(clients, &preferred).await? => preferred.clone(),
        None => {
            let mut created = None;
            for _ in 0..5 {
                let candidate = format!("{preferred}-{}", random_suffix()?);
                if create(clients, &candidate).await? {
                    created = Some(candidate);
                    break;
                }
            }
            let bucket = created.ok_or_else(|| {
                LaunchError::Unexpected("five random bucket names were all taken".into())
            })?;
            tracing::warn!(
                "S3 bucket {preferred} belongs to another account: templates go to {bucket}, \
                 which this account owns"
            );
            bucket
        }
    };
    // Never write to a bucket that is not the caller's, whatever made it look like one.
    if !own_buckets(clients, &bucket).await?.contains(&bucket) {
        return Err(LaunchError::BucketNotOwned { bucket });
    }
    protect(clients, &bucket, account).await?;
    Ok(bucket)
}

/// Makes sure the bucket's protections are in place (idempotent: a bucket left half-configured
/// by an interrupted run is finished here).
async fn protect(clients: &AwsClients, bucket: &str, account: &str) -> Result<(), LaunchError> {
    buckets::block_public_access(&clients.s3, bucket, account)
        .await
        .map_err(LaunchError::Aws)?;
    buckets::encrypt_by_default(&clients.s3, bucket, account, &BucketEncryption::S3Managed)
        .await
        .map_err(LaunchError::Aws)?;
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
        .expected_bucket_owner(account)
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
    let mut urls = upload_templates(clients, stack, &[body]).await?;
    Ok(urls.pop().expect("one template, one URL"))
}

/// Uploads templates (a nested launch's children) under content-addressed keys, in the
/// account's own bucket (ensured once), at most 8 at a time; returns their URLs in order.
pub async fn upload_templates(
    clients: &AwsClients,
    stack: &str,
    bodies: &[&str],
) -> Result<Vec<String>, LaunchError> {
    let account = clients.account_id().await?;
    let bucket = ensure_bucket(clients, &account).await?;
    let mut urls = Vec::with_capacity(bodies.len());
    for batch in bodies.chunks(8) {
        let mut uploads = tokio::task::JoinSet::new();
        for (i, body) in batch.iter().enumerate() {
            let (clients, bucket, account) = (clients.clone(), bucket.clone(), account.clone());
            let key = template_key(stack, body);
            let body = body.as_bytes().to_vec();
            uploads.spawn(async move {
                let put = clients
                    .s3
                    .put_object()
                    .bucket(&bucket)
                    .expected_bucket_owner(&account)
                    .key(&key)
                    .content_type("application/json")
                    .server_side_encryption(ServerSideEncryption::Aes256)
                    .body(ByteStream::from(body))
                    .send()
                    .await;
                (i, key, put.map_err(aws("s3:PutObject")))
            });
        }
        let mut done: Vec<(usize, String)> = Vec::with_capacity(batch.len());
        while let Some(joined) = uploads.join_next().await {
            let (i, key, put) =
                joined.map_err(|e| LaunchError::Unexpected(format!("upload task failed: {e}")))?;
            put?;
            done.push((i, key));
        }
        done.sort();
        urls.extend(
            done.into_iter()
                .map(|(_, key)| match &clients.endpoint_url {
                    Some(endpoint) => format!("{}/{bucket}/{key}", endpoint.trim_end_matches('/')),
                    None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", clients.region),
                }),
        );
    }
    Ok(urls)
}

/// `<stack>/<sha256 of the body>.json`: the same template is the same object.
fn template_key(stack: &str, body: &str) -> String {
    let digest = Sha256::digest(body.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{stack}/{hex}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_ins_are_the_preferred_name_and_twelve_hex_digits() {
        let preferred = bucket_name("123456789012", "eu-west-1");
        assert!(is_template_bucket(&preferred, &preferred));
        assert!(is_template_bucket(
            &format!("{preferred}-0a1b2c3d4e5f"),
            &preferred
        ));
        for other in [
            "-0a1b2c3d4e5",
            "-0a1b2c3d4e5fz",
            "x0a1b2c3d4e5f",
            "-0a1b2c3d4e5g",
        ] {
            assert!(
                !is_template_bucket(&format!("{preferred}{other}"), &preferred),
                "{other}"
            );
        }
        // The longest region names still make a valid bucket name (at most 63 characters).
        let longest = bucket_name("123456789012", "ap-southeast-5");
        assert!(format!("{longest}-{}", random_suffix().unwrap()).len() <= 63);
    }
}
