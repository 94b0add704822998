//! A run and its CodePipeline's lane: one run at a time per pipeline, the
//! others wait in the lane's queue (keyed first) at no cost. Here the
//! opener takes the lane when its turn comes and starts the run; a waiting
//! run's message carries the lane's safety poll; a holder nobody has heard
//! of for `RUN_CHECK_AFTER` is settled by asking CodePipeline. Waking the
//! next run is `shared::aws::lanes::wake_next`, shared with the notifier.

use crate::{unavailable, Delivery, Handled, Outcome, Worker, POLL_TOKEN};
use shared::aws::lanes::wake_next;
use shared::aws::table::runs::Take;
use shared::rules::retry::Failure;
use shared::rules::runs::{lane_verdict, Lane, LaneVerdict, RunLane, RunRecord};
use shared::rules::status::{holder_state, HolderState, RunStatus};
use shared::rules::trigger::{ledger_expires_at, TriggerRecord};
use std::ops::ControlFlow;
use tracing::{info, warn};

impl Worker {
    /// The opener's part: the run starts when its CodePipeline's lane is
    /// free and it is first in the lane's queue; until then it waits there.
    pub(crate) async fn start_run(
        &self,
        opener: &TriggerRecord,
        variables: &[(String, String)],
        delivery: &Delivery,
    ) -> Result<Handled, Failure> {
        let now = self.clock.now_ms();
        let runs = self.table.runs();
        let Some(run) = runs.get(&opener.trigger_id).await.map_err(unavailable)? else {
            return Ok(Handled::NoRecord);
        };
        if let ControlFlow::Break(handled) = self.still_to_start(&run, now).await? {
            return Ok(handled);
        }
        self.keep_wake(&run, delivery).await;
        if let ControlFlow::Break(handled) = self.wait_turn(&run, delivery, now).await? {
            return Ok(handled);
        }
        if let ControlFlow::Break(handled) = self.take_lane(&run, now).await? {
            return Ok(handled);
        }
        let execution_id = self
            .starter
            .start(&run.target, &run.run_id, variables)
            .await?;
        let now = self.clock.now_ms();
        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
        let kept_lane = runs
            .record_started(&run, &execution_id, now, expires_at)
            .await
            .map_err(unavailable)?;
        if !kept_lane {
            warn!(run_id = %run.run_id, execution_id = %execution_id,
                  "run started without its lane (taken over meanwhile, or already recorded)");
        }
        Ok(Handled::Started {
            execution_id,
            lane: Some(run.target.clone()),
            by: run.lane.unwrap_or(RunLane::Anonymous),
        })
    }

