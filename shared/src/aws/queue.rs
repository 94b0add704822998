//! The SQS adapter for the work queue (ingress side).

use crate::aws::describe;
use crate::rules::message::WorkMessage;
use aws_sdk_sqs::operation::send_message::builders::SendMessageFluentBuilder;
use aws_sdk_sqs::types::MessageAttributeValue;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct WorkQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl WorkQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Enqueues a trigger; returns the SQS message id.
    pub async fn send(&self, message: &WorkMessage) -> Result<String, QueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.to_json())
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(output.message_id().unwrap_or_default().to_string())
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

/// What the worker does to messages it received: delay a retry, delete.
#[derive(Debug, Clone)]
pub struct Deliveries {
    client: aws_sdk_sqs::Client,
}

impl Deliveries {
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
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
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
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
        .await
        .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(())
    }

    pub async fn delete(&self, queue_url: &str, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(())
    }
}

/// The dead-letter queue: a message given up on, body unchanged, with the
/// String attributes `error_code` and `error_message`.
#[derive(Debug, Clone)]
pub struct DeadLetterQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// SQS allows 10 attributes per message; the reason takes two of them.
const MAX_KEPT_ATTRIBUTES: usize = 8;
/// Longest `error_message` kept, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 1000;

impl DeadLetterQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
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
        let mut request = with_attributes(
            self.client
                .send_message()
                .queue_url(&self.url)
                .message_body(body),
            attributes,
        )?;
        for (name, value) in [
            ("error_code", error_code),
            ("error_message", message.as_str()),
        ] {
            let value = string_attribute(if value.is_empty() { "-" } else { value })?;
            request = request.message_attributes(name, value);
        }
        let output = request
            .send()
            .await
            .map_err(|e| QueueError::Unavailable(describe(&e)))?;
        Ok(output.message_id().unwrap_or_default().to_string())
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
