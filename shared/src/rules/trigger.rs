//! A trigger and its record in the ledger: what `GET /triggers/{id}` shows.

use super::inputs::{values_to_json, InputValues};
use super::runs::{Lane, QueuePlace, RunLane, RunRecord};
use super::stages::{stage_views, StageRecord, StageView};
use super::status::{RunStatus, TriggerStatus};
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::time_format::{ceil_seconds, rfc3339};
use serde::Serialize;

/// The TTL (`expires_at`, epoch seconds, rounded up) of a ledger item
/// written at `now` and kept for `retention` (`LEDGER_RETENTION`).
pub fn ledger_expires_at(now: EpochMillis, retention: std::time::Duration) -> u64 {
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    now.saturating_add(retention_ms).div_ceil(1000)
}

/// A new trigger id: a ULID (26 characters, sortable by time).
pub fn new_trigger_id() -> String {
    ulid::Ulid::new().to_string()
}

/// A new trigger id made at `now` (the handler's clock): its embedded time
/// is when the trigger was requested, which [`could_exist`] relies on.
pub fn trigger_id_at(now: EpochMillis) -> String {
    ulid::Ulid::from_datetime(std::time::UNIX_EPOCH + std::time::Duration::from_millis(now))
        .to_string()
}

/// The canonical form of a trigger id from a URL, or `None` if it cannot be one.
pub fn canonical_trigger_id(text: &str) -> Option<String> {
    if text.len() != ulid::ULID_LEN {
        return None;
    }
    let canonical = ulid::Ulid::from_string(text).ok()?.to_string();
    // Overflowing ids (first character above 7) parse lossily: refuse them.
    canonical.eq_ignore_ascii_case(text).then_some(canonical)
}

/// How far ahead of the clock an id's time may be (clocks of instances differ).
const ID_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// Whether a trigger with this id can exist at `now`: its embedded time is
/// neither in the future nor older than the ledger keeps records
/// (`retention`, plus a day of TTL slack). Answered without a read.
pub fn could_exist(id: &str, now: EpochMillis, retention: std::time::Duration) -> bool {
    let Ok(ulid) = ulid::Ulid::from_string(id) else {
        return false;
    };
    let made = ulid.timestamp_ms();
    let kept = u64::try_from(retention.as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(86_400_000);
    made <= now.saturating_add(ID_CLOCK_SKEW_MS) && made.saturating_add(kept) >= now
}

/// A network a trigger took quota from: its level and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkKey {
    /// `ipv6/48`.
    pub level: String,
    pub key: ClientKey,
}

impl NetworkKey {
    /// `ipv6/48=<key>`, as the record stores it.
    pub fn to_stored(&self) -> String {
        format!("{}={}", self.level, self.key)
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        let (level, key) = text.split_once('=')?;
        Some(Self {
            level: level.to_string(),
            key: ClientKey::from_stored(key)?,
        })
    }
}

/// One trigger as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerRecord {
    pub trigger_id: String,
    /// The public pipeline name the client asked for.
    pub pipeline: String,
    /// The CodePipeline name it maps to.
    pub target: String,
    pub status: TriggerStatus,
    pub requested_at: EpochMillis,
    pub updated_at: EpochMillis,
    pub client_key: ClientKey,
    /// The networks whose quota it took a slot of (`NETWORK_QUOTA_LIMITS`).
    pub networks: Vec<NetworkKey>,
    /// During a rotation's overlap, the quotas it also took under the
    /// previous secret: `client` (the client's own), then its networks'.
    pub previous_keys: Vec<NetworkKey>,
    /// The start of the global budget's window it counted in (when on).
    pub global_window: Option<EpochMillis>,
    /// The pipeline's input values, defaults filled in (empty: none declared).
    pub inputs: InputValues,
    /// The run it joined or opened (with coalescing on).
    pub run_id: Option<String>,
    /// The trigger key it came with (its name): the keyed lane; `None`:
    /// the anonymous lane.
    pub key: Option<String>,
    /// Its execution, without coalescing (a run holds its own).
    pub execution_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// TTL, epoch seconds: garbage collection only; reads compare it themselves.
    pub expires_at: u64,
    /// Its execution's stages, without coalescing (a run holds its own).
    pub stages: Vec<StageRecord>,
    /// Why it was refused, when it was (`status` is then `refused`).
    pub refusal: Option<Refusal>,
}

/// A trigger refused behind the queue: nothing ran, nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `queue_full`, or `unsettled`.
    pub reason: String,
    /// When trying again makes sense (epoch ms).
    pub retry_at: EpochMillis,
}

/// Why a trigger is refused when its pipeline's queue is full.
pub const QUEUE_FULL: &str = "queue_full";

