//! Test support: the real engines (DynamoDB Local for DynamoDB, moto's
//! server for SQS, SNS, CodePipeline, IAM and EventBridge), SDK clients
//! pointed at them, fresh resources per test, captured logs.
//!
//! `DYNAMODB_ENDPOINT` and `MOTO_ENDPOINT` (set by `scripts/test`) name
//! running engines; without them the first test of a binary starts its own
//! on a free loopback port (`scripts/lib/dynamodb-local`,
//! `.venv/bin/moto_server`), and a watcher stops it when the test process
//! ends. If an engine cannot be had, tests fail loudly: they never skip.

pub mod clouds;
pub mod emulation;
pub mod events;
mod http_server;
pub mod keys;
mod lossy_proxy;
pub mod permissions;
pub mod provision;
pub mod table;

pub use emulation::CodePipelineFront;
pub use http_server::{relay, serve_http};
pub use lossy_proxy::LossyProxy;

/// IAM, for provisioning on the emulator ([`provision`]).
pub fn iam(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_iam::Client {
    shared::sdk_client!(aws_sdk_iam, sdk, calls)
}

/// EventBridge, for provisioning on the emulator ([`provision`]).
pub fn eventbridge(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_eventbridge::Client {
    shared::sdk_client!(aws_sdk_eventbridge, sdk, calls)
}

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use shared::aws::queue::WorkQueue;
use shared::aws::table::admission::{Admission, QuotaLevel};
use shared::aws::table::Table;
use shared::aws::{CallCounter, Endpoints};
use shared::clock::{Clock, SystemClock};
use shared::rules::message::{WorkMessage, MESSAGE_VERSION};
use shared::rules::quota::QuotaPolicy;
use shared::rules::time_format::rfc3339;
use shared::rules::trigger::{new_trigger_id, TriggerRecord};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// The repository's root: testkit lives in `tools/testkit/`.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives in tools/testkit of the workspace")
        .to_path_buf()
}

/// A loopback port nothing listens on.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// An endpoint that refuses connections.
pub fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn wait_for(endpoint: &str, timeout: Duration) -> bool {
    let address = endpoint.trim_start_matches("http://");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(address).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Starts `server args…` on a free loopback port (the port is appended as
/// `{port}` in `args`); a watcher ends it when this test process is gone,
/// however it ends. Returns its endpoint.
fn start_engine(what: &str, server: &std::path::Path, args: &str, hint: &str) -> String {
    assert!(
        server.exists(),
        "no {what}: {} is missing. {hint}",
        server.display()
    );
    let port = free_port();
    let args = args.replace("{port}", &port.to_string());
    let script = format!(
        "\"$0\" {args} >/dev/null 2>&1 & m=$!; \
         while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; kill $m 2>/dev/null",
        pid = std::process::id()
    );
    let mut watcher = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(server)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    // Reap the watcher when it ends.
    std::thread::spawn(move || watcher.wait());
    let endpoint = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(&endpoint, Duration::from_secs(60)),
        "{what} did not start listening on {endpoint}"
    );
    endpoint
}

/// A running engine's endpoint from `variable`, or one started for this
/// test process.
fn engine_endpoint(variable: &str, start: impl FnOnce() -> String) -> String {
    match std::env::var(variable) {
        Ok(endpoint) if !endpoint.is_empty() => {
            assert!(
                wait_for(&endpoint, Duration::from_secs(30)),
                "{variable}={endpoint} does not answer"
            );
            endpoint
        }
        _ => start(),
    }
}

/// moto's endpoint (SQS, SNS, CodePipeline, IAM, EventBridge), starting one if needed.
pub fn moto_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        engine_endpoint("MOTO_ENDPOINT", || {
            let server = std::env::var("MOTO_SERVER")
                .map(PathBuf::from)
                .unwrap_or_else(|_| workspace_root().join(".venv/bin/moto_server"));
            start_engine(
                "AWS emulator (moto)",
                &server,
                "-H 127.0.0.1 -p {port}",
                "Run scripts/test (it installs moto into .venv/) or set MOTO_ENDPOINT to a running moto server.",
            )
        })
    })
}

