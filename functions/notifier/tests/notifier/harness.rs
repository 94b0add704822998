//! What every story here shares: the engines, the handler under test, helpers.

pub(crate) use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
pub(crate) use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
pub(crate) use aws_sdk_codepipeline::types::{
    ActionExecutionDetail, ActionExecutionOutput, ActionExecutionResult, ActionExecutionStatus,
    ErrorDetails, PipelineExecution,
};
pub(crate) use aws_smithy_mocks::{mock, mock_client, RuleMode};
pub(crate) use notifier::{Notifier, NotifierError, Outcome};
pub(crate) use serde_json::{json, Value};
pub(crate) use shared::aws;
pub(crate) use shared::aws::table::claims::Claim;
pub(crate) use shared::aws::table::runs::Take;
pub(crate) use shared::aws::table::triggers::{OutcomeRecord, StartRecord};
pub(crate) use shared::aws::table::Table;
pub(crate) use shared::clock::{Clock, ManualClock, SystemClock};
pub(crate) use shared::config::{Env, NotifierConfig};
pub(crate) use shared::rules::pipeline_event::{
    stage_change_detail, stage_change_event, state_change_event,
};
pub(crate) use shared::rules::status::PipelineState;
pub(crate) use shared::rules::status::TriggerStatus;
pub(crate) use shared::rules::time_format::rfc3339;
pub(crate) use shared::rules::trigger::TriggerRecord;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;
pub(crate) use testkit::{rest_event, unique, Stack, REGION};

pub(crate) const CLIENT_IP: &str = "203.0.113.9";
pub(crate) const EXECUTION: &str = "1a2b3c4d-1111-2222-3333-444455556666";

pub(crate) struct Harness {
    pub(crate) stack: Stack,
    pub(crate) topic: String,
    pub(crate) inbox: String,
    pub(crate) table: Table,
    pub(crate) clock: Arc<ManualClock>,
}

pub(crate) async fn harness() -> Harness {
    let stack = Stack::new().await;
    let (topic, inbox) = stack.topic_with_inbox().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    Harness {
        stack,
        topic,
        inbox,
        table,
        clock,
    }
}

impl Harness {
    pub(crate) fn config(&self, topic: &str, states: &str) -> NotifierConfig {
        NotifierConfig::from_env(&Env::from_pairs([
            ("TABLE_NAME", self.stack.table_name.as_str()),
            ("TOPIC_ARN", topic),
            ("NOTIFY_STATES", states),
            ("WORKER_ROLE_ARN", testkit::WORKER_ROLE_ARN),
        ]))
        .expect("valid config")
    }

    pub(crate) fn notifier_with(
        &self,
        topic: &str,
        states: &str,
        codepipeline: aws_sdk_codepipeline::Client,
    ) -> Notifier {
        Notifier::new(
            self.config(topic, states),
            self.stack.dynamodb.clone(),
            self.stack.sns.clone(),
            codepipeline,
            self.stack.sqs.clone(),
            self.clock.clone(),
        )
    }

    pub(crate) fn notifier(&self) -> Notifier {
        self.notifier_with(
            &self.topic,
            "SUCCEEDED,FAILED,STOPPED",
            self.stack.codepipeline.clone(),
        )
    }

    pub(crate) async fn emails(&self) -> Vec<(String, String)> {
        self.stack.emails(&self.inbox).await
    }

    /// A trigger's record as stored now (it must be there).
    pub(crate) async fn stored(&self, trigger_id: &str) -> TriggerRecord {
        testkit::table::stored(&self.table, trigger_id, SystemClock.now_ms()).await
    }

    /// Hands `event` to `notifier`, expects it notified with one e-mail,
    /// and returns that e-mail (subject, body).
    pub(crate) async fn the_one_email(
        &self,
        notifier: &Notifier,
        event: Value,
    ) -> (String, String) {
        let outcome = notifier.handle(event).await.expect("handled");
        assert!(matches!(outcome, Outcome::Notified { .. }), "{outcome:?}");
        let mut emails = self.emails().await;
        assert_eq!(emails.len(), 1, "{emails:?}");
        emails.remove(0)
    }
}

pub(crate) fn event(pipeline: &str, execution: &str, state: PipelineState) -> (String, Value) {
    let id = unique("event");
    let mut event = state_change_event(
        &id,
        REGION,
        "123456789012",
        pipeline,
        execution,
        state,
        "2026-11-21T10:04:12Z",
    );
    event["detail"]["start-time"] = "2026-11-21T10:00:00Z".into();
    (id, event)
}

