//! Every limit an application meets, in one place: the JSON Schema's ranges (model.rs), the
//! checks that report them (validate/) and the clamps that apply them (validate/settings.rs)
//! all read these, so a limit is written once. Most are AWS's; each says whose it is.

use std::ops::RangeInclusive;

use rehost_replication::tags;

// --- The application file -------------------------------------------------------------------

/// Largest application file read (1 MiB, fifteen times the 480-server example): input beyond it
/// is refused before parsing, so every file rehost answers is small enough to answer fast.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting of mappings and lists the parser accepts.
pub const MAX_DEPTH: usize = 64;
/// Bounds the tree, aliases expanded ("billion laughs"): every node costs its size in memory
/// plus its scalar's bytes, copies included, and an alias is refused before it is copied, so no
/// document can make the loader hold more than this (32 times the largest file: room for a
/// file of small scalars, whose nodes outweigh their text, but not for an alias bomb).
pub const MAX_TREE_BYTES: usize = 32 * 1024 * 1024;
/// Longest application description (characters).
pub const MAX_APP_DESCRIPTION: usize = 1000;

// --- Answering hostile files fast --------------------------------------------------------

/// Problems of one kind (reported at one place in rehost) shown per file; the rest are counted
/// in one line, so a file with 100,000 problems gets a readable answer.
pub const MAX_DIAGNOSTICS_PER_KIND: usize = 20;
/// "did you mean" searches per file.
pub const MAX_SUGGESTIONS: usize = 20;
/// Candidates one search compares (of a length that could be a typo of the name).
pub const MAX_SUGGESTION_CANDIDATES: usize = 500;
/// Names longer than any id or field name are no typo of one, and are not compared.
pub const MAX_SUGGESTION_LEN: usize = 64;
/// Dependencies `launchOrder` may imply (each group on every group of the level below): far
/// above what one stack can launch (500 resources hold at most 166 gated groups, so about 7,000
/// dependencies), far below what would strain memory.
pub const MAX_IMPLIED_DEPENDENCIES: usize = 100_000;

// --- Tags (EC2) ------------------------------------------------------------------------------

/// EC2 allows 50 tags per resource (instance, volume, snapshot, AMI), and CloudFormation 50 per
/// stack; the application's tags go on every one of them, beside rehost's own.
pub const EC2_MAX_TAGS: usize = 50;
/// rehost's tags on an instance and on its volumes (`tags::INSTANCE_KEYS`).
pub const INSTANCE_TAGS: usize = tags::INSTANCE_KEYS.len();
/// rehost's tags on a snapshot (`tags::SNAPSHOT_KEYS`).
pub const SNAPSHOT_TAGS: usize = tags::SNAPSHOT_KEYS.len();
/// rehost's tags on the AMI of a server with `disks` disks (`tags::AMI_KEYS`, one per disk, the
/// KMS key).
pub fn ami_tags(disks: usize, kms_key: bool) -> usize {
    tags::ami_tag_count(disks, kms_key)
}
/// The most application tags any application can have: what an AMI of one disk leaves (more
/// disks, or a KMS key, leave fewer; validation counts them per server).
pub const MAX_APP_TAGS: usize = EC2_MAX_TAGS - tags::AMI_KEYS.len() - 1;
/// EC2 tag keys are 1 to 128 characters.
pub const MAX_TAG_KEY: usize = 128;
/// Tag values are 1 to 256 characters: EC2 takes empty values, but the application's tags are
/// also the stack's, and CloudFormation requires at least one character.
pub const TAG_VALUE: RangeInclusive<usize> = 1..=256;

// --- Replication -----------------------------------------------------------------------------

/// `frequencyHours`: SMS's range.
pub const FREQUENCY_HOURS: RangeInclusive<i64> = 1..=24;
/// When no block sets `frequencyHours` or `runOnce`.
pub const DEFAULT_FREQUENCY_HOURS: u8 = 12;
/// `keepRecentAmis`: 0 keeps every AMI, else at most SMS's 270.
pub const KEEP_RECENT_AMIS: RangeInclusive<i64> = 0..=270;
/// `maxLagMinutes`: how old a server's replica may be at cutover, up to a week.
pub const MAX_LAG_MINUTES: RangeInclusive<i64> = 1..=10_080;
/// When no block sets `maxLagMinutes`: CloudEndure users' customary 180 minutes.
pub const DEFAULT_MAX_LAG_MINUTES: u32 = 180;
/// A cutover hook's `timeoutSeconds`: up to a day.
pub const HOOK_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=86_400;
/// When a hook sets no `timeoutSeconds`.
pub const DEFAULT_HOOK_TIMEOUT_SECONDS: u64 = 600;
/// Hooks per phase.
pub const MAX_HOOKS: usize = 50;
/// One root device and /dev/sdb to /dev/sdz.
pub const MAX_DISKS: usize = 26;

