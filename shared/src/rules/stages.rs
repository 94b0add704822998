//! The stages of a run, as CodePipeline's stage state changes report them:
//! what `GET /triggers/{id}` shows as `stages`, in the order they started.
//!
//! Events come at least once and in any order, so each stage keeps the time
//! of the latest change it took (`at`) and the earliest change it has seen
//! (`since`, its start): a change older than `at` never overwrites the
//! state, but can still move `since` earlier.
//!
//! Event times have whole seconds, so a fast stage starts and ends within
//! one: at the same time, an ended state is newer than `STOPPING`, which is
//! newer than a running one. Stages that started in the same second are
//! ordered by when the first change of each was recorded (`seen`).

use super::time_format::rfc3339;
use crate::clock::EpochMillis;
use crate::rules::status::PipelineState;
use serde::Serialize;

/// The most stages one run keeps (CodePipeline allows 50 per pipeline).
pub const MAX_STAGES: usize = 50;

/// One stage of a run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageRecord {
    pub name: String,
    pub state: PipelineState,
    /// When the state recorded changed.
    pub at: EpochMillis,
    /// The earliest change seen: when the stage started.
    pub since: EpochMillis,
    /// When this system first recorded a change of the stage (its clock).
    pub seen: EpochMillis,
}

/// Of two changes at the same time, the one with the higher rank is newer.
fn rank(state: PipelineState) -> u8 {
    match state {
        PipelineState::Started | PipelineState::Resumed => 0,
        PipelineState::Stopping => 1,
        PipelineState::Succeeded
        | PipelineState::Failed
        | PipelineState::Stopped
        | PipelineState::Canceled
        | PipelineState::Superseded => 2,
    }
}

/// What recording a change does to a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageChange {
    /// Write this record in place of what was there.
    Write(StageRecord),
    /// Nothing new: a repeat, or older than what is recorded and no earlier
    /// than its start.
    Keep,
}

/// The stage after a change to `state` at `at`, recorded `now`, given
/// what is recorded.
pub fn stage_change(
    recorded: Option<&StageRecord>,
    name: &str,
    state: PipelineState,
    at: EpochMillis,
    now: EpochMillis,
) -> StageChange {
    let Some(old) = recorded else {
        return StageChange::Write(StageRecord {
            name: name.to_string(),
            state,
            at,
            since: at,
            seen: now,
        });
    };
    let mut new = old.clone();
    if (at, rank(state)) > (old.at, rank(old.state)) {
        new.state = state;
        new.at = at;
    }
    new.since = new.since.min(at);
    if new == *old {
        StageChange::Keep
    } else {
        StageChange::Write(new)
    }
}

/// One stage as `GET /triggers/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageView {
    pub name: String,
    /// CodePipeline's name of the state: `STARTED`, `SUCCEEDED`, `FAILED`, ...
    pub state: &'static str,
    pub updated_at: String,
}

/// The stages in the order they started (in the same second: in the order
/// they were first recorded, then by name).
pub fn stage_views(stages: &[StageRecord]) -> Vec<StageView> {
    let mut ordered: Vec<&StageRecord> = stages.iter().collect();
    ordered.sort_by(|a, b| (a.since, a.seen, &a.name).cmp(&(b.since, b.seen, &b.name)));
    ordered
        .into_iter()
        .take(MAX_STAGES)
        .map(|s| StageView {
            name: s.name.clone(),
            state: s.state.as_str(),
            updated_at: rfc3339(s.at),
        })
        .collect()
}

