//! The pure parts of `rehost cutover`: when to start (`--at`), and what the final sync is
//! expected to send per server (from its recent increments), for `--dry-run`.

use rehost_replication::state::{RunRecord, RunStatus};
use serde::Serialize;
use time::{Date, OffsetDateTime, Time};

/// `--at`: RFC 3339 (`2026-03-01T22:00:00+01:00`), or `HH:MM` in `now`'s offset (the
/// operator's local time): today, or tomorrow when that time has passed. A time in the past
/// is refused.
pub fn parse_at(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let rfc = time::format_description::well_known::Rfc3339;
    let at = if let Ok(t) = OffsetDateTime::parse(text, &rfc) {
        t
    } else {
        let (h, m) = text
            .split_once(':')
            .filter(|(h, m)| h.len() <= 2 && m.len() == 2)
            .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
            .ok_or_else(|| {
                format!(
                    "--at {text}: expected RFC 3339 (2026-03-01T22:00:00Z) or HH:MM (local time)"
                )
            })?;
        let clock = Time::from_hms(h, m, 0).map_err(|e| format!("--at {text}: {e}"))?;
        let today = now.replace_time(clock);
        if today > now {
            today
        } else {
            let tomorrow: Date = now.date().next_day().ok_or("--at: no tomorrow")?;
            today.replace_date(tomorrow)
        }
    };
    if at < now {
        return Err(format!("--at {text} is in the past"));
    }
    Ok(at)
}

/// What the final sync of one server is expected to send.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectedDelta {
    pub server: String,
    /// Increments it is averaged over (0: none recorded yet; the final sync may be a seed).
    pub increments: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// Increments averaged for the expectation.
pub const RECENT_INCREMENTS: usize = 3;

/// The mean of the server's last [`RECENT_INCREMENTS`] completed increments (runs whose
/// snapshots have a parent), newest first in `runs`.
pub fn expected_delta(server: &str, runs: &[RunRecord]) -> ExpectedDelta {
    let recent: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| {
            r.status == RunStatus::Completed
                && !r.snapshots.is_empty()
                && r.snapshots.iter().all(|s| s.parent_snapshot_id.is_some())
        })
        .take(RECENT_INCREMENTS)
        .collect();
    let n = recent.len();
    let (bytes, seconds) = recent.iter().fold((0u64, 0f64), |(b, s), r| {
        let bytes: u64 = r.snapshots.iter().map(|s| s.counts.bytes_uploaded).sum();
        let secs = r.timings.get("total").copied().unwrap_or_else(|| {
            r.finished_at
                .map_or(0.0, |f| (f - r.started_at).as_seconds_f64())
        });
        (b + bytes, s + secs)
    });
    ExpectedDelta {
        server: server.to_string(),
        increments: n,
        bytes: if n == 0 { 0 } else { bytes / n as u64 },
        seconds: if n == 0 { 0.0 } else { seconds / n as f64 },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rehost_replication::state::{RunPhase, SnapshotCounts, SnapshotRecord, SnapshotStatus};
    use time::macros::{datetime, offset};

    use super::*;

    #[test]
    fn at_takes_rfc3339_or_a_local_clock_time_today_or_tomorrow() {
        let now = datetime!(2026-03-01 21:30 +01:00);
        assert_eq!(
            parse_at("2026-03-01T22:00:00Z", now).unwrap(),
            datetime!(2026-03-01 22:00 UTC)
        );
        assert_eq!(
            parse_at("22:15", now).unwrap(),
            datetime!(2026-03-01 22:15 +01:00)
        );
        assert_eq!(
            parse_at("06:00", now).unwrap(),
            datetime!(2026-03-02 06:00 +01:00)
        );
        assert_eq!(
            parse_at("21:30", now).unwrap(),
            datetime!(2026-03-02 21:30 +01:00)
        );
        assert!(
            parse_at("2026-03-01T20:00:00+01:00", now)
                .unwrap_err()
                .contains("in the past")
        );
        for bad in ["25:00", "9", "tonight", "12:5", ""] {
            assert!(parse_at(bad, now).is_err(), "{bad}");
        }
        assert_eq!(now.offset(), offset!(+01:00));
    }

    fn run(parent: bool, status: RunStatus, bytes: u64, secs: f64) -> RunRecord {
        let at = datetime!(2026-03-01 02:00 UTC);
        RunRecord {
            run_id: "r".into(),
            app: "a".into(),
            server: "s".into(),
            group: "g".into(),
            status,
            phase: RunPhase::Completed,
            started_at: at,
            attempted_at: at,
            finished_at: Some(at),
            attempts: 1,
            ami_id: None,
            ami_name: None,
            error: None,
            timings: BTreeMap::from([("total".to_string(), secs)]),
            snapshots: vec![SnapshotRecord {
                snapshot_id: "snap".into(),
                run_id: "r".into(),
                disk: "disk0".into(),
                parent_snapshot_id: parent.then(|| "snap-p".into()),
                status: SnapshotStatus::Completed,
                volume_size_gib: 1,
                block_count: 2048,
                encrypted: false,
                kms_key_arn: None,
                started_at: at,
                completed_at: Some(at),
                counts: SnapshotCounts {
                    bytes_uploaded: bytes,
                    ..Default::default()
                },
            }],
        }
    }

    #[test]
    fn the_expected_delta_is_the_mean_of_recent_completed_increments() {
        let runs = [
            run(true, RunStatus::Failed, 999, 99.0),
            run(true, RunStatus::Completed, 100, 1.0),
            run(true, RunStatus::Completed, 300, 3.0),
            run(false, RunStatus::Completed, 5000, 50.0),
            run(true, RunStatus::Completed, 200, 2.0),
            run(true, RunStatus::Completed, 10_000, 10.0),
        ];
        let e = expected_delta("s", &runs);
        assert_eq!((e.increments, e.bytes, e.seconds), (3, 200, 2.0));
        let seed_only = expected_delta("s", &runs[3..4]);
        assert_eq!(seed_only.increments, 0);
    }
}
