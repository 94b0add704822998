//! One e-mail per outcome: subjects, duplicates, NOTIFY_STATES, a failed publish, claims.

use crate::harness::*;

#[tokio::test]
async fn one_email_per_outcome_with_subject_and_body() {
    let h = harness().await;
    let notifier = h.notifier();
    for state in [
        PipelineState::Succeeded,
        PipelineState::Failed,
        PipelineState::Stopped,
    ] {
        let (id, event) = event("enterprise-app-pipeline", EXECUTION, state);
        let outcome = notifier.handle(event).await.expect("notified");
        assert!(
            matches!(&outcome, Outcome::Notified { event_id, message_id } if *event_id == id && !message_id.is_empty()),
            "{outcome:?}"
        );
        let emails = h.emails().await;
        assert_eq!(emails.len(), 1, "{state:?}: {emails:?}");
        let (subject, body) = &emails[0];
        assert_eq!(
            subject,
            &format!(
                "[{}] enterprise-app-pipeline - execution 1a2b3c4d",
                state.as_str()
            )
        );
        assert!(body.contains(&format!("\nState          {}\n", state.as_str())));
        assert!(body.contains(&format!("\nExecution      {EXECUTION}\n")));
        assert!(body.contains("\nDuration       4m 12s\n"));
        assert!(body.contains(&format!(
            "https://{REGION}.console.aws.amazon.com/codesuite/codepipeline/pipelines/enterprise-app-pipeline/executions/{EXECUTION}/timeline?region={REGION}"
        )));
        assert!(body.contains("Started by     not a public trigger"));
        if state == PipelineState::Failed {
            // moto has no ListActionExecutions: the e-mail still goes, saying so.
            assert!(
                body.contains("Reason         unavailable (ListActionExecutions"),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn the_same_event_twice_sends_one_email() {
    let h = harness().await;
    let notifier = h.notifier();
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event.clone()).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert_eq!(
        notifier.handle(event.clone()).await.unwrap(),
        Outcome::Duplicate { event_id: id }
    );
    // Even a second notifier (another concurrent Lambda) sends nothing more.
    let other = h.notifier();
    assert!(matches!(
        other.handle(event).await.unwrap(),
        Outcome::Duplicate { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
}

#[tokio::test]
async fn states_outside_notify_states_and_other_events_send_nothing() {
    let h = harness().await;
    let notifier = h.notifier();
    let (_, started) = event("app", EXECUTION, PipelineState::Started);
    assert!(matches!(
        notifier.handle(started).await.unwrap(),
        Outcome::NotNotified { state, .. } if state == "STARTED"
    ));
    let (_, mut stage) = event("app", EXECUTION, PipelineState::Failed);
    stage["detail-type"] = "CodePipeline Stage Execution State Change".into();
    let (_, mut unknown) = event("app", EXECUTION, PipelineState::Failed);
    unknown["detail"]["state"] = "PAUSED".into();
    let (_, mut hostile) = event("app", EXECUTION, PipelineState::Failed);
    hostile["detail"]["pipeline"] = "app\r\nBcc: everyone@example.com".into();
    let huge = json!({"source": "aws.codepipeline", "detail-type": "CodePipeline Pipeline Execution State Change",
                      "id": "x".repeat(300_000), "detail": {"pad": "y".repeat(300_000)}});
    for payload in [
        stage,
        unknown,
        hostile,
        huge,
        json!(null),
        json!("text"),
        json!([1]),
        json!({}),
    ] {
        let outcome = notifier.handle(payload).await.expect("acknowledged");
        assert!(matches!(outcome, Outcome::Ignored { .. }), "{outcome:?}");
    }
    assert!(h.emails().await.is_empty());
    // Nothing was claimed either.
    assert!(h
        .stack
        .scan_items()
        .await
        .iter()
        .all(|item| !item["pk"].as_s().unwrap().starts_with("event#")));
}

#[tokio::test]
async fn a_100_character_pipeline_name_gets_a_subject_sns_accepts() {
    let h = harness().await;
    let name = "p".repeat(100);
    let (_, event) = event(&name, EXECUTION, PipelineState::Superseded);
    let notifier = h.notifier_with(&h.topic, "SUPERSEDED", h.stack.codepipeline.clone());
    let (subject, body) = h.the_one_email(&notifier, event).await;
    assert!(subject.len() <= 100, "{}", subject.len());
    assert!(
        subject.starts_with("[SUPERSEDED] ppp") && subject.ends_with("... - execution 1a2b3c4d")
    );
    // The body keeps the whole name.
    assert!(body.contains(&format!("\nPipeline       {name}\n")));
}

#[tokio::test]
async fn a_failed_publish_fails_the_invocation_and_the_retry_sends_exactly_one() {
    let h = harness().await;
    let missing = format!("arn:aws:sns:{REGION}:123456789012:{}", unique("missing"));
    let broken = h.notifier_with(
        &missing,
        "SUCCEEDED,FAILED,STOPPED",
        h.stack.codepipeline.clone(),
    );
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    let err = broken.handle(event.clone()).await.unwrap_err();
    assert!(matches!(err, NotifierError::Publish(_)), "{err}");
    assert!(err.to_string().contains(&missing));
    // The claim was released: no event item is left to block the retry.
    let items = h.stack.scan_items().await;
    assert!(items
        .iter()
        .all(|item| item["pk"].as_s().unwrap() != &format!("event#{id}")));
    // Lambda retries the invocation (here: with the topic fixed).
    let fixed = h.notifier();
    assert!(matches!(
        fixed.handle(event.clone()).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert!(matches!(
        fixed.handle(event).await.unwrap(),
        Outcome::Duplicate { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_table_fails_the_invocation_before_any_email() {
    let h = harness().await;
    let dead = aws::dynamodb(
        &testkit::sdk_config_at(&testkit::dead_endpoint()).await,
        &h.stack.calls,
    );
    let notifier = Notifier::new(
        h.config(&h.topic, "SUCCEEDED"),
        dead,
        h.stack.sns.clone(),
        h.stack.codepipeline.clone(),
        h.stack.sqs.clone(),
        h.clock.clone(),
    );
    let (_, event) = event("app", EXECUTION, PipelineState::Succeeded);
    assert!(matches!(
        notifier.handle(event).await,
        Err(NotifierError::Table(_))
    ));
    assert!(h.emails().await.is_empty());
}

#[tokio::test]
async fn a_live_claim_elsewhere_defers_and_a_lapsed_one_is_taken_over() {
    let h = harness().await;
    let (id, event) = event("app", EXECUTION, PipelineState::Succeeded);
    let now = h.clock.now_ms();
    // Another invocation claimed the event and then crashed before publishing.
    assert_eq!(
        h.table
            .claims()
            .claim(&id, "crashed", now, notifier::CLAIM_LEASE, now / 1000 + 60)
            .await
            .unwrap(),
        Claim::Claimed
    );
    let notifier = h.notifier();
    let err = notifier.handle(event.clone()).await.unwrap_err();
    assert!(
        matches!(err, NotifierError::ClaimedElsewhere { .. }),
        "{err}"
    );
    assert!(h.emails().await.is_empty());
    // Its claim cannot be released or completed by anyone else.
    assert!(!h.table.claims().release(&id, "someone-else").await.unwrap());
    h.clock
        .advance(notifier::CLAIM_LEASE + Duration::from_millis(1));
    assert!(matches!(
        notifier.handle(event).await.unwrap(),
        Outcome::Notified { .. }
    ));
    assert_eq!(h.emails().await.len(), 1);
    // The crashed holder's late completion cannot overwrite the new claim.
    assert!(h
        .table
        .claims()
        .mark_sent(&id, "crashed", "m-1", now / 1000 + 60)
        .await
        .is_err());
}
