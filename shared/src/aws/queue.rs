//! The SQS adapter: the work queue (the ingress sends), the dead-letter
//! queue (the worker gives up), and [`Deliveries`], everything done to
//! received messages on any queue (the worker, the operators' tool and the
//! local stack share it).

use crate::aws::{describe, Lazy};
use crate::rules::message::WorkMessage;
use crate::rules::runs::Wake;
use aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message,
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

impl QueueError {
    /// The queue could not even be connected to, so nothing was sent (as
    /// opposed to a call that may have been carried out without its answer
    /// arriving, or a `500` after which SQS may have kept the message).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unavailable(detail) if detail == crate::aws::CONNECTION_FAILED)
    }
}

/// Every SQS error is the queue being unavailable, described for logs.
impl<E, R> From<SdkError<E, R>> for QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    fn from(err: SdkError<E, R>) -> Self {
        Self::Unavailable(describe(&err))
    }
}

/// One queue, by its URL: what [`WorkQueue`] and [`DeadLetterQueue`] send
/// to.
#[derive(Debug, Clone)]
struct QueueAt {
    client: Lazy<aws_sdk_sqs::Client>,
    url: String,
}

impl QueueAt {
    fn new(client: impl Into<Lazy<aws_sdk_sqs::Client>>, url: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            url: url.into(),
        }
    }

    /// A message of `body` to this queue, for the caller to add to and send.
    fn message(&self, body: impl Into<String>) -> SendMessageFluentBuilder {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
    }
}

/// Sends `request`; returns the SQS message id.
async fn send(request: SendMessageFluentBuilder) -> Result<String, QueueError> {
    let output = request.send().await?;
    Ok(output.message_id().unwrap_or_default().to_string())
}

#[derive(Debug, Clone)]
pub struct WorkQueue(QueueAt);

impl WorkQueue {
    pub fn new(client: impl Into<Lazy<aws_sdk_sqs::Client>>, url: impl Into<String>) -> Self {
        Self(QueueAt::new(client, url))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Enqueues a trigger; returns the SQS message id.
    pub async fn send(&self, message: &WorkMessage) -> Result<String, QueueError> {
        send(self.0.message(message.to_json())).await
    }
}

/// Turns an SQS queue ARN (`arn:aws:sqs:<region>:<account>:<name>`, as in
/// `eventSourceARN`) into its queue URL.
pub fn queue_url_from_arn(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sqs", region, account, name]
            if !name.is_empty() && !account.is_empty() =>
        {
            let domain = if partition.starts_with("aws-cn") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
        }
        _ => None,
    }
}

/// SQS's batch limit.
pub const BATCH: usize = 10;

/// How a receive asks.
#[derive(Debug, Clone, Copy)]
pub struct Receive {
    /// At most this many (1 to [`BATCH`]).
    pub max: usize,
    /// Long-poll this long (0 to 20 s): an empty answer then means an
    /// empty queue, not a sampled one.
    pub wait_s: i32,
    /// Hold what is received this long; `None`: the queue's own timeout.
    pub hold_s: Option<i32>,
}

/// Counts SQS keeps for a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    pub url: String,
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

/// Everything done to messages on any queue: receive them (with every
/// attribute), release them, delay them, delete them, send them again. The
/// worker, the operators' tool and the local stack all go through it.
#[derive(Debug, Clone)]
pub struct Deliveries {
    client: Lazy<aws_sdk_sqs::Client>,
}

impl Deliveries {
    pub fn new(client: impl Into<Lazy<aws_sdk_sqs::Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// Fails clearly when the queue does not exist or cannot be reached.
    pub async fn check(&self, queue_url: &str) -> Result<(), QueueError> {
        self.client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?;
        Ok(())
    }

    /// Visible, in-flight and delayed counts.
    pub async fn counts(&self, queue_url: &str) -> Result<QueueCounts, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await?;
        let count = |name: QueueAttributeName| {
            output
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueCounts {
            url: queue_url.to_string(),
            visible: count(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }

    /// Receives with every system and message attribute.
    pub async fn receive(&self, queue_url: &str, how: Receive) -> Result<Vec<Message>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(how.max.clamp(1, BATCH) as i32)
            .wait_time_seconds(how.wait_s)
            .set_visibility_timeout(how.hold_s)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Makes held messages visible again at once (best effort: if this fails
    /// they come back when their hold lapses). Returns how many failed.
    pub async fn release(&self, queue_url: &str, messages: &[Message]) -> usize {
        let mut failed = 0;
        for chunk in messages.chunks(BATCH) {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, m)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .visibility_timeout(0)
                        .build()
                        .ok()
                })
                .collect();
            match self
                .client
                .change_message_visibility_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => failed += output.failed().len(),
                Err(_) => failed += chunk.len(),
            }
        }
        failed
    }

