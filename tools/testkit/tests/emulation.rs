//! The CodePipeline front (`testkit::emulation`) plays CodePipeline's
//! idempotency as AWS does, also when the caller stops listening: AWS
//! starts an execution whether or not its caller hears the answer, and a
//! retry with the same `clientRequestToken` gets that execution back.

use aws_sdk_codepipeline::config::retry::RetryConfig;
use aws_sdk_codepipeline::config::timeout::TimeoutConfig;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use shared::aws::CallCounter;
use std::time::Duration;
use testkit::emulation::{relay, CodePipelineFront};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// moto behind a delay: each request reaches moto at once (the execution
/// starts), its answer comes back `delay` later.
async fn slow_moto(delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let moto = testkit::moto_endpoint().to_string();
    testkit::serve_http(
        listener,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let (client, moto) = (client.clone(), moto.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await?.to_bytes();
                let answer = relay(&client, &moto, &parts, body)
                    .await
                    .ok_or("moto did not answer")?;
                tokio::time::sleep(delay).await;
                Ok::<_, BoxError>(answer)
            }
        },
    );
    endpoint
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_whose_caller_gave_up_is_kept_and_its_retry_gets_the_same_execution() {
    let on_moto = testkit::sdk_config_at(testkit::moto_endpoint()).await;
    let calls = CallCounter::default();
    let moto = shared::aws::codepipeline(&on_moto, &calls);
    let pipeline = testkit::unique("front");
    testkit::provision::create_pipeline(&testkit::iam(&on_moto, &calls), &moto, &pipeline)
        .await
        .expect("create pipeline");

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (front, serve) = CodePipelineFront::new(
        listener,
        &slow_moto(Duration::from_millis(1500)).await,
        testkit::WORKER_ROLE_ARN,
    )
    .expect("front");
    tokio::spawn(serve);
    let client = shared::aws::codepipeline(&testkit::sdk_config_at(&front.endpoint).await, &calls);
    let start = || {
        client
            .start_pipeline_execution()
            .name(&pipeline)
            .client_request_token("run-1")
    };

    // One attempt that gives up before moto's answer comes back.
    let impatient = start()
        .customize()
        .config_override(
            aws_sdk_codepipeline::config::Builder::default()
                .retry_config(RetryConfig::standard().with_max_attempts(1))
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_attempt_timeout(Duration::from_millis(300))
                        .build(),
                ),
        )
        .send()
        .await;
    assert!(impatient.is_err(), "{impatient:?}");

    // Its retry, which waits for the answer: the execution started first.
    let retried = start().send().await.expect("the retry is answered");
    let starts: Vec<_> = front
        .starts()
        .into_iter()
        .filter(|(p, _, _)| *p == pipeline)
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(retried.pipeline_execution_id(), Some(starts[0].2.as_str()));
    assert_eq!(
        testkit::executions(&moto, &pipeline).await,
        1,
        "moto started a second execution"
    );
}