/// DynamoDB Local's endpoint, starting one if needed. Every DynamoDB call of
/// the tests goes here: moto's transactions are not isolated, so a quota
/// test on moto would prove nothing.
pub fn dynamodb_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        engine_endpoint("DYNAMODB_ENDPOINT", || {
            start_engine(
                "DynamoDB Local",
                &workspace_root().join("scripts/lib/dynamodb-local"),
                "{port}",
                "Run scripts/test (it installs DynamoDB Local into tools/) or set DYNAMODB_ENDPOINT to a running DynamoDB Local.",
            )
        })
    })
}

/// Where the tests' calls go: DynamoDB to DynamoDB Local, CodePipeline to
/// [`codepipeline_front`] (moto, played as AWS plays it), the rest to moto.
pub fn engines() -> Endpoints {
    Endpoints {
        dynamodb: dynamodb_endpoint().to_string(),
        others: moto_endpoint().to_string(),
        services: vec![(
            shared::aws::CODEPIPELINE_SERVICE_ID.to_string(),
            codepipeline_front().endpoint.clone(),
        )],
    }
}

/// The environment that points a child process (a function's binary,
/// trigger-ops) at the engines, as the SDK reads it.
pub fn engine_env() -> [(&'static str, String); 3] {
    let engines = engines();
    [
        ("AWS_ENDPOINT_URL", engines.others),
        ("AWS_ENDPOINT_URL_DYNAMODB", engines.dynamodb),
        (
            "AWS_ENDPOINT_URL_CODEPIPELINE",
            codepipeline_front().endpoint.clone(),
        ),
    ]
}

/// The worker's role in the tests: the front records its starts as made by it.
pub const WORKER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/pipeline-trigger-worker";

/// This test process's CodePipeline front ([`crate::emulation`]) in
/// front of moto: one token, one execution; who started each. Started once,
/// on a thread and runtime of its own, so it outlives every test's runtime.
pub fn codepipeline_front() -> &'static CodePipelineFront {
    static FRONT: std::sync::OnceLock<CodePipelineFront> = std::sync::OnceLock::new();
    FRONT.get_or_init(|| {
        let moto = moto_endpoint().to_string();
        let caller = shared::rules::pipeline_event::assumed_role_arn(WORKER_ROLE_ARN, "worker")
            .expect("a role ARN");
        let (sender, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the CodePipeline front");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port for the CodePipeline front");
                let (front, serve) = CodePipelineFront::new(listener, &moto, &caller)
                    .expect("the CodePipeline front");
                let _ = sender.send(front);
                serve.await;
            });
        });
        started.recv().expect("the CodePipeline front starts")
    })
}

/// SDK settings with each service's endpoint from `endpoints`, through
/// the project's one client builder.
pub async fn sdk_config_with(endpoints: Endpoints) -> SdkConfig {
    let sdk = shared::aws::config_loader()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            "testing", "testing", None, None, "testkit",
        ))
        .load()
        .await;
    shared::aws::with_endpoints(&sdk, endpoints)
}

/// SDK settings pointing every service at `endpoint` (a dead endpoint, a
/// stand-in).
pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
    sdk_config_with(Endpoints {
        dynamodb: endpoint.to_string(),
        others: endpoint.to_string(),
        services: Vec::new(),
    })
    .await
}

/// SDK settings pointing at the engines.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_with(engines()).await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Clients on the emulator sharing one call counter, and a fresh table and queues.
pub struct Stack {
    pub sdk: SdkConfig,
    pub calls: CallCounter,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub iam: aws_sdk_iam::Client,
    pub sns: aws_sdk_sns::Client,
    pub table_name: String,
    pub queues: crate::provision::Queues,
}

impl Stack {
    pub async fn new() -> Self {
        let sdk = sdk_config().await;
        let calls = CallCounter::default();
        let dynamodb = shared::aws::dynamodb(&sdk, &calls);
        let sqs = shared::aws::sqs(&sdk, &calls);
        let codepipeline = shared::aws::codepipeline(&sdk, &calls);
        let iam = crate::iam(&sdk, &calls);
        let sns = shared::aws::sns(&sdk, &calls);
        let table_name = unique("table");
        crate::provision::create_table(&dynamodb, &table_name)
            .await
            .expect("create table");
        let queues = crate::provision::create_queues(&sqs, &unique("work"), 5)
            .await
            .expect("create queues");
        Self {
            sdk,
            calls,
            dynamodb,
            sqs,
            codepipeline,
            iam,
            sns,
            table_name,
            queues,
        }
    }

