//! The table's keys, and every item ⇄ record conversion (pure: no I/O).
//! A handler never builds a key: the aggregates call these.
//!
//! Keys (docs/reference/table.md): `client#<client key>`,
//! `global#<window start ms>`, `trigger#<id>`, `execution#<execution id>`,
//! `run#<run id>`, `pending#<public>#<CodePipeline>#<input set>`,
//! `lane#<CodePipeline>`, `block#<key>`, `event#<EventBridge event id>`,
//! `meta#client-key`, `apikey#<SHA-256 of a key>`, `keyname#<name>`,
//! `keyquota#<name>`.

use super::StoreError;
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::inputs::{values_from_json, values_to_json, InputValues};
use crate::rules::runs::{Lane, RunLane, RunRecord, Wake};
use crate::rules::stages::StageRecord;
use crate::rules::status::{PipelineState, RunStatus, TriggerStatus};
use crate::rules::time_format::{day_of, parse_rfc3339, rfc3339};
use crate::rules::trigger::{NetworkKey, Refusal, TriggerRecord};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}
pub(crate) fn get_n(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}
pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}
/// The fingerprint of the ingress's `CLIENT_KEY_SECRET` (attribute
/// `fingerprint`), written by the deployment.
pub const SECRET_FINGERPRINT_PK: &str = "meta#client-key";
pub fn client_pk(key: &ClientKey) -> String {
    format!("client#{key}")
}
/// An operator's block of a client or network (its keyed hash).
/// A network's quota (its keyed prefix: a level of `NETWORK_QUOTA_LIMITS`).
pub fn network_pk(key: &ClientKey) -> String {
    format!("network#{key}")
}

/// A trigger key, by its SHA-256 (what a request presents is looked up here).
pub fn apikey_pk(hash: &str) -> String {
    format!("apikey#{hash}")
}
/// A trigger key, by its name: its current hash, for operators.
pub fn keyname_pk(name: &str) -> String {
    format!("keyname#{name}")
}
/// A trigger key's quota (by name: a rotated key keeps it) and its uses.
pub fn keyquota_pk(name: &str) -> String {
    format!("keyquota#{name}")
}
/// The `day` of the `keyname#` items: `keys list` queries the ledger's day
/// index with it, without a scan.
pub const KEYS_DAY: &str = "keys";

/// What every block item's key starts with.
pub const BLOCK_PREFIX: &str = "block#";

pub fn block_pk(key: &ClientKey) -> String {
    format!("{BLOCK_PREFIX}{key}")
}
pub fn trigger_pk(trigger_id: &str) -> String {
    format!("trigger#{trigger_id}")
}
pub fn global_pk(bucket_start: EpochMillis) -> String {
    format!("global#{bucket_start}")
}
pub fn execution_pk(execution_id: &str) -> String {
    format!("execution#{execution_id}")
}
pub fn run_pk(run_id: &str) -> String {
    format!("run#{run_id}")
}
/// The pending run of a public pipeline and input set (on its CodePipeline:
/// a changed mapping never merges triggers across CodePipelines).
pub fn pending_pk(public: &str, target: &str, set_key: &str) -> String {
    format!("pending#{public}#{target}#{set_key}")
}
pub fn lane_pk(target: &str) -> String {
    format!("lane#{target}")
}
pub fn event_pk(event_id: &str) -> String {
    format!("event#{event_id}")
}
pub(crate) fn slot_name(i: usize) -> String {
    format!("t{i}")
}
/// Index partitions per day of the `by_day` index.
pub const DAY_SHARDS: u8 = 8;

