//! The worker against moto: real queue messages with real receipt handles,
//! real CodePipeline executions, the DLQ and the ledger; faults moto cannot
//! make are replayed through the real client with aws-smithy-mocks.

use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::json;
use shared::aws::pipeline::PipelineStarter;
use shared::clock::{Clock, EpochMillis, SystemClock};
use shared::rules::message::WorkMessage;
use shared::rules::retry::FailureKind;
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::rfc3339;
use shared::rules::trigger::new_trigger_id;
use std::sync::Arc;
use std::time::Duration;
use testkit::Stack;

mod common;
use common::{harness, harness_on_app, harness_with_settings, Harness};

/// Settings that turn coalescing off for the public pipeline `app`: one
/// execution per trigger, as before runs existed.
const ALONE: &str = r#"{"app": {"coalesce": false}}"#;

#[tokio::test]
async fn a_mixed_batch_starts_the_good_and_dead_letters_the_rest_with_reasons() {
    let stack = Stack::new().await;
    let good = stack.pipeline("good").await;
    let deleted = stack.pipeline("deleted").await;
    stack
        .codepipeline
        .delete_pipeline()
        .name(&deleted)
        .send()
        .await
        .unwrap();
    // The worker allowlists both the good and the deleted pipeline.
    let h = harness(stack, &format!("app={good},old={deleted}"), "5", false).await;
    let good_id = h.enqueue(&good).await;
    let not_allowed_id = h.enqueue("someone-elses-pipeline").await;
    let deleted_id = h.enqueue(&deleted).await;
    h.send_raw("{\"this is\": \"not the schema\"").await;
    let (count, response) = h.run_batch(60).await;
    assert_eq!(count, 4);
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(h.stack.executions(&good).await, 1);

    let good_view = h.view(&good_id).await;
    assert_eq!(good_view.status, TriggerStatus::Started);
    assert!(good_view.execution_id.is_some() && !good_view.coalesced);
    for id in [&not_allowed_id, &deleted_id] {
        assert_eq!(h.view(id).await.status, TriggerStatus::DeadLettered, "{id}");
        assert!(h.record(id).await.error_code.is_some());
    }
    let dead = h.dead_letters().await;
    let codes: Vec<&str> = dead.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        codes,
        ["MalformedMessage", "PipelineNotAllowed", "PipelineNotFound"]
    );
    assert_eq!(
        dead[0].2, "{\"this is\": \"not the schema\"",
        "body unchanged"
    );
    assert!(dead[1].1.contains("someone-elses-pipeline"));
    assert!(dead[2].2.contains(&deleted_id));
    // Nothing is left on the work queue: the worker deleted what it dead-lettered.
    assert!(h.stack.drain(&h.stack.queues.queue_url).await.is_empty());
}

/// A dead-lettered message keeps its String attributes (a replay's mark
/// among them) but not the lane's poll: that belonged to the delivery, and
/// a replayed copy carrying a stale token would never take the poll again.
#[tokio::test]
async fn a_dead_lettered_message_keeps_its_marks_but_not_the_lanes_poll() {
    let (h, _) = harness_on_app("marks", "5").await;
    let string = |value: &str| {
        aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    h.stack
        .sqs
        .send_message()
        .queue_url(&h.stack.queues.queue_url)
        .message_body("not a work message")
        .message_attributes(worker::POLL_TOKEN, string("a-lapsed-poll"))
        .message_attributes("replayed_by", string("replay-1"))
        .send()
        .await
        .unwrap();
    let (count, response) = h.run_batch(60).await;
    assert_eq!((count, response.batch_item_failures.len()), (1, 0));
    let dead = h.stack.drain(&h.stack.queues.dlq_url).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    let attributes = dead[0].message_attributes().cloned().unwrap_or_default();
    let mut names: Vec<&str> = attributes.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["error_code", "error_message", "replayed_by"]);
    assert_eq!(attributes["replayed_by"].string_value(), Some("replay-1"));
}

/// The wall clock, except that the first reading panics: a fault injected
/// into exactly one message of a batch (every message reads the clock once
/// before it starts anything).
#[derive(Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl Clock for PanicsOnce {
    fn now_ms(&self) -> EpochMillis {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("injected fault: the clock panicked");
        }
        SystemClock.now_ms()
    }
}

