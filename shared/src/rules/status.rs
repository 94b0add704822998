//! Every status in one room: where a pipeline execution is (as CodePipeline
//! names it), where a trigger is (what `GET /triggers/{id}` shows), where a
//! run is, and how each maps onto the next (docs/reference/http-api.md,
//! "`GET /triggers/{id}`"; docs/design.md, "Runs").

use serde::Serialize;

/// A pipeline execution's state, as CodePipeline names it in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineState {
    Started,
    Resumed,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
    Superseded,
    Canceled,
}

impl PipelineState {
    pub const ALL: [PipelineState; 8] = [
        Self::Started,
        Self::Resumed,
        Self::Stopping,
        Self::Stopped,
        Self::Succeeded,
        Self::Failed,
        Self::Superseded,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Resumed => "RESUMED",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Superseded => "SUPERSEDED",
            Self::Canceled => "CANCELED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What a public trigger's status becomes. `None`: the execution is
    /// still running (the worker already recorded `started`).
    pub fn trigger_status(self) -> Option<TriggerStatus> {
        match self {
            Self::Succeeded => Some(TriggerStatus::Succeeded),
            Self::Failed => Some(TriggerStatus::Failed),
            // A canceled execution was stopped before it ran to its end.
            Self::Stopped | Self::Canceled => Some(TriggerStatus::Stopped),
            Self::Superseded => Some(TriggerStatus::Superseded),
            // A failed execution can be retried: it runs again.
            Self::Resumed => Some(TriggerStatus::Started),
            Self::Started | Self::Stopping => None,
        }
    }
}

/// Where a trigger is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerStatus {
    Queued,
    Started,
    Succeeded,
    Failed,
    Stopped,
    Superseded,
    DeadLettered,
    /// Its pipeline's queue was full: nothing ran, nothing was charged.
    Refused,
}

impl TriggerStatus {
    pub const ALL: [TriggerStatus; 8] = [
        Self::Queued,
        Self::Started,
        Self::Succeeded,
        Self::Failed,
        Self::Stopped,
        Self::Superseded,
        Self::DeadLettered,
        Self::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Started => "started",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Superseded => "superseded",
            Self::DeadLettered => "dead_lettered",
            Self::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Is this an end state (nothing will run for it any more)?
    pub fn is_ended(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::Stopped
                | Self::Superseded
                | Self::DeadLettered
                | Self::Refused
        )
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Accepted triggers collect here; not started.
    Pending,
    /// Holds its lane; the start is being made (or is being retried).
    Starting,
    /// CodePipeline reported this state (or the worker recorded the start).
    Execution(TriggerStatus),
    /// Its opener's message went to the DLQ: every trigger of the run with it.
    DeadLettered,
    /// An operator cleared its lane's queue (`trigger-ops pipelines
    /// flush`): never started, every trigger `refused` (`flushed`), no
    /// quota given back.
    Flushed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Starting => "starting",
            Self::DeadLettered => "dead_lettered",
            Self::Flushed => "flushed",
            Self::Execution(status) => status.as_str(),
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "starting" => Some(Self::Starting),
            "dead_lettered" => Some(Self::DeadLettered),
            "flushed" => Some(Self::Flushed),
            // `queued` and `dead_lettered` are not execution states.
            "queued" | "refused" => None,
            other => TriggerStatus::parse(other).map(Self::Execution),
        }
    }

    /// What each trigger of the run shows.
    pub fn trigger_status(self) -> TriggerStatus {
        match self {
            Self::Pending | Self::Starting => TriggerStatus::Queued,
            Self::DeadLettered => TriggerStatus::DeadLettered,
            Self::Flushed => TriggerStatus::Refused,
            Self::Execution(status) => status,
        }
    }

    /// Has the run's execution ended (its lane is free again)?
    pub fn is_ended(self) -> bool {
        self.trigger_status().is_ended()
    }
}

/// The status an execution's state change gives a record (a trigger's, a
/// run's): as stored, and whether the execution has ended (at the same
/// time, an end is newer than a start).
pub trait OutcomeStatus: Copy {
    fn as_str(self) -> &'static str;
    fn is_ended(self) -> bool;
}

impl OutcomeStatus for TriggerStatus {
    fn as_str(self) -> &'static str {
        TriggerStatus::as_str(self)
    }
    fn is_ended(self) -> bool {
        TriggerStatus::is_ended(self)
    }
}