/// The `day` attribute of a trigger record: its day and a shard picked by
/// its id.
pub fn day_key(day: &str, trigger_id: &str) -> String {
    let shard = trigger_id.bytes().last().unwrap_or(0) % DAY_SHARDS;
    format!("{day}#{shard}")
}
pub fn record_to_item(record: &TriggerRecord) -> Item {
    let mut item = HashMap::from([
        ("pk".to_string(), s(trigger_pk(&record.trigger_id))),
        ("trigger_id".to_string(), s(&record.trigger_id)),
        ("pipeline".to_string(), s(&record.pipeline)),
        ("target".to_string(), s(&record.target)),
        ("status".to_string(), s(record.status.as_str())),
        ("requested_at".to_string(), s(rfc3339(record.requested_at))),
        // The day index's key: the ledger listed without a scan.
        (
            "day".to_string(),
            s(day_key(&day_of(record.requested_at), &record.trigger_id)),
        ),
        ("updated_at".to_string(), s(rfc3339(record.updated_at))),
        ("client_key".to_string(), s(record.client_key.as_str())),
        ("expires_at".to_string(), n(record.expires_at)),
    ]);
    if !record.networks.is_empty() {
        item.insert(
            "networks".to_string(),
            AttributeValue::L(record.networks.iter().map(|n| s(n.to_stored())).collect()),
        );
    }
    if !record.previous_keys.is_empty() {
        item.insert(
            "previous_keys".to_string(),
            AttributeValue::L(
                record
                    .previous_keys
                    .iter()
                    .map(|n| s(n.to_stored()))
                    .collect(),
            ),
        );
    }
    if let Some(window) = record.global_window {
        item.insert("global_window".to_string(), n(window));
    }
    if let Some(refusal) = &record.refusal {
        item.insert("refusal_reason".to_string(), s(&refusal.reason));
        item.insert("retry_at".to_string(), n(refusal.retry_at));
    }
    if !record.inputs.is_empty() {
        // One JSON object: the values keep their JSON types.
        item.insert(
            "inputs".to_string(),
            s(values_to_json(&record.inputs).to_string()),
        );
    }
    for (name, value) in [
        ("run_id", &record.run_id),
        ("execution_id", &record.execution_id),
        ("error_code", &record.error_code),
        ("error_message", &record.error_message),
        ("key_name", &record.key),
    ] {
        if let Some(value) = value {
            item.insert(name.to_string(), s(value));
        }
    }
    item
}
/// Reads the attributes of a stored item; a missing or malformed required
/// one is [`StoreError::Corrupt`], naming the item and the attribute.
pub(crate) struct Fields<'a> {
    item: &'a Item,
    pk: &'a str,
}

impl<'a> Fields<'a> {
    pub(crate) fn of(item: &'a Item) -> Self {
        Self {
            item,
            pk: get_s(item, "pk").unwrap_or("?"),
        }
    }

    pub(crate) fn corrupt(&self, field: &str) -> StoreError {
        StoreError::Corrupt(format!("{}: {field}", self.pk))
    }

    pub(crate) fn text(&self, field: &str) -> Result<String, StoreError> {
        get_s(self.item, field)
            .map(str::to_string)
            .ok_or_else(|| self.corrupt(field))
    }

    pub(crate) fn time(&self, field: &str) -> Result<EpochMillis, StoreError> {
        get_s(self.item, field)
            .and_then(parse_rfc3339)
            .ok_or_else(|| self.corrupt(field))
    }

    pub(crate) fn number(&self, field: &str) -> Result<u64, StoreError> {
        get_n(self.item, field).ok_or_else(|| self.corrupt(field))
    }

    pub(crate) fn optional(&self, field: &str) -> Option<String> {
        get_s(self.item, field).map(str::to_string)
    }
}

