//! On-call's inbox: a queue subscribed to the topic; each message is the SNS
//! envelope of one e-mail, printed as the e-mail reads.

use super::console::Console;
use crate::stopping::{acknowledge, receive, Stopping};
use serde_json::Value;
use shared::aws::queue::Deliveries;
use std::sync::Arc;

pub struct Inbox {
    pub queues: Arc<Deliveries>,
    pub queue_url: String,
    pub console: Console,
    /// Every e-mail so far, subject and body (the chaos run counts them).
    pub kept: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Inbox {
    pub async fn run(self, stopping: Stopping) {
        while let Some(messages) = receive(&self.queues, &self.queue_url, None, &stopping).await {
            for message in &messages {
                let envelope: Value =
                    serde_json::from_str(message.body().unwrap_or_default()).unwrap_or(Value::Null);
                let subject = envelope["Subject"].as_str().unwrap_or("(no subject)");
                let body = envelope["Message"].as_str().unwrap_or_default();
                self.console.email(subject, body);
                self.kept
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{subject}\n{body}"));
            }
            acknowledge(
                &self.queues,
                &self.queue_url,
                &messages.iter().collect::<Vec<_>>(),
            )
            .await;
        }
    }
}
