//! RFC 3339 timestamps for the API, the queue message and the table.

use crate::clock::EpochMillis;
use std::time::{Duration, UNIX_EPOCH};

/// `2026-11-21T05:21:31.123Z`
pub fn rfc3339(ms: EpochMillis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// Parses an RFC 3339 UTC timestamp back to epoch milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<EpochMillis> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    let since = at.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

/// The UTC day of a time, `2026-11-21`: the key the ledger is listed by.
pub fn day_of(ms: EpochMillis) -> String {
    rfc3339(ms)[..10].to_string()
}

/// The days from `since` to `until` (both included), newest first.
pub fn days_back(since: EpochMillis, until: EpochMillis) -> Vec<String> {
    const DAY: u64 = 86_400_000;
    let first = since - since % DAY;
    let mut days = Vec::new();
    let mut at = until - until % DAY;
    while at >= first {
        days.push(day_of(at));
        if at < DAY {
            break;
        }
        at -= DAY;
    }
    days
}

/// Whole seconds, rounded up: what `Retry-After` and `RateLimit` carry.
pub fn ceil_seconds(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_milliseconds() {
        let ms = 1_795_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert!(rfc3339(ms).ends_with('Z'));
    }

    #[test]
    fn days_are_utc_and_listed_newest_first() {
        let at = parse_rfc3339("2026-11-21T23:59:59.999Z").unwrap();
        assert_eq!(day_of(at), "2026-11-21");
        assert_eq!(day_of(at + 1), "2026-11-22");
        let since = parse_rfc3339("2026-11-19T12:00:00Z").unwrap();
        assert_eq!(
            days_back(since, at),
            ["2026-11-21", "2026-11-20", "2026-11-19"]
        );
        assert_eq!(days_back(at, at), ["2026-11-21"]);
        assert_eq!(days_back(at + 1, at), Vec::<String>::new());
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn rounds_up_to_seconds() {
        assert_eq!(ceil_seconds(0), 0);
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(1000), 1);
        assert_eq!(ceil_seconds(1001), 2);
    }
}
