//! The rule target's part: events the rule matched arrive on a queue (the
//! emulator cannot invoke a Lambda), and each is handed to the notifier as
//! EventBridge hands it to the Lambda. An event the notifier fails stays on
//! the queue and comes back after [`EVENT_VISIBILITY_S`]; after
//! [`super::resources::EVENT_DELIVERIES`] deliveries the queue moves it to the
//! events DLQ, as Lambda's async retries and its failure destination do.

use super::console::Console;
use super::resources::EVENT_VISIBILITY_S;
use super::{acknowledge, receive, Stopping};
use notifier::{Notifier, Outcome};
use serde_json::Value;
use shared::aws::queue::Deliveries;
use shared::aws::table::Table;
use shared::clock::Clock;
use shared::rules::pipeline_event::{parse_codepipeline_event, CodePipelineEvent};
use std::sync::Arc;

pub struct RuleTarget {
    pub notifier: Notifier,
    pub queues: Arc<Deliveries>,
    pub queue_url: String,
    /// Finds the trigger of an execution, for the hop lines.
    pub table: Table,
    pub console: Console,
    pub clock: Arc<dyn Clock>,
}

impl RuleTarget {
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
        let result = self.notifier.handle(event).await;
        let what = match &result {
            Ok(Outcome::Notified { .. }) => format!("{state}: e-mail sent to on-call"),
            Ok(Outcome::Duplicate { .. }) => {
                format!("{state}: delivered again; the e-mail went out before")
            }
            Ok(Outcome::NotNotified { state, .. }) => {
                format!("{state}: recorded; no e-mail (not in NOTIFY_STATES)")
            }
            Ok(Outcome::Stage {
                stage,
                state,
                recorded,
                ..
            }) => format!(
                "stage {stage} {state}: {}",
                if *recorded {
                    "recorded"
                } else {
                    "nothing newer to record"
                }
            ),
            Ok(Outcome::Ignored { reason }) => format!("ignored: {reason}"),
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
}
