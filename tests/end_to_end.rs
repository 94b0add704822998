//! End to end: the local stack (`trigger-ops local`) on the emulator, driven
//! over HTTP like a user drives it. Each trigger is followed through every
//! hop: POST → queue → worker → pipeline → EventBridge rule → notifier → e-mail.
//!
//! Each test runs its own stack with its own resource prefix and pipelines,
//! and sends from its own loopback address, so tests share one emulator
//! without seeing each other's triggers.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_stack::pipeline_runs::{FAILED_MESSAGE, FAILED_STAGE};
use local_stack::{console::Console, LocalOptions, LocalStack};
use serde_json::Value;
use shared::config::Env;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use testkit::{unique, CapturedLogs};

/// Settings that turn coalescing off for `app`: one execution per trigger.
const ALONE: &str = r#"{"app": {"coalesce": false}}"#;

/// Longest wait for any hop; waits end as soon as the condition holds.
const PATIENCE: Duration = Duration::from_secs(150);

/// Polls `check` until it returns `Some`, or fails the test naming `what`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Response {
    status: u16,
    headers: hyper::HeaderMap,
    body: Value,
}

/// An HTTP client whose connections come from `source` (a loopback
/// address): the gateway names it as the client's address.
fn client_from(source: Ipv4Addr) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(source)));
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: &str,
) -> Response {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a request");
    let response = client.request(request).await.expect("the gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Response {
        status,
        headers,
        body,
    }
}

/// A running stack and what a test needs around it.
struct Harness {
    stack: LocalStack,
    printed: CapturedLogs,
    sqs: aws_sdk_sqs::Client,
    codepipeline: aws_sdk_codepipeline::Client,
    sdk: aws_config::SdkConfig,
    app: String,
    broken: String,
    prefix: String,
    outputs: PathBuf,
}

fn outputs_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-outputs.json"))
}

impl Harness {
    /// A stack with pipelines `<prefix>-app` (default, succeeds) and
    /// `<prefix>-broken` (fails); `settings` are the functions' environment.
    async fn start(settings: &[(&str, &str)], fault: Option<local_stack::Fault>) -> Self {
        let prefix = unique("e2e");
        Self::start_named(&prefix, settings, fault, Duration::from_secs(1)).await
    }

    async fn start_named(
        prefix: &str,
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
        run_time: Duration,
    ) -> Self {
        Self::start_with(prefix, settings, fault, run_time, None).await
    }

    /// As [`Harness::start_named`], the API served under `/<stage>/` when
    /// `stage` is given (as a REST API stage).
    async fn start_with(
        prefix: &str,
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
        run_time: Duration,
        stage: Option<&str>,
    ) -> Self {
        let app = format!("{prefix}-app");
        let broken = format!("{prefix}-broken");
        let pipelines = format!("app={app},broken={broken}");
        let mut pairs: Vec<(&str, &str)> = vec![("PIPELINES", &pipelines)];
        pairs.extend_from_slice(settings);
        let env = Env::from_pairs(pairs);
        let sdk = testkit::sdk_config().await;
        let printed = CapturedLogs::default();
        let options = LocalOptions {
            port: 0,
            prefix: prefix.to_string(),
            failing: vec![broken.clone()],
            run_time,
            fault,
            outputs: Some(outputs_path(prefix)),
            stage: stage.map(str::to_string),
        };
        let stack = local_stack::start(
            &sdk,
            &env,
            &options,
            Console::new(Box::new(printed.clone())),
        )
        .await
        .expect("the local stack starts");
        let calls = shared::aws::CallCounter::default();
        Self {
            stack,
            printed,
            sqs: shared::aws::sqs(&sdk, &calls),
            codepipeline: shared::aws::codepipeline(&sdk, &calls),
            sdk,
            app,
            broken,
            prefix: prefix.to_string(),
            outputs: outputs_path(prefix),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.base_url)
    }

