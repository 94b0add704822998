//! From how a message was handled (or why it failed) to one decision
//! logged with its identifiers, its metric, and what SQS is told; a lane's
//! poll the message carries goes on.

use crate::outcome::{Handled, Outcome};
use crate::{Delivery, Worker};
use shared::rules::metrics;
use shared::rules::retry::Failure;
use tracing::{info, warn};

impl Worker {
    /// The one decision for this delivery: logged, counted, and turned into
    /// what SQS is told; a lane's poll it carries goes on.
    pub(crate) async fn conclude(
        &self,
        delivery: &Delivery,
        trigger_id: Option<&str>,
        target: Option<&str>,
        result: Result<Handled, Failure>,
    ) -> Outcome {
        match result {
            Ok(handled) => {
                self.handled(delivery, trigger_id.unwrap_or("-"), target, handled)
                    .await
            }
            Err(failure) => self.failed(delivery, trigger_id, failure).await,
        }
    }

    async fn handled(
        &self,
        delivery: &Delivery,
        trigger: &str,
        target: Option<&str>,
        handled: Handled,
    ) -> Outcome {
        let message_id = delivery.id.as_str();
        match handled {
            Handled::Started {
                execution_id,
                lane,
                by,
            } => {
                self.metrics
                    .count(metrics::RUNS_STARTED, Some(("Lane", by.as_str())));
                info!(decision = "started", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id,
                      receive_count = delivery.receive_count);
                match lane {
                    // Runs may still wait: the lane's poll goes on.
                    Some(lane) => self.poll(delivery, trigger, &lane).await,
                    None => Outcome::Done,
                }
            }
            Handled::AlreadyStarted { execution_id, lane } => {
                info!(decision = "duplicate", message_id = %message_id, trigger_id = %trigger, execution_id = %execution_id,
                      "trigger already has an execution; acknowledged without starting again");
                self.keeping_poll(delivery, trigger, lane.as_deref().or(target))
                    .await
            }
            Handled::Refused { retry_after_s, by } => {
                self.metrics
                    .count(metrics::TRIGGERS_REFUSED, Some(("Lane", by.as_str())));
                info!(decision = "refused", message_id = %message_id, trigger_id = %trigger, retry_after_s, lane = by.as_str(),
                      "its pipeline's queue is full: refused, every quota slot given back");
                self.keeping_poll(delivery, trigger, target).await
            }
            Handled::GivenBack => {
                warn!(decision = "given_back", message_id = %message_id, trigger_id = %trigger,
                      "its admission was never settled and its client told 503: every slot given back, not started");
                self.keeping_poll(delivery, trigger, target).await
            }
            Handled::Flushed => {
                info!(decision = "flushed", message_id = %message_id, trigger_id = %trigger,
                      "its run was flushed by an operator (trigger-ops pipelines flush): not started");
                self.keeping_poll(delivery, trigger, target).await
            }
            Handled::InTheDlq { lane } => {
                info!(decision = "duplicate", message_id = %message_id, trigger_id = %trigger,
                      "its trigger is already in the DLQ: this copy is not tried again");
                self.keeping_poll(delivery, trigger, Some(&lane)).await
            }
            Handled::NoRecord => {
                warn!(decision = "skipped", message_id = %message_id, trigger_id = %trigger,
                      "no trigger record (quota given back, or expired); not started");
                self.keeping_poll(delivery, trigger, target).await
            }
            Handled::Joined { run_id } => {
                self.metrics.count(metrics::TRIGGERS_COALESCED, None);
                info!(decision = "joined", message_id = %message_id, trigger_id = %trigger, run_id = %run_id,
                      "coalesced into a pending run; its opener starts it");
                self.keeping_poll(delivery, trigger, target).await
            }
            Handled::Waiting { lane, position } => {
                self.metrics.count(metrics::RUNS_WAITING, None);
                info!(decision = "wait", message_id = %message_id, trigger_id = %trigger, lane = %lane, position,
                      "its run waits in its pipeline's queue");
                match delivery.poll_token() {
                    Some(_) => self.watch(delivery, trigger, &lane).await,
                    None => self.poll(delivery, trigger, &lane).await,
                }
            }
        }
    }
}
