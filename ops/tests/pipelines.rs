//! `trigger-ops pipelines show|flush` against DynamoDB Local and moto: a
//! lane filled by the real worker, shown as it stands, flushed lane by lane
//! with no quota given back.

mod common;

use common::ops;
use serde_json::{json, Value};
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::Table;
use shared::clock::{Clock, SystemClock};
use shared::config::{Env, WorkerConfig};
use shared::rules::status::TriggerStatus;
use std::sync::Arc;
use testkit::Stack;
use worker::Worker;

const SETTINGS: &str = r#"{"app": {"max_pending": 3, "inputs": {
    "ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}"}}}}"#;

struct Lane {
    stack: Stack,
    pipeline: String,
    worker: Arc<Worker>,
}

impl Lane {
    async fn new() -> Self {
        let stack = Stack::new().await;
        let pipeline = stack.pipeline("flush").await;
        let allowlist = format!("app={pipeline}");
        let config = WorkerConfig::from_env(&Env::from_pairs([
            ("TABLE_NAME", stack.table_name.as_str()),
            ("DLQ_URL", stack.queues.dlq_url.as_str()),
            ("PIPELINES", allowlist.as_str()),
            ("PIPELINE_SETTINGS", SETTINGS),
            // The lane's safety poll stays delayed, out of the way.
            ("RUN_POLL_INTERVAL", "15m"),
        ]))
        .unwrap();
        let worker = Arc::new(Worker::new(
            config,
            stack.dynamodb.clone(),
            stack.sqs.clone(),
            stack.codepipeline.clone(),
            Arc::new(SystemClock),
        ));
        Lane {
            stack,
            pipeline,
            worker,
        }
    }

