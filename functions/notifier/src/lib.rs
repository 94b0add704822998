//! The notifier handler: a CodePipeline state change in, at most one e-mail
//! per EventBridge event id out, and the public trigger's record moved to
//! the outcome.
//!
//! Per event: parse (not ours, unknown or malformed: logged, acknowledged,
//! no e-mail) → find the run (or trigger) from the execution id and record
//! the state, freeing the pipeline's lane when the run ended
//! → if the state is in `NOTIFY_STATES`: claim the event id → for `FAILED`,
//! look up why → render → publish → mark sent. A failed publish releases the
//! claim and fails the invocation, so the retry sends the e-mail; an
//! unreachable table fails it before anything is sent.
//!
//! A stage's state change is recorded on the run (or trigger) that owns
//! the execution, forward only; it never sends an e-mail.

use serde::Serialize;
use serde_json::Value;
use shared::aws::pipeline::PipelineHistory;
use shared::aws::queue::Deliveries;
use shared::aws::table::claims::Claim;
use shared::aws::table::stages::StageRecorded;
use shared::aws::table::triggers::{ExecutionOwner, OutcomeRecord};
use shared::aws::table::{StoreError, Table};
use shared::aws::topic::{PublishError, Topic};
use shared::aws::Lazy;
use shared::clock::Clock;
use shared::config::NotifierConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::email::{render, Origin};
use shared::rules::metrics;
use shared::rules::pipeline_event::{
    parse_codepipeline_event, starter, CodePipelineEvent, EventProblem, PipelineEvent, Sighting,
    StageEvent, Starter,
};
use shared::rules::status::run_status_of;
use shared::rules::status::PipelineState;
use shared::rules::trigger::ledger_expires_at;
use std::sync::Arc;
use std::time::Duration;
use tracing::{error, info, warn};

/// How long a claim holds off other deliveries of the same event: longer than
/// an invocation can run, short enough that the retry after a crash sends.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// How long after its state change an event that does not say who started
/// its execution (no `execution-trigger`), and whose execution the worker
/// has not recorded, fails the invocation to be delivered again. Older than
/// this, nobody is going to record it: a run started outside this system.
/// An event that says the worker started it waits as long as it takes
/// (Lambda's retries, then the events DLQ, which `trigger-ops events replay`
/// empties); one that says someone else did never waits.
pub const OWNER_WAIT: Duration = Duration::from_secs(120);

/// Inside one invocation, how long to wait before each look again for the
/// record of an execution the worker started (it records right after the
/// start: an event can race it by a moment). About 2 s in all.
pub const OWNER_REREADS: [Duration; 3] = [
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_millis(1250),
];

/// What an invocation did (the Lambda's result, and what tests check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The e-mail was published.
    Notified {
        event_id: String,
        message_id: String,
    },
    /// The e-mail for this event id went out before: a redelivery.
    Duplicate { event_id: String },
    /// The state is not in `NOTIFY_STATES`.
    NotNotified { event_id: String, state: String },
    /// A stage's state change, recorded (`recorded: false`: what is stored
    /// is as new, or the execution is not a public trigger's).
    Stage {
        event_id: String,
        stage: String,
        state: String,
        recorded: bool,
    },
    /// Not an event to act on (another event, an unknown state, malformed).
    Ignored { reason: String },
}

/// Why an invocation fails (Lambda and EventBridge then retry it).
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Table(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("event {event_id} is claimed by another invocation until {until} ms; retry later")]
    ClaimedElsewhere { event_id: String, until: u64 },
    #[error(
        "execution {execution_id} is not recorded yet (the event raced the worker); retry later"
    )]
    NotYetRecorded { execution_id: String },
}

impl NotifierError {
    /// The error type Lambda reports (and its on-failure destination keeps).
    pub fn error_type(&self) -> &'static str {
        match self {
            NotifierError::Table(_) => "TableUnavailable",
            NotifierError::Publish(_) => "PublishFailed",
            NotifierError::ClaimedElsewhere { .. } => "ClaimedElsewhere",
            NotifierError::NotYetRecorded { .. } => "NotYetRecorded",
        }
    }
}

impl From<NotifierError> for lambda_runtime::Diagnostic {
    fn from(err: NotifierError) -> Self {
        Self {
            error_type: err.error_type().into(),
            error_message: err.to_string(),
        }
    }
}

pub struct Notifier {
    metrics: Metrics,
    config: NotifierConfig,
    table: Table,
    topic: Topic,
    history: PipelineHistory,
    /// Wakes the next waiting run when a run ends.
    deliveries: Deliveries,
    clock: Arc<dyn Clock>,
}

