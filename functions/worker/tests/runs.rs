//! Coalescing (docs/design.md, "Runs") through the worker, on DynamoDB Local and
//! moto: triggers join a pending run, a run waits while its pipeline runs
//! another, starts after the terminal event (or, when that event is lost,
//! after CodePipeline is asked), and nothing is doubled or lost on the way.
//!
//! moto ends every execution at once and does not play the notifier, so the
//! terminal event is applied the way the notifier applies it
//! ([`end_as_the_notifier_does`]); the notifier's own tests and the
//! end-to-end tests cover the event itself.

use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionOutput;
use aws_sdk_codepipeline::types::{PipelineExecution, PipelineExecutionStatus};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use serde_json::json;
use shared::aws::queue::Deliveries;
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::items::lane_pk;
use shared::aws::table::runs::{Joined, Take};
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::config::{Env, WorkerConfig};
use shared::rules::status::RunStatus;
use shared::rules::status::TriggerStatus;
use std::sync::Arc;
use std::time::Duration;
use testkit::Stack;
use worker::Worker;

mod common;
use common::{harness_from, Harness};

/// Waits out `RUN_POLL_INTERVAL` (1 s in these tests) so a waiting message
/// is visible again.
async fn poll_interval_passes() {
    tokio::time::sleep(Duration::from_millis(1300)).await;
}

/// Runs batches until the queue gives nothing (waiting messages come back
/// after their delay, so this only drains what is visible now). Returns how
/// many different triggers the messages were about: a run's wake and its
/// lane's poll may both be in flight (SQS is at-least-once anyway), and how
/// many of them a drain meets depends on timing, not on behaviour.
async fn drain_batches(h: &Harness) -> usize {
    let mut triggers = std::collections::BTreeSet::new();
    loop {
        let event = h.stack.receive_event(30).await;
        let records = event["Records"].as_array().cloned().unwrap_or_default();
        if records.is_empty() {
            return triggers.len();
        }
        for record in &records {
            let body: serde_json::Value =
                serde_json::from_str(record["body"].as_str().unwrap_or("{}")).unwrap_or_default();
            triggers.insert(body["trigger_id"].as_str().unwrap_or_default().to_string());
        }
        let response = h.worker.handle(event).await.expect("an SQS event");
        assert!(
            response.batch_item_failures.is_empty(),
            "{:?}",
            response.batch_item_failures
        );
    }
}

/// What the notifier does with a run's terminal event: the run gets its
/// outcome, its lane is freed (noting how long the run took) and the first
/// run waiting for it is woken.
async fn end_as_the_notifier_does(h: &Harness, run_id: &str, status: TriggerStatus) {
    let run = h.table.runs().get(run_id).await.unwrap().expect("run");
    let execution_id = run.execution_id.expect("a started run");
    let now = SystemClock.now_ms();
    let recorded = h
        .table
        .runs()
        .record_outcome(
            run_id,
            &execution_id,
            RunStatus::Execution(status),
            now,
            now,
        )
        .await
        .unwrap();
    assert!(matches!(recorded, Some((_, true))));
    let lane = h
        .table
        .runs()
        .free_lane(&run.target, run_id, now, Some(60_000))
        .await
        .unwrap()
        .expect("the run held its lane");
    if let Some(next) = lane.next_to_wake() {
        let wake = h.table.runs().get(next).await.unwrap().unwrap().wake;
        Deliveries::new(h.stack.sqs.clone())
            .wake(&wake.expect("a run knows how to wake"))
            .await
            .unwrap();
    }
}

/// Work messages visible or delayed on the work queue.
async fn queued_messages(h: &Harness) -> u64 {
    let counts = Deliveries::new(h.stack.sqs.clone())
        .counts(&h.stack.queues.queue_url)
        .await
        .unwrap();
    counts.visible + counts.delayed
}

/// A pipeline with one free-form input, `ref`, and `max_pending`.
fn ref_settings(max_pending: u64) -> String {
    format!(
        r#"{{"app": {{"max_pending": {max_pending}, "inputs": {{"ref": {{"type": "string", "pattern": "[a-z0-9-]{{1,40}}"}}}}}}}}"#
    )
}

async fn enqueue_ref(h: &Harness, pipeline: &str, value: &str) -> String {
    h.stack
        .enqueue_trigger_with_inputs(pipeline, json!({ "ref": value }))
        .await
}

async fn coalescing_harness(prefix: &str, extra: &[(&str, &str)]) -> (Harness, String) {
    coalescing_harness_at(prefix, extra, Arc::new(SystemClock)).await
}

async fn coalescing_harness_at(
    prefix: &str,
    extra: &[(&str, &str)],
    clock: Arc<dyn Clock>,
) -> (Harness, String) {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline(prefix).await;
    let allowlist = format!("app={pipeline}");
    let mut env = vec![("PIPELINES", allowlist.as_str())];
    env.extend_from_slice(extra);
    (harness_from(stack, &env, None, clock).await, pipeline)
}

