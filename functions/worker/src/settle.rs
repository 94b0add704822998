//! The settler: the scheduled part of the worker. The last double fault
//! leaves a trigger record `queued` with no run and its slot taken, its
//! client told 503 (`shared::rules::settle`). Every few minutes an
//! EventBridge schedule invokes the worker with `{"settle": {"queue_url":
//! …}}`; it finds such records through the ledger's day index and sends each
//! its message again marked `unsettled`. The worker then gives back what the
//! trigger took, in one conditional write that fails when a first message
//! got through and started it meanwhile: never both run and refunded.

use crate::Worker;
use serde::Serialize;
use shared::rules::message::WorkMessage;
use shared::rules::runs::Wake;
use shared::rules::settle::{needs_settling, settle_range, SettleRequest};
use tracing::{error, info, warn};

/// At most this many records settled per invocation; the next takes the rest.
pub const SETTLE_BATCH: usize = 500;

/// What one scheduled settle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Settled {
    /// Records in limbo found.
    pub found: u64,
    /// Of them, sent again marked `unsettled` (the worker gives them back).
    pub sent: u64,
    /// Of them, not sent (the queue refused): the next settle tries again.
    pub failed: u64,
}

impl Worker {
    /// One scheduled settle. A table that cannot be read is an error (the
    /// schedule invokes again in minutes); a message that cannot be sent is
    /// counted and tried again next time.
    pub async fn settle(&self, request: &SettleRequest) -> Result<Settled, String> {
        let now = self.clock.now_ms();
        let after = request.after();
        let (since, until) = settle_range(now, after);
        let candidates = self
            .table
            .ledger()
            .queued_without_run(since, until, now, SETTLE_BATCH)
            .await
            .map_err(|e| {
                error!(decision = "settle", error = %e, "could not read the ledger; the next settle tries again");
                e.to_string()
            })?;
        let mut settled = Settled::default();
        for record in candidates.iter().filter(|r| needs_settling(r, now, after)) {
            settled.found += 1;
            let message = WorkMessage {
                unsettled: true,
                ..WorkMessage::of(record, false)
            };
            let wake = Wake {
                queue_url: request.queue_url.clone(),
                message: message.to_json(),
                attributes: Vec::new(),
            };
            match self.deliveries.wake(&wake).await {
                Ok(()) => {
                    settled.sent += 1;
                    warn!(decision = "settle", trigger_id = %record.trigger_id, client_key = %record.client_key,
                          "queued without a run since its admission: sent again marked unsettled, for the worker to give back what it took");
                }
                Err(e) => {
                    settled.failed += 1;
                    warn!(decision = "settle", trigger_id = %record.trigger_id, error = %e,
                          "could not send its settling message; the next settle tries again");
                }
            }
        }
        info!(
            decision = "settled",
            found = settled.found,
            sent = settled.sent,
            failed = settled.failed
        );
        Ok(settled)
    }
}
