//! What the chaos run checks over everything it recorded, once the system
//! has settled and both dead-letter queues were replayed:
//!
//! 1. every 202 ended exactly once: its execution's outcome, refused
//!    behind a full queue (quota given back), or in a DLQ with its reason;
//! 2. no execution without a trigger: each start through CodePipeline is a
//!    run's (its token is the run's id), one per run, the one its triggers
//!    name;
//! 3. no client charged more than its accepted triggers;
//! 4. one e-mail per execution outcome (pushes included); a second copy is
//!    counted apart: SNS has no idempotency for e-mail, so a `Publish` whose
//!    answer was lost, or a notifier killed between publishing and recording
//!    it, sends it twice;
//! 5. every trigger's final status is its execution's outcome;
//! 6. nothing left in flight: queues, DLQs and lanes empty;
//! 7. no record stays queued without a run past the settling.
//!
//! One function per invariant, each reading what `check` gathered once.

use crate::stack::LocalStack;
use aws_config::SdkConfig;
use shared::aws::queue::Deliveries;
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::Table;
use shared::aws::{self, CallCounter};
use shared::clock::{Clock, SystemClock};
use shared::rules::client_key::client_key;
use shared::rules::quota::QuotaPolicy;
use shared::rules::status::TriggerStatus;
use shared::rules::trigger::TriggerView;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A trigger answered 202.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub trigger_id: String,
    pub client: String,
    pub pipeline: &'static str,
}

/// Where the run's records are read from (never through the fault proxies).
pub struct Record<'a> {
    pub sdk: &'a SdkConfig,
    pub stack: &'a LocalStack,
    pub table: &'a Table,
    pub secret: &'a str,
    /// The run's CodePipelines are `<prefix>-<public name>`.
    pub prefix: &'a str,
}

/// One invariant's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub name: &'static str,
    pub held: bool,
    pub detail: String,
}

/// The run's outcome: the seed that reproduces it, the faults injected,
/// what happened, and each invariant.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub faults: BTreeMap<String, u64>,
    pub tallies: BTreeMap<String, u64>,
    pub verdicts: Vec<Verdict>,
    pub seconds: f64,
}

impl Report {
    pub fn held(&self) -> bool {
        self.verdicts.iter().all(|v| v.held)
    }

    /// The tables a person reads.
    pub fn text(&self) -> String {
        let mut out = format!(
            "chaos run, seed {} ({:.0} s)\n\nfaults injected\n",
            self.seed, self.seconds
        );
        for (what, n) in &self.faults {
            out.push_str(&format!("  {n:>6}  {what}\n"));
        }
        out.push_str("\nwhat happened\n");
        for (what, n) in &self.tallies {
            out.push_str(&format!("  {n:>6}  {what}\n"));
        }
        out.push_str("\ninvariants\n");
        for v in &self.verdicts {
            let mark = if v.held { "held    " } else { "VIOLATED" };
            out.push_str(&format!("  {mark}  {}: {}\n", v.name, v.detail));
        }
        out.push_str(&format!(
            "\n{} (reproduce: --seed {})\n",
            if self.held() {
                "every invariant held"
            } else {
                "AN INVARIANT WAS VIOLATED"
            },
            self.seed
        ));
        out
    }
}

fn ended(status: TriggerStatus) -> bool {
    !matches!(status, TriggerStatus::Queued | TriggerStatus::Started)
}

