//! Wall time of the worker on a batch of 1 and of 10 messages, in one run,
//! against the moto emulator (real SQS, DynamoDB and CodePipeline calls).
//! `cargo bench -p worker --bench batch` (starts its own emulator, or uses
//! MOTO_ENDPOINT). Prints medians and ranges over repeated rounds.

use shared::clock::{Clock, SystemClock};
use shared::config::{Env, WorkerConfig};
use shared::message::WorkMessage;
use shared::pipeline::PipelineStarter;
use shared::queue::{DeadLetterQueue, Deliveries, WorkQueue};
use shared::quota::QuotaPolicy;
use shared::table::Table;
use shared::time_format::rfc3339;
use shared::trigger::{new_trigger_id, TriggerRecord, TriggerStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::Stack;
use worker::Worker;

const ROUNDS: usize = 7;

async fn enqueue(stack: &Stack, table: &Table, pipeline: &str, n: usize) {
    let queue = WorkQueue::new(stack.sqs.clone(), &stack.queues.queue_url);
    let policy = QuotaPolicy {
        limit: 100,
        window: Duration::from_secs(1),
    };
    for i in 0..n {
        let now = SystemClock.now_ms();
        let key =
            shared::client_key::client_key(b"0123456789abcdef", &format!("198.51.100.{}", i + 1))
                .unwrap();
        let record = TriggerRecord {
            trigger_id: new_trigger_id(),
            pipeline: "app".into(),
            target: pipeline.into(),
            status: TriggerStatus::Queued,
            requested_at: now,
            updated_at: now,
            client_key: key.clone(),
            execution_id: None,
            error_code: None,
            error_message: None,
            expires_at: now / 1000 + 3600,
        };
        table.admit(&policy, None, &record).await.unwrap();
        let message = WorkMessage {
            version: 1,
            trigger_id: record.trigger_id.clone(),
            pipeline: pipeline.into(),
            requested_at: rfc3339(now),
            client_key: key.to_string(),
        };
        queue.send(&message).await.unwrap();
    }
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: median {:.1} ms (min {:.1}, max {:.1}, {} rounds)",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1]),
        samples.len()
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("bench").await;
    let config = WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", stack.table_name.as_str()),
        ("DLQ_URL", stack.queues.dlq_url.as_str()),
        ("PIPELINES", format!("app={pipeline}").as_str()),
    ]))
    .unwrap();
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let worker = Arc::new(Worker::new(
        config.clone(),
        table.clone(),
        PipelineStarter::new(stack.codepipeline.clone()),
        Deliveries::new(stack.sqs.clone()),
        DeadLetterQueue::new(stack.sqs.clone(), config.dlq_url.clone()),
        Arc::new(SystemClock),
    ));
    for size in [1usize, 10] {
        let mut samples = Vec::new();
        for _ in 0..ROUNDS {
            enqueue(&stack, &table, &pipeline, size).await;
            let event = stack.receive_event(60).await;
            assert_eq!(event["Records"].as_array().unwrap().len(), size);
            let started = Instant::now();
            let response = worker.handle(event).await.unwrap();
            samples.push(started.elapsed());
            assert!(response.batch_item_failures.is_empty());
        }
        summary(&format!("worker batch of {size:>2}, concurrent"), samples);
    }
    // The same ten messages one after another, for comparison.
    let mut samples = Vec::new();
    for _ in 0..ROUNDS {
        enqueue(&stack, &table, &pipeline, 10).await;
        let event = stack.receive_event(60).await;
        let records: Vec<aws_lambda_events::sqs::SqsMessage> =
            serde_json::from_value(event["Records"].clone()).unwrap();
        let started = Instant::now();
        for record in records {
            assert_eq!(worker.process(record).await, worker::Outcome::Done);
        }
        samples.push(started.elapsed());
    }
    summary("worker batch of 10, sequential", samples);
}