    /// Creates a pipeline with a fresh name; returns the name.
    pub async fn pipeline(&self, prefix: &str) -> String {
        let name = unique(prefix);
        crate::provision::create_pipeline(&self.iam, &self.codepipeline, &name)
            .await
            .expect("create pipeline");
        name
    }

    /// How many executions a pipeline has.
    pub async fn executions(&self, pipeline: &str) -> usize {
        executions(&self.codepipeline, pipeline).await
    }

    /// The ARN of a queue.
    pub async fn queue_arn(&self, queue_url: &str) -> String {
        crate::provision::queue_arn(&self.sqs, queue_url)
            .await
            .expect("queue ARN")
    }

    /// Receives up to 10 messages of the work queue (for `visibility` seconds)
    /// and turns them into the SQS event Lambda's event source mapping delivers.
    pub async fn receive_event(&self, visibility: i32) -> serde_json::Value {
        let url = &self.queues.queue_url;
        let arn = self.queue_arn(url).await;
        let received = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        sqs_event(received.messages(), &arn)
    }

    /// A trigger key made as `trigger-ops keys create` makes one (160
    /// random bits, only its SHA-256 stored), for `pipelines` (empty: every
    /// one) with `quota`. Returns the key.
    pub async fn create_key(
        &self,
        name: &str,
        pipelines: &[&str],
        quota: shared::rules::quota::QuotaPolicy,
    ) -> String {
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes).expect("random bytes");
        let key = shared::rules::keys::key_from_bytes(&bytes);
        let record = shared::rules::keys::KeyRecord {
            name: name.to_string(),
            hash: shared::rules::keys::key_hash(&key),
            pipelines: pipelines.iter().map(|p| p.to_string()).collect(),
            quota,
            created_at: shared::clock::Clock::now_ms(&shared::clock::SystemClock),
            revoked_at: None,
            valid_until: None,
        };
        let made = shared::aws::table::Table::new(self.dynamodb.clone(), &self.table_name)
            .keys()
            .create(&record)
            .await
            .expect("create a key");
        assert!(made, "a key named {name} exists");
        key
    }

    /// A trigger for `pipeline` exactly as the ingress makes one: quota taken
    /// and record written through the table adapter, message sent through the
    /// queue adapter. Each call is a new client. Returns the trigger id.
    pub async fn enqueue_trigger(&self, pipeline: &str) -> String {
        self.enqueue_trigger_with_inputs(pipeline, serde_json::json!({}))
            .await
    }

    /// [`Stack::enqueue_trigger`] for the public pipeline `app` with input
    /// values (a JSON object, as the ingress resolved them), recorded and
    /// queued as they are.
    pub async fn enqueue_trigger_with_inputs(
        &self,
        pipeline: &str,
        inputs: serde_json::Value,
    ) -> String {
        self.enqueue_in_lane("app", pipeline, inputs, None).await
    }

    /// [`Stack::enqueue_trigger_with_inputs`] by the public name `public`
    /// of the CodePipeline `pipeline`.
    pub async fn enqueue_trigger_as(
        &self,
        public: &str,
        pipeline: &str,
        inputs: serde_json::Value,
    ) -> String {
        self.enqueue_in_lane(public, pipeline, inputs, None).await
    }

    /// A keyed trigger for `pipeline` as the ingress makes one: charged to
    /// the quota of the key named `key` (20 a day), in the keyed lane.
    pub async fn enqueue_keyed_trigger(
        &self,
        pipeline: &str,
        inputs: serde_json::Value,
        key: &str,
    ) -> String {
        self.enqueue_in_lane("app", pipeline, inputs, Some(key))
            .await
    }

    async fn enqueue_in_lane(
        &self,
        public: &str,
        pipeline: &str,
        inputs: serde_json::Value,
        key: Option<&str>,
    ) -> String {
        static NEXT_CLIENT: AtomicU32 = AtomicU32::new(1);
        let address =
            std::net::Ipv4Addr::from(0x0A00_0000 | NEXT_CLIENT.fetch_add(1, Ordering::SeqCst));
        let now = SystemClock.now_ms();
        let client_key = shared::rules::client_key::client_key(
            b"testkit-client-key-secret",
            &address.to_string(),
        )
        .expect("a valid address");
        let record = TriggerRecord::queued(
            new_trigger_id(),
            public,
            pipeline,
            client_key,
            shared::rules::inputs::values_from_json(&inputs).expect("input values"),
            now,
            now / 1000 + 86_400,
        );
        let mut record = record;
        record.key = key.map(str::to_string);
        let level = match key {
            None => QuotaLevel::client(
                &record.client_key,
                QuotaPolicy {
                    limit: 1,
                    window: Duration::from_secs(60),
                },
            ),
            Some(name) => QuotaLevel::key(name, shared::rules::keys::DEFAULT_KEY_QUOTA),
        };
        let admission = Table::new(self.dynamodb.clone(), &self.table_name)
            .admission()
            .admit(&[level], None, &record, &[], None)
            .await
            .expect("admit");
        assert!(
            matches!(admission, Admission::Accepted { .. }),
            "{admission:?}"
        );
        let message = WorkMessage {
            version: MESSAGE_VERSION,
            trigger_id: record.trigger_id.clone(),
            pipeline: pipeline.into(),
            requested_at: rfc3339(now),
            client_key: record.client_key.to_string(),
            inputs: match inputs {
                serde_json::Value::Object(values) if !values.is_empty() => Some(values),
                _ => None,
            },
            unsettled: false,
        };
        WorkQueue::new(self.sqs.clone(), &self.queues.queue_url)
            .send(&message)
            .await
            .expect("enqueue");
        record.trigger_id
    }

    /// Every item in the table, page after page.
    pub async fn scan_items(
        &self,
    ) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        self.dynamodb
            .scan()
            .table_name(&self.table_name)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .expect("scan table")
    }

    /// A fresh on-call topic and a queue subscribed to it; returns the
    /// topic ARN and the inbox URL (read it with [`Stack::emails`]).
    pub async fn topic_with_inbox(&self) -> (String, String) {
        let topic = crate::provision::create_topic(&self.sns, &unique("on-call"))
            .await
            .expect("create topic");
        let inbox = crate::provision::create_inbox(&self.sns, &self.sqs, &topic, &unique("inbox"))
            .await
            .expect("create inbox");
        (topic, inbox)
    }

    /// A fresh, empty queue beside the stack's (an events DLQ, say); its URL.
    pub async fn queue(&self, prefix: &str) -> String {
        self.sqs
            .create_queue()
            .queue_name(unique(prefix))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .expect("a queue URL")
    }

    /// The e-mails that reached an inbox since the last call, as (subject, body).
    pub async fn emails(&self, inbox_url: &str) -> Vec<(String, String)> {
        emails(&self.sqs, inbox_url).await
    }

    /// Receives (and consumes) every message currently on a queue.
    pub async fn drain(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        drain(&self.sqs, queue_url).await
    }

    /// Puts `body` on a queue as it is, without attributes.
    pub async fn send_raw(&self, queue_url: &str, body: &str) {
        self.sqs
            .send_message()
            .queue_url(queue_url)
            .message_body(body)
            .send()
            .await
            .expect("send a message");
    }
}