/// A worker clock that starts now and moves only when told: the bound
/// (`RUN_CHECK_AFTER`, 1 h here) passes without waiting for it.
fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemClock.now_ms()))
}

const PAST_THE_BOUND: Duration = Duration::from_secs(2 * 3600);

#[tokio::test]
async fn triggers_join_the_pending_run_which_waits_and_starts_after_the_terminal_event() {
    let (h, pipeline) = coalescing_harness("join", &[]).await;
    // A first trigger starts at once: the pipeline is free.
    let first = h.enqueue(&pipeline).await;
    assert_eq!(drain_batches(&h).await, 1);
    assert_eq!(h.stack.executions(&pipeline).await, 1);
    let first_view = h.view(&first).await;
    assert_eq!(first_view.status, TriggerStatus::Started);
    assert!(!first_view.coalesced);

    // Three more while it runs: one opens a pending run, two join it.
    let mut later = Vec::new();
    for _ in 0..3 {
        later.push(h.enqueue(&pipeline).await);
    }
    assert_eq!(drain_batches(&h).await, 3);
    assert_eq!(h.stack.executions(&pipeline).await, 1, "nothing started");
    let views = futures::future::join_all(later.iter().map(|id| h.view(id))).await;
    assert!(views.iter().all(|v| v.status == TriggerStatus::Queued));
    let openers: Vec<_> = views.iter().filter(|v| !v.coalesced).collect();
    assert_eq!(openers.len(), 1, "{views:?}");
    let run_id = openers[0].trigger_id.clone();
    assert_eq!(
        h.table.runs().get(&run_id).await.unwrap().unwrap().triggers,
        3
    );

    // While the first run is in progress the pending run keeps waiting, and
    // keeps collecting triggers.
    later.push(h.enqueue(&pipeline).await);
    poll_interval_passes().await;
    assert_eq!(
        drain_batches(&h).await,
        2,
        "the waiting opener and the new trigger"
    );
    assert_eq!(h.stack.executions(&pipeline).await, 1);
    assert_eq!(
        h.table.runs().get(&run_id).await.unwrap().unwrap().triggers,
        4
    );
    assert!(h.view(later.last().unwrap()).await.coalesced);

    // The first run ends: the next poll starts the pending run, once.
    end_as_the_notifier_does(&h, &first, TriggerStatus::Succeeded).await;
    assert_eq!(h.view(&first).await.status, TriggerStatus::Succeeded);
    poll_interval_passes().await;
    assert_eq!(drain_batches(&h).await, 1);
    assert_eq!(h.stack.executions(&pipeline).await, 2);
    let execution = h
        .table
        .runs()
        .get(&run_id)
        .await
        .unwrap()
        .unwrap()
        .execution_id
        .expect("started");
    for id in &later {
        let view = h.view(id).await;
        assert_eq!(view.status, TriggerStatus::Started, "{id}");
        assert_eq!(view.execution_id.as_deref(), Some(execution.as_str()));
    }
    // Nothing is left waiting, and the lane is the new run's.
    poll_interval_passes().await;
    assert_eq!(drain_batches(&h).await, 0);
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(run_id.as_str()));
    assert_eq!(lane.execution_id.as_deref(), Some(execution.as_str()));
    assert!(h.dead_letters().await.is_empty());
}

const INPUTS: &str = r#"{"app": {"inputs": {
    "env": {"type": "choice", "options": ["staging", "production"], "default": "staging"}
}}}"#;

#[tokio::test]
async fn different_input_sets_are_never_merged_and_still_run_one_at_a_time() {
    let (h, pipeline) = coalescing_harness("sets", &[("PIPELINE_SETTINGS", INPUTS)]).await;
    let busy = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    // `{}` is the default set {"env": "staging"}: the same set as explicit staging.
    let staging = [
        h.stack
            .enqueue_trigger_with_inputs(&pipeline, json!({"env": "staging"}))
            .await,
        h.stack
            .enqueue_trigger_with_inputs(&pipeline, json!({}))
            .await,
    ];
    let production = h
        .stack
        .enqueue_trigger_with_inputs(&pipeline, json!({"env": "production"}))
        .await;
    assert_eq!(drain_batches(&h).await, 3);
    let staging_views = [h.view(&staging[0]).await, h.view(&staging[1]).await];
    assert_eq!(
        staging_views.iter().filter(|v| v.coalesced).count(),
        1,
        "the two staging triggers share a run"
    );
    assert!(
        !h.view(&production).await.coalesced,
        "production has its own"
    );

    // The pipeline frees: exactly one of the two pending runs starts; the
    // other waits for that one to end.
    end_as_the_notifier_does(&h, &busy, TriggerStatus::Succeeded).await;
    poll_interval_passes().await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 2);
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    let running = lane.run_id.expect("a run holds the lane");
    end_as_the_notifier_does(&h, &running, TriggerStatus::Succeeded).await;
    poll_interval_passes().await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 3);
    for id in staging.iter().chain([&production]) {
        assert!(h.view(id).await.execution_id.is_some(), "{id}");
    }
    let staging_run = h.view(&staging[0]).await.execution_id;
    assert_eq!(staging_run, h.view(&staging[1]).await.execution_id);
    assert_ne!(staging_run, h.view(&production).await.execution_id);
    // Each execution got its own input set.
    let mut envs = Vec::new();
    for execution in [
        staging_run.unwrap(),
        h.view(&production).await.execution_id.unwrap(),
    ] {
        envs.push(testkit::execution_variables(&h.stack.codepipeline, &pipeline, &execution).await);
    }
    assert_eq!(
        envs,
        [
            vec![("env".to_string(), "staging".to_string())],
            vec![("env".to_string(), "production".to_string())]
        ]
    );
}

