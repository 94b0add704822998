//! `notifier`: the Lambda target of the EventBridge rule on CodePipeline
//! state changes. Builds each client once (all but DynamoDB's on first
//! use), then serves events through the Lambda Runtime API.

use notifier::Notifier;
use shared::aws::{self, CallCounter};
use shared::clock::SystemClock;
use shared::config::NotifierConfig;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::lambda::start("notifier", NotifierConfig::from_env).await;
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
    shared::lambda::serve(|event| notifier.handle(event)).await
}
