//! `flood`: many clients trigger one pipeline at once, against the local
//! stack (`trigger-ops local`) on DynamoDB Local and moto, and the cost is
//! measured: executions started, the most runs pending at once, ingress
//! latency p50/p99 as clients see it, AWS calls per trigger on each hop and
//! per waiting run per minute, how long the worker takes to drain the
//! queue, and what happens to a legitimate trigger sent mid-flood.
//!
//! Scenarios (`--scenario`):
//! - `same`: every client sends the same (empty) inputs: coalescing.
//! - `distinct`: every client its own `ref`: distinct input sets, held by
//!   the bounded queue (`max_pending`).
//! - `ipv6-48`: one IPv6 /48 spread over as many /64s, sent in-process to
//!   the ingress as API Gateway events (loopback has one IPv6 address):
//!   the nested network quotas.
//!
//! Every request goes to a loopback address; the count and the concurrency
//! are bounded. Timings are reported, never asserted.

use clap::Parser;
use futures::stream::{self, StreamExt};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use shared::aws::CallCounter;
use shared::config::Env;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Every client sends the same inputs.
    Same,
    /// Every client sends its own `ref`.
    Distinct,
    /// One IPv6 /48 over as many /64s as triggers, in-process.
    #[value(name = "ipv6-48")]
    Ipv6Slash48,
}

/// How long the flood may take to settle: a pipeline runs one execution at
/// a time, so up to `max_pending` runs wait behind the one in progress and
/// the last ends about `(max_pending + 1) × run_time` after the flood.
fn settle_limit(given: Option<Duration>, max_pending: u64, run_time: Duration) -> Duration {
    given.unwrap_or_else(|| {
        let runs = u32::try_from(max_pending)
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        run_time
            .saturating_mul(runs)
            .saturating_add(Duration::from_secs(300))
            .max(Duration::from_secs(600))
    })
}

/// The pipeline of `distinct`: one free-form input; `max_pending` as given.
fn distinct_settings(max_pending: u64) -> String {
    format!(
        r#"{{"app": {{"max_pending": {max_pending}, "inputs": {{
            "ref": {{"type": "string", "pattern": "[a-z0-9-]{{1,40}}"}}}}}}}}"#
    )
}

#[derive(Parser)]
#[command(about = "A flood of triggers from distinct loopback addresses against the local stack")]
struct Args {
    /// What the clients send.
    #[arg(long, value_enum, default_value_t = Scenario::Same)]
    scenario: Scenario,
    /// Triggers, each from its own address (at most 60,000).
    #[arg(long, default_value_t = 1000)]
    triggers: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `distinct`: the pipeline's `max_pending`.
    #[arg(long, default_value_t = 3)]
    max_pending: u64,
    /// How long each pipeline run takes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    run_time: Duration,
    /// Give up waiting for the system to settle after this long; by default
    /// 5 minutes more than `max_pending` + 1 runs one after another, and at
    /// least 10 minutes.
    #[arg(long, value_parser = humantime::parse_duration)]
    limit: Option<Duration>,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The `n`th client's address: 127.1.0.1, 127.1.0.2, … (all loopback).
fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7F01_0000 + (n / 250) * 256 + n % 250 + 1)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Calls per operation, divided by `per`.
fn per_trigger(calls: &CallCounter, per: u32) -> BTreeMap<String, f64> {
    calls
        .snapshot()
        .into_iter()
        .map(|(op, n)| (op, n as f64 / f64::from(per)))
        .collect()
}

use local_stack::api_client::request;