#[tokio::test]
async fn a_lost_terminal_event_frees_the_pipeline_once_codepipeline_says_it_ended() {
    // moto reports every execution `Succeeded`: the first run ended, but its
    // terminal event never comes.
    let clock = manual_clock();
    let (h, pipeline) = coalescing_harness_at("lost", &[], clock.clone()).await;
    let first = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    let second = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    assert_eq!(
        h.stack.executions(&pipeline).await,
        1,
        "within the bound: waits"
    );
    assert_eq!(h.view(&second).await.status, TriggerStatus::Queued);
    clock.advance(PAST_THE_BOUND);
    poll_interval_passes().await;
    drain_batches(&h).await;
    assert_eq!(
        h.stack.executions(&pipeline).await,
        2,
        "past the bound: asked, freed, started"
    );
    assert_eq!(h.view(&first).await.status, TriggerStatus::Succeeded);
    assert_eq!(h.view(&second).await.status, TriggerStatus::Started);
}

#[tokio::test]
async fn a_lane_holder_whose_execution_does_not_exist_frees_the_pipeline() {
    let clock = manual_clock();
    let (h, pipeline) = coalescing_harness_at("ghost", &[], clock.clone()).await;
    let first = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    // The lane names an execution CodePipeline has never heard of.
    h.stack
        .dynamodb
        .update_item()
        .table_name(&h.stack.table_name)
        .key("pk", AttributeValue::S(lane_pk(&pipeline)))
        .update_expression("SET execution_id = :e")
        .expression_attribute_values(
            ":e",
            AttributeValue::S("00000000-dead-beef-0000-000000000000".into()),
        )
        .send()
        .await
        .unwrap();
    let second = h.enqueue(&pipeline).await;
    clock.advance(PAST_THE_BOUND);
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 2);
    assert_eq!(h.view(&second).await.status, TriggerStatus::Started);
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(second.as_str()));
    // The first run's record names its real execution, which was not asked
    // about: it keeps what it had.
    assert_eq!(h.view(&first).await.status, TriggerStatus::Started);
}

/// A CodePipeline that says every execution is still in progress, and
/// counts starts (none expected).
fn codepipeline_in_progress() -> (
    aws_sdk_codepipeline::Client,
    aws_smithy_mocks::Rule,
    aws_smithy_mocks::Rule,
) {
    let status = mock!(aws_sdk_codepipeline::Client::get_pipeline_execution).then_output(|| {
        GetPipelineExecutionOutput::builder()
            .pipeline_execution(
                PipelineExecution::builder()
                    .status(PipelineExecutionStatus::InProgress)
                    .build(),
            )
            .build()
    });
    let start = mock!(aws_sdk_codepipeline::Client::start_pipeline_execution).then_output(|| {
        StartPipelineExecutionOutput::builder()
            .pipeline_execution_id("should-not-start")
            .build()
    });
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, &[&status, &start]);
    (client, status, start)
}

#[tokio::test]
async fn a_holder_codepipeline_says_still_runs_keeps_the_pipeline_and_is_asked_again_later() {
    let (h, pipeline) = coalescing_harness("slow", &[]).await;
    let first = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    let lane_before = h.table.runs().get_lane(&pipeline).await.unwrap();
    // A second worker, past the bound on its clock, whose CodePipeline says
    // the first run is still going.
    let (codepipeline, status_rule, start_rule) = codepipeline_in_progress();
    let config = WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("DLQ_URL", h.stack.queues.dlq_url.as_str()),
        ("PIPELINES", format!("app={pipeline}").as_str()),
        ("RUN_POLL_INTERVAL", "1s"),
    ]))
    .unwrap();
    let clock = manual_clock();
    let slow = Arc::new(Worker::new(
        config,
        h.stack.dynamodb.clone(),
        h.stack.sqs.clone(),
        codepipeline,
        clock.clone(),
    ));
    let second = h.enqueue(&pipeline).await;
    clock.advance(PAST_THE_BOUND);
    let response = slow.handle(h.stack.receive_event(30).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_rule.num_calls(), 1, "asked once");
    assert_eq!(start_rule.num_calls(), 0, "nothing started");
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(first.as_str()));
    assert!(
        lane.checked_at > lane_before.checked_at,
        "the check is noted"
    );
    // Within the bound again, the next poll does not ask.
    clock.advance(Duration::from_secs(60));
    poll_interval_passes().await;
    let response = slow.handle(h.stack.receive_event(30).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status_rule.num_calls(), 1);
    assert_eq!(h.view(&second).await.status, TriggerStatus::Queued);
}

