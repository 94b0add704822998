//! The DynamoDB adapter: quota, global budget and trigger ledger in one table
//! (partition key `pk`, TTL `expires_at`).
//!
//! Items:
//! - `client#<client key>`: `w` (the token of the last write), `t0..t{limit-1}`
//!   (acceptance times, epoch ms, newest first, 0 = free), `expires_at`.
//! - `global#<window start ms>`: `n` acceptances in that fixed window.
//! - `trigger#<trigger id>`: the trigger record (`outcome_at`: epoch ms of the
//!   state change the notifier recorded last).
//! - `execution#<execution id>`: `trigger_id` of the trigger that started it
//!   (and `run_id`, see [`crate::aws::runs`]).
//! - `run#…`, `pending#…`, `lane#…`: runs, see [`crate::aws::runs`].
//! - `block#<key>`: an operator's block of a client or network key,
//!   `blocked_until` (epoch ms), `reason`, `blocked_at`; checked inside the
//!   admission transaction (see [`crate::aws::blocks`]).
//! - `event#<EventBridge event id>`: the notifier's claim on an event
//!   (see [`crate::aws::event_claim`]).
//!
//! Admission is one `TransactWriteItems`: the client's quota update, the new
//! trigger record and (when on) the global counter, each conditional. The
//! first attempt assumes a client with its whole budget free; when that
//! condition fails DynamoDB hands back the item, the decision is made on it,
//! and an acceptance is retried pinned to exactly that state (`w`). So a new
//! client costs one call, a rejection one call, a race never over-admits.

use crate::aws::describe;
use crate::aws::ledger::day_key;
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::inputs::{values_from_json, values_to_json, InputValues};
use crate::rules::quota::{Decision, GlobalPolicy, QuotaPolicy, QuotaStatus};
use crate::rules::status::TriggerStatus;
use crate::rules::time_format::{day_of, parse_rfc3339, rfc3339};
use crate::rules::trigger::TriggerRecord;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::time::Duration;

pub(crate) type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The table could not be reached or refused the call (after SDK retries).
    #[error("the table is unavailable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the same item; the caller may retry later.
    #[error("too much contention on {0}")]
    Contention(String),
    /// An item in the table does not have the shape this code writes.
    #[error("malformed item {0}")]
    Corrupt(String),
}

/// How admission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Quota taken and record written; `previous` is the client's state before,
    /// kept to give the quota back if the enqueue fails.
    Accepted {
        status: QuotaStatus,
        previous: Vec<EpochMillis>,
    },
    ClientExhausted(QuotaStatus),
    GlobalExhausted {
        client: QuotaStatus,
        retry_after_ms: u64,
    },
    /// An operator blocked the client or its network until then: nothing taken.
    Blocked {
        until: EpochMillis,
    },
}

/// How giving quota back ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    Refunded,
    /// The trigger is no longer `queued` (a worker already took it): nothing
    /// was given back, because the message did arrive.
    AlreadyPickedUp,
}

#[derive(Debug, Clone)]
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
}

/// Rounds of optimistic retries before giving up with [`StoreError::Contention`].
const MAX_ROUNDS: usize = 24;

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// `Ok(true)` when a conditional write applied, `Ok(false)` when its
/// condition did not hold, an error when the table could not say.
pub(crate) fn applied<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(service))
            if service.err().code() == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(e) => Err(StoreError::Unavailable(describe(&e))),
    }
}

pub fn client_pk(key: &ClientKey) -> String {
    format!("client#{key}")
}

/// An operator's block of a client or network (its keyed hash).
pub fn block_pk(key: &ClientKey) -> String {
    format!("block#{key}")
}

/// The condition under which an execution's state change at `:t` (epoch
/// ms) with `:rank` (1: the execution ended, 0: it runs) is newer than the
/// one recorded (`outcome_at`, `outcome_rank`). Event times have whole
/// seconds, so an execution can start and end within one: at the same
/// time, an end is newer than a start. Items written before ranks were
/// recorded have none: any change at the same time is newer than them.
pub(crate) const NEWER_OUTCOME: &str = "attribute_not_exists(outcome_at) OR outcome_at < :t OR (outcome_at = :t AND (attribute_not_exists(outcome_rank) OR outcome_rank < :rank))";

pub fn trigger_pk(trigger_id: &str) -> String {
    format!("trigger#{trigger_id}")
}

fn global_pk(bucket_start: EpochMillis) -> String {
    format!("global#{bucket_start}")
}

