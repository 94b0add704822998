//! `trigger-ops events`: the notifier's dead-letter queue. Two shapes reach
//! it: the EventBridge rule target's DLQ keeps the event as it was sent (the
//! reason in the attributes `ERROR_CODE` and `ERROR_MESSAGE`), and the
//! notifier's asynchronous on-failure destination wraps it (`requestPayload`,
//! with `requestContext.condition` and `responsePayload.errorMessage`).
//!
//! Replaying invokes the notifier with the original event and deletes the
//! message only once the notifier accepted it. The notifier keeps one
//! e-mail per event id, so a replay of an event whose e-mail went out is a
//! duplicate, never a second e-mail.

use crate::dlq::{queue_error, split_new, Queues, STATS_SCAN, WORK_HOLD_S};
use crate::error::OpsError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde::Serialize;
use serde_json::Value;
use shared::aws::queue::BATCH;
use shared::rules::pipeline_event::{parse_codepipeline_event, CodePipelineEvent};
use shared::rules::time_format::rfc3339;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which of the two shapes a dead event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The rule target's DLQ: the event itself.
    EventBridge,
    /// Lambda's on-failure destination: the event in `requestPayload`.
    Lambda,
    /// Neither: shown, never replayed.
    Unreadable,
}

/// One message of the events DLQ, as operators read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadEvent {
    pub message_id: String,
    pub shape: Shape,
    pub event_id: Option<String>,
    pub pipeline: Option<String>,
    pub execution_id: Option<String>,
    /// The execution's state, or the stage's (`Build STARTED`).
    pub state: Option<String>,
    /// Why it failed, as the DLQ says.
    pub reason: Option<String>,
    pub receive_count: u64,
    pub first_sent_at: Option<String>,
    pub age_seconds: Option<u64>,
    /// The event to hand the notifier again.
    #[serde(skip)]
    pub event: Option<Value>,
}

impl DeadEvent {
    /// Reads a message of the events DLQ (pure).
    pub fn from_sqs(message: &Message, now_ms: u64) -> Self {
        let system = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(|v| shared::rules::text::printable(v).into_owned())
        };
        let body: Value =
            serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
        let (shape, event, reason) = if body.get("requestPayload").is_some() {
            let condition = body["requestContext"]["condition"]
                .as_str()
                .unwrap_or("failed");
            let error = body["responsePayload"]["errorMessage"]
                .as_str()
                .or_else(|| body["responseContext"]["functionError"].as_str())
                .unwrap_or("no error message");
            (
                Shape::Lambda,
                Some(body["requestPayload"].clone()),
                Some(format!("{condition}: {error}")),
            )
        } else if body.get("detail-type").is_some() {
            let reason = match (attribute("ERROR_CODE"), attribute("ERROR_MESSAGE")) {
                (Some(code), Some(text)) => Some(format!("{code}: {text}")),
                (code, text) => code.or(text),
            };
            (Shape::EventBridge, Some(body), reason)
        } else {
            (Shape::Unreadable, None, None)
        };
        let parsed = event.as_ref().map(parse_codepipeline_event);
        let (event_id, pipeline, execution_id, state) = match parsed {
            Some(Ok(CodePipelineEvent::Execution(e))) => (
                Some(e.event_id),
                Some(e.pipeline),
                Some(e.execution_id),
                Some(e.state.as_str().to_string()),
            ),
            Some(Ok(CodePipelineEvent::Stage(e))) => (
                Some(e.event_id),
                Some(e.pipeline),
                Some(e.execution_id),
                Some(format!("{} {}", e.stage, e.state.as_str())),
            ),
            _ => (None, None, None, None),
        };
        let sent_ms = system(MessageSystemAttributeName::SentTimestamp);
        // Only a pipeline event that parses is ever handed to the notifier.
        let shape = if event_id.is_some() {
            shape
        } else {
            Shape::Unreadable
        };
        Self {
            message_id: message.message_id().unwrap_or_default().to_string(),
            shape,
            event_id,
            pipeline,
            execution_id,
            state,
            reason: reason.map(|r| r.chars().take(300).collect()),
            receive_count: system(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(0),
            first_sent_at: sent_ms.map(rfc3339),
            age_seconds: sent_ms.map(|sent| now_ms.saturating_sub(sent) / 1000),
            event: event.filter(|_| shape != Shape::Unreadable),
        }
    }
}

