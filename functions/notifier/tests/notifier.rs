//! The notifier against moto: real SNS publishes read back through an SQS
//! queue subscribed to the topic, the claim and the trigger records in a real
//! table; CodePipeline's failure details (moto lacks `ListActionExecutions`)
//! replayed through the real client with aws-smithy-mocks.

use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
use aws_sdk_codepipeline::types::{
    ActionExecutionDetail, ActionExecutionOutput, ActionExecutionResult, ActionExecutionStatus,
    ErrorDetails, PipelineExecution,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use notifier::{Notifier, NotifierError, Outcome};
use serde_json::{json, Value};
use shared::aws;
use shared::aws::table::claims::Claim;
use shared::aws::table::runs::Take;
use shared::aws::table::triggers::{OutcomeRecord, StartRecord};
use shared::aws::table::Table;
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::config::{Env, NotifierConfig};
use shared::rules::pipeline_event::{stage_change_detail, stage_change_event, state_change_event};
use shared::rules::runs::input_set_key;
use shared::rules::status::PipelineState;
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::rfc3339;
use std::sync::Arc;
use std::time::Duration;
use testkit::{rest_event, unique, Stack, REGION};

const CLIENT_IP: &str = "203.0.113.9";
const EXECUTION: &str = "1a2b3c4d-1111-2222-3333-444455556666";

struct Harness {
    stack: Stack,
    topic: String,
    inbox: String,
    table: Table,
    clock: Arc<ManualClock>,
}

async fn harness() -> Harness {
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
    fn config(&self, topic: &str, states: &str) -> NotifierConfig {
        NotifierConfig::from_env(&Env::from_pairs([
            ("TABLE_NAME", self.stack.table_name.as_str()),
            ("TOPIC_ARN", topic),
            ("NOTIFY_STATES", states),
        ]))
        .expect("valid config")
    }

    fn notifier_with(
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
            self.clock.clone(),
        )
    }

    fn notifier(&self) -> Notifier {
        self.notifier_with(
            &self.topic,
            "SUCCEEDED,FAILED,STOPPED",
            self.stack.codepipeline.clone(),
        )
    }

    async fn emails(&self) -> Vec<(String, String)> {
        self.stack.emails(&self.inbox).await
    }
}