fn slot_name(i: usize) -> String {
    format!("t{i}")
}

pub(crate) fn get_n(item: &Item, name: &str) -> Option<u64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

pub(crate) fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

/// The client's stored slots and write token, as a cancellation reason returned them.
#[derive(Debug, Clone, Default)]
struct ClientState {
    /// `None`: no item.
    token: Option<String>,
    slots: Vec<EpochMillis>,
}

impl ClientState {
    fn from_item(item: Option<&Item>, limit: usize) -> Self {
        match item {
            None => Self::default(),
            Some(item) => Self {
                token: get_s(item, "w").map(str::to_string),
                slots: (0..limit)
                    .map(|i| get_n(item, &slot_name(i)).unwrap_or(0))
                    .collect(),
            },
        }
    }
}

/// What the client update of a transaction expects to find.
enum Expect {
    /// No item, or one whose slots have all left the window.
    WholeBudgetFree,
    /// Exactly the state seen: this token, or no item at all.
    Token(Option<String>),
}

/// Is `stored` (an existing trigger item) the item `record` writes?
fn is_this_record(stored: Option<&Item>, record: &TriggerRecord) -> bool {
    stored.is_some_and(|item| {
        get_s(item, "client_key") == Some(record.client_key.as_str())
            && get_s(item, "requested_at") == Some(rfc3339(record.requested_at).as_str())
    })
}

/// Did this item of a cancelled transaction fail its condition (or conflict)?
pub(crate) fn failed(reason: Option<&CancellationReason>) -> bool {
    reason
        .and_then(CancellationReason::code)
        .is_some_and(|c| c != "None")
}

/// Did this item's own condition fail (not a conflict or a throttle)?
pub(crate) fn condition_failed(reason: Option<&CancellationReason>) -> bool {
    reason.and_then(CancellationReason::code) == Some("ConditionalCheckFailed")
}

/// Was a transaction cancelled by a concurrent one (or throttled): worth a retry.
pub(crate) fn conflicted(reasons: &[CancellationReason]) -> bool {
    reasons.iter().any(|r| {
        matches!(
            r.code(),
            Some("TransactionConflict")
                | Some("ThrottlingError")
                | Some("ProvisionedThroughputExceeded")
        )
    })
}

