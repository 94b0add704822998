//! The trigger record follows its execution: recorded, never regressed, raced and old events.

use crate::harness::*;

#[tokio::test]
async fn a_trigger_through_ingress_worker_and_notifier_is_named_and_reads_succeeded() {
    let h = harness().await;
    let pipeline = h.stack.pipeline("e2e").await;
    let pipelines = format!("app={pipeline}");
    let ingress_config = shared::config::IngressConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("QUEUE_URL", h.stack.queues.queue_url.as_str()),
        ("PIPELINES", pipelines.as_str()),
        ("CLIENT_KEY_SECRET", "notifier-test-secret-0123456789"),
    ]))
    .unwrap();
    let ingress = ingress::Ingress::new(
        ingress_config,
        h.table.clone(),
        shared::aws::queue::WorkQueue::new(h.stack.sqs.clone(), &h.stack.queues.queue_url),
        Arc::new(SystemClock),
        h.stack.calls.clone(),
    );
    let response = ingress
        .handle(rest_event("POST", "/trigger", None, CLIENT_IP))
        .await
        .unwrap();
    assert_eq!(response["statusCode"], 202);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let trigger_id = body["trigger_id"].as_str().unwrap().to_string();

    let worker_config = shared::config::WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("DLQ_URL", h.stack.queues.dlq_url.as_str()),
        ("PIPELINES", pipelines.as_str()),
    ]))
    .unwrap();
    let worker = Arc::new(worker::Worker::new(
        worker_config,
        h.stack.dynamodb.clone(),
        h.stack.sqs.clone(),
        h.stack.codepipeline.clone(),
        Arc::new(SystemClock),
    ));
    let batch = worker
        .handle(h.stack.receive_event(30).await)
        .await
        .unwrap();
    assert!(batch.batch_item_failures.is_empty());
    let started = h.stored(&trigger_id).await;
    let triggers = h.table.triggers();
    let view = triggers.view(&trigger_id, SystemClock.now_ms()).await;
    let view = view.unwrap().expect("a view");
    assert_eq!(view.status, TriggerStatus::Started);
    let execution_id = view.execution_id.unwrap();
    assert_eq!(
        h.table
            .runs()
            .get_lane(&pipeline)
            .await
            .unwrap()
            .run_id
            .as_deref(),
        Some(trigger_id.as_str()),
        "the run holds its pipeline"
    );

    // CodePipeline's state change, as EventBridge delivers it.
    let notifier = Notifier::new(
        h.config(&h.topic, "SUCCEEDED,FAILED,STOPPED"),
        h.stack.dynamodb.clone(),
        h.stack.sns.clone(),
        h.stack.codepipeline.clone(),
        h.stack.sqs.clone(),
        Arc::new(SystemClock),
    );
    let (_, event) = event(&pipeline, &execution_id, PipelineState::Succeeded);
    let (_, body) = h.the_one_email(&notifier, event).await;
    assert!(
        body.contains(&format!("\nTrigger        {trigger_id}\n")),
        "{body}"
    );
    assert!(body.contains(&format!(
        "\nRequested at   {}\n",
        rfc3339(started.requested_at)
    )));
    assert!(body.contains(&format!(
        "\nClient key     {}...\n",
        started.client_key.prefix()
    )));
    assert!(!body.contains(CLIENT_IP));

    let status = ingress
        .handle(rest_event(
            "GET",
            &format!("/triggers/{trigger_id}"),
            None,
            CLIENT_IP,
        ))
        .await
        .unwrap();
    assert_eq!(status["statusCode"], 200);
    let view: Value = serde_json::from_str(status["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["execution_id"], execution_id.as_str());
    assert_eq!(view["coalesced"], false);
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None,
        "the terminal event freed the pipeline"
    );
}