pub fn item_to_record(item: &Item) -> Result<TriggerRecord, StoreError> {
    let fields = Fields::of(item);
    let corrupt = |field: &str| fields.corrupt(field);
    let text = |field: &str| fields.text(field);
    let time = |field: &str| fields.time(field);
    Ok(TriggerRecord {
        trigger_id: text("trigger_id")?,
        pipeline: text("pipeline")?,
        target: text("target")?,
        status: get_s(item, "status")
            .and_then(TriggerStatus::parse)
            .ok_or_else(|| corrupt("status"))?,
        requested_at: time("requested_at")?,
        updated_at: time("updated_at")?,
        client_key: get_s(item, "client_key")
            .and_then(ClientKey::from_stored)
            .ok_or_else(|| corrupt("client_key"))?,
        networks: network_keys_of(item, "networks").ok_or_else(|| corrupt("networks"))?,
        previous_keys: network_keys_of(item, "previous_keys")
            .ok_or_else(|| corrupt("previous_keys"))?,
        global_window: get_n(item, "global_window"),
        inputs: match get_s(item, "inputs") {
            None => InputValues::new(),
            Some(text) => serde_json::from_str(text)
                .ok()
                .as_ref()
                .and_then(values_from_json)
                .ok_or_else(|| corrupt("inputs"))?,
        },
        run_id: fields.optional("run_id"),
        key: fields.optional("key_name"),
        execution_id: fields.optional("execution_id"),
        error_code: fields.optional("error_code"),
        error_message: fields.optional("error_message"),
        expires_at: fields.number("expires_at")?,
        stages: stages_of(item),
        refusal: match (get_s(item, "refusal_reason"), get_n(item, "retry_at")) {
            (Some(reason), Some(retry_at)) => Some(Refusal {
                reason: reason.to_string(),
                retry_at,
            }),
            _ => None,
        },
    })
}

pub fn run_to_item(run: &RunRecord) -> Item {
    let mut item = Item::from([
        ("pk".to_string(), s(run_pk(&run.run_id))),
        ("run_id".to_string(), s(&run.run_id)),
        ("pipeline".to_string(), s(&run.pipeline)),
        ("target".to_string(), s(&run.target)),
        ("status".to_string(), s(run.status.as_str())),
        ("triggers".to_string(), n(run.triggers)),
        ("requested_at".to_string(), s(rfc3339(run.requested_at))),
        ("updated_at".to_string(), s(rfc3339(run.updated_at))),
        ("expires_at".to_string(), n(run.expires_at)),
    ]);
    if let Some(execution_id) = &run.execution_id {
        item.insert("execution_id".to_string(), s(execution_id));
    }
    if let Some(started_at) = run.started_at {
        item.insert("started_at".to_string(), n(started_at));
    }
    if let Some(wake) = &run.wake {
        item.insert("queue_url".to_string(), s(&wake.queue_url));
        item.insert("message".to_string(), s(&wake.message));
        if !wake.attributes.is_empty() {
            item.insert(
                "message_attributes".to_string(),
                message_attributes_value(&wake.attributes),
            );
        }
    }
    if let Some(lane) = run.lane {
        item.insert("lane".to_string(), s(lane.as_str()));
    }
    item
}

pub fn item_to_run(item: &Item) -> Result<RunRecord, StoreError> {
    let fields = Fields::of(item);
    Ok(RunRecord {
        run_id: fields.text("run_id")?,
        pipeline: fields.text("pipeline")?,
        target: fields.text("target")?,
        status: get_s(item, "status")
            .and_then(RunStatus::parse)
            .ok_or_else(|| fields.corrupt("status"))?,
        triggers: fields.number("triggers")?,
        requested_at: fields.time("requested_at")?,
        updated_at: fields.time("updated_at")?,
        execution_id: fields.optional("execution_id"),
        started_at: get_n(item, "started_at"),
        expires_at: fields.number("expires_at")?,
        stages: stages_of(item),
        wake: match (get_s(item, "queue_url"), get_s(item, "message")) {
            (Some(queue_url), Some(message)) => Some(Wake {
                queue_url: queue_url.to_string(),
                message: message.to_string(),
                attributes: message_attributes_of(item),
            }),
            _ => None,
        },
        lane: get_s(item, "lane").and_then(RunLane::parse),
    })
}

/// The attribute of a lane counting its pending runs, every lane.
pub const PENDING: &str = "pending";
/// The attribute of a lane counting its pending anonymous runs.
pub const PENDING_ANONYMOUS: &str = "pending_anonymous";