impl Table {
    pub fn new(client: aws_sdk_dynamodb::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    fn client_update(
        &self,
        key: &ClientKey,
        policy: &QuotaPolicy,
        expect: &Expect,
        token: &str,
        slots: &[EpochMillis],
        now: EpochMillis,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut sets = vec!["w = :w".to_string(), "expires_at = :exp".to_string()];
        let mut update = Update::builder()
            .table_name(&self.name)
            .key("pk", s(client_pk(key)))
            .expression_attribute_values(":w", s(token))
            .expression_attribute_values(":exp", n(policy.expires_at_seconds(slots, now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, slot) in policy.normalize(slots).iter().enumerate() {
            sets.push(format!("{} = :t{i}", slot_name(i)));
            update = update.expression_attribute_values(format!(":t{i}"), n(slot));
        }
        update = match expect {
            Expect::WholeBudgetFree => update
                .condition_expression("attribute_not_exists(pk) OR t0 <= :cutoff")
                .expression_attribute_values(":cutoff", n(now.saturating_sub(policy.window_ms()))),
            Expect::Token(Some(seen)) => update
                .condition_expression("w = :seen")
                .expression_attribute_values(":seen", s(seen)),
            Expect::Token(None) => update.condition_expression("attribute_not_exists(pk)"),
        };
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn global_update(
        &self,
        policy: &GlobalPolicy,
        now: EpochMillis,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let (start, end) = policy.bucket(now);
        let mut update = Update::builder()
            .table_name(&self.name)
            .key("pk", s(global_pk(start)))
            .update_expression("ADD n :delta SET expires_at = if_not_exists(expires_at, :exp)")
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":exp", n(end.div_ceil(1000) + 3600));
        if delta > 0 {
            update = update
                .condition_expression("attribute_not_exists(n) OR n < :limit")
                .expression_attribute_values(":limit", n(policy.limit));
        }
        let update = update
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The admission's check that no operator's block on `key` is in force.
    fn not_blocked(
        &self,
        key: &ClientKey,
        now: EpochMillis,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(&self.name)
            .key("pk", s(block_pk(key)))
            .condition_expression("attribute_not_exists(pk) OR blocked_until <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn record_put(&self, record: &TriggerRecord) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.name)
            .set_item(Some(record_to_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            // An existing record comes back, to tell our own lost commit
            // from someone else's trigger.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// One `TransactWriteItems`: `None` when it committed, the cancellation
    /// reasons (one per item) when a condition failed.
    ///
    /// An SDK retry after a timed-out attempt carries the same request token;
    /// when DynamoDB answers that the first attempt is still in progress, the
    /// call is made again after a pause, as a new request: its conditions
    /// then see what the first attempt did (the callers recognise their own
    /// commit), so the outcome is never a 503 for work that happened.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<CancellationReason>>, StoreError> {
        let mut in_progress = 0;
        loop {
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(None),
                Err(err) => match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(e)) => {
                        return Ok(Some(e.cancellation_reasons().to_vec()))
                    }
                    Some(TransactWriteItemsError::TransactionInProgressException(_))
                        if in_progress < 5 =>
                    {
                        in_progress += 1;
                        tokio::time::sleep(Duration::from_millis(200 * in_progress)).await;
                    }
                    _ => return Err(StoreError::Unavailable(describe(&err))),
                },
            }
        }
    }

    /// Takes one unit of the client's quota (and of the global budget) and
    /// writes the trigger record, atomically, or says why not.
    pub async fn admit(
        &self,
        policy: &QuotaPolicy,
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        blocks: &[ClientKey],
    ) -> Result<Admission, StoreError> {
        let now = record.requested_at;
        let key = &record.client_key;
        let mut expect = Expect::WholeBudgetFree;
        let mut previous: Vec<EpochMillis> = vec![0; policy.limit];
        let mut next = policy.first_acceptance(now);
        let block_checks = blocks
            .iter()
            .map(|block| self.not_blocked(block, now))
            .collect::<Result<Vec<_>, _>>()?;
        let first_check = 2 + usize::from(global.is_some());
        for round in 0..MAX_ROUNDS {
            let mut items = vec![
                self.client_update(key, policy, &expect, &record.trigger_id, &next, now)?,
                self.record_put(record)?,
            ];
            if let Some(global) = global {
                items.push(self.global_update(global, now, 1)?);
            }
            items.extend(block_checks.iter().cloned());
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Admission::Accepted {
                    status: policy.status(&next, now),
                    previous,
                });
            };
            let blocked_until = reasons
                .iter()
                .skip(first_check)
                .filter(|r| failed(Some(r)))
                .filter_map(|r| r.item().and_then(|item| get_n(item, "blocked_until")))
                .max();
            if let Some(until) = blocked_until {
                return Ok(Admission::Blocked { until });
            }
            let client_failed = failed(reasons.first());
            let global_failed = global.is_some() && failed(reasons.get(2));
            if failed(reasons.get(1)) {
                // The record exists. If it is this very record (same client,
                // same request time), an earlier attempt of this transaction
                // committed and its answer was lost (the SDK retried), whatever
                // was accepted since: the admission stands, exactly once.
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                if client_failed && is_this_record(reasons[1].item(), record) {
                    return Ok(Admission::Accepted {
                        status: policy.status(&state.slots, now),
                        previous: policy
                            .refund(&state.slots, now)
                            .unwrap_or_else(|| policy.normalize(&state.slots)),
                    });
                }
                return Err(StoreError::Corrupt(format!(
                    "trigger id {} already exists",
                    record.trigger_id
                )));
            }
            if !client_failed && !global_failed {
                if conflicted(&reasons) {
                    tokio::time::sleep(Duration::from_millis(5 * (round as u64 + 1))).await;
                    continue;
                }
                return Err(StoreError::Unavailable(format!(
                    "transaction cancelled: {reasons:?}"
                )));
            }
            // Decide on what is really stored.
            let decision = if client_failed {
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                let decision = policy.decide(&state.slots, now);
                if let Decision::Accept { slots, .. } = &decision {
                    previous = policy.normalize(&state.slots);
                    next = slots.clone();
                    expect = Expect::Token(state.token);
                }
                decision
            } else {
                policy.decide(&previous, now)
            };
            match decision {
                Decision::Reject(status) => return Ok(Admission::ClientExhausted(status)),
                Decision::Accept { .. } if global_failed => {
                    let (_, end) = global.map(|g| g.bucket(now)).unwrap_or((now, now));
                    return Ok(Admission::GlobalExhausted {
                        client: policy.status(&previous, now),
                        retry_after_ms: end - now,
                    });
                }
                Decision::Accept { .. } => continue,
            }
        }
        Err(StoreError::Contention(client_pk(key)))
    }

    /// Gives back what [`Table::admit`] took for `record` and deletes the
    /// record, unless a worker already picked the trigger up.
    pub async fn refund(
        &self,
        policy: &QuotaPolicy,
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        previous: &[EpochMillis],
    ) -> Result<Refund, StoreError> {
        let now = record.requested_at;
        let token = format!("refund:{}", record.trigger_id);
        // First guess: nobody wrote since our acceptance.
        let mut client_plan = Some((
            Expect::Token(Some(record.trigger_id.clone())),
            previous.to_vec(),
        ));
        for round in 0..MAX_ROUNDS {
            let mut items = Vec::new();
            if let Some((expect, slots)) = &client_plan {
                items.push(self.client_update(
                    &record.client_key,
                    policy,
                    expect,
                    &token,
                    slots,
                    now,
                )?);
            }
            let delete = Delete::builder()
                .table_name(&self.name)
                .key("pk", s(trigger_pk(&record.trigger_id)))
                .condition_expression("#status = :queued")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", s(TriggerStatus::Queued.as_str()))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
            if let Some(global) = global {
                items.push(self.global_update(global, now, -1)?);
            }
            let Some(reasons) = self.transact(items).await? else {
                return Ok(Refund::Refunded);
            };
            let offset = usize::from(client_plan.is_some());
            if failed(reasons.get(offset)) {
                return Ok(Refund::AlreadyPickedUp);
            }
            if client_plan.is_some() && failed(reasons.first()) {
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                client_plan = match (
                    &state.token,
                    policy.refund(&state.slots, record.requested_at),
                ) {
                    (Some(_), Some(slots)) => Some((Expect::Token(state.token.clone()), slots)),
                    // The item is gone or no longer holds this acceptance.
                    _ => None,
                };
                continue;
            }
            if conflicted(&reasons) {
                tokio::time::sleep(Duration::from_millis(5 * (round as u64 + 1))).await;
                continue;
            }
            return Err(StoreError::Unavailable(format!(
                "refund cancelled: {reasons:?}"
            )));
        }
        Err(StoreError::Contention(client_pk(&record.client_key)))
    }

    /// The trigger record, if it exists and has not expired.
    pub async fn get_trigger(
        &self,
        trigger_id: &str,
        now: EpochMillis,
    ) -> Result<Option<TriggerRecord>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(trigger_pk(trigger_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        let record = item_to_record(item)?;
        Ok((!record.is_expired(now)).then_some(record))
    }
}

/// How recording a started execution ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartRecord {
    Recorded,
    /// No trigger record (refunded by the ingress, or expired).
    MissingRecord,
    /// The record already names another execution.
    OtherExecution(String),
}

pub fn execution_pk(execution_id: &str) -> String {
    format!("execution#{execution_id}")
}

impl Table {
    /// Marks the trigger `started` with its execution id, and indexes the
    /// execution id back to the trigger (for the notifier), in one transaction.
    pub async fn record_started(
        &self,
        trigger_id: &str,
        execution_id: &str,
        now: EpochMillis,
        expires_at: u64,
    ) -> Result<StartRecord, StoreError> {
        let update = Update::builder()
            .table_name(&self.name)
            .key("pk", s(trigger_pk(trigger_id)))
            .update_expression("SET #status = :started, execution_id = :e, updated_at = :now")
            // Never regress an outcome the notifier already recorded.
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(execution_id) OR (execution_id = :e AND attribute_not_exists(outcome_at)))")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":started", s(TriggerStatus::Started.as_str()))
            .expression_attribute_values(":e", s(execution_id))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let index = Put::builder()
            .table_name(&self.name)
            .item("pk", s(execution_pk(execution_id)))
            .item("trigger_id", s(trigger_id))
            .item("expires_at", n(expires_at))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(index).build(),
        ];
        let Some(reasons) = self.transact(items).await? else {
            return Ok(StartRecord::Recorded);
        };
        if !failed(reasons.first()) {
            return Err(StoreError::Unavailable(format!(
                "transaction cancelled: {reasons:?}"
            )));
        }
        Ok(match reasons[0].item() {
            None => StartRecord::MissingRecord,
            // The notifier got there first: this start is already recorded, and more.
            Some(item) if get_s(item, "execution_id") == Some(execution_id) => {
                StartRecord::Recorded
            }
            Some(item) => {
                StartRecord::OtherExecution(get_s(item, "execution_id").unwrap_or("?").to_string())
            }
        })
    }