    /// Hands the work queue to the worker until it is empty, deleting
    /// what it handled as Lambda does.
    async fn drain(&self) {
        loop {
            let event = self.stack.receive_event(60).await;
            let records = event["Records"].as_array().unwrap().clone();
            if records.is_empty() {
                return;
            }
            let response = self.worker.handle(event).await.unwrap();
            assert!(response.batch_item_failures.is_empty());
            for record in records {
                self.stack
                    .sqs
                    .delete_message()
                    .queue_url(&self.stack.queues.queue_url)
                    .receipt_handle(record["receiptHandle"].as_str().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }

    async fn anonymous(&self, value: &str) -> String {
        let id = self
            .stack
            .enqueue_trigger_with_inputs(&self.pipeline, json!({ "ref": value }))
            .await;
        self.drain().await;
        id
    }

    async fn keyed(&self, value: &str) -> String {
        let id = self
            .stack
            .enqueue_keyed_trigger(&self.pipeline, json!({ "ref": value }), "ci-main")
            .await;
        self.drain().await;
        id
    }

    async fn status(&self, id: &str) -> shared::rules::trigger::TriggerView {
        Table::new(self.stack.dynamodb.clone(), &self.stack.table_name)
            .triggers()
            .view(id, SystemClock.now_ms())
            .await
            .unwrap()
            .expect("a record")
    }

    fn show(&self) -> Value {
        let run = ops(&self.stack, &["--json", "pipelines", "show", "app"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()
    }
}

fn pending(shown: &Value) -> Vec<(String, String)> {
    shown["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap().to_string(),
                r["lane"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn show_says_what_runs_and_waits_and_flush_clears_a_lane_without_refunds() {
    let lane = Lane::new().await;
    let running = lane.anonymous("a").await;
    let b = lane.anonymous("b").await;
    let c = lane.anonymous("c").await;
    let refused = lane.anonymous("d").await;
    let k = lane.keyed("k").await;
    assert_eq!(lane.status(&refused).await.status, TriggerStatus::Refused);

    let shown = lane.show();
    assert_eq!(shown["codepipeline"], lane.pipeline.as_str());
    assert_eq!(shown["pipelines"], json!(["app"]));
    assert_eq!(shown["table"], lane.stack.table_name.as_str());
    assert_eq!(shown["in_progress"]["run_id"], running.as_str());
    assert!(shown["in_progress"]["execution_id"].is_string());
    assert_eq!(
        pending(&shown),
        [
            (k.clone(), "key".to_string()),
            (b.clone(), "anonymous".to_string()),
            (c.clone(), "anonymous".to_string())
        ]
    );
    assert_eq!(
        shown["last_hour"]["accepted"],
        json!({"anonymous": 4, "key": 1})
    );
    assert_eq!(
        shown["last_hour"]["refused"],
        json!({"anonymous": 1, "key": 0})
    );
    // Each anonymous trigger came from its own address: four client keys,
    // one trigger each; keyed triggers are not among them.
    let busiest = shown["busiest"].as_array().unwrap();
    assert_eq!(busiest.len(), 4, "{busiest:?}");
    assert!(busiest
        .iter()
        .all(|k| k["level"] == "client" && k["triggers"] == 1));
    let text = ops(&lane.stack, &["pipelines", "show", lane.pipeline.as_str()]).stdout;
    assert!(
        text.starts_with(&format!("pipeline app (CodePipeline {})", lane.pipeline)),
        "{text}"
    );
    assert!(text.contains("pending      3 (keyed first):"), "{text}");

    // Without --yes nothing changes.
    let refused_flush = ops(&lane.stack, &["pipelines", "flush", "app"]);
    assert_eq!(refused_flush.code, 2);
    assert!(
        refused_flush.stderr.contains("--yes"),
        "{}",
        refused_flush.stderr
    );
    assert_eq!(pending(&lane.show()).len(), 3);

    // The anonymous lane: b and c end refused (flushed), k waits on.
    let flushed = ops(
        &lane.stack,
        &["--json", "pipelines", "flush", "app", "--yes"],
    );
    assert_eq!(flushed.code, 0, "{}", flushed.stderr);
    assert_eq!(
        flushed.json(),
        json!({"codepipeline": lane.pipeline, "table": lane.stack.table_name, "lane": "anonymous",
               "runs": 2, "triggers": 2, "keyed_kept": 1})
    );
    for id in [&b, &c] {
        let view = lane.status(id).await;
        assert_eq!(view.status, TriggerStatus::Refused, "{id}");
        assert_eq!(view.reason.as_deref(), Some("flushed"));
        assert_eq!(view.retry_after_seconds, Some(0));
    }
    assert_eq!(pending(&lane.show()), [(k.clone(), "key".to_string())]);
    // No quota given back: b's client still has its slot taken.
    let table = Table::new(lane.stack.dynamodb.clone(), &lane.stack.table_name);
    let record = testkit::table::stored(&table, &b, SystemClock.now_ms()).await;
    let level = QuotaLevel::client(
        &record.client_key,
        shared::rules::quota::QuotaPolicy {
            limit: 1,
            window: std::time::Duration::from_secs(60),
        },
    );
    let slots = table.admission().slots(&level).await.unwrap();
    assert!(slots.contains(&record.requested_at), "{slots:?}");
    // A redelivery of a flushed run's message starts nothing.
    assert_eq!(lane.stack.executions(&lane.pipeline).await, 1);

    // The lane has room again for anonymous triggers.
    let after = lane.anonymous("e").await;
    assert_eq!(lane.status(&after).await.queue.map(|q| q.position), Some(2));
    // --lane all takes the keyed run too.
    let all = ops(
        &lane.stack,
        &[
            "--json",
            "pipelines",
            "flush",
            "app",
            "--yes",
            "--lane",
            "all",
        ],
    );
    assert_eq!(all.json()["runs"], 2);
    assert!(pending(&lane.show()).is_empty());
    assert_eq!(lane.status(&k).await.reason.as_deref(), Some("flushed"));
    assert_eq!(
        lane.stack.executions(&lane.pipeline).await,
        1,
        "nothing flushed ever started"
    );
}

#[tokio::test]
async fn an_unknown_pipeline_is_said_so() {
    let stack = Stack::new().await;
    let run = ops(&stack, &["pipelines", "show", "nothing-here"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no pipeline \"nothing-here\""),
        "{}",
        run.stderr
    );
    let run = ops(&stack, &["pipelines", "flush", "nothing-here", "--yes"]);
    assert_eq!(run.code, 1);
}
