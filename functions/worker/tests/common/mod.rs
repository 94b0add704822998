//! The worker harness the test files share: a worker on a fresh stack
//! (DynamoDB Local and moto), its queue and DLQ, and the ledger.
#![allow(dead_code)]

use aws_lambda_events::sqs::SqsBatchResponse;
use shared::aws;
use shared::aws::table::Table;
use shared::clock::{Clock, SystemClock};
use shared::config::{Env, WorkerConfig};
use shared::rules::trigger::{TriggerRecord, TriggerView};
use std::sync::Arc;
use testkit::{dead_endpoint, sdk_config_at, Stack};
use worker::Worker;

pub struct Harness {
    pub stack: Stack,
    pub worker: Arc<Worker>,
    pub table: Table,
}

/// A worker on `stack` with the allowlist `pipelines`; its CodePipeline
/// client refuses connections when `dead_codepipeline`.
pub async fn harness(
    stack: Stack,
    pipelines: &str,
    max_attempts: &str,
    dead_codepipeline: bool,
) -> Harness {
    harness_with_clock(
        stack,
        pipelines,
        max_attempts,
        dead_codepipeline,
        Arc::new(SystemClock),
    )
    .await
}

/// A worker on a new stack whose `app` is a new pipeline named after
/// `prefix`, with up to `max_attempts`; returns it and the pipeline's name.
pub async fn harness_on_app(prefix: &str, max_attempts: &str) -> (Harness, String) {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline(prefix).await;
    let h = harness(stack, &format!("app={pipeline}"), max_attempts, false).await;
    (h, pipeline)
}

pub async fn harness_with_clock(
    stack: Stack,
    pipelines: &str,
    max_attempts: &str,
    dead_codepipeline: bool,
    clock: Arc<dyn Clock>,
) -> Harness {
    harness_with_settings(
        stack,
        pipelines,
        max_attempts,
        dead_codepipeline,
        clock,
        "{}",
    )
    .await
}

pub async fn harness_with_settings(
    stack: Stack,
    pipelines: &str,
    max_attempts: &str,
    dead_codepipeline: bool,
    clock: Arc<dyn Clock>,
    settings: &str,
) -> Harness {
    let codepipeline = if dead_codepipeline {
        Some(aws::codepipeline(
            &sdk_config_at(&dead_endpoint()).await,
            &stack.calls,
        ))
    } else {
        None
    };
    let env = [
        ("PIPELINES", pipelines),
        ("MAX_ATTEMPTS", max_attempts),
        ("PIPELINE_SETTINGS", settings),
    ];
    harness_from(stack, &env, codepipeline, clock).await
}

/// A worker on `stack` with `env` over the test defaults (the stack's table
/// and DLQ, `RUN_POLL_INTERVAL=1s`, `RUN_CHECK_AFTER=1h`), `codepipeline`
/// instead of the stack's when given (a replayed fault), and `clock`.
pub async fn harness_from(
    stack: Stack,
    env: &[(&str, &str)],
    codepipeline: Option<aws_sdk_codepipeline::Client>,
    clock: Arc<dyn Clock>,
) -> Harness {
    let mut pairs = vec![
        ("TABLE_NAME", stack.table_name.as_str()),
        ("DLQ_URL", stack.queues.dlq_url.as_str()),
        ("RUN_POLL_INTERVAL", "1s"),
        ("RUN_CHECK_AFTER", "1h"),
    ];
    pairs.extend_from_slice(env);
    let config = WorkerConfig::from_env(&Env::from_pairs(pairs)).expect("valid config");
    let worker = Arc::new(Worker::new(
        config,
        stack.dynamodb.clone(),
        stack.sqs.clone(),
        codepipeline.unwrap_or_else(|| stack.codepipeline.clone()),
        clock,
    ));
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    Harness {
        stack,
        worker,
        table,
    }
}

impl Harness {
    pub async fn enqueue(&self, pipeline: &str) -> String {
        self.stack.enqueue_trigger(pipeline).await
    }

    pub async fn send_raw(&self, body: &str) {
        self.stack
            .send_raw(&self.stack.queues.queue_url, body)
            .await;
    }

    pub async fn run_batch(&self, visibility: i32) -> (usize, SqsBatchResponse) {
        let event = self.stack.receive_event(visibility).await;
        let count = event["Records"].as_array().unwrap().len();
        (
            count,
            self.worker.handle(event).await.expect("an SQS event"),
        )
    }

    /// The trigger's own record.
    pub async fn record(&self, trigger_id: &str) -> TriggerRecord {
        testkit::table::stored(&self.table, trigger_id, 0).await
    }

    /// What `GET /triggers/{id}` shows (the trigger following its run).
    pub async fn view(&self, trigger_id: &str) -> TriggerView {
        self.table
            .triggers()
            .view(trigger_id, 0)
            .await
            .unwrap()
            .expect("record")
    }

    /// The DLQ's messages: (error_code, error_message, body).
    pub async fn dead_letters(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<(String, String, String)> = self
            .stack
            .drain(&self.stack.queues.dlq_url)
            .await
            .iter()
            .map(|m| {
                let attr = |name: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value())
                        .unwrap_or("")
                        .to_string()
                };
                (
                    attr("error_code"),
                    attr("error_message"),
                    m.body().unwrap_or("").to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }
}