    /// Marks a trigger `dead_lettered` with the reason, unless it has started.
    /// Returns whether a record was updated.
    pub async fn record_dead_lettered(
        &self,
        trigger_id: &str,
        error_code: &str,
        error_message: &str,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(trigger_pk(trigger_id)))
            .update_expression("SET #status = :dead, error_code = :code, error_message = :message, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(execution_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":dead", s(TriggerStatus::DeadLettered.as_str()))
            .expression_attribute_values(":code", s(error_code))
            .expression_attribute_values(":message", s(error_message))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .send()
            .await;
        applied(result)
    }
}

impl Table {
    /// Puts a `dead_lettered` trigger back to `queued` (an operator replayed
    /// its message), dropping the reason. Returns whether a record changed.
    pub async fn record_requeued(
        &self,
        trigger_id: &str,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(trigger_pk(trigger_id)))
            .update_expression(
                "SET #status = :queued, updated_at = :now REMOVE error_code, error_message",
            )
            .condition_expression("#status = :dead AND attribute_not_exists(execution_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":queued", s(TriggerStatus::Queued.as_str()))
            .expression_attribute_values(":dead", s(TriggerStatus::DeadLettered.as_str()))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .send()
            .await;
        applied(result)
    }
}

/// Who started an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionOwner {
    /// The trigger that started it (with coalescing: the run's opener).
    pub trigger_id: String,
    /// The run it belongs to; `None` without coalescing (the trigger's own
    /// record holds the execution), and for executions recorded before runs.
    pub run_id: Option<String>,
}

