//! Runs: triggers coalesced into one run, the pending run of each public
//! pipeline and input set, and each CodePipeline's lane (see
//! [`crate::rules::runs`] for the rules).
//!
//! Items:
//! - `run#<run id>`: the run ([`RunRecord`]); `outcome_at` (epoch ms of the
//!   last state change recorded) and `outcome_rank` (1: it ended; see
//!   [`NEWER_OUTCOME`]), `error_code`/`error_message` when dead-lettered;
//!   `stage:<name>` per stage ([`super::stages`]).
//! - `pending#<public name>#<CodePipeline name>#<input set key>`: `run_id` of the pending run
//!   that triggers of that set join. It may point at a run that has moved
//!   on; the next trigger then replaces it.
//! - `lane#<CodePipeline name>`: `run_id` and `execution_id` of the run in
//!   progress, `checked_at` (epoch ms); no `run_id`: free. `waiting_key`
//!   and `waiting`: the pending runs of the keyed and of the anonymous
//!   lane, each in the order they were opened (keyed ones start first);
//!   `pending` counts them all and `pending_anonymous` the anonymous ones,
//!   so an anonymous run opens only while both have room (the slots
//!   `reserved_pending` keeps are for keyed runs).
//! - `trigger#<id>` gets `run_id`; `execution#<id>` gets `run_id`.
//!
//! Joining writes the run and the trigger in one transaction conditioned on
//! the run being pending, and taking the lane does the same with the run's
//! move to `starting`: so a trigger either joins before the run leaves
//! `pending` (and is served by its execution) or opens a new run.

use super::items::{
    counters_of, execution_pk, get_s, item_to_lane, item_to_run, lane_pk, message_attributes_value,
    n, pending_pk, run_pk, run_to_item, s, trigger_pk, waiting_list_of, Item, PENDING,
    PENDING_ANONYMOUS,
};
use super::{
    cancelled, changed, condition_failed, conflicted, failed, OutcomeWrite, Rounds, StoreError,
    Table,
};
use crate::clock::EpochMillis;
use crate::rules::runs::{Lane, RunLane, RunRecord, Wake, KEPT_DURATIONS};
use crate::rules::status::{RunStatus, TriggerStatus};
use crate::rules::time_format::rfc3339;
use crate::rules::trigger::TriggerRecord;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

/// Runs, pending runs and lanes.
pub struct Runs<'a>(&'a Table);

impl Table {
    pub fn runs(&self) -> Runs<'_> {
        Runs(self)
    }
}

/// How a trigger found its run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// It opened this run (its own id): its message starts it.
    Opened(String),
    /// It joined this run, opened by another trigger.
    Joined(String),
    /// The trigger record is gone (refunded or expired).
    NoRecord,
    /// Its input set has no pending run and its pipeline already has
    /// `max_pending`: no run was opened. The lane as it stood.
    QueueFull(Lane),
}

/// What a new run needs to be opened: its CodePipeline's bounds, its lane,
/// and how to wake it (its opener's message and queue).
#[derive(Debug, Clone)]
pub struct Opening {
    /// Pending runs at most, every lane.
    pub max_pending: u64,
    /// Pending anonymous runs at most (`max_pending` - `reserved_pending`).
    pub anonymous_max: u64,
    pub lane: RunLane,
    pub wake: Option<Wake>,
}

impl Opening {
    /// At most `max_pending` pending runs, anonymous, none of them wakeable
    /// (tests, tools).
    pub fn up_to(max_pending: u64) -> Self {
        Self {
            max_pending,
            anonymous_max: max_pending,
            lane: RunLane::Anonymous,
            wake: None,
        }
    }
}

