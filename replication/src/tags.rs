//! Tag keys rehost puts on snapshots and AMIs.

pub const APP: &str = "rehost:app";
pub const GROUP: &str = "rehost:group";
pub const SERVER: &str = "rehost:server";
pub const DISK: &str = "rehost:disk";
pub const RUN_ID: &str = "rehost:run-id";
pub const LICENSE_TYPE: &str = "rehost:license-type";
/// On AMIs: `rehost:snapshot:<disk>` = snapshot id (one tag per disk keeps each value short).
pub const SNAPSHOT_PREFIX: &str = "rehost:snapshot:";
/// On AMIs: the snapshot ids, boot disk first, comma-separated (when they fit in a tag value).
pub const SNAPSHOT_IDS: &str = "rehost:snapshot-ids";
pub const ENCRYPTED: &str = "rehost:encrypted";
pub const KMS_KEY: &str = "rehost:kms-key";

/// Snapshot ids recorded in an AMI's tags.
pub fn snapshot_ids(tags: &[(String, String)]) -> Vec<String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(SNAPSHOT_PREFIX))
        .map(|(_, v)| v.clone())
        .collect()
}
