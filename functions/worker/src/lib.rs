//! The worker handler: an SQS batch in, one pipeline start per trigger, and a
//! partial batch response naming only the messages that must come back.
//!
//! Per message: parse → allowlist → ledger (an execution already recorded means
//! a redelivery: acknowledge) → inputs checked again → then, with `coalesce`
//! on (see `shared::rules::runs`):
//!
//! - join the pending run of the pipeline and input set (acknowledged: the
//!   run's opener starts it), or open one;
//! - the opener takes its CodePipeline's lane when it is free (asking
//!   CodePipeline about a holder not heard of for `RUN_CHECK_AFTER`), else
//!   its message is sent again to come back after `RUN_POLL_INTERVAL`;
//! - `StartPipelineExecution` with the run id as `clientRequestToken` →
//!   record the run `started`.
//!
//! With `coalesce` off each trigger is a run of its own, in the same queue.
//! Keyed triggers (a trigger key: `record.key`) open runs of the keyed lane,
//! which may fill the slots `reserved_pending` keeps and start first.
//! Transient failures come back later (visibility doubled per delivery);
//! permanent ones, and the last attempt, go to the DLQ with their reason —
//! sent before the delete, so a crash in between can duplicate a DLQ entry,
//! never lose one. A run whose opener is dead-lettered is dead-lettered with
//! it (and frees its lane); replaying the opener revives it.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use shared::aws::pipeline::PipelineStarter;
use shared::aws::queue::{queue_url_from_arn, DeadLetterQueue, Deliveries};
use shared::aws::table::runs::{Joined, Opening, Take};
use shared::aws::table::{StoreError, Table};
use shared::aws::Lazy;
use shared::clock::Clock;
use shared::config::WorkerConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::inputs::{errors_text, InputValues};
use shared::rules::message::{MessageError, WorkMessage};
use shared::rules::metrics;
use shared::rules::retry::{retry_delay, Failure, FailureKind};
use shared::rules::runs::{
    input_set_key, lane_verdict, Lane, LaneVerdict, RunLane, RunRecord, Wake,
};
use shared::rules::status::{holder_state, HolderState, RunStatus, TriggerStatus};
use shared::rules::time_format::ceil_seconds;
use shared::rules::trigger::{
    canonical_trigger_id, ledger_expires_at, TriggerRecord, QUEUE_FULL, UNSETTLED,
};
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

pub mod settle;

/// An invocation that is not an SQS event.
#[derive(Debug, thiserror::Error)]
#[error("not an SQS event: {0}")]
pub struct NotSqsEvent(String);

impl From<NotSqsEvent> for lambda_runtime::Diagnostic {
    fn from(err: NotSqsEvent) -> Self {
        Self {
            error_type: "NotAnSqsEvent".into(),
            error_message: err.to_string(),
        }
    }
}

pub struct Worker {
    metrics: Metrics,
    config: WorkerConfig,
    table: Table,
    starter: PipelineStarter,
    deliveries: Deliveries,
    dlq: DeadLetterQueue,
    clock: Arc<dyn Clock>,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done with: started, already started, skipped or dead-lettered.
    Done,
    /// Report as a batch item failure: SQS delivers it again.
    Retry,
}

/// How a valid message was handled.
enum Handled {
    Started {
        execution_id: String,
        /// Its run's CodePipeline, when the run queued for it.
        lane: Option<String>,
        /// Which lane its run waited in (the metrics count per lane).
        by: RunLane,
    },
    AlreadyStarted {
        execution_id: String,
        lane: Option<String>,
    },
    NoRecord,
    /// It joined a pending run another trigger opened.
    Joined {
        run_id: String,
    },
    /// Its run waits in its CodePipeline's queue: it costs nothing while it
    /// waits; the end of the run before it wakes it.
    Waiting {
        lane: String,
        position: Option<usize>,
    },
    /// Its pipeline's queue was full: refused, charged nothing.
    Refused {
        retry_after_s: u64,
        /// The trigger's lane: an anonymous lane refusing for minutes on
        /// end is a flood (the alarm `anonymous-lane-full`).
        by: RunLane,
    },
    /// Its client was told 503 (the ingress could not settle the
    /// admission): what it took is given back, nothing runs.
    GivenBack,
    /// Its run was flushed by an operator: refused, nothing given back.
    Flushed,
    /// A copy (a lane's poll or wake) of a trigger already in the DLQ: not
    /// tried again, so the DLQ holds it once. A replay sets the record back
    /// to `queued` before it moves the message.
    InTheDlq {
        lane: String,
    },
}

