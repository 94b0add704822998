//! A trigger and its record in the ledger: what `GET /triggers/{id}` shows.

use super::inputs::{values_to_json, InputValues};
use super::runs::RunRecord;
use super::stages::{stage_views, StageRecord, StageView};
use super::status::TriggerStatus;
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::time_format::rfc3339;
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

/// The canonical form of a trigger id from a URL, or `None` if it cannot be one.
pub fn canonical_trigger_id(text: &str) -> Option<String> {
    if text.len() != ulid::ULID_LEN {
        return None;
    }
    let canonical = ulid::Ulid::from_string(text).ok()?.to_string();
    // Overflowing ids (first character above 7) parse lossily: refuse them.
    canonical.eq_ignore_ascii_case(text).then_some(canonical)
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
    /// The start of the global budget's window it counted in (when on).
    pub global_window: Option<EpochMillis>,
    /// The pipeline's input values, defaults filled in (empty: none declared).
    pub inputs: InputValues,
    /// The run it joined or opened (with coalescing on).
    pub run_id: Option<String>,
    /// Its execution, without coalescing (a run holds its own).
    pub execution_id: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// TTL, epoch seconds: garbage collection only; reads compare it themselves.
    pub expires_at: u64,
    /// Its execution's stages, without coalescing (a run holds its own).
    pub stages: Vec<StageRecord>,
}

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
            global_window: None,
            inputs,
            run_id: None,
            execution_id: None,
            error_code: None,
            error_message: None,
            expires_at,
            stages: Vec::new(),
        }
    }

    pub fn is_expired(&self, now: EpochMillis) -> bool {
        self.expires_at.saturating_mul(1000) <= now
    }

    /// What `GET /triggers/{id}` shows: with a run, the run's status and
    /// execution (every trigger of a run follows it).
    pub fn view(&self, run: Option<&RunRecord>) -> TriggerView {
        let run = run.filter(|r| Some(&r.run_id) == self.run_id.as_ref());
        TriggerView {
            trigger_id: self.trigger_id.clone(),
            pipeline: self.pipeline.clone(),
            status: run.map_or(self.status, |r| r.status.trigger_status()),
            requested_at: rfc3339(self.requested_at),
            updated_at: rfc3339(run.map_or(self.updated_at, |r| r.updated_at.max(self.updated_at))),
            inputs: values_to_json(&self.inputs),
            execution_id: run.map_or(self.execution_id.clone(), |r| r.execution_id.clone()),
            coalesced: self.run_id.as_ref().is_some_and(|r| *r != self.trigger_id),
            stages: stage_views(run.map_or(&self.stages, |r| &r.stages)),
        }
    }
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
    /// Its run's stages in the order they started (none reported yet: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageView>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
