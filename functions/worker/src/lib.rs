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
//!
//! The rooms: `delivery.rs` reads a message once; this file takes it from
//! its body to its run; `lanes.rs` starts a run when its CodePipeline's lane
//! lets it (waiting, waking, the lane's poll, a stale holder settled);
//! `outcome.rs` says what became of it and `conclude.rs` logs and counts
//! it as one decision; `failures.rs` retries or dead-letters; `settle.rs`
//! is the scheduled settler.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use shared::aws::pipeline::PipelineStarter;
use shared::aws::queue::{DeadLetterQueue, Deliveries};
use shared::aws::table::runs::{Joined, Opening};
use shared::aws::table::{StoreError, Table};
use shared::aws::Lazy;
use shared::clock::Clock;
use shared::config::WorkerConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::inputs::{errors_text, InputValues};
use shared::rules::message::{MessageError, WorkMessage};
use shared::rules::retry::Failure;
use shared::rules::runs::{input_set_key, Lane, RunLane};
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::ceil_seconds;
use shared::rules::trigger::{
    canonical_trigger_id, ledger_expires_at, TriggerRecord, QUEUE_FULL, UNSETTLED,
};
use std::ops::ControlFlow;
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{error, info};

mod conclude;
mod delivery;
mod failures;
mod lanes;
mod outcome;
pub mod settle;

pub use delivery::{Delivery, POLL_TOKEN};
use outcome::Handled;
pub use outcome::Outcome;

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
        let delivery = Delivery::from_message(message);
        match parse_work(&delivery.body) {
            Ok((work, trigger_id)) => {
                let result = self.start(&work, &trigger_id, &delivery).await;
                self.conclude(&delivery, Some(&trigger_id), Some(&work.pipeline), result)
                    .await
            }
            Err(failure) => self.conclude(&delivery, None, None, Err(failure)).await,
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

    /// From a valid message to its trigger's run: joined (its opener
    /// starts it), or opened and started when its lane lets it.
    async fn start(
        &self,
        work: &WorkMessage,
        trigger_id: &str,
        delivery: &Delivery,
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
        let record = match self.record_to_run(trigger_id, work.unsettled, now).await? {
            ControlFlow::Continue(record) => record,
            ControlFlow::Break(handled) => return Ok(handled),
        };
        let inputs = self.inputs(work, &record.pipeline)?;
        let run_id = match self.run_of(&record, &inputs, delivery, now).await? {
            ControlFlow::Continue(run_id) => run_id,
            ControlFlow::Break(handled) => return Ok(handled),
        };
        if run_id != record.trigger_id {
            if record.lane() == RunLane::Key {
                self.promote(&run_id).await?;
            }
            return Ok(Handled::Joined { run_id });
        }
        let variables: Vec<(String, String)> = inputs
            .iter()
            .map(|(name, value)| (name.clone(), value.variable_value()))
            .collect();
        self.start_run(&record, &variables, delivery).await
    }

    /// The trigger's record while it is still to run; otherwise what became
    /// of it (none, started, refused, in the DLQ, or given back now because
    /// its client was told 503).
    async fn record_to_run(
        &self,
        trigger_id: &str,
        unsettled: bool,
        now: u64,
    ) -> Result<ControlFlow<Handled, TriggerRecord>, Failure> {
        let Some(record) = self
            .table
            .triggers()
            .get(trigger_id, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(ControlFlow::Break(Handled::NoRecord));
        };
        if let Some(execution_id) = record.execution_id {
            return Ok(ControlFlow::Break(Handled::AlreadyStarted {
                execution_id,
                lane: None,
            }));
        }
        match record.status {
            TriggerStatus::Refused => return Ok(ControlFlow::Break(Handled::NoRecord)),
            TriggerStatus::DeadLettered => {
                return Ok(ControlFlow::Break(Handled::InTheDlq {
                    lane: record.target.clone(),
                }))
            }
            _ => {}
        }
        if unsettled {
            let given_back = self
                .table
                .admission()
                .refuse(&record, UNSETTLED, now, now)
                .await
                .map_err(unavailable)?;
            return Ok(ControlFlow::Break(if given_back {
                Handled::GivenBack
            } else {
                Handled::NoRecord
            }));
        }
        Ok(ControlFlow::Continue(record))
    }

    /// The run the trigger belongs to: the one it already joined or opened
    /// (a redelivery), else the pending run of its input set, else a new
    /// one (refused when its pipeline's queue is full).
    async fn run_of(
        &self,
        record: &TriggerRecord,
        inputs: &InputValues,
        delivery: &Delivery,
        now: u64,
    ) -> Result<ControlFlow<Handled, String>, Failure> {
        if let Some(run_id) = &record.run_id {
            return Ok(ControlFlow::Continue(run_id.clone()));
        }
        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
        let bound = self
            .config
            .settings
            .bound(&self.config.pipelines, &record.target);
        let opening = Opening {
            max_pending: bound.max_pending,
            anonymous_max: bound.anonymous_max(),
            lane: record.lane(),
            wake: delivery.wake(),
        };
        // Triggers join the pending run of their input set; without
        // coalescing each is a run of its own, in the same queue.
        let set_key = match self.config.settings.of(&record.pipeline).coalesce {
            true => input_set_key(inputs),
            false => record.trigger_id.clone(),
        };
        match self
            .table
            .runs()
            .join_or_open(record, &set_key, &opening, now, expires_at)
            .await
            .map_err(unavailable)?
        {
            Joined::NoRecord => Ok(ControlFlow::Break(Handled::NoRecord)),
            Joined::Joined(run_id) | Joined::Opened(run_id) => Ok(ControlFlow::Continue(run_id)),
            Joined::QueueFull(lane) => {
                Ok(ControlFlow::Break(self.refuse(record, &lane, now).await?))
            }
        }
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
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
