//! `trigger-ops dlq …` against moto: the real binary, real queues filled by
//! the real worker giving messages up, the real table.

use ops::dlq::{Filter, Queues, ReplayOptions};
use serde_json::Value;
mod common;

use common::{ops, ops_with, Run};
use shared::aws;
use shared::aws::table::Table;
use shared::clock::{Clock, SystemClock};
use shared::config::{Env, WorkerConfig};
use shared::rules::status::TriggerStatus;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use testkit::{dead_endpoint, moto_endpoint, sdk_config_at, unique, Stack};
use worker::Worker;

/// `n` triggers for `pipeline` that the worker gave up on: `PipelineNotFound`
/// when the pipeline does not exist, `ConnectionError` when `dead` (its
/// CodePipeline endpoint refuses connections, one attempt allowed). Not
/// coalesced: one DLQ message per trigger.
async fn seed(stack: &Stack, pipeline: &str, n: usize, dead: bool) -> Vec<String> {
    let worker = ghost_worker(stack, pipeline, dead).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(stack.enqueue_trigger(pipeline).await);
    }
    work_off(stack, &worker).await;
    ids
}

/// The real worker for `pipeline`, which does not exist (or, when `dead`,
/// whose CodePipeline cannot be reached): it gives every trigger up to the
/// DLQ, each replayed copy again.
async fn ghost_worker(stack: &Stack, pipeline: &str, dead: bool) -> Arc<Worker> {
    let allowlist = format!("app={pipeline}");
    let config = WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", stack.table_name.as_str()),
        ("DLQ_URL", stack.queues.dlq_url.as_str()),
        ("PIPELINES", allowlist.as_str()),
        ("MAX_ATTEMPTS", "1"),
        // The ghost lane's safety poll stays delayed, out of these counts.
        ("RUN_POLL_INTERVAL", "15m"),
        (
            "PIPELINE_SETTINGS",
            r#"{"app": {"coalesce": false, "max_pending": 100, "reserved_pending": 0}}"#,
        ),
    ]))
    .unwrap();
    let codepipeline = if dead {
        aws::codepipeline(&sdk_config_at(&dead_endpoint()).await, &stack.calls)
    } else {
        stack.codepipeline.clone()
    };
    Arc::new(Worker::new(
        config,
        stack.dynamodb.clone(),
        stack.sqs.clone(),
        codepipeline,
        Arc::new(SystemClock),
    ))
}

