//! Stage changes reach the item that owns the execution, without e-mails.

use crate::harness::*;

#[tokio::test]
async fn stage_changes_reach_every_trigger_of_the_run_and_send_no_email() {
    let h = harness().await;
    let pipeline = unique("staged");
    let execution = unique("exec");
    let ids = started_run(&h, &pipeline, &execution, 2).await;
    let notifier = h.notifier();
    let t0 = h.clock.now_ms();
    let changes = [
        ("Source", PipelineState::Started, t0),
        ("Source", PipelineState::Succeeded, t0 + 1_000),
        ("Build", PipelineState::Started, t0 + 1_001),
        ("Build", PipelineState::Failed, t0 + 5_000),
    ];
    for (stage, state, at) in changes {
        let outcome = notifier
            .handle(stage_event(&pipeline, &execution, stage, state, at))
            .await
            .unwrap();
        assert!(
            matches!(outcome, Outcome::Stage { recorded: true, stage: ref named, .. } if named == stage),
            "{outcome:?}"
        );
    }
    // A late STARTED of Build (EventBridge gives no order) is kept out.
    let late = notifier
        .handle(stage_event(
            &pipeline,
            &execution,
            "Build",
            PipelineState::Started,
            t0 + 1_001,
        ))
        .await
        .unwrap();
    assert!(
        matches!(
            late,
            Outcome::Stage {
                recorded: false,
                ..
            }
        ),
        "{late:?}"
    );
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        let shown = serde_json::to_value(&view).unwrap();
        assert_eq!(
            shown["stages"],
            json!([
                {"name": "Source", "state": "SUCCEEDED", "updated_at": rfc3339(t0 + 1_000)},
                {"name": "Build", "state": "FAILED", "updated_at": rfc3339(t0 + 5_000)},
            ]),
            "{id}"
        );
        // A stage's failure is not the run's: the execution's event decides.
        assert_eq!(view.status, TriggerStatus::Started);
    }
    assert!(h.emails().await.is_empty());
}

#[tokio::test]
async fn a_stage_change_that_races_the_workers_record_is_retried_then_recorded() {
    let h = harness().await;
    let pipeline = unique("stagerace");
    let execution = unique("exec");
    let notifier = h.notifier();
    let early = stage_event(
        &pipeline,
        &execution,
        "Source",
        PipelineState::Started,
        h.clock.now_ms(),
    );
    let err = notifier.handle(early.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::NotYetRecorded { .. }), "{err}");
    let ids = started_run(&h, &pipeline, &execution, 1).await;
    assert!(matches!(
        notifier.handle(early).await.unwrap(),
        Outcome::Stage { recorded: true, .. }
    ));
    let view = h.table.triggers().view(&ids[0], 0).await.unwrap().unwrap();
    assert_eq!(view.stages.len(), 1);
    assert_eq!(view.stages[0].state, "STARTED");
    // A stage change of an execution nobody recorded, long ago, is not ours.
    let old = stage_event(
        &pipeline,
        &unique("exec"),
        "Source",
        PipelineState::Started,
        h.clock.now_ms() - notifier::OWNER_WAIT.as_millis() as u64 - 1,
    );
    assert!(matches!(
        notifier.handle(old).await.unwrap(),
        Outcome::Stage {
            recorded: false,
            ..
        }
    ));
}

#[tokio::test]
async fn without_coalescing_the_trigger_itself_holds_its_stages() {
    let h = harness().await;
    let execution = unique("exec");
    let id = started_trigger(&h, &execution).await;
    let pipeline = testkit::table::stored(&h.table, &id, 0).await.target;
    let outcome = h
        .notifier()
        .handle(stage_event(
            &pipeline,
            &execution,
            "Deploy",
            PipelineState::Started,
            h.clock.now_ms(),
        ))
        .await
        .unwrap();
    assert!(
        matches!(outcome, Outcome::Stage { recorded: true, .. }),
        "{outcome:?}"
    );
    let view = h.table.triggers().view(&id, 0).await.unwrap().unwrap();
    assert_eq!(view.stages.len(), 1);
    assert_eq!(view.stages[0].name, "Deploy");
}