#[tokio::test]
async fn outcomes_arriving_late_or_twice_never_regress_the_record() {
    let h = harness().await;
    let execution = unique("exec");
    let trigger_id = started_trigger(&h, &execution).await;
    let now = SystemClock.now_ms();
    let triggers = h.table.triggers();
    let record = |status, at| triggers.record_outcome(&trigger_id, &execution, status, at, now);
    assert!(matches!(
        record(TriggerStatus::Failed, 2_000).await.unwrap(),
        OutcomeRecord::Recorded(r) if r.status == TriggerStatus::Failed
    ));
    // An older change delivered late, and the same one again: kept as it is.
    for (status, at) in [
        (TriggerStatus::Succeeded, 1_000),
        (TriggerStatus::Failed, 2_000),
    ] {
        assert!(matches!(
            record(status, at).await.unwrap(),
            OutcomeRecord::Stale(r) if r.status == TriggerStatus::Failed
        ));
    }
    // A retried execution (RESUMED, then SUCCEEDED) moves on.
    record(TriggerStatus::Started, 3_000).await.unwrap();
    assert!(matches!(
        record(TriggerStatus::Succeeded, 4_000).await.unwrap(),
        OutcomeRecord::Recorded(r) if r.status == TriggerStatus::Succeeded
    ));
    // Another execution's event does not touch this trigger.
    assert_eq!(
        h.table
            .triggers()
            .record_outcome(
                &trigger_id,
                "other-exec",
                TriggerStatus::Stopped,
                9_000,
                now
            )
            .await
            .unwrap(),
        OutcomeRecord::NotFound
    );
    // A worker redelivery recording the same start cannot undo the outcome.
    assert_eq!(
        h.table
            .triggers()
            .record_started(&trigger_id, &execution, now, now / 1000 + 600)
            .await
            .unwrap(),
        StartRecord::Recorded
    );
    let stored = h.stored(&trigger_id).await;
    assert_eq!(stored.status, TriggerStatus::Succeeded);
}

#[tokio::test]
async fn a_state_outside_notify_states_still_records_the_outcome() {
    let h = harness().await;
    let execution = unique("exec");
    let trigger_id = started_trigger(&h, &execution).await;
    let notifier = h.notifier_with(&h.topic, "FAILED", h.stack.codepipeline.clone());
    let (_, event) = event("app", &execution, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::NotNotified { .. }
    ));
    let stored = h.stored(&trigger_id).await;
    assert_eq!(stored.status, TriggerStatus::Succeeded);
    assert!(h.emails().await.is_empty());
}

#[tokio::test]
async fn an_event_that_races_the_workers_record_is_retried_then_recorded_never_dropped() {
    let h = harness().await;
    let pipeline = unique("race");
    let execution = unique("exec");
    let notifier = h.notifier();
    // SUCCEEDED arrives before the worker recorded the start.
    let (_, mut early) = event(&pipeline, &execution, PipelineState::Succeeded);
    early["time"] = rfc3339(h.clock.now_ms()).into();
    let err = notifier.handle(early.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::NotYetRecorded { .. }), "{err}");
    assert!(
        h.emails().await.is_empty(),
        "nothing sent, the claim not taken"
    );
    // The worker records it; EventBridge delivers the event again.
    let ids = started_run(&h, &pipeline, &execution, 2).await;
    h.clock.advance(Duration::from_secs(60));
    assert!(matches!(
        notifier.handle(early).await.unwrap(),
        Outcome::Notified { .. }
    ));
    for id in &ids {
        let view = h.table.triggers().view(id, 0).await.unwrap().unwrap();
        assert_eq!(view.status, TriggerStatus::Succeeded);
    }
    assert_eq!(
        h.table.runs().get_lane(&pipeline).await.unwrap().run_id,
        None
    );
    let emails = h.emails().await;
    assert_eq!(emails.len(), 1);
    assert!(emails[0].1.contains(&ids[0]), "{}", emails[0].1);
}

