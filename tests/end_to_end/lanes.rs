//! The keyed lane against a flood: 40 addresses keep a pipeline's
//! anonymous lane full, and a trigger with a key still starts right after
//! the run in progress; its e-mail names the key, never shows it. (How
//! many anonymous people the flood refuses is measured by the bench,
//! `scripts/bench lockout`: it depends on timing, not a test's business.)

use crate::harness::*;
use shared::aws::table::Table;
use std::sync::atomic::Ordering;

/// One free-form input: every flood request is an input set of its own.
const SETTINGS: &str = r#"{"app": {"max_pending": 3, "inputs": {
    "ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}"}}}}"#;
const ADDRESSES: u8 = 40;
/// The flood's bound: at most this many requests, whatever happens.
const MAX_FLOOD_REQUESTS: usize = 3_000;

fn table(harness: &Harness) -> Table {
    Table::new(
        shared::aws::dynamodb(&harness.sdk, &shared::aws::CallCounter::default()),
        harness.stack.resources.table_name.clone(),
    )
}

/// Sends a new input set from the next of 40 addresses every 50 ms (20 a
/// second) until `stop`, as an attacker who keeps the anonymous lane full:
/// a refusal behind the full queue gives the quota back, so the addresses
/// hardly run out. Returns the ids it got a 202 for.
async fn flood(harness: &Harness, stop: &AtomicBool) -> Vec<String> {
    let clients: Vec<_> = (0..ADDRESSES)
        .map(|n| client_from(Ipv4Addr::new(127, 0, 4, 10 + n)))
        .collect();
    let mut accepted = Vec::new();
    for n in 0..MAX_FLOOD_REQUESTS {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let client = &clients[n % clients.len()];
        let body = format!(r#"{{"pipeline": "app", "inputs": {{"ref": "flood-{n}"}}}}"#);
        let answer = post(client, harness, &body).await;
        if answer.status == 202 {
            accepted.push(
                answer.body["trigger_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    accepted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_holding_the_anonymous_lane_never_delays_a_keyed_trigger_past_the_run_in_progress()
{
    let harness = Harness::start_named(
        &unique("e2e-lanes"),
        &[("PIPELINE_SETTINGS", SETTINGS)],
        None,
        Duration::from_secs(3),
    )
    .await;
    let inbox = harness.inbox().await;
    let made = ops_json(
        &harness,
        "unused-secret-0123456789",
        &["keys", "create", "ci-main", "--pipeline", "app"],
    )
    .await
    .expect("a key");
    let key = made["key"].as_str().expect("the key").to_string();
    let stop = AtomicBool::new(false);
    let table = table(&harness);

    let flooding = flood(&harness, &stop);
    let keyed = async {
        // The flood holds the lane: a run in progress and the two anonymous
        // slots of three taken (one is reserved for keys).
        eventually("the flood to fill the anonymous lane", || async {
            let lane = table.runs().get_lane(&harness.app).await.ok()?;
            (lane.run_id.is_some() && lane.waiting.len() == 2).then_some(())
        })
        .await;
        // A trigger with the key: accepted in the keyed lane, charged to the
        // key, queued first.
        let ci = client_from(Ipv4Addr::new(127, 0, 4, 201));
        let bearer = format!("Bearer {key}");
        let answer = send_with(
            &ci,
            "POST",
            &harness.url("/trigger"),
            r#"{"pipeline": "app", "inputs": {"ref": "release"}}"#,
            &[("authorization", bearer.as_str())],
        )
        .await;
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        assert_eq!(
            (&answer.body["lane"], &answer.body["key"]),
            (&Value::from("key"), &Value::from("ci-main"))
        );
        let id = answer.body["trigger_id"].as_str().unwrap().to_string();
        let started = harness.status_becomes(&ci, &id, "started").await;
        assert_eq!(started["lane"], "key");
        stop.store(true, Ordering::SeqCst);
        id
    };
    let (flood_ids, keyed_id) = tokio::join!(flooding, keyed);

    // Right after the run in progress: between the keyed trigger's
    // acceptance and its start, at most one run started (the one the lane
    // held or was handing over when the keyed run was queued).
    let keyed_run = table.runs().get(&keyed_id).await.unwrap().expect("its run");
    let (queued_at, started_at) = (
        keyed_run.requested_at,
        keyed_run.started_at.expect("started"),
    );
    let mut between = Vec::new();
    for id in &flood_ids {
        if let Some(run) = table.runs().get(id).await.unwrap() {
            if run
                .started_at
                .is_some_and(|at| at > queued_at && at < started_at)
            {
                between.push(run.run_id);
            }
        }
    }
    assert!(
        between.len() <= 1,
        "runs started ahead of the keyed one: {between:?}"
    );

    // On-call's e-mail for the keyed run names the key, never shows it.
    harness
        .status_becomes(
            &client_from(Ipv4Addr::new(127, 0, 4, 201)),
            &keyed_id,
            "succeeded",
        )
        .await;
    let email = eventually("the keyed run's e-mail", || async {
        harness
            .emails(&inbox)
            .await
            .into_iter()
            .find(|(_, body)| body.contains(&keyed_id))
    })
    .await;
    assert!(email.1.contains("Trigger key    ci-main"), "{}", email.1);
    for (subject, body) in harness.emails(&inbox).await {
        assert!(!subject.contains(&key[4..]) && !body.contains(&key[4..]));
    }
    assert!(
        !harness.printed().contains(&key[4..]),
        "the stack printed the key"
    );
    harness.stack.stop().await;
}