/// The message attribute that marks the one message carrying a lane's
/// safety poll.
pub const POLL_TOKEN: &str = "poll_token";

fn unavailable(e: StoreError) -> Failure {
    Failure::transient("TableUnavailable", e.to_string())
}

/// The message and its canonical trigger id, or why the body is unusable.
fn parse_work(body: &str) -> Result<(WorkMessage, String), Failure> {
    let work = WorkMessage::parse(body).map_err(|e| match e {
        MessageError::UnknownVersion(_) => Failure::permanent("UnsupportedVersion", e.to_string()),
        _ => Failure::permanent("MalformedMessage", e.to_string()),
    })?;
    let trigger_id = canonical_trigger_id(&work.trigger_id)
        .ok_or_else(|| Failure::permanent("MalformedMessage", "trigger_id is not a trigger id"))?;
    Ok((work, trigger_id))
}

impl Worker {
    /// Wires the adapters over the clients `main` (or a test) built once.
    pub fn new(
        config: WorkerConfig,
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: impl Into<Lazy<aws_sdk_sqs::Client>>,
        codepipeline: impl Into<Lazy<aws_sdk_codepipeline::Client>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let sqs = sqs.into();
        Self {
            metrics: Metrics::new(&config.metrics_namespace, "worker"),
            table: Table::new(dynamodb, config.table_name.clone()),
            starter: PipelineStarter::new(codepipeline),
            deliveries: Deliveries::new(sqs.clone()),
            dlq: DeadLetterQueue::new(sqs, config.dlq_url.clone()),
            config,
            clock,
        }
    }