/// Waits until every accepted trigger has ended and the queues are empty,
/// or `deadline`.
/// Also returns once nothing moves but triggers whose events wait in a
/// DLQ: they end only after a replay.
pub async fn settle(record: &Record<'_>, accepted: &[Accepted], deadline: Instant) {
    while Instant::now() < deadline {
        let left = in_flight(record, accepted).await;
        if left.is_empty() {
            return;
        }
        if left.iter().all(|l| l.starts_with("trigger ")) && dead_letters(record).await > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What has not ended: triggers not ended, messages on a queue, held lanes.
async fn in_flight(record: &Record<'_>, accepted: &[Accepted]) -> Vec<String> {
    let now = SystemClock.now_ms();
    let mut left = Vec::new();
    for a in accepted {
        match record.table.triggers().view(&a.trigger_id, now).await {
            Ok(Some(view)) if ended(view.status) => {}
            Ok(Some(view)) => left.push(format!("trigger {} {:?}", a.trigger_id, view.status)),
            Ok(None) => left.push(format!("trigger {} has no record", a.trigger_id)),
            Err(e) => left.push(format!("trigger {}: {e}", a.trigger_id)),
        }
    }
    let queues = Deliveries::new(aws::sqs(record.sdk, &CallCounter::default()));
    let resources = &record.stack.resources;
    for (name, url) in [
        ("work queue", &resources.queue_url),
        ("events queue", &resources.events_queue_url),
        ("on-call inbox", &resources.inbox_url),
    ] {
        match queues.counts(url).await {
            Ok(c) if c.visible + c.in_flight + c.delayed == 0 => {}
            Ok(c) => left.push(format!(
                "{name}: {} visible, {} in flight, {} delayed",
                c.visible, c.in_flight, c.delayed
            )),
            Err(e) => left.push(format!("{name}: {e}")),
        }
    }
    left
}

/// Messages on the work DLQ and the events DLQ together.
pub async fn dead_letters(record: &Record<'_>) -> u64 {
    let queues = Deliveries::new(aws::sqs(record.sdk, &CallCounter::default()));
    let resources = &record.stack.resources;
    let mut n = 0;
    for url in [&resources.dlq_url, &resources.events_dlq_url] {
        if let Ok(c) = queues.counts(url).await {
            n += c.visible + c.in_flight + c.delayed;
        }
    }
    n
}

fn verdict(name: &'static str, problems: Vec<String>, ok: String) -> Verdict {
    Verdict {
        name,
        held: problems.is_empty(),
        detail: if problems.is_empty() {
            ok
        } else {
            let shown: Vec<&String> = problems.iter().take(5).collect();
            format!("{} problem(s), e.g. {shown:?}", problems.len())
        },
    }
}

/// The trigger's own record, when it can be read.
async fn stored(
    record: &Record<'_>,
    trigger_id: &str,
    now: u64,
) -> Option<shared::rules::trigger::TriggerRecord> {
    record
        .table
        .triggers()
        .get(trigger_id, now)
        .await
        .ok()
        .flatten()
}

/// Checks every invariant.
pub async fn check(
    record: &Record<'_>,
    seed: u64,
    accepted: &[Accepted],
    pushes: &[String],
    faults: BTreeMap<String, u64>,
    mut tallies: BTreeMap<String, u64>,
    began: Instant,
) -> Report {
    let now = SystemClock.now_ms();
    let mut views = BTreeMap::new();
    for a in accepted {
        if let Ok(Some(view)) = record.table.triggers().view(&a.trigger_id, now).await {
            views.insert(a.trigger_id.clone(), view);
        }
    }
    let seen = Seen {
        record,
        accepted,
        pushes,
        views,
        now,
    };
    let (emails, copies) = one_email_per_outcome(&seen).await;
    tallies.insert("e-mails sent twice (SNS: not idempotent)".into(), copies);
    let verdicts = vec![
        every_202_ended_once(&seen).await,
        no_execution_without_a_trigger(&seen).await,
        no_client_overcharged(&seen).await,
        emails,
        statuses_are_outcomes(&seen).await,
        nothing_in_flight(&seen).await,
        no_record_left_queued(&seen, began).await,
    ];
    Report {
        seed,
        faults,
        tallies,
        verdicts,
        seconds: began.elapsed().as_secs_f64(),
    }
}

/// What every invariant reads: the run's records, what it accepted and
/// pushed, and each accepted trigger's view as it ended.
struct Seen<'a> {
    record: &'a Record<'a>,
    accepted: &'a [Accepted],
    pushes: &'a [String],
    views: BTreeMap<String, TriggerView>,
    now: u64,
}

/// Every 202 ended exactly once.
async fn every_202_ended_once(seen: &Seen<'_>) -> Verdict {
    let &Seen {
        record,
        accepted,
        ref views,
        now,
        ..
    } = seen;
    let mut problems = Vec::new();
    let mut endings: BTreeMap<String, u64> = BTreeMap::new();
    for a in accepted {
        match views.get(&a.trigger_id) {
            None => problems.push(format!("{}: no record", a.trigger_id)),
            Some(v) if !ended(v.status) => {
                problems.push(format!("{}: still {:?}", a.trigger_id, v.status))
            }
            Some(v) if v.status == TriggerStatus::DeadLettered => {
                let reason = stored(record, &a.trigger_id, now)
                    .await
                    .and_then(|r| r.error_code);
                if reason.is_none() {
                    problems.push(format!("{}: dead-lettered without a reason", a.trigger_id));
                }
                *endings
                    .entry("in a DLQ with its reason".into())
                    .or_insert(0) += 1;
            }
            Some(v) if v.status == TriggerStatus::Refused => {
                let reason = stored(record, &a.trigger_id, now)
                    .await
                    .and_then(|r| r.refusal)
                    .map(|r| r.reason);
                if reason.as_deref() == Some(shared::rules::trigger::UNSETTLED) {
                    // Only a client told 503 is given back as unsettled.
                    problems.push(format!(
                        "{}: answered 202, then given back as unsettled",
                        a.trigger_id
                    ));
                }
                *endings
                    .entry("refused behind a full queue".into())
                    .or_insert(0) += 1;
            }
            Some(v) if v.execution_id.is_none() => problems.push(format!(
                "{}: {:?} without an execution",
                a.trigger_id, v.status
            )),
            Some(v) => {
                *endings
                    .entry(format!("{:?}", v.status).to_lowercase())
                    .or_insert(0) += 1
            }
        }
    }
    verdict(
        "every 202 ended exactly once",
        problems,
        format!("{} accepted: {endings:?}", accepted.len()),
    )
}

/// No execution without a trigger; one per run.
async fn no_execution_without_a_trigger(seen: &Seen<'_>) -> Verdict {
    let &Seen {
        record,
        pushes,
        ref views,
        ..
    } = seen;
    let starts = record.stack.front.starts();
    let mut problems = Vec::new();
    let named: BTreeMap<&str, BTreeSet<&str>> = views.values().fold(BTreeMap::new(), |mut m, v| {
        if let (Some(run), Some(execution)) = (&v.run, &v.execution_id) {
            m.entry(run.id.as_str())
                .or_insert_with(BTreeSet::new)
                .insert(execution.as_str());
        }
        m
    });
    let mut per_run: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, token, execution) in &starts {
        *per_run.entry(token.as_str()).or_insert(0) += 1;
        match named.get(token.as_str()) {
            Some(executions)
                if executions.len() == 1 && executions.contains(execution.as_str()) => {}
            Some(executions) => problems.push(format!(
                "run {token}: started {execution}, its triggers name {executions:?}"
            )),
            // Without coalescing the trigger is its own run.
            None => match views.get(token.as_str()) {
                Some(v) if v.execution_id.as_deref() == Some(execution.as_str()) => {}
                Some(v) => problems.push(format!(
                    "trigger {token}: started {execution}, its record names {:?}",
                    v.execution_id
                )),
                None => problems.push(format!(
                    "execution {execution}: token {token} is no accepted trigger's run"
                )),
            },
        }
    }
    for (run, n) in per_run {
        if n > 1 {
            problems.push(format!("run {run}: {n} executions"));
        }
    }
    problems.extend(unknown_executions(seen, &starts).await);
    verdict(
        "no execution without a trigger, one per run",
        problems,
        format!(
            "{} executions started by the worker, one per run; {} pushes beside them",
            starts.len(),
            pushes.len()
        ),
    )
}

