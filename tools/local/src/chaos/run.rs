//! The chaos run's driver: starts the local stack with the functions'
//! calls behind fault proxies, sends triggers from many loopback addresses
//! across pipelines with and without coalescing (and pushes beside them),
//! takes DynamoDB away from the functions for a stretch, waits for the
//! system to settle, replays both dead-letter queues with `trigger-ops`, and
//! hands everything it recorded to [`super::invariants`].

use super::invariants::{self, Accepted, Record};
use super::PUBLIC;
use crate::console::Console;
use crate::error::LocalError;
use crate::faults::proxy::{ChaosProxy, FaultRates};
use crate::faults::Chaos;
use crate::stack::LocalOptions;
use aws_config::SdkConfig;
use futures::stream::{self, StreamExt};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use shared::aws::{self, CallCounter};
use shared::config::Env;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How hard the run is.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Reproduces the run: the faults' and the traffic's choices.
    pub seed: u64,
    /// Triggers sent (each answered 202, 429 or, after retries, 503).
    pub triggers: u32,
    /// Distinct client addresses they come from.
    pub clients: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// How long a pipeline run takes.
    pub run_time: Duration,
    /// Per call of the functions, to each service.
    pub rates: FaultRates,
    /// Chance an invocation of the worker or the notifier is killed.
    pub crash: f64,
    /// Chance an EventBridge event is delivered twice / held back.
    pub duplicate_event: f64,
    pub delay_event: f64,
    /// DynamoDB refuses the functions for this long, a third of the way in.
    pub outage: Duration,
    /// Runs started by a push beside the public triggers.
    pub pushes: u32,
    /// Give up waiting for the system to settle after this long.
    pub settle_limit: Duration,
}

impl ChaosConfig {
    /// About a minute on 2 cores: the form `scripts/test` runs.
    pub fn short(seed: u64) -> Self {
        Self {
            seed,
            triggers: 100,
            clients: 40,
            concurrency: 8,
            run_time: Duration::from_millis(600),
            rates: FaultRates {
                lost_answer: 0.03,
                server_error: 0.03,
                throttled: 0.03,
            },
            crash: 0.05,
            duplicate_event: 0.05,
            delay_event: 0.05,
            outage: Duration::from_secs(6),
            pushes: 3,
            settle_limit: Duration::from_secs(240),
        }
    }
}

const SETTINGS: &str = r#"{"app": {"max_pending": 100, "inputs": {"ref": {"type": "string", "pattern": "[a-z]{1,10}", "default": "main"}}}, "solo": {"coalesce": false}}"#;
const SECRET: &str = "chaos-run-client-key-secret-0123456789";

/// The `n`th client's address: 127.3.0.1, … (loopback).
fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7F03_0000 + (n / 250) * 256 + n % 250 + 1)
}

/// One trigger as a client sends it: a 503 means nothing was spent, so it
/// is sent again (up to 8 times), as the contract tells clients to.
async fn send(
    n: u32,
    client_n: u32,
    pipeline: &str,
    reference: &str,
    url: &str,
) -> (u32, u16, Option<String>, u32) {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(address(client_n))));
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let body = match pipeline {
        "app" => json!({"pipeline": "app", "inputs": {"ref": reference}}),
        other => json!({ "pipeline": other }),
    }
    .to_string();
    let mut status = 0;
    for attempt in 1..=8 {
        let (answered, value) =
            crate::api_client::request(&client, "POST", url, body.clone()).await;
        status = answered;
        if answered == 202 {
            return (
                n,
                202,
                value["trigger_id"].as_str().map(str::to_string),
                attempt,
            );
        }
        if answered != 503 && answered != 0 {
            return (n, answered, None, attempt);
        }
        tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
    }
    (n, status, None, 8)
}

/// One planned trigger: its number, its client, its pipeline, its `ref`.
type Planned = (u32, u32, &'static str, &'static str);

/// One answer: the trigger's number, the last status, the trigger id of a
/// 202, and how many times it was sent.
type Answer = (u32, u16, Option<String>, u32);

