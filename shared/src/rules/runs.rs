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

use super::inputs::{values_to_json, InputValues};
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
    pub expires_at: u64,
    /// Its stages, as the stage state changes reported them.
    pub stages: Vec<StageRecord>,
}

/// The key of an input set: two triggers have the same input set exactly
/// when their values (defaults filled in) are equal. A SHA-256 of the
/// values' canonical JSON (names sorted), 32 hex digits.
pub fn input_set_key(values: &InputValues) -> String {
    let canonical = values_to_json(values).to_string();
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

/// The lane item as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Lane {
    /// The run in progress; `None`: free.
    pub run_id: Option<String>,
    /// Its execution, once the start is recorded.
    pub execution_id: Option<String>,
    /// When the holder last showed life: taken, started, or confirmed in
    /// progress by CodePipeline (epoch ms).
    pub checked_at: EpochMillis,
}

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

    fn lane(holder: Option<&str>, checked_at: u64) -> Lane {
        Lane {
            run_id: holder.map(str::to_string),
            execution_id: None,
            checked_at,
        }
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
        // The same text as a string and as a boolean is another set.
        let c = values(&[
            ("env", InputValue::Text("staging".into())),
            ("dry_run", InputValue::Text("false".into())),
        ]);
        assert_eq!(input_set_key(&a), input_set_key(&same));
        assert_ne!(input_set_key(&a), input_set_key(&b));
        assert_ne!(input_set_key(&a), input_set_key(&c));
        assert_eq!(input_set_key(&a).len(), 32);
        assert_ne!(input_set_key(&InputValues::new()), input_set_key(&a));
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
