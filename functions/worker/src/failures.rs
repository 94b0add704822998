//! A message that failed: a transient failure comes back later (the
//! visibility doubled per delivery), a permanent one or the last attempt
//! goes to the DLQ with its reason, and the run it opened with it.

use crate::{Delivery, Outcome, Worker};
use shared::rules::metrics;
use shared::rules::retry::{retry_delay, Failure, FailureKind};
use tracing::{error, warn};

impl Worker {
    /// Dead-lettered when permanent or out of attempts, else retried later.
    pub(crate) async fn failed(
        &self,
        delivery: &Delivery,
        trigger_id: Option<&str>,
        failure: Failure,
    ) -> Outcome {
        let receive_count = delivery.receive_count;
        if failure.kind == FailureKind::Permanent {
            return self.dead_letter(delivery, trigger_id, &failure).await;
        }
        if receive_count >= self.config.max_attempts {
            let failure = Failure {
                message: format!(
                    "gave up after {receive_count} attempts: {}",
                    failure.message
                ),
                ..failure
            };
            return self.dead_letter(delivery, trigger_id, &failure).await;
        }
        self.retry_later(delivery, &failure, receive_count).await
    }

    /// A transient failure: this delivery comes back after a delay that
    /// grows with each attempt.
    pub(crate) async fn retry_later(
        &self,
        delivery: &Delivery,
        failure: &Failure,
        receive_count: u32,
    ) -> Outcome {
        let message_id = delivery.id.as_str();
        let delay = retry_delay(receive_count);
        if let Some((url, receipt)) = delivery.handle() {
            if let Err(e) = self.deliveries.delay(url, receipt, delay.as_secs()).await {
                warn!(message_id = %message_id, error = %e, "could not set the retry delay; the queue's default applies");
            }
        }
        warn!(decision = "retry", message_id = %message_id, error_code = %failure.code, error = %failure.message,
              receive_count, retry_in_s = delay.as_secs());
        self.metrics.count(metrics::RETRIED, None);
        Outcome::Retry
    }

    /// DLQ first, then delete, then the ledger. If the DLQ refuses, the
    /// message stays on the work queue (reported as failed). The DLQ copy
    /// keeps the message's String attributes but the lane's poll (it was
    /// this delivery's: a replayed copy with a stale token would never
    /// take the poll again).
    pub(crate) async fn dead_letter(
        &self,
        delivery: &Delivery,
        trigger_id: Option<&str>,
        failure: &Failure,
    ) -> Outcome {
        let message_id = delivery.id.as_str();
        if let Err(e) = self
            .dlq
            .send(
                &delivery.body,
                &delivery.carried_attributes(),
                &failure.code,
                &failure.message,
            )
            .await
        {
            error!(decision = "retry", message_id = %message_id, error_code = %failure.code, error = %e,
                   "could not dead-letter; the message stays on the work queue");
            return Outcome::Retry;
        }
        if let Some((url, receipt)) = delivery.handle() {
            if let Err(e) = self.deliveries.delete(url, receipt).await {
                warn!(message_id = %message_id, error = %e, "dead-lettered but not deleted; the event source mapping deletes it");
            }
        }
        if let Some(trigger_id) = trigger_id {
            let now = self.clock.now_ms();
            if let Err(e) = self
                .table
                .triggers()
                .record_dead_lettered(trigger_id, &failure.code, &failure.message, now)
                .await
            {
                warn!(message_id = %message_id, trigger_id = %trigger_id, error = %e, "dead-lettered; the ledger still says queued");
            }
            self.dead_letter_run(trigger_id, &failure.code, &failure.message, now)
                .await;
        }
        warn!(decision = "dead_lettered", message_id = %message_id, trigger_id = trigger_id.unwrap_or("-"),
              error_code = %failure.code, error = %failure.message);
        self.metrics.count(metrics::DEAD_LETTERED, None);
        Outcome::Done
    }

    /// When the trigger opened a run that has not started, the run (and
    /// every trigger that joined it) is dead-lettered with it, and its lane
    /// freed. Replaying the opener revives it.
    async fn dead_letter_run(&self, run_id: &str, code: &str, reason: &str, now: u64) {
        match self
            .table
            .runs()
            .record_dead_lettered(run_id, code, reason, now)
            .await
        {
            Ok(None) => {}
            Ok(Some(run)) => {
                let runs = self.table.runs();
                let lane = match runs.free_lane(&run.target, run_id, now, None).await {
                    Ok(Some(lane)) => Ok(lane),
                    Ok(None) => runs.leave_queue(&run).await,
                    Err(e) => Err(e),
                };
                match lane {
                    Ok(lane) => {
                        shared::aws::lanes::wake_next(&self.table, &self.deliveries, &lane).await
                    }
                    Err(e) => {
                        warn!(run_id = %run_id, error = %e, "could not take the run out of its lane; the lane's poll will")
                    }
                }
                warn!(decision = "run_dead_lettered", run_id = %run_id,
                      "the run is dead-lettered with its opener");
            }
            Err(e) => {
                warn!(run_id = %run_id, error = %e, "could not mark the run dead-lettered; it stays pending")
            }
        }
    }
}