/// How many executions a pipeline has.
pub async fn executions(codepipeline: &aws_sdk_codepipeline::Client, pipeline: &str) -> usize {
    codepipeline
        .list_pipeline_executions()
        .pipeline_name(pipeline)
        .send()
        .await
        .expect("list executions")
        .pipeline_execution_summaries()
        .len()
}

/// The pipeline variables an execution was started with, as CodePipeline
/// keeps them: (name, value), sorted by name.
pub async fn execution_variables(
    codepipeline: &aws_sdk_codepipeline::Client,
    pipeline: &str,
    execution_id: &str,
) -> Vec<(String, String)> {
    let output = codepipeline
        .get_pipeline_execution()
        .pipeline_name(pipeline)
        .pipeline_execution_id(execution_id)
        .send()
        .await
        .expect("get the execution");
    let mut variables: Vec<(String, String)> = output
        .pipeline_execution()
        .map(|e| e.variables())
        .unwrap_or_default()
        .iter()
        .map(|v| {
            (
                v.name().unwrap_or_default().to_string(),
                v.resolved_value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    variables.sort();
    variables
}

/// The e-mails that reached an inbox (a queue subscribed to the topic)
/// since the last call, as (subject, body); consumed.
pub async fn emails(sqs: &aws_sdk_sqs::Client, inbox_url: &str) -> Vec<(String, String)> {
    drain(sqs, inbox_url)
        .await
        .iter()
        .map(|m| {
            let envelope: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).expect("an SNS envelope");
            let field = |name: &str| envelope[name].as_str().unwrap_or_default().to_string();
            (field("Subject"), field("Message"))
        })
        .collect()
}

/// Receives (and consumes) every message currently on a queue.
pub async fn drain(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .visibility_timeout(300)
            .send()
            .await
            .expect("receive messages");
        let messages = batch.messages().to_vec();
        if messages.is_empty() {
            return all;
        }
        all.extend(messages);
    }
}

/// Log lines captured from a JSON subscriber, for assertions on what was logged.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
            .collect()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Routes this thread's logs (the project's JSON format) into a buffer until
