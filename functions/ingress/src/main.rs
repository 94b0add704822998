//! `ingress`: the Lambda behind API Gateway. Builds each client once (the
//! queue's on first use), then serves invocations through the Lambda
//! Runtime API.

// The handler's future nests deeply (the admission, its settling and the
// enqueue's, each awaited in turn): the compiler's default depth is short of it.
#![recursion_limit = "256"]

use ingress::Ingress;
use shared::aws::queue::WorkQueue;
use shared::aws::table::Table;
use shared::aws::{self, CallCounter};
use shared::clock::SystemClock;
use shared::config::IngressConfig;
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::lambda::start("ingress", IngressConfig::from_env).await;
    let calls = CallCounter::default();
    let table = Table::new(aws::dynamodb(&sdk, &calls), config.table_name.clone());
    // Every invocation but the page's reads the table; only an accepted
    // trigger sends a message, so the queue's client is built when first used.
    let queue = WorkQueue::new(
        aws::lazily(&sdk, &calls, aws::sqs),
        config.queue_url.clone(),
    );
    let ingress = Ingress::new(config, table, queue, Arc::new(SystemClock), calls);
    shared::lambda::serve(|event| ingress.handle(event)).await
}