/// `count` CodePipelines of their own (each its own lane, so their runs
/// start side by side) and the allowlist naming them all.
async fn pipelines(stack: &Stack, name: &str, count: usize) -> (Vec<String>, String) {
    let mut names = Vec::new();
    for i in 0..count {
        names.push(stack.pipeline(&format!("{name}{i}")).await);
    }
    let allowlist: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, p)| format!("p{i}={p}"))
        .collect();
    (names, allowlist.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_one_message_fails_only_that_message() {
    let stack = Stack::new().await;
    let (targets, allowlist) = pipelines(&stack, "panic", 5).await;
    let h = harness_with_settings(
        stack,
        &allowlist,
        "5",
        false,
        Arc::new(PanicsOnce::default()),
        "{}",
    )
    .await;
    let mut ids = Vec::new();
    for target in &targets {
        ids.push(h.enqueue(target).await);
    }
    let (count, response) = h.run_batch(0).await;
    assert_eq!(count, 5);
    // Exactly the panicked message is reported failed (SQS redelivers it);
    // the other four started.
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    let mut started = 0;
    for target in &targets {
        started += h.stack.executions(target).await;
    }
    assert_eq!(started, 4);
    let mut queued = Vec::new();
    for id in &ids {
        match h.view(id).await.status {
            TriggerStatus::Started => {}
            TriggerStatus::Queued => queued.push(id.clone()),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(
        queued.len(),
        1,
        "the panicked trigger stays queued, nothing lost"
    );
    // Its redelivery starts it, and only it.
    let (count, response) = h.run_batch(30).await;
    assert_eq!(
        count, 5,
        "every message is still on the queue until deleted"
    );
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let mut started = 0;
    for target in &targets {
        started += h.stack.executions(target).await;
    }
    assert_eq!(started, 5);
    assert_eq!(h.view(&queued[0]).await.status, TriggerStatus::Started);
}

/// The variables the one execution of `pipeline` was started with.
async fn variables_of(stack: &Stack, pipeline: &str) -> Vec<(String, String)> {
    let executions = stack
        .codepipeline
        .list_pipeline_executions()
        .pipeline_name(pipeline)
        .send()
        .await
        .expect("list executions");
    let id = executions.pipeline_execution_summaries()[0]
        .pipeline_execution_id()
        .expect("an execution id");
    testkit::execution_variables(&stack.codepipeline, pipeline, id).await
}

/// A worker whose public pipeline `app` (a fresh CodePipeline) declares
/// [`INPUT_SETTINGS`]; returns it and the CodePipeline name.
async fn input_harness(prefix: &str) -> (Harness, String) {
    harness_for(prefix, INPUT_SETTINGS).await
}

/// A worker whose public pipeline `app` (a fresh CodePipeline) has
/// `settings`; returns it and the CodePipeline name.
async fn harness_for(prefix: &str, settings: &str) -> (Harness, String) {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline(prefix).await;
    let h = harness_with_settings(
        stack,
        &format!("app={pipeline}"),
        "5",
        false,
        Arc::new(SystemClock),
        settings,
    )
    .await;
    (h, pipeline)
}

const INPUT_SETTINGS: &str = r#"{"app": {"inputs": {
    "env": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
    "dry_run": {"type": "boolean", "default": false},
    "ratio": {"type": "number"},
    "branch": {"type": "string", "pattern": "[a-z0-9/-]{1,63}"}
}}}"#;

#[tokio::test]
async fn inputs_reach_codepipeline_as_variables_in_their_shortest_form() {
    let (h, pipeline) = input_harness("vars").await;
    h.stack
        .enqueue_trigger_with_inputs(
            &pipeline,
            json!({"env": "production", "dry_run": true, "ratio": 10.0, "branch": "feature/x"}),
        )
        .await;
    let (_, response) = h.run_batch(30).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(
        variables_of(&h.stack, &pipeline).await,
        [
            ("branch".to_string(), "feature/x".to_string()),
            ("dry_run".into(), "true".into()),
            ("env".into(), "production".into()),
            ("ratio".into(), "10".into()),
        ]
    );
}

#[tokio::test]
async fn a_message_whose_inputs_do_not_pass_goes_to_the_dlq_saying_why() {
    let (h, pipeline) = input_harness("badvars").await;
    // Whoever wrote this message, its values are not what the pipeline declares.
    let id = h
        .stack
        .enqueue_trigger_with_inputs(
            &pipeline,
            json!({"env": "moon", "ratio": 1, "branch": "$(reboot)"}),
        )
        .await;
    let (_, response) = h.run_batch(30).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    assert_eq!(h.stack.executions(&pipeline).await, 0);
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "InvalidInputs");
    assert!(
        dead[0].1.contains("branch must match") && dead[0].1.contains("env must be one of"),
        "{}",
        dead[0].1
    );
    assert!(!dead[0].1.contains("reboot"), "{}", dead[0].1);
    assert_eq!(h.view(&id).await.status, TriggerStatus::DeadLettered);
}