#[tokio::test]
async fn an_opener_redelivered_after_a_crash_between_start_and_record_starts_nothing_twice() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("crash").await;
    let id = stack.enqueue_trigger(&pipeline).await;
    // The crashed attempt got as far as the start: run opened, lane taken,
    // CodePipeline asked with the run id as token. Nothing was recorded.
    let table = shared::aws::table::Table::new(stack.dynamodb.clone(), &stack.table_name);
    opens_its_run_and_takes_the_lane(&table, &id).await;
    // CodePipeline answers a start with this token with the execution it
    // started the first time (clientRequestToken is its idempotency key).
    let (token, name) = (id.clone(), pipeline.clone());
    let start = mock!(aws_sdk_codepipeline::Client::start_pipeline_execution)
        .match_requests(move |r| {
            r.client_request_token() == Some(token.as_str()) && r.name() == Some(name.as_str())
        })
        .then_output(|| {
            StartPipelineExecutionOutput::builder()
                .pipeline_execution_id("exec-1")
                .build()
        });
    let codepipeline = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, &[&start]);
    let allowlist = format!("app={pipeline}");
    let h = harness_from(
        stack,
        &[("PIPELINES", allowlist.as_str())],
        Some(codepipeline),
        Arc::new(SystemClock),
    )
    .await;
    // The redelivery, twice (SQS may deliver it again after this one too).
    let event = h.stack.receive_event(0).await;
    for _ in 0..2 {
        let response = h.worker.handle(event.clone()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
    }
    assert_eq!(start.num_calls(), 1, "one start, with the run's own token");
    let view = h.view(&id).await;
    assert_eq!(view.status, TriggerStatus::Started);
    assert_eq!(view.execution_id.as_deref(), Some("exec-1"));
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.execution_id.as_deref(), Some("exec-1"));
}

/// `trigger`'s run opened and holding its lane, as its opener left it
/// before it died; its message is gone (dead-lettered).
async fn holds_the_lane_without_its_message(h: &Harness, trigger: &str) {
    h.stack.drain(&h.stack.queues.queue_url).await;
    opens_its_run_and_takes_the_lane(&h.table, trigger).await;
}

/// `trigger` opens its run and takes its lane, as a worker does before it
/// asks CodePipeline.
async fn opens_its_run_and_takes_the_lane(table: &shared::aws::table::Table, trigger: &str) {
    let now = SystemClock.now_ms();
    let record = table.triggers().get(trigger, now).await.unwrap().unwrap();
    let opening = shared::aws::table::runs::Opening::up_to(100);
    let opened = testkit::table::join_run(table, &record, &opening, now, now / 1000 + 3600).await;
    assert_eq!(opened, Joined::Opened(trigger.to_string()));
    let run = table.runs().get(trigger).await.unwrap().unwrap();
    assert_eq!(
        table.runs().take_lane(&run, now).await.unwrap(),
        Take::Taken
    );
}

#[tokio::test]
async fn a_start_that_went_through_unrecorded_is_found_and_recorded_not_started_again() {
    let clock = manual_clock();
    let (h, pipeline) = coalescing_harness_at("unrecorded", &[], clock.clone()).await;
    let first = h.enqueue(&pipeline).await;
    // The first run's opener got as far as the start, then lost its record
    // (DynamoDB refused the write) and, in the end, its message: the lane
    // is held, CodePipeline runs the execution, nothing says so.
    holds_the_lane_without_its_message(&h, &first).await;
    let started = h
        .stack
        .codepipeline
        .start_pipeline_execution()
        .name(&pipeline)
        .client_request_token(&first)
        .send()
        .await
        .unwrap();
    let execution_id = started.pipeline_execution_id().unwrap().to_string();

    // Within a minute of the take, a second trigger waits without asking.
    let second = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    assert_eq!(h.view(&second).await.status, TriggerStatus::Queued);
    assert_eq!(h.view(&first).await.status, TriggerStatus::Queued);

    // A minute on, the next look at the lane asks CodePipeline, which has
    // the holder's execution: recorded now, and nothing else is started.
    clock.advance(Duration::from_secs(61));
    poll_interval_passes().await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 1, "no second start");
    let view = h.view(&first).await;
    assert_eq!(view.status, TriggerStatus::Started);
    assert_eq!(view.execution_id.as_deref(), Some(execution_id.as_str()));
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(first.as_str()));
    assert_eq!(lane.execution_id.as_deref(), Some(execution_id.as_str()));
    assert_eq!(h.view(&second).await.status, TriggerStatus::Queued);

    // From there on it is an ordinary holder: once CodePipeline says it
    // ended (moto ends executions at once), the second run starts.
    clock.advance(PAST_THE_BOUND);
    poll_interval_passes().await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 2);
    assert_eq!(h.view(&first).await.status, TriggerStatus::Succeeded);
    assert_eq!(h.view(&second).await.status, TriggerStatus::Started);
}