/// Hands an event to the notifier: `Ok` once it accepted it.
pub struct Notifier {
    pub lambda: aws_sdk_lambda::Client,
    pub function: String,
}

impl Notifier {
    async fn invoke(&self, event: &Value) -> Result<(), String> {
        let answer = self
            .lambda
            .invoke()
            .function_name(&self.function)
            .payload(aws_smithy_types::Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|e| shared::aws::describe(&e))?;
        match answer.function_error() {
            None if answer.status_code() == 200 => Ok(()),
            error => {
                let payload = answer
                    .payload()
                    .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                    .unwrap_or_default();
                Err(format!(
                    "the notifier failed ({}): {}",
                    error.unwrap_or("status"),
                    shared::rules::text::printable(&payload.chars().take(300).collect::<String>())
                ))
            }
        }
    }
}

/// What `events replay` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventsReplay {
    pub dry_run: bool,
    pub replayed: u64,
    pub failed: u64,
    pub unreadable: u64,
    pub stopped_early: bool,
    /// What the events DLQ holds once the replay ended; `None` when it
    /// could not be counted.
    pub left: Option<u64>,
    pub events: Vec<DeadEvent>,
    pub failures: Vec<String>,
}

impl Queues {
    /// The events DLQ's messages, oldest first, none consumed.
    pub async fn peek_events(&self, url: &str, max: usize) -> Result<Vec<DeadEvent>, OpsError> {
        let mut shown = self.look(url, max, DeadEvent::from_sqs).await?;
        shown.sort_by_key(|e| e.age_seconds.map(|a| u64::MAX - a).unwrap_or(u64::MAX));
        Ok(shown)
    }

    /// Age in seconds of the oldest of the first [`STATS_SCAN`] messages.
    pub async fn oldest_event_age(&self, url: &str) -> Result<Option<u64>, OpsError> {
        let events = self.peek_events(url, STATS_SCAN).await?;
        Ok(events.iter().filter_map(|e| e.age_seconds).max())
    }

    /// Hands up to `max` dead events to the notifier, one at a time;
    /// deletes each once the notifier accepted it. Unreadable messages and
    /// failures stay on the DLQ. Stops after the event in flight when
    /// `stop` is set.
    pub async fn replay_events(
        &self,
        url: &str,
        notifier: Option<&Notifier>,
        max: Option<u64>,
        stop: &AtomicBool,
    ) -> Result<EventsReplay, OpsError> {
        let mut summary = EventsReplay {
            dry_run: notifier.is_none(),
            ..EventsReplay::default()
        };
        let limit = self.replay_limit("events DLQ", url, max).await?;
        let mut seen = HashSet::new();
        let mut held: Vec<Message> = Vec::new();
        loop {
            let (fresh, back) = split_new(self.receive(url, BATCH, WORK_HOLD_S).await?, &mut seen);
            held.extend(back);
            if fresh.is_empty() {
                break;
            }
            for message in fresh {
                let handled = if summary.dry_run {
                    summary.events.len() as u64
                } else {
                    summary.replayed + summary.failed
                };
                if stop.load(Ordering::SeqCst) || handled >= limit {
                    summary.stopped_early = stop.load(Ordering::SeqCst);
                    held.push(message);
                    continue;
                }
                let dead = DeadEvent::from_sqs(&message, self.clock.now_ms());
                let (Some(event), Some(notifier)) = (dead.event.clone(), notifier) else {
                    if dead.shape == Shape::Unreadable {
                        summary.unreadable += 1;
                    } else {
                        summary.events.push(dead);
                    }
                    held.push(message);
                    continue;
                };
                self.hand_over(
                    url,
                    message,
                    dead,
                    &event,
                    notifier,
                    &mut summary,
                    &mut held,
                )
                .await;
            }
            let handled = summary.replayed + summary.failed + summary.events.len() as u64;
            if stop.load(Ordering::SeqCst) || handled >= limit {
                break;
            }
        }
        self.deliveries.release(url, &held).await;
        if !summary.dry_run {
            summary.left = self.left(url).await;
        }
        Ok(summary)
    }