/// Hands the work queue to `worker`, batch by batch, until it is empty.
async fn work_off(stack: &Stack, worker: &Arc<Worker>) {
    loop {
        let event = stack.receive_event(60).await;
        if event["Records"].as_array().unwrap().is_empty() {
            break;
        }
        let response = worker.handle(event.clone()).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        // As Lambda does: a batch without failures is deleted.
        for record in event["Records"].as_array().unwrap() {
            stack
                .sqs
                .delete_message()
                .queue_url(&stack.queues.queue_url)
                .receipt_handle(record["receiptHandle"].as_str().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

/// Puts `body` on the DLQ as it is.
async fn dead_letter_raw(stack: &Stack, body: &str) {
    stack.send_raw(&stack.queues.dlq_url, body).await;
}

fn stats(stack: &Stack) -> Value {
    let run = ops(stack, &["dlq", "stats", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()
}

/// The trigger's status as `GET /triggers/{id}` shows it (following its run).
async fn status(stack: &Stack, trigger_id: &str) -> TriggerStatus {
    Table::new(stack.dynamodb.clone(), &stack.table_name)
        .triggers()
        .view(trigger_id, SystemClock.now_ms())
        .await
        .unwrap()
        .expect("record")
        .status
}

#[tokio::test]
async fn stats_counts_both_queues_and_the_oldest_age() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 3, false).await;
    stack.enqueue_trigger("app").await;
    stack.enqueue_trigger("app").await;
    stack.enqueue_trigger("app").await;
    // One work message in flight (a worker holds it).
    stack
        .sqs
        .receive_message()
        .queue_url(&stack.queues.queue_url)
        .max_number_of_messages(1)
        .visibility_timeout(300)
        .send()
        .await
        .unwrap();
    let value = stats(&stack);
    assert_eq!(value["work_queue"]["visible"], 2);
    assert_eq!(value["work_queue"]["in_flight"], 1);
    assert_eq!(value["dlq"]["visible"], 3);
    assert_eq!(value["dlq"]["in_flight"], 0);
    assert!(value["dlq_oldest_age_seconds"].as_u64().is_some());
    // Looking consumed nothing.
    assert_eq!(stats(&stack)["dlq"]["visible"], 3);
    let text = ops(&stack, &["dlq", "stats"]);
    assert!(
        text.stdout
            .starts_with("QUEUE  VISIBLE  IN FLIGHT  DELAYED\n"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("oldest DLQ message: "));
}

#[tokio::test]
async fn peek_shows_why_and_leaves_every_message_visible() {
    let stack = Stack::new().await;
    let ghost = unique("ghost");
    let ids = seed(&stack, &ghost, 12, false).await;
    let run = ops(&stack, &["dlq", "peek", "--max", "20", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let messages = run.json()["messages"].as_array().unwrap().clone();
    assert_eq!(messages.len(), 12);
    let mut seen: Vec<String> = messages
        .iter()
        .map(|m| m["trigger_id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    for m in &messages {
        assert_eq!(m["pipeline"], ghost.as_str());
        assert_eq!(m["error_code"], "PipelineNotFound");
        assert!(!m["error_message"].as_str().unwrap().is_empty());
        assert!(m["receive_count"].as_u64().unwrap() >= 1);
        assert!(m["first_sent_at"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(stats(&stack)["dlq"]["visible"], 12);
    let limited = ops(&stack, &["dlq", "peek", "--max", "5"]);
    assert_eq!(limited.stdout.lines().count(), 1 + 5, "{}", limited.stdout);
    assert!(limited.stdout.starts_with("TRIGGER "));
    assert_eq!(stats(&stack)["dlq"]["visible"], 12);
}

#[tokio::test]
async fn a_dry_run_moves_nothing() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 4, false).await;
    let run = ops(&stack, &["dlq", "replay", "--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = run.json();
    assert_eq!(summary["moved"], 0);
    assert_eq!(summary["messages"].as_array().unwrap().len(), 4);
    let counts = stats(&stack);
    assert_eq!(counts["dlq"]["visible"], 4);
    assert_eq!(counts["work_queue"]["visible"], 0);
}

#[tokio::test]
async fn max_moves_exactly_that_many_and_their_records_go_back_to_queued() {
    let stack = Stack::new().await;
    let ids = seed(&stack, &unique("ghost"), 5, false).await;
    let run = ops(&stack, &["dlq", "replay", "--max", "3", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = run.json();
    assert_eq!(summary["moved"], 3);
    assert_eq!(summary["failed"], 0);
    let counts = stats(&stack);
    assert_eq!(counts["dlq"]["visible"], 2);
    assert_eq!(counts["work_queue"]["visible"], 3);
    let moved: Vec<String> = summary["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["trigger_id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        let expected = if moved.contains(id) {
            TriggerStatus::Queued
        } else {
            TriggerStatus::DeadLettered
        };
        assert_eq!(status(&stack, id).await, expected, "{id}");
    }
}

#[tokio::test]
async fn filters_move_only_matching_messages() {
    let stack = Stack::new().await;
    let ghost = unique("ghost");
    let unreachable = unique("unreachable");
    seed(&stack, &ghost, 3, false).await;
    seed(&stack, &unreachable, 2, true).await;
    let run = ops(
        &stack,
        &["dlq", "replay", "--error-code", "ConnectionError", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = run.json();
    assert_eq!(
        (
            summary["moved"].as_u64(),
            summary["skipped_by_filter"].as_u64()
        ),
        (Some(2), Some(3))
    );
    for m in summary["messages"].as_array().unwrap() {
        assert_eq!(m["pipeline"], unreachable.as_str());
    }
    // The skipped ones were released at once, not left invisible.
    assert_eq!(stats(&stack)["dlq"]["visible"], 3);
    let run = ops(&stack, &["dlq", "replay", "--pipeline", &ghost]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim_end(),
        "moved 3, skipped by filter 0, failed 0\nthe DLQ holds 0 now"
    );
    let counts = stats(&stack);
    assert_eq!(counts["dlq"]["visible"], 0);
    assert_eq!(counts["work_queue"]["visible"], 5);
}

/// (body, String attributes) of every message on a queue, sorted.
async fn contents(stack: &Stack, url: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut all: Vec<_> = stack
        .drain(url)
        .await
        .iter()
        .map(|m| {
            let mut attributes: Vec<(String, String)> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            attributes.sort();
            (m.body().unwrap_or_default().to_string(), attributes)
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn bodies_and_attributes_arrive_unchanged() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 3, false).await;
    let dlq_copy = contents(&stack, &stack.queues.dlq_url).await;
    assert_eq!(dlq_copy.len(), 3);
    // Put them back exactly (reading consumed them), then replay.
    for (body, attributes) in &dlq_copy {
        let mut send = stack
            .sqs
            .send_message()
            .queue_url(&stack.queues.dlq_url)
            .message_body(body);
        for (k, v) in attributes {
            send = send.message_attributes(
                k,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .unwrap(),
            );
        }
        send.send().await.unwrap();
    }
    let run = ops(&stack, &["dlq", "replay"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each copy carries the replay's mark, and otherwise what it had.
    let mut moved = contents(&stack, &stack.queues.queue_url).await;
    for (_, attributes) in moved.iter_mut() {
        let marks = attributes
            .iter()
            .filter(|(k, _)| k == ops::dlq::REPLAYED_BY)
            .count();
        assert_eq!(marks, 1, "{attributes:?}");
        attributes.retain(|(k, _)| k != ops::dlq::REPLAYED_BY);
    }
    assert_eq!(moved, dlq_copy);
    assert!(moved.iter().all(|(_, a)| a
        .iter()
        .any(|(k, v)| k == "error_code" && v == "PipelineNotFound")));
}

/// Every message, `rate` per second.
fn all_at(rate: f64) -> ReplayOptions {
    ReplayOptions {
        filter: Filter::default(),
        max: None,
        rate,
        dry_run: false,
    }
}

#[tokio::test]
async fn replay_towards_a_missing_queue_deletes_nothing_and_fails() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 3, false).await;
    let missing = format!("{}/123456789012/{}", moto_endpoint(), unique("missing"));
    let run = ops(&stack, &["dlq", "replay", "--queue-url", &missing]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("work queue") && run.stderr.contains(&missing),
        "{}",
        run.stderr
    );
    assert_eq!(stats(&stack)["dlq"]["visible"], 3);

    // Past the up-front check (the queue vanished mid-run): every send fails,
    // so nothing is deleted, and the summary says so.
    let queues = Queues::new(stack.sqs.clone(), Arc::new(SystemClock));
    let summary = queues
        .replay(
            &stack.queues.dlq_url,
            &missing,
            None,
            &all_at(100.0),
            &AtomicBool::new(false),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!((summary.moved, summary.failed), (0, 3));
    assert!(!summary.failures.is_empty());
    assert_eq!(stats(&stack)["dlq"]["visible"], 3);
}

/// The record goes back to `queued` before its message moves (the worker
/// drops a copy whose record still says `dead_lettered`): with the table
/// unreachable, every message stays in the DLQ, visible again, and the
/// summary says why.
#[tokio::test]
async fn a_record_that_cannot_be_set_back_keeps_its_message_in_the_dlq() {
    let stack = Stack::new().await;
    let ids = seed(&stack, &unique("ghost"), 3, false).await;
    let unreachable = Table::new(
        aws::dynamodb(&sdk_config_at(&dead_endpoint()).await, &stack.calls),
        &stack.table_name,
    );
    let queues = Queues::new(stack.sqs.clone(), Arc::new(SystemClock));
    let summary = queues
        .replay(
            &stack.queues.dlq_url,
            &stack.queues.queue_url,
            Some(&unreachable),
            &all_at(100.0),
            &AtomicBool::new(false),
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!((summary.moved, summary.records_not_updated), (0, 3));
    let counts = stats(&stack);
    assert_eq!(counts["dlq"]["visible"], 3, "{counts}");
    assert_eq!(counts["work_queue"]["visible"], 0, "{counts}");
    for id in &ids {
        assert_eq!(status(&stack, id).await, TriggerStatus::DeadLettered);
    }
    assert!(ops::report::replay_text(&summary).contains("3 left in the DLQ"));
}

#[tokio::test]
async fn ctrl_c_finishes_the_batch_in_flight_and_stops() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 15, false).await;
    let queues = Queues::new(stack.sqs.clone(), Arc::new(SystemClock));
    let stop = AtomicBool::new(false);
    let summary = queues
        .replay(
            &stack.queues.dlq_url,
            &stack.queues.queue_url,
            None,
            &all_at(10.0),
            &stop,
            // Ctrl-C arrives while the first batch is in flight.
            &|_| stop.store(true, Ordering::SeqCst),
        )
        .await
        .unwrap();
    assert!(summary.stopped_early);
    assert_eq!(summary.moved, 10);
    let counts = stats(&stack);
    assert_eq!(counts["work_queue"]["visible"], 10);
    assert_eq!(counts["dlq"]["visible"], 5);
}

/// A message that always fails: the worker gives every replayed copy up
/// again, while the replay runs, under a new message id (here after each
/// batch, so every copy is back before the replay looks again). The replay
/// moves each message once, a second copy the DLQ held from before like any
/// other, recognises what comes back by the mark it put on each copy, ends,
/// and says what the DLQ holds; the next replay does the same, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_messages_that_always_fail_moves_each_once_and_ends() {
    let stack = Arc::new(Stack::new().await);
    let ghost = unique("ghost");
    let ids = seed(&stack, &ghost, 3, false).await;
    // The DLQ holds one of them twice, as after a dead-lettering sent twice.
    let looked = stack
        .sqs
        .receive_message()
        .queue_url(&stack.queues.dlq_url)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let body = looked.messages()[0].body().unwrap().to_string();
    dead_letter_raw(&stack, &body).await;
    let worker = ghost_worker(&stack, &ghost, false).await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let queues = Queues::new(stack.sqs.clone(), Arc::new(SystemClock));
    let options = ReplayOptions {
        max: Some(20),
        ..all_at(10.0)
    };
    let runtime = tokio::runtime::Handle::current();
    let give_up_again = |_: u64| {
        tokio::task::block_in_place(|| runtime.block_on(work_off(&stack, &worker)));
    };
    // Round 0 moves the four. The worker gives each trigger up again, and
    // the second copy too when it moved in a later batch than the first
    // (its record was set back to `queued` again) — else it is dropped as
    // one already in the DLQ. Whatever came back, the next round moves.
    let mut moving = 4;
    for round in 0..2 {
        let summary = queues
            .replay(
                &stack.queues.dlq_url,
                &stack.queues.queue_url,
                Some(&table),
                &options,
                &AtomicBool::new(false),
                &give_up_again,
            )
            .await
            .unwrap();
        assert_eq!(summary.moved, moving, "round {round}: {summary:?}");
        // Every trigger came back, each copy at most once.
        assert!(
            (3..=moving).contains(&summary.came_back),
            "round {round}: {summary:?}"
        );
        assert_eq!(
            summary.left,
            Some(summary.came_back),
            "round {round}: {summary:?}"
        );
        assert!(!summary.stopped_early);
        let text = ops::report::replay_text(&summary);
        assert!(
            text.contains(&format!("came back {}", summary.came_back)),
            "{text}"
        );
        // What came back is visible again at once, not held for minutes.
        let counts = stats(&stack);
        assert_eq!(
            counts["dlq"]["visible"], summary.came_back,
            "round {round}: {counts}"
        );
        assert_eq!(counts["dlq"]["in_flight"], 0, "round {round}: {counts}");
        for id in &ids {
            assert_eq!(status(&stack, id).await, TriggerStatus::DeadLettered);
        }
        moving = summary.came_back;
    }
    // The binary, with nobody working the queue: each message moves once,
    // the copies this call made are not taken for the DLQ's own.
    let run = ops(
        &stack,
        &["dlq", "replay", "--max", "20", "--rate", "10", "--json"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = run.json();
    assert_eq!(summary["moved"], moving, "{summary}");
    assert_eq!(summary["came_back"], 0, "{summary}");
    assert_eq!(summary["left"], 0, "{summary}");
    let counts = stats(&stack);
    assert_eq!(counts["work_queue"]["visible"], moving, "{counts}");
    work_off(&stack, &worker).await;
    let text = ops(&stack, &["dlq", "replay", "--rate", "10"]);
    assert!(text.stdout.contains("moved "), "{}", text.stdout);
    assert!(text.stdout.contains("the DLQ holds"), "{}", text.stdout);
}

/// SIGTERM (a CI job's cancel, `timeout`) stops a replay after the batch
/// in flight: what it skipped is visible again at once, and the summary
/// counts what moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_replay_and_leaves_nothing_invisible() {
    let stack = Stack::new().await;
    let (moving, skipped) = (unique("ghost"), unique("ghost"));
    seed(&stack, &moving, 6, false).await;
    seed(&stack, &skipped, 4, false).await;
    let mut child = common::ops_command(
        &stack,
        &[],
        &[
            "dlq",
            "replay",
            "--pipeline",
            &moving,
            "--rate",
            "0.2",
            "--json",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("trigger-ops starts");
    // Once the first message moved (the next is due 5 s later), stop it.
    // Counted without receiving: `dlq stats` would hold the DLQ's messages
    // for a moment, and the replay would find the queue empty.
    let deliveries = shared::aws::queue::Deliveries::new(stack.sqs.clone());
    for look in 0.. {
        if let Some(ended) = child.try_wait().expect("the child can be waited on") {
            let run = Run::from(child.wait_with_output().unwrap());
            panic!(
                "trigger-ops ended before the signal ({ended}): {} {}",
                run.stdout, run.stderr
            );
        }
        let counts = deliveries.counts(&stack.queues.queue_url).await.unwrap();
        if counts.visible >= 1 {
            break;
        }
        assert!(look < 600, "nothing moved: {counts:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let run = Run::from(child.wait_with_output().expect("trigger-ops ends"));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("SIGTERM"), "{}", run.stderr);
    let summary = run.json();
    assert_eq!(summary["stopped_early"], true, "{summary}");
    let moved = summary["moved"].as_u64().unwrap();
    assert!((1..6).contains(&moved), "{summary}");
    let counts = stats(&stack);
    assert_eq!(counts["dlq"]["in_flight"], 0, "nothing held: {counts}");
    assert_eq!(counts["dlq"]["visible"], 10 - moved, "{counts}");
    assert_eq!(summary["left"], 10 - moved, "{summary}");
}

#[tokio::test]
async fn purge_deletes_only_with_yes_and_honours_older_than() {
    let stack = Stack::new().await;
    seed(&stack, &unique("ghost"), 4, false).await;
    let refused = ops(&stack, &["dlq", "purge"]);
    assert_eq!(refused.code, 2);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    assert_eq!(stats(&stack)["dlq"]["visible"], 4);
    let young = ops(
        &stack,
        &["dlq", "purge", "--yes", "--older-than", "1h", "--json"],
    );
    assert_eq!(young.code, 0, "{}", young.stderr);
    assert_eq!(young.json(), serde_json::json!({"deleted": 0, "kept": 4}));
    assert_eq!(stats(&stack)["dlq"]["visible"], 4);
    let all = ops(&stack, &["dlq", "purge", "--yes"]);
    assert_eq!(all.stdout, "deleted 4, kept 0\n");
    assert_eq!(stats(&stack)["dlq"]["visible"], 0);
}

#[tokio::test]
async fn a_replayed_trigger_is_started_by_the_worker() {
    let stack = Stack::new().await;
    let name = unique("late");
    // The pipeline did not exist yet: the worker gave the trigger up.
    let ids = seed(&stack, &name, 1, false).await;
    assert_eq!(status(&stack, &ids[0]).await, TriggerStatus::DeadLettered);
    // Ops create it, then replay.
    testkit::provision::create_pipeline(&stack.iam, &stack.codepipeline, &name)
        .await
        .unwrap();
    let run = ops(&stack, &["dlq", "replay"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(status(&stack, &ids[0]).await, TriggerStatus::Queued);
    let worker = Worker::new(
        WorkerConfig::from_env(&Env::from_pairs([
            ("TABLE_NAME", stack.table_name.as_str()),
            ("DLQ_URL", stack.queues.dlq_url.as_str()),
            ("PIPELINES", name.as_str()),
        ]))
        .unwrap(),
        stack.dynamodb.clone(),
        stack.sqs.clone(),
        stack.codepipeline.clone(),
        Arc::new(SystemClock),
    );
    let response = Arc::new(worker)
        .handle(stack.receive_event(60).await)
        .await
        .unwrap();
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(status(&stack, &ids[0]).await, TriggerStatus::Started);
    assert_eq!(stack.executions(&name).await, 1);
}

#[tokio::test]
async fn missing_or_wrong_urls_and_help_are_clear() {
    let stack = Stack::new().await;
    let run = ops_with(&stack, &[("DLQ_URL", "")], &["dlq", "peek"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("DLQ_URL") && run.stderr.contains("--dlq-url"),
        "{}",
        run.stderr
    );
    let run = ops(&stack, &["dlq", "peek", "--dlq-url", "not-a-url"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not-a-url"), "{}", run.stderr);
    let missing = format!("{}/123456789012/{}", moto_endpoint(), unique("nope"));
    let run = ops(&stack, &["dlq", "peek", "--dlq-url", &missing]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("DLQ") && run.stderr.contains(&missing),
        "{}",
        run.stderr
    );
    let run = ops_with(&stack, &[("TABLE_NAME", "")], &["dlq", "replay"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("TABLE_NAME"), "{}", run.stderr);
    // Terraform outputs as the source of the URLs.
    let outputs = std::env::temp_dir().join(format!("{}.json", unique("outputs")));
    std::fs::write(
        &outputs,
        serde_json::json!({
            "queue_url": {"value": stack.queues.queue_url, "type": "string", "sensitive": false},
            "dlq_url": {"value": stack.queues.dlq_url, "type": "string", "sensitive": false},
        })
        .to_string(),
    )
    .unwrap();
    let run = ops_with(
        &stack,
        &[("QUEUE_URL", ""), ("DLQ_URL", "")],
        &[
            "--terraform-outputs",
            outputs.to_str().unwrap(),
            "dlq",
            "stats",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["dlq"]["url"], stack.queues.dlq_url.as_str());
    std::fs::remove_file(&outputs).unwrap();
    for command in ["stats", "peek", "replay", "purge"] {
        let run = ops(&stack, &["dlq", command, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Example"), "{command}: {}", run.stdout);
    }
}

#[tokio::test]
async fn peek_previews_a_body_that_is_not_a_work_message_escaped() {
    let stack = Stack::new().await;
    let body = format!("not json \u{1b}[31m\r\n{}", "A".repeat(400));
    dead_letter_raw(&stack, &body).await;
    let run = ops(&stack, &["dlq", "peek", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let message = run.json()["messages"][0].clone();
    assert_eq!(message["trigger_id"], Value::Null);
    let preview = message["body_preview"].as_str().unwrap();
    assert!(
        preview.starts_with(r"not json \u{1b}[31m\r\nAAA"),
        "{preview}"
    );
    assert!(preview.len() < 200, "bounded: {preview}");
    let text = ops(&stack, &["dlq", "peek"]);
    assert!(
        text.stdout.contains("bodies that are not work messages"),
        "{}",
        text.stdout
    );
    assert!(
        !text.stdout.contains('\u{1b}'),
        "nothing reaches the terminal raw"
    );
}

/// Runs the binary in `dir` with nothing in its environment but `env`.
fn ops_bare(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_trigger-ops"))
        .env_clear()
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir)
        .envs(env.iter().copied())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run trigger-ops");
    Run::from(output)
}

#[tokio::test]
async fn nothing_configured_is_said_in_words_not_dispatch_failure() {
    let stack = Stack::new().await;
    let dir = std::env::temp_dir().join(unique("bare"));
    std::fs::create_dir_all(&dir).unwrap();
    let queues = [
        ("QUEUE_URL", stack.queues.queue_url.as_str()),
        ("DLQ_URL", stack.queues.dlq_url.as_str()),
    ];
    // No region at all.
    let run = ops_bare(&dir, &queues, &["dlq", "stats"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("AWS region") && run.stderr.contains("--local"),
        "{}",
        run.stderr
    );
    // A region and an endpoint, but no credentials: the cause is named.
    let mut env = queues.to_vec();
    env.extend([
        ("AWS_REGION", testkit::REGION),
        ("AWS_ENDPOINT_URL", moto_endpoint()),
    ]);
    let run = ops_bare(&dir, &env, &["dlq", "stats"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("credentials"), "{}", run.stderr);
    // --local without a running stack's outputs here.
    let run = ops_bare(&dir, &[], &["--local", "dlq", "stats"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("target/local/outputs.json") && run.stderr.contains("scripts/dev"),
        "{}",
        run.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn local_reads_everything_from_the_local_stacks_outputs() {
    let stack = Stack::new().await;
    let dir = std::env::temp_dir().join(unique("local"));
    std::fs::create_dir_all(dir.join("target/local")).unwrap();
    let access = ops::targets::LocalAccess {
        region: testkit::REGION.into(),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
        dynamodb_endpoint: testkit::dynamodb_endpoint().into(),
        endpoint: moto_endpoint().into(),
        services: Default::default(),
        client_key_secret: "local-outputs-secret-0123456789".into(),
    };
    let output =
        |value: Value| serde_json::json!({"value": value, "type": "string", "sensitive": false});
    std::fs::write(
        dir.join(ops::targets::LOCAL_OUTPUTS),
        serde_json::json!({
            "queue_url": output(stack.queues.queue_url.clone().into()),
            "dlq_url": output(stack.queues.dlq_url.clone().into()),
            "table_name": output(stack.table_name.clone().into()),
            "local": {"value": access, "type": "object", "sensitive": true},
        })
        .to_string(),
    )
    .unwrap();
    // Nothing exported: endpoints, region, credentials and names all come
    // from the file.
    let run = ops_bare(&dir, &[], &["--local", "dlq", "stats", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["dlq"]["url"], stack.queues.dlq_url.as_str());
    let run = ops_bare(
        &dir,
        &[],
        &["--local", "triggers", "list", "--since", "10m"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The secret too: `clients show` keys the address with it. No
    // fingerprint in the table: it cannot be checked, and says so.
    let show = ["--local", "clients", "show", "192.0.2.1", "--json"];
    let run = ops_bare(&dir, &[], &show);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("no fingerprint"), "{}", run.stderr);
    // The deployment's fingerprint is of another secret: refused, nothing
    // read or changed.
    let table = shared::aws::table::Table::new(stack.dynamodb.clone(), &stack.table_name);
    let fingerprint = shared::rules::client_key::secret_fingerprint;
    table
        .secret()
        .put_fingerprint(&fingerprint(b"the-ingress-has-another-secret"))
        .await
        .unwrap();
    let block = [
        "--local",
        "clients",
        "block",
        "192.0.2.1",
        "--for",
        "1h",
        "--reason",
        "test",
    ];
    for command in [&show[..], &block[..]] {
        let run = ops_bare(&dir, &[], command);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("not the ingress's"), "{}", run.stderr);
    }
    let blocks = stack
        .scan_items()
        .await
        .into_iter()
        .filter(|item| item["pk"].as_s().is_ok_and(|pk| pk.starts_with("block#")))
        .count();
    assert_eq!(blocks, 0, "nothing blocked with the wrong secret");
    // The right one: acts.
    table
        .secret()
        .put_fingerprint(&fingerprint(access.client_key_secret.as_bytes()))
        .await
        .unwrap();
    let run = ops_bare(&dir, &[], &show);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("fingerprint"), "{}", run.stderr);
    // Both sources at once is a mistake, said so.
    let run = ops_bare(
        &dir,
        &[],
        &["--local", "--terraform-outputs", "x.json", "dlq", "stats"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
}