/// `GET /triggers/{id}`.
async fn status_of(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    id: &str,
) -> (u16, Value) {
    request(
        client,
        "GET",
        &format!("{base}/triggers/{id}"),
        String::new(),
    )
    .await
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.triggers == 0 || args.triggers > 60_000 {
        return Err("--triggers must be between 1 and 60000".into());
    }
    let sdk = testkit::sdk_config().await;
    let (stack, env, pipeline) = start_stack(&sdk, &args).await?;
    if args.scenario == Scenario::Ipv6Slash48 {
        let report = one_slash48(&args, &env, &stack).await?;
        print_report(&report, &args)?;
        stack.stop().await;
        return Ok(());
    }
    eprintln!(
        "==> {} triggers from {} loopback addresses, {} at a time; each run takes {}",
        args.triggers,
        args.triggers,
        args.concurrency,
        humantime::format_duration(args.run_time)
    );
    let (report, accepted) = flood(&args, &sdk, &stack, &pipeline).await?;
    print_report(&report, &args)?;
    stack.stop().await;
    if accepted != args.triggers {
        return Err(format!(
            "only {accepted} of {} triggers were accepted",
            args.triggers
        )
        .into());
    }
    Ok(())
}

/// The flood on one pipeline, to the end of every trigger it accepted:
/// the report, and how many were accepted.
async fn flood(
    args: &Args,
    sdk: &aws_config::SdkConfig,
    stack: &local_stack::LocalStack,
    pipeline: &str,
) -> Result<(Value, u32), Box<dyn std::error::Error>> {
    let base = stack.base_url.clone();
    let table = shared::aws::table::Table::new(
        shared::aws::dynamodb(sdk, &CallCounter::default()),
        stack.resources.table_name.clone(),
    );
    let pending = PendingSampler::start(table, pipeline.to_string());
    let codepipeline = shared::aws::codepipeline(sdk, &CallCounter::default());
    let queues =
        shared::aws::queue::Deliveries::new(shared::aws::sqs(sdk, &CallCounter::default()));
    let start = Instant::now();
    let url = format!("{base}/trigger");
    let legit = spawn_legitimate(args, &url, &base, &pending);
    let answers = send_flood(args, &url, &pending).await;
    let flood_s = start.elapsed().as_secs_f64();
    let (statuses, latencies) = tally(&answers);
    let ingress_calls = per_trigger(&stack.calls.ingress, args.triggers);

    let deadline = start + settle_limit(args.limit, args.max_pending, args.run_time);
    let drained_s = drained(&queues, &stack.resources.queue_url, start, deadline).await?;
    let worker_calls_at_drain = per_trigger(&stack.calls.worker, args.triggers);
    // From here on, runs only wait and start: what does waiting cost?
    let worker_before_wait: u64 = stack.calls.worker.snapshot().values().sum();
    let waited_from = pending.waiting_run_ms();
    let wait_began = Instant::now();

    let ids = answers
        .iter()
        .filter_map(|(_, _, _, id)| id.clone())
        .collect();
    let (executions_named, by_status) = ended(&base, ids, deadline).await?;
    let settled_s = start.elapsed().as_secs_f64();
    let worker_while_waiting: u64 =
        stack.calls.worker.snapshot().values().sum::<u64>() - worker_before_wait;
    let waiting_run_minutes = (pending.waiting_run_ms() - waited_from) as f64 / 60_000.0;
    let wait_minutes = wait_began.elapsed().as_secs_f64() / 60.0;
    let legit = legit.await?;
    let executions = testkit::executions(&codepipeline, pipeline).await;
    let accepted = statuses.get(&202).copied().unwrap_or(0);
    pending.stop();
    let report = json!({
        "triggers": args.triggers,
        "concurrency": args.concurrency,
        "run_time_s": args.run_time.as_secs_f64(),
        "responses": statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "scenario": match args.scenario {
            Scenario::Same => "same inputs",
            Scenario::Distinct => "a distinct ref each",
            Scenario::Ipv6Slash48 => "one IPv6 /48",
        },
        "executions": executions,
        "most_runs_pending_at_once": pending.most(),
        "legitimate_trigger_mid_flood": legit,
        "max_pending": (args.scenario == Scenario::Distinct).then_some(args.max_pending),
        "worker_calls_while_runs_waited": waiting_cost(worker_while_waiting, wait_minutes, waiting_run_minutes),
        "executions_named_by_triggers": executions_named.len(),
        "trigger_outcomes": by_status,
        "ingress_ms": {"p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0), "max": latencies.last()},
        "flood_s": flood_s,
        "worker_drained_queue_s": drained_s,
        "all_triggers_ended_s": settled_s,
        "aws_calls_per_trigger": {
            "ingress": ingress_calls,
            "worker (at drain)": worker_calls_at_drain,
            "worker (in all)": per_trigger(&stack.calls.worker, args.triggers),
            "notifier": per_trigger(&stack.calls.notifier, args.triggers),
        },
        "notifier_calls_in_all": stack.calls.notifier.snapshot(),
    });
    Ok((report, accepted))
}

/// The answers counted by status, and their latencies, sorted.
fn tally(answers: &[Answer]) -> (BTreeMap<u16, u32>, Vec<f64>) {
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for (_, status, _, _) in answers {
        *statuses.entry(*status).or_default() += 1;
    }
    let mut latencies: Vec<f64> = answers.iter().map(|(_, _, ms, _)| *ms).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    (statuses, latencies)
}

/// The local stack the flood plays on: one public pipeline `app` (its
/// settings by scenario). Returns the stack, its settings and the
/// CodePipeline's name.
async fn start_stack(
    sdk: &aws_config::SdkConfig,
    args: &Args,
) -> Result<(local_stack::LocalStack, Env, String), Box<dyn std::error::Error>> {
    let prefix = testkit::unique("flood");
    let pipeline = format!("{prefix}-app");
    let pipelines = format!("app={pipeline}");
    let settings = match args.scenario {
        Scenario::Distinct => distinct_settings(args.max_pending),
        _ => "{}".to_string(),
    };
    let env = Env::from_pairs([
        ("PIPELINES", pipelines.as_str()),
        ("PIPELINE_SETTINGS", settings.as_str()),
    ]);
    let stack = local_stack::start_bench(sdk, &env, prefix, args.run_time).await?;
    Ok((stack, env, pipeline))
}

/// The report on stdout, and in `--json`'s file.
fn print_report(report: &Value, args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    println!("{}", serde_json::to_string_pretty(report)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(report)?)?;
    }
    Ok(())
}