#[tokio::test]
async fn a_redelivered_message_starts_one_execution() {
    let (h, pipeline) = harness_on_app("dup", "5").await;
    let id = h.enqueue(&pipeline).await;
    // SQS delivers the same message again (e.g. after a visibility timeout).
    let event = h.stack.receive_event(0).await;
    let first = h.worker.handle(event.clone()).await.unwrap();
    let second = h.worker.handle(event).await.unwrap();
    assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());
    assert_eq!(h.stack.executions(&pipeline).await, 1);
    assert_eq!(h.view(&id).await.status, TriggerStatus::Started);
}

/// The work message the ingress sends for `record` (no inputs).
fn message_of(
    record: &shared::rules::trigger::TriggerRecord,
    pipeline: &str,
    unsettled: bool,
) -> WorkMessage {
    WorkMessage {
        version: 1,
        trigger_id: record.trigger_id.clone(),
        pipeline: pipeline.to_string(),
        requested_at: rfc3339(record.requested_at),
        client_key: record.client_key.to_string(),
        inputs: None,
        unsettled,
    }
}

/// The ingress sends a trigger again when a send's answers were lost (SQS
/// kept those messages too): several messages of one trigger, in one
/// batch, start one execution, coalescing on or off.
#[tokio::test]
async fn several_messages_of_one_trigger_start_one_execution() {
    for (name, settings) in [("many-runs", "{}"), ("many-alone", ALONE)] {
        let (h, pipeline) = harness_for(name, settings).await;
        let id = h.stack.enqueue_trigger(&pipeline).await;
        let again = message_of(&h.record(&id).await, &pipeline, false);
        for _ in 0..2 {
            h.send_raw(&again.to_json()).await;
        }
        let (count, response) = h.run_batch(60).await;
        assert_eq!(count, 3, "{name}");
        assert!(
            response.batch_item_failures.is_empty(),
            "{name}: {response:?}"
        );
        assert_eq!(h.stack.executions(&pipeline).await, 1, "{name}");
        assert_eq!(h.view(&id).await.status, TriggerStatus::Started, "{name}");
        assert!(h.dead_letters().await.is_empty(), "{name}");
    }
}

#[tokio::test]
async fn codepipeline_unreachable_retries_every_message_later_and_dead_letters_none() {
    let stack = Stack::new().await;
    let (targets, allowlist) = pipelines(&stack, "down", 3).await;
    let h = harness_with_settings(stack, &allowlist, "5", true, Arc::new(SystemClock), "{}").await;
    let mut ids = Vec::new();
    for target in &targets {
        ids.push(h.enqueue(target).await);
    }
    // Received with a 1 s visibility: without the worker's change they would be back at once.
    let (count, response) = h.run_batch(1).await;
    assert_eq!(count, 3);
    assert_eq!(response.batch_item_failures.len(), 3);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let visible = h.stack.receive_event(0).await;
    assert_eq!(
        visible["Records"].as_array().unwrap().len(),
        0,
        "the retry delay was set"
    );
    assert!(h.dead_letters().await.is_empty());
    for id in &ids {
        assert_eq!(h.view(id).await.status, TriggerStatus::Queued);
    }
    for target in &targets {
        assert_eq!(h.stack.executions(target).await, 0);
    }
}

#[tokio::test]
async fn the_last_attempt_moves_the_message_to_the_dlq_with_its_reason() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("last").await;
    let h = harness(stack, &format!("app={pipeline}"), "1", true).await;
    let id = h.enqueue(&pipeline).await;
    let (_, response) = h.run_batch(60).await;
    assert!(response.batch_item_failures.is_empty());
    let dead = h.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].0, "ConnectionError");
    assert!(
        dead[0].1.contains("gave up after 1 attempts"),
        "{}",
        dead[0].1
    );
    assert!(dead[0].2.contains(&id));
    assert_eq!(h.view(&id).await.status, TriggerStatus::DeadLettered);
    let record = h.record(&id).await;
    assert_eq!(record.error_code.as_deref(), Some("ConnectionError"));
    assert!(h.stack.drain(&h.stack.queues.queue_url).await.is_empty());
}