/// the guard drops. Use with a current-thread runtime.
pub fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    let logs = CapturedLogs::default();
    let guard =
        tracing::subscriber::set_default(shared::lambda::logging::json_subscriber(logs.clone()));
    (logs, guard)
}

/// An API Gateway REST (v1 proxy) event, as API Gateway hands it to the
/// ingress; it carries an `X-Forwarded-For` the ingress must ignore.
pub fn rest_event(method: &str, path: &str, body: Option<&str>, ip: &str) -> serde_json::Value {
    crate::events::api_gateway_event(&crate::events::GatewayRequest {
        method,
        stage: None,
        path,
        query: None,
        headers: vec![
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("X-Forwarded-For".into(), "198.51.100.99".into()),
        ],
        body: body.unwrap_or_default().as_bytes(),
        source_ip: ip,
        request_id: "r-1",
    })
}

/// [`rest_event`] with `Authorization: Bearer <key>`: a keyed trigger.
pub fn keyed_event(path: &str, body: Option<&str>, ip: &str, key: &str) -> serde_json::Value {
    let mut event = rest_event("POST", path, body, ip);
    let bearer = format!("Bearer {key}");
    event["headers"]["Authorization"] = serde_json::Value::from(bearer.as_str());
    event["multiValueHeaders"]["Authorization"] = serde_json::json!([bearer]);
    event
}

/// The SQS event Lambda's event source mapping builds from received messages.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> serde_json::Value {
    crate::events::sqs_event(messages, queue_arn, REGION)
}

/// Checks an Embedded Metric Format line against the specification's
/// required fields: an `_aws` object with a millisecond `Timestamp` and
/// `CloudWatchMetrics` directives, each with a valid `Namespace`,
/// `Dimensions` (arrays of at most 30 names of root string members) and
/// `Metrics` (1 to 100, each named after a root number member, `Unit`
/// `Count`). Returns the parsed line.
pub fn check_emf(line: &str) -> Result<serde_json::Value, String> {
    let root: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let aws = root.get("_aws").ok_or("no _aws")?;
    aws["Timestamp"].as_u64().ok_or("Timestamp is not ms")?;
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .ok_or("no CloudWatchMetrics")?;
    if directives.is_empty() {
        return Err("no directive".into());
    }
    for directive in directives {
        let namespace = directive["Namespace"].as_str().ok_or("no Namespace")?;
        if !shared::rules::metrics::is_valid_namespace(namespace) {
            return Err(format!("bad namespace {namespace}"));
        }
        for set in directive["Dimensions"].as_array().ok_or("no Dimensions")? {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.is_empty() || set.len() > 30 {
                return Err("a dimension set needs 1 to 30 names".into());
            }
            for name in set {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                root[name]
                    .as_str()
                    .ok_or(format!("dimension {name} has no string value"))?;
            }
        }
        let metrics = directive["Metrics"].as_array().ok_or("no Metrics")?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err("0 or more than 100 metrics".into());
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no Name")?;
            root[name]
                .as_f64()
                .ok_or(format!("metric {name} has no number value"))?;
            if metric["Unit"] != "Count" {
                return Err(format!("unit of {name}"));
            }
        }
    }
    Ok(root)
}
