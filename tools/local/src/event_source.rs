//! The event source mapping's part: long-poll the work queue, hand each batch
//! to the worker as the SQS event Lambda builds, delete the messages the
//! worker did not name as failures, and leave the failures on the queue for
//! SQS to deliver again once their visibility timeout (set by the worker to
//! its retry delay) runs out. Redrive to the DLQ is the queue's own.

use super::console::Console;
use crate::stopping::{acknowledge, receive, Stopping};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use shared::aws::queue::Deliveries;
use shared::aws::table::Table;
use shared::clock::Clock;
use shared::rules::message::WorkMessage;
use shared::rules::status::RunStatus;
use shared::rules::status::TriggerStatus;
use std::collections::HashSet;
use std::sync::Arc;
use testkit::events::sqs_event;
use tracing::warn;
use worker::Worker;

pub struct EventSource {
    /// The chaos run's faults: a worker killed part way.
    pub chaos: Option<Arc<crate::faults::Chaos>>,
    pub worker: Arc<Worker>,
    pub queues: Arc<Deliveries>,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// Reads each trigger's record after the batch, for the hop lines.
    pub table: Table,
    pub max_attempts: u64,
    pub console: Console,
    pub clock: Arc<dyn Clock>,
}

impl EventSource {
    /// Polls until `stopping` fires; a batch in flight is finished first.
    /// Messages are received with the queue's own visibility timeout.
    pub async fn run(self, stopping: Stopping) {
        while let Some(messages) = receive(&self.queues, &self.queue_url, None, &stopping).await {
            if !messages.is_empty() {
                self.deliver(&messages).await;
            }
        }
    }

    /// One invocation of the worker for one batch.
    async fn deliver(&self, messages: &[aws_sdk_sqs::types::Message]) {
        let event = sqs_event(messages, &self.queue_arn, &self.region);
        let handled = crate::faults::invoke(
            self.chaos.as_deref(),
            "worker killed mid-batch",
            self.worker.handle(event),
        )
        .await;
        let Some(handled) = handled else {
            // Killed: nothing is deleted; the batch comes back when its
            // visibility timeout runs out, as after a crash (the chaos run
            // shortens the queue's 180 s to 3).
            for message in messages {
                if let Some(receipt) = message.receipt_handle() {
                    let _ = self.queues.delay(&self.queue_url, receipt, 3).await;
                }
            }
            return;
        };
        let failed: HashSet<String> = match handled {
            Ok(response) => response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier)
                .collect(),
            Err(e) => {
                // A failed invocation: the whole batch comes back.
                warn!(error = %e, "the worker failed the invocation; the batch will be delivered again");
                messages
                    .iter()
                    .filter_map(|m| m.message_id().map(str::to_string))
                    .collect()
            }
        };
        let done: Vec<&aws_sdk_sqs::types::Message> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .collect();
        acknowledge(&self.queues, &self.queue_url, &done).await;
        for message in messages {
            let retried = failed.contains(message.message_id().unwrap_or_default());
            self.report(message, retried).await;
        }
    }

    /// The hop line of one message: what the worker made of it.
    async fn report(&self, message: &aws_sdk_sqs::types::Message, retried: bool) {
        let receive_count: u64 = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let trigger_id = WorkMessage::parse(message.body().unwrap_or_default())
            .ok()
            .map(|m| m.trigger_id);
        let now = self.clock.now_ms();
        let record = match &trigger_id {
            Some(id) => self.table.triggers().get(id, now).await.ok().flatten(),
            None => None,
        };
        let run = match record.as_ref().and_then(|r| r.run_id.as_deref()) {
            Some(run_id) => self.table.runs().get(run_id).await.ok().flatten(),
            None => None,
        };
        let attempt = format!("attempt {receive_count} of {}", self.max_attempts);
        let what = match (&record, retried) {
            (_, true) => format!(
                "{attempt} failed; back on the queue after its retry delay (reason in the worker's log)"
            ),
            (Some(r), false) if r.status == TriggerStatus::DeadLettered => format!(
                "dead-lettered on {attempt}: {}: {}",
                r.error_code.as_deref().unwrap_or("?"),
                r.error_message.as_deref().unwrap_or("?")
            ),
            (Some(r), false) => match (&run, &r.execution_id) {
                (Some(run), _) if run.run_id != r.trigger_id => format!(
                    "joined the pending run of trigger {} ({} triggers so far): no execution of its own",
                    run.run_id, run.triggers
                ),
                (Some(run), _) => match (&run.execution_id, run.status) {
                    (Some(execution), _) => format!(
                        "started {} execution {execution} for a run of {} trigger(s)",
                        run.target, run.triggers
                    ),
                    (None, RunStatus::DeadLettered) => "dead-lettered with its run".to_string(),
                    (None, _) => format!(
                        "opened a run ({} trigger(s)); it waits while {} runs another run, and looks again shortly",
                        run.triggers, run.target
                    ),
                },
                (None, Some(execution)) => format!("started {} execution {execution}", r.target),
                (None, None) => format!("done ({})", r.status.as_str()),
            },
            (None, false) if trigger_id.is_some() => {
                "done: no trigger record (expired or refunded)".to_string()
            }
            (None, false) => "dead-lettered: not a work message".to_string(),
        };
        self.console
            .hop(now, trigger_id.as_deref(), "worker", &what);
    }
}