#[tokio::test]
async fn a_refunded_trigger_is_not_started() {
    let (h, pipeline) = harness_on_app("refunded", "5").await;
    // A message whose record the ingress deleted when it gave the quota back.
    let message = WorkMessage {
        version: 1,
        trigger_id: new_trigger_id(),
        pipeline: pipeline.clone(),
        requested_at: rfc3339(0),
        client_key: "ab".repeat(32),
        inputs: None,
        unsettled: false,
    };
    h.send_raw(&message.to_json()).await;
    let (_, response) = h.run_batch(60).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.stack.executions(&pipeline).await, 0);
    assert!(h.dead_letters().await.is_empty());
}

#[tokio::test]
async fn an_unsettled_admission_is_given_back_never_started() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("unsettled").await;
    let committed = stack.enqueue_trigger(&pipeline).await;
    // The ingress could not tell whether its admission committed (every
    // answer and every settle lost) and told its client 503: its one
    // message says so. Here the admission had committed.
    stack.drain(&stack.queues.queue_url).await;
    let h = harness(stack, &format!("app={pipeline}"), "5", false).await;
    let record = h.record(&committed).await;
    let unsettled = |trigger_id: String| WorkMessage {
        trigger_id,
        ..message_of(&record, &pipeline, true)
    };
    h.send_raw(&unsettled(committed.clone()).to_json()).await;
    // And one whose admission never committed: no record, nothing to do.
    h.send_raw(&unsettled(new_trigger_id()).to_json()).await;
    let (count, response) = h.run_batch(60).await;
    assert_eq!(count, 2);
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(h.stack.executions(&pipeline).await, 0, "nothing runs");
    assert!(h.dead_letters().await.is_empty());
    let after = h.record(&committed).await;
    assert_eq!(after.status, TriggerStatus::Refused);
    assert_eq!(
        after.refusal.as_ref().map(|r| r.reason.as_str()),
        Some(shared::rules::trigger::UNSETTLED)
    );
    // The slot it took is back: the client's quota holds nothing.
    let level = shared::aws::table::admission::QuotaLevel::client(
        &record.client_key,
        shared::rules::quota::QuotaPolicy {
            limit: 1,
            window: Duration::from_secs(60),
        },
    );
    let slots = h.table.admission().slots(&level).await.unwrap();
    assert!(slots.iter().all(|&t| t == 0), "{slots:?}");
}

#[tokio::test]
async fn an_event_that_is_not_sqs_fails_the_invocation() {
    let h = harness(Stack::new().await, "app=x", "5", false).await;
    assert!(h
        .worker
        .handle(json!({"httpMethod": "POST"}))
        .await
        .is_err());
    assert!(h.worker.handle(json!([1, 2])).await.is_err());
    let empty = h.worker.handle(json!({"Records": []})).await.unwrap();
    assert!(empty.batch_item_failures.is_empty());
}

fn starter_failing_with(
    status: u16,
    body: Option<&str>,
) -> (PipelineStarter, aws_smithy_mocks::Rule) {
    let rule = mock!(aws_sdk_codepipeline::Client::start_pipeline_execution)
        .sequence()
        .http_status(status, body.map(str::to_string))
        .times(3)
        .build();
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&rule], |c| c
        .retry_config(
            aws_sdk_codepipeline::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    (PipelineStarter::new(client), rule)
}

#[tokio::test]
async fn throttling_and_500s_are_transient_missing_pipelines_and_validation_permanent() {
    let cases = [
        (
            400,
            Some(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            FailureKind::Transient,
            "Throttling",
        ),
        (500, None, FailureKind::Transient, ""),
        (
            400,
            Some(r#"{"__type":"PipelineNotFoundException","message":"no such pipeline"}"#),
            FailureKind::Permanent,
            "PipelineNotFound",
        ),
        (
            400,
            Some(r#"{"__type":"ValidationException","message":"bad token"}"#),
            FailureKind::Permanent,
            "Validation",
        ),
    ];
    for (status, body, kind, code) in cases {
        let (starter, rule) = starter_failing_with(status, body);
        let failure = starter
            .start("p", &new_trigger_id(), &[])
            .await
            .unwrap_err();
        assert_eq!(failure.kind, kind, "{status} {body:?}");
        if !code.is_empty() {
            assert_eq!(failure.code, code);
        }
        let expected_calls = if kind == FailureKind::Transient { 3 } else { 1 };
        assert_eq!(
            rule.num_calls(),
            expected_calls,
            "retried only when transient: {body:?}"
        );
    }
}
