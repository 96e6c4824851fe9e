//! The worker's decisions, pure: given now, what it knows of each of its servers (when each is
//! next due, when to look again at one another host holds, which run here) and what a lease
//! read said, which servers to try, when to wake, when the work is over. The loop in
//! `worker/mod.rs` carries them out.

use std::time::Duration;

use time::OffsetDateTime;

use crate::state::RunStatus;
use crate::state::s3::CLOCK_SLACK;

/// What the worker knows of one server it can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slot {
    /// When it is next due (`None`: never again, a `Once` server done). Cached: read at
    /// start-up and after each of this worker's attempts, not at every poll.
    pub next_due: Option<OffsetDateTime>,
    /// Another host held it: not tried again before this time.
    pub recheck_at: Option<OffsetDateTime>,
    /// A claim or run of it is under way here.
    pub in_flight: bool,
}

impl Slot {
    /// When it may be tried next (`None`: never), whatever runs now.
    fn ready_at(&self) -> Option<OffsetDateTime> {
        let due = self.next_due?;
        Some(self.recheck_at.map_or(due, |r| r.max(due)))
    }
}

/// The servers to try now, in `order` (random per worker, so workers do not all contend for
/// the same server first), at most `free` of them: due, not in flight, re-check time passed.
pub fn to_start(slots: &[Slot], order: &[usize], free: usize, now: OffsetDateTime) -> Vec<usize> {
    order
        .iter()
        .copied()
        .filter(|&i| !slots[i].in_flight && slots[i].ready_at().is_some_and(|t| t <= now))
        .take(free)
        .collect()
}

/// When to wake for the next server to try (`None`: no server waits; wake only when a run
/// ends). Only meaningful with a place free.
pub fn wake_at(slots: &[Slot]) -> Option<OffsetDateTime> {
    slots
        .iter()
        .filter(|s| !s.in_flight)
        .filter_map(Slot::ready_at)
        .min()
}

/// Every server is done for good (every one `Once` and replicated) and nothing runs here.
pub fn finished(slots: &[Slot]) -> bool {
    slots.iter().all(|s| !s.in_flight && s.next_due.is_none())
}

/// When to look again at a server another host holds: after its lease expires (plus the
/// clock slack), plus a jitter of up to a tenth of the lease time (`jitter`, 0..1), so the
/// workers waiting on one dead holder do not all claim at the same instant.
pub fn recheck_time(expires_at: OffsetDateTime, ttl: Duration, jitter: f64) -> OffsetDateTime {
    let spread = ttl.mul_f64(jitter.clamp(0.0, 1.0) / 10.0);
    expires_at + CLOCK_SLACK + spread
}

/// When a server is due, from what its newest run says and its schedule's answer
/// (`scheduled`, `schedule::next_run` from the last success and attempt). A newest run still
/// `running` while this worker holds the server's lease (or while no live holder does) was
/// interrupted: its holder died, so it is due now, to be resumed. Otherwise the schedule
/// decides (a failed run waits for its next slot).
pub fn due_time(
    newest_run: Option<RunStatus>,
    scheduled: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<OffsetDateTime> {
    match newest_run {
        Some(RunStatus::Running) => Some(now),
        _ => scheduled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2025-03-01 12:00 UTC);

    fn due(at: OffsetDateTime) -> Slot {
        Slot {
            next_due: Some(at),
            ..Slot::default()
        }
    }

    #[test]
    fn due_servers_start_in_the_workers_order_up_to_the_free_places() {
        let slots = vec![
            due(NOW),
            due(NOW - time::Duration::minutes(5)),
            due(NOW + time::Duration::minutes(1)),
            due(NOW),
        ];
        assert_eq!(to_start(&slots, &[3, 2, 1, 0], 2, NOW), vec![3, 1]);
        assert_eq!(to_start(&slots, &[0, 1, 2, 3], 8, NOW), vec![0, 1, 3]);
        assert_eq!(to_start(&slots, &[0, 1, 2, 3], 0, NOW), Vec::<usize>::new());
    }

    #[test]
    fn a_server_in_flight_or_held_elsewhere_is_not_tried_before_its_recheck() {
        let mut slots = vec![due(NOW), due(NOW), Slot::default()];
        slots[0].in_flight = true;
        slots[1].recheck_at = Some(NOW + time::Duration::seconds(30));
        assert!(to_start(&slots, &[0, 1, 2], 4, NOW).is_empty());
        assert_eq!(wake_at(&slots), Some(NOW + time::Duration::seconds(30)));
        let later = NOW + time::Duration::seconds(30);
        assert_eq!(to_start(&slots, &[0, 1, 2], 4, later), vec![1]);
    }

    #[test]
    fn a_recheck_never_brings_a_server_forward() {
        let mut slot = due(NOW + time::Duration::hours(1));
        slot.recheck_at = Some(NOW);
        assert_eq!(wake_at(&[slot]), Some(NOW + time::Duration::hours(1)));
    }

    #[test]
    fn the_work_is_over_when_no_server_is_due_again_and_none_runs() {
        assert!(finished(&[Slot::default(), Slot::default()]));
        assert!(!finished(&[Slot::default(), due(NOW)]));
        let running = Slot {
            in_flight: true,
            ..Slot::default()
        };
        assert!(!finished(&[running]));
        assert_eq!(wake_at(&[Slot::default()]), None);
    }

    #[test]
    fn a_held_server_is_looked_at_again_after_expiry_slack_and_a_bounded_jitter() {
        let ttl = Duration::from_secs(60);
        let expires = NOW + time::Duration::seconds(40);
        let earliest = recheck_time(expires, ttl, 0.0);
        assert_eq!(earliest, expires + CLOCK_SLACK);
        assert_eq!(
            recheck_time(expires, ttl, 1.0),
            earliest + Duration::from_secs(6)
        );
        assert_eq!(
            recheck_time(expires, ttl, 7.0),
            earliest + Duration::from_secs(6)
        );
    }

    #[test]
    fn an_interrupted_run_is_due_now_whatever_the_schedule_says() {
        let next_slot = Some(NOW + time::Duration::hours(1));
        assert_eq!(
            due_time(Some(RunStatus::Running), next_slot, NOW),
            Some(NOW)
        );
        assert_eq!(due_time(Some(RunStatus::Running), None, NOW), Some(NOW));
        assert_eq!(due_time(Some(RunStatus::Failed), next_slot, NOW), next_slot);
        assert_eq!(due_time(Some(RunStatus::Completed), None, NOW), None);
        assert_eq!(due_time(None, Some(NOW), NOW), Some(NOW));
    }
}