/// Why a trigger whose run an operator flushed (`trigger-ops pipelines
/// flush`) is refused: charged, not run.
pub const FLUSHED: &str = "flushed";

/// Why a trigger whose admission the ingress could not settle (it answered
/// 503, "nothing spent") is given back by the worker instead of run.
pub const UNSETTLED: &str = "unsettled";

impl TriggerRecord {
    /// A trigger just accepted: `queued`, nothing run yet.
    pub fn queued(
        trigger_id: String,
        pipeline: &str,
        target: &str,
        client_key: ClientKey,
        inputs: InputValues,
        now: EpochMillis,
        expires_at: u64,
    ) -> Self {
        Self {
            trigger_id,
            pipeline: pipeline.to_string(),
            target: target.to_string(),
            status: TriggerStatus::Queued,
            requested_at: now,
            updated_at: now,
            client_key,
            networks: Vec::new(),
            previous_keys: Vec::new(),
            global_window: None,
            inputs,
            run_id: None,
            key: None,
            execution_id: None,
            error_code: None,
            error_message: None,
            expires_at,
            stages: Vec::new(),
            refusal: None,
        }
    }

    pub fn is_expired(&self, now: EpochMillis) -> bool {
        self.expires_at.saturating_mul(1000) <= now
    }

    /// What `GET /triggers/{id}` shows at `now`: with a run, the run's
    /// status and execution (every trigger of a run follows it); with its
    /// CodePipeline's lane, where a queued run stands and when it should
    /// start, or when a started one should end.
    pub fn view(
        &self,
        run: Option<&RunRecord>,
        lane: Option<&Lane>,
        now: EpochMillis,
    ) -> TriggerView {
        let run = run.filter(|r| Some(&r.run_id) == self.run_id.as_ref());
        let status = run.map_or(self.status, |r| r.status.trigger_status());
        let lane = lane.filter(|_| run.is_some());
        let run_id = run.map(|r| r.run_id.as_str()).unwrap_or_default();
        let queue = match status {
            TriggerStatus::Queued => lane.and_then(|l| l.place(run_id)),
            _ => None,
        };
        let estimated_start_at = queue.and(lane).and_then(|l| l.estimated_start(run_id, now));
        let estimated_end_at = match (status, run, lane) {
            (TriggerStatus::Started, Some(run), Some(lane)) => lane.typical_ms().map(|typical| {
                run.started_at
                    .unwrap_or(run.updated_at)
                    .saturating_add(typical)
                    .max(now)
            }),
            _ => None,
        };
        // A run an operator flushed refuses every trigger it served: try
        // again at once (nothing was given back).
        let flushed = run
            .filter(|r| r.status == RunStatus::Flushed)
            .map(|r| Refusal {
                reason: FLUSHED.to_string(),
                retry_at: r.updated_at,
            });
        let refusal = flushed
            .as_ref()
            .or(self.refusal.as_ref())
            .filter(|_| status == TriggerStatus::Refused);
        TriggerView {
            trigger_id: self.trigger_id.clone(),
            pipeline: self.pipeline.clone(),
            status,
            requested_at: rfc3339(self.requested_at),
            updated_at: rfc3339(run.map_or(self.updated_at, |r| r.updated_at.max(self.updated_at))),
            inputs: values_to_json(&self.inputs),
            execution_id: run.map_or(self.execution_id.clone(), |r| r.execution_id.clone()),
            coalesced: self.run_id.as_ref().is_some_and(|r| *r != self.trigger_id),
            run: run.map(|r| RunView {
                id: r.run_id.clone(),
                triggers: r.triggers,
            }),
            queue,
            estimated_start_at: estimated_start_at.map(rfc3339),
            estimated_end_at: estimated_end_at.map(rfc3339),
            reason: refusal.map(|r| r.reason.clone()),
            retry_after_seconds: refusal.map(|r| ceil_seconds(r.retry_at.saturating_sub(now))),
            stages: stage_views(run.map_or(&self.stages, |r| &r.stages)),
            lane: self.lane(),
            key: self.key.clone(),
        }
    }

    /// The lane it came in: `key` with a trigger key, else `anonymous`.
    pub fn lane(&self) -> RunLane {
        if self.key.is_some() {
            RunLane::Key
        } else {
            RunLane::Anonymous
        }
    }
}

/// The run a trigger belongs to, as its status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunView {
    pub id: String,
    /// How many triggers it serves.
    pub triggers: u64,
}