/// Runs the chaos run against the engines `sdk` points at.
pub async fn run(sdk: &SdkConfig, config: &ChaosConfig) -> Result<invariants::Report, LocalError> {
    let began = Instant::now();
    let proxies = start_proxies(sdk, config).await?;
    let chaos = Arc::new(Chaos::new(
        proxies[0].endpoint.clone(),
        proxies[1].endpoint.clone(),
        proxies[2].endpoint.clone(),
        (config.crash, config.duplicate_event, config.delay_event),
        config.seed.wrapping_add(3),
    ));
    // Short: CodePipeline names are at most 100 characters, queue names 80.
    let run_id = ulid::Ulid::new().to_string().to_lowercase();
    let prefix = format!("chaos-{}", &run_id[20..]);
    let outputs = std::env::temp_dir().join(format!("{prefix}-outputs.json"));
    let pipelines = PUBLIC
        .iter()
        .map(|p| format!("{p}={prefix}-{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let stack = start_stack(sdk, config, &prefix, &pipelines, &outputs, &chaos).await?;
    proxies[2].set_upstream(&stack.front.endpoint);

    let plan = traffic(config);
    let url = format!("{}/trigger", stack.base_url);
    let answers = send_all(&plan, &url, &proxies[0], config).await;
    let sent_after = began.elapsed().as_secs();
    let mut pushes = Vec::new();
    for _ in 0..config.pushes {
        if let Ok(execution) = stack.push(&format!("{prefix}-app")).await {
            pushes.push(execution);
        }
    }
    let (accepted, mut tallies) = tally(&plan, &answers);

    let clean = shared::aws::table::Table::new(
        aws::dynamodb(sdk, &CallCounter::default()),
        &stack.resources.table_name,
    );
    let record = Record {
        sdk,
        stack: &stack,
        table: &clean,
        secret: SECRET,
        prefix: &prefix,
    };
    let replays = settle_and_replay(
        &record,
        &accepted,
        &outputs,
        &pipelines,
        config,
        &mut tallies,
    )
    .await;
    tallies.insert("seconds until every trigger was sent".into(), sent_after);
    tallies.insert(
        "seconds until everything settled (replays included)".into(),
        began.elapsed().as_secs(),
    );
    for (queue, n) in replays {
        *tallies
            .entry(format!("replayed from the {queue}"))
            .or_insert(0) += n;
    }
    let faults = injected(&proxies, &chaos, config, &mut tallies);
    let report = invariants::check(
        &record,
        config.seed,
        &accepted,
        &pushes,
        faults,
        tallies,
        began,
    )
    .await;
    let _ = std::fs::remove_file(&outputs);
    stack.stop().await;
    Ok(report)
}

/// A fault proxy in front of each service the functions call (DynamoDB;
/// SQS and SNS; CodePipeline, pointed at the stack's front once it runs).
async fn start_proxies(
    sdk: &SdkConfig,
    config: &ChaosConfig,
) -> Result<[ChaosProxy; 3], LocalError> {
    let failed = |e: std::io::Error| LocalError::Failed(format!("cannot start a fault proxy: {e}"));
    let dynamodb = aws::endpoint_of(sdk, aws::DYNAMODB_SERVICE_ID).unwrap_or_default();
    let moto = aws::endpoint_of(sdk, "SQS").unwrap_or_default();
    Ok([
        ChaosProxy::start("DynamoDB", &dynamodb, config.rates, config.seed)
            .await
            .map_err(failed)?,
        ChaosProxy::start("SQS, SNS", &moto, config.rates, config.seed.wrapping_add(1))
            .await
            .map_err(failed)?,
        ChaosProxy::start(
            "CodePipeline",
            &moto,
            config.rates,
            config.seed.wrapping_add(2),
        )
        .await
        .map_err(failed)?,
    ])
}

/// The local stack the run plays on: its pipelines under `prefix`, the
/// `broken` one failing, the functions' calls through the proxies.
async fn start_stack(
    sdk: &SdkConfig,
    config: &ChaosConfig,
    prefix: &str,
    pipelines: &str,
    outputs: &std::path::Path,
    chaos: &Arc<Chaos>,
) -> Result<crate::stack::LocalStack, LocalError> {
    let env = Env::from_pairs([
        ("PIPELINES", pipelines),
        ("PIPELINE_SETTINGS", SETTINGS),
        ("CLIENT_KEY_SECRET", SECRET),
        ("MAX_ATTEMPTS", "4"),
        ("RUN_POLL_INTERVAL", "1s"),
        ("RUN_CHECK_AFTER", "30s"),
    ]);
    crate::stack::start(
        sdk,
        &env,
        &LocalOptions {
            port: 0,
            prefix: prefix.to_string(),
            failing: vec![format!("{prefix}-broken")],
            run_time: config.run_time,
            fault: None,
            outputs: Some(outputs.to_path_buf()),
            stage: None,
            chaos: Some(chaos.clone()),
            edge: crate::edge::Limits::off(),
        },
        Console::new(Box::new(std::io::sink())),
    )
    .await
}

/// The traffic, from the seed: each trigger from one of `clients`
/// addresses, to one of the pipelines.
fn traffic(config: &ChaosConfig) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(4));
    (0..config.triggers)
        .map(|n| {
            // Without coalescing every trigger is a run of its own, one
            // after the other: a few of those.
            let pipeline = match rng.random_range(0..8) {
                0..=3 => "app",
                4 => "solo",
                _ => "broken",
            };
            let reference = ["main", "dev", "rel"][rng.random_range(0..3)];
            (n, rng.random_range(0..config.clients), pipeline, reference)
        })
        .collect()
}

