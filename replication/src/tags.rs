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
/// application's own tags share EC2's 50-tag budget with these. Its volumes carry the same
/// (PropagateTagsToVolumeOnCreation).
pub const INSTANCE_KEYS: [&str; 5] = [NAME, APP, GROUP, SERVER, MODE];

/// The tags a stack carries besides the application's (CloudFormation propagates them to the
/// instances, which carry these keys already).
pub const STACK_KEYS: [&str; 2] = [APP, MODE];

/// The tags every snapshot carries besides the application's.
pub const SNAPSHOT_KEYS: [&str; 6] = [APP, GROUP, SERVER, RUN_ID, LICENSE_TYPE, DISK];

/// The tags every AMI carries besides the application's, at most: `SNAPSHOT_IDS` is left out
/// when the ids do not fit one tag value. An AMI also carries one `SNAPSHOT_PREFIX` tag per disk,
/// and [`KMS_KEY`] when its snapshots are encrypted with a named key.
pub const AMI_KEYS: [&str; 7] = [
    APP,
    GROUP,
    SERVER,
    RUN_ID,
    LICENSE_TYPE,
    SNAPSHOT_IDS,
    ENCRYPTED,
];

/// How many tags rehost puts on the AMI of a server with `disks` disks (besides the
/// application's): what EC2's 50-tag budget must leave room for.
pub fn ami_tag_count(disks: usize, kms_key: bool) -> usize {
    AMI_KEYS.len() + disks + usize::from(kms_key)
}

/// Snapshot ids recorded in an AMI's tags.
pub fn snapshot_ids(tags: &[(String, String)]) -> Vec<String> {
    tags.iter()
        .filter(|(k, _)| k.starts_with(SNAPSHOT_PREFIX))
        .map(|(_, v)| v.clone())
        .collect()
}
