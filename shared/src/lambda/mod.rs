//! The Lambda Runtime API plumbing: how each function's `main` starts
//! ([`start`]) and serves ([`serve`]), failing the start cleanly when
//! configuration is wrong (here), JSON logs ([`logging`]), and where
//! metric lines go ([`metrics`]). The event shapes AWS sends are built for
//! the tests and the local stack in `tools/testkit` (`events`).

pub mod logging;
pub mod metrics;
pub mod pow;

use crate::config::{ConfigError, Env};
use std::fmt::Display;

/// What every function's `main` does first: JSON logging, then its
/// configuration (`load`) and the SDK settings from what Lambda sets. A
/// failure of either ends the start as an init error naming the cause.
pub async fn start<C>(
    function: &str,
    load: impl FnOnce(&Env) -> Result<C, ConfigError>,
) -> (C, aws_config::SdkConfig) {
    logging::init();
    let env = Env::from_process();
    let config = match load(&env) {
        Ok(config) => config,
        Err(e) => fail_init(function, &e).await,
    };
    match crate::aws::lambda_sdk_config(&env) {
        Ok(sdk) => (config, sdk),
        Err(e) => fail_init(function, &e).await,
    }
}

/// Serves invocations through the Lambda Runtime API, each payload handed
/// to `handle`, until Lambda ends the process.
pub async fn serve<F, Fut, R, E>(handle: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(serde_json::Value) -> Fut,
    Fut: std::future::Future<Output = Result<R, E>>,
    R: serde::Serialize,
    E: std::fmt::Debug + Into<lambda_runtime::Diagnostic>,
{
    let handle = &handle;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| handle(event.payload),
    ))
    .await
}

/// Reports a start-up failure and ends the process: one JSON log line on
/// stderr, and, under Lambda, a POST to `/runtime/init/error` so the failure
/// shows as an init error naming the cause.
async fn fail_init(function: &str, err: &dyn Display) -> ! {
    let message = err.to_string();
    let line = serde_json::json!({
        "level": "ERROR",
        "function": function,
        "message": "start-up failed",
        "error": message,
    });
    eprintln!("{line}");
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        report_init_error(&message).await;
    }
    std::process::exit(1)
}

async fn report_init_error(message: &str) {
    use lambda_runtime_api_client::{body::Body, build_request, PooledClient};
    let body = serde_json::json!({ "errorType": "Runtime.ConfigError", "errorMessage": message });
    let request = build_request()
        .method("POST")
        .uri("/2018-06-01/runtime/init/error")
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_string()));
    let Ok(request) = request else { return };
    let client = PooledClient::builder().build();
    if let Err(e) = client.call(request).await {
        eprintln!(
            "{}",
            serde_json::json!({"level": "ERROR", "message": "could not report the init error", "error": e.to_string()})
        );
    }
}

impl From<crate::rules::http::event::EventError> for lambda_runtime::Diagnostic {
    fn from(err: crate::rules::http::event::EventError) -> Self {
        Self {
            error_type: "NotAnHttpEvent".to_string(),
            error_message: err.to_string(),
        }
    }
}
