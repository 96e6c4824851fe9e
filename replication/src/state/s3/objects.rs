//! The objects of an S3 state: where each lives (the key layout), and the few calls the store
//! makes on them, every one with `ExpectedBucketOwner`. Writes are conditional: a new object
//! with `If-None-Match: *`, a change with `If-Match: <etag>`; a lost condition is an answer
//! ([`Put::Conflict`]), not an error. Retries of failed calls are the SDK's.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use crate::aws::AwsFailure;
use crate::state::{ServerKey, StateError};

/// Objects per DeleteObjects call (S3's limit).
const DELETE_BATCH: usize = 1000;

/// A bucket, a prefix and the account that must own the bucket.
#[derive(Debug, Clone)]
pub(crate) struct Objects {
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    /// Empty, or ending with `/`.
    prefix: String,
    pub owner: String,
    /// `s3://bucket/prefix`, for messages.
    pub location: String,
}

/// An object read: its bytes and its ETag (quoted, as S3 sends it).
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    pub etag: String,
}

/// What a conditional write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Put {
    /// Written; the new ETag.
    Written(String),
    /// The condition failed: the object exists (create) or changed (update).
    Conflict,
}

/// Keys below a prefix: objects, and the "directories" one level down when listed with `/`.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
}

/// The key layout under the prefix. Names are encoded (`encode`) so any application or
/// server name is one path segment.
pub(crate) mod layout {
    use super::ServerKey;

    pub const MARKER: &str = "rehost-state.json";

    pub fn apps() -> String {
        "apps/".to_string()
    }
    pub fn servers(app: &str) -> String {
        format!("apps/{}/servers/", encode(app))
    }
    pub fn server(key: &ServerKey) -> String {
        format!("{}{}.json", servers(&key.app), encode(&key.server))
    }
    pub fn manifest(key: &ServerKey, snapshot_id: &str, nonce: &str) -> String {
        format!(
            "apps/{}/manifests/{}/{}-{nonce}.rhmf.gz",
            encode(&key.app),
            encode(&key.server),
            encode(snapshot_id)
        )
    }
    pub fn journal(key: &ServerKey, snapshot_id: &str) -> String {
        format!(
            "apps/{}/journal/{}/{}/",
            encode(&key.app),
            encode(&key.server),
            encode(snapshot_id)
        )
    }
    pub fn inspections(app: &str) -> String {
        format!("apps/{}/inspections/", encode(app))
    }
    pub fn inspection(key: &ServerKey) -> String {
        format!("{}{}.json", inspections(&key.app), encode(&key.server))
    }
    pub fn all_risks(app: &str) -> String {
        format!("apps/{}/risks/", encode(app))
    }
    pub fn risks(key: &ServerKey) -> String {
        format!("{}{}.json", all_risks(&key.app), encode(&key.server))
    }
    pub fn account(app: &str) -> String {
        format!("apps/{}/account.json", encode(app))
    }
    pub fn lock(app: &str) -> String {
        format!("apps/{}/lock.json", encode(app))
    }
    /// A server's lease: who replicates it now.
    pub fn lease(key: &ServerKey) -> String {
        format!(
            "apps/{}/leases/{}.json",
            encode(&key.app),
            encode(&key.server)
        )
    }

    /// Letters, digits, `-` and `_` as they are (and `.` after the first character);
    /// everything else as `%XX` of its UTF-8 bytes.
    pub fn encode(name: &str) -> String {
        let mut out = String::with_capacity(name.len());
        for (i, b) in name.bytes().enumerate() {
            let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (b == b'.' && i > 0);
            if plain {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }

    /// The inverse of `encode`; `None` for text `encode` never makes.
    pub fn decode(text: &str) -> Option<String> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }
}

impl Objects {
    pub fn new(s3: aws_sdk_s3::Client, bucket: &str, prefix: &str, owner: &str) -> Objects {
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        Objects {
            s3,
            location: format!("s3://{bucket}/{}", prefix.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_string(),
            bucket: bucket.to_string(),
            prefix,
            owner: owner.to_string(),
        }
    }

    /// The full key of a key relative to the prefix.
    pub fn key(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    /// The relative key of a full key.
    pub fn rel<'a>(&self, key: &'a str) -> &'a str {
        key.strip_prefix(&self.prefix).unwrap_or(key)
    }

    /// `s3://bucket/prefix/rel`, for messages.
    pub fn url(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(rel))
    }

    fn failed(&self, failure: AwsFailure) -> StateError {
        StateError::S3 {
            location: self.location.clone(),
            failure,
        }
    }