// --- Launch ----------------------------------------------------------------------------------

/// `signalTimeoutMinutes`: a server's time to boot, configure and signal (CloudFormation's
/// WaitCondition allows 12 hours).
pub const SIGNAL_TIMEOUT_MINUTES: RangeInclusive<i64> = 1..=720;
/// When no block sets `signalTimeoutMinutes`.
pub const DEFAULT_SIGNAL_TIMEOUT_MINUTES: u32 = 30;
/// A post-launch check's `timeoutSeconds` (retries included): at most an hour, so a list of
/// checks still fits the longest signal timeout.
pub const CHECK_TIMEOUT_SECONDS: RangeInclusive<i64> = 1..=3600;
/// When a check sets no `timeoutSeconds`.
pub const DEFAULT_CHECK_TIMEOUT_SECONDS: u32 = 60;
/// Checks per block: each adds to the 16 KB of user data.
pub const MAX_CHECKS: usize = 20;
/// CloudFormation's quotas on `Mappings`: mappings per template, and attributes per mapping
/// (each user-data body rehost stores once is one attribute).
pub const MAX_MAPPINGS: usize = 200;
pub const MAX_MAPPING_ATTRIBUTES: usize = 200;
/// Longest `host`, `url` or `contains` of a check (characters).
pub const MAX_CHECK_TEXT: usize = 1024;
/// A network interface takes at most 16 security groups.
pub const MAX_SECURITY_GROUPS: usize = 16;

// --- User data (EC2) -------------------------------------------------------------------------

/// EC2 accepts at most 16 KB of user data (before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;
/// The gate's presigned URL replaces `${GateUrl}` at launch; real ones run 400-900 bytes.
pub const URL_RESERVE: usize = 1024;
/// What a wrapped configure script may occupy.
pub const SCRIPT_BUDGET: usize = USER_DATA_LIMIT - URL_RESERVE;
/// Configure scripts are read into memory only up to this size: four times what user data
/// holds, so a near miss still gets the precise "once wrapped" size, and anything larger cannot
/// fit anyway.
pub const MAX_SCRIPT_READ: u64 = 4 * USER_DATA_LIMIT as u64;

// --- CloudFormation quotas -------------------------------------------------------------------

pub const MAX_RESOURCES: usize = 500;
pub const MAX_PARAMETERS: usize = 200;
pub const MAX_OUTPUTS: usize = 200;
/// Largest body CreateStack/CreateChangeSet accept inline; larger ones go through S3.
pub const MAX_INLINE_BODY: usize = 51_200;
/// Largest body through S3 (TemplateURL).
pub const MAX_S3_BODY: usize = 1_000_000;
/// Most servers in one application. Nested stacks take far more (500 children of up to 498
/// instances), but every variant is rendered while validating, and a bound keeps a hostile
/// file's templates (each instance can carry a 15 KB script) within the memory budget of
/// validation; twice the 1,000 servers rehost is measured with.
pub const MAX_SERVERS: usize = 2_000;
/// Longest template description.
pub const MAX_TEMPLATE_DESCRIPTION: usize = 1024;

/// A value clamped into a range and narrowed; validation has already reported values outside.
pub fn clamp<T: TryFrom<i64>>(value: i64, range: &RangeInclusive<i64>, fallback: T) -> T {
    T::try_from(value.clamp(*range.start(), *range.end())).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_limits() {
        assert_eq!(MAX_APP_TAGS, 42);
        assert_eq!(INSTANCE_TAGS, 5);
        assert_eq!(SNAPSHOT_TAGS, 6);
        assert_eq!(ami_tags(1, false), 8);
        assert_eq!(ami_tags(26, true), 34);
        assert_eq!(SCRIPT_BUDGET, 15 * 1024);
        assert_eq!(clamp::<u8>(30, &FREQUENCY_HOURS, 24), 24);
        assert_eq!(clamp::<u32>(0, &SIGNAL_TIMEOUT_MINUTES, 720), 1);
        assert_eq!(clamp::<u32>(-5, &KEEP_RECENT_AMIS, 0), 0);
    }
}
