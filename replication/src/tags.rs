//! Tag keys rehost puts on what it creates: snapshots and AMIs (replication), instances and
//! stacks (launch). One module, so a key is spelled once and filters always match it.

/// EC2's `Name` tag: the server id (cutover) or `<id>-test` on instances.
pub const NAME: &str = "Name";
/// Every key rehost owns starts with this; application tags may not.
pub const PREFIX: &str = "rehost:";
pub const APP: &str = "rehost:app";
pub const GROUP: &str = "rehost:group";
pub const SERVER: &str = "rehost:server";
/// On instances and stacks: `test` or `cutover`.
pub const MODE: &str = "rehost:mode";
pub const DISK: &str = "rehost:disk";
pub const RUN_ID: &str = "rehost:run-id";
pub const LICENSE_TYPE: &str = "rehost:license-type";
/// On AMIs: `rehost:snapshot:<disk>` = snapshot id (one tag per disk keeps each value short).
pub const SNAPSHOT_PREFIX: &str = "rehost:snapshot:";
/// On AMIs: the snapshot ids, boot disk first, comma-separated (when they fit in a tag value).
pub const SNAPSHOT_IDS: &str = "rehost:snapshot-ids";
pub const ENCRYPTED: &str = "rehost:encrypted";
pub const KMS_KEY: &str = "rehost:kms-key";

/// The tags every launched instance carries, in the order the template lists them; the
/// application's own tags share EC2's 50-tag budget with these.
pub const INSTANCE_KEYS: [&str; 5] = [NAME, APP, GROUP, SERVER, MODE];

/// Snapshot ids recorded in an AMI's tags.
pub fn snapshot_ids(tags: &[(String, String)]) -> Vec<String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(SNAPSHOT_PREFIX))
        .map(|(_, v)| v.clone())
        .collect()
}
