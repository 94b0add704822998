//! A coalesced run: every trigger moves with it, its pipeline is freed.

use crate::harness::*;

#[tokio::test]
async fn a_coalesced_run_moves_every_trigger_frees_its_pipeline_and_says_how_many_it_served() {
    let h = harness().await;
    let pipeline = unique("coalesced");
    let execution = unique("exec");
    let ids = started_run(&h, &pipeline, &execution, 3).await;
    let notifier = h.notifier();
    let at = |time: &str, state| {
        let mut e = event(&pipeline, &execution, state).1;
        e["time"] = time.into();
        e
    };
    let outcome = notifier
        .handle(at("2026-11-21T10:04:12Z", PipelineState::Succeeded))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Notified { .. }), "{outcome:?}");
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        assert_eq!(view.status, TriggerStatus::Succeeded, "{id}");
        assert_eq!(view.execution_id.as_deref(), Some(execution.as_str()));
        assert_eq!(view.coalesced, *id != ids[0]);
    }
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None
    );
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    let body = &emails[0].1;
    assert!(
        body.contains("\nTriggers       3, coalesced into this run\n"),
        "{body}"
    );
    assert!(
        body.contains(&format!("\nFirst trigger  {}\n", ids[0])),
        "{body}"
    );

    // The next run holds the pipeline now; a late STARTED and a repeated
    // SUCCEEDED (a new delivery) of the first run change nothing of it.
    let next_execution = unique("exec");
    let next = started_run(&h, &pipeline, &next_execution, 1).await;
    for late in [
        at("2026-11-21T10:00:01Z", PipelineState::Started),
        at("2026-11-21T10:04:12Z", PipelineState::Succeeded),
    ] {
        notifier.handle(late).await.unwrap();
    }
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id.as_deref(), Some(next[0].as_str()));
    assert_eq!(lane.execution_id.as_deref(), Some(next_execution.as_str()));
    let first = h.table.triggers().view(&ids[1], 0).await.unwrap().unwrap();
    assert_eq!(first.status, TriggerStatus::Succeeded);
}

#[tokio::test]
async fn the_end_of_a_run_wakes_the_first_run_waiting_for_its_pipeline() {
    let h = harness().await;
    let pipeline = unique("wake");
    let execution = unique("exec");
    started_run(&h, &pipeline, &execution, 1).await;
    // Two runs wait, opened in this order, each with its opener's message.
    let now = SystemClock.now_ms();
    let mut waiting = Vec::new();
    for n in 0..2 {
        let id = h
            .stack
            .enqueue_trigger_with_inputs(&pipeline, serde_json::json!({ "n": n }))
            .await;
        let record = h.table.triggers().get(&id, now).await.unwrap().unwrap();
        let opening = shared::aws::table::runs::Opening {
            wake: Some(shared::rules::runs::Wake {
                queue_url: h.stack.queues.queue_url.clone(),
                message: format!("opener message of {id}"),
                attributes: Vec::new(),
            }),
            ..shared::aws::table::runs::Opening::up_to(3)
        };
        testkit::table::join_run(&h.table, &record, &opening, now, now / 1000 + 600).await;
        waiting.push(id);
    }
    h.stack.drain(&h.stack.queues.queue_url).await;
    let (_, ended) = event(&pipeline, &execution, PipelineState::Succeeded);
    h.notifier().handle(ended).await.unwrap();
    let woken: Vec<String> = h
        .stack
        .drain(&h.stack.queues.queue_url)
        .await
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect();
    assert_eq!(woken, [format!("opener message of {}", waiting[0])]);
    let lane = h.table.runs().get_lane(&pipeline).await.unwrap();
    assert_eq!(lane.run_id, None);
    assert_eq!(
        lane.waiting, waiting,
        "both still wait, first in line first"
    );
}