#[tokio::test]
async fn a_holder_that_never_started_frees_the_pipeline_after_a_minute() {
    let clock = manual_clock();
    let (h, pipeline) = coalescing_harness_at("neverstarted", &[], clock.clone()).await;
    let first = h.enqueue(&pipeline).await;
    // The opener took the lane and died before the start; its message is
    // gone (dead-lettered).
    holds_the_lane_without_its_message(&h, &first).await;
    let second = h.enqueue(&pipeline).await;
    clock.advance(Duration::from_secs(61));
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 1, "the second run's");
    assert_eq!(h.view(&second).await.status, TriggerStatus::Started);
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(second.as_str()));
}

/// Without coalescing each trigger is a run of its own, in the same
/// bounded queue as every run: one in progress, the others waiting their
/// turn, a trigger past `max_pending` refused and charged nothing
/// (docs/reference/configuration.md).
#[tokio::test]
async fn with_coalesce_off_each_trigger_is_a_run_of_its_own_in_the_bounded_queue() {
    let (h, pipeline) = coalescing_harness(
        "alone",
        &[(
            "PIPELINE_SETTINGS",
            r#"{"app": {"coalesce": false, "max_pending": 2, "reserved_pending": 0}}"#,
        )],
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = h.enqueue(&pipeline).await;
        drain_batches(&h).await;
        ids.push(id);
    }
    // The first runs; two wait behind it, each its own run; the fourth
    // would be a third pending run: refused.
    assert_eq!(h.stack.executions(&pipeline).await, 1);
    assert_eq!(h.view(&ids[0]).await.status, TriggerStatus::Started);
    for (id, position) in [(&ids[1], 1), (&ids[2], 2)] {
        let view = h.view(id).await;
        assert_eq!(view.status, TriggerStatus::Queued);
        assert!(!view.coalesced);
        assert_eq!(view.run.as_ref().map(|r| r.id.as_str()), Some(id.as_str()));
        assert_eq!(view.queue.map(|q| q.position), Some(position));
    }
    let refused = h.view(&ids[3]).await;
    assert_eq!(refused.status, TriggerStatus::Refused);
    assert_eq!(refused.reason.as_deref(), Some("queue_full"));
    // The end of each run starts the next, in order, one at a time.
    end_as_the_notifier_does(&h, &ids[0], TriggerStatus::Succeeded).await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 2);
    assert_eq!(h.view(&ids[1]).await.status, TriggerStatus::Started);
    assert_eq!(h.view(&ids[2]).await.status, TriggerStatus::Queued);
    end_as_the_notifier_does(&h, &ids[1], TriggerStatus::Succeeded).await;
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 3);
    let executions: std::collections::BTreeSet<String> = futures::future::join_all(
        ids[..3]
            .iter()
            .map(|id| async { h.view(id).await.execution_id }),
    )
    .await
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(executions.len(), 3, "three runs, three executions");
}

#[tokio::test]
async fn a_dead_lettered_run_takes_its_triggers_along_and_replaying_its_opener_revives_them() {
    let (h, pipeline) = coalescing_harness("dead", &[]).await;
    let busy = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    let opener = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    let joiner = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    assert!(h.view(&joiner).await.coalesced);
    // The pipeline is deleted before the run can start.
    let declaration = h
        .stack
        .codepipeline
        .get_pipeline()
        .name(&pipeline)
        .send()
        .await
        .unwrap()
        .pipeline
        .expect("a declaration");
    h.stack
        .codepipeline
        .delete_pipeline()
        .name(&pipeline)
        .send()
        .await
        .unwrap();
    end_as_the_notifier_does(&h, &busy, TriggerStatus::Succeeded).await;
    poll_interval_passes().await;
    drain_batches(&h).await;
    for id in [&opener, &joiner] {
        assert_eq!(h.view(id).await.status, TriggerStatus::DeadLettered, "{id}");
    }
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None,
        "lane freed"
    );
    // The opener's message — once, or twice when its wake and the lane's
    // poll (a copy of it) were in flight together: replaying both starts
    // the run once.
    let dead = h.dead_letters().await;
    assert!((1..=2).contains(&dead.len()), "{dead:?}");
    assert!(dead.iter().all(|d| d.0 == "PipelineNotFound"), "{dead:?}");
    // A late copy of the opener (a wake or poll still on its way) is not
    // tried again while its record says dead-lettered: the DLQ holds it.
    h.send_raw(&dead[0].2).await;
    drain_batches(&h).await;
    assert_eq!(h.dead_letters().await, Vec::new(), "no second DLQ entry");
    assert_eq!(h.view(&opener).await.status, TriggerStatus::DeadLettered);
    // An operator brings the pipeline back and replays the message, as
    // `trigger-ops dlq replay` does.
    h.stack
        .codepipeline
        .create_pipeline()
        .pipeline(declaration)
        .send()
        .await
        .unwrap();
    assert!(h
        .table
        .triggers()
        .record_requeued(&opener, SystemClock.now_ms())
        .await
        .unwrap());
    for (_, _, body) in &dead {
        h.send_raw(body).await;
    }
    drain_batches(&h).await;
    assert_eq!(
        h.stack.executions(&pipeline).await,
        1,
        "every copy replayed, one run"
    );
    let opener_view = h.view(&opener).await;
    assert_eq!(opener_view.status, TriggerStatus::Started);
    assert_eq!(h.view(&joiner).await.execution_id, opener_view.execution_id);
}