impl OutcomeStatus for RunStatus {
    fn as_str(self) -> &'static str {
        RunStatus::as_str(self)
    }
    fn is_ended(self) -> bool {
        RunStatus::is_ended(self)
    }
}

/// What CodePipeline's answer about the lane holder's execution means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderState {
    /// Still running: the lane stays taken (and is marked checked).
    Running,
    /// Ended (or never existed): the lane is freed, the run gets this status.
    Ended(RunStatus),
}

/// CodePipeline's `PipelineExecution.status` of the holder, `None` when the
/// execution does not exist.
pub fn holder_state(status: Option<&str>) -> HolderState {
    let ended = |s| HolderState::Ended(RunStatus::Execution(s));
    match status {
        // Gone (or never started): whatever it was, it no longer runs.
        None => ended(TriggerStatus::Stopped),
        Some("Succeeded") => ended(TriggerStatus::Succeeded),
        Some("Failed") => ended(TriggerStatus::Failed),
        Some("Stopped") | Some("Cancelled") => ended(TriggerStatus::Stopped),
        Some("Superseded") => ended(TriggerStatus::Superseded),
        // InProgress, Stopping, and anything new: assume it still runs.
        Some(_) => HolderState::Running,
    }
}

/// The run status a pipeline state change means (`None`: the run is still
/// running: `STOPPING`).
pub fn run_status_of(state: PipelineState) -> Option<RunStatus> {
    match state {
        PipelineState::Started => Some(RunStatus::Execution(TriggerStatus::Started)),
        other => other.trigger_status().map(RunStatus::Execution),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_serialize_as_the_contract_says() {
        for s in TriggerStatus::ALL {
            assert_eq!(TriggerStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(TriggerStatus::parse("QUEUED"), None);
    }

    #[test]
    fn run_statuses_round_trip_and_map_to_what_triggers_show() {
        let all = [
            RunStatus::Pending,
            RunStatus::Starting,
            RunStatus::DeadLettered,
            RunStatus::Execution(TriggerStatus::Started),
            RunStatus::Execution(TriggerStatus::Succeeded),
            RunStatus::Execution(TriggerStatus::Failed),
            RunStatus::Execution(TriggerStatus::Stopped),
            RunStatus::Execution(TriggerStatus::Superseded),
        ];
        for status in all {
            assert_eq!(RunStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RunStatus::parse("queued"), None);
        assert_eq!(RunStatus::parse("PENDING"), None);
        assert_eq!(RunStatus::Pending.trigger_status(), TriggerStatus::Queued);
        assert_eq!(RunStatus::Starting.trigger_status(), TriggerStatus::Queued);
        assert!(!RunStatus::Starting.is_ended());
        assert!(!RunStatus::Execution(TriggerStatus::Started).is_ended());
        assert!(RunStatus::Execution(TriggerStatus::Superseded).is_ended());
        assert!(RunStatus::DeadLettered.is_ended());
    }

    #[test]
    fn codepipeline_statuses_free_the_lane_only_when_ended() {
        for running in ["InProgress", "Stopping", "SomethingNew"] {
            assert_eq!(holder_state(Some(running)), HolderState::Running);
        }
        let ended = |s| HolderState::Ended(RunStatus::Execution(s));
        assert_eq!(
            holder_state(Some("Succeeded")),
            ended(TriggerStatus::Succeeded)
        );
        assert_eq!(holder_state(Some("Failed")), ended(TriggerStatus::Failed));
        assert_eq!(
            holder_state(Some("Cancelled")),
            ended(TriggerStatus::Stopped)
        );
        assert_eq!(
            holder_state(Some("Superseded")),
            ended(TriggerStatus::Superseded)
        );
        assert_eq!(holder_state(None), ended(TriggerStatus::Stopped));
    }

    #[test]
    fn state_changes_map_to_run_statuses() {
        assert_eq!(
            run_status_of(PipelineState::Started),
            Some(RunStatus::Execution(TriggerStatus::Started))
        );
        assert_eq!(run_status_of(PipelineState::Stopping), None);
        assert_eq!(
            run_status_of(PipelineState::Canceled),
            Some(RunStatus::Execution(TriggerStatus::Stopped))
        );
    }
}
