//! Names rehost gives: run ids, StartSnapshot's client tokens and AMI names.

use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};

use crate::clock::compact_utc;

/// A new run id: UTC start time plus 32 random bits, e.g. `20250301T120000Z-1f2e3d4c`.
pub fn new_run_id(now: OffsetDateTime) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_i128(now.unix_timestamp_nanos());
    h.write_u32(std::process::id());
    format!("{}-{:08x}", compact_utc(now), h.finish() as u32)
}

/// StartSnapshot's idempotency token: the same for a retried start of the same snapshot, new
/// after a snapshot was given up.
pub fn client_token(app: &str, server: &str, disk: &str, run_id: &str, attempt: u32) -> String {
    let mut h = Sha256::new();
    for part in [app, server, disk, run_id, &attempt.to_string()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `rehost-<app>-<server>-<UTC timestamp>`, with characters EC2 refuses in AMI names replaced.
pub fn ami_name(app: &str, server: &str, at: OffsetDateTime) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "()[] ./-'@_".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .take(48)
            .collect()
    };
    let at = at.to_offset(UtcOffset::UTC);
    // Milliseconds keep two runs of one server in the same second apart.
    let stamp = format!(
        "{}.{:03}Z",
        compact_utc(at).trim_end_matches('Z'),
        at.millisecond()
    );
    format!("rehost-{}-{}-{stamp}", clean(app), clean(server))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn ami_names() {
        assert_eq!(
            ami_name("shop", "web-1", datetime!(2025-03-01 12:34:56.789 UTC)),
            "rehost-shop-web-1-20250301T123456.789Z"
        );
        assert!(ami_name("a:b", "c", datetime!(2025-03-01 0:00 UTC)).starts_with("rehost-a-b-c-"));
    }

    #[test]
    fn client_tokens_are_deterministic() {
        let a = client_token("shop", "web", "disk0", "r1", 0);
        assert_eq!(a, client_token("shop", "web", "disk0", "r1", 0));
        assert_ne!(a, client_token("shop", "web", "disk0", "r1", 1));
        assert_ne!(a, client_token("shop", "web", "disk1", "r1", 0));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn run_ids_start_with_the_utc_time_and_differ() {
        let t = datetime!(2025-03-01 10:00 UTC);
        let a = new_run_id(t);
        assert!(a.starts_with("20250301T100000Z-"), "{a}");
        assert_eq!(a.len(), "20250301T100000Z-".len() + 8);
        assert_ne!(a, new_run_id(t), "random part");
    }
}
