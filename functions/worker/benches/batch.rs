//! Wall time of the worker on a batch of 1 and of 10 messages, in one run,
//! against the moto emulator (real SQS, DynamoDB and CodePipeline calls).
//! `cargo bench -p worker --bench batch` (starts its own emulator, or uses
//! MOTO_ENDPOINT). Prints medians and ranges over repeated rounds.

use shared::clock::SystemClock;
use shared::config::{Env, WorkerConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::Stack;
use worker::Worker;

const ROUNDS: usize = 7;

async fn enqueue(stack: &Stack, pipeline: &str, n: usize) {
    for _ in 0..n {
        stack.enqueue_trigger(pipeline).await;
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
    let worker = Arc::new(Worker::new(
        config,
        stack.dynamodb.clone(),
        stack.sqs.clone(),
        stack.codepipeline.clone(),
        Arc::new(SystemClock),
    ));
    for size in [1usize, 10] {
        let mut samples = Vec::new();
        for _ in 0..ROUNDS {
            enqueue(&stack, &pipeline, size).await;
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
        enqueue(&stack, &pipeline, 10).await;
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