/// `SET c = c - :one, …` over a run's counters (named `#c0`, `#c1`, …).
fn count_down(
    update: aws_sdk_dynamodb::types::builders::UpdateBuilder,
    counters: &[String],
) -> (
    aws_sdk_dynamodb::types::builders::UpdateBuilder,
    Vec<String>,
) {
    let mut sets = Vec::new();
    let mut update = update;
    for (i, counter) in counters.iter().enumerate() {
        update = update.expression_attribute_names(format!("#c{i}"), counter);
        sets.push(format!("#c{i} = #c{i} - :one"));
    }
    (update, sets)
}

/// How taking the lane ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// The lane is this run's, the run is `starting`: start it.
    Taken,
    /// Another run holds the lane, or other runs wait ahead of this one.
    Busy(Lane),
    /// The run is no longer pending or starting (or is gone).
    RunMoved(Option<RunRecord>),
}

/// What a trigger update that failed its condition says: the run the
/// trigger already belongs to, or no record.
fn already_joined(item: Option<&Item>, trigger_id: &str) -> Joined {
    match item.and_then(|item| get_s(item, "run_id")) {
        None => Joined::NoRecord,
        Some(run_id) if run_id == trigger_id => Joined::Opened(run_id.to_string()),
        Some(run_id) => Joined::Joined(run_id.to_string()),
    }
}

