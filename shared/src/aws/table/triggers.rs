//! A trigger's record through its life (`trigger#<id>`: queued, started,
//! an outcome, dead-lettered, requeued by a replay), what `GET /triggers/{id}`
//! reads, and the `execution#<execution id>` index that says which trigger
//! (or run) started an execution.

use super::items::{
    execution_pk, get_s, item_to_lane, item_to_record, item_to_run, lane_pk, n, run_pk, s,
    trigger_pk,
};
use super::{cancelled, changed, failed, OutcomeWrite, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::runs::RunRecord;
use crate::rules::status::TriggerStatus;
use crate::rules::time_format::rfc3339;
use crate::rules::trigger::{TriggerRecord, TriggerView};
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

/// Trigger records and the execution index.
pub struct Triggers<'a>(&'a Table);

impl Table {
    pub fn triggers(&self) -> Triggers<'_> {
        Triggers(self)
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

/// Who started an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionOwner {
    /// The trigger that started it (with coalescing: the run's opener).
    pub trigger_id: String,
    /// The run it belongs to; `None` without coalescing (the trigger's own
    /// record holds the execution), and for executions recorded before runs.
    pub run_id: Option<String>,
}

impl ExecutionOwner {
    /// The key of the item that holds the execution: the run's, or, without
    /// coalescing, the trigger's own.
    pub(crate) fn pk(&self) -> String {
        match &self.run_id {
            Some(run_id) => run_pk(run_id),
            None => trigger_pk(&self.trigger_id),
        }
    }
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

impl Triggers<'_> {
    /// The trigger record, if it exists and has not expired.
    pub async fn get(
        &self,
        trigger_id: &str,
        now: EpochMillis,
    ) -> Result<Option<TriggerRecord>, StoreError> {
        let Some(item) = self.0.get(trigger_pk(trigger_id)).await? else {
            return Ok(None);
        };
        if item.contains_key(super::admission::VOID) {
            // An admission that never committed (docs/reference/table.md).
            return Ok(None);
        }
        let record = item_to_record(&item)?;
        Ok((!record.is_expired(now)).then_some(record))
    }

    /// What `GET /triggers/{id}` shows at `now`: the trigger record, its
    /// run and, while the run is queued or in progress, its CodePipeline's
    /// lane (where it stands, when it should start or end). One call when
    /// the trigger opened its run (or has none) and the run has ended, two
    /// otherwise.
    pub async fn view(
        &self,
        trigger_id: &str,
        now: EpochMillis,
    ) -> Result<Option<TriggerView>, StoreError> {
        // The trigger and the run it would have opened (its own id).
        let mut found = self
            .0
            .batch_get(&[trigger_pk(trigger_id), run_pk(trigger_id)])
            .await?;
        let Some(item) = found.remove(&trigger_pk(trigger_id)) else {
            return Ok(None);
        };
        if item.contains_key(super::admission::VOID) {
            return Ok(None);
        }
        let record = item_to_record(&item)?;
        if record.is_expired(now) {
            return Ok(None);
        }
        let Some(run_id) = record.run_id.clone() else {
            return Ok(Some(record.view(None, None, now)));
        };
        let mut run = found
            .remove(&run_pk(&run_id))
            .as_ref()
            .map(item_to_run)
            .transpose()?;
        let in_flight = |run: &Option<RunRecord>| run.as_ref().is_none_or(|r| !r.status.is_ended());
        let mut more = Vec::new();
        if run.is_none() {
            more.push(run_pk(&run_id));
        }
        if in_flight(&run) {
            more.push(lane_pk(&record.target));
        }
        let mut lane = None;
        if !more.is_empty() {
            let mut found = self.0.batch_get(&more).await?;
            if run.is_none() {
                run = found
                    .remove(&run_pk(&run_id))
                    .as_ref()
                    .map(item_to_run)
                    .transpose()?;
            }
            lane = found
                .remove(&lane_pk(&record.target))
                .map(|item| item_to_lane(Some(&item)));
        }
        Ok(Some(record.view(run.as_ref(), lane.as_ref(), now)))
    }

    /// Marks the trigger `started` with its execution id, and indexes the
    /// execution id back to the trigger (for the notifier), in one transaction.
    pub async fn record_started(
        &self,
        trigger_id: &str,
        execution_id: &str,
        now: EpochMillis,
        expires_at: u64,
    ) -> Result<StartRecord, StoreError> {
        let update = self.0.update_in_transaction(trigger_pk(trigger_id))
            .update_expression("SET #status = :started, execution_id = :e, updated_at = :now")
            // Never regress an outcome the notifier already recorded.
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(execution_id) OR (execution_id = :e AND attribute_not_exists(outcome_at)))")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":started", s(TriggerStatus::Started.as_str()))
            .expression_attribute_values(":e", s(execution_id))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let index = Put::builder()
            .table_name(self.0.name())
            .item("pk", s(execution_pk(execution_id)))
            .item("trigger_id", s(trigger_id))
            .item("expires_at", n(expires_at))
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().put(index).build(),
        ];
        let Some(reasons) = self.0.transact(items).await? else {
            return Ok(StartRecord::Recorded);
        };
        if !failed(reasons.first()) {
            return Err(cancelled(&reasons));
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
        changed(self.0.update(trigger_pk(trigger_id))
            .update_expression("SET #status = :dead, error_code = :code, error_message = :message, updated_at = :now")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(execution_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":dead", s(TriggerStatus::DeadLettered.as_str()))
            .expression_attribute_values(":code", s(error_code))
            .expression_attribute_values(":message", s(error_message))
            .expression_attribute_values(":now", s(rfc3339(now)))).await
    }

    /// Puts a `dead_lettered` trigger back to `queued` (an operator replayed
    /// its message), dropping the reason, and the run it opened back to
    /// `pending`. Returns whether the trigger's record changed.
    pub async fn record_requeued(
        &self,
        trigger_id: &str,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let (dead, queued) = (TriggerStatus::DeadLettered, TriggerStatus::Queued);
        let pk = trigger_pk(trigger_id);
        if !self
            .0
            .revive(pk, dead.as_str(), queued.as_str(), now)
            .await?
        {
            return Ok(false);
        }
        // A trigger that opened a run brings its run back too (with every
        // trigger it serves): the worker places it last in its lane.
        self.0.runs().revive(trigger_id, now).await?;
        Ok(true)
    }

    /// Who started an execution (the worker's `execution#<id>` index), or
    /// `None` for a run nobody triggered here.
    pub async fn execution_owner(
        &self,
        execution_id: &str,
    ) -> Result<Option<ExecutionOwner>, StoreError> {
        let item = self.0.get(execution_pk(execution_id)).await?;
        Ok(item.and_then(|item| {
            Some(ExecutionOwner {
                trigger_id: get_s(&item, "trigger_id")?.to_string(),
                run_id: get_s(&item, "run_id").map(str::to_string),
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
        let pk = trigger_pk(trigger_id);
        let written = self
            .0
            .record_outcome_on(pk, execution_id, status, changed_at, now);
        Ok(match written.await? {
            OutcomeWrite::Recorded(item) => OutcomeRecord::Recorded(item_to_record(&item)?),
            OutcomeWrite::Stale(item) => OutcomeRecord::Stale(item_to_record(&item)?),
            OutcomeWrite::NotFound => OutcomeRecord::NotFound,
        })
    }
}
