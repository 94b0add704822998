//! The settler's decisions: which trigger records are in limbo, and what
//! a scheduled settle asks for.
//!
//! The last double fault (docs/design.md, "When something fails"): the
//! ingress's admission committed, then neither its message nor the refund
//! got through, and the client was told 503. The record stays `queued`
//! with no run, and its slot stays taken. A record the worker has touched
//! always has a run (it joined or opened one), or another status. So a
//! record still `queued`, without a run, [`SETTLE_AFTER`] after it was
//! admitted, is settled: the settler sends its message again marked
//! `unsettled`, and the worker gives back what it took, if it still can
//! (one conditional write: a trigger its first message started meanwhile
//! keeps its run, so none is both run and refunded).

use crate::clock::EpochMillis;
use crate::rules::status::TriggerStatus;
use crate::rules::trigger::TriggerRecord;
use std::time::Duration;

/// How long after its admission a record untouched by the worker is in
/// limbo. Longer than the worker takes to reach a message behind a
/// backlog, so a trigger answered 202 is never settled in its stead.
pub const SETTLE_AFTER: Duration = Duration::from_secs(10 * 60);

/// How far back the settler looks: older records are expired or settled.
pub const SETTLE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What a scheduled invocation of the worker carries (the EventBridge
/// rule's constant input): the queue to send the settling messages to, and
/// optionally a shorter wait (the local stack's, in seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    pub queue_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seconds: Option<u64>,
}

impl SettleRequest {
    /// The request inside an invocation's payload `{"settle": {…}}`;
    /// `None` for any other payload (an SQS batch).
    pub fn from_event(event: &serde_json::Value) -> Option<Result<Self, String>> {
        let request = event.as_object()?.get("settle")?;
        Some(serde_json::from_value(request.clone()).map_err(|e| e.to_string()))
    }

    pub fn after(&self) -> Duration {
        self.after_seconds.map_or(SETTLE_AFTER, Duration::from_secs)
    }
}

/// The admission times to look at: from `now − SETTLE_WINDOW` to
/// `now − after` (empty when `after` is longer than the window).
pub fn settle_range(now: EpochMillis, after: Duration) -> (EpochMillis, EpochMillis) {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    (
        now.saturating_sub(ms(SETTLE_WINDOW)),
        now.saturating_sub(ms(after)),
    )
}

/// Whether `record` is in limbo at `now`: still `queued`, no run, admitted
/// at least `after` ago, and not expired.
pub fn needs_settling(record: &TriggerRecord, now: EpochMillis, after: Duration) -> bool {
    let (since, until) = settle_range(now, after);
    record.status == TriggerStatus::Queued
        && record.run_id.is_none()
        && record.execution_id.is_none()
        && record.requested_at >= since
        && record.requested_at <= until
        && !record.is_expired(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::client_key::ClientKey;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: EpochMillis = 1_796_000_000_000;

    fn record(requested_at: EpochMillis) -> TriggerRecord {
        TriggerRecord::queued(
            "01JCZ8W5Q4S0Y6Y8C0Z1V2X3Y4".into(),
            "app",
            "app-pipeline",
            ClientKey::from_stored(&"ab".repeat(32)).expect("a key"),
            Default::default(),
            requested_at,
            NOW / 1000 + 86_400 * 30,
        )
    }

    #[test]
    fn only_an_untouched_queued_record_past_the_wait_is_in_limbo() {
        let old = NOW - 11 * 60_000;
        assert!(needs_settling(&record(old), NOW, SETTLE_AFTER));
        assert!(!needs_settling(
            &record(NOW - 9 * 60_000),
            NOW,
            SETTLE_AFTER
        ));
        let mut joined = record(old);
        joined.run_id = Some("01JCZ8W5Q4S0Y6Y8C0Z1V2X3Y4".into());
        assert!(!needs_settling(&joined, NOW, SETTLE_AFTER));
        for status in [
            TriggerStatus::Started,
            TriggerStatus::Refused,
            TriggerStatus::DeadLettered,
            TriggerStatus::Succeeded,
        ] {
            let mut moved = record(old);
            moved.status = status;
            assert!(!needs_settling(&moved, NOW, SETTLE_AFTER), "{status:?}");
        }
        let mut expired = record(old);
        expired.expires_at = NOW / 1000 - 1;
        assert!(!needs_settling(&expired, NOW, SETTLE_AFTER));
        assert!(!needs_settling(
            &record(NOW - 25 * 3_600_000),
            NOW,
            SETTLE_AFTER
        ));
        // The local stack's shorter wait.
        assert!(needs_settling(
            &record(NOW - 5_000),
            NOW,
            Duration::from_secs(3)
        ));
    }

    #[test]
    fn a_scheduled_payload_is_told_from_a_batch_and_checked() {
        let asked = SettleRequest::from_event(&json!({"settle": {"queue_url": "https://q"}}));
        assert_eq!(
            asked,
            Some(Ok(SettleRequest {
                queue_url: "https://q".into(),
                after_seconds: None
            }))
        );
        assert_eq!(asked.unwrap().unwrap().after(), SETTLE_AFTER);
        assert_eq!(SettleRequest::from_event(&json!({"Records": []})), None);
        assert_eq!(SettleRequest::from_event(&json!([1])), None);
        for bad in [
            json!({"settle": {}}),
            json!({"settle": {"queue_url": 5}}),
            json!({"settle": {"queue_url": "q", "extra": 1}}),
            json!({"settle": "q"}),
        ] {
            assert!(
                matches!(SettleRequest::from_event(&bad), Some(Err(_))),
                "{bad}"
            );
        }
    }

    proptest! {
        /// Whatever the times: a record in limbo is queued, untouched, and
        /// inside the range the settler reads.
        #[test]
        fn limbo_is_inside_the_range_read(age_s in 0u64..200_000, after_s in 0u64..100_000) {
            let after = Duration::from_secs(after_s);
            let r = record(NOW.saturating_sub(age_s * 1000));
            let (since, until) = settle_range(NOW, after);
            let inside = r.requested_at >= since && r.requested_at <= until;
            prop_assert_eq!(needs_settling(&r, NOW, after), inside);
            prop_assert!(since <= NOW && until <= NOW);
        }
    }
}