/// Sends the plan, `concurrency` at a time; DynamoDB goes away from the
/// functions for a stretch a third of the way in.
async fn send_all(
    plan: &[Planned],
    url: &str,
    dynamodb_proxy: &ChaosProxy,
    config: &ChaosConfig,
) -> Vec<Answer> {
    let outage_at = config.triggers / 3;
    let outage = config.outage;
    stream::iter(plan.to_vec())
        .map(|(n, client, pipeline, reference)| {
            let url = url.to_string();
            let dynamodb_proxy = dynamodb_proxy.clone();
            async move {
                if n == outage_at {
                    dynamodb_proxy.take_down(outage);
                }
                send(n, client, pipeline, reference, &url).await
            }
        })
        .buffer_unordered(config.concurrency)
        .collect()
        .await
}

/// The triggers answered 202, and the answers counted by status (and the
/// sends again after a 503).
fn tally(plan: &[Planned], answers: &[Answer]) -> (Vec<Accepted>, BTreeMap<String, u64>) {
    let mut accepted = Vec::new();
    let mut tallies: BTreeMap<String, u64> = BTreeMap::new();
    for (n, status, id, attempts) in answers {
        let (_, client, pipeline, _) = plan[*n as usize];
        *tallies.entry(format!("answered {status}")).or_insert(0) += 1;
        if *attempts > 1 {
            *tallies.entry("sent again after a 503".into()).or_insert(0) += u64::from(attempts - 1);
        }
        if let Some(id) = id {
            accepted.push(Accepted {
                trigger_id: id.clone(),
                client: address(client).to_string(),
                pipeline,
            });
        }
    }
    (accepted, tallies)
}

