//! The settler's schedule, locally: what the EventBridge rule
//! `<name>-settle` does every 5 minutes in AWS, every [`INTERVAL`] here,
//! with a shorter wait ([`AFTER`]) since a local queue has no backlog.
//! The chaos run has no loop: it settles once at its end, when nothing is
//! in flight (`chaos::run`).

use super::console::Console;
use crate::stopping::Stopping;
use shared::rules::settle::SettleRequest;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How often the local stack settles.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// How long a record may stay queued without a run, locally.
pub const AFTER: Duration = Duration::from_secs(120);

pub struct Settler {
    pub worker: Arc<worker::Worker>,
    pub queue_url: String,
    pub console: Console,
}

impl Settler {
    pub async fn run(self, mut stopping: Stopping) {
        let request = SettleRequest {
            queue_url: self.queue_url.clone(),
            after_seconds: Some(AFTER.as_secs()),
        };
        loop {
            tokio::select! {
                _ = stopping.wait() => return,
                _ = tokio::time::sleep(INTERVAL) => {}
            }
            match self.worker.settle(&request).await {
                Ok(settled) if settled.found > 0 => self.console.say(&format!(
                    "settler: {} trigger(s) queued without a run for {} s sent again marked unsettled ({} not sent)",
                    settled.found,
                    AFTER.as_secs(),
                    settled.failed
                )),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "the settler could not read the ledger; it tries again"),
            }
        }
    }
}
