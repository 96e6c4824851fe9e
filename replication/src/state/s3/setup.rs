//! Setting a state up (`rehost state init`) and recognising one: the marker object.

use super::*;

/// What `rehost state init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    pub location: String,
    pub account: String,
    pub bucket_created: bool,
    pub encryption: BucketEncryption,
    /// The state was new here (else it was there already: init changes nothing).
    pub state_created: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Marker {
    format: String,
    version: u32,
    created_at: String,
    created_by: String,
}

const MARKER_FORMAT: &str = "rehost-state";

impl S3Store {
    /// Sets up the state at `s3://bucket/prefix`: creates the bucket (private, encrypted with
    /// `encryption`, versioned, old versions expiring) when the caller has none of that name,
    /// or checks the one it has; then writes the state's marker. Running it again changes
    /// nothing.
    pub async fn init(
        sdk: &SdkConfig,
        bucket: &str,
        prefix: &str,
        encryption: BucketEncryption,
    ) -> Result<InitReport, StateError> {
        let s3 = s3_client(sdk);
        let owner = account_id(sdk).await?;
        let region = sdk.region().map_or("us-east-1", |r| r.as_ref()).to_string();
        let mut bucket_created = false;
        let encryption = if bucket::is_own(&s3, bucket).await? {
            let (problems, found) = bucket::shortcomings(&s3, bucket, &owner).await?;
            if !problems.is_empty() {
                return Err(StateError::Bucket {
                    bucket: bucket.to_string(),
                    problems,
                });
            }
            found.unwrap_or(encryption)
        } else {
            if !bucket::create(&s3, bucket, &region).await? || !bucket::is_own(&s3, bucket).await? {
                return Err(StateError::Bucket {
                    bucket: bucket.to_string(),
                    problems: vec![
                        "the name belongs to another account (bucket names are global): choose another"
                            .into(),
                    ],
                });
            }
            bucket::protect(&s3, bucket, &owner, &encryption).await?;
            bucket_created = true;
            encryption
        };
        let objects = Objects::new(s3, bucket, prefix, &owner);
        let marker = Marker {
            format: MARKER_FORMAT.into(),
            version: LAYOUT_VERSION,
            created_at: OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            created_by: format!("rehost {}", env!("CARGO_PKG_VERSION")),
        };
        let body = serde_json::to_vec_pretty(&marker).unwrap_or_default();
        let state_created = match objects.create(layout::MARKER, body, JSON).await? {
            Put::Written(_) => true,
            Put::Conflict => {
                let found = objects.get(layout::MARKER).await?.ok_or_else(|| {
                    StateError::NotInitialized {
                        location: objects.location.clone(),
                    }
                })?;
                check_marker(&objects, &found.body)?;
                false
            }
        };
        Ok(InitReport {
            location: objects.location.clone(),
            account: owner,
            bucket_created,
            encryption,
            state_created,
        })
    }
}

pub(super) fn check_marker(objects: &Objects, body: &[u8]) -> Result<(), StateError> {
    let corrupt = |what: String| StateError::Corrupt {
        location: objects.location.clone(),
        table: "marker",
        id: objects.url(layout::MARKER),
        what,
    };
    let marker: Marker = serde_json::from_slice(body)
        .map_err(|e| corrupt(format!("not a rehost state marker: {e}")))?;
    if marker.format != MARKER_FORMAT {
        return Err(corrupt(format!(
            "format `{}` is not {MARKER_FORMAT}",
            marker.format
        )));
    }
    if marker.version > LAYOUT_VERSION {
        return Err(corrupt(format!(
            "layout version {} was written by a newer rehost (this one knows {LAYOUT_VERSION}): upgrade rehost",
            marker.version
        )));
    }
    Ok(())
}
