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
