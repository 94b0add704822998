//! `notifier`: the Lambda target of the EventBridge rule on CodePipeline
//! state changes. Builds each client once (all but DynamoDB's on first
//! use), then serves events through the Lambda Runtime API.

use lambda_runtime::{service_fn, LambdaEvent};
use notifier::Notifier;
use serde_json::Value;
use shared::aws::{self, CallCounter};
use shared::clock::SystemClock;
use shared::config::{Env, NotifierConfig};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::logging::init();
    let env = Env::from_process();
    let config = match NotifierConfig::from_env(&env) {
        Ok(config) => config,
        Err(e) => shared::lambda::fail_init("notifier", &e).await,
    };
    let sdk = match aws::lambda_sdk_config(&env) {
        Ok(sdk) => sdk,
        Err(e) => shared::lambda::fail_init("notifier", &e).await,
    };
    let calls = CallCounter::default();
    // The table's client at init (every event reads it), the others when
    // first used (aws::Lazy): most events are stage changes, which send no
    // e-mail and wake no run.
    let notifier = Notifier::new(
        config,
        aws::dynamodb(&sdk, &calls),
        aws::lazily(&sdk, &calls, aws::sns),
        aws::lazily(&sdk, &calls, aws::codepipeline),
        aws::lazily(&sdk, &calls, aws::sqs),
        Arc::new(SystemClock),
    );
    let notifier = &notifier;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        notifier.handle(event.payload).await
    }))
    .await
}
