//! `worker`: the Lambda on the work queue. Builds each client once (all but
//! DynamoDB's on first use), then serves SQS batches, and the settler's
//! schedule, through the Lambda Runtime API.

use shared::aws::{self, CallCounter};
use shared::clock::SystemClock;
use shared::config::WorkerConfig;
use std::sync::Arc;
use worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::lambda::start("worker", WorkerConfig::from_env).await;
    let calls = CallCounter::default();
    // The table's client at init (every message reads it), the others when
    // first used (aws::Lazy).
    let worker = Arc::new(Worker::new(
        config,
        aws::dynamodb(&sdk, &calls),
        aws::lazily(&sdk, &calls, aws::sqs),
        aws::lazily(&sdk, &calls, aws::codepipeline),
        Arc::new(SystemClock),
    ));
    shared::lambda::serve(|event| worker.invoke(event)).await
}