impl Runs<'_> {
    /// The trigger's update that ties it to `run_id`, once.
    fn bind_trigger(
        &self,
        trigger_id: &str,
        run_id: &str,
    ) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .0
            .update_in_transaction(trigger_pk(trigger_id))
            .update_expression("SET run_id = :r")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(run_id)")
            .expression_attribute_values(":r", s(run_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// The items that join `trigger` to the pending run `run_id`.
    fn join_items(
        &self,
        trigger: &TriggerRecord,
        run_id: &str,
        now: EpochMillis,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let join = self
            .0
            .update_in_transaction(run_pk(run_id))
            .update_expression("ADD triggers :one SET updated_at = :now")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .build()?;
        Ok(vec![
            self.bind_trigger(&trigger.trigger_id, run_id)?,
            TransactWriteItem::builder().update(join).build(),
        ])
    }

    /// A new run joins its lane's queue of its CodePipeline, last, while
    /// the CodePipeline has fewer than `max_pending` pending runs and, for
    /// an anonymous run, fewer than its anonymous bound.
    fn enqueue(&self, target: &str, run_id: &str, opening: &Opening) -> Result<Update, StoreError> {
        let (list, condition) = match opening.lane {
            RunLane::Key => (
                "waiting_key",
                "attribute_not_exists(#pending) OR #pending < :max",
            ),
            RunLane::Anonymous => (
                "waiting",
                "(attribute_not_exists(#pending) OR #pending < :max) AND (attribute_not_exists(#anon) OR #anon < :anon_max)",
            ),
        };
        let mut enqueue = self
            .0
            .update_in_transaction(lane_pk(target))
            .condition_expression(condition)
            .expression_attribute_names("#pending", PENDING)
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":run", AttributeValue::L(vec![s(run_id)]))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(opening.max_pending))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        enqueue = match opening.lane {
            RunLane::Key => enqueue.update_expression(format!(
                "SET {list} = list_append(if_not_exists({list}, :none), :run), #pending = if_not_exists(#pending, :zero) + :one"
            )),
            RunLane::Anonymous => enqueue
                .update_expression(format!(
                    "SET {list} = list_append(if_not_exists({list}, :none), :run), #pending = if_not_exists(#pending, :zero) + :one, #anon = if_not_exists(#anon, :zero) + :one"
                ))
                .expression_attribute_names("#anon", PENDING_ANONYMOUS)
                .expression_attribute_values(":anon_max", n(opening.anonymous_max)),
        };
        Ok(enqueue.build()?)
    }

    /// The items that open a run with `trigger` as its opener, claiming the
    /// pending slot (free, or left by `stale`, a run that moved on).
    fn open_items(
        &self,
        trigger: &TriggerRecord,
        slot: &str,
        stale: Option<&str>,
        opening: &Opening,
        now: EpochMillis,
        expires_at: u64,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut claim = Put::builder()
            .table_name(self.0.name())
            .item("pk", s(slot))
            .item("run_id", s(&trigger.trigger_id))
            .item("expires_at", n(expires_at));
        claim = match stale {
            // A slot left by a run that moved on is replaced.
            Some(stale) => claim
                .condition_expression("run_id = :stale")
                .expression_attribute_values(":stale", s(stale)),
            None => claim.condition_expression("attribute_not_exists(pk)"),
        };
        let run = RunRecord {
            lane: Some(opening.lane),
            run_id: trigger.trigger_id.clone(),
            pipeline: trigger.pipeline.clone(),
            target: trigger.target.clone(),
            status: RunStatus::Pending,
            triggers: 1,
            requested_at: trigger.requested_at,
            updated_at: now,
            execution_id: None,
            started_at: None,
            expires_at,
            stages: Vec::new(),
            wake: opening.wake.clone(),
        };
        let open = Put::builder()
            .table_name(self.0.name())
            .set_item(Some(run_to_item(&run)))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        let enqueue = self.enqueue(&trigger.target, &trigger.trigger_id, opening)?;
        Ok(vec![
            self.bind_trigger(&trigger.trigger_id, &trigger.trigger_id)?,
            TransactWriteItem::builder().put(claim.build()?).build(),
            TransactWriteItem::builder().put(open).build(),
            TransactWriteItem::builder().update(enqueue).build(),
        ])
    }

    /// Joins `trigger` to the pending run of its public pipeline and input
    /// set (`set_key`), or opens one with the trigger's id, last in its
    /// CodePipeline's queue, unless the pipeline has `max_pending` already.
    pub async fn join_or_open(
        &self,
        trigger: &TriggerRecord,
        set_key: &str,
        opening: &Opening,
        now: EpochMillis,
        expires_at: u64,
    ) -> Result<Joined, StoreError> {
        let slot = pending_pk(&trigger.pipeline, &trigger.target, set_key);
        // A run the slot points at that is no longer pending.
        let mut moved_on: Option<String> = None;
        let mut rounds = Rounds::new(&slot);
        loop {
            rounds.next().await?;
            let pending = self
                .0
                .get(slot.clone())
                .await?
                .and_then(|item| get_s(&item, "run_id").map(str::to_string));
            let joinable = pending.as_ref().filter(|run_id| {
                **run_id != trigger.trigger_id && moved_on.as_ref() != Some(*run_id)
            });
            let reasons = match joinable {
                Some(run_id) => {
                    let items = self.join_items(trigger, run_id, now)?;
                    match self.0.transact(items).await? {
                        None => return Ok(Joined::Joined(run_id.clone())),
                        Some(reasons) => {
                            if condition_failed(reasons.get(1)) {
                                moved_on = Some(run_id.clone());
                            }
                            reasons
                        }
                    }
                }
                None => {
                    let items = self.open_items(
                        trigger,
                        &slot,
                        pending.as_deref(),
                        opening,
                        now,
                        expires_at,
                    )?;
                    match self.0.transact(items).await? {
                        None => return Ok(Joined::Opened(trigger.trigger_id.clone())),
                        Some(reasons) => {
                            if !failed(reasons.first())
                                && !failed(reasons.get(1))
                                && condition_failed(reasons.get(3))
                            {
                                // Its set has no pending run, and the queue
                                // is full: nothing was opened.
                                return Ok(Joined::QueueFull(item_to_lane(reasons[3].item())));
                            }
                            reasons
                        }
                    }
                }
            };
            if condition_failed(reasons.first()) {
                return Ok(already_joined(reasons[0].item(), &trigger.trigger_id));
            }
            if conflicted(&reasons) {
                rounds.conflicted();
                continue;
            }
            // Otherwise the slot or its run changed under us: look again.
        }
    }

    /// The run, if it exists.
    pub async fn get(&self, run_id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.0
            .get(run_pk(run_id))
            .await?
            .as_ref()
            .map(item_to_run)
            .transpose()
    }

    /// The lane of a CodePipeline (free when there is no item).
    pub async fn get_lane(&self, target: &str) -> Result<Lane, StoreError> {
        Ok(item_to_lane(self.0.get(lane_pk(target)).await?.as_ref()))
    }

    /// The lane's side of a take: the run holds it, out of its queue and
    /// its counts, while it is free and the run first in line (first of the
    /// keyed queue, or of the anonymous one while no keyed run waits).
    fn taking(&self, run: &RunRecord, now: EpochMillis) -> Result<Update, StoreError> {
        let list = waiting_list_of(run);
        let first = match list {
            "waiting_key" => "waiting_key[0] = :r",
            _ => "attribute_not_exists(waiting_key[0]) AND waiting[0] = :r",
        };
        let (lane, counts) = count_down(
            self.0.update_in_transaction(lane_pk(&run.target)),
            &counters_of(run),
        );
        Ok(lane
            .update_expression(format!(
                "SET run_id = :r, checked_at = :now, taken_at = :now, {} REMOVE {list}[0], execution_id",
                counts.join(", ")
            ))
            .condition_expression(format!("attribute_not_exists(run_id) AND {first}"))
            .expression_attribute_values(":r", s(&run.run_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?)
    }

    /// Takes the lane for `run` — free, and `run` first in the queue — and
    /// moves the run to `starting`, in one transaction. A lane already
    /// `run`'s (a redelivery) is taken again as it is.
    pub async fn take_lane(&self, run: &RunRecord, now: EpochMillis) -> Result<Take, StoreError> {
        let lane = self.taking(run, now)?;
        let held = ConditionCheck::builder()
            .table_name(self.0.name())
            .key("pk", s(lane_pk(&run.target)))
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(&run.run_id))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let starting = self
            .0
            .update_in_transaction(run_pk(&run.run_id))
            .update_expression("SET #status = :starting, updated_at = :at")
            .condition_expression("#status IN (:pending, :starting)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":starting", s(RunStatus::Starting.as_str()))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        let contended = lane_pk(&run.target);
        let mut rounds = Rounds::new(&contended);
        // First guess: the lane is free and the run first in the queue.
        let mut already_ours = false;
        loop {
            rounds.next().await?;
            let first = if already_ours {
                TransactWriteItem::builder()
                    .condition_check(held.clone())
                    .build()
            } else {
                TransactWriteItem::builder().update(lane.clone()).build()
            };
            let items = vec![
                first,
                TransactWriteItem::builder()
                    .update(starting.clone())
                    .build(),
            ];
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(Take::Taken);
            };
            if condition_failed(reasons.get(1)) {
                let run = reasons[1].item().map(item_to_run).transpose()?;
                return Ok(Take::RunMoved(run));
            }
            if condition_failed(reasons.first()) {
                let seen = item_to_lane(reasons[0].item());
                if !already_ours && seen.run_id.as_deref() == Some(run.run_id.as_str()) {
                    already_ours = true;
                    continue;
                }
                return Ok(Take::Busy(seen));
            }
            if !conflicted(&reasons) {
                return Err(cancelled(&reasons));
            }
            rounds.conflicted();
        }
    }

    /// Puts `run` (pending) last in its CodePipeline's queue again — a run
    /// revived by a replay, or one opened before runs queued — unless it is
    /// there already, in one transaction with a check that the run is still
    /// pending: a run started, dead-lettered or flushed since it was read
    /// never comes back into the queue (it would hold a place for ever, and
    /// keep the lane's poll going). The queue's bound is not checked: the
    /// run was accepted once. Returns the lane as it now is.
    pub async fn requeue(&self, run: &RunRecord) -> Result<Lane, StoreError> {
        let list = waiting_list_of(run);
        let mut update = self.0.update_in_transaction(lane_pk(&run.target));
        let mut counts = Vec::new();
        for (i, counter) in counters_of(run).iter().enumerate() {
            update = update.expression_attribute_names(format!("#c{i}"), counter);
            counts.push(format!("#c{i} = if_not_exists(#c{i}, :zero) + :one"));
        }
        let queue = update
            .update_expression(format!(
                "SET {list} = list_append(if_not_exists({list}, :none), :run), {}",
                counts.join(", ")
            ))
            .condition_expression(format!(
                "attribute_not_exists({list}) OR NOT contains({list}, :r)"
            ))
            .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":run", AttributeValue::L(vec![s(&run.run_id)]))
            .expression_attribute_values(":r", s(&run.run_id))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()?;
        // The check is an update that changes nothing (the worker may
        // update runs; it needs no grant to merely check one).
        let still_pending = self
            .0
            .update_in_transaction(run_pk(&run.run_id))
            .update_expression("SET #status = :pending")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .build()?;
        let items = vec![
            TransactWriteItem::builder().update(queue).build(),
            TransactWriteItem::builder().update(still_pending).build(),
        ];
        let contended = lane_pk(&run.target);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let Some(reasons) = self.0.transact(items.clone()).await? else {
                return self.get_lane(&run.target).await;
            };
            // In the queue already, or no longer pending: nothing to add.
            if condition_failed(reasons.first()) || condition_failed(reasons.get(1)) {
                return self.get_lane(&run.target).await;
            }
            if !conflicted(&reasons) {
                return Err(cancelled(&reasons));
            }
            rounds.conflicted();
        }
    }

    /// Takes `run` out of its CodePipeline's queue (its opener was given
    /// up to the DLQ). Returns the lane as it now is.
    pub async fn leave_queue(&self, run: &RunRecord) -> Result<Lane, StoreError> {
        self.out_of_queue(run, None).await?;
        self.get_lane(&run.target).await
    }

    /// Takes `run` out of its queue, its counters counted down, in one
    /// transaction with `with` (an update of the run whose condition says
    /// it may still leave). Returns whether it did: not when the run is in
    /// no queue, or `with`'s condition failed.
    async fn out_of_queue(
        &self,
        run: &RunRecord,
        with: Option<Update>,
    ) -> Result<bool, StoreError> {
        let contended = lane_pk(&run.target);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let lane = self.get_lane(&run.target).await?;
            let list = waiting_list_of(run);
            let waiting = match list {
                "waiting_key" => &lane.waiting_key,
                _ => &lane.waiting,
            };
            let Some(index) = waiting.iter().position(|r| *r == run.run_id) else {
                return Ok(false);
            };
            let (queue, counts) = count_down(
                self.0.update_in_transaction(lane_pk(&run.target)),
                &counters_of(run),
            );
            let queue = queue
                .update_expression(format!("SET {} REMOVE {list}[{index}]", counts.join(", ")))
                .condition_expression(format!("{list}[{index}] = :r"))
                .expression_attribute_values(":r", s(&run.run_id))
                .expression_attribute_values(":one", n(1))
                .build()?;
            let mut items = vec![TransactWriteItem::builder().update(queue).build()];
            items.extend(
                with.iter()
                    .map(|u| TransactWriteItem::builder().update(u.clone()).build()),
            );
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(true);
            };
            if condition_failed(reasons.get(1)) {
                return Ok(false);
            }
            // The queue moved: look again.
            if condition_failed(reasons.first()) {
                continue;
            }
            if !conflicted(&reasons) {
                return Err(cancelled(&reasons));
            }
            rounds.conflicted();
        }
    }

    /// Moves the anonymous pending run `run` into the keyed queue, last of
    /// it: a keyed trigger joined it, and a keyed trigger's run starts
    /// before anonymous ones. One slot of the anonymous bound frees; the
    /// pending runs stay as many. Returns whether it moved (not when the
    /// run is keyed already, not pending, or no longer waiting).
    pub async fn promote(&self, run: &RunRecord) -> Result<bool, StoreError> {
        if run.lane != Some(RunLane::Anonymous) || run.status != RunStatus::Pending {
            return Ok(false);
        }
        let contended = lane_pk(&run.target);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let lane = self.get_lane(&run.target).await?;
            let Some(index) = lane.waiting.iter().position(|r| *r == run.run_id) else {
                return Ok(false);
            };
            let queue = self.0.update_in_transaction(lane_pk(&run.target))
                .update_expression(format!(
                    "SET waiting_key = list_append(if_not_exists(waiting_key, :none), :run), #anon = #anon - :one REMOVE waiting[{index}]"
                ))
                .condition_expression(format!("waiting[{index}] = :r"))
                .expression_attribute_names("#anon", PENDING_ANONYMOUS)
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":run", AttributeValue::L(vec![s(&run.run_id)]))
                .expression_attribute_values(":r", s(&run.run_id))
                .expression_attribute_values(":one", n(1))
                .build()?;
            let keyed = self
                .0
                .update_in_transaction(run_pk(&run.run_id))
                .update_expression("SET #lane = :key")
                .condition_expression("#status = :pending AND #lane = :anonymous")
                .expression_attribute_names("#lane", "lane")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":key", s(RunLane::Key.as_str()))
                .expression_attribute_values(":anonymous", s(RunLane::Anonymous.as_str()))
                .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
                .build()?;
            let items = vec![
                TransactWriteItem::builder().update(queue).build(),
                TransactWriteItem::builder().update(keyed).build(),
            ];
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(true);
            };
            // The run left `pending` (it is starting) or was promoted by
            // another keyed trigger.
            if condition_failed(reasons.get(1)) {
                return Ok(false);
            }
            // The queue moved: look again.
            if condition_failed(reasons.first()) {
                continue;
            }
            if !conflicted(&reasons) {
                return Err(cancelled(&reasons));
            }
            rounds.conflicted();
        }
    }

    /// Ends every pending run of `target`'s anonymous queue (and of its
    /// keyed queue too with `keyed`) as `flushed`: never started, each of
    /// its triggers `refused`, no quota given back (an operator clears a
    /// flood). A run that leaves `pending` meanwhile (it is starting) is
    /// left alone. Returns the runs flushed, in queue order.
    pub async fn flush(
        &self,
        target: &str,
        keyed: bool,
        now: EpochMillis,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let lane = self.get_lane(target).await?;
        let mut queued: Vec<String> = lane.waiting.clone();
        if keyed {
            queued.extend(lane.waiting_key.iter().cloned());
        }
        let mut flushed = Vec::new();
        for run_id in queued {
            let Some(run) = self.get(&run_id).await? else {
                continue;
            };
            if self.flush_one(&run, now).await? {
                flushed.push(run);
            }
        }
        Ok(flushed)
    }

    /// Takes one pending run out of its queue as `flushed`. Returns
    /// whether it did (not when it is starting, or flushed already).
    async fn flush_one(&self, run: &RunRecord, now: EpochMillis) -> Result<bool, StoreError> {
        let ended = self
            .0
            .update_in_transaction(run_pk(&run.run_id))
            .update_expression("SET #status = :flushed, updated_at = :at")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":flushed", s(RunStatus::Flushed.as_str()))
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .build()?;
        self.out_of_queue(run, Some(ended)).await
    }

    /// Takes the lane's safety poll for the message carrying `token`, until
    /// `until`: when nobody holds a live one, or `mine` (the token the
    /// message carries now) is the poll's. Returns whether it did.
    pub async fn claim_poll(
        &self,
        target: &str,
        mine: Option<&str>,
        token: &str,
        until: EpochMillis,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let mut update = self
            .0
            .update(lane_pk(target))
            .update_expression("SET poll_token = :token, poll_until = :until")
            .expression_attribute_values(":token", s(token))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now));
        // Only while runs wait: a poll of an empty queue ends.
        update = match mine {
            Some(mine) => update
                .condition_expression(
                    "(size(waiting) > :zero OR size(waiting_key) > :zero) AND (attribute_not_exists(poll_until) OR poll_until <= :now OR poll_token = :mine)",
                )
                .expression_attribute_values(":mine", s(mine)),
            None => update.condition_expression(
                "(size(waiting) > :zero OR size(waiting_key) > :zero) AND (attribute_not_exists(poll_until) OR poll_until <= :now)",
            ),
        }
        .expression_attribute_values(":zero", n(0));
        changed(update).await
    }

    /// Records the run's execution: the run `started` (unless the notifier
    /// recorded more already), the lane's execution id (while the lane is
    /// still the run's) and the `execution#` index the notifier reads.
    /// Returns whether the lane was still the run's.
    pub async fn record_started(
        &self,
        run: &RunRecord,
        execution_id: &str,
        now: EpochMillis,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let started = self.0.update_in_transaction(run_pk(&run.run_id))
            .update_expression(
                "SET #status = :started, execution_id = :e, updated_at = :at, started_at = if_not_exists(started_at, :t)",
            )
            .condition_expression(
                "#status = :starting OR (execution_id = :e AND attribute_not_exists(outcome_at))",
            )
            .expression_attribute_values(":t", n(now))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":started", s(TriggerStatus::Started.as_str()))
            .expression_attribute_values(":starting", s(RunStatus::Starting.as_str()))
            .expression_attribute_values(":e", s(execution_id))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .build()?;
        let index = Put::builder()
            .table_name(self.0.name())
            .item("pk", s(execution_pk(execution_id)))
            .item("trigger_id", s(&run.run_id))
            .item("run_id", s(&run.run_id))
            .item("expires_at", n(expires_at))
            .build()?;
        let lane = self
            .0
            .update_in_transaction(lane_pk(&run.target))
            .update_expression("SET execution_id = :e, checked_at = :now")
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(&run.run_id))
            .expression_attribute_values(":e", s(execution_id))
            .expression_attribute_values(":now", n(now))
            .build()?;
        let mut with_lane = true;
        let contended = run_pk(&run.run_id);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let mut items = vec![
                TransactWriteItem::builder().put(index.clone()).build(),
                TransactWriteItem::builder().update(started.clone()).build(),
            ];
            if with_lane {
                items.push(TransactWriteItem::builder().update(lane.clone()).build());
            }
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(with_lane);
            };
            if condition_failed(reasons.get(2)) {
                // The lane was taken from the run (it looked dead): record
                // the execution all the same, it runs.
                with_lane = false;
                continue;
            }
            if condition_failed(reasons.get(1)) {
                // Already started (a redelivery), or an outcome is recorded:
                // only the index may be missing.
                self.0
                    .client()
                    .put_item()
                    .table_name(self.0.name())
                    .set_item(Some(index.item().clone()))
                    .send()
                    .await?;
                return Ok(false);
            }
            if !conflicted(&reasons) {
                return Err(cancelled(&reasons));
            }
            rounds.conflicted();
        }
    }

    /// Frees `target`'s lane if `run_id` still holds it, noting how long
    /// the run took when known. Returns the lane as it now is (`None`: the
    /// run did not hold it), so the caller can wake the next.
    pub async fn free_lane(
        &self,
        target: &str,
        run_id: &str,
        now: EpochMillis,
        took: Option<u64>,
    ) -> Result<Option<Lane>, StoreError> {
        let mut update = self
            .0
            .update(lane_pk(target))
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(run_id))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew);
        update = match took {
            Some(took) => update
                .update_expression("SET checked_at = :now, durations = list_append(if_not_exists(durations, :none), :took) REMOVE run_id, execution_id")
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":took", AttributeValue::L(vec![n(took)])),
            None => update.update_expression("SET checked_at = :now REMOVE run_id, execution_id"),
        };
        let lane = match update.send().await {
            Ok(output) => item_to_lane(output.attributes()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        if lane.durations.len() > KEPT_DURATIONS {
            // Keep the last few; best effort, a later end trims again.
            let extra = lane.durations.len() - KEPT_DURATIONS;
            let removed: Vec<String> = (0..extra).map(|i| format!("durations[{i}]")).collect();
            let _ = self
                .0
                .update(lane_pk(target))
                .update_expression(format!("REMOVE {}", removed.join(", ")))
                .condition_expression("size(durations) = :size")
                .expression_attribute_values(":size", n(lane.durations.len()))
                .send()
                .await;
        }
        Ok(Some(lane))
    }

    /// Notes that CodePipeline said the holder still runs: the next check
    /// is a bound away. Returns whether `run_id` still held the lane.
    pub async fn mark_lane_checked(
        &self,
        target: &str,
        run_id: &str,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        changed(
            self.0
                .update(lane_pk(target))
                .update_expression("SET checked_at = :now")
                .condition_expression("run_id = :r")
                .expression_attribute_values(":r", s(run_id))
                .expression_attribute_values(":now", n(now)),
        )
        .await
    }

    /// Moves the run of `execution_id` to `status` for the state change at
    /// `changed_at`, unless a later one was recorded. `None`: no such run,
    /// or it names another execution.
    pub async fn record_outcome(
        &self,
        run_id: &str,
        execution_id: &str,
        status: RunStatus,
        changed_at: EpochMillis,
        now: EpochMillis,
    ) -> Result<Option<(RunRecord, bool)>, StoreError> {
        let pk = run_pk(run_id);
        let written = self
            .0
            .record_outcome_on(pk, execution_id, status, changed_at, now);
        Ok(match written.await? {
            OutcomeWrite::Recorded(item) => Some((item_to_run(&item)?, true)),
            OutcomeWrite::Stale(item) => Some((item_to_run(&item)?, false)),
            OutcomeWrite::NotFound => None,
        })
    }

    /// Marks the run `dead_lettered` (its opener's message went to the DLQ)
    /// unless it has started. Returns the run as it now is, or `None` when
    /// nothing changed (no such run, or it had started).
    pub async fn record_dead_lettered(
        &self,
        run_id: &str,
        error_code: &str,
        error_message: &str,
        now: EpochMillis,
    ) -> Result<Option<RunRecord>, StoreError> {
        let result = self.0.update(run_pk(run_id))
            .update_expression(
                "SET #status = :dead, error_code = :code, error_message = :message, updated_at = :at",
            )
            .condition_expression("#status IN (:pending, :starting)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":dead", s(RunStatus::DeadLettered.as_str()))
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":starting", s(RunStatus::Starting.as_str()))
            .expression_attribute_values(":code", s(error_code))
            .expression_attribute_values(":message", s(error_message))
            .expression_attribute_values(":at", s(rfc3339(now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => output.attributes().map(item_to_run).transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The message that wakes a pending run is now `wake` (its opener came
    /// again with other attributes: a replay's mark). Returns whether it did.
    pub async fn set_wake(&self, run_id: &str, wake: &Wake) -> Result<bool, StoreError> {
        changed(self.0.update(run_pk(run_id))
            .update_expression(
                "SET queue_url = :queue_url, message = :message, message_attributes = :attributes",
            )
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":pending", s(RunStatus::Pending.as_str()))
            .expression_attribute_values(":queue_url", s(&wake.queue_url))
            .expression_attribute_values(":message", s(&wake.message))
            .expression_attribute_values(":attributes", message_attributes_value(&wake.attributes))).await
    }

    /// A dead-lettered run whose opener was replayed from the DLQ goes back
    /// to `pending`, with every trigger it served. Returns whether it did.
    pub async fn revive(&self, run_id: &str, now: EpochMillis) -> Result<bool, StoreError> {
        let (dead, pending) = (RunStatus::DeadLettered, RunStatus::Pending);
        self.0
            .revive(run_pk(run_id), dead.as_str(), pending.as_str(), now)
            .await
    }
}
