//! When a server replicates next. Pure: the caller passes `now`.
//!
//! Slots of a `Hours(h)` server lie on the grid `seed_time + k·h` (or, without a seed time, on the
//! grid of its last success, else its last attempt). A run that failed is retried at the next slot
//! after the failed attempt. A `Once` server runs at its seed time (or now) until one run
//! succeeds; a failed one is retried `ONCE_RETRY_AFTER` later.

use time::{Duration, OffsetDateTime};

pub use crate::domain::Frequency;

pub const ONCE_RETRY_AFTER: Duration = Duration::hours(1);

/// The next time a server is due, or `None` when it needs no further run. A time at or before
/// `now` means "due now" (slots missed while nothing ran collapse into one run).
pub fn next_run(
    freq: Frequency,
    seed_time: Option<OffsetDateTime>,
    last_success: Option<OffsetDateTime>,
    last_attempt: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    // An attempt older than the last success is not a failure to retry.
    let failed_attempt = match (last_attempt, last_success) {
        (Some(a), Some(s)) if a > s => Some(a),
        (Some(a), None) => Some(a),
        _ => None,
    };
    let first = || match seed_time {
        Some(seed) if seed > now => seed,
        _ => now,
    };
    match freq {
        Frequency::Once => {
            if last_success.is_some() {
                return None;
            }
            Some(match failed_attempt {
                Some(a) => {
                    let retry = a + ONCE_RETRY_AFTER;
                    seed_time.map_or(retry, |s| retry.max(s))
                }
                None => first(),
            })
        }
        Frequency::Hours(h) => {
            let period = Duration::hours(i64::from(h.clamp(1, 24)));
            let last = match (last_success, failed_attempt) {
                (None, None) => return Some(first()),
                (s, f) => s.max(f)?,
            };
            let anchor = seed_time.or(last_success).or(failed_attempt)?;
            Some(slot_after(anchor, period, last))
        }
    }
}

/// The first point of the grid `anchor + k·period` strictly after `t`.
fn slot_after(anchor: OffsetDateTime, period: Duration, t: OffsetDateTime) -> OffsetDateTime {
    if t < anchor {
        return anchor;
    }
    let elapsed = (t - anchor).whole_seconds();
    let k = elapsed / period.whole_seconds() + 1;
    anchor + period * (k as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00 UTC);

    #[test]
    fn first_run_is_now_or_seed_time() {
        assert_eq!(
            next_run(Frequency::Hours(4), None, None, None, NOW),
            Some(NOW)
        );
        let seed = datetime!(2025-03-02 01:00 UTC);
        assert_eq!(
            next_run(Frequency::Hours(4), Some(seed), None, None, NOW),
            Some(seed)
        );
        assert_eq!(
            next_run(Frequency::Once, Some(seed), None, None, NOW),
            Some(seed)
        );
        let past = datetime!(2025-02-01 01:00 UTC);
        assert_eq!(
            next_run(Frequency::Hours(4), Some(past), None, None, NOW),
            Some(NOW)
        );
    }

    #[test]
    fn hourly_slots_follow_the_seed_grid() {
        let seed = datetime!(2025-03-01 01:00 UTC);
        let ok = datetime!(2025-03-01 09:20 UTC);
        assert_eq!(
            next_run(Frequency::Hours(4), Some(seed), Some(ok), Some(ok), NOW),
            Some(datetime!(2025-03-01 13:00 UTC))
        );
        // Without a seed time the grid starts at the last success.
        assert_eq!(
            next_run(Frequency::Hours(24), None, Some(ok), Some(ok), NOW),
            Some(datetime!(2025-03-02 09:20 UTC))
        );
    }

    #[test]
    fn failed_run_is_retried_at_the_next_slot() {
        let seed = datetime!(2025-03-01 01:00 UTC);
        let ok = datetime!(2025-03-01 05:00 UTC);
        let failed = datetime!(2025-03-01 09:00 UTC);
        assert_eq!(
            next_run(Frequency::Hours(4), Some(seed), Some(ok), Some(failed), NOW),
            Some(datetime!(2025-03-01 13:00 UTC))
        );
        // Never succeeded, no seed: one period after the failure.
        assert_eq!(
            next_run(Frequency::Hours(2), None, None, Some(failed), NOW),
            Some(datetime!(2025-03-01 11:00 UTC))
        );
    }

    #[test]
    fn missed_slots_are_due_now() {
        let ok = datetime!(2025-02-27 00:00 UTC);
        let next = next_run(Frequency::Hours(1), None, Some(ok), Some(ok), NOW).unwrap();
        assert!(next <= NOW);
    }

    #[test]
    fn once_servers_stop_after_a_success() {
        let ok = datetime!(2025-03-01 09:00 UTC);
        assert_eq!(
            next_run(Frequency::Once, None, Some(ok), Some(ok), NOW),
            None
        );
        let failed = datetime!(2025-03-01 11:30 UTC);
        assert_eq!(
            next_run(Frequency::Once, None, None, Some(failed), NOW),
            Some(datetime!(2025-03-01 12:30 UTC))
        );
    }

    #[test]
    fn out_of_range_hours_are_clamped() {
        let ok = datetime!(2025-03-01 09:00 UTC);
        assert_eq!(
            next_run(Frequency::Hours(0), None, Some(ok), Some(ok), NOW),
            Some(datetime!(2025-03-01 10:00 UTC))
        );
        assert_eq!(
            next_run(Frequency::Hours(99), None, Some(ok), Some(ok), NOW),
            Some(datetime!(2025-03-02 09:00 UTC))
        );
    }
}