/// The lane's attributes a pending run counts in (taken when it opens or
/// queues again, given back when it leaves the queue); a run opened before
/// runs had lanes counted under its public pipeline.
pub fn counters_of(run: &RunRecord) -> Vec<String> {
    match run.lane {
        Some(RunLane::Key) => vec![PENDING.to_string()],
        Some(RunLane::Anonymous) => vec![PENDING.to_string(), PENDING_ANONYMOUS.to_string()],
        None => vec![pending_count(&run.pipeline)],
    }
}

/// The list of a lane a pending run waits in.
pub fn waiting_list_of(run: &RunRecord) -> &'static str {
    match run.lane {
        Some(RunLane::Key) => "waiting_key",
        _ => "waiting",
    }
}

/// The attribute counting a public pipeline's pending runs on its lane
/// (runs opened before runs had lanes).
pub fn pending_count(public: &str) -> String {
    format!("pending:{public}")
}

pub(crate) fn item_to_lane(item: Option<&Item>) -> Lane {
    let Some(item) = item else {
        return Lane::default();
    };
    let list = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_l().ok())
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    Lane {
        run_id: get_s(item, "run_id").map(str::to_string),
        execution_id: get_s(item, "execution_id").map(str::to_string),
        checked_at: get_n(item, "checked_at").unwrap_or(0),
        taken_at: get_n(item, "taken_at").unwrap_or(0),
        waiting_key: list("waiting_key")
            .iter()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect(),
        waiting: list("waiting")
            .iter()
            .filter_map(|v| v.as_s().ok().cloned())
            .collect(),
        durations: list("durations")
            .iter()
            .filter_map(|v| v.as_n().ok()?.parse().ok())
            .collect(),
        poll_token: get_s(item, "poll_token").map(str::to_string),
        poll_until: get_n(item, "poll_until").unwrap_or(0),
    }
}
/// The prefix of a stage's attribute: `stage:<name>`.
pub(crate) const STAGE_PREFIX: &str = "stage:";

pub(crate) fn stage_of(name: &str, value: &AttributeValue) -> Option<StageRecord> {
    let map = value.as_m().ok()?;
    Some(StageRecord {
        name: name.to_string(),
        state: PipelineState::parse(get_s(map, "state")?)?,
        at: get_n(map, "at")?,
        since: get_n(map, "since")?,
        seen: get_n(map, "seen")?,
    })
}
/// A list of `level=key` an item holds under `name` (none: empty); `None`
/// when one is unreadable.
fn network_keys_of(item: &Item, name: &str) -> Option<Vec<NetworkKey>> {
    match item.get(name) {
        None => Some(Vec::new()),
        Some(value) => value.as_l().ok().and_then(|list| {
            list.iter()
                .map(|v| v.as_s().ok().and_then(|t| NetworkKey::from_stored(t)))
                .collect()
        }),
    }
}
/// A waiting run's message's String attributes, as the item keeps them.
pub(crate) fn message_attributes_value(attributes: &[(String, String)]) -> AttributeValue {
    AttributeValue::M(
        attributes
            .iter()
            .map(|(name, value)| (name.clone(), s(value)))
            .collect(),
    )
}
/// The String attributes a waiting run's message carries (sorted by name;
/// unreadable ones are left out).
fn message_attributes_of(item: &Item) -> Vec<(String, String)> {
    let Some(AttributeValue::M(map)) = item.get("message_attributes") else {
        return Vec::new();
    };
    let mut attributes: Vec<(String, String)> = map
        .iter()
        .filter_map(|(name, value)| Some((name.clone(), value.as_s().ok()?.clone())))
        .collect();
    attributes.sort();
    attributes
}
/// The stages an item holds (unreadable ones are left out).
pub fn stages_of(item: &Item) -> Vec<StageRecord> {
    item.iter()
        .filter_map(|(key, value)| stage_of(key.strip_prefix(STAGE_PREFIX)?, value))
        .collect()
}
pub(crate) fn stage_value(stage: &StageRecord) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("state".to_string(), s(stage.state.as_str())),
        ("at".to_string(), n(stage.at)),
        ("since".to_string(), n(stage.since)),
        ("seen".to_string(), n(stage.seen)),
    ]))
}
