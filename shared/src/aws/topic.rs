//! The SNS adapter: publishing an e-mail to the on-call topic.

use crate::aws::{describe, Lazy};
use crate::rules::email::Email;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing to {topic_arn} failed: {reason}")]
pub struct PublishError {
    pub topic_arn: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Topic {
    client: Lazy<aws_sdk_sns::Client>,
    arn: String,
}

impl Topic {
    pub fn new(client: impl Into<Lazy<aws_sdk_sns::Client>>, arn: impl Into<String>) -> Self {
        Self {
            client: client.into(),
            arn: arn.into(),
        }
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    /// Publishes the e-mail; returns SNS's message id.
    pub async fn publish(&self, email: &Email) -> Result<String, PublishError> {
        let output = self
            .client
            .publish()
            .topic_arn(&self.arn)
            .subject(&email.subject)
            .message(&email.body)
            .send()
            .await
            .map_err(|e| PublishError {
                topic_arn: self.arn.clone(),
                reason: describe(&e),
            })?;
        Ok(output.message_id().unwrap_or_default().to_string())
    }
}
