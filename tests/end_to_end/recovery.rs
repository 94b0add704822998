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
    let dlq = harness.stack.resources.dlq_url.clone();
    let dead = harness.depth(&dlq).await;
    let started = harness.executions(&harness.app).await;
    assert_eq!(
        dead as usize + started,
        N,
        "every accepted trigger is an execution or a DLQ entry"
    );
    assert_eq!((dead as usize, started), (N, 0));
    assert_eq!(harness.depth(&harness.stack.resources.queue_url).await, 0);
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
    assert_eq!(summary["moved"], N as u64, "{summary}");

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