    /// Reads an object; `None` when there is none.
    pub async fn get(&self, rel: &str) -> Result<Option<Fetched>, StateError> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(rel))
            .expected_bucket_owner(&self.owner)
            .send()
            .await;
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                let failure = AwsFailure::from_sdk("s3:GetObject", &e);
                if failure.code == "NoSuchKey" || failure.code == "HTTP 404" {
                    return Ok(None);
                }
                return Err(self.failed(failure));
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let body = out.body.collect().await.map_err(|e| {
            self.failed(AwsFailure {
                operation: "s3:GetObject",
                code: "ReadBody".into(),
                message: e.to_string(),
            })
        })?;
        Ok(Some(Fetched {
            body: body.into_bytes().to_vec(),
            etag,
        }))
    }

    /// Creates an object that must not exist yet (`If-None-Match: *`).
    pub async fn create(
        &self,
        rel: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<Put, StateError> {
        self.put(rel, body, content_type, None).await
    }

    /// Replaces an object that must still have `etag` (`If-Match`).
    pub async fn replace(
        &self,
        rel: &str,
        body: Vec<u8>,
        content_type: &str,
        etag: &str,
    ) -> Result<Put, StateError> {
        self.put(rel, body, content_type, Some(etag)).await
    }

    async fn put(
        &self,
        rel: &str,
        body: Vec<u8>,
        content_type: &str,
        etag: Option<&str>,
    ) -> Result<Put, StateError> {
        let mut put = self
            .s3
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(rel))
            .expected_bucket_owner(&self.owner)
            .content_type(content_type)
            .body(ByteStream::from(body));
        put = match etag {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        match put.send().await {
            Ok(out) => Ok(Put::Written(out.e_tag().unwrap_or_default().to_string())),
            Err(e) => {
                let failure = AwsFailure::from_sdk("s3:PutObject", &e);
                if is_conflict(&failure) {
                    Ok(Put::Conflict)
                } else {
                    Err(self.failed(failure))
                }
            }
        }
    }

    /// Every key under `rel_prefix`; with `by_level`, only the objects directly under it and
    /// the next level's prefixes.
    pub async fn list(&self, rel_prefix: &str, by_level: bool) -> Result<Listing, StateError> {
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let mut call = self
                .s3
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.key(rel_prefix))
                .expected_bucket_owner(&self.owner)
                .set_continuation_token(token.take());
            if by_level {
                call = call.delimiter("/");
            }
            let out = call
                .send()
                .await
                .map_err(|e| self.failed(AwsFailure::from_sdk("s3:ListObjectsV2", &e)))?;
            listing.keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(|k| self.rel(k).to_string()),
            );
            listing.prefixes.extend(
                out.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix())
                    .map(|k| self.rel(k).to_string()),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        listing.keys.sort();
        listing.prefixes.sort();
        Ok(listing)
    }

    /// Deletes objects (their current versions; a versioned bucket keeps the older ones until
    /// its lifecycle expires them).
    pub async fn delete(&self, rels: &[String]) -> Result<(), StateError> {
        for batch in rels.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|rel| ObjectIdentifier::builder().key(self.key(rel)).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.failed(build_failure("s3:DeleteObjects", e)))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.failed(build_failure("s3:DeleteObjects", e)))?;
            let out = self
                .s3
                .delete_objects()
                .bucket(&self.bucket)
                .expected_bucket_owner(&self.owner)
                .delete(delete)
                .send()
                .await
                .map_err(|e| self.failed(AwsFailure::from_sdk("s3:DeleteObjects", &e)))?;
            if let Some(err) = out.errors().first() {
                return Err(self.failed(AwsFailure {
                    operation: "s3:DeleteObjects",
                    code: err.code().unwrap_or("Unknown").to_string(),
                    message: format!(
                        "{}: {}",
                        err.key().unwrap_or("?"),
                        err.message().unwrap_or_default()
                    ),
                }));
            }
        }
        Ok(())
    }
}

/// A lost condition: 412 Precondition Failed, or 409 when S3 saw a concurrent conditional
/// write to the same key.
fn is_conflict(failure: &AwsFailure) -> bool {
    matches!(
        failure.code.as_str(),
        "PreconditionFailed" | "ConditionalRequestConflict" | "HTTP 412" | "HTTP 409"
    )
}

fn build_failure(operation: &'static str, e: impl std::fmt::Display) -> AwsFailure {
    AwsFailure {
        operation,
        code: "ConstructionFailure".into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::layout::{decode, encode};
    use super::*;

    #[test]
    fn names_are_one_safe_path_segment_and_decode_back() {
        for name in [
            "web-01", "db_2", "a.b", ".hidden", "a/b", "名前", "50%", "x y",
        ] {
            let e = encode(name);
            assert!(!e.contains('/') && !e.starts_with('.'), "{name} -> {e}");
            assert!(e.bytes().all(|b| b.is_ascii_graphic()), "{name} -> {e}");
            assert_eq!(decode(&e).as_deref(), Some(name));
        }
        assert_eq!(encode("web-01"), "web-01");
        assert_eq!(decode("%zz"), None);
    }

    #[test]
    fn keys_sit_under_the_prefix() {
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        );
        let o = Objects::new(client.clone(), "b", "team/state", "1");
        let key = ServerKey::new("shop", "web/1");
        assert_eq!(
            o.key(&layout::server(&key)),
            "team/state/apps/shop/servers/web%2F1.json"
        );
        assert_eq!(o.location, "s3://b/team/state");
        assert_eq!(o.rel("team/state/apps/x"), "apps/x");
        let bare = Objects::new(client, "b", "", "1");
        assert_eq!(bare.key(layout::MARKER), "rehost-state.json");
        assert_eq!(bare.location, "s3://b");
    }
}