    /// Whether the run is still to start: pending, or dead-lettered and
    /// revived now because its opener was replayed; otherwise what became
    /// of it.
    async fn still_to_start(
        &self,
        run: &RunRecord,
        now: u64,
    ) -> Result<ControlFlow<Handled>, Failure> {
        let runs = self.table.runs();
        match run.status {
            RunStatus::Pending | RunStatus::Starting => {}
            RunStatus::DeadLettered => {
                // The opener was replayed from the DLQ (its record is
                // `queued` again) while its run was not revived with it: the
                // run, with every trigger it serves, gets its chance again,
                // last in line.
                runs.revive(&run.run_id, now).await.map_err(unavailable)?;
                runs.requeue(run).await.map_err(unavailable)?;
                info!(decision = "revived", run_id = %run.run_id, triggers = run.triggers,
                      "dead-lettered run pending again after a replay, last in its queue");
            }
            RunStatus::Execution(_) => {
                return Ok(ControlFlow::Break(Handled::AlreadyStarted {
                    execution_id: run.execution_id.clone().unwrap_or_default(),
                    lane: Some(run.target.clone()),
                }))
            }
            // An operator flushed it: its triggers are refused, it never starts.
            RunStatus::Flushed => return Ok(ControlFlow::Break(Handled::Flushed)),
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The run's turn: it holds its lane already, or the lane is free (a
    /// stale holder settled first) and it is first in the queue; otherwise
    /// it waits, and a poll it carries wakes whoever is first.
    async fn wait_turn(
        &self,
        run: &RunRecord,
        delivery: &Delivery,
        now: u64,
    ) -> Result<ControlFlow<Handled>, Failure> {
        let runs = self.table.runs();
        let target = &run.target;
        let mut lane = runs.get_lane(target).await.map_err(unavailable)?;
        if lane.run_id.as_deref() == Some(run.run_id.as_str()) {
            return Ok(ControlFlow::Continue(()));
        }
        let waiting = |lane: &Lane| {
            ControlFlow::Break(Handled::Waiting {
                position: lane.place(&run.run_id).map(|p| p.position),
                lane: target.clone(),
            })
        };
        if run.status == RunStatus::Pending && lane.place(&run.run_id).is_none() {
            // Opened before runs queued, or revived: it takes its place now.
            lane = runs.requeue(run).await.map_err(unavailable)?;
        }
        if let Some(holder) = lane.run_id.clone() {
            if lane_verdict(&lane, &run.run_id, now, self.config.run_check_after)
                != LaneVerdict::Stale
                || !self
                    .settle_stale_holder(target, &holder, &lane, now)
                    .await?
            {
                return Ok(waiting(&lane));
            }
            lane = runs.get_lane(target).await.map_err(unavailable)?;
        }
        if lane.first_waiting() != Some(run.run_id.as_str()) {
            // Others were opened first: they start first.
            if delivery.poll_token().is_some() {
                wake_next(&self.table, &self.deliveries, &lane).await;
            }
            return Ok(waiting(&lane));
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Takes the lane for the run, unless another run took it meanwhile or
    /// the run moved on (started, dead-lettered or gone).
    async fn take_lane(&self, run: &RunRecord, now: u64) -> Result<ControlFlow<Handled>, Failure> {
        let target = run.target.clone();
        match self
            .table
            .runs()
            .take_lane(run, now)
            .await
            .map_err(unavailable)?
        {
            Take::Taken => Ok(ControlFlow::Continue(())),
            Take::Busy(lane) => Ok(ControlFlow::Break(Handled::Waiting {
                position: lane.place(&run.run_id).map(|p| p.position),
                lane: target,
            })),
            Take::RunMoved(Some(RunRecord {
                execution_id: Some(execution_id),
                ..
            })) => Ok(ControlFlow::Break(Handled::AlreadyStarted {
                execution_id,
                lane: Some(target),
            })),
            // Dead-lettered or gone meanwhile (another delivery of this
            // message got there first).
            Take::RunMoved(_) => Ok(ControlFlow::Break(Handled::NoRecord)),
        }
    }

    /// A waiting run is woken with its opener's latest message: after a
    /// replay, the copy that carries the replay's mark, so what the run gives
    /// up again is known as come back (best effort: otherwise the replay
    /// moves it once more, within its bound).
    async fn keep_wake(&self, run: &RunRecord, delivery: &Delivery) {
        let Some(wake) = delivery.wake() else {
            return;
        };
        if run.wake.as_ref().is_none_or(|kept| kept == &wake) {
            return;
        }
        if let Err(e) = self.table.runs().set_wake(&run.run_id, &wake).await {
            warn!(run_id = %run.run_id, error = %e, "could not keep the opener's latest message; the run wakes with the earlier one");
        }
    }

    /// A message done with, whatever became of its trigger: if it carries
    /// its lane's poll, the poll goes on while runs wait there (dropping it
    /// would leave waiting runs to wakes alone, which are best effort).
    pub(crate) async fn keeping_poll(
        &self,
        delivery: &Delivery,
        trigger_id: &str,
        lane: Option<&str>,
    ) -> Outcome {
        match (delivery.poll_token(), lane) {
            (Some(_), Some(lane)) => self.watch(delivery, trigger_id, lane).await,
            _ => Outcome::Done,
        }
    }

    /// The lane's safety poll, carried by this message: looks after the
    /// lane (asks CodePipeline about a holder not heard of for
    /// `RUN_CHECK_AFTER`, wakes the first waiting run of a free lane), then
    /// goes on polling while runs wait. A token that is not the lane's (an
    /// older poll's, or a copy dead-lettered before the DLQ dropped the
    /// token) takes the poll only once the lane's has lapsed, as a message
    /// without one does: it never makes a second poll, and never leaves
    /// waiting runs to the wakes alone.
    pub(crate) async fn watch(
        &self,
        delivery: &Delivery,
        trigger_id: &str,
        target: &str,
    ) -> Outcome {
        let now = self.clock.now_ms();
        let lane = match self.table.runs().get_lane(target).await {
            Ok(lane) => lane,
            Err(e) => {
                let failure = unavailable(e);
                return self.retry_later(delivery, &failure, 1).await;
            }
        };
        if !lane.has_waiting() {
            return Outcome::Done;
        }
        if lane.poll_token.as_deref() != delivery.poll_token() {
            return self.poll(delivery, trigger_id, target).await;
        }
        let mut lane = lane;
        if let Some(holder) = lane.run_id.clone() {
            let stale =
                lane_verdict(&lane, "", now, self.config.run_check_after) == LaneVerdict::Stale;
            if stale {
                match self.settle_stale_holder(target, &holder, &lane, now).await {
                    Ok(true) => {
                        if let Ok(after) = self.table.runs().get_lane(target).await {
                            lane = after;
                        }
                    }
                    Ok(false) => {}
                    Err(failure) => warn!(lane = %target, error = %failure.message,
                                          "could not ask CodePipeline about the lane's holder; the next poll will"),
                }
            }
        }
        wake_next(&self.table, &self.deliveries, &lane).await;
        self.poll(delivery, trigger_id, target).await
    }

    /// A lane holder nobody has heard of for `RUN_CHECK_AFTER`: CodePipeline
    /// says whether its execution still runs. Returns whether the lane was
    /// freed (the holder's run then gets the status CodePipeline reported).
    async fn settle_stale_holder(
        &self,
        target: &str,
        holder: &str,
        lane: &Lane,
        now: u64,
    ) -> Result<bool, Failure> {
        let execution_id = lane.execution_id.as_deref();
        let state = match execution_id {
            // Taken, never recorded a start: the start may have gone through
            // while its record did not. CodePipeline says: then the start is
            // recorded now and the holder keeps the lane; else its opener
            // crashed or was dead-lettered, and the lane is freed (a live
            // opener takes it back, with the same token).
            None => match self.starter.started_since(target, lane.taken_at).await? {
                Some(found) => {
                    if let Some(run) = self.table.runs().get(holder).await.map_err(unavailable)? {
                        let expires_at = ledger_expires_at(now, self.config.ledger_retention);
                        self.table
                            .runs()
                            .record_started(&run, &found, now, expires_at)
                            .await
                            .map_err(unavailable)?;
                        warn!(decision = "start_found", run_id = %holder, execution_id = %found,
                              "the holder's start went through but was not recorded; recorded now");
                        return Ok(false);
                    }
                    HolderState::Ended(RunStatus::Pending)
                }
                None => HolderState::Ended(RunStatus::Pending),
            },
            Some(execution_id) => holder_state(
                self.starter
                    .execution_status(target, execution_id)
                    .await?
                    .as_deref(),
            ),
        };
        match state {
            HolderState::Running => {
                self.table
                    .runs()
                    .mark_lane_checked(target, holder, now)
                    .await
                    .map_err(unavailable)?;
                info!(decision = "lane_checked", run_id = %holder, execution_id = execution_id.unwrap_or("-"),
                      "CodePipeline says the lane holder still runs");
                Ok(false)
            }
            HolderState::Ended(status) => {
                if let (Some(execution_id), RunStatus::Execution(_)) = (execution_id, status) {
                    self.table
                        .runs()
                        .record_outcome(holder, execution_id, status, now, now)
                        .await
                        .map_err(unavailable)?;
                }
                let freed = self
                    .table
                    .runs()
                    .free_lane(target, holder, now, None)
                    .await
                    .map_err(unavailable)?
                    .is_some();
                warn!(decision = "lane_freed", run_id = %holder, execution_id = execution_id.unwrap_or("-"),
                      status = status.as_str(), freed, "no terminal event came for the lane holder; CodePipeline says it ended");
                Ok(true)
            }
        }
    }

    /// While runs wait on `target`, one message carries the lane's safety
    /// poll: it comes back every `RUN_POLL_INTERVAL` (a new message, so
    /// waiting never spends attempts). This message takes the poll when
    /// nobody holds a live one or it already does; otherwise it is done,
    /// and its run waits in the lane's queue at no cost.
    pub(crate) async fn poll(
        &self,
        delivery: &Delivery,
        trigger_id: &str,
        target: &str,
    ) -> Outcome {
        let message_id = delivery.id.as_str();
        let interval = self.config.run_poll_interval;
        let now = self.clock.now_ms();
        // Alive a little past the interval, so the poll's own return
        // finds it still its own.
        let until = now + u64::try_from((interval * 2).as_millis()).unwrap_or(u64::MAX);
        let token = ulid::Ulid::new().to_string();
        let claimed = self
            .table
            .runs()
            .claim_poll(target, delivery.poll_token(), &token, until, now)
            .await;
        match claimed {
            Ok(true) => {}
            Ok(false) => return Outcome::Done,
            Err(e) => {
                warn!(message_id = %message_id, lane = %target, error = %e,
                      "could not take the lane's poll; this delivery comes back instead");
                return self.retry_later(delivery, &unavailable(e), 1).await;
            }
        }
        let Some((url, receipt)) = delivery.handle() else {
            warn!(decision = "poll", message_id = %message_id, trigger_id = %trigger_id,
                  "no source queue to poll on; redelivered after the visibility timeout");
            return Outcome::Retry;
        };
        let mut attributes = delivery.carried_attributes();
        attributes.push((POLL_TOKEN.to_string(), token));
        if let Err(e) = self
            .deliveries
            .send_later(url, &delivery.body, &attributes, interval.as_secs())
            .await
        {
            warn!(decision = "poll", message_id = %message_id, lane = %target, error = %e,
                  "could not send the lane's poll; this delivery comes back once the poll lapsed");
            let lapse = (interval * 2).as_secs() + 1;
            if let Err(e) = self.deliveries.delay(url, receipt, lapse).await {
                warn!(message_id = %message_id, error = %e, "could not set the delay either");
            }
            return Outcome::Retry;
        }
        if let Err(e) = self.deliveries.delete(url, receipt).await {
            // Two copies now; the older no longer carries the poll.
            warn!(message_id = %message_id, error = %e, "poll sent, this delivery not deleted");
        }
        info!(decision = "poll", message_id = %message_id, trigger_id = %trigger_id, lane = %target,
              retry_in_s = interval.as_secs(), "runs wait on this pipeline: its poll goes on");
        Outcome::Done
    }
}