/// A stage name CodePipeline allows: 1 to 100 of `A-Za-z0-9.@-_`.
pub fn is_valid_stage_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use PipelineState::*;

    fn apply(stage: Option<StageRecord>, state: PipelineState, at: u64) -> Option<StageRecord> {
        match stage_change(stage.as_ref(), "Build", state, at, 7) {
            StageChange::Write(new) => Some(new),
            StageChange::Keep => stage,
        }
    }

    #[test]
    fn a_stage_moves_forward_and_keeps_its_start() {
        let s = apply(None, Started, 1_000);
        assert_eq!(
            s,
            Some(StageRecord {
                name: "Build".into(),
                state: Started,
                at: 1_000,
                since: 1_000,
                seen: 7,
            })
        );
        let s = apply(s, Succeeded, 5_000).unwrap();
        assert_eq!((s.state, s.at, s.since), (Succeeded, 5_000, 1_000));
    }

    #[test]
    fn late_and_repeated_changes_never_regress() {
        let done = apply(apply(None, Started, 1_000), Succeeded, 5_000);
        assert_eq!(
            stage_change(done.as_ref(), "Build", Started, 1_000, 9),
            StageChange::Keep
        );
        assert_eq!(
            stage_change(done.as_ref(), "Build", Succeeded, 5_000, 9),
            StageChange::Keep
        );
        // The end arrives before the start: the start still dates the stage.
        let s = apply(apply(None, Succeeded, 5_000), Started, 1_000).unwrap();
        assert_eq!((s.state, s.at, s.since), (Succeeded, 5_000, 1_000));
    }

    #[test]
    fn within_one_second_an_end_is_newer_than_a_start() {
        let s = apply(apply(None, Started, 1_000), Succeeded, 1_000).unwrap();
        assert_eq!(s.state, Succeeded);
        let s = apply(apply(None, Succeeded, 1_000), Started, 1_000).unwrap();
        assert_eq!(s.state, Succeeded);
        let s = apply(apply(None, Stopping, 1_000), Stopped, 1_000).unwrap();
        assert_eq!(s.state, Stopped);
    }

    #[test]
    fn a_retried_stage_runs_again() {
        let s = apply(apply(None, Started, 1_000), Failed, 2_000);
        let s = apply(s, Resumed, 9_000).unwrap();
        assert_eq!((s.state, s.since), (Resumed, 1_000));
    }

    #[test]
    fn views_are_in_the_order_stages_started() {
        let stage = |name: &str, since: u64, seen: u64| StageRecord {
            name: name.into(),
            state: Succeeded,
            at: since + 10,
            since,
            seen,
        };
        let views = stage_views(&[
            stage("Deploy", 300, 1),
            stage("Source", 100, 3),
            stage("Build", 200, 2),
        ]);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["Source", "Build", "Deploy"]);
        // Started in the same second: in the order first recorded.
        let views = stage_views(&[
            stage("A-last", 100, 30),
            stage("Z-first", 100, 10),
            stage("M-second", 100, 20),
        ]);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["Z-first", "M-second", "A-last"]);
        assert_eq!(views[0].state, "SUCCEEDED");
        assert_eq!(views[0].updated_at, rfc3339(110));
        assert_eq!(
            serde_json::to_value(&views[0]).unwrap(),
            serde_json::json!({"name": "Z-first", "state": "SUCCEEDED", "updated_at": rfc3339(110)})
        );
    }

    #[test]
    fn stage_names_are_what_codepipeline_allows() {
        for good in ["Build", "Deploy-prod", "a.b@c_d", &"x".repeat(100)] {
            assert!(is_valid_stage_name(good), "{good}");
        }
        for bad in ["", "has space", "<script>", "ünï", &"x".repeat(101), "a\nb"] {
            assert!(!is_valid_stage_name(bad), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever order the changes arrive in, the stage ends at the latest
        /// change's state and starts at the earliest change.
        #[test]
        fn any_delivery_order_gives_the_same_stage(
            changes in proptest::collection::vec((0usize..8, 0u64..1_000_000), 1..12),
        ) {
            // Delivered in the generated order, often several in one second.
            let changes: Vec<(PipelineState, u64)> = changes
                .into_iter()
                .map(|(s, t)| (PipelineState::ALL[s], (t % 8) * 1000))
                .collect();
            let latest = *changes.iter().max_by_key(|(s, t)| (*t, rank(*s))).unwrap();
            let earliest = changes.iter().map(|(_, t)| *t).min().unwrap();
            let mut stage = None;
            for (state, at) in &changes {
                stage = apply(stage, *state, *at);
                // Each change delivered twice changes nothing more.
                let again = apply(stage.clone(), *state, *at);
                prop_assert_eq!(&again, &stage);
            }
            let stage = stage.unwrap();
            // Two changes at the same time and rank are the same to a reader.
            prop_assert_eq!((rank(stage.state), stage.at, stage.since), (rank(latest.0), latest.1, earliest));
        }
    }
}
