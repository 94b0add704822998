//! Runs: how triggers coalesce into pipeline executions (docs/design.md, "Runs").
//!
//! A run is one execution the system starts. Its id is the id of the trigger
//! that opened it, and it is the `clientRequestToken` of its start, so a
//! redelivered or retried start is the same execution. With `coalesce` on:
//!
//! - a trigger joins the *pending* run of its public pipeline and input set
//!   (`pending#…` points at it) or, when there is none, opens one;
//! - a pending run starts only while its CodePipeline's *lane* (`lane#…`) is
//!   free or already its own, so at most one run per CodePipeline is in
//!   progress;
//! - the lane is freed by the run's terminal event (notifier), or, when that
//!   event is lost or late, by the worker asking CodePipeline once the lane
//!   has gone [`LaneVerdict::Stale`].
//!
//! Only the opener's message waits (it is sent again with a delay while the
//! lane is busy); the messages of triggers that joined are acknowledged.

use super::inputs::InputValues;
use super::stages::StageRecord;
use super::status::RunStatus;
use crate::clock::EpochMillis;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// One run as the ledger keeps it (`run#<run id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The id of the trigger that opened it; its start's `clientRequestToken`.
    pub run_id: String,
    /// The public pipeline name.
    pub pipeline: String,
    /// The CodePipeline name.
    pub target: String,
    pub status: RunStatus,
    /// How many triggers it serves (the opener included).
    pub triggers: u64,
    /// When the opener was requested.
    pub requested_at: EpochMillis,
    pub updated_at: EpochMillis,
    pub execution_id: Option<String>,
    /// When its execution was recorded as started.
    pub started_at: Option<EpochMillis>,
    pub expires_at: u64,
    /// Its stages, as the stage state changes reported them.
    pub stages: Vec<StageRecord>,
    /// The opener's work message and the queue it came from: what wakes the
    /// run when the run before it ends.
    pub wake: Option<Wake>,
    /// Which of its CodePipeline's queues it waits in (its opener's lane);
    /// `None`: opened before runs kept theirs (it waits as an anonymous run,
    /// counted under its public pipeline).
    pub lane: Option<RunLane>,
}

/// Which queue of a CodePipeline a run waits in: keyed runs start before
/// anonymous ones, and only they may fill the reserved slots
/// (`reserved_pending`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunLane {
    Anonymous,
    Key,
}

impl RunLane {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Key => "key",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "anonymous" => Some(Self::Anonymous),
            "key" => Some(Self::Key),
            _ => None,
        }
    }
}

/// How to wake a waiting run: send its opener's message again, body and
/// String attributes unchanged (a replay's mark among them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub queue_url: String,
    pub message: String,
    pub attributes: Vec<(String, String)>,
}

/// The key of an input set: two triggers have the same input set exactly
/// when CodePipeline would receive the same variables (defaults filled in;
/// `1`, `1.0` and `1e0` are the one variable `1`). A SHA-256 of the
/// variables' canonical JSON (names sorted), 32 hex digits.
pub fn input_set_key(values: &InputValues) -> String {
    let variables: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .map(|(name, value)| (name.clone(), value.variable_value().into()))
        .collect();
    let canonical = serde_json::Value::Object(variables).to_string();
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// What the lane of a CodePipeline says to a run that wants to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaneVerdict {
    /// Nobody holds it, or the run itself does: go ahead.
    Go,
    /// Another run is in progress and was heard of recently: wait.
    Wait,
    /// Another run has held it past the bound without news: ask CodePipeline
    /// about its execution (or, with no execution recorded, take it over).
    Stale,
}

/// The lane item as the table holds it: the run in progress of one
/// CodePipeline, and the runs waiting for it, first come first served.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lane {
    /// The run in progress; `None`: free.
    pub run_id: Option<String>,
    /// Its execution, once the start is recorded.
    pub execution_id: Option<String>,
    /// When the holder last showed life: taken, started, or confirmed in
    /// progress by CodePipeline (epoch ms).
    pub checked_at: EpochMillis,
    /// When the holder took the lane (epoch ms).
    pub taken_at: EpochMillis,
    /// The pending runs opened by keyed triggers, in the order they were
    /// opened: they start before every anonymous one.
    pub waiting_key: Vec<String>,
    /// The pending anonymous runs, in the order they were opened (over every
    /// public pipeline and input set of this CodePipeline).
    pub waiting: Vec<String>,
    /// How long the last runs took (ms), oldest first, at most
    /// [`KEPT_DURATIONS`].
    pub durations: Vec<u64>,
    /// The lane's one safety poll: the token of the message that carries
    /// it, and until when it is alive (epoch ms).
    pub poll_token: Option<String>,
    pub poll_until: EpochMillis,
}