    /// Sends the metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = self.metrics.with_sink(sink);
        self
    }

    /// Any invocation: the schedule's `{"settle": {…}}` settles
    /// (`settle.rs`); anything else is an SQS batch.
    pub async fn invoke(self: &Arc<Self>, event: Value) -> Result<Value, NotSqsEvent> {
        match shared::rules::settle::SettleRequest::from_event(&event) {
            Some(Ok(request)) => match self.settle(&request).await {
                Ok(settled) => Ok(serde_json::json!({ "settled": settled })),
                Err(e) => Err(NotSqsEvent(format!(
                    "settle: the ledger could not be read: {e}"
                ))),
            },
            Some(Err(e)) => Err(NotSqsEvent(format!(
                "a settle request that is not one: {e}"
            ))),
            None => {
                let response = self.handle(event).await?;
                serde_json::to_value(response).map_err(|e| NotSqsEvent(e.to_string()))
            }
        }
    }

    /// One invocation: every message of the batch concurrently; a panic in one
    /// fails only that one.
    pub async fn handle(self: &Arc<Self>, event: Value) -> Result<SqsBatchResponse, NotSqsEvent> {
        let event: SqsEvent =
            serde_json::from_value(event).map_err(|e| NotSqsEvent(e.to_string()))?;
        let mut tasks = JoinSet::new();
        let mut ids = Vec::new();
        for (index, message) in event.records.into_iter().enumerate() {
            ids.push(message.message_id.clone().unwrap_or_default());
            let worker = Arc::clone(self);
            tasks.spawn(async move { (index, worker.process(message).await) });
        }
        let mut outcomes = vec![Outcome::Retry; ids.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, outcome)) => outcomes[index] = outcome,
                Err(e) => {
                    error!(decision = "retry", error = %e, "a message's processing panicked; it will be redelivered")
                }
            }
        }
        let mut response = SqsBatchResponse::default();
        for (id, outcome) in ids.into_iter().zip(outcomes) {
            if outcome == Outcome::Retry {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        Ok(response)
    }

    /// Processes one message to its outcome.
    pub async fn process(&self, message: SqsMessage) -> Outcome {
        let message_id = message.message_id.as_deref().unwrap_or_default();
        let receive_count: u32 = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let parsed = parse_work(message.body.as_deref().unwrap_or_default());
        let trigger_id = parsed.as_ref().ok().map(|(_, id)| id.clone());
        // Its CodePipeline: the lane whose poll this message may carry.
        let target = parsed.as_ref().ok().map(|(work, _)| work.pipeline.clone());
        let target = target.as_deref();
        let result = match parsed {
            Ok((work, trigger_id)) => self.start(&work, &trigger_id, &message).await,
            Err(failure) => Err(failure),
        };
        let trigger = trigger_id.as_deref().unwrap_or("-");
        match result {
            Ok(Handled::Started {
                execution_id,
                lane,
                by,
            }) => {
                self.metrics
                    .count(metrics::RUNS_STARTED, Some(("Lane", by.as_str())));
                info!(decision = "started", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id, receive_count);
                match lane {
                    // Runs may still wait: the lane's poll goes on.
                    Some(lane) => self.poll(&message, trigger, &lane).await,
                    None => Outcome::Done,
                }
            }
            Ok(Handled::AlreadyStarted { execution_id, lane }) => {
                info!(decision = "duplicate", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id,
                      "trigger already has an execution; acknowledged without starting again");
                self.keeping_poll(&message, trigger, lane.as_deref().or(target))
                    .await
            }
            Ok(Handled::Refused { retry_after_s, by }) => {
                self.metrics
                    .count(metrics::TRIGGERS_REFUSED, Some(("Lane", by.as_str())));
                info!(decision = "refused", message_id = %message_id, trigger_id = %trigger, retry_after_s, lane = by.as_str(),
                      "its pipeline's queue is full: refused, every quota slot given back");
                self.keeping_poll(&message, trigger, target).await
            }
            Ok(Handled::GivenBack) => {
                warn!(decision = "given_back", message_id = %message_id, trigger_id = %trigger,
                      "its admission was never settled and its client told 503: every slot given back, not started");
                self.keeping_poll(&message, trigger, target).await
            }
            Ok(Handled::Flushed) => {
                info!(decision = "flushed", message_id = %message_id, trigger_id = %trigger,
                      "its run was flushed by an operator (trigger-ops pipelines flush): not started");
                self.keeping_poll(&message, trigger, target).await
            }
            Ok(Handled::InTheDlq { lane }) => {
                info!(decision = "duplicate", message_id = %message_id, trigger_id = %trigger,
                      "its trigger is already in the DLQ: this copy is not tried again");
                self.keeping_poll(&message, trigger, Some(&lane)).await
            }
            Ok(Handled::NoRecord) => {
                warn!(decision = "skipped", message_id = %message_id, trigger_id = %trigger,
                      "no trigger record (quota given back, or expired); not started");
                self.keeping_poll(&message, trigger, target).await
            }
            Ok(Handled::Joined { run_id }) => {
                self.metrics.count(metrics::TRIGGERS_COALESCED, None);
                info!(decision = "joined", message_id = %message_id, trigger_id = %trigger, run_id = %run_id,
                      "coalesced into a pending run; its opener starts it");
                self.keeping_poll(&message, trigger, target).await
            }
            Ok(Handled::Waiting { lane, position }) => {
                self.metrics.count(metrics::RUNS_WAITING, None);
                info!(decision = "wait", message_id = %message_id, trigger_id = %trigger, lane = %lane, position,
                      "its run waits in its pipeline's queue");
                match poll_token(&message) {
                    Some(_) => self.watch(&message, trigger, &lane).await,
                    None => self.poll(&message, trigger, &lane).await,
                }
            }
            Err(failure) if failure.kind == FailureKind::Permanent => {
                self.dead_letter(&message, trigger_id.as_deref(), &failure)
                    .await
            }
            Err(failure) if receive_count >= self.config.max_attempts => {
                let failure = Failure {
                    message: format!(
                        "gave up after {receive_count} attempts: {}",
                        failure.message
                    ),
                    ..failure
                };
                self.dead_letter(&message, trigger_id.as_deref(), &failure)
                    .await
            }
            Err(failure) => self.retry_later(&message, &failure, receive_count).await,
        }
    }

    /// The message's input values checked again against what the public
    /// pipeline declares (whoever wrote the message), defaults filled in; a
    /// message that does not pass goes to the DLQ.
    fn inputs(&self, work: &WorkMessage, public: &str) -> Result<InputValues, Failure> {
        let given = work.inputs.clone().map(serde_json::Value::Object);
        self.config
            .settings
            .of(public)
            .inputs
            .resolve(given.as_ref())
            .map_err(|errors| {
                Failure::permanent("InvalidInputs", truncate(&errors_text(&errors), 500))
            })
    }

    async fn start(
        &self,
        work: &WorkMessage,
        trigger_id: &str,
        message: &SqsMessage,
    ) -> Result<Handled, Failure> {
        if self.config.pipelines.by_name(&work.pipeline).is_none() {
            return Err(Failure::permanent(
                "PipelineNotAllowed",
                format!(
                    "pipeline {:?} is not in the PIPELINES allowlist",
                    truncate(&work.pipeline, 100)
                ),
            ));
        }
        let now = self.clock.now_ms();
        let Some(record) = self
            .table
            .triggers()
            .get(trigger_id, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(Handled::NoRecord);
        };
        if let Some(execution_id) = record.execution_id {
            return Ok(Handled::AlreadyStarted {
                execution_id,
                lane: None,
            });
        }
        if record.status == TriggerStatus::Refused {
            return Ok(Handled::NoRecord);
        }
        if record.status == TriggerStatus::DeadLettered {
            return Ok(Handled::InTheDlq {
                lane: record.target.clone(),
            });
        }
        if work.unsettled {
            let given_back = self
                .table
                .admission()
                .refuse(&record, UNSETTLED, now, now)
                .await
                .map_err(unavailable)?;
            return Ok(if given_back {
                Handled::GivenBack
            } else {
                Handled::NoRecord
            });
        }
        let inputs = self.inputs(work, &record.pipeline)?;
        let variables: Vec<(String, String)> = inputs
            .iter()
            .map(|(name, value)| (name.clone(), value.variable_value()))
            .collect();
        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
        let bound = self
            .config
            .settings
            .bound(&self.config.pipelines, &record.target);
        let lane = record.lane();
        let opening = Opening {
            max_pending: bound.max_pending,
            anonymous_max: bound.anonymous_max(),
            lane,
            wake: self.wake_of(message),
        };
        // Triggers join the pending run of their input set; without
        // coalescing each is a run of its own, in the same queue.
        let set_key = match self.config.settings.of(&record.pipeline).coalesce {
            true => input_set_key(&inputs),
            false => record.trigger_id.clone(),
        };
        let run_id = match &record.run_id {
            Some(run_id) => run_id.clone(),
            None => match self
                .table
                .runs()
                .join_or_open(&record, &set_key, &opening, now, expires_at)
                .await
                .map_err(unavailable)?
            {
                Joined::NoRecord => return Ok(Handled::NoRecord),
                Joined::Joined(run_id) | Joined::Opened(run_id) => run_id,
                Joined::QueueFull(lane) => return self.refuse(&record, &lane, now).await,
            },
        };
        if run_id != record.trigger_id {
            if lane == RunLane::Key {
                self.promote(&run_id).await?;
            }
            return Ok(Handled::Joined { run_id });
        }
        self.start_run(&record, &variables, message).await
    }

    /// A keyed trigger joined the pending run `run_id`: an anonymous one
    /// moves to the keyed queue (keyed runs start first).
    async fn promote(&self, run_id: &str) -> Result<(), Failure> {
        let runs = self.table.runs();
        let Some(run) = runs.get(run_id).await.map_err(unavailable)? else {
            return Ok(());
        };
        if runs.promote(&run).await.map_err(unavailable)? {
            info!(decision = "promoted", run_id = %run_id, "a keyed trigger joined an anonymous pending run: it waits in the keyed queue now");
        }
        Ok(())
    }

    /// The trigger would open one pending run more than its pipeline
    /// allows: refused, every quota slot it took given back; try again when
    /// the next waiting run is expected to start.
    async fn refuse(
        &self,
        record: &TriggerRecord,
        lane: &Lane,
        now: u64,
    ) -> Result<Handled, Failure> {
        let floor = u64::try_from(self.config.run_poll_interval.as_millis()).unwrap_or(u64::MAX);
        let retry_in = lane.next_start_in(now, floor);
        let refused = self
            .table
            .admission()
            .refuse(record, QUEUE_FULL, now + retry_in, now)
            .await
            .map_err(unavailable)?;
        if !refused {
            // It moved on meanwhile (another delivery got there first).
            return Ok(Handled::NoRecord);
        }
        Ok(Handled::Refused {
            retry_after_s: ceil_seconds(retry_in),
            by: record.lane(),
        })
    }

    /// How to wake a run this message opens: the same message, with its
    /// String attributes (a replay's mark among them), on the queue it came
    /// from. Not the lane's poll: that belongs to this delivery.
    fn wake_of(&self, message: &SqsMessage) -> Option<Wake> {
        Some(Wake {
            queue_url: self.source_queue(message)?,
            message: message.body.clone()?,
            attributes: string_attributes(message)
                .into_iter()
                .filter(|(name, _)| name != POLL_TOKEN)
                .collect(),
        })
    }

    /// A waiting run is woken with its opener's latest message: after a
    /// replay, the copy that carries the replay's mark, so what the run gives
    /// up again is known as come back (best effort: otherwise the replay
    /// moves it once more, within its bound).
    async fn keep_wake(&self, run: &RunRecord, message: &SqsMessage) {
        let Some(wake) = self.wake_of(message) else {
            return;
        };
        if run.wake.as_ref().is_none_or(|kept| kept == &wake) {
            return;
        }
        if let Err(e) = self.table.runs().set_wake(&run.run_id, &wake).await {
            warn!(run_id = %run.run_id, error = %e, "could not keep the opener's latest message; the run wakes with the earlier one");
        }
    }

    /// The opener's part: the run starts when its CodePipeline's lane is
    /// free and it is first in the lane's queue; until then it waits there.
    async fn start_run(
        &self,
        opener: &TriggerRecord,
        variables: &[(String, String)],
        message: &SqsMessage,
    ) -> Result<Handled, Failure> {
        let now = self.clock.now_ms();
        let runs = self.table.runs();
        let Some(run) = runs.get(&opener.trigger_id).await.map_err(unavailable)? else {
            return Ok(Handled::NoRecord);
        };
        let target = run.target.clone();
        match run.status {
            RunStatus::Pending | RunStatus::Starting => {}
            RunStatus::DeadLettered => {
                // The opener was replayed from the DLQ (its record is
                // `queued` again) while its run was not revived with it: the
                // run, with every trigger it serves, gets its chance again,
                // last in line.
                runs.revive(&run.run_id, now).await.map_err(unavailable)?;
                runs.requeue(&run).await.map_err(unavailable)?;
                info!(decision = "revived", run_id = %run.run_id, triggers = run.triggers,
                      "dead-lettered run pending again after a replay, last in its queue");
            }
            RunStatus::Execution(_) => {
                return Ok(Handled::AlreadyStarted {
                    execution_id: run.execution_id.unwrap_or_default(),
                    lane: Some(target),
                })
            }
            // An operator flushed it: its triggers are refused, it never starts.
            RunStatus::Flushed => return Ok(Handled::Flushed),
        }
        self.keep_wake(&run, message).await;
        let mut lane = runs.get_lane(&target).await.map_err(unavailable)?;
        let holds = lane.run_id.as_deref() == Some(run.run_id.as_str());
        if !holds && run.status == RunStatus::Pending && lane.place(&run.run_id).is_none() {
            // Opened before runs queued, or revived: it takes its place now.
            lane = runs.requeue(&run).await.map_err(unavailable)?;
        }
        if !holds {
            if let Some(holder) = lane.run_id.clone() {
                if lane_verdict(&lane, &run.run_id, now, self.config.run_check_after)
                    != LaneVerdict::Stale
                    || !self
                        .settle_stale_holder(&target, &holder, &lane, now)
                        .await?
                {
                    return Ok(Handled::Waiting {
                        position: lane.place(&run.run_id).map(|p| p.position),
                        lane: target,
                    });
                }
                lane = runs.get_lane(&target).await.map_err(unavailable)?;
            }
            if lane.first_waiting() != Some(run.run_id.as_str()) {
                // Others were opened first: they start first.
                if poll_token(message).is_some() {
                    shared::aws::lanes::wake_next(&self.table, &self.deliveries, &lane).await;
                }
                return Ok(Handled::Waiting {
                    position: lane.place(&run.run_id).map(|p| p.position),
                    lane: target,
                });
            }
        }
        match runs.take_lane(&run, now).await.map_err(unavailable)? {
            Take::Taken => {}
            Take::Busy(lane) => {
                return Ok(Handled::Waiting {
                    position: lane.place(&run.run_id).map(|p| p.position),
                    lane: target,
                })
            }
            Take::RunMoved(Some(RunRecord {
                execution_id: Some(execution_id),
                ..
            })) => {
                return Ok(Handled::AlreadyStarted {
                    execution_id,
                    lane: Some(target),
                })
            }
            // Dead-lettered or gone meanwhile (another delivery of this
            // message got there first).
            Take::RunMoved(_) => return Ok(Handled::NoRecord),
        }
        let execution_id = self
            .starter
            .start(&run.target, &run.run_id, variables)
            .await?;
        let now = self.clock.now_ms();
        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
        let kept_lane = runs
            .record_started(&run, &execution_id, now, expires_at)
            .await
            .map_err(unavailable)?;
        if !kept_lane {
            warn!(run_id = %run.run_id, execution_id = %execution_id,
                  "run started without its lane (taken over meanwhile, or already recorded)");
        }
        Ok(Handled::Started {
            execution_id,
            lane: Some(target),
            by: run.lane.unwrap_or(RunLane::Anonymous),
        })
    }

    /// A message done with, whatever became of its trigger: if it carries
    /// its lane's poll, the poll goes on while runs wait there (dropping it
    /// would leave waiting runs to wakes alone, which are best effort).
    async fn keeping_poll(
        &self,
        message: &SqsMessage,
        trigger_id: &str,
        lane: Option<&str>,
    ) -> Outcome {
        match (poll_token(message), lane) {
            (Some(_), Some(lane)) => self.watch(message, trigger_id, lane).await,
            _ => Outcome::Done,
        }
    }

    /// The lane's safety poll, carried by this message: looks after the
    /// lane (asks CodePipeline about a holder not heard of for
    /// `RUN_CHECK_AFTER`, wakes the first waiting run of a free lane), then
    /// goes on polling while runs wait.
    async fn watch(&self, message: &SqsMessage, trigger_id: &str, target: &str) -> Outcome {
        let now = self.clock.now_ms();
        let lane = match self.table.runs().get_lane(target).await {
            Ok(lane) => lane,
            Err(e) => {
                let failure = unavailable(e);
                return self.retry_later(message, &failure, 1).await;
            }
        };
        if lane.poll_token.as_deref() != poll_token(message) || !lane.has_waiting() {
            return Outcome::Done;
        }
        let mut lane = lane;
        if let Some(holder) = lane.run_id.clone() {
            let stale =
                lane_verdict(&lane, "", now, self.config.run_check_after) == LaneVerdict::Stale;
            if stale {
                match self.settle_stale_holder(target, &holder, &lane, now).await {
                    Ok(true) => {
                        if let Ok(after) = self.table.runs().get_lane(target).await {
                            lane = after;
                        }
                    }
                    Ok(false) => {}
                    Err(failure) => warn!(lane = %target, error = %failure.message,
                                          "could not ask CodePipeline about the lane's holder; the next poll will"),
                }
            }
        }
        shared::aws::lanes::wake_next(&self.table, &self.deliveries, &lane).await;
        self.poll(message, trigger_id, target).await
    }

    /// A lane holder nobody has heard of for `RUN_CHECK_AFTER`: CodePipeline
    /// says whether its execution still runs. Returns whether the lane was
    /// freed (the holder's run then gets the status CodePipeline reported).
    async fn settle_stale_holder(
        &self,
        target: &str,
        holder: &str,
        lane: &Lane,
        now: u64,
    ) -> Result<bool, Failure> {
        let execution_id = lane.execution_id.as_deref();
        let state = match execution_id {
            // Taken, never recorded a start: the start may have gone through
            // while its record did not. CodePipeline says: then the start is
            // recorded now and the holder keeps the lane; else its opener
            // crashed or was dead-lettered, and the lane is freed (a live
            // opener takes it back, with the same token).
            None => match self.starter.started_since(target, lane.taken_at).await? {
                Some(found) => {
                    if let Some(run) = self.table.runs().get(holder).await.map_err(unavailable)? {
                        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
                        self.table
                            .runs()
                            .record_started(&run, &found, now, expires_at)
                            .await
                            .map_err(unavailable)?;
                        warn!(decision = "start_found", run_id = %holder, execution_id = %found,
                              "the holder's start went through but was not recorded; recorded now");
                        return Ok(false);
                    }
                    HolderState::Ended(RunStatus::Pending)
                }
                None => HolderState::Ended(RunStatus::Pending),
            },
            Some(execution_id) => holder_state(
                self.starter
                    .execution_status(target, execution_id)
                    .await?
                    .as_deref(),
            ),
        };
        match state {
            HolderState::Running => {
                self.table
                    .runs()
                    .mark_lane_checked(target, holder, now)
                    .await
                    .map_err(unavailable)?;
                info!(decision = "lane_checked", run_id = %holder, execution_id = execution_id.unwrap_or("-"),
                      "CodePipeline says the lane holder still runs");
                Ok(false)
            }
            HolderState::Ended(status) => {
                if let (Some(execution_id), RunStatus::Execution(_)) = (execution_id, status) {
                    self.table
                        .runs()
                        .record_outcome(holder, execution_id, status, now, now)
                        .await
                        .map_err(unavailable)?;
                }
                let freed = self
                    .table
                    .runs()
                    .free_lane(target, holder, now, None)
                    .await
                    .map_err(unavailable)?
                    .is_some();
                warn!(decision = "lane_freed", run_id = %holder, execution_id = execution_id.unwrap_or("-"),
                      status = status.as_str(), freed, "no terminal event came for the lane holder; CodePipeline says it ended");
                Ok(true)
            }
        }
    }

    /// While runs wait on `target`, one message carries the lane's safety
    /// poll: it comes back every `RUN_POLL_INTERVAL` (a new message, so
    /// waiting never spends attempts). This message takes the poll when
    /// nobody holds a live one or it already does; otherwise it is done,
    /// and its run waits in the lane's queue at no cost.
    async fn poll(&self, message: &SqsMessage, trigger_id: &str, target: &str) -> Outcome {
        let message_id = message.message_id.as_deref().unwrap_or_default();
        let interval = self.config.run_poll_interval;
        let now = self.clock.now_ms();
        // Alive a little past the interval, so the poll's own return
        // finds it still its own.
        let until = now + u64::try_from((interval * 2).as_millis()).unwrap_or(u64::MAX);
        let token = ulid::Ulid::new().to_string();
        let claimed = self
            .table
            .runs()
            .claim_poll(target, poll_token(message), &token, until, now)
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return Outcome::Done,
            Err(e) => {
                warn!(message_id = %message_id, lane = %target, error = %e,
                      "could not take the lane's poll; this delivery comes back instead");
                return self.retry_later(message, &unavailable(e), 1).await;
            }
        }
        let (Some(url), Some(receipt)) = (
            self.source_queue(message),
            message.receipt_handle.as_deref(),
        ) else {
            warn!(decision = "poll", message_id = %message_id, trigger_id = %trigger_id,
                  "no source queue to poll on; redelivered after the visibility timeout");
            return Outcome::Retry;
        };
        let mut attributes: Vec<(String, String)> = string_attributes(message)
            .into_iter()
            .filter(|(name, _)| name != POLL_TOKEN)
            .collect();
        attributes.push((POLL_TOKEN.to_string(), token));
        let body = message.body.as_deref().unwrap_or_default();
        if let Err(e) = self
            .deliveries
            .send_later(&url, body, &attributes, interval.as_secs())
            .await
        {
            warn!(decision = "poll", message_id = %message_id, lane = %target, error = %e,
                  "could not send the lane's poll; this delivery comes back once the poll lapsed");
            let lapse = (interval * 2).as_secs() + 1;
            if let Err(e) = self.deliveries.delay(&url, receipt, lapse).await {
                warn!(message_id = %message_id, error = %e, "could not set the delay either");
            }
            return Outcome::Retry;
        }
        if let Err(e) = self.deliveries.delete(&url, receipt).await {
            // Two copies now; the older no longer carries the poll.
            warn!(message_id = %message_id, error = %e, "poll sent, this delivery not deleted");
        }
        info!(decision = "poll", message_id = %message_id, trigger_id = %trigger_id, lane = %target,
              retry_in_s = interval.as_secs(), "runs wait on this pipeline: its poll goes on");
        Outcome::Done
    }

    async fn retry_later(
        &self,
        message: &SqsMessage,
        failure: &Failure,
        receive_count: u32,
    ) -> Outcome {
        let message_id = message.message_id.as_deref().unwrap_or_default();
        let delay = retry_delay(receive_count);
        if let (Some(url), Some(receipt)) = (
            self.source_queue(message),
            message.receipt_handle.as_deref(),
        ) {
            if let Err(e) = self.deliveries.delay(&url, receipt, delay.as_secs()).await {
                warn!(message_id = %message_id, error = %e, "could not set the retry delay; the queue's default applies");
            }
        }
        warn!(decision = "retry", message_id = %message_id, error_code = %failure.code, error = %failure.message,
              receive_count, retry_in_s = delay.as_secs());
        self.metrics.count(metrics::RETRIED, None);
        Outcome::Retry
    }

    /// DLQ first, then delete, then the ledger. If the DLQ refuses, the
    /// message stays on the work queue (reported as failed).
    async fn dead_letter(
        &self,
        message: &SqsMessage,
        trigger_id: Option<&str>,
        failure: &Failure,
    ) -> Outcome {
        let message_id = message.message_id.as_deref().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let attributes = string_attributes(message);
        if let Err(e) = self
            .dlq
            .send(body, &attributes, &failure.code, &failure.message)
            .await
        {
            error!(decision = "retry", message_id = %message_id, error_code = %failure.code, error = %e,
                   "could not dead-letter; the message stays on the work queue");
            return Outcome::Retry;
        }
        if let (Some(url), Some(receipt)) = (
            self.source_queue(message),
            message.receipt_handle.as_deref(),
        ) {
            if let Err(e) = self.deliveries.delete(&url, receipt).await {
                warn!(message_id = %message_id, error = %e, "dead-lettered but not deleted; the event source mapping deletes it");
            }
        }
        if let Some(trigger_id) = trigger_id {
            let now = self.clock.now_ms();
            if let Err(e) = self
                .table
                .triggers()
                .record_dead_lettered(trigger_id, &failure.code, &failure.message, now)
                .await
            {
                warn!(message_id = %message_id, trigger_id = %trigger_id, error = %e, "dead-lettered; the ledger still says queued");
            }
            self.dead_letter_run(trigger_id, &failure.code, &failure.message, now)
                .await;
        }
        warn!(decision = "dead_lettered", message_id = %message_id, trigger_id = trigger_id.unwrap_or("-"),
              error_code = %failure.code, error = %failure.message);
        self.metrics.count(metrics::DEAD_LETTERED, None);
        Outcome::Done
    }

    /// When the trigger opened a run that has not started, the run (and
    /// every trigger that joined it) is dead-lettered with it, and its lane
    /// freed. Replaying the opener revives it.
    async fn dead_letter_run(&self, run_id: &str, code: &str, reason: &str, now: u64) {
        match self
            .table
            .runs()
            .record_dead_lettered(run_id, code, reason, now)
            .await
        {
            Ok(None) => {}
            Ok(Some(run)) => {
                let runs = self.table.runs();
                let lane = match runs.free_lane(&run.target, run_id, now, None).await {
                    Ok(Some(lane)) => Ok(lane),
                    Ok(None) => runs.leave_queue(&run).await,
                    Err(e) => Err(e),
                };
                match lane {
                    Ok(lane) => {
                        shared::aws::lanes::wake_next(&self.table, &self.deliveries, &lane).await
                    }
                    Err(e) => {
                        warn!(run_id = %run_id, error = %e, "could not take the run out of its lane; the lane's poll will")
                    }
                }
                warn!(decision = "run_dead_lettered", run_id = %run_id,
                      "the run is dead-lettered with its opener");
            }
            Err(e) => {
                warn!(run_id = %run_id, error = %e, "could not mark the run dead-lettered; it stays pending")
            }
        }
    }

    fn source_queue(&self, message: &SqsMessage) -> Option<String> {
        message
            .event_source_arn
            .as_deref()
            .and_then(queue_url_from_arn)
    }
}

/// The lane poll's token this message carries, if it carries one.
fn poll_token(message: &SqsMessage) -> Option<&str> {
    message
        .message_attributes
        .get(POLL_TOKEN)
        .and_then(|v| v.string_value.as_deref())
}

/// The message's String attributes, kept when it is sent on.
fn string_attributes(message: &SqsMessage) -> Vec<(String, String)> {
    message
        .message_attributes
        .iter()
        .filter_map(|(name, value)| value.string_value.clone().map(|v| (name.clone(), v)))
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
