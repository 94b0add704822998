//! `lockout`: an attacker keeps one pipeline's anonymous lane full from
//! many addresses, against the local stack on DynamoDB Local and moto,
//! while a person without a key tries every 10 s and a CI job with a key
//! triggers every 30 s. Reported: how many of the person's attempts are
//! refused, how long the keyed triggers wait and how many runs start ahead
//! of them, what the attacker sent and got, and the AWS calls per minute.
//!
//! Attackers (`--attacker`):
//! - `steady`: a new input set every 1/`--rate` s, round robin over the
//!   addresses (a refusal behind the full queue gives the quota back, so
//!   the addresses hardly run out);
//! - `smart`: follows its own pending runs and sends a new input set only
//!   when one of them leaves the queue (a slot frees), or a second after a
//!   refusal.
//!
//! With `--group N`, the attackers' addresses (127.4.0.0/16) are imported
//! as a network group sharing N (`group:cloud=N`) before the flood: how
//! fast the flood dries up.
//!
//! Every request goes to a loopback address; the count and the time are
//! bounded (`--duration`, `--max-requests`). Timings are reported, never
//! asserted.

use clap::Parser;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use local_stack::api_client::{request, request_with};
use serde_json::{json, Value};
use shared::aws::table::Table;
use shared::aws::CallCounter;
use shared::config::Env;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Attacker {
    Steady,
    Smart,
}

#[derive(Parser)]
#[command(
    about = "An attacker holds a pipeline's anonymous lane; a person and a keyed CI job try their luck"
)]
struct Args {
    #[arg(long, value_enum, default_value_t = Attacker::Steady)]
    attacker: Attacker,
    /// The attacker's addresses (127.4.0.1 on).
    #[arg(long, default_value_t = 40)]
    addresses: u32,
    /// `steady`: requests per second, all addresses together.
    #[arg(long, default_value_t = 4.0)]
    rate: f64,
    /// How long the flood lasts.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long each pipeline run takes.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    run_time: Duration,
    /// The pipeline's `max_pending` (`reserved_pending` stays at its default, 1).
    #[arg(long, default_value_t = 3)]
    max_pending: u64,
    /// Import the attackers' addresses as a network group sharing this many.
    #[arg(long)]
    group: Option<u32>,
    /// The attacker's requests at most, whatever happens.
    #[arg(long, default_value_t = 5_000)]
    max_requests: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

type Http = Client<HttpConnector, Full<Bytes>>;

/// A client whose connections come from `address`, a new connection per
/// request (the gateway closes idle ones; a stale one is not an answer).
fn client_from(address: Ipv4Addr) -> Http {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(IpAddr::V4(address)));
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

fn attacker_address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x7F04_0000 + (n / 250) * 256 + n % 250 + 1)
}