    /// Deletes received messages (up to [`BATCH`]); returns the message ids
    /// SQS confirmed.
    pub async fn delete_batch(
        &self,
        queue_url: &str,
        messages: &[&Message],
    ) -> Result<Vec<String>, QueueError> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .ok()
            })
            .collect();
        let output = self
            .client
            .delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        Ok(output
            .successful()
            .iter()
            .filter_map(|ok| ok.id().parse::<usize>().ok())
            .filter_map(|i| messages.get(i))
            .map(|m| m.message_id().unwrap_or_default().to_string())
            .collect())
    }

    /// Sends received messages to `queue_url` with body and attributes
    /// unchanged but for one String attribute `tag` (name, value) set on
    /// each copy (up to [`BATCH`]). Returns the indexes the queue accepted
    /// and, for the others, why not.
    pub async fn copy_batch(
        &self,
        queue_url: &str,
        messages: &[&Message],
        tag: (&str, &str),
    ) -> Result<(Vec<usize>, Vec<(usize, String)>), QueueError> {
        let (tag_name, tag_value) = tag;
        let tag_value = string_attribute(tag_value)?;
        let entries: Vec<_> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let mut attributes = m.message_attributes().cloned().unwrap_or_default();
                attributes.insert(tag_name.to_string(), tag_value.clone());
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default())
                    .set_message_attributes(Some(attributes))
                    .build()
                    .ok()
            })
            .collect();
        let output = self
            .client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await?;
        let refused = output
            .failed()
            .iter()
            .filter_map(|f| {
                let i = f.id().parse::<usize>().ok()?;
                Some((
                    i,
                    format!("{} {}", f.code(), f.message().unwrap_or_default()),
                ))
            })
            .collect();
        let accepted = output
            .successful()
            .iter()
            .filter_map(|ok| ok.id().parse().ok())
            .collect();
        Ok((accepted, refused))
    }

    /// Keeps the message invisible for `seconds` from now: its next delivery.
    pub async fn delay(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: u64,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(i32::try_from(seconds).unwrap_or(i32::MAX))
            .send()
            .await?;
        Ok(())
    }

    /// Sends the message again, unchanged, to come back after `seconds`
    /// (at most SQS's 900): a run waiting for its pipeline. A new message
    /// starts its receive count afresh, so waiting never spends attempts.
    pub async fn send_later(
        &self,
        queue_url: &str,
        body: &str,
        attributes: &[(String, String)],
        seconds: u64,
    ) -> Result<(), QueueError> {
        with_attributes(
            self.client
                .send_message()
                .queue_url(queue_url)
                .message_body(body)
                .delay_seconds(seconds.min(900) as i32),
            attributes,
        )?
        .send()
        .await?;
        Ok(())
    }

    /// Sends a waiting run's opener message again, now: the run before it
    /// ended, so it may start.
    pub async fn wake(&self, wake: &Wake) -> Result<(), QueueError> {
        with_attributes(
            self.client
                .send_message()
                .queue_url(&wake.queue_url)
                .message_body(&wake.message),
            &wake.attributes,
        )?
        .send()
        .await?;
        Ok(())
    }

    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await?;
        Ok(())
    }
}

/// The dead-letter queue: a message given up on, body unchanged, with the
/// String attributes `error_code` and `error_message`.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue(QueueAt);

/// SQS allows 10 attributes per message; the reason takes two of them.
const MAX_KEPT_ATTRIBUTES: usize = 8;
/// Longest `error_message` kept, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

impl DeadLetterQueue {
    pub fn new(client: impl Into<Lazy<aws_sdk_sqs::Client>>, url: impl Into<String>) -> Self {
        Self(QueueAt::new(client, url))
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// Sends `body` with its original String attributes plus the reason.
    pub async fn send(
        &self,
        body: &str,
        attributes: &[(String, String)],
        error_code: &str,
        error_message: &str,
    ) -> Result<String, QueueError> {
        let message: String = error_message
            .chars()
            .take(MAX_ERROR_MESSAGE_CHARS)
            .collect();
        let mut request = with_attributes(self.0.message(body), attributes)?;
        for (name, value) in [
            ("error_code", error_code),
            ("error_message", message.as_str()),
        ] {
            let value = string_attribute(if value.is_empty() { "-" } else { value })?;
            request = request.message_attributes(name, value);
        }
        send(request).await
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}

/// The message's own String attributes (not a reason a DLQ added), as many
/// as leave room for a reason.
fn with_attributes(
    mut request: SendMessageFluentBuilder,
    attributes: &[(String, String)],
) -> Result<SendMessageFluentBuilder, QueueError> {
    let kept = attributes
        .iter()
        .filter(|(name, value)| {
            name != "error_code" && name != "error_message" && !value.is_empty()
        })
        .take(MAX_KEPT_ATTRIBUTES);
    for (name, value) in kept {
        request = request.message_attributes(name, string_attribute(value)?);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_from_arns() {
        assert_eq!(
            queue_url_from_arn("arn:aws:sqs:eu-west-1:123456789012:work").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/work")
        );
        assert_eq!(
            queue_url_from_arn("arn:aws-cn:sqs:cn-north-1:1:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/1/q")
        );
        for bad in [
            "",
            "arn:aws:sns:eu-west-1:1:topic",
            "arn:aws:sqs:eu-west-1:1:",
            "nonsense",
        ] {
            assert_eq!(queue_url_from_arn(bad), None, "{bad}");
        }
    }
}