impl Notifier {
    /// Wires the adapters over the clients `main` (or a test) built once.
    pub fn new(
        config: NotifierConfig,
        dynamodb: aws_sdk_dynamodb::Client,
        sns: impl Into<Lazy<aws_sdk_sns::Client>>,
        codepipeline: impl Into<Lazy<aws_sdk_codepipeline::Client>>,
        sqs: impl Into<Lazy<aws_sdk_sqs::Client>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            metrics: Metrics::new(&config.metrics_namespace, "notifier"),
            table: Table::new(dynamodb, config.table_name.clone()),
            topic: Topic::new(sns, config.topic_arn.clone()),
            history: PipelineHistory::new(codepipeline),
            deliveries: Deliveries::new(sqs),
            config,
            clock,
        }
    }

    /// Sends the metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = self.metrics.with_sink(sink);
        self
    }

    fn retention_end(&self, now: u64) -> u64 {
        ledger_expires_at(now, self.config.ledger_retention)
    }

    /// One invocation.
    pub async fn handle(&self, payload: Value) -> Result<Outcome, NotifierError> {
        let event = match parse_codepipeline_event(&payload) {
            Ok(CodePipelineEvent::Execution(event)) => event,
            Ok(CodePipelineEvent::Stage(stage)) => return self.record_stage(stage).await,
            Err(problem) => return Ok(ignored(problem)),
        };
        let now = self.clock.now_ms();
        let origin = match self.owner(event.sighting()).await? {
            Some(owner) => self.record_outcome(&event, &owner, now).await?,
            None => None,
        };
        let trigger_id = origin.as_ref().map(|o| o.first.trigger_id.as_str());
        if !self.config.notify_states.contains(&event.state) {
            info!(
                decision = "no_email", event_id = %event.event_id, execution_id = %event.execution_id,
                pipeline = %event.pipeline, state = event.state.as_str(), trigger_id,
                "state not in NOTIFY_STATES"
            );
            return Ok(Outcome::NotNotified {
                event_id: event.event_id,
                state: event.state.as_str().into(),
            });
        }
        let token = ulid::Ulid::new().to_string();
        let claim = self
            .table
            .claims()
            .claim(
                &event.event_id,
                &token,
                now,
                CLAIM_LEASE,
                self.retention_end(now),
            )
            .await?;
        match claim {
            Claim::Claimed => {}
            Claim::AlreadySent { message_id } => {
                info!(
                    decision = "duplicate", event_id = %event.event_id, execution_id = %event.execution_id,
                    message_id = %message_id, trigger_id, "e-mail already sent for this event"
                );
                return Ok(Outcome::Duplicate {
                    event_id: event.event_id,
                });
            }
            Claim::HeldElsewhere { until } => {
                warn!(
                    decision = "retry_later", event_id = %event.event_id, until,
                    "another invocation holds this event"
                );
                return Err(NotifierError::ClaimedElsewhere {
                    event_id: event.event_id,
                    until,
                });
            }
        }
        self.publish(&event, &token, origin.as_ref(), now).await
    }

    /// The run or trigger behind an execution (`None`: not a public
    /// trigger's). The event's `execution-trigger` decides: started by
    /// someone else (a push, the console, a schedule) is never a public
    /// trigger's, at once and without a read; started by the worker, its
    /// record is looked for again within the invocation ([`OWNER_REREADS`])
    /// and, still missing, the invocation fails to be delivered again
    /// (the worker records right after the start); an event that does not
    /// say waits so only while younger than [`OWNER_WAIT`].
    async fn owner(&self, seen: Sighting<'_>) -> Result<Option<ExecutionOwner>, NotifierError> {
        let Sighting {
            event_id,
            execution_id,
            time,
            trigger,
        } = seen;
        let started_by = starter(trigger, self.config.worker_role_arn.as_deref());
        if started_by == Starter::Other {
            return Ok(None);
        }
        let mut owner = self.table.triggers().execution_owner(execution_id).await?;
        for pause in OWNER_REREADS {
            if owner.is_some() {
                break;
            }
            tokio::time::sleep(pause).await;
            owner = self.table.triggers().execution_owner(execution_id).await?;
        }
        let young =
            self.clock.now_ms().saturating_sub(time.unwrap_or(0)) < OWNER_WAIT.as_millis() as u64;
        if owner.is_none() && (started_by == Starter::Worker || young) {
            warn!(decision = "retry_later", event_id = %event_id, execution_id = %execution_id,
                  started_by = ?started_by, "the worker has not recorded this execution yet");
            return Err(NotifierError::NotYetRecorded {
                execution_id: execution_id.to_string(),
            });
        }
        Ok(owner)
    }

    /// Records a stage's change on the run (or trigger) of its execution.
    async fn record_stage(&self, event: StageEvent) -> Result<Outcome, NotifierError> {
        let now = self.clock.now_ms();
        let owner = match self.owner(event.sighting()).await? {
            Some(owner) => owner,
            None => {
                info!(decision = "ignore", event_id = %event.event_id, execution_id = %event.execution_id,
                      stage = %event.stage, "not a public trigger's execution");
                return Ok(Outcome::Stage {
                    event_id: event.event_id,
                    stage: event.stage,
                    state: event.state.as_str().into(),
                    recorded: false,
                });
            }
        };
        let recorded = self
            .table
            .stages()
            .record(
                &owner,
                &event.execution_id,
                &event.stage,
                event.state,
                event.time.unwrap_or(now),
                now,
            )
            .await?;
        let run_id = owner.run_id.as_deref().unwrap_or(&owner.trigger_id);
        let recorded = match recorded {
            StageRecorded::Recorded(_) => {
                info!(decision = "record_stage", event_id = %event.event_id, execution_id = %event.execution_id,
                      run_id, stage = %event.stage, state = event.state.as_str(), "stage recorded");
                true
            }
            StageRecorded::Kept(stage) => {
                info!(decision = "keep_stage", event_id = %event.event_id, execution_id = %event.execution_id,
                      run_id, stage = %event.stage, kept = stage.state.as_str(), "a later change of the stage is recorded already");
                false
            }
            StageRecorded::NotFound => {
                warn!(decision = "no_record", event_id = %event.event_id, execution_id = %event.execution_id,
                      run_id, stage = %event.stage, "the execution's run is gone or names another execution");
                false
            }
        };
        Ok(Outcome::Stage {
            event_id: event.event_id,
            stage: event.stage,
            state: event.state.as_str().into(),
            recorded,
        })
    }

    /// Moves the owner's run (or, without coalescing, the trigger's own
    /// record) to the state; a run that ended frees its pipeline's lane.
    /// Returns the public triggers behind it (`None`: their records are gone).
    async fn record_outcome(
        &self,
        event: &PipelineEvent,
        owner: &ExecutionOwner,
        now: u64,
    ) -> Result<Option<Origin>, StoreError> {
        let changed_at = event.time.unwrap_or(now);
        match &owner.run_id {
            Some(run_id) => {
                self.record_run_outcome(event, run_id, changed_at, now)
                    .await
            }
            None => {
                self.record_trigger_outcome(event, &owner.trigger_id, changed_at, now)
                    .await
            }
        }
    }

    /// Without coalescing: the trigger's own record holds the execution.
    async fn record_trigger_outcome(
        &self,
        event: &PipelineEvent,
        trigger_id: &str,
        changed_at: u64,
        now: u64,
    ) -> Result<Option<Origin>, StoreError> {
        let Some(status) = event.state.trigger_status() else {
            let trigger = self.table.triggers().get(trigger_id, now).await?;
            return Ok(trigger.map(Origin::single));
        };
        let record = self
            .table
            .triggers()
            .record_outcome(trigger_id, &event.execution_id, status, changed_at, now)
            .await?;
        Ok(match record {
            OutcomeRecord::Recorded(record) => {
                info!(
                    decision = "record_outcome", trigger_id = %trigger_id, execution_id = %event.execution_id,
                    status = status.as_str(), client_key = record.client_key.prefix(), "trigger record updated"
                );
                Some(Origin::single(record))
            }
            OutcomeRecord::Stale(record) => {
                info!(
                    decision = "keep_outcome", trigger_id = %trigger_id, execution_id = %event.execution_id,
                    status = record.status.as_str(), "a later state change is recorded already"
                );
                Some(Origin::single(record))
            }
            OutcomeRecord::NotFound => {
                warn!(
                    decision = "no_record", trigger_id = %trigger_id, execution_id = %event.execution_id,
                    "the execution's trigger record is gone or names another execution"
                );
                None
            }
        })
    }

    async fn record_run_outcome(
        &self,
        event: &PipelineEvent,
        run_id: &str,
        changed_at: u64,
        now: u64,
    ) -> Result<Option<Origin>, StoreError> {
        let run = match run_status_of(event.state) {
            Some(status) => {
                let recorded = self
                    .table
                    .runs()
                    .record_outcome(run_id, &event.execution_id, status, changed_at, now)
                    .await?;
                if status.is_ended() {
                    // Whatever the record says, this execution no longer runs.
                    let took = match &recorded {
                        Some((run, _)) => run
                            .started_at
                            .map(|started| changed_at.saturating_sub(started)),
                        None => None,
                    };
                    let freed = self
                        .table
                        .runs()
                        .free_lane(&event.pipeline, run_id, now, took)
                        .await?;
                    info!(decision = "lane_freed", run_id = %run_id, execution_id = %event.execution_id,
                          freed = freed.is_some(), took_ms = took, "the run ended; its pipeline is free for the next");
                    if let Some(lane) = freed {
                        shared::aws::lanes::wake_next(&self.table, &self.deliveries, &lane).await;
                    }
                }
                match recorded {
                    Some((run, true)) => {
                        info!(decision = "record_outcome", run_id = %run_id, execution_id = %event.execution_id,
                              status = status.as_str(), triggers = run.triggers, "run updated");
                        Some(run)
                    }
                    Some((run, false)) => {
                        info!(decision = "keep_outcome", run_id = %run_id, execution_id = %event.execution_id,
                              status = run.status.as_str(), "a later state change is recorded already");
                        Some(run)
                    }
                    None => {
                        warn!(decision = "no_record", run_id = %run_id, execution_id = %event.execution_id,
                              "the execution's run is gone or names another execution");
                        None
                    }
                }
            }
            None => self.table.runs().get(run_id).await?,
        };
        let Some(run) = run else {
            return Ok(None);
        };
        let first = self.table.triggers().get(run_id, now).await?;
        Ok(first.map(|first| Origin {
            first,
            triggers: run.triggers,
            waited: run
                .started_at
                .map(|started| Duration::from_millis(started.saturating_sub(run.requested_at))),
        }))
    }

    async fn publish(
        &self,
        event: &PipelineEvent,
        token: &str,
        origin: Option<&Origin>,
        now: u64,
    ) -> Result<Outcome, NotifierError> {
        let failure = match event.state {
            PipelineState::Failed => Some(
                self.history
                    .failure_details(&event.pipeline, &event.execution_id)
                    .await,
            ),
            _ => None,
        };
        if let Some(problems) = failure.as_ref().map(|f| &f.unavailable) {
            if !problems.is_empty() {
                warn!(event_id = %event.event_id, execution_id = %event.execution_id, problems = ?problems,
                      "failure details unavailable; the e-mail says so");
            }
        }
        let email = render(event, origin, failure.as_ref());
        let trigger_id = origin.map(|o| o.first.trigger_id.as_str());
        match self.topic.publish(&email).await {
            Ok(message_id) => {
                if let Err(e) = self
                    .table
                    .claims()
                    .mark_sent(&event.event_id, token, &message_id, self.retention_end(now))
                    .await
                {
                    // The e-mail is out; the claim lapses after the lease.
                    error!(event_id = %event.event_id, error = %e,
                           "could not mark the event sent; a redelivery after the lease would e-mail again");
                }
                self.metrics
                    .count(metrics::EMAILS, Some(("State", event.state.as_str())));
                info!(
                    decision = "notify", event_id = %event.event_id, execution_id = %event.execution_id,
                    pipeline = %event.pipeline, state = event.state.as_str(), trigger_id,
                    message_id = %message_id, "e-mail published"
                );
                Ok(Outcome::Notified {
                    event_id: event.event_id.clone(),
                    message_id,
                })
            }
            Err(e) => {
                let released = self.table.claims().release(&event.event_id, token).await;
                error!(
                    decision = "fail_invocation", event_id = %event.event_id, execution_id = %event.execution_id,
                    error = %e, claim_released = ?released,
                    "publish failed; the retry of this invocation sends the e-mail"
                );
                Err(NotifierError::Publish(e))
            }
        }
    }
}

/// An event that is not one to record or e-mail: logged by what it is
/// (not ours, an unknown state, or malformed), and acknowledged.
fn ignored(problem: EventProblem) -> Outcome {
    match &problem {
        EventProblem::NotOurs(_) => {
            info!(decision = "ignore", reason = %problem, "not a pipeline state change")
        }
        EventProblem::UnknownState(_) => {
            warn!(decision = "ignore", reason = %problem, "unknown pipeline state: no e-mail")
        }
        EventProblem::Malformed(_) => {
            error!(decision = "drop", reason = %problem, "malformed event acknowledged without an e-mail")
        }
    }
    Outcome::Ignored {
        reason: problem.to_string(),
    }
}