/// Who started an execution, as CodePipeline puts it in the event.
pub(crate) fn started_by(event: &mut Value, trigger_type: &str, detail: &str) {
    event["detail"]["execution-trigger"] =
        json!({"trigger-type": trigger_type, "trigger-detail": detail});
}

/// The worker's own start: `StartPipelineExecution` by a session of its role.
pub(crate) fn started_by_the_worker(event: &mut Value) {
    let caller =
        shared::rules::pipeline_event::assumed_role_arn(testkit::WORKER_ROLE_ARN, "worker")
            .expect("a role ARN");
    started_by(event, "StartPipelineExecution", &caller);
}

/// A started trigger, as the worker leaves it; returns its id.
pub(crate) async fn started_trigger(h: &Harness, execution_id: &str) -> String {
    let pipeline = h.stack.pipeline("outcome").await;
    let trigger_id = h.stack.enqueue_trigger(&pipeline).await;
    let now = SystemClock.now_ms();
    assert_eq!(
        h.table
            .triggers()
            .record_started(&trigger_id, execution_id, now, now / 1000 + 600)
            .await
            .unwrap(),
        StartRecord::Recorded
    );
    trigger_id
}

pub(crate) fn failed_action(
    stage: &str,
    action: &str,
    status: ActionExecutionStatus,
) -> ActionExecutionDetail {
    ActionExecutionDetail::builder()
        .pipeline_execution_id(EXECUTION)
        .stage_name(stage)
        .action_name(action)
        .status(status)
        .output(
            ActionExecutionOutput::builder()
                .execution_result(
                    ActionExecutionResult::builder()
                        .external_execution_url("https://console.aws.amazon.com/codebuild/b-1")
                        .error_details(
                            ErrorDetails::builder()
                                .code("JobFailed")
                                .message("Build failed: exit status 2")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

pub(crate) fn codepipeline_replaying(
    actions: Result<Vec<ActionExecutionDetail>, u16>,
    summary: &str,
) -> aws_sdk_codepipeline::Client {
    let list = match actions {
        Ok(details) => {
            mock!(aws_sdk_codepipeline::Client::list_action_executions).then_output(move || {
                ListActionExecutionsOutput::builder()
                    .set_action_execution_details(Some(details.clone()))
                    .build()
            })
        }
        Err(status) => mock!(aws_sdk_codepipeline::Client::list_action_executions)
            .sequence()
            .http_status(
                status,
                Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into()),
            )
            .times(3)
            .build(),
    };
    let summary = summary.to_string();
    let get = mock!(aws_sdk_codepipeline::Client::get_pipeline_execution).then_output(move || {
        GetPipelineExecutionOutput::builder()
            .pipeline_execution(
                PipelineExecution::builder()
                    .pipeline_execution_id(EXECUTION)
                    .status_summary(summary.clone())
                    .build(),
            )
            .build()
    });
    mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        &[&list, &get],
        |c| c.retry_config(
            aws_sdk_codepipeline::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        )
    )
}

/// A run of `count` triggers of `pipeline`, started as `execution`: returns
/// the trigger ids, the opener first.
pub(crate) async fn started_run(
    h: &Harness,
    pipeline: &str,
    execution: &str,
    count: usize,
) -> Vec<String> {
    let now = SystemClock.now_ms();
    let opening = shared::aws::table::runs::Opening::up_to(100);
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = h.stack.enqueue_trigger(pipeline).await;
        let record = h.table.triggers().get(&id, now).await.unwrap().unwrap();
        testkit::table::join_run(&h.table, &record, &opening, now, now / 1000 + 600).await;
        ids.push(id);
    }
    let run = h
        .table
        .runs()
        .get(&ids[0])
        .await
        .unwrap()
        .expect("the opener's run");
    assert_eq!(run.triggers, count as u64);
    assert_eq!(
        h.table.runs().take_lane(&run, now).await.unwrap(),
        Take::Taken
    );
    assert!(h
        .table
        .runs()
        .record_started(&run, execution, now, now / 1000 + 600)
        .await
        .unwrap());
    ids
}

pub(crate) fn stage_event(
    pipeline: &str,
    execution: &str,
    stage: &str,
    state: PipelineState,
    at: u64,
) -> Value {
    stage_change_event(
        &unique("event"),
        REGION,
        "123456789012",
        stage_change_detail(pipeline, execution, stage, state),
        &rfc3339(at),
    )
}