#[tokio::test]
async fn a_full_queue_refuses_a_new_input_set_and_gives_every_slot_back() {
    let settings = ref_settings(1);
    let (h, pipeline) =
        coalescing_harness("full", &[("PIPELINE_SETTINGS", settings.as_str())]).await;
    // One run in progress, one pending: the queue (max_pending 1) is full.
    let first = enqueue_ref(&h, &pipeline, "a").await;
    drain_batches(&h).await;
    let pending = enqueue_ref(&h, &pipeline, "b").await;
    drain_batches(&h).await;
    assert_eq!(h.view(&pending).await.status, TriggerStatus::Queued);
    // Another input set is refused; the pending set's trigger still joins.
    let refused = enqueue_ref(&h, &pipeline, "c").await;
    let joiner = enqueue_ref(&h, &pipeline, "b").await;
    drain_batches(&h).await;
    let view = h.view(&refused).await;
    assert_eq!(view.status, TriggerStatus::Refused);
    assert_eq!(view.reason.as_deref(), Some("queue_full"));
    assert!(view.retry_after_seconds.is_some_and(|s| s >= 1), "{view:?}");
    assert_eq!(
        h.view(&joiner).await.run.map(|r| r.id),
        Some(pending.clone())
    );
    assert_eq!(
        h.stack.executions(&pipeline).await,
        1,
        "nothing started for it"
    );
    // Charged nothing: its slot is gone from its client's quota.
    let record = h.record(&refused).await;
    let level = QuotaLevel::client(
        &record.client_key,
        shared::rules::quota::QuotaPolicy {
            limit: 1,
            window: Duration::from_secs(60),
        },
    );
    let slots = h.table.admission().slots(&level).await.unwrap();
    assert!(!slots.contains(&record.requested_at), "{slots:?}");
    // A redelivery of the refused trigger's message changes nothing.
    assert_eq!(h.view(&first).await.status, TriggerStatus::Started);
}

#[tokio::test]
async fn waiting_runs_cost_nothing_one_poll_per_pipeline_and_start_in_opening_order() {
    let settings = ref_settings(5);
    let (h, pipeline) =
        coalescing_harness("fifo", &[("PIPELINE_SETTINGS", settings.as_str())]).await;
    let first = enqueue_ref(&h, &pipeline, "a").await;
    drain_batches(&h).await;
    let mut waiting = Vec::new();
    for value in ["b", "c", "d", "e"] {
        waiting.push(enqueue_ref(&h, &pipeline, value).await);
        drain_batches(&h).await;
    }
    // Four runs wait; one message polls for all of them.
    assert_eq!(
        queued_messages(&h).await,
        1,
        "one poll per pipeline, none per run"
    );
    for (i, id) in waiting.iter().enumerate() {
        let view = h.view(id).await;
        let queue = view.queue.expect("a place in line");
        assert_eq!((queue.position, queue.ahead), (i + 1, i + 1), "{id}");
    }
    // Each end wakes the first in line: they start in the order opened.
    end_as_the_notifier_does(&h, &first, TriggerStatus::Succeeded).await;
    for (i, id) in waiting.iter().enumerate() {
        drain_batches(&h).await;
        let view = h.view(id).await;
        assert_eq!(view.status, TriggerStatus::Started, "{i}: {view:?}");
        assert!(view.estimated_end_at.is_some(), "a typical run is known");
        for later in &waiting[i + 1..] {
            let queue = h.view(later).await.queue.expect("still in line");
            assert!(queue.position < waiting.len() - i);
        }
        end_as_the_notifier_does(&h, id, TriggerStatus::Succeeded).await;
    }
    drain_batches(&h).await;
    assert_eq!(h.stack.executions(&pipeline).await, 5);
}

/// A keyed trigger of `value` for `ref`, charged to the key `key`.
async fn enqueue_keyed(h: &Harness, pipeline: &str, value: &str, key: &str) -> String {
    h.stack
        .enqueue_keyed_trigger(pipeline, json!({ "ref": value }), key)
        .await
}

