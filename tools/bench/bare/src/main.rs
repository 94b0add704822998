//! `bare-lambda`: the floor. A `lambda_runtime` function built in the same
//! workspace profile as the three functions, that answers each event with
//! itself: no SDK, no configuration, no logging. `lambda-bench` reports each
//! function's init and memory as a ratio to this one, measured in the same
//! run, so the figures hold on a noisy machine.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
