//! The worker handler: an SQS batch in, one pipeline start per trigger, and a
//! partial batch response naming only the messages that must come back.
//!
//! Per message: parse → allowlist → ledger (an execution already recorded means
//! a redelivery: acknowledge) → `StartPipelineExecution` with the trigger id as
//! `clientRequestToken` → record `started`. Transient failures come back later
//! (visibility doubled per delivery); permanent ones, and the last attempt, go
//! to the DLQ with their reason — sent before the delete, so a crash in between
//! can duplicate a DLQ entry, never lose one.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use shared::aws::pipeline::PipelineStarter;
use shared::aws::queue::{queue_url_from_arn, DeadLetterQueue, Deliveries};
use shared::aws::table::{StartRecord, Table};
use shared::clock::Clock;
use shared::config::WorkerConfig;
use shared::rules::inputs::errors_text;
use shared::rules::message::{MessageError, WorkMessage};
use shared::rules::retry::{retry_delay, Failure, FailureKind};
use shared::rules::trigger::{canonical_trigger_id, ledger_expires_at};
use std::sync::Arc;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

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
    Started { execution_id: String },
    AlreadyStarted { execution_id: String },
    NoRecord,
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
        sqs: aws_sdk_sqs::Client,
        codepipeline: aws_sdk_codepipeline::Client,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            table: Table::new(dynamodb, config.table_name.clone()),
            starter: PipelineStarter::new(codepipeline),
            deliveries: Deliveries::new(sqs.clone()),
            dlq: DeadLetterQueue::new(sqs, config.dlq_url.clone()),
            config,
            clock,
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
        let result = match parsed {
            Ok((work, trigger_id)) => self.start(&work, &trigger_id).await,
            Err(failure) => Err(failure),
        };
        let trigger = trigger_id.as_deref().unwrap_or("-");
        match result {
            Ok(Handled::Started { execution_id }) => {
                info!(decision = "started", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id, receive_count);
                Outcome::Done
            }
            Ok(Handled::AlreadyStarted { execution_id }) => {
                info!(decision = "duplicate", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id,
                      "trigger already has an execution; acknowledged without starting again");
                Outcome::Done
            }
            Ok(Handled::NoRecord) => {
                warn!(decision = "skipped", message_id = %message_id, trigger_id = %trigger,
                      "no trigger record (quota given back, or expired); not started");
                Outcome::Done
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
    /// pipeline declares (whoever wrote the message), as CodePipeline
    /// variables; a message that does not pass goes to the DLQ.
    fn variables(
        &self,
        work: &WorkMessage,
        public: &str,
    ) -> Result<Vec<(String, String)>, Failure> {
        let given = work.inputs.clone().map(serde_json::Value::Object);
        let values = self
            .config
            .settings
            .of(public)
            .inputs
            .resolve(given.as_ref())
            .map_err(|errors| {
                Failure::permanent("InvalidInputs", truncate(&errors_text(&errors), 500))
            })?;
        Ok(values
            .iter()
            .map(|(name, value)| (name.clone(), value.variable_value()))
            .collect())
    }

    async fn start(&self, work: &WorkMessage, trigger_id: &str) -> Result<Handled, Failure> {
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
        let unavailable = |e: shared::aws::table::StoreError| {
            Failure::transient("TableUnavailable", e.to_string())
        };
        let Some(record) = self
            .table
            .get_trigger(trigger_id, now)
            .await
            .map_err(unavailable)?
        else {
            return Ok(Handled::NoRecord);
        };
        if let Some(execution_id) = record.execution_id {
            return Ok(Handled::AlreadyStarted { execution_id });
        }
        let variables = self.variables(work, &record.pipeline)?;
        let execution_id = self
            .starter
            .start(&work.pipeline, trigger_id, &variables)
            .await?;
        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
        match self
            .table
            .record_started(trigger_id, &execution_id, now, expires_at)
            .await
            .map_err(unavailable)?
        {
            StartRecord::Recorded => Ok(Handled::Started { execution_id }),
            StartRecord::MissingRecord => Ok(Handled::NoRecord),
            StartRecord::OtherExecution(existing) => Ok(Handled::AlreadyStarted {
                execution_id: existing,
            }),
        }
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
        let attributes: Vec<(String, String)> = message
            .message_attributes
            .iter()
            .filter_map(|(name, value)| value.string_value.clone().map(|v| (name.clone(), v)))
            .collect();
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
                .record_dead_lettered(trigger_id, &failure.code, &failure.message, now)
                .await
            {
                warn!(message_id = %message_id, trigger_id = %trigger_id, error = %e, "dead-lettered; the ledger still says queued");
            }
        }
        warn!(decision = "dead_lettered", message_id = %message_id, trigger_id = trigger_id.unwrap_or("-"),
              error_code = %failure.code, error = %failure.message);
        Outcome::Done
    }

    fn source_queue(&self, message: &SqsMessage) -> Option<String> {
        message
            .event_source_arn
            .as_deref()
            .and_then(queue_url_from_arn)
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
