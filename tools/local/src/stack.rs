//! The local stack: DynamoDB Local and moto behind the same SDK clients,
//! the three functions served as Lambda would, the edge, and what stands in
//! for the AWS services the engines lack; [`start`] makes it.

use crate::console::Console;
use crate::error::LocalError;
use crate::stopping::Stopping;
use crate::{
    edge, event_source, faults, gateway, inbox, lambda_api, outage, pipeline_runs, resources,
    rule_target, settler,
};
use aws_config::SdkConfig;
use shared::aws::queue::{Deliveries, WorkQueue};
use shared::aws::table::Table;
use shared::aws::{self, CallCounter};
use shared::clock::{Clock, SystemClock};
use shared::config::{Env, IngressConfig, NotifierConfig, WorkerConfig, MAX_ATTEMPTS_LIMIT};
use shared::lambda::metrics::MetricsSink;
use shared::rules::pipelines::Pipelines;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use testkit::emulation::{CodePipelineFront, Started};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The allowlist when `PIPELINES` is not set: a pipeline that succeeds (the
/// default target) and one whose runs fail.
pub const DEFAULT_PIPELINES: &str = "app=demo-app,broken=demo-broken";
/// `PIPELINE_SETTINGS` with the default pipelines: the app declares a few
/// typed inputs, to try them from the command line or the page.
pub const DEFAULT_PIPELINE_SETTINGS: &str = r#"{
  "app": {
    "description": "Demo app: its runs succeed",
    "inputs": {
      "environment": {"type": "choice", "options": ["staging", "production"], "default": "staging",
                      "description": "Where to deploy"},
      "dry_run": {"type": "boolean", "default": false, "description": "Build without deploying"},
      "replicas": {"type": "number", "integer": true, "min": 1, "max": 5, "default": 1,
                   "description": "How many instances to run"},
      "branch": {"type": "string", "pattern": "[a-z0-9][a-z0-9._/-]{0,62}", "max_length": 63,
                 "default": "main", "description": "The branch to build",
                 "hint": "a branch name: lowercase letters, digits and . _ / - (up to 63)"}
    }
  },
  "broken": {"description": "Demo pipeline whose runs fail"}
}"#;

/// The pipelines whose runs fail when `--failing` is not given.
pub const DEFAULT_FAILING: &str = "demo-broken";

/// A fault to rehearse with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fault {
    /// The worker's CodePipeline endpoint refuses connections: triggers are
    /// retried, then dead-lettered with their reason.
    CodepipelineUnreachable,
    /// The ingress's queue refuses connections: `POST /trigger` answers 503
    /// with `Retry-After`, and the client's quota is given back.
    QueueUnreachable,
}

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Loopback port of the HTTP API; 0 picks a free one.
    pub port: u16,
    /// Names every resource, so a restart finds them again.
    pub prefix: String,
    /// CodePipeline names whose runs fail.
    pub failing: Vec<String>,
    /// How long a played run takes from `STARTED` to its outcome.
    pub run_time: Duration,
    pub fault: Option<Fault>,
    /// Where to write the resources as `terraform output -json` does.
    pub outputs: Option<PathBuf>,
    /// Serve the API under `/<stage>/`, as a REST API stage (`prod`).
    pub stage: Option<String>,
    /// The chaos run's faults ([`faults`]); `None`: none.
    pub chaos: Option<Arc<faults::Chaos>>,
    /// The route throttles and the WAF's rate rules ([`edge::Limits`]):
    /// Terraform's by default, off for tests that send more than a person.
    pub edge: edge::Limits,
}

impl LocalOptions {
    /// A stack for a benchmark: a free port, no faults, no outputs file,
    /// no edge limits (the bench sends far more than a person), runs of
    /// `run_time`.
    pub fn bench(prefix: String, run_time: Duration) -> Self {
        Self {
            port: 0,
            prefix,
            failing: vec![],
            run_time,
            fault: None,
            outputs: None,
            stage: None,
            chaos: None,
            edge: edge::Limits::off(),
        }
    }
}

