//! Nothing lost: an unreachable CodePipeline, the DLQ, and a replay.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_codepipeline_is_unreachable_and_replay_recovers_all() {
    const N: usize = 4;
    // Without coalescing: one DLQ entry, and then one e-mail, per trigger.
    let settings = [
        ("MAX_ATTEMPTS", "2"),
        ("QUOTA_LIMIT", "10"),
        ("PIPELINE_SETTINGS", ALONE),
    ];
    let harness =
        Harness::start(&settings, Some(local_stack::Fault::CodepipelineUnreachable)).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 15));
    let mut ids = Vec::new();
    for _ in 0..N {
        let accepted = post(&client, &harness, "").await;
        assert_eq!(accepted.status, 202, "{:?}", accepted.body);
        ids.push(accepted.body["trigger_id"].as_str().unwrap().to_string());
    }
    // Each is tried twice (the second time after the worker's retry delay),
    // then given up to the DLQ with its reason.
    for id in &ids {
        harness.status_becomes(&client, id, "dead_lettered").await;
    }
    // Every accepted trigger is in the DLQ, and nothing started. A trigger
    // may be there twice: SQS is at least once, and a dead-lettering whose
    // answer was lost (a timeout on a busy machine) is sent again. Replay
    // is idempotent, so a second copy never runs twice (checked below).
    harness.settled().await;
    let dlq = harness.stack.resources.dlq_url.clone();
    let dead = harness.depth(&dlq).await;
    assert_eq!(harness.executions(&harness.app).await, 0);
    let peeked = ops_json(
        &harness,
        "-",
        &["dlq", "peek", "--max", "50", "--dlq-url", &dlq],
    )
    .await
    .expect("the DLQ can be read");
    let entries: Vec<String> = peeked["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["trigger_id"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(entries.len() as u64, dead, "{peeked}");
    let distinct: std::collections::BTreeSet<&String> = entries.iter().collect();
    assert_eq!(
        distinct,
        ids.iter().collect(),
        "every accepted trigger is a DLQ entry, and nothing else is"
    );
    let printed = harness.printed();
    assert!(printed.contains("attempt 1 of 2 failed"), "{printed}");
    assert!(
        printed.contains("dead-lettered on attempt 2 of 2: ConnectionError"),
        "{printed}"
    );

    // Recovery: the same stack without the fault, then the operator's replay.
    let Harness { stack, prefix, .. } = harness;
    stack.stop().await;
    let harness = Harness::start_named(&prefix, &settings, None, Duration::from_secs(1)).await;
    let inbox = harness.inbox().await;
    let cli = <ops::cli::Cli as clap::Parser>::try_parse_from([
        "trigger-ops",
        "--terraform-outputs",
        harness.outputs.to_str().expect("a UTF-8 path"),
        "dlq",
        "replay",
        "--rate",
        "100",
        "--json",
    ])
    .expect("a replay command line");
    let env = Env::from_pairs([]);
    let ran = ops::run(
        &cli,
        &ops::Context {
            sdk: &harness.sdk,
            env: &env,
            stop: Arc::new(AtomicBool::new(false)),
            calls: shared::aws::CallCounter::default(),
        },
    )
    .await
    .expect("the replay runs");
    assert!(ran.success, "{}", ran.output);
    let summary: Value = serde_json::from_str(&ran.output).expect("JSON");
    assert_eq!(summary["moved"], dead, "{summary}");

    for id in &ids {
        harness.status_becomes(&client, id, "succeeded").await;
    }
    harness.settled().await;
    assert_eq!(harness.executions(&harness.app).await, N);
    assert_eq!(harness.depth(&dlq).await, 0);
    eventually("an e-mail per recovered trigger", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    harness.settled().await;
    let emails = harness.emails(&inbox).await;
    for id in &ids {
        let naming = emails
            .iter()
            .filter(|(_, body)| body.contains(id.as_str()))
            .count();
        assert_eq!(naming, 1, "one e-mail for {id}: {emails:#?}");
    }
    harness.stack.stop().await;
}

/// The notifier loses its table while a run goes through every hop: each
/// of the run's events fails its deliveries and reaches the events DLQ,
/// and nothing is e-mailed. With the table back, `trigger-ops events
/// replay` hands them to the notifier again: every stage recorded, one
/// e-mail, the lane freed, the trigger succeeded; a second replay finds
/// nothing, and the events already handled are duplicates, not e-mails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_lost_in_a_table_outage_are_replayed_from_the_events_dlq() {
    let harness =
        Harness::start_named(&unique("e2e-outage"), &[], None, Duration::from_secs(1)).await;
    let inbox = harness.inbox().await;
    let dlq = harness.stack.resources.events_dlq_url.clone();
    harness.stack.notifier_table.set_down(true);
    let client = client_from(Ipv4Addr::new(127, 0, 7, 1));
    let accepted = post(&client, &harness, "").await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let id = accepted.body["trigger_id"].as_str().unwrap().to_string();
    // STARTED, three stages started and succeeded, SUCCEEDED: 8 events.
    eventually("the run's 8 events in the events DLQ", || async {
        (harness.depth(&dlq).await >= 8).then_some(())
    })
    .await;
    let peeked = ops_json(&harness, "-", &["events", "peek", "--max", "20"])
        .await
        .unwrap();
    let events = peeked["events"].as_array().unwrap();
    assert_eq!(events.len(), 8, "{peeked}");
    // As Lambda's on-failure destination keeps them: why each failed.
    assert!(
        events.iter().all(|e| e["shape"] == "lambda"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("RetriesExhausted: "))),
        "{peeked}"
    );
    assert!(
        harness.emails(&inbox).await.is_empty(),
        "nothing e-mailed in the outage"
    );
    let shown = send(&client, "GET", &harness.url(&format!("/triggers/{id}")), "").await;
    assert_eq!(shown.body["status"], "started", "{:?}", shown.body);

    harness.stack.notifier_table.set_down(false);
    let dry = ops_json(&harness, "-", &["events", "replay", "--dry-run"])
        .await
        .unwrap();
    assert_eq!(dry["events"].as_array().unwrap().len(), 8, "{dry}");
    let replayed = ops_json(&harness, "-", &["events", "replay"])
        .await
        .unwrap();
    assert_eq!(
        (replayed["replayed"].as_u64(), replayed["failed"].as_u64()),
        (Some(8), Some(0)),
        "{replayed}"
    );
    assert_eq!(harness.depth(&dlq).await, 0);
    let view = harness.status_becomes(&client, &id, "succeeded").await;
    let stages: Vec<(&str, &str)> = view["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        stages,
        [
            ("Source", "SUCCEEDED"),
            ("Build", "SUCCEEDED"),
            ("Deploy", "SUCCEEDED")
        ]
    );
    let emails = eventually("the one e-mail", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    harness.settled().await;
    assert_eq!(harness.emails(&inbox).await.len(), 1, "{emails:?}");
    assert_eq!(
        harness
            .stack
            .resources
            .pipelines
            .iter()
            .filter(|p| p.as_str() == harness.app)
            .count(),
        1
    );
    let again = ops_json(&harness, "-", &["events", "replay"])
        .await
        .unwrap();
    assert_eq!(again["replayed"], 0);
    harness.stack.stop().await;
}