/// What CodePipeline holds, not only what the front kept: a start the
/// front lost track of (a second start for one run) shows here.
async fn unknown_executions(seen: &Seen<'_>, starts: &[(String, String, String)]) -> Vec<String> {
    let &Seen { record, pushes, .. } = seen;
    let mut problems = Vec::new();
    let known: BTreeSet<&str> = starts
        .iter()
        .map(|(_, _, execution)| execution.as_str())
        .chain(pushes.iter().map(String::as_str))
        .collect();
    let codepipeline = aws::codepipeline(record.sdk, &CallCounter::default());
    for public in super::PUBLIC {
        let target = format!("{}-{public}", record.prefix);
        match codepipeline
            .list_pipeline_executions()
            .pipeline_name(&target)
            .max_results(100)
            .send()
            .await
        {
            Ok(listed) => {
                for id in listed
                    .pipeline_execution_summaries()
                    .iter()
                    .filter_map(|s| s.pipeline_execution_id())
                    .filter(|id| !known.contains(id))
                {
                    problems.push(format!(
                        "execution {id} of {target}: started by neither the worker nor a push"
                    ));
                }
            }
            Err(e) => problems.push(format!(
                "{target}: executions not listed: {}",
                aws::describe(&e)
            )),
        }
    }
    problems
}