/// Settles, replays both DLQs (the work DLQ through the worker, the events
/// DLQ through the notifier), settles again; then runs the settler once.
/// Returns what each replay moved.
async fn settle_and_replay(
    record: &Record<'_>,
    accepted: &[Accepted],
    outputs: &std::path::Path,
    pipelines: &str,
    config: &ChaosConfig,
    tallies: &mut BTreeMap<String, u64>,
) -> Vec<(&'static str, u64)> {
    let deadline = Instant::now() + config.settle_limit;
    let mut replays = Vec::new();
    // An event can fail its replay for a while (a killed notifier's claim
    // holds for its lease, CLAIM_LEASE): as an operator told "retry later"
    // does, the replay is run again until both DLQs are empty.
    for round in 0..10 {
        invariants::settle(record, accepted, deadline).await;
        if invariants::dead_letters(record).await == 0 {
            break;
        }
        if round > 0 {
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
        replays.extend(replay(record.sdk, record.stack, outputs).await);
    }
    invariants::settle(record, accepted, deadline).await;
    // With nothing in flight, the settler's schedule runs once, as the
    // EventBridge rule does every 5 minutes in AWS: a record still queued
    // without a run is the last double fault's (503 after a committed
    // admission); its slots are given back.
    let settled = settle_limbo(record.sdk, record.stack, pipelines).await;
    tallies.insert(
        "queued without a run at the end, given back by the settler".into(),
        settled,
    );
    if settled > 0 {
        invariants::settle(record, accepted, deadline).await;
    }
    replays
}

/// The faults injected: by each proxy (lost SNS answers also counted as
/// what happened), by the chaos of the runtime, and the outage.
fn injected(
    proxies: &[ChaosProxy],
    chaos: &Chaos,
    config: &ChaosConfig,
    tallies: &mut BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    for proxy in proxies {
        for ((fault, op), n) in proxy.faults() {
            *faults
                .entry(format!("{}: {}", proxy.name(), fault.name()))
                .or_insert(0) += n;
            if op.ends_with("Publish") && fault == crate::faults::proxy::Fault::LostAnswer {
                *tallies
                    .entry("SNS Publish answers lost".into())
                    .or_insert(0) += n;
            }
        }
    }
    for (what, n) in chaos.counts() {
        faults.insert(what.to_string(), n);
    }
    faults.insert("DynamoDB outage (s)".to_string(), config.outage.as_secs());
    faults
}

/// The settler once, with no wait (nothing is in flight any more), through
/// clients without faults: how many records it sent to be given back.
async fn settle_limbo(sdk: &SdkConfig, stack: &crate::stack::LocalStack, pipelines: &str) -> u64 {
    let env = Env::from_pairs([
        ("TABLE_NAME", stack.resources.table_name.as_str()),
        ("DLQ_URL", stack.resources.dlq_url.as_str()),
        ("PIPELINES", pipelines),
        ("PIPELINE_SETTINGS", SETTINGS),
    ]);
    let Ok(config) = shared::config::WorkerConfig::from_env(&env) else {
        return 0;
    };
    let calls = CallCounter::default();
    let settler = worker::Worker::new(
        config,
        aws::dynamodb(sdk, &calls),
        aws::sqs(sdk, &calls),
        aws::codepipeline(sdk, &calls),
        Arc::new(shared::clock::SystemClock),
    );
    let request = shared::rules::settle::SettleRequest {
        queue_url: stack.resources.queue_url.clone(),
        after_seconds: Some(0),
    };
    settler.settle(&request).await.map_or(0, |s| s.sent)
}

/// `trigger-ops dlq replay` and `trigger-ops events replay` on the stack,
/// as an operator runs them: how many each moved.
async fn replay(
    sdk: &SdkConfig,
    stack: &crate::stack::LocalStack,
    outputs: &std::path::Path,
) -> Vec<(&'static str, u64)> {
    use clap::Parser;
    let ops_sdk = aws::with_endpoints(
        sdk,
        aws::Endpoints {
            dynamodb: aws::endpoint_of(sdk, aws::DYNAMODB_SERVICE_ID).unwrap_or_default(),
            others: aws::endpoint_of(sdk, "SQS").unwrap_or_default(),
            services: vec![(aws::LAMBDA_SERVICE_ID.to_string(), stack.lambda_url.clone())],
        },
    );
    let env = Env::from_pairs(Vec::<(&str, &str)>::new());
    let path = outputs.display().to_string();
    let mut moved = Vec::new();
    for (queue, command) in [("work DLQ", "dlq"), ("events DLQ", "events")] {
        let cli = ops::cli::Cli::parse_from([
            "trigger-ops",
            "--terraform-outputs",
            &path,
            "--json",
            command,
            "replay",
        ]);
        let ctx = ops::Context {
            sdk: &ops_sdk,
            env: &env,
            stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            calls: CallCounter::default(),
        };
        let n = match ops::run(&cli, &ctx).await {
            Ok(ran) => serde_json::from_str::<Value>(&ran.output)
                .ok()
                .and_then(|v| v["replayed"].as_u64().or_else(|| v["moved"].as_u64()))
                .unwrap_or(0),
            Err(_) => 0,
        };
        moved.push((queue, n));
    }
    moved
}