/// Of `max_pending` 3, `reserved_pending` (default 1) is for keyed
/// triggers: a flood of anonymous input sets fills two and is refused
/// after; a keyed trigger opens the third and starts right after the run in
/// progress; a keyed trigger joining an anonymous run takes it along to the
/// keyed queue; the bound holds all along (docs/reference/configuration.md).
#[tokio::test]
async fn keyed_runs_have_slots_no_flood_can_take_and_start_first() {
    let settings = ref_settings(3);
    let (h, pipeline) =
        coalescing_harness("keyed", &[("PIPELINE_SETTINGS", settings.as_str())]).await;
    let running = enqueue_ref(&h, &pipeline, "a").await;
    drain_batches(&h).await;
    let mut anonymous = Vec::new();
    for value in ["b", "c", "d"] {
        anonymous.push(enqueue_ref(&h, &pipeline, value).await);
        drain_batches(&h).await;
    }
    let refused = h.view(&anonymous[2]).await;
    assert_eq!(refused.status, TriggerStatus::Refused, "{refused:?}");
    assert_eq!(refused.lane, shared::rules::runs::RunLane::Anonymous);
    // The reserved slot: a keyed run, first in line.
    let keyed = enqueue_keyed(&h, &pipeline, "k", "ci-main").await;
    drain_batches(&h).await;
    let view = h.view(&keyed).await;
    assert_eq!(view.status, TriggerStatus::Queued, "{view:?}");
    assert_eq!(view.queue.map(|q| q.position), Some(1));
    assert_eq!(view.key.as_deref(), Some("ci-main"));
    for (id, position) in [(&anonymous[0], 2), (&anonymous[1], 3)] {
        assert_eq!(h.view(id).await.queue.map(|q| q.position), Some(position));
    }
    // Three pending: a second keyed input set is refused too, and its key's
    // slot given back.
    let second = enqueue_keyed(&h, &pipeline, "k2", "ci-main").await;
    drain_batches(&h).await;
    assert_eq!(h.view(&second).await.status, TriggerStatus::Refused);
    let key_level = QuotaLevel::key("ci-main", shared::rules::keys::DEFAULT_KEY_QUOTA);
    let slots = h.table.admission().slots(&key_level).await.unwrap();
    let taken = slots.iter().filter(|at| **at != 0).count();
    assert_eq!(taken, 1, "only the accepted keyed trigger's: {slots:?}");
    // A keyed trigger of c's input set joins c's run, which moves to the
    // keyed queue behind k; the pending runs stay three, so an anonymous
    // newcomer is still refused.
    let joiner = enqueue_keyed(&h, &pipeline, "c", "deploy-bot").await;
    drain_batches(&h).await;
    let joined = h.view(&joiner).await;
    assert_eq!(
        joined.run.as_ref().map(|r| r.id.as_str()),
        Some(anonymous[1].as_str())
    );
    assert_eq!(joined.queue.map(|q| q.position), Some(2));
    assert_eq!(
        h.view(&anonymous[0]).await.queue.map(|q| q.position),
        Some(3)
    );
    let late = enqueue_ref(&h, &pipeline, "e").await;
    drain_batches(&h).await;
    assert_eq!(h.view(&late).await.status, TriggerStatus::Refused);
    // They start one at a time: k, then c (keyed now), then b.
    let mut holder = running;
    for next in [&keyed, &anonymous[1], &anonymous[0]] {
        end_as_the_notifier_does(&h, &holder, TriggerStatus::Succeeded).await;
        drain_batches(&h).await;
        assert_eq!(h.view(next).await.status, TriggerStatus::Started, "{next}");
        holder = next.clone();
    }
    assert_eq!(h.stack.executions(&pipeline).await, 4);
}

/// Two public names of one CodePipeline share its lane and one bound: the
/// tightest `max_pending`, whichever name the triggers come by.
#[tokio::test]
async fn aliases_of_one_codepipeline_share_one_bound() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("alias").await;
    let allowlist = format!("app={pipeline},app-too={pipeline}");
    let settings = r#"{"app": {"max_pending": 2, "reserved_pending": 0, "inputs": {"ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}"}}},
                       "app-too": {"max_pending": 5, "reserved_pending": 0, "inputs": {"ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}"}}}}"#;
    let h = harness_from(
        stack,
        &[
            ("PIPELINES", allowlist.as_str()),
            ("PIPELINE_SETTINGS", settings),
        ],
        None,
        Arc::new(SystemClock),
    )
    .await;
    let running = enqueue_ref(&h, &pipeline, "a").await;
    drain_batches(&h).await;
    let mut ids = Vec::new();
    for (public, value) in [
        ("app", "b"),
        ("app-too", "c"),
        ("app-too", "d"),
        ("app", "e"),
    ] {
        ids.push(
            h.stack
                .enqueue_trigger_as(public, &pipeline, json!({ "ref": value }))
                .await,
        );
        drain_batches(&h).await;
    }
    let statuses: Vec<TriggerStatus> =
        futures::future::join_all(ids.iter().map(|id| async { h.view(id).await.status })).await;
    assert_eq!(
        statuses,
        [
            TriggerStatus::Queued,
            TriggerStatus::Queued,
            TriggerStatus::Refused,
            TriggerStatus::Refused
        ]
    );
    assert_eq!(h.view(&running).await.status, TriggerStatus::Started);
    assert_eq!(h.stack.executions(&pipeline).await, 1);
}