/// How many run durations a lane keeps for its estimates.
pub const KEPT_DURATIONS: usize = 10;

/// Where a queued run stands: position 1 starts next; `ahead` counts every
/// run that will run before it, the one in progress included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueuePlace {
    pub position: usize,
    pub ahead: usize,
}

impl Lane {
    /// Every waiting run in the order they start: the keyed ones first.
    pub fn in_order(&self) -> impl Iterator<Item = &String> {
        self.waiting_key.iter().chain(&self.waiting)
    }

    /// The waiting run that starts next.
    pub fn first_waiting(&self) -> Option<&str> {
        self.in_order().next().map(String::as_str)
    }

    /// Does any run wait?
    pub fn has_waiting(&self) -> bool {
        !self.waiting_key.is_empty() || !self.waiting.is_empty()
    }

    /// Where `run_id` stands among the waiting runs, if it waits.
    pub fn place(&self, run_id: &str) -> Option<QueuePlace> {
        let index = self.in_order().position(|r| r == run_id)?;
        Some(QueuePlace {
            position: index + 1,
            ahead: index + usize::from(self.run_id.is_some()),
        })
    }

    /// What a run of this pipeline typically takes: the median of the last
    /// runs' durations (none yet: no estimate).
    pub fn typical_ms(&self) -> Option<u64> {
        let mut kept: Vec<u64> = self
            .durations
            .iter()
            .rev()
            .take(KEPT_DURATIONS)
            .copied()
            .collect();
        if kept.is_empty() {
            return None;
        }
        kept.sort_unstable();
        Some(kept[kept.len() / 2])
    }

    /// When the run in progress is expected to end: its start plus a
    /// typical run, never before `now` (a run past its typical length
    /// may end any moment). `None`: no holder, or no estimate.
    pub fn holder_ends_at(&self, now: EpochMillis) -> Option<EpochMillis> {
        self.run_id.as_ref()?;
        Some(self.taken_at.saturating_add(self.typical_ms()?).max(now))
    }

    /// When `run_id`, waiting, is expected to start: after the run in
    /// progress and a typical run for each run ahead of it in the queue.
    pub fn estimated_start(&self, run_id: &str, now: EpochMillis) -> Option<EpochMillis> {
        let place = self.place(run_id)?;
        let typical = self.typical_ms()?;
        let first = match self.run_id {
            Some(_) => self.holder_ends_at(now)?,
            None => now,
        };
        Some(first.saturating_add(typical.saturating_mul((place.position - 1) as u64)))
    }

    /// How long until the next waiting run leaves the queue (a pending
    /// slot frees): when the run in progress is expected to end, at least
    /// `floor`; `floor` when nothing is known.
    pub fn next_start_in(&self, now: EpochMillis, floor: u64) -> u64 {
        self.holder_ends_at(now)
            .map_or(floor, |end| end.saturating_sub(now).max(floor))
    }

    /// The waiting run to wake: the first in line, when nobody holds the
    /// lane.
    pub fn next_to_wake(&self) -> Option<&str> {
        match self.run_id {
            Some(_) => None,
            None => self.first_waiting(),
        }
    }

    /// Is the lane's safety poll alive at `now`?
    pub fn has_live_poll(&self, now: EpochMillis) -> bool {
        self.poll_until > now
    }
}

/// How long a lane holder may go without a recorded start before
/// CodePipeline is asked whether its start went through.
pub const UNRECORDED_CHECK_MS: u64 = 60_000;