    /// A queue subscribed to the on-call topic, for counting e-mails.
    async fn inbox(&self) -> String {
        let sns = shared::aws::sns(&self.sdk, &shared::aws::CallCounter::default());
        shared::aws::provision::create_inbox(
            &sns,
            &self.sqs,
            &self.stack.resources.topic_arn,
            &unique("e2e-inbox"),
        )
        .await
        .expect("subscribe an inbox")
    }

    /// Every e-mail that reached `inbox` so far (consumed), as (subject, body).
    async fn emails(&self, inbox: &str) -> Vec<(String, String)> {
        testkit::emails(&self.sqs, inbox).await
    }

    /// Visible plus in-flight messages of a queue.
    async fn depth(&self, url: &str) -> u64 {
        let deliveries = shared::aws::queue::Deliveries::new(self.sqs.clone());
        let counts = deliveries.counts(url).await.expect("queue counts");
        counts.visible + counts.in_flight
    }

    async fn executions(&self, pipeline: &str) -> usize {
        testkit::executions(&self.codepipeline, pipeline).await
    }

    /// Waits for the trigger's status to become `want`; returns its body.
    async fn status_becomes(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        id: &str,
        want: &str,
    ) -> Value {
        let url = self.url(&format!("/triggers/{id}"));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let response = send(client, "GET", &url, "").await;
            assert_eq!(response.status, 200, "{:?}", response.body);
            if response.body["status"] == want {
                return response.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "trigger {id} is {} and not {want}; the stack printed:\n{}",
                response.body,
                self.printed()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the trigger shows exactly these stages (name, state), in
    /// this order: stage events may be handled after the execution's.
    async fn stages_become(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        id: &str,
        want: &[(&str, &str)],
    ) {
        let url = self.url(&format!("/triggers/{id}"));
        let what = format!("trigger {id} to show the stages {want:?}");
        eventually(&what, || async {
            let response = send(client, "GET", &url, "").await;
            let shown: Vec<(&str, &str)> = response.body["stages"]
                .as_array()
                .map(|stages| {
                    stages
                        .iter()
                        .map(|s| {
                            (
                                s["name"].as_str().unwrap_or_default(),
                                s["state"].as_str().unwrap_or_default(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (shown == want).then_some(())
        })
        .await;
    }

    /// Waits until no event or e-mail of this stack is in flight.
    async fn settled(&self) {
        let events = self.stack.resources.events_queue_url.clone();
        let work = self.stack.resources.queue_url.clone();
        eventually("the stack to settle", || async {
            (self.depth(&events).await == 0 && self.depth(&work).await == 0).then_some(())
        })
        .await;
    }

    fn printed(&self) -> String {
        self.printed.text()
    }

    /// The metric lines the functions published so far, each checked
    /// against the EMF specification's required fields.
    fn metrics(&self) -> Vec<Value> {
        let lines = self
            .stack
            .metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        lines
            .iter()
            .map(|line| testkit::check_emf(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    harness: &Harness,
    body: &str,
) -> Response {
    send(client, "POST", &harness.url("/trigger"), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_goes_through_every_hop_and_ends_succeeded_with_one_email() {
    let harness = Harness::start(&[], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 11));

    let accepted = post(&client, &harness, "").await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let id = accepted.body["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    assert_eq!(accepted.body["pipeline"], "app");
    assert_eq!(
        accepted
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/triggers/{id}").as_str())
    );

    let status = harness.status_becomes(&client, &id, "succeeded").await;
    let execution = status["execution_id"]
        .as_str()
        .expect("an execution id")
        .to_string();
    assert_eq!(harness.executions(&harness.app).await, 1);
    harness
        .stages_become(
            &client,
            &id,
            &[
                ("Source", "SUCCEEDED"),
                ("Build", "SUCCEEDED"),
                ("Deploy", "SUCCEEDED"),
            ],
        )
        .await;

    let email = eventually("the success e-mail", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    harness.settled().await;
    let mut emails = email;
    emails.extend(harness.emails(&inbox).await);
    let naming: Vec<&(String, String)> = emails
        .iter()
        .filter(|(_, body)| body.contains(&id))
        .collect();
    assert_eq!(
        naming.len(),
        1,
        "exactly one e-mail names the trigger: {emails:#?}"
    );
    let (subject, body) = naming[0];
    assert!(
        subject.contains("SUCCEEDED") && subject.contains(&harness.app),
        "{subject}"
    );
    assert!(body.contains(&execution), "{body}");

    // One line per hop, each naming the trigger; the e-mail printed as on-call reads it.
    let printed = harness.printed();
    for hop in ["gateway", "worker", "pipeline", "notifier"] {
        assert!(
            printed.lines().any(|l| l.contains(&id) && l.contains(hop)),
            "no {hop} line for {id}:\n{printed}"
        );
    }
    assert!(
        printed.contains(&format!("| Subject: {subject}")),
        "{printed}"
    );
    // Each hop published its metric as an EMF line (no API call).
    let metrics = harness.metrics();
    for (function, metric, dimension) in [
        ("ingress", "Accepted", None),
        ("worker", "RunsStarted", None),
        ("notifier", "Emails", Some(("State", "SUCCEEDED"))),
    ] {
        assert!(
            metrics.iter().any(|m| m["Function"] == function
                && m[metric] == 1
                && dimension.is_none_or(|(name, value)| m[name] == value)),
            "no {metric} from the {function}: {metrics:#?}"
        );
    }
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pipeline_ends_failed_and_the_email_leads_with_stage_and_reason() {
    let harness = Harness::start(&[], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 12));

    let accepted = post(&client, &harness, r#"{"pipeline":"broken"}"#).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let id = accepted.body["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    harness.status_becomes(&client, &id, "failed").await;
    // The stages stop at the failed one.
    harness
        .stages_become(
            &client,
            &id,
            &[("Source", "SUCCEEDED"), (FAILED_STAGE, "FAILED")],
        )
        .await;
    // Operators see the same stages.
    let shown = ops_output(&harness, "unused-secret-of-16+", &["triggers", "show", &id])
        .await
        .expect("triggers show");
    let stage_lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("stage ")).collect();
    assert_eq!(stage_lines.len(), 2, "{shown}");
    assert!(
        stage_lines[0].contains("Source") && stage_lines[0].contains("SUCCEEDED"),
        "{shown}"
    );
    assert!(
        stage_lines[1].contains(FAILED_STAGE) && stage_lines[1].contains("FAILED"),
        "{shown}"
    );

    let emails = eventually("the failure e-mail", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    let (subject, body) = &emails[0];
    assert!(
        subject.contains("FAILED") && subject.contains(&harness.broken),
        "{subject}"
    );
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    // The headline, then the failed stage and the reason, before the rest.
    assert!(
        lines[1].starts_with("Failed stage") && lines[1].contains(FAILED_STAGE),
        "{body}"
    );
    let reason = lines
        .iter()
        .position(|l| l.contains(FAILED_MESSAGE))
        .expect("the reason");
    let details = lines
        .iter()
        .position(|l| l.starts_with("State "))
        .expect("the state line");
    assert!(
        reason < details,
        "the reason comes before the details:\n{body}"
    );
    assert!(body.contains(&id), "{body}");
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_across_the_whole_system() {
    // Without coalescing, so that every accepted trigger is one execution.
    let harness = Harness::start(&[("PIPELINE_SETTINGS", ALONE)], None).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 13));
    let mut ids = Vec::new();
    for n in 1..=3 {
        let accepted = post(&client, &harness, "").await;
        assert_eq!(accepted.status, 202, "trigger {n}: {:?}", accepted.body);
        assert_eq!(accepted.body["quota"]["remaining"], 3 - n);
        ids.push(accepted.body["trigger_id"].as_str().unwrap().to_string());
    }
    let refused = post(&client, &harness, "").await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let retry_after: u64 = refused
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        retry_after > 0 && retry_after <= 7 * 86_400,
        "{retry_after}"
    );

    // Another client is not affected by the first one's quota.
    let other = post(&client_from(Ipv4Addr::new(127, 0, 0, 14)), &harness, "").await;
    assert_eq!(other.status, 202, "{:?}", other.body);
    ids.push(other.body["trigger_id"].as_str().unwrap().to_string());

    for id in &ids {
        harness.status_becomes(&client, id, "succeeded").await;
    }
    harness.settled().await;
    assert_eq!(
        harness.executions(&harness.app).await,
        4,
        "3 + 1 accepted, the refused one never ran"
    );
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_codepipeline_is_unreachable_and_replay_recovers_all() {
    const N: usize = 4;
    // Without coalescing: one DLQ entry, and then one e-mail, per trigger.
    let settings = [
        ("MAX_ATTEMPTS", "2"),
        ("QUOTA_LIMIT", "10"),
        ("PIPELINE_SETTINGS", ALONE),
    ];
    let harness =
        Harness::start(&settings, Some(local_stack::Fault::CodepipelineUnreachable)).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 15));
    let mut ids = Vec::new();
    for _ in 0..N {
        let accepted = post(&client, &harness, "").await;
        assert_eq!(accepted.status, 202, "{:?}", accepted.body);
        ids.push(accepted.body["trigger_id"].as_str().unwrap().to_string());
    }
    // Each is tried twice (the second time after the worker's retry delay),
    // then given up to the DLQ with its reason.
    for id in &ids {
        harness.status_becomes(&client, id, "dead_lettered").await;
    }
    let dlq = harness.stack.resources.dlq_url.clone();
    let dead = harness.depth(&dlq).await;
    let started = harness.executions(&harness.app).await;
    assert_eq!(
        dead as usize + started,
        N,
        "every accepted trigger is an execution or a DLQ entry"
    );
    assert_eq!((dead as usize, started), (N, 0));
    assert_eq!(harness.depth(&harness.stack.resources.queue_url).await, 0);
    let printed = harness.printed();
    assert!(printed.contains("attempt 1 of 2 failed"), "{printed}");
    assert!(
        printed.contains("dead-lettered on attempt 2 of 2: ConnectionError"),
        "{printed}"
    );

    // Recovery: the same stack without the fault, then the operator's replay.
    let Harness { stack, prefix, .. } = harness;
    stack.stop().await;
    let harness = Harness::start_named(&prefix, &settings, None, Duration::from_secs(1)).await;
    let inbox = harness.inbox().await;
    let cli = <ops::cli::Cli as clap::Parser>::try_parse_from([
        "trigger-ops",
        "--terraform-outputs",
        harness.outputs.to_str().expect("a UTF-8 path"),
        "dlq",
        "replay",
        "--rate",
        "100",
        "--json",
    ])
    .expect("a replay command line");
    let env = Env::from_pairs([]);
    let ran = ops::run(
        &cli,
        &ops::Context {
            sdk: &harness.sdk,
            env: &env,
            stop: Arc::new(AtomicBool::new(false)),
            calls: shared::aws::CallCounter::default(),
        },
    )
    .await
    .expect("the replay runs");
    assert!(ran.success, "{}", ran.output);
    let summary: Value = serde_json::from_str(&ran.output).expect("JSON");
    assert_eq!(summary["moved"], N as u64, "{summary}");

    for id in &ids {
        harness.status_becomes(&client, id, "succeeded").await;
    }
    harness.settled().await;
    assert_eq!(harness.executions(&harness.app).await, N);
    assert_eq!(harness.depth(&dlq).await, 0);
    let emails = eventually("an e-mail per recovered trigger", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    let mut emails = emails;
    harness.settled().await;
    emails.extend(harness.emails(&inbox).await);
    for id in &ids {
        let naming = emails
            .iter()
            .filter(|(_, body)| body.contains(id.as_str()))
            .count();
        assert_eq!(naming, 1, "one e-mail for {id}: {emails:#?}");
    }
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_hostile_requests_clearly() {
    let harness = Harness::start(&[], None).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 16));
    // Over the gateway's payload limit: refused before the function.
    let huge = "x".repeat(local_stack::gateway::MAX_REQUEST_BYTES + 1);
    let response = post(&client, &harness, &huge).await;
    assert_eq!(response.status, 413, "{:?}", response.body);
    assert_eq!(response.body["message"], "Request Entity Too Large");
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
    assert_eq!(
        send(&client, "GET", &harness.url("/nowhere"), "")
            .await
            .status,
        404
    );
    let missing = send(
        &client,
        "GET",
        &harness.url("/triggers/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "",
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        send(&client, "DELETE", &harness.url("/trigger"), "")
            .await
            .status,
        405
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_with_inputs_start_runs_with_those_variables() {
    let settings = r#"{"app": {"inputs": {
        "environment": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
        "branch": {"type": "string", "pattern": "[a-z0-9/-]{1,40}"}
    }}}"#;
    let harness = Harness::start(&[("PIPELINE_SETTINGS", settings)], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 17));

    let catalog = send(&client, "GET", &harness.url("/pipelines"), "").await;
    assert_eq!(catalog.status, 200);
    assert_eq!(
        catalog.body["pipelines"][0]["inputs"]["branch"]["type"],
        "string"
    );

    let refused = post(
        &client,
        &harness,
        r#"{"inputs": {"branch": "Main; reboot"}}"#,
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(refused.body["errors"][0]["input"], "branch");

    let mut runs = Vec::new();
    for body in [
        r#"{"inputs": {"branch": "main"}}"#,
        r#"{"pipeline": "app", "inputs": {"branch": "feature/x", "environment": "production"}}"#,
    ] {
        let accepted = post(&client, &harness, body).await;
        assert_eq!(accepted.status, 202, "{:?}", accepted.body);
        runs.push((
            accepted.body["trigger_id"].as_str().unwrap().to_string(),
            accepted.body["inputs"].clone(),
        ));
    }
    let mut executions = Vec::new();
    for (id, inputs) in &runs {
        let status = harness.status_becomes(&client, id, "succeeded").await;
        assert_eq!(&status["inputs"], inputs);
        let execution = status["execution_id"].as_str().unwrap().to_string();
        let expected: Vec<(String, String)> = inputs
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            testkit::execution_variables(&harness.codepipeline, &harness.app, &execution).await,
            expected
        );
        executions.push(execution);
    }
    assert_ne!(executions[0], executions[1], "two input sets, two runs");
    assert_eq!(harness.executions(&harness.app).await, 2);

    let seen = std::sync::Mutex::new(Vec::new());
    let body = eventually("the e-mail of the second trigger", || async {
        let arrived = harness.emails(&inbox).await;
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.extend(arrived);
        seen.iter()
            .find(|(_, body)| body.contains(&runs[1].0))
            .map(|(_, body)| body.clone())
    })
    .await;
    assert!(
        body.lines()
            .any(|l| l.starts_with("Input branch") && l.ends_with("feature/x")),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("Input environment") && l.ends_with("production")),
        "{body}"
    );
    let printed = harness.printed();
    assert!(
        printed.contains("variables: branch=feature/x, environment=production"),
        "{printed}"
    );
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_clients_at_once_cost_at_most_two_runs_and_every_trigger_succeeds() {
    const CLIENTS: u8 = 40;
    // Each run takes several seconds: the 40 triggers arrive while the first runs.
    let harness = Harness::start_named(&unique("e2e"), &[], None, Duration::from_secs(4)).await;
    let inbox = harness.inbox().await;
    let posts = (0..CLIENTS).map(|n| {
        let client = client_from(Ipv4Addr::new(127, 0, 1, 10 + n));
        let url = harness.url("/trigger");
        async move {
            let response = send(&client, "POST", &url, "").await;
            (client, response)
        }
    });
    let answers = futures::future::join_all(posts).await;
    let mut triggers = Vec::new();
    for (client, response) in answers {
        assert_eq!(response.status, 202, "{:?}", response.body);
        // Each client is charged once for its trigger, coalesced or not.
        assert_eq!(
            response.body["quota"]["remaining"], 2,
            "{:?}",
            response.body
        );
        triggers.push((
            client,
            response.body["trigger_id"].as_str().unwrap().to_string(),
        ));
    }
    let mut executions = std::collections::BTreeSet::new();
    let mut coalesced = 0;
    for (client, id) in &triggers {
        let status = harness.status_becomes(client, id, "succeeded").await;
        executions.insert(
            status["execution_id"]
                .as_str()
                .expect("an execution")
                .to_string(),
        );
        coalesced += usize::from(status["coalesced"] == true);
    }
    harness.settled().await;
    let started = harness.executions(&harness.app).await;
    assert!(started <= 2, "{started} executions for 40 triggers");
    assert_eq!(executions.len(), started, "every trigger names one of them");
    assert_eq!(
        coalesced,
        triggers.len() - started,
        "all but each run's opener joined"
    );
    // One e-mail per run, each saying how many triggers it served.
    let emails = eventually("an e-mail per run", || async {
        let emails = harness.emails(&inbox).await;
        (emails.len() >= started).then_some(emails)
    })
    .await;
    let served: usize = emails
        .iter()
        .map(|(_, body)| {
            body.lines()
                .find_map(|l| l.strip_prefix("Triggers"))
                .and_then(|rest| rest.trim().split(',').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum();
    assert_eq!(served, triggers.len(), "{emails:#?}");
    // The ledger, for operators: newest first, by status, each trigger with
    // its run and the triggers coalesced with it.
    let listed = ops_json(
        &harness,
        "-",
        &["triggers", "list", "--since", "1h", "--limit", "1000"],
    )
    .await
    .unwrap();
    let listed = listed["triggers"].as_array().unwrap().clone();
    assert_eq!(listed.len(), triggers.len());
    let times: Vec<&str> = listed
        .iter()
        .map(|t| t["requested_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let succeeded = ops_json(
        &harness,
        "-",
        &[
            "triggers",
            "list",
            "--since",
            "1h",
            "--status",
            "succeeded",
            "--limit",
            "1000",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        succeeded["triggers"].as_array().unwrap().len(),
        triggers.len()
    );
    let none = ops_json(&harness, "-", &["triggers", "list", "--pipeline", "nope"])
        .await
        .unwrap();
    assert_eq!(none["triggers"], Value::Array(vec![]));
    let joined = listed
        .iter()
        .find(|t| t["coalesced"] == true)
        .expect("a joined trigger");
    let shown = ops_json(
        &harness,
        "-",
        &["triggers", "show", joined["trigger_id"].as_str().unwrap()],
    )
    .await
    .unwrap();
    let run_size = shown["run"]["triggers"].as_u64().unwrap() as usize;
    assert!(run_size > 1, "{shown}");
    assert_eq!(
        shown["coalesced_with"].as_array().unwrap().len(),
        run_size - 1,
        "{shown}"
    );
    assert_eq!(shown["run"]["execution_id"], joined["execution_id"]);

    // A charge stays a charge: the next trigger of a client has 1 left.
    let again = send(&triggers[0].0, "POST", &harness.url("/trigger"), "").await;
    assert_eq!(again.body["quota"]["remaining"], 1, "{:?}", again.body);
    let printed = harness.printed();
    assert!(
        printed.contains("joined the pending run of trigger"),
        "{printed}"
    );
    harness.stack.stop().await;
}

/// Runs `trigger-ops` against the harness's stack; returns its JSON output.
async fn ops_json(harness: &Harness, secret: &str, args: &[&str]) -> Result<Value, ops::OpsError> {
    let mut flagged = vec!["--json"];
    flagged.extend_from_slice(args);
    let output = ops_output(harness, secret, &flagged).await?;
    Ok(serde_json::from_str(&output).expect("JSON"))
}

/// What `trigger-ops <args>` prints against this stack's table.
async fn ops_output(
    harness: &Harness,
    secret: &str,
    args: &[&str],
) -> Result<String, ops::OpsError> {
    let table = harness.stack.resources.table_name.clone();
    let mut line = vec!["trigger-ops", "--table-name", &table];
    line.extend_from_slice(args);
    let cli = <ops::cli::Cli as clap::Parser>::try_parse_from(line).expect("a command line");
    let env = Env::from_pairs([("CLIENT_KEY_SECRET", secret)]);
    let ran = ops::run(
        &cli,
        &ops::Context {
            sdk: &harness.sdk,
            env: &env,
            stop: Arc::new(AtomicBool::new(false)),
            calls: shared::aws::CallCounter::default(),
        },
    )
    .await?;
    assert!(ran.success, "{}", ran.output);
    Ok(ran.output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_blocks_a_network_then_it_expires_and_a_reset_frees_one_client() {
    const SECRET: &str = "e2e-client-key-secret-0123456789";
    let harness = Harness::start(&[("CLIENT_KEY_SECRET", SECRET)], None).await;
    let inside = client_from(Ipv4Addr::new(127, 0, 3, 21));
    let neighbour = client_from(Ipv4Addr::new(127, 0, 3, 22));
    let outside = client_from(Ipv4Addr::new(127, 0, 4, 21));
    assert_eq!(post(&inside, &harness, "").await.status, 202);
    assert_eq!(post(&outside, &harness, "").await.status, 202);
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(
        (shown["used"].as_u64(), shown["remaining"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(shown["blocks"], Value::Array(vec![]));

    // The /24 is blocked for a few seconds: both of its clients get 403
    // with Retry-After, the reason stays with the operators, nothing is charged.
    let blocked = ops_json(
        &harness,
        SECRET,
        &[
            "clients",
            "block",
            "127.0.3.0/24",
            "--for",
            "4s",
            "--reason",
            "scripted flood, ticket 4711",
        ],
    )
    .await
    .unwrap();
    assert_eq!(blocked["blocked"], true);
    for client in [&inside, &neighbour] {
        let refused = post(client, &harness, "").await;
        assert_eq!(refused.status, 403, "{:?}", refused.body);
        assert_eq!(refused.body["type"], "urn:pipeline-trigger:problem:blocked");
        assert!(
            !refused.body.to_string().contains("4711"),
            "{:?}",
            refused.body
        );
        let retry: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=4).contains(&retry), "{retry}");
    }
    assert_eq!(
        post(&outside, &harness, "").await.status,
        202,
        "another network is not blocked"
    );
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 1, "a 403 costs nothing");
    assert_eq!(shown["blocks"][0]["scope"], "network");
    assert_eq!(shown["blocks"][0]["reason"], "scripted flood, ticket 4711");

    // The block ends by itself.
    let refusals = std::sync::atomic::AtomicUsize::new(2);
    eventually("the block to end", || async {
        let answer = post(&inside, &harness, "").await;
        if answer.status == 403 {
            refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        (answer.status != 403).then_some(answer.status)
    })
    .await;
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 2);

    // Reset frees exactly that client.
    let reset = ops_json(
        &harness,
        SECRET,
        &["clients", "reset", "127.0.3.21", "--yes"],
    )
    .await
    .unwrap();
    assert_eq!(reset["had_slots"], true);
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 0);
    let other = ops_json(&harness, SECRET, &["clients", "show", "127.0.4.21"])
        .await
        .unwrap();
    assert_eq!(other["used"], 2, "the other client keeps its charges");

    // An address block, lifted by hand.
    ops_json(
        &harness,
        SECRET,
        &[
            "clients",
            "block",
            "127.0.4.21",
            "--for",
            "1h",
            "--reason",
            "x",
        ],
    )
    .await
    .unwrap();
    assert_eq!(post(&outside, &harness, "").await.status, 403);
    assert_eq!(
        post(&neighbour, &harness, "").await.status,
        202,
        "only that address"
    );
    let lifted = ops_json(&harness, SECRET, &["clients", "unblock", "127.0.4.21"])
        .await
        .unwrap();
    assert_eq!(lifted["unblocked"], true);
    assert_eq!(post(&outside, &harness, "").await.status, 202);
    let blocked_lines = harness
        .metrics()
        .into_iter()
        .filter(|m| m["Rejected"] == 1 && m["Scope"] == "blocked")
        .count();
    assert_eq!(
        blocked_lines,
        refusals.into_inner() + 1,
        "one Rejected{{Scope=blocked}} per 403"
    );

    // Bad targets are refused before anything is touched (exit 2).
    for args in [
        vec![
            "clients",
            "block",
            "127.0.3.0/16",
            "--for",
            "1h",
            "--reason",
            "x",
        ],
        vec!["clients", "show", "127.0.3.0/24"],
        vec!["clients", "reset", "127.0.3.21"],
    ] {
        let err = ops_json(&harness, SECRET, &args).await.unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
    }
    harness.stack.stop().await;
}

/// The public page in headless Chromium (tests/browser/page.cjs), against
/// the stack served under a REST API stage: trigger with inputs and see
/// `succeeded` with the stages, a failing pipeline `failed`, the quota
/// refusal, an invalid input at its field, the link again after a reload;
/// and on a second stack whose queue is down, "unavailable".
/// Screenshots of each state land in `target/screenshots/page/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium_triggers_and_follows_runs() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = tests.parent().expect("the workspace").to_path_buf();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let node_modules = root.join("tools/node/node_modules");
    assert!(
        std::path::Path::new(&chromium).exists() && node_modules.join("playwright-core").exists(),
        "the page test needs Debian's chromium ({chromium}) and playwright-core in tools/node/node_modules: run scripts/test, which installs both"
    );
    let harness = Harness::start_with(
        &unique("page"),
        &[
            ("QUOTA_LIMIT", "2"),
            ("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS),
        ],
        None,
        Duration::from_secs(1),
        Some("prod"),
    )
    .await;
    let down = Harness::start_with(
        &unique("page-down"),
        &[("PIPELINE_SETTINGS", local_stack::DEFAULT_PIPELINE_SETTINGS)],
        Some(local_stack::Fault::QueueUnreachable),
        Duration::from_secs(1),
        Some("prod"),
    )
    .await;
    let shots = root.join("target/screenshots/page");
    let output = tokio::process::Command::new("node")
        .arg(tests.join("browser/page.cjs"))
        .arg(harness.url("/prod"))
        .arg(&shots)
        .arg(down.url("/prod"))
        .env("NODE_PATH", &node_modules)
        .env("CHROMIUM", &chromium)
        .output()
        .await
        .expect("node runs (Debian package nodejs)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{said}\nthe stack printed:\n{}",
        harness.printed()
    );
    assert!(said.contains("every step passed"), "{said}");
    // The steps and the page's weight, for `cargo test -- --nocapture`.
    println!("{said}");
    for state in [
        "invalid-input",
        "succeeded",
        "failed",
        "refused",
        "reloaded",
        "unavailable",
    ] {
        assert!(shots.join(format!("{state}.png")).exists(), "{state}");
    }
    harness.stack.stop().await;
    down.stack.stop().await;
}
