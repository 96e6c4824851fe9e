//! Time as rehost stores and prints it: unix milliseconds in the state, compact UTC stamps in
//! run ids and AMI names.

use time::{OffsetDateTime, UtcOffset};

/// Unix milliseconds (what the state stores).
pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The time of unix milliseconds `ms`; the epoch for a value out of `time`'s range.
pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub fn compact_utc(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn unix_ms_round_trips_to_the_millisecond() {
        let t = datetime!(2025-03-01 12:34:56.789 UTC);
        assert_eq!(unix_ms(t), 1_740_832_496_789);
        assert_eq!(from_unix_ms(unix_ms(t)), t);
        assert_eq!(
            from_unix_ms(unix_ms(datetime!(2025-03-01 12:34:56.789_999 UTC))),
            t,
            "sub-millisecond digits are dropped"
        );
    }

    #[test]
    fn out_of_range_milliseconds_read_as_the_epoch() {
        assert_eq!(from_unix_ms(i64::MAX), OffsetDateTime::UNIX_EPOCH);
    }

    #[test]
    fn compact_utc_converts_to_utc() {
        assert_eq!(
            compact_utc(datetime!(2025-03-01 01:02:03 +02:00)),
            "20250228T230203Z"
        );
    }
}