/// A quiet stack for a benchmark ([`LocalOptions::bench`]), nothing said
/// on the console.
pub async fn start_bench(
    sdk: &SdkConfig,
    env: &Env,
    prefix: String,
    run_time: Duration,
) -> Result<LocalStack, LocalError> {
    start(
        sdk,
        env,
        &LocalOptions::bench(prefix, run_time),
        Console::new(Box::new(std::io::sink())),
    )
    .await
}

/// The worker's role in the local stack: its starts are recorded as made by
/// a session of it, and the notifier knows it (`WORKER_ROLE_ARN`).
pub const LOCAL_WORKER_ROLE_ARN: &str = "arn:aws:iam::123456789012:role/pipeline-trigger-worker";
/// The account the emulators play (moto's default).
const LOCAL_ACCOUNT: &str = "123456789012";
/// Named in the ARN of a push's webhook.
const LOCAL_REGION_NAME: &str = "local";

/// The local stack, running.
pub struct LocalStack {
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
    pub resources: resources::Resources,
    /// The AWS calls each function made (its own clients, as in Lambda).
    pub calls: FunctionCalls,
    /// The metric lines (Embedded Metric Format) the functions would
    /// publish under Lambda, in order.
    pub metrics: Arc<std::sync::Mutex<Vec<String>>>,
    /// CodePipeline as AWS plays it: the worker's starts go through it.
    pub front: CodePipelineFront,
    /// Lambda's `Invoke` for the notifier (`trigger-ops events replay`).
    pub lambda_url: String,
    /// The notifier's name there.
    pub notifier_function: String,
    /// Takes the table away from the notifier, and gives it back.
    pub notifier_table: outage::Outage,
    /// Every e-mail on-call got, subject and body, in order.
    pub emails: Arc<std::sync::Mutex<Vec<String>>>,
    /// The emulator's CodePipeline, for runs started outside the system.
    outside: aws_sdk_codepipeline::Client,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// The AWS calls of each function of the stack.
#[derive(Debug, Clone, Default)]
pub struct FunctionCalls {
    pub ingress: CallCounter,
    pub worker: CallCounter,
    pub notifier: CallCounter,
}

impl LocalStack {
    /// The metric lines published so far, in order (a copy).
    pub fn metric_lines(&self) -> Vec<String> {
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The e-mails on-call got so far, in order (a copy).
    pub fn sent_emails(&self) -> Vec<String> {
        self.emails
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Starts a run of `pipeline` as a push to its source would (a webhook,
    /// not the worker): its events say so, and the notifier e-mails it at
    /// once as not a public trigger's. Returns the execution id.
    pub async fn push(&self, pipeline: &str) -> Result<String, LocalError> {
        let started = self
            .outside
            .start_pipeline_execution()
            .name(pipeline)
            .send()
            .await
            .map_err(|e| {
                LocalError::Failed(format!("could not start {pipeline}: {}", aws::describe(&e)))
            })?;
        let execution_id = started
            .pipeline_execution_id()
            .unwrap_or_default()
            .to_string();
        self.front.record(
            &execution_id,
            Started {
                pipeline: pipeline.to_string(),
                started_ms: SystemClock.now_ms(),
                trigger_type: "WebhookV2".into(),
                trigger_detail: format!("arn:aws:codepipeline:{LOCAL_REGION_NAME}:{LOCAL_ACCOUNT}:webhook:{pipeline}-push"),
            },
        );
        Ok(execution_id)
    }

    /// Stops every part and waits for them; work in flight is finished.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Is `endpoint` an emulator on this machine?
fn is_loopback_endpoint(endpoint: &str) -> bool {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or("");
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => rest.split([':', '/']).next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An endpoint that refuses connections: a port just bound and released.
fn unreachable_endpoint() -> Result<String, LocalError> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| LocalError::Failed(format!("cannot bind a loopback port: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| LocalError::Failed(e.to_string()))?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

async fn bind(port: u16) -> Result<TcpListener, LocalError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|e| {
            LocalError::Failed(format!(
                "cannot listen on 127.0.0.1:{port}: {e} (set PORT to another port)"
            ))
        })
}

/// CodePipeline as AWS plays it (idempotent tokens, the worker's role as
/// the caller), in front of the emulator's.
async fn start_front(
    sdk: &SdkConfig,
    env: &Env,
) -> Result<
    (
        CodePipelineFront,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    LocalError,
> {
    let upstream = aws::endpoint_of(sdk, aws::CODEPIPELINE_SERVICE_ID)
        .ok_or_else(|| LocalError::Refused("no CodePipeline emulator endpoint".into()))?;
    let worker_role = env.string("WORKER_ROLE_ARN")?;
    let caller = shared::rules::pipeline_event::assumed_role_arn(&worker_role, "worker")
        .ok_or_else(|| LocalError::BadSetting {
            what: "WORKER_ROLE_ARN",
            reason: "not an IAM role ARN".into(),
        })?;
    CodePipelineFront::new(bind(0).await?, &upstream, &caller)
        .map_err(|e| LocalError::Failed(format!("cannot start the CodePipeline front: {e}")))
}

/// As Terraform does: the client-key secret's fingerprint beside the
/// table's items, for trigger-ops.
async fn write_fingerprint(
    sdk: &SdkConfig,
    env: &Env,
    resources: &resources::Resources,
) -> Result<(), LocalError> {
    Table::new(
        aws::dynamodb(sdk, &CallCounter::default()),
        &resources.table_name,
    )
    .secret()
    .put_fingerprint(&shared::rules::client_key::secret_fingerprint(
        &env.client_key_secret()?,
    ))
    .await
    .map_err(|e| LocalError::Failed(format!("cannot write the secret's fingerprint: {e}")))
}

/// The settings the functions' clients are built with, and the
/// CodePipeline they call: under chaos, through the fault proxies.
fn functions_sdk(
    sdk: &SdkConfig,
    options: &LocalOptions,
    front: &CodePipelineFront,
) -> (SdkConfig, String) {
    match &options.chaos {
        Some(chaos) => (
            aws::with_endpoints(
                sdk,
                aws::Endpoints {
                    dynamodb: chaos.dynamodb.clone(),
                    others: chaos.others.clone(),
                    services: Vec::new(),
                },
            ),
            chaos.codepipeline.clone(),
        ),
        None => (sdk.clone(), front.endpoint.clone()),
    }
}

/// The notifier's table behind a switch (`trigger-local` can take it
/// away); under chaos, behind the DynamoDB fault proxy as well.
async fn table_switch(
    sdk: &SdkConfig,
    options: &LocalOptions,
    stopping: &Stopping,
) -> Result<
    (
        outage::Outage,
        impl std::future::Future<Output = ()> + Send + 'static,
    ),
    LocalError,
> {
    let table_endpoint = match &options.chaos {
        Some(chaos) => Some(chaos.dynamodb.clone()),
        None => aws::endpoint_of(sdk, aws::DYNAMODB_SERVICE_ID),
    }
    .ok_or_else(|| LocalError::Refused("no DynamoDB emulator endpoint".into()))?;
    outage::start(bind(0).await?, stopping.clone(), table_endpoint)
        .map_err(|e| LocalError::Failed(format!("cannot start the table switch: {e}")))
}

/// Serves until the stack stops.
async fn until_stopped(serve: impl std::future::Future<Output = ()>, mut stopping: Stopping) {
    tokio::select! {
        _ = serve => {}
        _ = stopping.wait() => {}
    }
}

/// Provisions the stack on the emulator `sdk` points at and starts every
/// part. `env` supplies the functions' settings (`QUOTA_LIMIT`,
/// `MAX_ATTEMPTS`, `NOTIFY_STATES`, …); the resource names are the stack's own.
pub async fn start(
    sdk: &SdkConfig,
    env: &Env,
    options: &LocalOptions,
    console: Console,
) -> Result<LocalStack, LocalError> {
    refuse_remote_engines(sdk)?;
    let env = with_local_defaults(env.clone());
    let pipelines = env.pipelines()?;
    let max_attempts = env.number("MAX_ATTEMPTS", 1, MAX_ATTEMPTS_LIMIT)?;
    let names = codepipeline_names(&pipelines, &options.failing)?;
    let (listener, history_listener) = (bind(options.port).await?, bind(0).await?);
    let (front, serve_front) = start_front(sdk, &env).await?;
    let (stop, stopping) = Stopping::channel();
    let (notifier_table, serve_outage) = table_switch(sdk, options, &stopping).await?;
    let lambda_listener = bind(0).await?;
    let (base_url, history_url) = (url_of(&listener)?, url_of(&history_listener)?);
    let lambda_url = url_of(&lambda_listener)?;
    let notifier_function = format!("{}-notifier", options.prefix);
    let mut resources = provision_resources(sdk, &options.prefix, &names, max_attempts).await?;
    resources.catalog = pipelines
        .iter()
        .map(|p| (p.public.clone(), p.name.clone()))
        .collect();
    write_fingerprint(sdk, &env, &resources).await?;
    let env = resources.functions_env(env);
    let (functions_sdk, front_url) = functions_sdk(sdk, options, &front);
    let functions = Functions::build(
        &functions_sdk,
        &env,
        &resources,
        options.fault,
        &history_url,
        &front_url,
        &notifier_table.endpoint,
    )?;
    if let Some(path) = &options.outputs {
        let access = local_access(sdk, &env, &front.endpoint, &lambda_url).await?;
        resources.write_outputs(path, &base_url, &notifier_function, &access)?;
    }
    let (calls, metrics) = (functions.calls.clone(), functions.metric_lines.clone());
    let emails = Arc::new(std::sync::Mutex::new(Vec::new()));
    let parts = Parts {
        sdk,
        emails: emails.clone(),
        resources: &resources,
        names: &names,
        options,
        console: &console,
        max_attempts,
    };
    let notifier = functions.notifier.clone();
    let (api, history) = (listener, history_listener);
    let mut tasks = parts
        .spawn(functions, api, history, stopping.clone(), &front)
        .await?;
    tasks.spawn(serve_outage);
    tasks.spawn(lambda_api::serve(
        lambda_listener,
        stopping.clone(),
        notifier_function.clone(),
        notifier,
    ));
    tasks.spawn(until_stopped(serve_front, stopping));
    console.say(&banner(&base_url, &resources, options, &pipelines));
    Ok(LocalStack {
        base_url,
        resources,
        calls,
        metrics,
        front,
        lambda_url,
        notifier_function,
        notifier_table,
        emails,
        outside: pusher(sdk),
        stop,
        tasks,
    })
}

/// The client a push starts runs with: one attempt, a long timeout. A push
/// carries no `clientRequestToken` (CodePipeline starts it itself), so an
/// SDK retry after a slow answer would start a second, unknown execution.
fn pusher(sdk: &SdkConfig) -> aws_sdk_codepipeline::Client {
    let config = aws_sdk_codepipeline::config::Builder::from(sdk)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    aws_sdk_codepipeline::Client::from_conf(config)
}

/// `trigger-ops` as a person types it here: the binary beside this one,
/// relative to the working directory when it is below it.
fn trigger_ops_command() -> String {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("trigger-ops")));
    let cwd = std::env::current_dir().ok();
    match (beside, cwd) {
        (Some(path), Some(cwd)) => match path.strip_prefix(&cwd) {
            Ok(relative) => relative.display().to_string(),
            Err(_) => path.display().to_string(),
        },
        _ => "trigger-ops".to_string(),
    }
}

/// How a client reaches this stack: the engines `sdk` points at (CodePipeline
/// through the front, Lambda's `Invoke` at the stack's own), its region and
/// credentials, and the ingress's client-key secret.
async fn local_access(
    sdk: &SdkConfig,
    env: &Env,
    codepipeline: &str,
    lambda: &str,
) -> Result<ops::targets::LocalAccess, LocalError> {
    use aws_sdk_sqs::config::ProvideCredentials;
    let credentials = match sdk.credentials_provider() {
        Some(provider) => provider
            .provide_credentials()
            .await
            .map_err(|e| LocalError::Failed(format!("no credentials for the engines: {e}")))?,
        None => return Err(LocalError::Refused("no credentials for the engines".into())),
    };
    let endpoint = |service: &str| aws::endpoint_of(sdk, service).unwrap_or_default();
    Ok(ops::targets::LocalAccess {
        region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
        access_key_id: credentials.access_key_id().to_string(),
        secret_access_key: credentials.secret_access_key().to_string(),
        dynamodb_endpoint: endpoint(aws::DYNAMODB_SERVICE_ID),
        endpoint: endpoint("SQS"),
        services: [
            (
                aws::CODEPIPELINE_SERVICE_ID.to_string(),
                codepipeline.to_string(),
            ),
            (aws::LAMBDA_SERVICE_ID.to_string(), lambda.to_string()),
        ]
        .into(),
        client_key_secret: env.string("CLIENT_KEY_SECRET")?,
    })
}

/// The stack creates resources: it runs only against engines on loopback.
fn refuse_remote_engines(sdk: &SdkConfig) -> Result<(), LocalError> {
    for (service, setting) in [
        (aws::DYNAMODB_SERVICE_ID, "AWS_ENDPOINT_URL_DYNAMODB"),
        ("SQS", "AWS_ENDPOINT_URL"),
    ] {
        let endpoint = aws::endpoint_of(sdk, service).unwrap_or_default();
        if !is_loopback_endpoint(&endpoint) {
            return Err(LocalError::Refused(format!(
                "trigger-local creates resources, so it runs only against engines on this machine: \
                 set {setting} to a loopback address such as http://127.0.0.1:5000 ({service} calls go to {endpoint:?}); \
                 scripts/dev does this for you"
            )));
        }
    }
    Ok(())
}

/// The demo pipelines, a poll interval for runs of seconds, and a fresh
/// client-key secret, unless the environment says otherwise.
fn with_local_defaults(mut env: Env) -> Env {
    if env.get("PIPELINES").is_none() {
        env = env.with("PIPELINES", DEFAULT_PIPELINES);
        if env.get("PIPELINE_SETTINGS").is_none() {
            env = env.with("PIPELINE_SETTINGS", DEFAULT_PIPELINE_SETTINGS);
        }
    }
    if env.get("RUN_POLL_INTERVAL").is_none() {
        // Runs here take seconds: a waiting run looks again every second.
        env = env.with("RUN_POLL_INTERVAL", "1s");
    }
    if env.get("WORKER_ROLE_ARN").is_none() {
        env = env.with("WORKER_ROLE_ARN", LOCAL_WORKER_ROLE_ARN);
    }
    if env.get("CLIENT_KEY_SECRET").is_none() {
        let secret = format!("local-{}{}", ulid::Ulid::new(), ulid::Ulid::new());
        env = env.with("CLIENT_KEY_SECRET", secret);
    }
    env
}

/// The CodePipeline names of the allowlist, once each; every `failing` one
/// must be among them.
fn codepipeline_names(
    pipelines: &Pipelines,
    failing: &[String],
) -> Result<Vec<String>, LocalError> {
    let mut names: Vec<String> = Vec::new();
    for pipeline in pipelines.iter() {
        if !names.contains(&pipeline.name) {
            names.push(pipeline.name.clone());
        }
    }
    if let Some(unknown) = failing.iter().find(|f| !names.contains(f)) {
        return Err(LocalError::BadSetting {
            what: "--failing",
            reason: format!(
                "{unknown:?} is not a pipeline in PIPELINES ({})",
                names.join(", ")
            ),
        });
    }
    Ok(names)
}

fn url_of(listener: &TcpListener) -> Result<String, LocalError> {
    let address = listener
        .local_addr()
        .map_err(|e| LocalError::Failed(e.to_string()))?;
    Ok(format!("http://{address}"))
}

/// What Terraform creates, on the engines.
async fn provision_resources(
    sdk: &SdkConfig,
    prefix: &str,
    names: &[String],
    max_attempts: u64,
) -> Result<resources::Resources, LocalError> {
    let calls = CallCounter::default();
    resources::provision(
        &resources::Clients {
            dynamodb: &aws::dynamodb(sdk, &calls),
            sqs: &aws::sqs(sdk, &calls),
            sns: &aws::sns(sdk, &calls),
            iam: &testkit::iam(sdk, &calls),
            codepipeline: &aws::codepipeline(sdk, &calls),
            events: &testkit::eventbridge(sdk, &calls),
        },
        prefix,
        names,
        max_attempts,
    )
    .await
}

/// The three functions, each with its own clients and call counter, as in
/// Lambda; their metric lines collected.
struct Functions {
    ingress: ingress::Ingress,
    /// The API's CORS origins: the edge's answers carry them too.
    cors: shared::rules::cors::CorsPolicy,
    worker: Arc<worker::Worker>,
    notifier: Arc<notifier::Notifier>,
    calls: FunctionCalls,
    metric_lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Functions {
    fn build(
        sdk: &SdkConfig,
        env: &Env,
        resources: &resources::Resources,
        fault: Option<Fault>,
        history_url: &str,
        front_url: &str,
        notifier_table_url: &str,
    ) -> Result<Self, LocalError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let calls = FunctionCalls::default();
        let (metrics_sink, metric_lines) = MetricsSink::collector();
        let ingress_sqs = match fault {
            Some(Fault::QueueUnreachable) => {
                let endpoints = aws::Endpoints {
                    dynamodb: aws::endpoint_of(sdk, aws::DYNAMODB_SERVICE_ID).unwrap_or_default(),
                    others: unreachable_endpoint()?,
                    services: Vec::new(),
                };
                aws::sqs(&aws::with_endpoints(sdk, endpoints), &calls.ingress)
            }
            _ => aws::sqs(sdk, &calls.ingress),
        };
        let ingress_config = IngressConfig::from_env(env)?;
        let cors = ingress_config.cors.clone();
        let ingress = ingress::Ingress::new(
            ingress_config,
            Table::new(
                aws::dynamodb(sdk, &calls.ingress),
                resources.table_name.clone(),
            ),
            WorkQueue::new(ingress_sqs, resources.queue_url.clone()),
            clock.clone(),
            calls.ingress.clone(),
        )
        .with_metrics(metrics_sink.clone());
        let worker_pipelines = match fault {
            Some(Fault::CodepipelineUnreachable) => {
                aws::codepipeline_at(sdk, &calls.worker, Some(&unreachable_endpoint()?))
            }
            _ => aws::codepipeline_at(sdk, &calls.worker, Some(front_url)),
        };
        let worker = worker::Worker::new(
            WorkerConfig::from_env(env)?,
            aws::dynamodb(sdk, &calls.worker),
            aws::sqs(sdk, &calls.worker),
            worker_pipelines,
            clock.clone(),
        )
        .with_metrics(metrics_sink.clone());
        // The notifier's table through a switch tests can turn off.
        let notifier_sdk = aws::with_endpoints(
            sdk,
            aws::Endpoints {
                dynamodb: notifier_table_url.to_string(),
                others: aws::endpoint_of(sdk, "SQS").unwrap_or_default(),
                services: aws::endpoint_of(sdk, aws::CODEPIPELINE_SERVICE_ID)
                    .map(|url| vec![(aws::CODEPIPELINE_SERVICE_ID.to_string(), url)])
                    .unwrap_or_default(),
            },
        );
        let notifier = notifier::Notifier::new(
            NotifierConfig::from_env(env)?,
            aws::dynamodb(&notifier_sdk, &calls.notifier),
            aws::sns(sdk, &calls.notifier),
            aws::codepipeline_at(sdk, &calls.notifier, Some(history_url)),
            aws::sqs(sdk, &calls.notifier),
            clock,
        )
        .with_metrics(metrics_sink);
        Ok(Self {
            ingress,
            cors,
            worker: Arc::new(worker),
            notifier: Arc::new(notifier),
            calls,
            metric_lines,
        })
    }
}

/// What the parts AWS plays around the functions share.
struct Parts<'a> {
    sdk: &'a SdkConfig,
    emails: Arc<std::sync::Mutex<Vec<String>>>,
    resources: &'a resources::Resources,
    names: &'a [String],
    options: &'a LocalOptions,
    console: &'a Console,
    max_attempts: u64,
}

/// The clients and signals every part is started with.
struct Shared {
    calls: CallCounter,
    queues: Arc<Deliveries>,
    table: Table,
    clock: Arc<dyn Clock>,
    stopping: Stopping,
}

impl Parts<'_> {
    /// Starts API Gateway, the event source mapping, CodePipeline (and its
    /// history), the rule's target and the inbox, each on its own task.
    async fn spawn(
        &self,
        functions: Functions,
        listener: TcpListener,
        history_listener: TcpListener,
        stopping: Stopping,
        front: &CodePipelineFront,
    ) -> Result<JoinSet<()>, LocalError> {
        let calls = CallCounter::default();
        let shared = Shared {
            queues: Arc::new(Deliveries::new(aws::sqs(self.sdk, &calls))),
            table: Table::new(
                aws::dynamodb(self.sdk, &calls),
                self.resources.table_name.clone(),
            ),
            clock: Arc::new(SystemClock),
            stopping,
            calls,
        };
        let mut tasks = JoinSet::new();
        tasks.spawn(
            gateway::Gateway {
                ingress: Arc::new(functions.ingress),
                stage: self.options.stage.clone(),
                console: self.console.clone(),
                clock: shared.clock.clone(),
                edge: Arc::new(edge::Edge::new(
                    self.options.edge.clone(),
                    functions.cors.clone(),
                )),
            }
            .serve(listener, shared.stopping.clone()),
        );
        if self.options.chaos.is_none() {
            tasks.spawn(
                settler::Settler {
                    worker: functions.worker.clone(),
                    queue_url: self.resources.queue_url.clone(),
                    console: self.console.clone(),
                }
                .run(shared.stopping.clone()),
            );
        }
        tasks.spawn(self.event_source(functions.worker, &shared).await?);
        self.codepipeline(&mut tasks, history_listener, &shared, front);
        tasks.spawn(
            rule_target::RuleTarget {
                chaos: self.options.chaos.clone(),
                notifier: functions.notifier,
                queues: shared.queues.clone(),
                queue_url: self.resources.events_queue_url.clone(),
                dlq_url: self.resources.events_dlq_url.clone(),
                table: shared.table.clone(),
                console: self.console.clone(),
                clock: shared.clock.clone(),
            }
            .run(shared.stopping.clone()),
        );
        tasks.spawn(
            inbox::Inbox {
                queues: shared.queues.clone(),
                queue_url: self.resources.inbox_url.clone(),
                console: self.console.clone(),
                kept: self.emails.clone(),
            }
            .run(shared.stopping),
        );
        Ok(tasks)
    }

    /// The event source mapping: the work queue's batches to the worker.
    async fn event_source(
        &self,
        worker: Arc<worker::Worker>,
        shared: &Shared,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static, LocalError> {
        let sqs = aws::sqs(self.sdk, &shared.calls);
        let queue_arn = testkit::provision::queue_arn(&sqs, &self.resources.queue_url)
            .await
            .map_err(|e| LocalError::Failed(e.to_string()))?;
        let region = self
            .sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        Ok(event_source::EventSource {
            chaos: self.options.chaos.clone(),
            worker,
            queues: shared.queues.clone(),
            queue_url: self.resources.queue_url.clone(),
            queue_arn,
            region,
            table: shared.table.clone(),
            max_attempts: self.max_attempts,
            console: self.console.clone(),
            clock: shared.clock.clone(),
        }
        .run(shared.stopping.clone()))
    }

    /// CodePipeline's part: the state changes of every execution, and the
    /// history the notifier reads.
    fn codepipeline(
        &self,
        tasks: &mut JoinSet<()>,
        history: TcpListener,
        shared: &Shared,
        front: &CodePipelineFront,
    ) {
        let book = pipeline_runs::RunBook::default();
        tasks.spawn(
            Arc::new(pipeline_runs::PipelineRuns {
                codepipeline: aws::codepipeline(self.sdk, &shared.calls),
                events: testkit::eventbridge(self.sdk, &shared.calls),
                pipelines: self.names.to_vec(),
                failing: self.options.failing.iter().cloned().collect::<HashSet<_>>(),
                run_time: self.options.run_time,
                book: book.clone(),
                front: front.clone(),
                table: shared.table.clone(),
                console: self.console.clone(),
                clock: shared.clock.clone(),
            })
            .run(shared.stopping.clone()),
        );
        tasks.spawn(pipeline_runs::serve_history(
            history,
            shared.stopping.clone(),
            book,
        ));
    }
}

/// What is running and how to use it.
fn banner(
    base_url: &str,
    resources: &resources::Resources,
    options: &LocalOptions,
    pipelines: &Pipelines,
) -> String {
    let allowlist: Vec<String> = pipelines
        .iter()
        .map(|p| {
            let fails = if options.failing.contains(&p.name) {
                " (its runs fail)"
            } else {
                ""
            };
            format!("{} -> {}{fails}", p.public, p.name)
        })
        .collect();
    let api = match &options.stage {
        Some(stage) => format!("{base_url}/{stage}"),
        None => base_url.to_string(),
    };
    let mut text = format!(
        "pipeline-trigger local stack\n\
         \n  page          {api}/  (open it in a browser)\n\
         \x20 HTTP API      {api}  (POST /trigger, GET /triggers/{{id}}, GET /pipelines)\n\
         \x20 pipelines     {}\n\
         \x20 table         {}\n\
         \x20 work queue    {}\n\
         \x20 DLQ           {}\n\
         \x20 on-call topic {}\n",
        allowlist.join(", "),
        resources.table_name,
        resources.queue_url,
        resources.dlq_url,
        resources.topic_arn,
    );
    if let Some(fault) = options.fault {
        text.push_str(&format!("  fault         {fault:?}\n"));
    }
    if let Some(path) = &options.outputs {
        let ops = trigger_ops_command();
        let targets = if path == std::path::Path::new(ops::targets::LOCAL_OUTPUTS) {
            "--local".to_string()
        } else {
            format!("--terraform-outputs {}", path.display())
        };
        text.push_str(&format!(
            "\n  {ops} {targets} dlq stats\n  {ops} {targets} triggers list --since 10m\n  {ops} {targets} clients show 127.0.0.1\n"
        ));
    }
    text.push_str(&format!(
        "\nTry:\n  curl -i -X POST {api}/trigger\n  curl -i -X POST {api}/trigger -d '{{\"pipeline\":\"{}\"}}'\n\
         \nOne line per hop of each trigger, and each e-mail on-call gets, follow. Ctrl-C stops.\n",
        pipelines.iter().last().map(|p| p.public.as_str()).unwrap_or("app")
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_are_emulators() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "http://[::1]:5000",
            "http://127.0.0.2",
        ] {
            assert!(is_loopback_endpoint(ok), "{ok}");
        }
        for refused in [
            "",
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://localhost.evil.example:5000",
            "http://127.0.0.1.nip.io",
            "127.0.0.1:5000",
        ] {
            assert!(!is_loopback_endpoint(refused), "{refused}");
        }
    }
}