/// How many of each client's accepted triggers were kept (not refused
/// later): what it may be charged for.
fn kept_per_client<'a>(seen: &'a Seen<'_>) -> BTreeMap<&'a str, u64> {
    let mut kept: BTreeMap<&str, u64> = BTreeMap::new();
    for a in seen.accepted {
        let refused = seen
            .views
            .get(&a.trigger_id)
            .is_some_and(|v| v.status == TriggerStatus::Refused);
        let entry = kept.entry(a.client.as_str()).or_insert(0);
        if !refused {
            *entry += 1;
        }
    }
    kept
}

/// No client charged more than its accepted triggers.
async fn no_client_overcharged(seen: &Seen<'_>) -> Verdict {
    let (record, now) = (seen.record, seen.now);
    let policy = QuotaPolicy {
        limit: 3,
        window: Duration::from_secs(7 * 86_400),
    };
    let kept = kept_per_client(seen);
    let mut problems = Vec::new();
    let mut charged_total = 0;
    for (client, accepted_n) in &kept {
        let Ok(key) = client_key(record.secret.as_bytes(), client) else {
            continue;
        };
        let slots = record
            .table
            .admission()
            .slots(&QuotaLevel::client(&key, policy))
            .await
            .unwrap_or_default();
        let charged = slots
            .iter()
            .filter(|&&t| t > 0 && t + policy.window_ms() > now)
            .count() as u64;
        charged_total += charged;
        if charged > *accepted_n {
            problems.push(format!(
                "{client}: charged {charged}, accepted {accepted_n}"
            ));
        }
    }
    verdict(
        "no client charged more than its accepted triggers",
        problems,
        format!(
            "{} clients, {charged_total} slots charged for {} kept triggers",
            kept.len(),
            kept.values().sum::<u64>()
        ),
    )
}

/// One e-mail per execution outcome; copies counted apart.
async fn one_email_per_outcome(seen: &Seen<'_>) -> (Verdict, u64) {
    let &Seen {
        record,
        pushes,
        ref views,
        ..
    } = seen;
    let emails = record.stack.sent_emails();
    let mut executions: BTreeSet<String> = views
        .values()
        .filter_map(|v| v.execution_id.clone())
        .collect();
    executions.extend(pushes.iter().cloned());
    let mut problems = Vec::new();
    let mut copies = 0;
    for execution in &executions {
        let n = emails
            .iter()
            .filter(|e| e.contains(execution.as_str()))
            .count() as u64;
        if n == 0 {
            problems.push(format!("execution {execution}: no e-mail"));
        }
        copies += n.saturating_sub(1);
    }
    let strays: Vec<&String> = emails
        .iter()
        .filter(|e| !executions.iter().any(|x| e.contains(x.as_str())))
        .collect();
    if !strays.is_empty() {
        problems.push(format!(
            "{} e-mail(s) about no execution of the run: {:?}",
            strays.len(),
            strays
                .iter()
                .map(|e| e.chars().take(400).collect::<String>())
                .collect::<Vec<_>>()
        ));
    }
    let verdict = verdict(
        "one e-mail per execution outcome",
        problems,
        format!(
            "{} e-mails for {} executions, {copies} second copies counted apart",
            emails.len(),
            executions.len()
        ),
    );
    (verdict, copies)
}

