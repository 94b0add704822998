//! Hostile requests and a stack that refuses to leave loopback.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_hostile_requests_clearly() {
    let harness = Harness::start(&[], None).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 16));
    // Over the gateway's payload limit: refused before the function.
    let huge = "x".repeat(local_stack::gateway::MAX_REQUEST_BYTES + 1);
    let response = post(&client, &harness, &huge).await;
    assert_eq!(response.status, 413, "{:?}", response.body);
    assert_eq!(
        response.body["type"],
        "urn:pipeline-trigger:problem:payload-too-large"
    );
    // Over the function's own limit: its problem+json 413.
    let response = post(
        &client,
        &harness,
        &"x".repeat(shared::rules::http::response::MAX_BODY_BYTES + 1),
    )
    .await;
    assert_eq!(response.status, 413);
    assert_eq!(
        response
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    // Malformed JSON, unknown pipelines, unknown paths and ids: clear 4xx.
    assert_eq!(post(&client, &harness, "{not json").await.status, 400);
    let unknown = post(&client, &harness, r#"{"pipeline":"../../etc"}"#).await;
    assert_eq!(unknown.status, 400, "{:?}", unknown.body);
    // What no route takes, API Gateway answers itself, in the same voice.
    let nowhere = send(&client, "GET", &harness.url("/nowhere"), "").await;
    assert_eq!(nowhere.status, 404);
    assert_eq!(
        nowhere.body["type"],
        "urn:pipeline-trigger:problem:not-found"
    );
    let missing = send(
        &client,
        "GET",
        &harness.url("/triggers/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "",
    )
    .await;
    assert_eq!(missing.status, 404);
    // A method the path does not take: no such method, as API Gateway says.
    let delete = send(&client, "DELETE", &harness.url("/trigger"), "").await;
    assert_eq!(delete.status, 404);
    assert_eq!(
        delete.body["type"],
        "urn:pipeline-trigger:problem:not-found"
    );
    // None of it reached the queue or used the quota.
    let accepted = post(&client, &harness, "").await;
    assert_eq!(accepted.status, 202);
    assert_eq!(accepted.body["quota"]["remaining"], 2);
    harness.stack.stop().await;
}

#[tokio::test]
async fn the_local_stack_refuses_anything_but_a_loopback_emulator() {
    let sdk = testkit::sdk_config_at("https://dynamodb.us-east-1.amazonaws.com").await;
    let options = LocalOptions {
        port: 0,
        prefix: unique("refused"),
        failing: vec![],
        run_time: Duration::from_secs(1),
        fault: None,
        outputs: None,
        stage: None,
        chaos: None,
        edge: local_stack::edge::Limits::off(),
    };
    let printed = CapturedLogs::default();
    let result = local_stack::start(
        &sdk,
        &Env::from_pairs([]),
        &options,
        Console::new(Box::new(printed)),
    )
    .await;
    let err = result.err().expect("refused");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
}
