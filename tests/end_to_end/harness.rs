//! What every story here shares: the engines, the handler under test, helpers.

pub(crate) use http_body_util::{BodyExt, Full};
pub(crate) use hyper::body::Bytes;
pub(crate) use hyper_util::client::legacy::connect::HttpConnector;
pub(crate) use hyper_util::client::legacy::Client;
pub(crate) use hyper_util::rt::TokioExecutor;
pub(crate) use local_stack::pipeline_runs::{FAILED_MESSAGE, FAILED_STAGE};
pub(crate) use local_stack::{console::Console, LocalOptions, LocalStack};
pub(crate) use serde_json::Value;
pub(crate) use shared::config::Env;
pub(crate) use std::net::{IpAddr, Ipv4Addr};
pub(crate) use std::path::PathBuf;
pub(crate) use std::sync::atomic::AtomicBool;
pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;
pub(crate) use testkit::{unique, CapturedLogs};

/// Settings that turn coalescing off for `app`: one execution per trigger,
/// each waiting its turn, with room in the queue for every trigger a test
/// sends.
pub(crate) const ALONE: &str =
    r#"{"app": {"coalesce": false, "max_pending": 10, "reserved_pending": 0}}"#;

/// Longest wait for any hop; waits end as soon as the condition holds.
pub(crate) const PATIENCE: Duration = Duration::from_secs(150);

/// Polls `check` until it returns `Some`, or fails the test naming `what`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
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

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    pub(crate) body: Value,
}

/// An HTTP client whose connections come from `source` (a loopback
/// address): the gateway names it as the client's address.
pub(crate) fn client_from(source: Ipv4Addr) -> Client<HttpConnector, Full<Bytes>> {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(source)));
    Client::builder(TokioExecutor::new()).build(connector)
}

pub(crate) async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: &str,
) -> Response {
    send_with(client, method, url, body, &[]).await
}

/// [`send`] with more request headers.
pub(crate) async fn send_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
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
pub(crate) struct Harness {
    pub(crate) stack: LocalStack,
    pub(crate) printed: CapturedLogs,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) codepipeline: aws_sdk_codepipeline::Client,
    pub(crate) sdk: aws_config::SdkConfig,
    pub(crate) app: String,
    pub(crate) broken: String,
    pub(crate) prefix: String,
    pub(crate) outputs: PathBuf,
    /// Every e-mail read from each inbox so far: reading consumes them.
    read_emails: std::sync::Mutex<std::collections::HashMap<String, Vec<(String, String)>>>,
}

pub(crate) fn outputs_path(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-outputs.json"))
}

impl Harness {
    /// A stack with pipelines `<prefix>-app` (default, succeeds) and
    /// `<prefix>-broken` (fails); `settings` are the functions' environment.
    pub(crate) async fn start(
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
    ) -> Self {
        let prefix = unique("e2e");
        Self::start_named(&prefix, settings, fault, Duration::from_secs(1)).await
    }

    pub(crate) async fn start_named(
        prefix: &str,
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
        run_time: Duration,
    ) -> Self {
        Self::start_with(prefix, settings, fault, run_time, None).await
    }

    /// As [`Harness::start_named`], the API served under `/<stage>/` when
    /// `stage` is given (as a REST API stage).
    pub(crate) async fn start_with(
        prefix: &str,
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
        run_time: Duration,
        stage: Option<&str>,
    ) -> Self {
        let edge = local_stack::edge::Limits::off();
        Self::start_with_edge(prefix, settings, fault, run_time, stage, edge).await
    }

    /// As [`Harness::start_with`], with the route throttles and the WAF's
    /// rate rules of `edge` (the tests that use [`Harness::start_with`]
    /// send more than a person would, and have them off).
    pub(crate) async fn start_with_edge(
        prefix: &str,
        settings: &[(&str, &str)],
        fault: Option<local_stack::Fault>,
        run_time: Duration,
        stage: Option<&str>,
        edge: local_stack::edge::Limits,
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
            chaos: None,
            edge,
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
            read_emails: Default::default(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.stack.base_url)
    }