/// May `run_id` take `lane` now? `check_after` is `RUN_CHECK_AFTER`: how long
/// a run holds its lane without news before CodePipeline is asked about it.
pub fn lane_verdict(
    lane: &Lane,
    run_id: &str,
    now: EpochMillis,
    check_after: Duration,
) -> LaneVerdict {
    match lane.run_id.as_deref() {
        None => LaneVerdict::Go,
        Some(holder) if holder == run_id => LaneVerdict::Go,
        // Took the lane a while ago and recorded no start: CodePipeline is
        // asked at once, not after `check_after` (its start may have gone
        // through while its record did not).
        Some(_)
            if lane.execution_id.is_none()
                && now.saturating_sub(lane.taken_at) >= UNRECORDED_CHECK_MS =>
        {
            LaneVerdict::Stale
        }
        Some(_) => {
            let bound = u64::try_from(check_after.as_millis()).unwrap_or(u64::MAX);
            if now.saturating_sub(lane.checked_at) >= bound {
                LaneVerdict::Stale
            } else {
                LaneVerdict::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::inputs::InputValue;
    use proptest::prelude::*;

    const MIN: Duration = Duration::from_secs(60);

    /// A lane held by `holder` (with a recorded start) since `checked_at`.
    fn lane(holder: Option<&str>, checked_at: u64) -> Lane {
        Lane {
            run_id: holder.map(str::to_string),
            execution_id: holder.map(|_| "E".to_string()),
            checked_at,
            taken_at: checked_at,
            ..Lane::default()
        }
    }

    #[test]
    fn a_waiting_run_knows_its_place_and_when_it_should_start() {
        let mut l = lane(Some("H"), 0);
        l.taken_at = 1_000;
        l.waiting = vec!["A".into(), "B".into(), "C".into()];
        assert_eq!(
            l.place("A"),
            Some(QueuePlace {
                position: 1,
                ahead: 1
            })
        );
        assert_eq!(
            l.place("C"),
            Some(QueuePlace {
                position: 3,
                ahead: 3
            })
        );
        assert_eq!(l.place("H"), None);
        // No run has ended yet: no estimate.
        assert_eq!(l.estimated_start("A", 2_000), None);
        l.durations = vec![60_000, 10_000, 20_000];
        assert_eq!(l.typical_ms(), Some(20_000));
        // The holder took the lane at 1 s and typically runs 20 s.
        assert_eq!(l.holder_ends_at(2_000), Some(21_000));
        assert_eq!(l.estimated_start("A", 2_000), Some(21_000));
        assert_eq!(l.estimated_start("C", 2_000), Some(61_000));
        // A holder past its typical length may end any moment.
        assert_eq!(l.holder_ends_at(30_000), Some(30_000));
        assert_eq!(l.next_start_in(2_000, 1_000), 19_000);
        assert_eq!(l.next_start_in(30_000, 1_000), 1_000);
        // Free lane: the first waiting run starts now.
        l.run_id = None;
        assert_eq!(
            l.place("A"),
            Some(QueuePlace {
                position: 1,
                ahead: 0
            })
        );
        assert_eq!(l.estimated_start("B", 5_000), Some(25_000));
        assert_eq!(l.next_start_in(5_000, 1_000), 1_000);
    }

    #[test]
    fn keyed_runs_wait_ahead_of_every_anonymous_one() {
        let mut l = lane(Some("H"), 0);
        l.waiting = vec!["A1".into(), "A2".into()];
        l.waiting_key = vec!["K1".into()];
        assert_eq!(l.first_waiting(), Some("K1"));
        assert_eq!(l.place("K1").map(|p| p.position), Some(1));
        assert_eq!(l.place("A1").map(|p| p.position), Some(2));
        assert_eq!(l.place("A2").map(|p| (p.position, p.ahead)), Some((3, 3)));
        assert_eq!(l.next_to_wake(), None, "the lane is held");
        l.run_id = None;
        assert_eq!(l.next_to_wake(), Some("K1"));
        l.waiting_key.clear();
        assert_eq!(l.next_to_wake(), Some("A1"));
        assert!(l.has_waiting());
        l.waiting.clear();
        assert!(!l.has_waiting());
        assert_eq!(l.next_to_wake(), None);
    }

    #[test]
    fn the_typical_run_is_the_median_of_the_last_ten() {
        let mut l = Lane {
            durations: (1..=15).map(|n| n * 1_000).collect(),
            ..Lane::default()
        };
        // The last ten: 6 s … 15 s; their median is 11 s.
        assert_eq!(l.typical_ms(), Some(11_000));
        l.durations = vec![5_000];
        assert_eq!(l.typical_ms(), Some(5_000));
    }

    #[test]
    fn a_free_or_own_lane_lets_the_run_go() {
        assert_eq!(lane_verdict(&lane(None, 0), "R", 5, MIN), LaneVerdict::Go);
        assert_eq!(
            lane_verdict(&lane(Some("R"), 0), "R", 10_000_000, MIN),
            LaneVerdict::Go
        );
    }

    #[test]
    fn another_holder_means_wait_until_the_bound_then_stale() {
        let held = lane(Some("OTHER"), 1_000);
        assert_eq!(lane_verdict(&held, "R", 1_000, MIN), LaneVerdict::Wait);
        assert_eq!(lane_verdict(&held, "R", 60_999, MIN), LaneVerdict::Wait);
        assert_eq!(lane_verdict(&held, "R", 61_000, MIN), LaneVerdict::Stale);
        // A clock behind the lane's time never reads as stale.
        assert_eq!(lane_verdict(&held, "R", 10, MIN), LaneVerdict::Wait);
    }

    #[test]
    fn a_holder_without_a_recorded_start_is_asked_about_after_a_minute() {
        let long = Duration::from_secs(3_600);
        let unrecorded = Lane {
            execution_id: None,
            ..lane(Some("OTHER"), 1_000)
        };
        let recorded = lane(Some("OTHER"), 1_000);
        let at = 1_000 + UNRECORDED_CHECK_MS;
        assert_eq!(
            lane_verdict(&unrecorded, "R", at - 1, long),
            LaneVerdict::Wait
        );
        assert_eq!(lane_verdict(&unrecorded, "R", at, long), LaneVerdict::Stale);
        // With its start recorded, only `check_after` counts.
        assert_eq!(lane_verdict(&recorded, "R", at, long), LaneVerdict::Wait);
        // A refreshed `checked_at` does not hide a start never recorded.
        let refreshed = Lane {
            checked_at: at,
            ..unrecorded.clone()
        };
        assert_eq!(lane_verdict(&refreshed, "R", at, long), LaneVerdict::Stale);
    }

    fn values(pairs: &[(&str, InputValue)]) -> InputValues {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn input_set_keys_tell_sets_apart_and_ignore_order() {
        let a = values(&[
            ("env", InputValue::Text("staging".into())),
            ("dry_run", InputValue::Bool(false)),
        ]);
        let same = values(&[
            ("dry_run", InputValue::Bool(false)),
            ("env", InputValue::Text("staging".into())),
        ]);
        let b = values(&[
            ("env", InputValue::Text("staging".into())),
            ("dry_run", InputValue::Bool(true)),
        ]);
        // Another value of an input is another set.
        let c = values(&[
            ("env", InputValue::Text("production".into())),
            ("dry_run", InputValue::Bool(false)),
        ]);
        assert_eq!(input_set_key(&a), input_set_key(&same));
        assert_ne!(input_set_key(&a), input_set_key(&b));
        assert_ne!(input_set_key(&a), input_set_key(&c));
        assert_eq!(input_set_key(&a).len(), 32);
        assert_ne!(input_set_key(&InputValues::new()), input_set_key(&a));
    }

    #[test]
    fn equal_variables_are_one_input_set_whatever_their_json_spelling() {
        let number = |text: &str| {
            values(&[(
                "replicas",
                InputValue::Number(serde_json::from_str(text).unwrap()),
            )])
        };
        let one = input_set_key(&number("1"));
        for same in ["1.0", "1e0", "10e-1", "0.1e1"] {
            assert_eq!(input_set_key(&number(same)), one, "{same}");
        }
        assert_ne!(input_set_key(&number("2")), one);
        assert_ne!(input_set_key(&number("1.5")), one);
    }

    proptest! {
        #[test]
        fn equal_sets_have_equal_keys_and_different_sets_different_keys(
            a in proptest::collection::btree_map("[a-c]{1,2}", "[a-c]{0,3}", 0..4),
            b in proptest::collection::btree_map("[a-c]{1,2}", "[a-c]{0,3}", 0..4),
        ) {
            let to_values = |m: &std::collections::BTreeMap<String, String>| -> InputValues {
                m.iter().map(|(k, v)| (k.clone(), InputValue::Text(v.clone()))).collect()
            };
            prop_assert_eq!(a == b, input_set_key(&to_values(&a)) == input_set_key(&to_values(&b)));
        }
    }
}
