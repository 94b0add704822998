//! `worker`: the Lambda on the work queue. Builds each client once (all but
//! DynamoDB's on first use), then serves SQS batches, and the settler's
//! schedule, through the Lambda Runtime API.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shared::aws::{self, CallCounter};
use shared::clock::SystemClock;
use shared::config::{Env, WorkerConfig};
use std::sync::Arc;
use worker::Worker;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::logging::init();
    let env = Env::from_process();
    let config = match WorkerConfig::from_env(&env) {
        Ok(config) => config,
        Err(e) => shared::lambda::fail_init("worker", &e).await,
    };
    let sdk = match aws::lambda_sdk_config(&env) {
        Ok(sdk) => sdk,
        Err(e) => shared::lambda::fail_init("worker", &e).await,
    };
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
    let worker = &worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        worker.invoke(event.payload).await
    }))
    .await
}