/// The body of `GET /triggers/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerView {
    pub trigger_id: String,
    pub pipeline: String,
    pub status: TriggerStatus,
    pub requested_at: String,
    pub updated_at: String,
    pub inputs: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// It joined a run another trigger opened.
    pub coalesced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunView>,
    /// While queued: where its run stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueuePlace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_start_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_end_at: Option<String>,
    /// Why it was refused (`queue_full`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Its run's stages in the order they started (none reported yet: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageView>,
    /// `anonymous`, or `key` for a trigger that came with a trigger key.
    pub lane: RunLane,
    /// The trigger key's name (never the key), in the keyed lane.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::status::RunStatus;

    #[test]
    fn ledger_expiry_rounds_up_and_saturates() {
        let day = std::time::Duration::from_secs(86_400);
        assert_eq!(ledger_expires_at(1_000, day), 86_401);
        assert_eq!(ledger_expires_at(1_001, day), 86_402);
        assert_eq!(
            ledger_expires_at(1, std::time::Duration::MAX),
            u64::MAX.div_ceil(1000)
        );
    }

    #[test]
    fn trigger_ids_are_ulids() {
        let id = new_trigger_id();
        assert_eq!(canonical_trigger_id(&id), Some(id.clone()));
        assert_eq!(canonical_trigger_id(&id.to_lowercase()), Some(id));
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            &"Z".repeat(26),
            &"0".repeat(27),
        ] {
            assert_eq!(canonical_trigger_id(bad), None, "{bad}");
        }
    }

    fn record() -> TriggerRecord {
        let key = ClientKey::from_stored(&"ab".repeat(32)).unwrap();
        TriggerRecord::queued(
            "T1".into(),
            "app",
            "app-pipeline",
            key,
            InputValues::new(),
            1_000,
            99,
        )
    }

    fn run(status: RunStatus) -> RunRecord {
        RunRecord {
            run_id: "R".into(),
            pipeline: "app".into(),
            target: "app-pipeline".into(),
            status,
            triggers: 4,
            requested_at: 1_000,
            updated_at: 2_000,
            execution_id: None,
            started_at: Some(10_000),
            expires_at: 99,
            stages: Vec::new(),
            wake: None,
            lane: None,
        }
    }

    #[test]
    fn a_queued_trigger_says_where_it_stands_and_when_it_should_start() {
        let mut trigger = record();
        trigger.run_id = Some("R".into());
        let lane = Lane {
            run_id: Some("H".into()),
            taken_at: 5_000,
            waiting: vec!["X".into(), "R".into()],
            durations: vec![60_000],
            ..Lane::default()
        };
        let view = trigger.view(Some(&run(RunStatus::Pending)), Some(&lane), 6_000);
        assert_eq!(view.status, TriggerStatus::Queued);
        assert!(view.coalesced);
        assert_eq!(
            view.run.as_ref().map(|r| (r.id.as_str(), r.triggers)),
            Some(("R", 4))
        );
        assert_eq!(
            view.queue,
            Some(QueuePlace {
                position: 2,
                ahead: 2
            })
        );
        // The holder ends at 65 s, X runs a typical minute, then R.
        assert_eq!(
            view.estimated_start_at.as_deref(),
            Some(rfc3339(125_000).as_str())
        );
        assert_eq!(view.estimated_end_at, None);
        let body = serde_json::to_value(&view).unwrap();
        assert_eq!(
            body["queue"],
            serde_json::json!({"position": 2, "ahead": 2})
        );
        assert!(body.get("reason").is_none());
    }

    #[test]
    fn a_started_trigger_says_when_it_should_end() {
        let mut trigger = record();
        trigger.run_id = Some("R".into());
        let lane = Lane {
            run_id: Some("R".into()),
            durations: vec![60_000],
            ..Lane::default()
        };
        let started = run(RunStatus::Execution(TriggerStatus::Started));
        let view = trigger.view(Some(&started), Some(&lane), 20_000);
        assert_eq!(view.queue, None);
        assert_eq!(
            view.estimated_end_at.as_deref(),
            Some(rfc3339(70_000).as_str())
        );
        // No history yet: no estimate rather than a guess.
        let view = trigger.view(Some(&started), Some(&Lane::default()), 20_000);
        assert_eq!(view.estimated_end_at, None);
    }

    #[test]
    fn a_refused_trigger_says_why_and_when_to_try_again() {
        let mut trigger = record();
        trigger.status = TriggerStatus::Refused;
        trigger.refusal = Some(Refusal {
            reason: QUEUE_FULL.into(),
            retry_at: 95_500,
        });
        let view = trigger.view(None, None, 50_000);
        let body = serde_json::to_value(&view).unwrap();
        assert_eq!(body["status"], "refused");
        assert_eq!(body["reason"], "queue_full");
        assert_eq!(body["retry_after_seconds"], 46);
        assert!(body.get("queue").is_none() && body.get("run").is_none());
    }
}