/// A trigger's final status is its execution's outcome (the played
/// runs: `broken` fails, the others succeed).
async fn statuses_are_outcomes(seen: &Seen<'_>) -> Verdict {
    let &Seen {
        accepted,
        ref views,
        ..
    } = seen;
    let mut problems = Vec::new();
    for a in accepted {
        let Some(v) = views.get(&a.trigger_id) else {
            continue;
        };
        if v.execution_id.is_none() {
            continue;
        }
        let expected = if a.pipeline == "broken" {
            TriggerStatus::Failed
        } else {
            TriggerStatus::Succeeded
        };
        if v.status != expected {
            problems.push(format!(
                "{}: {:?}, its execution {:?}",
                a.trigger_id, v.status, expected
            ));
        }
    }
    verdict(
        "every trigger's status is its execution's",
        problems,
        "all match".into(),
    )
}

/// Nothing left in flight.
async fn nothing_in_flight(seen: &Seen<'_>) -> Verdict {
    let &Seen {
        record, accepted, ..
    } = seen;
    let mut left = in_flight(record, accepted).await;
    let queues = Deliveries::new(aws::sqs(record.sdk, &CallCounter::default()));
    let resources = &record.stack.resources;
    for (name, url) in [
        ("work DLQ", &resources.dlq_url),
        ("events DLQ", &resources.events_dlq_url),
    ] {
        if let Ok(c) = queues.counts(url).await {
            if c.visible + c.in_flight + c.delayed > 0 {
                left.push(format!(
                    "{name}: {} message(s) after the replays: {}",
                    c.visible + c.in_flight + c.delayed,
                    why_dead(record.sdk, url).await
                ));
            }
        }
    }
    for public in super::PUBLIC {
        let target = format!("{}-{public}", record.prefix);
        if let Ok(lane) = record.table.runs().get_lane(&target).await {
            if lane.run_id.is_some() || lane.has_waiting() {
                left.push(format!(
                    "lane {target}: held by {:?}, {} waiting",
                    lane.run_id,
                    lane.in_order().count()
                ));
            }
        }
    }
    verdict(
        "nothing left in flight",
        left,
        "queues, DLQs and lanes empty".into(),
    )
}

/// No record stays queued without a run past the settling: the last
/// double fault's records (503, admission committed, neither message nor
/// refund through) were found by the settler and given back.
async fn no_record_left_queued(seen: &Seen<'_>, began: Instant) -> Verdict {
    let &Seen { record, now, .. } = seen;
    let since =
        now.saturating_sub(u64::try_from(began.elapsed().as_millis()).unwrap_or(0) + 60_000);
    let problems = match record
        .table
        .ledger()
        .queued_without_run(since, now, now, 1000)
        .await
    {
        Ok(limbo) => limbo
            .iter()
            .map(|r| {
                format!(
                    "{}: still queued without a run (client {})",
                    r.trigger_id,
                    r.client_key.prefix()
                )
            })
            .collect(),
        Err(e) => vec![format!("the ledger could not be read: {e}")],
    };
    verdict(
        "no record stays queued without a run past the settling",
        problems,
        "every admitted record ran, waited in a lane, or was given back".into(),
    )
}

/// What the messages left on a DLQ say about why they failed (the last
/// error, the state and execution of an event), for the report.
async fn why_dead(sdk: &SdkConfig, url: &str) -> String {
    let sqs = aws::sqs(sdk, &CallCounter::default());
    let Ok(received) = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .visibility_timeout(0)
        .send()
        .await
    else {
        return "(could not read them)".into();
    };
    received
        .messages()
        .iter()
        .map(|m| {
            let body: serde_json::Value =
                serde_json::from_str(m.body().unwrap_or_default()).unwrap_or_default();
            let event = if body["requestPayload"].is_object() {
                &body["requestPayload"]
            } else {
                &body
            };
            let error = body["responsePayload"]["errorMessage"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    m.message_attributes()
                        .and_then(|a| a.get("error_message"))
                        .and_then(|v| v.string_value())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            format!(
                "[{} {} {}: {error}]",
                event["detail"]["execution-id"]
                    .as_str()
                    .or(body["trigger_id"].as_str())
                    .unwrap_or("?"),
                event["detail"]["stage"].as_str().unwrap_or(""),
                event["detail"]["state"].as_str().unwrap_or(""),
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}