/// Sends `message` to the work queue again with its attributes, its poll
/// token replaced by `poll_token` when given.
async fn send_copy(h: &Harness, message: &aws_sdk_sqs::types::Message, poll_token: Option<&str>) {
    let mut send = h
        .stack
        .sqs
        .send_message()
        .queue_url(&h.stack.queues.queue_url)
        .message_body(message.body().unwrap());
    for (name, value) in message.message_attributes().unwrap() {
        if poll_token.is_none() || name != worker::POLL_TOKEN {
            send = send.message_attributes(name, value.clone());
        }
    }
    if let Some(token) = poll_token {
        let value = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(token)
            .build()
            .unwrap();
        send = send.message_attributes(worker::POLL_TOKEN, value);
    }
    send.send().await.unwrap();
}

/// Each trigger a run of its own, all waiting in one lane.
const ALONE_SETTINGS: &str =
    r#"{"app": {"coalesce": false, "max_pending": 10, "reserved_pending": 0}}"#;

/// The message carrying a lane's poll may belong to a trigger whose run
/// started meanwhile (woken by another copy), or that was refused or gone:
/// whatever became of it, the poll goes on while runs still wait, since the
/// wakes are best effort (a chaos run found a free lane with two runs
/// waiting and no message left to start them).
#[tokio::test]
async fn the_lanes_poll_goes_on_whatever_became_of_the_trigger_that_carries_it() {
    let (h, pipeline) =
        coalescing_harness("pollkeep", &[("PIPELINE_SETTINGS", ALONE_SETTINGS)]).await;
    let holder = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    assert_eq!(h.view(&holder).await.status, TriggerStatus::Started);
    let (b, c) = (h.enqueue(&pipeline).await, h.enqueue(&pipeline).await);
    drain_batches(&h).await;
    // One of them took the poll: its message comes back after the interval.
    poll_interval_passes().await;
    let polls = h.stack.drain(&h.stack.queues.queue_url).await;
    let poll = polls
        .iter()
        .find(|m| {
            m.message_attributes()
                .is_some_and(|a| a.contains_key(worker::POLL_TOKEN))
        })
        .expect("a message carrying the lane's poll");
    let carrier: serde_json::Value = serde_json::from_str(poll.body().unwrap()).unwrap();
    let carrier = carrier["trigger_id"].as_str().unwrap().to_string();
    assert!(carrier == b || carrier == c, "{carrier}");
    // Its trigger started meanwhile (as a wake of another copy would).
    let now = SystemClock.now_ms();
    h.table
        .triggers()
        .record_started(&carrier, "ex-by-a-wake", now, now / 1000 + 3600)
        .await
        .unwrap();
    // The poll comes back: it is not dropped, it polls on.
    send_copy(&h, poll, None).await;
    drain_batches(&h).await;
    poll_interval_passes().await;
    let again = h.stack.drain(&h.stack.queues.queue_url).await;
    assert!(
        again.iter().any(|m| m
            .message_attributes()
            .is_some_and(|a| a.contains_key(worker::POLL_TOKEN))),
        "the lane's poll went on: {again:?}"
    );
}

/// A message whose poll token is not the lane's (a copy dead-lettered
/// before the DLQ dropped the token, then replayed) is done while the
/// lane's poll lives, and takes the poll once that has lapsed: its run
/// never waits on the best-effort wakes alone, and there is never a second
/// poll.
#[tokio::test]
async fn a_stale_poll_token_takes_the_lanes_poll_only_once_it_has_lapsed() {
    let clock = manual_clock();
    let (h, pipeline) = coalescing_harness_at(
        "stalepoll",
        &[("PIPELINE_SETTINGS", ALONE_SETTINGS)],
        clock.clone(),
    )
    .await;
    let holder = h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    assert_eq!(h.view(&holder).await.status, TriggerStatus::Started);
    h.enqueue(&pipeline).await;
    drain_batches(&h).await;
    let lane_poll = || async { h.table.runs().get_lane(&pipeline).await.unwrap() };
    let live = lane_poll()
        .await
        .poll_token
        .expect("the waiting run took the poll");
    // The carrier comes back after the interval; it is taken off the queue
    // here, and a copy carrying a token the lane never gave is sent instead.
    poll_interval_passes().await;
    let carrier = h
        .stack
        .drain(&h.stack.queues.queue_url)
        .await
        .into_iter()
        .find(|m| {
            m.message_attributes()
                .is_some_and(|a| a.contains_key(worker::POLL_TOKEN))
        })
        .expect("the message carrying the lane's poll");
    let send_stale_copy = || send_copy(&h, &carrier, Some("a-stale-token"));
    // The lane's poll lives (the worker's clock has not moved): the copy is
    // done, the poll stays the lane's.
    send_stale_copy().await;
    drain_batches(&h).await;
    assert_eq!(lane_poll().await.poll_token.as_deref(), Some(live.as_str()));
    // Past its lapse (nobody renewed it: its carrier was taken away), the
    // copy takes the poll under a token of its own, alive again.
    clock.advance(Duration::from_secs(3));
    send_stale_copy().await;
    drain_batches(&h).await;
    let taken = lane_poll().await;
    let token = taken.poll_token.expect("the lane has its poll again");
    assert!(token != live && token != "a-stale-token", "{token}");
    assert!(taken.poll_until > clock.now_ms());
}
