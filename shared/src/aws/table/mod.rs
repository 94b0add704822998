//! DynamoDB: the one table (partition key `pk`, TTL `expires_at`), in one
//! file per aggregate. docs/reference/table.md lists every item.
//!
//! - [`items`]: the keys and every item ⇄ record conversion (pure);
//! - [`admission`]: quota (client, global) taken and given back, with the
//!   trigger record, in one transaction;
//! - [`triggers`]: a trigger's record through its life, and the
//!   `execution#` index that says who started an execution;
//! - [`runs`]: triggers coalesced into runs, pending runs and lanes;
//! - [`stages`]: a run's stages, one attribute each;
//! - [`ledger`]: the ledger listed by day and by run (indexes, no scans);
//! - [`claims`]: the notifier's once-per-event claim;
//! - [`blocks`]: operators' blocks of clients and networks;
//! - [`keys`]: trigger keys, by hash and by name, and their uses.
//!
//! Each aggregate is reached through [`Table`] (`table.runs().take_lane(…)`),
//! so a call says where it lives. This file holds what they share: the
//! error, one conversion from SDK errors, the transaction call and the one
//! loop of optimistic rounds.

pub mod admission;
pub mod blocks;
pub mod claims;
pub mod items;
pub mod keys;
pub mod ledger;
pub mod network_groups;
pub mod runs;
pub mod secret;
pub mod stages;
pub mod triggers;

use crate::aws::describe;
use crate::rules::status::OutcomeStatus;
use crate::rules::time_format::rfc3339;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The table could not be reached, or the call's outcome is unknown
    /// (a timeout, a throttle or a 5xx after SDK retries: an earlier
    /// attempt may have been carried out).
    #[error("the table is unavailable: {0}")]
    Unavailable(String),
    /// The table refused the call before doing anything: it does not
    /// exist, the role may not call it, the request was invalid, or it
    /// could not even be sent (no credentials). Nothing was written.
    #[error("the table refused the call: {0}")]
    Refused(String),
    /// Concurrent writers kept changing the same item; the caller may retry later.
    #[error("too much contention on {0}")]
    Contention(String),
    /// An item in the table does not have the shape this code writes.
    #[error("malformed item {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The table could not even be connected to (as opposed to a call
    /// that may have been carried out without its answer arriving).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unavailable(detail) if detail == crate::aws::CONNECTION_FAILED)
    }
}

/// The one conversion from an SDK error: refused (nothing was done) or
/// unavailable, and why.
impl<E, R> From<SdkError<E, R>> for StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Self {
        if crate::aws::is_definite_refusal(&err) {
            Self::Refused(describe(&err))
        } else {
            Self::Unavailable(describe(&err))
        }
    }
}

/// A request this code built wrongly never reaches the table.
impl From<BuildError> for StoreError {
    fn from(err: BuildError) -> Self {
        Self::Refused(err.to_string())
    }
}

#[derive(Debug, Clone)]
pub struct Table {
    client: aws_sdk_dynamodb::Client,
    name: String,
}

/// The one loop of optimistic rounds: each round decides on what it last
/// saw and writes conditionally; a write that found the state moved decides
/// again at once, one that met a concurrent transaction (or a throttle)
/// calls [`Rounds::conflicted`] and pauses first, a little longer each time.
/// After [`ROUNDS`], [`StoreError::Contention`] on what was fought over.
///
/// ```text
/// let mut rounds = Rounds::new(&key);
/// loop {
///     rounds.next().await?;
///     // decide, write; `continue` to decide again, or
///     // `rounds.conflicted(); continue;` to pause first
/// }
/// ```
pub(crate) struct Rounds<'a> {
    what: &'a str,
    done: u64,
    pause: bool,
}

impl<'a> Rounds<'a> {
    pub(crate) fn new(what: &'a str) -> Self {
        Self {
            what,
            done: 0,
            pause: false,
        }
    }

    /// Before each round: pauses if the last one conflicted; gives up after
    /// [`ROUNDS`].
    pub(crate) async fn next(&mut self) -> Result<(), StoreError> {
        if self.done == ROUNDS {
            return Err(StoreError::Contention(self.what.to_string()));
        }
        if std::mem::take(&mut self.pause) {
            tokio::time::sleep(PAUSE * self.done as u32).await;
        }
        self.done += 1;
        Ok(())
    }

    /// The round met a concurrent writer: the next one waits first.
    pub(crate) fn conflicted(&mut self) {
        self.pause = true;
    }
}

/// Rounds before [`StoreError::Contention`].
const ROUNDS: u64 = 32;
/// The pause after the first conflict; the n-th waits n times this.
const PAUSE: Duration = Duration::from_millis(4);

/// The condition under which an execution's state change at `:t` (epoch
/// ms) with `:rank` (1: the execution ended, 0: it runs) is newer than the
/// one recorded (`outcome_at`, `outcome_rank`). Event times have whole
/// seconds, so an execution can start and end within one: at the same
/// time, an end is newer than a start. Items written before ranks were
/// recorded have none: any change at the same time is newer than them.
pub(crate) const NEWER_OUTCOME: &str = "attribute_not_exists(outcome_at) OR outcome_at < :t OR (outcome_at = :t AND (attribute_not_exists(outcome_rank) OR outcome_rank < :rank))";