/// What the worker spent while runs only waited: its calls per minute, and
/// per waiting run per minute.
fn waiting_cost(calls: u64, minutes: f64, waiting_run_minutes: f64) -> Value {
    json!({
        "calls": calls,
        "minutes": minutes,
        "per_minute": calls as f64 / minutes.max(1e-9),
        "runs_waiting_on_average": waiting_run_minutes / minutes.max(1e-9),
        "waiting_run_minutes": waiting_run_minutes,
        "per_waiting_run_per_minute": if waiting_run_minutes > 0.0 {
            Some(calls as f64 / waiting_run_minutes)
        } else {
            None
        },
    })
}

/// One answer of the flood: the client's number, the status, the latency
/// in ms, and the trigger id of a 202.
type Answer = (u32, u16, f64, Option<String>);

/// The flood: a request from each client's own loopback address,
/// `concurrency` at a time (`distinct`: each its own `ref`).
async fn send_flood(args: &Args, url: &str, pending: &PendingSampler) -> Vec<Answer> {
    let scenario = args.scenario;
    let body = move |n: u32| match scenario {
        Scenario::Distinct => format!(r#"{{"pipeline": "app", "inputs": {{"ref": "r-{n}"}}}}"#),
        _ => String::new(),
    };
    stream::iter(0..args.triggers)
        .map(|n| {
            let url = url.to_string();
            let body = body(n);
            let pending = pending.clone();
            async move {
                let mut connector = HttpConnector::new();
                connector.set_local_address(Some(IpAddr::V4(address(n))));
                let client = Client::builder(TokioExecutor::new()).build(connector);
                let sent = Instant::now();
                let (status, body) = request(&client, "POST", &url, body).await;
                pending.count_sent();
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let id = body["trigger_id"].as_str().map(str::to_string);
                (n, status, ms, id)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await
}

/// A legitimate trigger, sent when half the flood is in: from an address
/// of its own, with inputs of its own.
fn spawn_legitimate(
    args: &Args,
    url: &str,
    base: &str,
    pending: &PendingSampler,
) -> tokio::task::JoinHandle<Value> {
    let (url, base) = (url.to_string(), base.to_string());
    let half = args.triggers / 2;
    let pending = pending.clone();
    let legit_body = match args.scenario {
        Scenario::Distinct => r#"{"pipeline": "app", "inputs": {"ref": "legit"}}"#.to_string(),
        _ => String::new(),
    };
    tokio::spawn(async move {
        while pending.sent() < half {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        legitimate(&url, &base, legit_body).await
    })
}

/// Seconds from `start` until the worker drained the queue: nothing
/// visible or in flight (a waiting run's message is delayed, not visible).
async fn drained(
    queues: &shared::aws::queue::Deliveries,
    url: &str,
    start: Instant,
    deadline: Instant,
) -> Result<f64, Box<dyn std::error::Error>> {
    loop {
        let counts = queues.counts(url).await?;
        if counts.visible + counts.in_flight == 0 {
            return Ok(start.elapsed().as_secs_f64());
        }
        if Instant::now() > deadline {
            return Err("the queue did not drain in time".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every accepted trigger ended: the executions they name, and
/// how many ended in each status.
async fn ended(
    base: &str,
    mut unfinished: Vec<String>,
    deadline: Instant,
) -> Result<(BTreeSet<String>, BTreeMap<String, u32>), Box<dyn std::error::Error>> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut executions_named = BTreeSet::new();
    let mut by_status: BTreeMap<String, u32> = BTreeMap::new();
    while !unfinished.is_empty() {
        let mut still = Vec::new();
        for id in unfinished {
            let (_, body) = status_of(&client, base, &id).await;
            let status = body["status"].as_str().unwrap_or("?").to_string();
            if matches!(status.as_str(), "queued" | "started" | "?") {
                still.push(id);
            } else {
                if let Some(e) = body["execution_id"].as_str() {
                    executions_named.insert(e.to_string());
                }
                *by_status.entry(status).or_default() += 1;
            }
        }
        unfinished = still;
        if Instant::now() > deadline {
            return Err(format!("{} triggers did not end in time", unfinished.len()).into());
        }
        if !unfinished.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok((executions_named, by_status))
}

/// Samples the pipeline's lane every 100 ms: the most runs waiting at once,
/// and waiting runs × time (for the cost of waiting per run and minute).
#[derive(Clone)]
struct PendingSampler {
    state: std::sync::Arc<SamplerState>,
}

#[derive(Default)]
struct SamplerState {
    most: AtomicU64,
    waiting_run_ms: AtomicU64,
    sent: AtomicU32,
    stop: std::sync::atomic::AtomicBool,
}

impl PendingSampler {
    fn start(table: shared::aws::table::Table, pipeline: String) -> Self {
        let state = std::sync::Arc::new(SamplerState::default());
        let sampler = Self {
            state: state.clone(),
        };
        tokio::spawn(async move {
            let mut last = Instant::now();
            while !state.stop.load(Ordering::Relaxed) {
                if let Ok(lane) = table.runs().get_lane(&pipeline).await {
                    let waiting = lane.in_order().count() as u64;
                    state.most.fetch_max(waiting, Ordering::Relaxed);
                    let ms = last.elapsed().as_millis() as u64;
                    state
                        .waiting_run_ms
                        .fetch_add(waiting * ms, Ordering::Relaxed);
                }
                last = Instant::now();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        sampler
    }
    fn most(&self) -> u64 {
        self.state.most.load(Ordering::Relaxed)
    }
    fn waiting_run_ms(&self) -> u64 {
        self.state.waiting_run_ms.load(Ordering::Relaxed)
    }
    fn count_sent(&self) {
        self.state.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn sent(&self) -> u32 {
        self.state.sent.load(Ordering::Relaxed)
    }
    fn stop(&self) {
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

/// One person's trigger mid-flood: its answer, and how long until it was
/// refused or its run started (or it ended).
async fn legitimate(url: &str, base: &str, body: String) -> Value {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(Ipv4Addr::new(127, 2, 0, 1))));
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    let sent = Instant::now();
    let (status, answer) = request(&client, "POST", url, body).await;
    let Some(id) = answer["trigger_id"].as_str() else {
        return json!({"answer": status, "body": answer});
    };
    loop {
        let (_, trigger) = status_of(&client, base, id).await;
        let state = trigger["status"].as_str().unwrap_or("?").to_string();
        if !matches!(state.as_str(), "queued" | "?") {
            return json!({
                "answer": status,
                "outcome": state,
                "decided_after_s": sent.elapsed().as_secs_f64(),
                "retry_after_seconds": trigger["retry_after_seconds"],
            });
        }
        if sent.elapsed() > Duration::from_secs(3600) {
            return json!({"answer": status, "outcome": "still queued after an hour"});
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `ipv6-48`: one /48 spread over `--triggers` /64s (the /56s in turn), sent
/// to the ingress in-process, as API Gateway would: how many are admitted,
/// which level refuses the rest, and what each answer cost.
async fn one_slash48(
    args: &Args,
    env: &Env,
    stack: &local_stack::LocalStack,
) -> Result<Value, Box<dyn std::error::Error>> {
    let sdk = testkit::sdk_config().await;
    let env = env
        .clone()
        .with("TABLE_NAME", stack.resources.table_name.clone())
        .with("QUEUE_URL", stack.resources.queue_url.clone())
        .with("CLIENT_KEY_SECRET", "flood-client-key-secret");
    let config = shared::config::IngressConfig::from_env(&env)?;
    let calls = CallCounter::default();
    let ingress = ingress::Ingress::new(
        config,
        shared::aws::table::Table::new(
            shared::aws::dynamodb(&sdk, &calls),
            stack.resources.table_name.clone(),
        ),
        shared::aws::queue::WorkQueue::new(
            shared::aws::sqs(&sdk, &calls),
            stack.resources.queue_url.clone(),
        ),
        std::sync::Arc::new(shared::clock::SystemClock),
        calls.clone(),
    );
    eprintln!(
        "==> {} triggers from one IPv6 /48 (2001:db8:4800::/48), one /64 each",
        args.triggers
    );
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    let mut latencies = Vec::new();
    let started = Instant::now();
    for n in 0..args.triggers {
        let ip = format!("2001:db8:4800:{n:x}::1");
        let event = testkit::rest_event("POST", "/trigger", None, &ip);
        let sent = Instant::now();
        let response = ingress.handle(event).await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
        let status = response["statusCode"].as_u64().unwrap_or(0);
        let body: Value = response["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let key = match (status, body["network"].as_str()) {
            (429, Some(level)) => format!("429 {level}"),
            (status, _) => status.to_string(),
        };
        *answers.entry(key).or_default() += 1;
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    Ok(json!({
        "scenario": "one IPv6 /48 over as many /64s",
        "triggers": args.triggers,
        "answers": answers,
        "took_s": started.elapsed().as_secs_f64(),
        "ingress_ms": {"p50": percentile(&latencies, 50.0), "p99": percentile(&latencies, 99.0)},
        "aws_calls_per_trigger": per_trigger(&calls, args.triggers),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settle_limit_leaves_room_for_every_pending_run_one_after_another() {
        let minute = Duration::from_secs(60);
        // 10 pending runs of a minute behind the one in progress: 11 minutes, plus 5.
        assert_eq!(settle_limit(None, 10, minute), 16 * minute);
        // Short runs keep the 10-minute floor.
        assert_eq!(settle_limit(None, 3, Duration::from_secs(5)), 10 * minute);
        // A limit given is kept as given.
        assert_eq!(settle_limit(Some(minute), 10, minute), minute);
        // No overflow on absurd settings.
        assert_eq!(settle_limit(None, u64::MAX, Duration::MAX), Duration::MAX);
    }
}