#[tokio::test]
async fn an_old_event_of_an_execution_nobody_recorded_is_a_run_started_elsewhere() {
    let h = harness().await;
    let (_, mut old) = event(&unique("console"), &unique("exec"), PipelineState::Failed);
    old["time"] = rfc3339(h.clock.now_ms() - notifier::OWNER_WAIT.as_millis() as u64 - 1).into();
    let failure = mock!(aws_sdk_codepipeline::Client::list_action_executions)
        .then_output(|| ListActionExecutionsOutput::builder().build());
    let summary = mock!(aws_sdk_codepipeline::Client::get_pipeline_execution)
        .then_output(|| GetPipelineExecutionOutput::builder().build());
    let codepipeline = mock_client!(
        aws_sdk_codepipeline,
        RuleMode::MatchAny,
        &[&failure, &summary]
    );
    let notifier = h.notifier_with(&h.topic, "SUCCEEDED,FAILED,STOPPED", codepipeline);
    assert!(matches!(
        notifier.handle(old).await.unwrap(),
        Outcome::Notified { .. }
    ));
    let emails = h.emails().await;
    assert!(
        emails[0].1.contains("not a public trigger"),
        "{}",
        emails[0].1
    );
}

/// A push, the console, a schedule: e-mailed at once, however young the
/// event, never an invocation error (the notifier-errors alarm stays quiet).
#[tokio::test]
async fn runs_started_by_a_push_the_console_or_a_schedule_are_emailed_at_once() {
    let h = harness().await;
    let notifier = h.notifier();
    for (trigger_type, detail) in [
        (
            "WebhookV2",
            "arn:aws:codepipeline:eu-west-1:123456789012:webhook:push",
        ),
        (
            "StartPipelineExecution",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
        ),
        (
            "CloudWatchEvent",
            "arn:aws:events:eu-west-1:123456789012:rule/nightly",
        ),
    ] {
        let (_, mut young) = event(
            &unique("outside"),
            &unique("exec"),
            PipelineState::Succeeded,
        );
        young["time"] = rfc3339(h.clock.now_ms()).into();
        started_by(&mut young, trigger_type, detail);
        let outcome = notifier.handle(young).await.expect("never an error");
        assert!(
            matches!(outcome, Outcome::Notified { .. }),
            "{trigger_type}: {outcome:?}"
        );
    }
    let emails = h.emails().await;
    assert_eq!(emails.len(), 3);
    assert!(
        emails
            .iter()
            .all(|(_, body)| body.contains("not a public trigger")),
        "{emails:?}"
    );
}

/// The worker records right after its start: an event a moment ahead of
/// the record finds it within the same invocation.
#[tokio::test]
async fn a_worker_start_recorded_a_moment_later_is_found_within_the_invocation() {
    let h = harness().await;
    let pipeline = unique("moment");
    let execution = unique("exec");
    let (_, mut early) = event(&pipeline, &execution, PipelineState::Succeeded);
    early["time"] = rfc3339(h.clock.now_ms()).into();
    started_by_the_worker(&mut early);
    let notifier = h.notifier();
    let (outcome, ids) = tokio::join!(notifier.handle(early), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        started_run(&h, &pipeline, &execution, 1).await
    });
    assert!(matches!(
        outcome.expect("found in time"),
        Outcome::Notified { .. }
    ));
    let view = h.table.triggers().view(&ids[0], 0).await.unwrap().unwrap();
    assert_eq!(view.status, TriggerStatus::Succeeded);
}

/// An execution the worker started is never taken for someone else's,
/// however old its event: the invocation fails (Lambda retries it, then
/// the events DLQ keeps it for `trigger-ops events replay`).
#[tokio::test]
async fn a_worker_start_never_recorded_fails_however_old_the_event() {
    let h = harness().await;
    let (_, mut old) = event(&unique("lost"), &unique("exec"), PipelineState::Succeeded);
    old["time"] = rfc3339(h.clock.now_ms() - 3 * notifier::OWNER_WAIT.as_millis() as u64).into();
    started_by_the_worker(&mut old);
    let err = h.notifier().handle(old).await.unwrap_err();
    assert!(matches!(err, NotifierError::NotYetRecorded { .. }), "{err}");
    assert!(h.emails().await.is_empty());
}
