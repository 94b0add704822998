//! `flood`: many clients trigger one pipeline at once, against the local
//! stack (`trigger-ops local`) on DynamoDB Local and moto, and the cost is
//! measured: executions started, ingress latency p50/p99 as clients see it,
//! AWS calls per trigger on each hop, and how long the worker takes to
//! drain the queue. Every request goes to a loopback address; the count and
//! the concurrency are bounded. Timings are reported, never asserted.

use clap::Parser;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_stack::{console::Console, LocalOptions};
use serde_json::{json, Value};
use shared::aws::CallCounter;
use shared::config::Env;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "A flood of triggers from distinct loopback addresses against the local stack")]
struct Args {
    /// Triggers, each from its own address (at most 60,000).
    #[arg(long, default_value_t = 1000)]
    triggers: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long each pipeline run takes.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    run_time: Duration,
    /// Give up waiting for the system to settle after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    limit: Duration,
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

async fn request(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
) -> (u16, Value) {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .expect("a request");
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.triggers == 0 || args.triggers > 60_000 {
        return Err("--triggers must be between 1 and 60000".into());
    }
    let sdk = testkit::sdk_config().await;
    let prefix = testkit::unique("flood");
    let pipeline = format!("{prefix}-app");
    let pipelines = format!("app={pipeline}");
    let env = Env::from_pairs([
        ("PIPELINES", pipelines.as_str()),
        ("PIPELINE_SETTINGS", "{}"),
    ]);
    let stack = local_stack::start(
        &sdk,
        &env,
        &LocalOptions {
            port: 0,
            prefix: prefix.clone(),
            failing: vec![],
            run_time: args.run_time,
            fault: None,
            outputs: None,
            stage: None,
        },
        Console::new(Box::new(std::io::sink())),
    )
    .await?;
    let base = stack.base_url.clone();
    let codepipeline = shared::aws::codepipeline(&sdk, &CallCounter::default());
    let queues =
        shared::aws::queue::Deliveries::new(shared::aws::sqs(&sdk, &CallCounter::default()));
    eprintln!(
        "==> {} triggers from {} loopback addresses, {} at a time; each run takes {}",
        args.triggers,
        args.triggers,
        args.concurrency,
        humantime::format_duration(args.run_time)
    );
    let start = Instant::now();
    let url = format!("{base}/trigger");
    let answers: Vec<(u32, u16, f64, Option<String>)> = stream::iter(0..args.triggers)
        .map(|n| {
            let url = url.clone();
            async move {
                let mut connector = HttpConnector::new();
                connector.set_local_address(Some(IpAddr::V4(address(n))));
                let client = Client::builder(TokioExecutor::new()).build(connector);
                let sent = Instant::now();
                let (status, body) = request(&client, "POST", &url).await;
                let ms = sent.elapsed().as_secs_f64() * 1000.0;
                let id = body["trigger_id"].as_str().map(str::to_string);
                (n, status, ms, id)
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let flood_s = start.elapsed().as_secs_f64();
    let mut statuses: BTreeMap<u16, u32> = BTreeMap::new();
    for (_, status, _, _) in &answers {
        *statuses.entry(*status).or_default() += 1;
    }
    let mut latencies: Vec<f64> = answers.iter().map(|(_, _, ms, _)| *ms).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let ingress_calls = per_trigger(&stack.calls.ingress, args.triggers);

    // The worker has drained the queue when nothing is visible or in flight
    // (a waiting run's message is delayed, not visible).
    let deadline = start + args.limit;
    let drained_s = loop {
        let counts = queues.counts(&stack.resources.queue_url).await?;
        if counts.visible + counts.in_flight == 0 {
            break start.elapsed().as_secs_f64();
        }
        if Instant::now() > deadline {
            return Err("the queue did not drain in time".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let worker_calls_at_drain = per_trigger(&stack.calls.worker, args.triggers);

    // Every accepted trigger ends, each naming an execution.
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut executions_named = BTreeSet::new();
    let mut unfinished: Vec<String> = answers
        .iter()
        .filter_map(|(_, _, _, id)| id.clone())
        .collect();
    let mut by_status: BTreeMap<String, u32> = BTreeMap::new();
    while !unfinished.is_empty() {
        let mut still = Vec::new();
        for id in unfinished {
            let (_, body) = request(&client, "GET", &format!("{base}/triggers/{id}")).await;
            let status = body["status"].as_str().unwrap_or("?").to_string();
            if matches!(status.as_str(), "queued" | "started") {
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
    let settled_s = start.elapsed().as_secs_f64();
    let executions = testkit::executions(&codepipeline, &pipeline).await;
    let accepted = statuses.get(&202).copied().unwrap_or(0);
    let report = json!({
        "triggers": args.triggers,
        "concurrency": args.concurrency,
        "run_time_s": args.run_time.as_secs_f64(),
        "responses": statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "executions": executions,
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
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
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