    /// Hands one dead event to the notifier: deleted once it accepted it,
    /// else held on the DLQ with the reason.
    #[allow(clippy::too_many_arguments)]
    async fn hand_over(
        &self,
        url: &str,
        message: Message,
        dead: DeadEvent,
        event: &serde_json::Value,
        notifier: &Notifier,
        summary: &mut EventsReplay,
        held: &mut Vec<Message>,
    ) {
        match notifier.invoke(event).await {
            Ok(()) => {
                if let Err(e) = self.deliveries.delete_batch(url, &[&message]).await {
                    summary.failures.push(format!(
                        "event {} handled but not deleted ({e:?}): a replay again is a duplicate, not a second e-mail",
                        dead.event_id.as_deref().unwrap_or("?")
                    ));
                }
                summary.replayed += 1;
                summary.events.push(dead);
            }
            Err(reason) => {
                summary.failed += 1;
                summary.failures.push(format!(
                    "event {}: {reason}; it stays on the DLQ",
                    dead.event_id.as_deref().unwrap_or("?")
                ));
                held.push(message);
            }
        }
    }
}

/// Checks the queue exists and can be reached.
pub async fn check(queues: &Queues, url: &str) -> Result<(), OpsError> {
    queues
        .deliveries
        .check(url)
        .await
        .map_err(queue_error("events DLQ", url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;
    use serde_json::json;
    use shared::rules::pipeline_event::state_change_event;
    use shared::rules::status::PipelineState;

    fn event() -> Value {
        state_change_event(
            "ev-1",
            "eu-west-1",
            "123456789012",
            "app",
            "ex-1",
            PipelineState::Succeeded,
            "2026-11-21T10:04:12Z",
        )
    }

    fn message(body: &str) -> aws_sdk_sqs::types::builders::MessageBuilder {
        Message::builder()
            .message_id("m-1")
            .body(body)
            .attributes(MessageSystemAttributeName::SentTimestamp, "1795000000000")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
    }

    #[test]
    fn reads_the_rule_targets_dlq_shape() {
        let attribute = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .unwrap()
        };
        let m = message(&event().to_string())
            .message_attributes("ERROR_CODE", attribute("SDK_CLIENT_ERROR"))
            .message_attributes("ERROR_MESSAGE", attribute("Lambda throttled\u{202E}"))
            .build();
        let dead = DeadEvent::from_sqs(&m, 1_795_000_060_000);
        assert_eq!(dead.shape, Shape::EventBridge);
        assert_eq!(dead.event_id.as_deref(), Some("ev-1"));
        assert_eq!(
            (dead.pipeline.as_deref(), dead.state.as_deref()),
            (Some("app"), Some("SUCCEEDED"))
        );
        assert_eq!(
            dead.reason.as_deref(),
            Some("SDK_CLIENT_ERROR: Lambda throttled\\u{202E}")
        );
        assert_eq!(dead.age_seconds, Some(60));
        assert_eq!(dead.event, Some(event()));
    }

    #[test]
    fn reads_lambdas_on_failure_shape() {
        let record = json!({
            "version": "1.0", "timestamp": "2026-11-21T10:10:00.000Z",
            "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:eu-west-1:1:function:n:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event(),
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "NotYetRecorded", "errorMessage": "execution ex-1 is not recorded yet"}
        });
        let dead = DeadEvent::from_sqs(&message(&record.to_string()).build(), 0);
        assert_eq!(dead.shape, Shape::Lambda);
        assert_eq!(dead.execution_id.as_deref(), Some("ex-1"));
        assert_eq!(
            dead.reason.as_deref(),
            Some("RetriesExhausted: execution ex-1 is not recorded yet")
        );
        assert_eq!(dead.event, Some(event()));
    }

    #[test]
    fn anything_else_is_shown_and_never_replayed() {
        for body in [
            "",
            "not json",
            "{}",
            r#"{"requestPayload": {"x": 1}}"#,
            r#"{"detail-type": "Other"}"#,
        ] {
            let dead = DeadEvent::from_sqs(&message(body).build(), 0);
            assert_eq!(
                (dead.shape, dead.event.is_none()),
                (Shape::Unreadable, true),
                "{body}"
            );
        }
    }
}