    /// A queue subscribed to the on-call topic, for counting e-mails.
    pub(crate) async fn inbox(&self) -> String {
        let sns = shared::aws::sns(&self.sdk, &shared::aws::CallCounter::default());
        testkit::provision::create_inbox(
            &sns,
            &self.sqs,
            &self.stack.resources.topic_arn,
            &unique("e2e-inbox"),
        )
        .await
        .expect("subscribe an inbox")
    }

    /// Every e-mail that reached `inbox` so far, as (subject, body): those
    /// read before (reading consumes them from the queue) and any new ones,
    /// so a wait for "n e-mails" can ask as often as it likes.
    pub(crate) async fn emails(&self, inbox: &str) -> Vec<(String, String)> {
        let new = testkit::emails(&self.sqs, inbox).await;
        let mut read = self.read_emails.lock().unwrap_or_else(|p| p.into_inner());
        let all = read.entry(inbox.to_string()).or_default();
        all.extend(new);
        all.clone()
    }

    /// Visible plus in-flight messages of a queue.
    pub(crate) async fn depth(&self, url: &str) -> u64 {
        let deliveries = shared::aws::queue::Deliveries::new(self.sqs.clone());
        let counts = deliveries.counts(url).await.expect("queue counts");
        counts.visible + counts.in_flight + counts.delayed
    }

    pub(crate) async fn executions(&self, pipeline: &str) -> usize {
        testkit::executions(&self.codepipeline, pipeline).await
    }

    /// Waits for the trigger's status to become `want`; returns its body.
    pub(crate) async fn status_becomes(
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
    pub(crate) async fn stages_become(
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
    pub(crate) async fn settled(&self) {
        let events = self.stack.resources.events_queue_url.clone();
        let work = self.stack.resources.queue_url.clone();
        eventually("the stack to settle", || async {
            (self.depth(&events).await == 0 && self.depth(&work).await == 0).then_some(())
        })
        .await;
    }

    pub(crate) fn printed(&self) -> String {
        self.printed.text()
    }

    /// The metric lines the functions published so far, each checked
    /// against the EMF specification's required fields.
    pub(crate) fn metrics(&self) -> Vec<Value> {
        let lines = self.stack.metric_lines();
        lines
            .iter()
            .map(|line| testkit::check_emf(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }
}

pub(crate) async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    harness: &Harness,
    body: &str,
) -> Response {
    send(client, "POST", &harness.url("/trigger"), body).await
}

/// Runs `trigger-ops` against the harness's stack; returns its JSON output.
pub(crate) async fn ops_json(
    harness: &Harness,
    secret: &str,
    args: &[&str],
) -> Result<Value, ops::OpsError> {
    let mut flagged = vec!["--json"];
    flagged.extend_from_slice(args);
    let output = ops_output(harness, secret, &flagged).await?;
    Ok(serde_json::from_str(&output).expect("JSON"))
}

/// What `trigger-ops <args>` prints against this stack's table.
pub(crate) async fn ops_output(
    harness: &Harness,
    secret: &str,
    args: &[&str],
) -> Result<String, ops::OpsError> {
    let table = harness.stack.resources.table_name.clone();
    let mut line = vec!["trigger-ops", "--table-name", &table];
    line.extend_from_slice(args);
    let cli = <ops::cli::Cli as clap::Parser>::try_parse_from(line).expect("a command line");
    let env = Env::from_pairs([
        ("CLIENT_KEY_SECRET", secret),
        (
            "EVENTS_DLQ_URL",
            harness.stack.resources.events_dlq_url.as_str(),
        ),
        (
            "NOTIFIER_FUNCTION",
            harness.stack.notifier_function.as_str(),
        ),
    ]);
    // Lambda's `Invoke` is the local stack's own (the notifier in process).
    let mut endpoints = testkit::engines();
    endpoints.services.push((
        shared::aws::LAMBDA_SERVICE_ID.to_string(),
        harness.stack.lambda_url.clone(),
    ));
    let sdk = shared::aws::with_endpoints(&harness.sdk, endpoints);
    let ran = ops::run(
        &cli,
        &ops::Context {
            sdk: &sdk,
            env: &env,
            stop: Arc::new(AtomicBool::new(false)),
            calls: shared::aws::CallCounter::default(),
        },
    )
    .await?;
    assert!(ran.success, "{}", ran.output);
    Ok(ran.output)
}