/// What [`Table::record_outcome_on`] found.
pub(crate) enum OutcomeWrite {
    /// Recorded: the item as it now is.
    Recorded(HashMap<String, AttributeValue>),
    /// A later change was recorded already: the item as it is.
    Stale(HashMap<String, AttributeValue>),
    /// No such item, or it names another execution.
    NotFound,
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

    /// An update of the item `pk`: the SDK's builder, table and key set.
    /// Sent, its conditional failure is read by [`changed`] (`Ok(false)`).
    pub(crate) fn update(&self, pk: impl Into<String>) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
    }

    /// A query of the index `index`: the SDK's builder, table and index set.
    /// [`query_all`] reads every page of it.
    pub(crate) fn query(&self, index: &str) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name).index_name(index)
    }

    /// The same, as an item of a transaction (built by the caller).
    pub(crate) fn update_in_transaction(&self, pk: impl Into<String>) -> UpdateBuilder {
        Update::builder()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
    }

    /// Moves the item `pk` (a run, a trigger) of `execution_id` to
    /// `status` for the state change at `changed_at`, unless a later change
    /// was recorded (events can arrive out of order or twice;
    /// [`NEWER_OUTCOME`]).
    pub(crate) async fn record_outcome_on(
        &self,
        pk: String,
        execution_id: &str,
        status: impl OutcomeStatus,
        changed_at: u64,
        now: u64,
    ) -> Result<OutcomeWrite, StoreError> {
        let result = self
            .update(pk.clone())
            .update_expression(
                "SET #status = :status, outcome_at = :t, outcome_rank = :rank, updated_at = :now",
            )
            .condition_expression(format!(
                "attribute_exists(pk) AND execution_id = :e AND ({NEWER_OUTCOME})"
            ))
            .expression_attribute_values(":rank", items::n(u64::from(status.is_ended())))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", items::s(status.as_str()))
            .expression_attribute_values(":t", items::n(changed_at))
            .expression_attribute_values(":e", items::s(execution_id))
            .expression_attribute_values(":now", items::s(rfc3339(now)))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .map(OutcomeWrite::Recorded)
                .ok_or(StoreError::Corrupt(pk)),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(match failed.item() {
                        Some(item) if items::get_s(item, "execution_id") == Some(execution_id) => {
                            OutcomeWrite::Stale(item.clone())
                        }
                        _ => OutcomeWrite::NotFound,
                    })
                }
                _ => Err(e.into()),
            },
        }
    }

    /// Moves the item `pk` from `dead` (dead-lettered, never started) back
    /// to `back_to`, its error removed: an operator replayed its message.
    /// Whether it did.
    pub(crate) async fn revive(
        &self,
        pk: String,
        dead: &str,
        back_to: &str,
        now: u64,
    ) -> Result<bool, StoreError> {
        changed(
            self.update(pk)
                .update_expression(
                    "SET #status = :back, updated_at = :now REMOVE error_code, error_message",
                )
                .condition_expression("#status = :dead AND attribute_not_exists(execution_id)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":dead", items::s(dead))
                .expression_attribute_values(":back", items::s(back_to))
                .expression_attribute_values(":now", items::s(rfc3339(now))),
        )
        .await
    }

    /// One item by key, read consistently.
    pub(crate) async fn get(
        &self,
        pk: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await?;
        Ok(output.item)
    }

    /// Several items by key in one call (`BatchGetItem`, read
    /// consistently), by key; keys DynamoDB leaves unprocessed are asked
    /// for again.
    pub(crate) async fn batch_get(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, HashMap<String, AttributeValue>>, StoreError> {
        let mut found = HashMap::new();
        let mut wanted: Vec<HashMap<String, AttributeValue>> = keys
            .iter()
            .map(|pk| HashMap::from([("pk".to_string(), AttributeValue::S(pk.clone()))]))
            .collect();
        for _ in 0..5 {
            if wanted.is_empty() {
                break;
            }
            let ask = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut wanted)))
                .consistent_read(true)
                .build()?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.name, ask)
                .send()
                .await?;
            for item in output
                .responses
                .and_then(|mut r| r.remove(&self.name))
                .unwrap_or_default()
            {
                if let Some(AttributeValue::S(pk)) = item.get("pk") {
                    found.insert(pk.clone(), item);
                }
            }
            wanted = output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.name))
                .map(|k| k.keys)
                .unwrap_or_default();
        }
        if !wanted.is_empty() {
            return Err(StoreError::Unavailable("keys left unprocessed".into()));
        }
        Ok(found)
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
                    _ => return Err(err.into()),
                },
            }
        }
    }
}

/// `Ok(true)` when a conditional write applied, `Ok(false)` when its
/// condition did not hold, an error when the table could not say.
/// Sends an update: whether it applied, `false` when its condition failed.
pub(crate) async fn changed(update: UpdateItemFluentBuilder) -> Result<bool, StoreError> {
    applied(update.send().await)
}

/// Every item `query` finds, page after page (each page as large as its
/// `limit`, DynamoDB's 1 MB otherwise).
pub(crate) async fn query_all(
    query: QueryFluentBuilder,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    Ok(query.into_paginator().items().send().try_collect().await?)
}

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
        Err(e) => Err(e.into()),
    }
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

/// A cancelled transaction whose reasons this code does not expect.
pub(crate) fn cancelled(reasons: &[CancellationReason]) -> StoreError {
    StoreError::Unavailable(format!("transaction cancelled: {reasons:?}"))
}
