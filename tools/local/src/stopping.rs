//! The stop signal every loop of the local stack waits on, and the
//! receive and delete those loops share: nothing received while stopping is
//! left invisible.

use shared::aws::queue::{Deliveries, Receive, BATCH};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// A stop signal the loops wait on.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// A new signal: send `true` on the sender to stop.
    pub fn channel() -> (watch::Sender<bool>, Stopping) {
        let (stop, stopping) = watch::channel(false);
        (stop, Stopping(stopping))
    }

    /// Returns once the stack is stopping.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }
}

/// Long-poll wait per receive (SQS allows up to 20 s).
const WAIT_S: i32 = 2;

/// One long-poll receive of up to 10 messages with every attribute; `None`
/// once the stack is stopping. A receive in flight is never abandoned (the
/// queue would hide what it returns for the visibility timeout): it is
/// awaited (at most [`WAIT_S`]), and if the stack stopped meanwhile its
/// messages are made visible again. A failed receive is logged and retried.
pub(crate) async fn receive(
    deliveries: &Deliveries,
    queue_url: &str,
    hold_s: Option<i32>,
    stopping: &Stopping,
) -> Option<Vec<aws_sdk_sqs::types::Message>> {
    if stopping.is_set() {
        return None;
    }
    let how = Receive {
        max: BATCH,
        wait_s: WAIT_S,
        hold_s,
    };
    let messages = match deliveries.receive(queue_url, how).await {
        Ok(messages) => messages,
        Err(e) => {
            warn!(queue_url = %queue_url, error = %e, "could not receive; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Some(Vec::new());
        }
    };
    if stopping.is_set() {
        if deliveries.release(queue_url, &messages).await > 0 {
            warn!(queue_url = %queue_url, "could not release messages received while stopping; they come back after their visibility timeout");
        }
        return None;
    }
    Some(messages)
}

/// Deletes handled messages; if that fails they come back and are handled
/// again (each handler is idempotent), so a warning is enough.
pub(crate) async fn acknowledge(
    deliveries: &Deliveries,
    queue_url: &str,
    messages: &[&aws_sdk_sqs::types::Message],
) {
    if let Err(e) = deliveries.delete_batch(queue_url, messages).await {
        warn!(queue_url = %queue_url, error = %e, "could not delete handled messages; they will be handled again");
    }
}
