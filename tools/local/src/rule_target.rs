//! The rule target's part: events the rule matched arrive on a queue (the
//! emulator cannot invoke a Lambda), and each is handed to the notifier as
//! EventBridge hands it to the Lambda. An event the notifier fails stays on
//! the queue and comes back after [`EVENT_VISIBILITY_S`]; when its
//! [`EVENT_DELIVERIES`]th delivery fails too, it goes to the events DLQ
//! wrapped as Lambda's on-failure destination wraps it (`requestPayload`,
//! `RetriesExhausted`, the error), as Lambda's async retries and its failure
//! destination do.

use super::console::Console;
use super::resources::{EVENT_DELIVERIES, EVENT_VISIBILITY_S};
use crate::stopping::{acknowledge, receive, Stopping};
use notifier::{Notifier, NotifierError, Outcome};
use serde_json::Value;
use shared::aws::queue::Deliveries;
use shared::aws::table::Table;
use shared::clock::Clock;
use shared::rules::pipeline_event::{parse_codepipeline_event, CodePipelineEvent};
use std::sync::Arc;

pub struct RuleTarget {
    /// The chaos run's faults: events twice or later, a notifier killed.
    pub chaos: Option<Arc<crate::faults::Chaos>>,
    pub notifier: Arc<Notifier>,
    pub queues: Arc<Deliveries>,
    pub queue_url: String,
    /// Where an event goes when its last delivery failed.
    pub dlq_url: String,
    /// Finds the trigger of an execution, for the hop lines.
    pub table: Table,
    pub console: Console,
    pub clock: Arc<dyn Clock>,
}

/// The event a message carries.
fn event_of(message: &aws_sdk_sqs::types::Message) -> Value {
    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null)
}

impl RuleTarget {
    /// How many times the queue has delivered `message`, this time included.
    fn deliveries_of(&self, message: &aws_sdk_sqs::types::Message) -> u32 {
        message
            .attributes()
            .and_then(|a| {
                a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    /// Puts `event` on the events DLQ as Lambda's on-failure destination does.
    async fn to_dlq(&self, event: &Value, error: &notifier::NotifierError) -> Result<(), String> {
        let record = serde_json::json!({
            "version": "1.0",
            "timestamp": shared::rules::time_format::rfc3339(self.clock.now_ms()),
            "requestContext": {
                "requestId": ulid::Ulid::new().to_string(),
                "functionArn": "arn:aws:lambda:local:123456789012:function:notifier:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": EVENT_DELIVERIES,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": error.error_type(), "errorMessage": error.to_string()},
        });
        self.queues
            .send_later(&self.dlq_url, &record.to_string(), &[], 0)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn run(self, stopping: Stopping) {
        while let Some(messages) = receive(
            &self.queues,
            &self.queue_url,
            Some(EVENT_VISIBILITY_S),
            &stopping,
        )
        .await
        {
            for message in &messages {
                self.deliver(message).await;
            }
        }
    }

    async fn deliver(&self, message: &aws_sdk_sqs::types::Message) {
        let event: Value =
            serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
        let (execution_id, state) = match parse_codepipeline_event(&event) {
            Ok(CodePipelineEvent::Execution(e)) => (Some(e.execution_id), e.state.as_str()),
            Ok(CodePipelineEvent::Stage(e)) => (Some(e.execution_id), e.state.as_str()),
            Err(_) => (None, "?"),
        };
        let trigger_id = match &execution_id {
            Some(execution_id) => self
                .table
                .triggers()
                .execution_owner(execution_id)
                .await
                .ok()
                .flatten()
                .map(|o| o.trigger_id),
            None => None,
        };
        let Some(result) = self.hand(message, event.clone()).await else {
            return;
        };
        let what = match &result {
            Ok(outcome) => said(outcome, state),
            Err(e) if self.deliveries_of(message) >= EVENT_DELIVERIES => {
                match self.to_dlq(&event_of(message), e).await {
                    Ok(()) => {
                        acknowledge(&self.queues, &self.queue_url, &[message]).await;
                        format!("{state}: failed ({e}) on its last delivery; in the events DLQ (trigger-ops events replay)")
                    }
                    Err(reason) => format!("{state}: failed ({e}); could not reach the events DLQ ({reason}); delivered again"),
                }
            }
            Err(e) => format!("{state}: failed ({e}); the event will be delivered again"),
        };
        self.console.hop(
            self.clock.now_ms(),
            trigger_id.as_deref(),
            "notifier",
            &what,
        );
        if result.is_ok() {
            acknowledge(&self.queues, &self.queue_url, &[message]).await;
        }
    }
    /// Hands the event to the notifier as EventBridge would under the
    /// chaos run's fate for it: delivered, delivered twice at once, or
    /// held back; `None` when it comes back later (held, or the notifier
    /// killed mid-event).
    async fn hand(
        &self,
        message: &aws_sdk_sqs::types::Message,
        event: Value,
    ) -> Option<Result<Outcome, NotifierError>> {
        let fate = self
            .chaos
            .as_deref()
            .map_or(crate::faults::EventFate::Deliver, |c| c.event_fate());
        match fate {
            crate::faults::EventFate::Later(seconds) => {
                // Back after `seconds`, behind the events sent meanwhile.
                if let Some(receipt) = message.receipt_handle() {
                    let _ = self.queues.delay(&self.queue_url, receipt, seconds).await;
                }
                None
            }
            crate::faults::EventFate::Twice => {
                let (first, second) = tokio::join!(
                    self.notifier.handle(event.clone()),
                    self.notifier.handle(event)
                );
                // The delivery Lambda answers is the first; the second is
                // EventBridge's at-least-once.
                let _ = second;
                Some(first)
            }
            crate::faults::EventFate::Deliver => {
                match crate::faults::invoke(
                    self.chaos.as_deref(),
                    "notifier killed mid-event",
                    self.notifier.handle(event),
                )
                .await
                {
                    Some(result) => Some(result),
                    // Killed: the event comes back when its visibility runs
                    // out (the chaos run shortens the 30 s to 3).
                    None => {
                        if let Some(receipt) = message.receipt_handle() {
                            let _ = self.queues.delay(&self.queue_url, receipt, 3).await;
                        }
                        None
                    }
                }
            }
        }
    }
}

/// What the notifier did with an event, for the console.
fn said(outcome: &Outcome, state: &str) -> String {
    match outcome {
        Outcome::Notified { .. } => format!("{state}: e-mail sent to on-call"),
        Outcome::Duplicate { .. } => {
            format!("{state}: delivered again; the e-mail went out before")
        }
        Outcome::NotNotified { state, .. } => {
            format!("{state}: recorded; no e-mail (not in NOTIFY_STATES)")
        }
        Outcome::Stage {
            stage,
            state,
            recorded,
            ..
        } => format!(
            "stage {stage} {state}: {}",
            if *recorded {
                "recorded"
            } else {
                "nothing newer to record"
            }
        ),
        Outcome::Ignored { reason } => format!("ignored: {reason}"),
    }
}