/// How recording an execution's outcome ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeRecord {
    /// The record now shows the outcome.
    Recorded(TriggerRecord),
    /// A later (or the same) state change was recorded already; unchanged.
    Stale(TriggerRecord),
    /// No record, or it names another execution: nothing to update.
    NotFound,
}

impl Table {
    /// Who started an execution (the worker's `execution#<id>` index), or
    /// `None` for a run nobody triggered here.
    pub async fn execution_owner(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionOwner>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", s(execution_pk(execution_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output.item().and_then(|item| {
            Some(ExecutionOwner {
                trigger_id: get_s(item, "trigger_id")?.to_string(),
                run_id: get_s(item, "run_id").map(str::to_string),
            })
        }))
    }

    /// Moves a started trigger to `status` for the state change at
    /// `changed_at`, unless a later change was recorded (events can arrive
    /// out of order or twice).
    pub async fn record_outcome(
        &self,
        trigger_id: &str,
        execution_id: &str,
        status: TriggerStatus,
        changed_at: EpochMillis,
        now: EpochMillis,
    ) -> Result<OutcomeRecord, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", s(trigger_pk(trigger_id)))
            .update_expression(
                "SET #status = :status, outcome_at = :t, outcome_rank = :rank, updated_at = :now",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND execution_id = :e AND ({NEWER_OUTCOME})"
            ))
            .expression_attribute_values(":rank", n(u64::from(status.is_ended())))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":t", n(changed_at))
            .expression_attribute_values(":e", s(execution_id))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => match output.attributes() {
                Some(item) => Ok(OutcomeRecord::Recorded(item_to_record(item)?)),
                None => Err(StoreError::Corrupt(trigger_pk(trigger_id))),
            },
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        Some(item) if get_s(item, "execution_id") == Some(execution_id) => {
                            Ok(OutcomeRecord::Stale(item_to_record(item)?))
                        }
                        _ => Ok(OutcomeRecord::NotFound),
                    }
                }
                _ => Err(StoreError::Unavailable(describe(&e))),
            },
        }
    }
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
        inputs: match get_s(item, "inputs") {
            None => InputValues::new(),
            Some(text) => serde_json::from_str(text)
                .ok()
                .as_ref()
                .and_then(values_from_json)
                .ok_or_else(|| corrupt("inputs"))?,
        },
        run_id: fields.optional("run_id"),
        execution_id: fields.optional("execution_id"),
        error_code: fields.optional("error_code"),
        error_message: fields.optional("error_message"),
        expires_at: fields.number("expires_at")?,
        stages: crate::aws::stages::stages_of(item),
    })
}
