//! `lambda-bench`: each Lambda binary run as Lambda runs it — started with
//! `AWS_LAMBDA_RUNTIME_API` pointing at [`runtime_api`], its AWS calls going
//! through [`aws_proxy`] to the emulator — and measured: init (process start
//! to its first `/runtime/invocation/next`), peak RSS after the invocations,
//! warm p50/p99 per invocation, AWS calls per invocation; for the worker also
//! a batch of 10 against a batch of 1 with CodePipeline latency added.
//! `bare-lambda` (a `lambda_runtime` function that does nothing, built in
//! the same profile) is measured beside them in the same run, and each
//! function's init and memory are also given as a ratio to it; init is also
//! measured over interleaved cold starts (bare, ingress, worker, notifier,
//! again and again), so a busy machine slows them all alike.
//! Each run is a fresh process; the report gives medians over runs and their
//! min–max. `scripts/bench` builds the packages and runs this.

mod aws_proxy;
mod runtime_api;

use aws_proxy::{since, AwsProxy};
use clap::Parser;
use runtime_api::{Outcome, RuntimeApi};
use serde_json::{json, Value};
use shared::rules::pipeline_event::state_change_event;
use shared::rules::status::PipelineState;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testkit::events::sqs_event;
use testkit::Stack;

#[derive(Parser)]
#[command(about = "Measure the Lambda binaries as Lambda runs them, against the emulator")]
struct Args {
    /// Directory holding `ingress`, `worker` and `notifier` executables (or `<fn>/bootstrap`).
    #[arg(long, default_value = "target/release")]
    binaries: PathBuf,
    /// Fresh processes per function.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Invocations per process.
    #[arg(long, default_value_t = 200)]
    invocations: usize,
    /// Latency of `StartPipelineExecution` (answered by the proxy) in the batch comparison.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    codepipeline_latency: Duration,
    /// Batches of 1 and of 10 per run for the batch comparison.
    #[arg(long, default_value_t = 10)]
    batches: usize,
    /// Interleaved cold starts per function (bare included) for the init ratios.
    #[arg(long, default_value_t = 11)]
    cold_starts: usize,
    /// An environment variable every function gets besides its own
    /// (KEY=VALUE; may repeat): to measure a setting's effect.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    extra_env: Vec<(String, String)>,
    /// Only the interleaved cold starts (no invocations).
    #[arg(long)]
    cold_only: bool,
    /// Give the ingress three cloud-sized network groups (`group:aws`,
    /// `group:gcp`, `group:oracle`, about 12,900 networks; the bench's
    /// clients, 10.0.0.0/8, in `aws`): the init and the first invocation
    /// (which loads them) beside the others.
    #[arg(long)]
    cloud_groups: bool,
    /// Pause before each process starts, for the engines to settle
    /// (DynamoDB Local's JVM compiles and collects after a burst of calls;
    /// on 2 cores that would be counted as the next process's init). Cold
    /// starts alone make no calls: `--cold-only --settle 100ms` runs many
    /// rounds quickly.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    settle: Duration,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

/// One process's figures.
#[derive(Debug, Default, Clone)]
struct Run {
    init_ms: f64,
    /// The first invocation's latency (the ingress loads its network groups then).
    first_ms: f64,
    rss_kb: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Typical AWS calls per invocation, by kind of invocation.
    calls: BTreeMap<String, String>,
    batch1_ms: Option<f64>,
    batch10_ms: Option<f64>,
    batch_failures: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    values
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "DynamoDB.PutItem 1 + SQS.SendMessage 1"
fn calls_text(calls: &BTreeMap<String, u64>) -> String {
    if calls.is_empty() {
        return "none".into();
    }
    calls
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The most frequent call set of each kind of invocation.
fn typical(samples: &[(String, String)]) -> BTreeMap<String, String> {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for sample in samples {
        *counts.entry(sample.clone()).or_insert(0) += 1;
    }
    let mut best: BTreeMap<String, (String, usize, usize)> = BTreeMap::new();
    for ((kind, calls), n) in counts {
        let entry = best.entry(kind).or_insert((calls.clone(), 0, 0));
        entry.2 += n;
        if n > entry.1 {
            (entry.0, entry.1) = (calls, n);
        }
    }
    best.into_iter()
        .map(|(kind, (calls, n, total))| (kind, format!("{calls} ({n} of {total})")))
        .collect()
}

/// The floor every function is compared with.
const BARE: &str = "bare-lambda";

/// What is measured, the floor first.
const FUNCTIONS: [&str; 4] = [BARE, "ingress", "worker", "notifier"];

/// A function's process under the Runtime API.
struct Process {
    child: tokio::process::Child,
    api: RuntimeApi,
    init: Duration,
}

impl Process {
    async fn start(binary: &PathBuf, name: &str, env: &[(&str, String)], aws: &str) -> Process {
        let api = RuntimeApi::start().await.expect("a runtime API");
        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_REGION", testkit::REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", aws)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(if std::env::var_os("BENCH_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let first_poll = loop {
            if let Some(at) = api.first_poll() {
                break at;
            }
            if let Some(error) = api.init_error() {
                panic!("{name} failed its init: {error}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} never polled for an event"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        Process {
            child,
            api,
            init: first_poll.duration_since(started),
        }
    }

    async fn invoke(&self, event: Value) -> (Value, Duration) {
        let started = Instant::now();
        match self.api.invoke(event).await {
            Some(Outcome::Response(response)) => (response, started.elapsed()),
            Some(Outcome::Error(error)) => panic!("the invocation failed: {error}"),
            None => panic!("the function went away"),
        }
    }

    /// Peak resident memory so far (`VmHWM`), then the process ends.
    async fn finish(mut self) -> u64 {
        let pid = self.child.id().unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let _ = self.child.kill().await;
        rss
    }
}

fn binary(dir: &std::path::Path, name: &str) -> PathBuf {
    let nested = dir.join(name).join("bootstrap");
    if nested.is_file() {
        nested
    } else {
        dir.join(name)
    }
}

/// Fresh resources per run: the emulator slows down as items and
/// executions pile up, which would bias later runs.
struct Setup {
    stack: Stack,
    pipeline: String,
    /// Ten CodePipelines, `p0` to `p9`: a batch of ten is ten runs that
    /// start together (each CodePipeline runs one at a time).
    batch_pipelines: Vec<String>,
    topic: String,
    /// Where the ingress enqueues: kept apart from the worker's queue.
    ingress_queue: String,
}

impl Setup {
    async fn new(cloud_groups: bool) -> Self {
        let stack = Stack::new().await;
        if cloud_groups {
            let table =
                shared::aws::table::Table::new(stack.dynamodb.clone(), stack.table_name.clone());
            let clients = [shared::rules::network_groups::Network::V4(0x0A00_0000, 8)];
            for (name, ranges) in testkit::clouds::cloud_sized_groups(&clients) {
                let parsed = shared::rules::network_groups::Parsed {
                    format: shared::rules::network_groups::Format::CidrList,
                    networks: ranges.v4.len() + ranges.v6.len(),
                    ranges,
                };
                let now = shared::clock::Clock::now_ms(&shared::clock::SystemClock);
                table
                    .network_groups()
                    .import(&name, &parsed, "lambda-bench", now)
                    .await
                    .expect("import a group");
            }
        }
        let pipeline = stack.pipeline("bench").await;
        let mut batch_pipelines = Vec::new();
        for i in 0..10 {
            batch_pipelines.push(stack.pipeline(&format!("bench-p{i}")).await);
        }
        let (topic, _inbox) = stack.topic_with_inbox().await;
        let ingress_queue = stack
            .sqs
            .create_queue()
            .queue_name(testkit::unique("bench-ingress"))
            .send()
            .await
            .expect("a queue for the ingress")
            .queue_url
            .expect("a queue URL");
        Self {
            stack,
            pipeline,
            batch_pipelines,
            topic,
            ingress_queue,
        }
    }
}

struct Bench {
    args: Args,
    proxy: AwsProxy,
    setup: Setup,
}

impl Bench {
    fn common_env(&self) -> Vec<(&str, String)> {
        vec![
            ("TABLE_NAME", self.setup.stack.table_name.clone()),
            ("QUEUE_URL", self.setup.ingress_queue.clone()),
            ("DLQ_URL", self.setup.stack.queues.dlq_url.clone()),
            (
                "PIPELINES",
                std::iter::once(format!("app={}", self.setup.pipeline))
                    .chain(
                        self.setup
                            .batch_pipelines
                            .iter()
                            .enumerate()
                            .map(|(i, p)| format!("p{i}={p}")),
                    )
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            // One start per message: what the batch comparison measures
            // (coalescing would make a batch of ten one start; `flood`
            // measures coalescing). Each run is freed after its start, as
            // the notifier frees it when CodePipeline says it ended.
            (
                "PIPELINE_SETTINGS",
                r#"{"app": {"coalesce": false}}"#.into(),
            ),
            ("CLIENT_KEY_SECRET", "bench-client-key-secret".into()),
            ("TOPIC_ARN", self.setup.topic.clone()),
        ]
    }

    async fn start(&self, name: &str) -> Process {
        // The engines settle first (`--settle`).
        tokio::time::sleep(self.args.settle).await;
        let path = binary(&self.args.binaries, name);
        let mut env = self.common_env();
        if self.args.cloud_groups {
            env.push((
                "NETWORK_QUOTA_LIMITS",
                "ipv6/56=6,ipv6/48=12,group:aws=100,group:gcp=100,group:oracle=100".into(),
            ));
        }
        for (key, value) in &self.args.extra_env {
            env.push((key.as_str(), value.clone()));
        }
        Process::start(&path, name, &env, &self.proxy.endpoint()).await
    }

    /// Invokes `event` and records latency and the calls it made under `kind`.
    async fn measure(
        &self,
        process: &Process,
        event: Value,
        latencies: &mut Vec<f64>,
        calls: &mut Vec<(String, String)>,
        kind: impl Fn(&Value) -> String,
    ) -> Value {
        let before = self.proxy.calls();
        let (response, took) = process.invoke(event).await;
        latencies.push(ms(took));
        calls.push((
            kind(&response),
            calls_text(&since(&before, &self.proxy.calls())),
        ));
        response
    }

    /// The floor: `bare-lambda` answering trivial events.
    async fn bare(&self) -> Run {
        let process = self.start(BARE).await;
        let (mut latencies, mut calls) = (Vec::new(), Vec::new());
        for i in 0..self.args.invocations {
            self.measure(
                &process,
                json!({ "n": i }),
                &mut latencies,
                &mut calls,
                |_| "bare".to_string(),
            )
            .await;
        }
        finish(process, latencies, calls).await
    }

    /// Init of each function over interleaved cold starts: each process is
    /// started, polls once and is killed.
    async fn cold_starts(&self) -> BTreeMap<&'static str, Vec<f64>> {
        let mut inits: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
        for round in 0..self.args.cold_starts {
            eprintln!(
                "cold starts: round {} of {}",
                round + 1,
                self.args.cold_starts
            );
            for name in FUNCTIONS {
                let process = self.start(name).await;
                inits.entry(name).or_default().push(ms(process.init));
                process.finish().await;
            }
        }
        inits
    }

    async fn ingress(&self, run: usize) -> Run {
        let process = self.start("ingress").await;
        let (mut latencies, mut calls) = (Vec::new(), Vec::new());
        for i in 0..self.args.invocations {
            // Four requests per client: three accepted, the fourth refused.
            let client = i / 4;
            let ip = format!("10.{}.{}.{}", run % 250, (client >> 8) & 255, client & 255);
            let event = testkit::rest_event("POST", "/trigger", None, &ip);
            self.measure(&process, event, &mut latencies, &mut calls, |r| {
                format!("ingress {}", r["statusCode"])
            })
            .await;
        }
        finish(process, latencies, calls).await
    }

    /// Receives exactly `n` messages of the work queue as one SQS event.
    async fn batch_of(&self, n: usize) -> (Value, Vec<String>) {
        let arn = self
            .setup
            .stack
            .queue_arn(&self.setup.stack.queues.queue_url)
            .await;
        let mut messages = Vec::new();
        while messages.len() < n {
            let received = self
                .setup
                .stack
                .sqs
                .receive_message()
                .queue_url(&self.setup.stack.queues.queue_url)
                .max_number_of_messages((n - messages.len()).min(10) as i32)
                .visibility_timeout(60)
                .message_attribute_names("All")
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            messages.extend(received.messages().iter().cloned());
        }
        let receipts = messages
            .iter()
            .filter_map(|m| m.receipt_handle().map(str::to_string))
            .collect();
        (sqs_event(&messages, &arn, testkit::REGION), receipts)
    }

    /// What the event source mapping does after a successful batch.
    async fn delete(&self, receipts: Vec<String>) {
        for receipt in receipts {
            let _ = self
                .setup
                .stack
                .sqs
                .delete_message()
                .queue_url(&self.setup.stack.queues.queue_url)
                .receipt_handle(receipt)
                .send()
                .await;
        }
    }

    /// The run `run_id` ended, as the notifier records it when
    /// CodePipeline says so: its lane is free for the next start. Not
    /// counted: the notifier's calls are measured with the notifier.
    async fn ended(&self, target: &str, run_id: &str) {
        let table = shared::aws::table::Table::new(
            self.setup.stack.dynamodb.clone(),
            self.setup.stack.table_name.clone(),
        );
        let now = shared::clock::Clock::now_ms(&shared::clock::SystemClock);
        let _ = table.runs().free_lane(target, run_id, now, None).await;
    }

    /// Returns the run and the trigger ids it started.
    async fn worker(&self) -> (Run, Vec<String>) {
        let process = self.start("worker").await;
        let pipeline = &self.setup.pipeline;
        let mut triggers = Vec::new();
        // First, while the table is small (the emulator slows as it grows): a
        // batch of 10 against a batch of 1, with starts answered by the
        // proxy after a fixed latency, as CodePipeline would.
        self.proxy
            .stand_in_for_starts(Some(self.args.codepipeline_latency));
        let mut sizes: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut failed = 0;
        for _ in 0..self.args.batches {
            for n in [1, 10] {
                let mut batch = Vec::new();
                for i in 0..n {
                    let target = &self.setup.batch_pipelines[i];
                    let id = self
                        .setup
                        .stack
                        .enqueue_trigger_as(&format!("p{i}"), target, json!({}))
                        .await;
                    batch.push((target.clone(), id));
                }
                let (event, receipts) = self.batch_of(n).await;
                let (response, took) = process.invoke(event).await;
                // A failure (a transient conflict in the emulator) is counted, not retried.
                failed += response["batchItemFailures"].as_array().map_or(0, Vec::len);
                sizes.entry(n).or_default().push(ms(took));
                self.delete(receipts).await;
                for (target, id) in batch {
                    self.ended(&target, &id).await;
                    triggers.push(id);
                }
            }
        }
        self.proxy.stand_in_for_starts(None);
        let (mut latencies, mut calls) = (Vec::new(), Vec::new());
        for _ in 0..self.args.invocations {
            let id = self.setup.stack.enqueue_trigger(pipeline).await;
            let (event, receipts) = self.batch_of(1).await;
            self.measure(&process, event, &mut latencies, &mut calls, |r| {
                let failures = r["batchItemFailures"].as_array().map_or(0, Vec::len);
                format!("worker, batch of 1, {failures} failed")
            })
            .await;
            self.delete(receipts).await;
            self.ended(pipeline, &id).await;
            triggers.push(id);
        }
        let mut run = finish(process, latencies, calls).await;
        let median = |n: usize| {
            let values = sorted(sizes.get(&n).cloned().unwrap_or_default());
            percentile(&values, 50.0)
        };
        run.batch1_ms = Some(median(1));
        run.batch10_ms = Some(median(10));
        run.batch_failures = failed;
        (run, triggers)
    }

    async fn notifier(&self, triggers: &[String]) -> Run {
        let table = shared::aws::table::Table::new(
            self.setup.stack.dynamodb.clone(),
            &self.setup.stack.table_name,
        );
        let mut executions = Vec::new();
        // Each trigger is a run of its own (`coalesce` off): its run holds
        // the execution.
        for trigger in triggers.iter().rev().take(self.args.invocations) {
            let run = table
                .runs()
                .get(trigger)
                .await
                .expect("read a run")
                .expect("the trigger's run exists");
            executions.push(run.execution_id.expect("the worker started it"));
        }
        let process = self.start("notifier").await;
        let (mut latencies, mut calls) = (Vec::new(), Vec::new());
        for execution in &executions {
            let event = state_change_event(
                &ulid::Ulid::new().to_string(),
                testkit::REGION,
                "123456789012",
                &self.setup.pipeline,
                execution,
                PipelineState::Succeeded,
                &shared::rules::time_format::rfc3339(shared::clock::Clock::now_ms(
                    &shared::clock::SystemClock,
                )),
            );
            self.measure(&process, event, &mut latencies, &mut calls, |r| {
                format!("notifier, {}", r["outcome"].as_str().unwrap_or("?"))
            })
            .await;
        }
        finish(process, latencies, calls).await
    }
}

async fn finish(process: Process, latencies: Vec<f64>, calls: Vec<(String, String)>) -> Run {
    let init_ms = ms(process.init);
    let rss_kb = process.finish().await;
    let first_ms = latencies.first().copied().unwrap_or(f64::NAN);
    let latencies = sorted(latencies);
    Run {
        init_ms,
        first_ms,
        rss_kb,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        calls: typical(&calls),
        ..Run::default()
    }
}

/// "median (min–max)" of a figure over runs.
fn spread(values: Vec<f64>, digits: usize) -> String {
    let values = sorted(values);
    format!(
        "{:.digits$} ({:.digits$}–{:.digits$})",
        percentile(&values, 50.0),
        values.first().copied().unwrap_or(f64::NAN),
        values.last().copied().unwrap_or(f64::NAN),
    )
}

fn median(values: &[f64]) -> f64 {
    percentile(&sorted(values.to_vec()), 50.0)
}

/// Each start's init over the floor's start of the same round.
fn paired_ratios(inits: &[f64], floor: &[f64]) -> Vec<f64> {
    inits
        .iter()
        .zip(floor)
        .map(|(init, floor)| init / floor)
        .collect()
}

/// "1.23×": `value` over the floor's.
fn ratio(value: f64, floor: f64) -> String {
    format!("{:.2}×", value / floor)
}

/// The report: cold starts against the bare function, fresh processes,
/// the AWS calls per invocation, and the worker's batches; as text and
/// as JSON.
fn report(
    results: &BTreeMap<&str, Vec<Run>>,
    cold: &BTreeMap<&str, Vec<f64>>,
    args: &Args,
) -> (String, Value) {
    let mut out = json!({});
    let mut text = cold_starts(cold, args, &mut out);
    text.push_str(&processes(results, args, &mut out));
    text.push_str("\nAWS calls per invocation (as the proxy saw them; most frequent set):\n");
    for runs in results.values() {
        if let Some(run) = runs.first() {
            for (kind, calls) in &run.calls {
                text.push_str(&format!("  {kind}: {calls}\n"));
            }
        }
    }
    if let Some(worker) = results.get("worker") {
        text.push_str(&worker_batches(worker, args, &mut out));
    }
    (text, out)
}

/// Interleaved cold starts of each function against the bare one.
fn cold_starts(cold: &BTreeMap<&str, Vec<f64>>, args: &Args, out: &mut Value) -> String {
    let bare_inits = cold.get(BARE).cloned().unwrap_or_default();
    let bare_cold = median(&bare_inits);
    let mut text = format!(
        "init over {} interleaved cold starts per function; median (min–max), as a ratio to {BARE}'s \
         median, and the median of the ratios round by round (each start over {BARE}'s start of the \
         same round: a slow spell of the machine moves both)\n\n\
         | function | init ms | ratio | paired ratio (min–max) |\n|---|---|---|---|\n",
        args.cold_starts
    );
    for name in FUNCTIONS {
        let inits = cold.get(name).cloned().unwrap_or_default();
        let paired = paired_ratios(&inits, &bare_inits);
        text.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            spread(inits.clone(), 2),
            ratio(median(&inits), bare_cold),
            spread(paired.clone(), 2),
        ));
        out["cold_starts"][name] = json!(inits);
        out["cold_start_ratios"][name] = json!(paired);
    }
    text
}

/// Fresh processes per function: init, memory, and latency.
fn processes(results: &BTreeMap<&str, Vec<Run>>, args: &Args, out: &mut Value) -> String {
    let floor = |f: fn(&Run) -> f64| {
        median(
            &results
                .get(BARE)
                .map(|runs| runs.iter().map(f).collect::<Vec<f64>>())
                .unwrap_or_default(),
        )
    };
    let (bare_init, bare_rss) = (floor(|r| r.init_ms), floor(|r| r.rss_kb as f64));
    let mut text = format!(
        "\n{} fresh processes per function, {} invocations each; median (min–max) over processes\n\n\
         | function | init ms | init ratio | peak RSS MB | RSS ratio | first ms | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|---|\n",
        args.runs, args.invocations
    );
    for (name, runs) in results {
        let field = |f: fn(&Run) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
        text.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |\n",
            spread(field(|r| r.init_ms), 2),
            ratio(median(&field(|r| r.init_ms)), bare_init),
            spread(field(|r| r.rss_kb as f64 / 1024.0), 1),
            ratio(median(&field(|r| r.rss_kb as f64)), bare_rss),
            spread(field(|r| r.first_ms), 2),
            spread(field(|r| r.p50_ms), 2),
            spread(field(|r| r.p99_ms), 2),
        ));
        out[*name] = json!({
            "init_ms": field(|r| r.init_ms),
            "first_ms": field(|r| r.first_ms),
            "peak_rss_kb": runs.iter().map(|r| r.rss_kb).collect::<Vec<_>>(),
            "p50_ms": field(|r| r.p50_ms),
            "p99_ms": field(|r| r.p99_ms),
            "calls": runs.first().map(|r| r.calls.clone()).unwrap_or_default(),
        });
    }
    text
}

/// The worker's batches of 1 and 10 against a slow CodePipeline.
fn worker_batches(worker: &[Run], args: &Args, out: &mut Value) -> String {
    let mut text = String::new();
    let b1: Vec<f64> = worker.iter().filter_map(|r| r.batch1_ms).collect();
    let b10: Vec<f64> = worker.iter().filter_map(|r| r.batch10_ms).collect();
    text.push_str(&format!(
        "\nworker, StartPipelineExecution answered in {}: batch of 1 {} ms, batch of 10 {} ms\n",
        humantime::format_duration(args.codepipeline_latency),
        spread(b1.clone(), 1),
        spread(b10.clone(), 1)
    ));
    let failures: usize = worker.iter().map(|r| r.batch_failures).sum();
    text.push_str(&format!(
        "  (messages reported failed in those batches: {failures})\n"
    ));
    out["worker"]["batch_of_1_ms"] = json!(b1);
    out["worker"]["batch_of_10_ms"] = json!(b10);
    text
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    for name in FUNCTIONS {
        let path = binary(&args.binaries, name);
        assert!(path.is_file(), "no {name} binary at {}", path.display());
    }
    let proxy = AwsProxy::start(testkit::engines()).await.expect("a proxy");
    let cloud_groups = args.cloud_groups;
    let mut bench = Bench {
        args,
        proxy,
        setup: Setup::new(cloud_groups).await,
    };
    let mut results: BTreeMap<&str, Vec<Run>> = BTreeMap::new();
    let runs = if bench.args.cold_only {
        0
    } else {
        bench.args.runs
    };
    for run in 0..runs {
        eprintln!("run {} of {}", run + 1, bench.args.runs);
        if run > 0 {
            bench.setup = Setup::new(bench.args.cloud_groups).await;
        }
        results.entry(BARE).or_default().push(bench.bare().await);
        let (worker, triggers) = bench.worker().await;
        results.entry("worker").or_default().push(worker);
        results
            .entry("notifier")
            .or_default()
            .push(bench.notifier(&triggers).await);
        // Last: its writes would slow the emulator for the others.
        results
            .entry("ingress")
            .or_default()
            .push(bench.ingress(run).await);
    }
    let cold = bench.cold_starts().await;
    let (text, json) = report(&results, &cold, &bench.args);
    println!("{text}");
    if let Some(path) = &bench.args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_each_start_with_the_floor_of_its_round() {
        let ratios = paired_ratios(&[3.0, 2.0, 9.0], &[2.0, 1.0, 3.0]);
        assert_eq!(ratios, [1.5, 2.0, 3.0]);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 100.0);
        assert_eq!(percentile(&values, 99.0), 198.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn the_typical_call_set_is_the_most_frequent_per_kind() {
        let samples = vec![
            ("a".to_string(), "x 1".to_string()),
            ("a".to_string(), "x 1".to_string()),
            ("a".to_string(), "x 2".to_string()),
            ("b".to_string(), "y 1".to_string()),
        ];
        let typical = typical(&samples);
        assert_eq!(typical["a"], "x 1 (2 of 3)");
        assert_eq!(typical["b"], "y 1 (1 of 1)");
    }
}