fn event(pipeline: &str, execution: &str, state: PipelineState) -> (String, Value) {
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

#[tokio::test]
async fn one_email_per_outcome_with_subject_and_body() {
    let h = harness().await;
    let notifier = h.notifier();
    for state in [
        PipelineState::Succeeded,
        PipelineState::Failed,
        PipelineState::Stopped,
    ] {
        let (id, event) = event("enterprise-app-pipeline", EXECUTION, state);
        let outcome = notifier.handle(event).await.expect("notified");
        assert!(
            matches!(&outcome, Outcome::Notified { event_id, message_id } if *event_id == id && !message_id.is_empty()),
            "{outcome:?}"
        );
        let emails = h.emails().await;
        assert_eq!(emails.len(), 1, "{state:?}: {emails:?}");
        let (subject, body) = &emails[0];
        assert_eq!(
            subject,
            &format!(
                "[{}] enterprise-app-pipeline - execution 1a2b3c4d",
                state.as_str()
            )
        );
        assert!(body.contains(&format!("\nState          {}\n", state.as_str())));
        assert!(body.contains(&format!("\nExecution      {EXECUTION}\n")));
        assert!(body.contains("\nDuration       4m 12s\n"));
        assert!(body.contains(&format!(
            "https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/enterprise-app-pipeline/executions/{EXECUTION}/timeline?region={REGION}"
        )));
        assert!(body.contains("Started by     not a public trigger"));
        if state == PipelineState::Failed {
            // moto has no ListActionExecutions: the e-mail still goes, saying so.
            assert!(
                body.contains("Reason         unavailable (ListActionExecutions"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn the_same_event_twice_sends_one_email() {
    let h = harness().await;
    let notifier = h.notifier();
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event.clone()).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert_eq!(
        notifier.handle(event.clone()).await.unwrap(),
        Outcome::Duplicate { event_id: id }
    );
    // Even a second notifier (another concurrent Lambda) sends nothing more.
    let other = h.notifier();
    assert!(matches!(
        other.handle(event).await.unwrap(),
        Outcome::Duplicate { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
}

#[tokio::test]
async fn states_outside_notify_states_and_other_events_send_nothing() {
    let h = harness().await;
    let notifier = h.notifier();
    let (_, started) = event("app", EXECUTION, PipelineState::Started);
    assert!(matches!(
        notifier.handle(started).await.unwrap(),
        Outcome::NotNotified { state, .. } if state == "STARTED"
    ));
    let (_, mut stage) = event("app", EXECUTION, PipelineState::Failed);
    stage["detail-type"] = "CodePipeline Stage Execution State Change".into();
    let (_, mut unknown) = event("app", EXECUTION, PipelineState::Failed);
    unknown["detail"]["state"] = "PAUSED".into();
    let (_, mut hostile) = event("app", EXECUTION, PipelineState::Failed);
    hostile["detail"]["pipeline"] = "app\r\nBcc: everyone@example.com".into();
    let huge = json!({"source": "aws.codepipeline", "detail-type": "CodePipeline Pipeline Execution State Change",
                      "id": "x".repeat(300_000), "detail": {"pad": "y".repeat(300_000)}});
    for payload in [
        stage,
        unknown,
        hostile,
        huge,
        json!(null),
        json!("text"),
        json!([1]),
        json!({}),
    ] {
        let outcome = notifier.handle(payload).await.expect("acknowledged");
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");
    }
    assert!(h.emails().await.is_empty());
    // Nothing was claimed either.
    assert!(h
        .stack
        .scan_items()
        .await
        .iter()
        .all(|item| !item["pk"].as_s().unwrap().starts_with("event#")));
}

#[tokio::test]
async fn a_100_character_pipeline_name_gets_a_subject_sns_accepts() {
    let h = harness().await;
    let name = "p".repeat(100);
    let (_, event) = event(&name, EXECUTION, PipelineState::Superseded);
    let notifier = h.notifier_with(&h.topic, "SUPERSEDED", h.stack.codepipeline.clone());
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let subject = &emails[0].0;
    assert!(subject.len() <= 100, "{}", subject.len());
    assert!(
        subject.starts_with("[SUPERSEDED] ppp") && subject.ends_with("... - execution 1a2b3c4d")
    );
    // The body keeps the whole name.
    assert!(emails[0].1.contains(&format!("\nPipeline       {name}\n")));
}

#[tokio::test]
async fn a_failed_publish_fails_the_invocation_and_the_retry_sends_exactly_one() {
    let h = harness().await;
    let missing = format!("arn:aws:sns:{REGION}:123456789012:{}", unique("missing"));
    let broken = h.notifier_with(
        &missing,
        "SUCCEEDED,FAILED,STOPPED",
        h.stack.codepipeline.clone(),
    );
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    let err = broken.handle(event.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::Publish(_)), "{err}");
    assert!(err.to_string().contains(&missing));
    // The claim was released: no event item is left to block the retry.
    let items = h.stack.scan_items().await;
    assert!(items
        .iter()
        .all(|item| item["pk"].as_s().unwrap() != &format!("event#{id}")));
    // Lambda retries the invocation (here: with the topic fixed).
    let fixed = h.notifier();
    assert!(matches!(
        fixed.handle(event.clone()).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert!(matches!(
        fixed.handle(event).await.unwrap(),
        Outcome::Duplicate { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_table_fails_the_invocation_before_any_email() {
    let h = harness().await;
    let dead = aws::dynamodb(
        &testkit::sdk_config_at(&testkit::dead_endpoint()).await,
        &h.stack.calls,
    );
    let notifier = Notifier::new(
        h.config(&h.topic, "SUCCEEDED"),
        dead,
        h.stack.sns.clone(),
        h.stack.codepipeline.clone(),
        h.clock.clone(),
    );
    let (_, event) = event("app", EXECUTION, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event).await,
        Err(NotifierError::Table(_))
    ));
    assert!(h.emails().await.is_empty());
}

#[tokio::test]
async fn a_live_claim_elsewhere_defers_and_a_lapsed_one_is_taken_over() {
    let h = harness().await;
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    let now = h.clock.now_ms();
    // Another invocation claimed the event and then crashed before publishing.
    assert_eq!(
        h.table
            .claims()
            .claim(&id, "crashed", now, notifier::CLAIM_LEASE, now / 1000 + 60)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let notifier = h.notifier();
    let err = notifier.handle(event.clone()).await.unwrap_err();
    assert!(
        matches!(err, NotifierError::ClaimedElsewhere { .. }),
        "{err}"
    );
    assert!(h.emails().await.is_empty());
    // Its claim cannot be released or completed by anyone else.
    assert!(!h.table.claims().release(&id, "someone-else").await.unwrap());
    h.clock
        .advance(notifier::CLAIM_LEASE + Duration::from_millis(1));
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
    // The crashed holder's late completion cannot overwrite the new claim.
    assert!(h
        .table
        .claims()
        .mark_sent(&id, "crashed", "m-1", now / 1000 + 60)
        .await
        .is_err());
}

#[tokio::test]
async fn a_trigger_through_ingress_worker_and_notifier_is_named_and_reads_succeeded() {
    let h = harness().await;
    let pipeline = h.stack.pipeline("e2e").await;
    let pipelines = format!("app={pipeline}");
    let ingress_config = shared::config::IngressConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("QUEUE_URL", h.stack.queues.queue_url.as_str()),
        ("PIPELINES", pipelines.as_str()),
        ("CLIENT_KEY_SECRET", "notifier-test-secret-0123456789"),
    ]))
    .unwrap();
    let ingress = ingress::Ingress::new(
        ingress_config,
        h.table.clone(),
        shared::aws::queue::WorkQueue::new(h.stack.sqs.clone(), &h.stack.queues.queue_url),
        Arc::new(SystemClock),
        h.stack.calls.clone(),
    );
    let response = ingress
        .handle(rest_event("POST", "/trigger", None, CLIENT_IP))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 202);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let trigger_id = body["trigger_id"].as_str().unwrap().to_string();

    let worker_config = shared::config::WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("DLQ_URL", h.stack.queues.dlq_url.as_str()),
        ("PIPELINES", pipelines.as_str()),
    ]))
    .unwrap();
    let worker = Arc::new(worker::Worker::new(
        worker_config,
        h.stack.dynamodb.clone(),
        h.stack.sqs.clone(),
        h.stack.codepipeline.clone(),
        Arc::new(SystemClock),
    ));
    let batch = worker
        .handle(h.stack.receive_event(30).await)
        .await
        .unwrap();
    assert!(batch.batch_item_failures.is_empty());
    let started = h
        .table
        .triggers()
        .get(&trigger_id, SystemClock.now_ms())
        .await
        .unwrap()
        .unwrap();
    let view = h
        .table
        .triggers()
        .view(&trigger_id, SystemClock.now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, TriggerStatus::Started);
    let execution_id = view.execution_id.unwrap();
    assert_eq!(
        h.table
            .runs()
            .get_lane(&pipeline)
            .await
            .unwrap()
            .run_id
            .as_deref(),
        Some(trigger_id.as_str()),
        "the run holds its pipeline"
    );

    // CodePipeline's state change, as EventBridge delivers it.
    let notifier = Notifier::new(
        h.config(&h.topic, "SUCCEEDED,FAILED,STOPPED"),
        h.stack.dynamodb.clone(),
        h.stack.sns.clone(),
        h.stack.codepipeline.clone(),
        Arc::new(SystemClock),
    );
    let (_, event) = event(&pipeline, &execution_id, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let body = &emails[0].1;
    assert!(
        body.contains(&format!("\nTrigger        {trigger_id}\n")),
        "{body}"
    );
    assert!(body.contains(&format!(
        "\nRequested at   {}\n",
        rfc3339(started.requested_at)
    )));
    assert!(body.contains(&format!(
        "\nClient key     {}...\n",
        started.client_key.prefix()
    )));
    assert!(!body.contains(CLIENT_IP));

    let status = ingress
        .handle(rest_event(
            "GET",
            &format!("/triggers/{trigger_id}"),
            None,
            CLIENT_IP,
        ))
        .await
        .unwrap();
    assert_eq!(status["statusCode"], 200);
    let view: Value = serde_json::from_str(status["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["execution_id"], execution_id.as_str());
    assert_eq!(view["coalesced"], false);
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None,
        "the terminal event freed the pipeline"
    );
}

/// A started trigger, as the worker leaves it; returns its id.
async fn started_trigger(h: &Harness, execution_id: &str) -> String {
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

#[tokio::test]
async fn outcomes_arriving_late_or_twice_never_regress_the_record() {
    let h = harness().await;
    let execution = unique("exec");
    let trigger_id = started_trigger(&h, &execution).await;
    let now = SystemClock.now_ms();
    let triggers = h.table.triggers();
    let record = |status, at| triggers.record_outcome(&trigger_id, &execution, status, at, now);
    assert!(matches!(
        record(TriggerStatus::Failed, 2_000).await.unwrap(),
        OutcomeRecord::Recorded(r) if r.status == TriggerStatus::Failed
    ));
    // An older change delivered late, and the same one again: kept as it is.
    for (status, at) in [
        (TriggerStatus::Succeeded, 1_000),
        (TriggerStatus::Failed, 2_000),
    ] {
        assert!(matches!(
            record(status, at).await.unwrap(),
            OutcomeRecord::Stale(r) if r.status == TriggerStatus::Failed
        ));
    }
    // A retried execution (RESUMED, then SUCCEEDED) moves on.
    record(TriggerStatus::Started, 3_000).await.unwrap();
    assert!(matches!(
        record(TriggerStatus::Succeeded, 4_000).await.unwrap(),
        OutcomeRecord::Recorded(r) if r.status == TriggerStatus::Succeeded
    ));
    // Another execution's event does not touch this trigger.
    assert_eq!(
        h.table
            .triggers()
            .record_outcome(
                &trigger_id,
                "other-exec",
                TriggerStatus::Stopped,
                9_000,
                now
            )
            .await
            .unwrap(),
        OutcomeRecord::NotFound
    );
    // A worker redelivery recording the same start cannot undo the outcome.
    assert_eq!(
        h.table
            .triggers()
            .record_started(&trigger_id, &execution, now, now / 1000 + 600)
            .await
            .unwrap(),
        StartRecord::Recorded
    );
    let stored = h
        .table
        .triggers()
        .get(&trigger_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, TriggerStatus::Succeeded);
}

#[tokio::test]
async fn a_state_outside_notify_states_still_records_the_outcome() {
    let h = harness().await;
    let execution = unique("exec");
    let trigger_id = started_trigger(&h, &execution).await;
    let notifier = h.notifier_with(&h.topic, "FAILED", h.stack.codepipeline.clone());
    let (_, event) = event("app", &execution, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::NotNotified { .. }
    ));
    let stored = h
        .table
        .triggers()
        .get(&trigger_id, SystemClock.now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, TriggerStatus::Succeeded);
    assert!(h.emails().await.is_empty());
}

fn failed_action(
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

fn codepipeline_replaying(
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

#[tokio::test]
async fn a_failure_email_leads_with_the_failed_stage_action_and_error() {
    let h = harness().await;
    let client = codepipeline_replaying(
        Ok(vec![
            failed_action("Source", "Checkout", ActionExecutionStatus::Succeeded),
            failed_action("Build", "CodeBuild", ActionExecutionStatus::Failed),
        ]),
        "An action in this pipeline failed",
    );
    let notifier = h.notifier_with(&h.topic, "FAILED", client);
    let (_, event) = event("enterprise-app-pipeline", EXECUTION, PipelineState::Failed);
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let body = &emails[0].1;
    assert!(
        body.starts_with(
            "Pipeline enterprise-app-pipeline FAILED.\n\n\
             Failed stage   Build\n\
             Failed action  CodeBuild\n\
             Error          JobFailed: Build failed: exit status 2\n\
             Details        https://console.aws.amazon.com/codebuild/b-1\n\
             Summary        An action in this pipeline failed\n\n"
        ),
        "{body}"
    );
    assert!(
        !body.contains("Checkout"),
        "succeeded actions are not listed"
    );
}

#[tokio::test]
async fn a_throttled_failure_lookup_still_sends_the_email_saying_so() {
    let h = harness().await;
    let client = codepipeline_replaying(Err(400), "An action in this pipeline failed");
    let notifier = h.notifier_with(&h.topic, "FAILED", client);
    let (_, event) = event("app", EXECUTION, PipelineState::Failed);
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let body = &emails[0].1;
    assert!(body.contains(
        "Reason         unavailable (ListActionExecutions: ThrottlingException: Rate exceeded)"
    ));
    assert!(body.contains("Summary        An action in this pipeline failed"));
}

/// A run of `count` triggers of `pipeline`, started as `execution`: returns
/// the trigger ids, the opener first.
async fn started_run(h: &Harness, pipeline: &str, execution: &str, count: usize) -> Vec<String> {
    let now = SystemClock.now_ms();
    let mut ids = Vec::new();
    for _ in 0..count {
        let id = h.stack.enqueue_trigger(pipeline).await;
        let record = h.table.triggers().get(&id, now).await.unwrap().unwrap();
        h.table
            .runs()
            .join_or_open(
                &record,
                &input_set_key(&record.inputs),
                now,
                now / 1000 + 600,
            )
            .await
            .unwrap();
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

#[tokio::test]
async fn a_coalesced_run_moves_every_trigger_frees_its_pipeline_and_says_how_many_it_served() {
    let h = harness().await;
    let pipeline = unique("coalesced");
    let execution = unique("exec");
    let ids = started_run(&h, &pipeline, &execution, 3).await;
    let notifier = h.notifier();
    let at = |time: &str, state| {
        let mut e = event(&pipeline, &execution, state).1;
        e["time"] = time.into();
        e
    };
    let outcome = notifier
        .handle(at("2026-11-21T10:04:12Z", PipelineState::Succeeded))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Notified { .. }), "{outcome:?}");
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        assert_eq!(view.status, TriggerStatus::Succeeded, "{id}");
        assert_eq!(view.execution_id.as_deref(), Some(execution.as_str()));
        assert_eq!(view.coalesced, *id != ids[0]);
    }
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None
    );
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let body = &emails[0].1;
    assert!(
        body.contains("\nTriggers       3, coalesced into this run\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("\nFirst trigger  {}\n", ids[0])),
        "{body}"
    );

    // The next run holds the pipeline now; a late STARTED and a repeated
    // SUCCEEDED (a new delivery) of the first run change nothing of it.
    let next_execution = unique("exec");
    let next = started_run(&h, &pipeline, &next_execution, 1).await;
    for late in [
        at("2026-11-21T10:00:01Z", PipelineState::Started),
        at("2026-11-21T10:04:12Z", PipelineState::Succeeded),
    ] {
        notifier.handle(late).await.unwrap();
    }
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(next[0].as_str()));
    assert_eq!(lane.execution_id.as_deref(), Some(next_execution.as_str()));
    let first = h.table.triggers().view(&ids[1], 0).await.unwrap().unwrap();
    assert_eq!(first.status, TriggerStatus::Succeeded);
}

#[tokio::test]
async fn an_event_that_races_the_workers_record_is_retried_then_recorded_never_dropped() {
    let h = harness().await;
    let pipeline = unique("race");
    let execution = unique("exec");
    let notifier = h.notifier();
    // SUCCEEDED arrives before the worker recorded the start.
    let (_, mut early) = event(&pipeline, &execution, PipelineState::Succeeded);
    early["time"] = rfc3339(h.clock.now_ms()).into();
    let err = notifier.handle(early.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::NotYetRecorded { .. }), "{err}");
    assert!(
        h.emails().await.is_empty(),
        "nothing sent, the claim not taken"
    );
    // The worker records it; EventBridge delivers the event again.
    let ids = started_run(&h, &pipeline, &execution, 2).await;
    h.clock.advance(Duration::from_secs(60));
    assert!(matches!(
        notifier.handle(early).await.unwrap(),
        Outcome::Notified { .. }
    ));
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        assert_eq!(view.status, TriggerStatus::Succeeded);
    }
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None
    );
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].1.contains(&ids[0]), "{}", emails[0].1);
}

#[tokio::test]
async fn an_old_event_of_an_execution_nobody_recorded_is_a_run_started_elsewhere() {
    let h = harness().await;
    let (_, mut old) = event(&unique("console"), &unique("exec"), PipelineState::Failed);
    old["time"] = rfc3339(h.clock.now_ms() - notifier::OWNER_WAIT.as_millis() as u64 - 1).into();
    let failure = mock!(aws_sdk_codepipeline::Client::list_action_executions)
        .then_output(|| ListActionExecutionsOutput::builder().build());
    let summary = mock!(aws_sdk_codepipeline::Client::get_pipeline_execution)
        .then_output(|| GetPipelineExecutionOutput::builder().build());
    let codepipeline = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        &[&failure, &summary]
    );
    let notifier = h.notifier_with(&h.topic, "SUCCEEDED,FAILED,STOPPED", codepipeline);
    assert!(matches!(
        notifier.handle(old).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert!(
        emails[0].1.contains("not a public trigger"),
        "{}",
        emails[0].1
    );
}

fn stage_event(
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

#[tokio::test]
async fn stage_changes_reach_every_trigger_of_the_run_and_send_no_email() {
    let h = harness().await;
    let pipeline = unique("staged");
    let execution = unique("exec");
    let ids = started_run(&h, &pipeline, &execution, 2).await;
    let notifier = h.notifier();
    let t0 = h.clock.now_ms();
    let changes = [
        ("Source", PipelineState::Started, t0),
        ("Source", PipelineState::Succeeded, t0 + 1_000),
        ("Build", PipelineState::Started, t0 + 1_001),
        ("Build", PipelineState::Failed, t0 + 5_000),
    ];
    for (stage, state, at) in changes {
        let outcome = notifier
            .handle(stage_event(&pipeline, &execution, stage, state, at))
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Stage { recorded: true, stage: ref named, .. } if named == stage),
            "{outcome:?}"
        );
    }
    // A late STARTED of Build (EventBridge gives no order) is kept out.
    let late = notifier
        .handle(stage_event(
            &pipeline,
            &execution,
            "Build",
            PipelineState::Started,
            t0 + 1_001,
        ))
        .await
        .unwrap();
    assert!(
        matches!(
            late,
            Outcome::Stage {
                recorded: false,
                ..
            }
        ),
        "{late:?}"
    );
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        let shown = serde_json::to_value(&view).unwrap();
        assert_eq!(
            shown["stages"],
            json!([
                {"name": "Source", "state": "SUCCEEDED", "updated_at": rfc3339(t0 + 1_000)},
                {"name": "Build", "state": "FAILED", "updated_at": rfc3339(t0 + 5_000)},
            ]),
            "{id}"
        );
        // A stage's failure is not the run's: the execution's event decides.
        assert_eq!(view.status, TriggerStatus::Started);
    }
    assert!(h.emails().await.is_empty());
}

#[tokio::test]
async fn a_stage_change_that_races_the_workers_record_is_retried_then_recorded() {
    let h = harness().await;
    let pipeline = unique("stagerace");
    let execution = unique("exec");
    let notifier = h.notifier();
    let early = stage_event(
        &pipeline,
        &execution,
        "Source",
        PipelineState::Started,
        h.clock.now_ms(),
    );
    let err = notifier.handle(early.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::NotYetRecorded { .. }), "{err}");
    let ids = started_run(&h, &pipeline, &execution, 1).await;
    assert!(matches!(
        notifier.handle(early).await.unwrap(),
        Outcome::Stage { recorded: true, .. }
    ));
    let view = h.table.triggers().view(&ids[0], 0).await.unwrap().unwrap();
    assert_eq!(view.stages.len(), 1);
    assert_eq!(view.stages[0].state, "STARTED");
    // A stage change of an execution nobody recorded, long ago, is not ours.
    let old = stage_event(
        &pipeline,
        &unique("exec"),
        "Source",
        PipelineState::Started,
        h.clock.now_ms() - notifier::OWNER_WAIT.as_millis() as u64 - 1,
    );
    assert!(matches!(
        notifier.handle(old).await.unwrap(),
        Outcome::Stage {
            recorded: false,
            ..
        }
    ));
}

#[tokio::test]
async fn without_coalescing_the_trigger_itself_holds_its_stages() {
    let h = harness().await;
    let execution = unique("exec");
    let id = started_trigger(&h, &execution).await;
    let pipeline = h
        .table
        .triggers()
        .get(&id, 0)
        .await
        .unwrap()
        .unwrap()
        .target;
    let outcome = h
        .notifier()
        .handle(stage_event(
            &pipeline,
            &execution,
            "Deploy",
            PipelineState::Started,
            h.clock.now_ms(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Stage { recorded: true, .. }),
        "{outcome:?}"
    );
    let view = h.table.triggers().view(&id, 0).await.unwrap().unwrap();
    assert_eq!(view.stages.len(), 1);
    assert_eq!(view.stages[0].name, "Deploy");
}