fn body(reference: &str) -> String {
    format!(r#"{{"pipeline": "app", "inputs": {{"ref": "{reference}"}}}}"#)
}

/// Waits for a trigger to leave `queued`; its status body.
async fn decided(client: &Http, base: &str, id: &str, until: Instant) -> Value {
    loop {
        let (_, status) = request(
            client,
            "GET",
            &format!("{base}/triggers/{id}"),
            String::new(),
        )
        .await;
        let queued = status["status"] == "queued";
        if !queued || Instant::now() > until {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the attacker sent and got, second by second.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    answers: Mutex<BTreeMap<String, u64>>,
    /// 202s per 10-second bucket since the flood began.
    accepted_by_10s: Mutex<BTreeMap<u64, u64>>,
}

impl Tally {
    fn count(&self, status: u16, body: &Value, at: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let key = match (status, body["network"].as_str()) {
            (429, Some(level)) => format!("429 {level}"),
            (429, None) => format!("429 {}", body["scope"].as_str().unwrap_or("?")),
            (status, _) => status.to_string(),
        };
        *self.answers.lock().unwrap().entry(key).or_default() += 1;
        if status == 202 {
            *self
                .accepted_by_10s
                .lock()
                .unwrap()
                .entry(at.as_secs() / 10 * 10)
                .or_default() += 1;
        }
    }
}

/// Where the flood goes, and what every task of it shares.
#[derive(Clone)]
struct Scene {
    url: String,
    base: String,
    start: Instant,
    until: Instant,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if args.addresses == 0 || args.addresses > 60_000 || args.rate <= 0.0 || args.rate > 200.0 {
        return Err("--addresses 1 to 60000, --rate above 0 and at most 200".into());
    }
    let sdk = testkit::sdk_config().await;
    let (stack, pipeline) = start_stack(&sdk, &args).await?;
    let table = Table::new(
        shared::aws::dynamodb(&sdk, &CallCounter::default()),
        stack.resources.table_name.clone(),
    );
    if args.group.is_some() {
        let parsed = shared::rules::network_groups::parse_ranges(b"127.4.0.0/16\n")?;
        table
            .network_groups()
            .import("cloud", &parsed, "lockout bench", now_ms())
            .await?;
    }
    let key = create_ci_key(&table).await?;
    let calls_before = all_calls(&stack);
    let start = Instant::now();
    let scene = Scene {
        url: format!("{}/trigger", stack.base_url),
        base: stack.base_url.clone(),
        start,
        until: start + args.duration,
        stop: Arc::new(AtomicBool::new(false)),
        tally: Arc::new(Tally::default()),
    };
    announce(&args);
    let clients: Vec<Http> = (0..args.addresses)
        .map(|n| client_from(attacker_address(n)))
        .collect();
    let attack = match args.attacker {
        Attacker::Steady => {
            tokio::spawn(steady(scene.clone(), clients, args.rate, args.max_requests))
        }
        Attacker::Smart => tokio::spawn(smart(
            scene.clone(),
            clients,
            args.max_pending,
            args.max_requests,
        )),
    };
    let person = tokio::spawn(person(scene.clone()));
    let ci = tokio::spawn(ci_job(scene.clone(), key, table.clone()));
    tokio::time::sleep(args.duration).await;
    scene.stop.store(true, Ordering::SeqCst);
    let attacker_requests = attack.await?;
    let person = person.await?;
    let mut ci = ci.await?;
    let minutes = start.elapsed().as_secs_f64() / 60.0;
    let calls = all_calls(&stack) - calls_before;
    let executions = testkit::executions(
        &shared::aws::codepipeline(&sdk, &CallCounter::default()),
        &pipeline,
    )
    .await;
    count_runs_ahead(&table, &mut ci).await?;
    let report = lockout_report(
        &args,
        attacker_requests,
        &scene.tally,
        person,
        ci,
        executions,
        calls as f64 / minutes,
    );
    println!("{}", serde_json::to_string_pretty(&report)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    stack.stop().await;
    Ok(())
}

/// What the run is, on stderr.
fn announce(args: &Args) {
    eprintln!(
        "==> {} attacker on {} addresses for {}; a person every 10 s, a keyed CI job every 30 s{}",
        match args.attacker {
            Attacker::Steady => format!("a steady ({}/s)", args.rate),
            Attacker::Smart => "a smart".to_string(),
        },
        args.addresses,
        humantime::format_duration(args.duration),
        args.group
            .map(|n| format!("; the attackers' addresses are the group cloud={n}"))
            .unwrap_or_default()
    );
}

/// The report: the attacker's requests and answers, the person's and the
/// CI job's outcomes, the executions and the AWS calls per minute.
fn lockout_report(
    args: &Args,
    attacker_requests: u64,
    tally: &Tally,
    person: BTreeMap<String, u64>,
    ci: Vec<Value>,
    executions: usize,
    calls_per_minute: f64,
) -> Value {
    let waits: Vec<f64> = ci.iter().filter_map(|w| w["waited_s"].as_f64()).collect();
    json!({
        "attacker": match args.attacker { Attacker::Steady => "steady", Attacker::Smart => "smart" },
        "addresses": args.addresses,
        "rate_per_s": (args.attacker == Attacker::Steady).then_some(args.rate),
        "duration_s": args.duration.as_secs_f64(),
        "run_time_s": args.run_time.as_secs_f64(),
        "max_pending": args.max_pending,
        "group": args.group,
        "attacker_requests": attacker_requests,
        "attacker_answers": *tally.answers.lock().unwrap(),
        "attacker_accepted_by_10s": tally.accepted_by_10s.lock().unwrap().iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "person_every_10s": person,
        "keyed_every_30s": ci,
        "keyed_wait_s": {
            "max": waits.iter().cloned().fold(0.0, f64::max),
            "mean": if waits.is_empty() { 0.0 } else { waits.iter().sum::<f64>() / waits.len() as f64 },
        },
        "executions": executions,
        "aws_calls_per_minute": calls_per_minute,
    })
}

fn now_ms() -> u64 {
    shared::clock::Clock::now_ms(&shared::clock::SystemClock)
}

/// The local stack: one public pipeline `app` with a `ref` input and the
/// given `max_pending`, the IPv6 network levels (and the group's).
/// Returns it and the CodePipeline's name.
async fn start_stack(
    sdk: &aws_config::SdkConfig,
    args: &Args,
) -> Result<(local_stack::LocalStack, String), Box<dyn std::error::Error>> {
    let prefix = testkit::unique("lockout");
    let pipeline = format!("{prefix}-app");
    let pipelines = format!("app={pipeline}");
    let settings = format!(
        r#"{{"app": {{"max_pending": {}, "inputs": {{"ref": {{"type": "string", "pattern": "[a-z0-9-]{{1,40}}"}}}}}}}}"#,
        args.max_pending
    );
    let levels = match args.group {
        Some(n) => format!("ipv6/56=6,ipv6/48=12,group:cloud={n}"),
        None => "ipv6/56=6,ipv6/48=12".to_string(),
    };
    let env = Env::from_pairs([
        ("PIPELINES", pipelines.as_str()),
        ("PIPELINE_SETTINGS", settings.as_str()),
        ("NETWORK_QUOTA_LIMITS", levels.as_str()),
    ]);
    let stack = local_stack::start_bench(sdk, &env, prefix, args.run_time).await?;
    Ok((stack, pipeline))
}

/// The CI job's trigger key `ci`: every pipeline, 100 a day.
async fn create_ci_key(table: &Table) -> Result<String, Box<dyn std::error::Error>> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes: {e}"))?;
    let key = shared::rules::keys::key_from_bytes(&bytes);
    let record = shared::rules::keys::KeyRecord {
        name: "ci".into(),
        hash: shared::rules::keys::key_hash(&key),
        pipelines: vec![],
        quota: shared::rules::quota::QuotaPolicy {
            limit: 100,
            window: Duration::from_secs(86_400),
        },
        created_at: now_ms(),
        revoked_at: None,
        valid_until: None,
    };
    table.keys().create(&record).await?;
    Ok(key)
}

/// Every AWS call the three functions made so far.
fn all_calls(stack: &local_stack::LocalStack) -> u64 {
    [
        &stack.calls.ingress,
        &stack.calls.worker,
        &stack.calls.notifier,
    ]
    .iter()
    .map(|c| c.snapshot().values().sum::<u64>())
    .sum()
}

/// The steady attacker: a new input set every 1/`rate` s, round robin
/// over its addresses. Returns how many it sent.
async fn steady(scene: Scene, clients: Vec<Http>, rate: f64, max: u64) -> u64 {
    let gap = Duration::from_secs_f64(1.0 / rate);
    let mut n: u64 = 0;
    while !scene.stop.load(Ordering::Relaxed) && n < max {
        let client = &clients[(n % clients.len() as u64) as usize];
        let (status, answer) = request(client, "POST", &scene.url, body(&format!("s-{n}"))).await;
        scene.tally.count(status, &answer, scene.start.elapsed());
        n += 1;
        tokio::time::sleep(gap).await;
    }
    n
}

/// The smart attacker: as many followers as the lane has pending slots.
/// Returns how many requests they sent.
async fn smart(scene: Scene, clients: Vec<Http>, max_pending: u64, max: u64) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let followers: Vec<_> = (0..max_pending)
        .map(|f| {
            tokio::spawn(follower(
                scene.clone(),
                clients.clone(),
                f,
                sent.clone(),
                max,
            ))
        })
        .collect();
    for follower in followers {
        let _ = follower.await;
    }
    sent.load(Ordering::Relaxed)
}

/// One follower: sends, follows its trigger until it leaves the queue,
/// then sends again at once (or a second after a refusal).
async fn follower(scene: Scene, clients: Vec<Http>, f: u64, sent: Arc<AtomicU64>, max: u64) {
    while !scene.stop.load(Ordering::Relaxed) {
        let n = sent.fetch_add(1, Ordering::Relaxed);
        if n >= max {
            break;
        }
        let client = &clients[(n % clients.len() as u64) as usize];
        let (status, answer) =
            request(client, "POST", &scene.url, body(&format!("m{f}-{n}"))).await;
        scene.tally.count(status, &answer, scene.start.elapsed());
        let Some(id) = answer["trigger_id"].as_str() else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let outcome = decided(
            client,
            &scene.base,
            id,
            Instant::now() + Duration::from_secs(600),
        )
        .await;
        if outcome["status"] == "refused" {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Pending: wait for it to start, then send the next.
        while !scene.stop.load(Ordering::Relaxed) {
            let (_, s) = request(
                client,
                "GET",
                &format!("{}/triggers/{id}", scene.base),
                String::new(),
            )
            .await;
            if s["status"] != "queued" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The person: a new input set every 10 s, from an address of its own.
/// Returns how each attempt ended.
async fn person(scene: Scene) -> BTreeMap<String, u64> {
    let client = client_from(Ipv4Addr::new(127, 5, 0, 1));
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0;
    tokio::time::sleep(Duration::from_secs(5)).await;
    while Instant::now() + Duration::from_secs(10) < scene.until {
        let (status, answer) =
            request(&client, "POST", &scene.url, body(&format!("person-{n}"))).await;
        let outcome = match answer["trigger_id"].as_str() {
            Some(id) => {
                let decided = decided(
                    &client,
                    &scene.base,
                    id,
                    Instant::now() + Duration::from_secs(120),
                )
                .await;
                match decided["status"].as_str() {
                    Some("refused") => {
                        format!("refused {}", decided["reason"].as_str().unwrap_or("?"))
                    }
                    Some("queued") => "queued (waiting)".to_string(),
                    _ => "ran".to_string(),
                }
            }
            None => format!("{status} {}", answer["scope"].as_str().unwrap_or("")),
        };
        *outcomes.entry(outcome).or_default() += 1;
        n += 1;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    outcomes
}

/// How long after the scene's end the CI job still follows a trigger that
/// has not left the queue (then reported as it is: queued).
const FOLLOW_AFTER_END: Duration = Duration::from_secs(600);

/// The CI job: a keyed trigger every 30 s; how long until it started.
async fn ci_job(scene: Scene, key: String, table: Table) -> Vec<Value> {
    let client = client_from(Ipv4Addr::new(127, 5, 0, 2));
    let bearer = format!("Bearer {key}");
    let mut waits = Vec::new();
    let mut n = 0;
    tokio::time::sleep(Duration::from_secs(15)).await;
    while Instant::now() + Duration::from_secs(20) < scene.until {
        let sent = Instant::now();
        let (status, answer) = request_with(
            &client,
            "POST",
            &scene.url,
            body(&format!("ci-{n}")),
            &[("authorization", bearer.as_str())],
        )
        .await;
        let every_30_s = || Duration::from_secs(30).saturating_sub(sent.elapsed());
        let Some(id) = answer["trigger_id"].as_str().map(str::to_string) else {
            // Not accepted: said in the report, and tried again on the job's
            // own beat (never a tight loop).
            waits.push(json!({"answer": status}));
            tokio::time::sleep(every_30_s()).await;
            continue;
        };
        // Followed until it leaves the queue, or long after the scene ended.
        let mut outcome;
        loop {
            outcome = decided(
                &client,
                &scene.base,
                &id,
                Instant::now() + Duration::from_secs(300),
            )
            .await;
            if outcome["status"] != "queued" || Instant::now() >= scene.until + FOLLOW_AFTER_END {
                break;
            }
        }
        let waited = sent.elapsed().as_secs_f64();
        let run = table.runs().get(&id).await.ok().flatten();
        waits.push(json!({
            "outcome": outcome["status"],
            "waited_s": waited,
            "started_at": run.as_ref().and_then(|r| r.started_at),
            "queued_at": run.as_ref().map(|r| r.requested_at),
        }));
        n += 1;
        tokio::time::sleep(every_30_s()).await;
    }
    waits
}

/// For each keyed trigger: the runs that started between its 202 and its
/// start.
async fn count_runs_ahead(
    table: &Table,
    ci: &mut [Value],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut started: Vec<u64> = Vec::new();
    let listed = table
        .ledger()
        .since(
            now_ms().saturating_sub(3_600_000),
            now_ms(),
            100_000,
            &|r| r.run_id.as_deref() == Some(r.trigger_id.as_str()),
        )
        .await?;
    for record in &listed {
        if let Ok(Some(run)) = table.runs().get(&record.trigger_id).await {
            started.extend(run.started_at);
        }
    }
    for wait in ci.iter_mut() {
        if let (Some(queued), Some(began)) =
            (wait["queued_at"].as_u64(), wait["started_at"].as_u64())
        {
            let ahead = started
                .iter()
                .filter(|s| **s > queued && **s < began)
                .count();
            wait["runs_started_ahead"] = json!(ahead);
        }
    }
    Ok(())
}
