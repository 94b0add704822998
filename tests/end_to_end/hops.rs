//! A trigger through every hop: success with one e-mail, a failure that says where and why.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_goes_through_every_hop_and_ends_succeeded_with_one_email() {
    let harness = Harness::start(&[], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 11));

    let accepted = post(&client, &harness, "").await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let id = accepted.body["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    assert_eq!(accepted.body["pipeline"], "app");
    assert_eq!(
        accepted
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some(format!("/triggers/{id}").as_str())
    );

    let status = harness.status_becomes(&client, &id, "succeeded").await;
    let execution = status["execution_id"]
        .as_str()
        .expect("an execution id")
        .to_string();
    assert_eq!(harness.executions(&harness.app).await, 1);
    harness
        .stages_become(
            &client,
            &id,
            &[
                ("Source", "SUCCEEDED"),
                ("Build", "SUCCEEDED"),
                ("Deploy", "SUCCEEDED"),
            ],
        )
        .await;

    eventually("the success e-mail", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    harness.settled().await;
    let emails = harness.emails(&inbox).await;
    let naming: Vec<&(String, String)> = emails
        .iter()
        .filter(|(_, body)| body.contains(&id))
        .collect();
    assert_eq!(
        naming.len(),
        1,
        "exactly one e-mail names the trigger: {emails:#?}"
    );
    let (subject, body) = naming[0];
    assert!(
        subject.contains("SUCCEEDED") && subject.contains(&harness.app),
        "{subject}"
    );
    assert!(body.contains(&execution), "{body}");

    // One line per hop, each naming the trigger; the e-mail printed as on-call reads it.
    let printed = harness.printed();
    for hop in ["gateway", "worker", "pipeline", "notifier"] {
        assert!(
            printed.lines().any(|l| l.contains(&id) && l.contains(hop)),
            "no {hop} line for {id}:\n{printed}"
        );
    }
    assert!(
        printed.contains(&format!("| Subject: {subject}")),
        "{printed}"
    );
    // Each hop published its metric as an EMF line (no API call).
    let metrics = harness.metrics();
    for (function, metric, dimension) in [
        ("ingress", "Accepted", None),
        ("worker", "RunsStarted", None),
        ("notifier", "Emails", Some(("State", "SUCCEEDED"))),
    ] {
        assert!(
            metrics.iter().any(|m| m["Function"] == function
                && m[metric] == 1
                && dimension.is_none_or(|(name, value)| m[name] == value)),
            "no {metric} from the {function}: {metrics:#?}"
        );
    }
    harness.stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pipeline_ends_failed_and_the_email_leads_with_stage_and_reason() {
    let harness = Harness::start(&[], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 12));

    let accepted = post(&client, &harness, r#"{"pipeline":"broken"}"#).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let id = accepted.body["trigger_id"]
        .as_str()
        .expect("a trigger id")
        .to_string();
    harness.status_becomes(&client, &id, "failed").await;
    // The stages stop at the failed one.
    harness
        .stages_become(
            &client,
            &id,
            &[("Source", "SUCCEEDED"), (FAILED_STAGE, "FAILED")],
        )
        .await;
    // Operators see the same stages.
    let shown = ops_output(&harness, "unused-secret-of-16+", &["triggers", "show", &id])
        .await
        .expect("triggers show");
    let stage_lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("stage ")).collect();
    assert_eq!(stage_lines.len(), 2, "{shown}");
    assert!(
        stage_lines[0].contains("Source") && stage_lines[0].contains("SUCCEEDED"),
        "{shown}"
    );
    assert!(
        stage_lines[1].contains(FAILED_STAGE) && stage_lines[1].contains("FAILED"),
        "{shown}"
    );

    let emails = eventually("the failure e-mail", || async {
        let emails = harness.emails(&inbox).await;
        (!emails.is_empty()).then_some(emails)
    })
    .await;
    assert_eq!(emails.len(), 1, "{emails:#?}");
    let (subject, body) = &emails[0];
    assert!(
        subject.contains("FAILED") && subject.contains(&harness.broken),
        "{subject}"
    );
    let lines: Vec<&str> = body.lines().filter(|l| !l.trim().is_empty()).collect();
    // The headline, then the failed stage and the reason, before the rest.
    assert!(
        lines[1].starts_with("Failed stage") && lines[1].contains(FAILED_STAGE),
        "{body}"
    );
    let reason = lines
        .iter()
        .position(|l| l.contains(FAILED_MESSAGE))
        .expect("the reason");
    let details = lines
        .iter()
        .position(|l| l.starts_with("State "))
        .expect("the state line");
    assert!(
        reason < details,
        "the reason comes before the details:\n{body}"
    );
    assert!(body.contains(&id), "{body}");
    harness.stack.stop().await;
}

/// Runs started by a push (not the worker) beside public triggers: each
/// e-mailed at once as not a public trigger's, and the notifier never
/// fails an invocation for them (its errors alarm stays quiet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_runs_beside_public_triggers_are_emailed_and_cost_no_notifier_error() {
    let harness =
        Harness::start_named(&unique("e2e-push"), &[], None, Duration::from_secs(1)).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 6, 1));
    let accepted = post(&client, &harness, "").await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    for _ in 0..2 {
        harness
            .stack
            .push(&harness.app)
            .await
            .expect("a pushed run");
    }
    let id = accepted.body["trigger_id"].as_str().unwrap().to_string();
    harness.status_becomes(&client, &id, "succeeded").await;
    let emails = eventually("three e-mails", || async {
        let emails = harness.emails(&inbox).await;
        (emails.len() >= 3).then_some(emails)
    })
    .await;
    harness.settled().await;
    assert_eq!(emails.len(), 3, "{emails:#?}");
    let outside = emails
        .iter()
        .filter(|(_, body)| body.contains("not a public trigger"))
        .count();
    assert_eq!(outside, 2, "{emails:#?}");
    let printed = harness.printed();
    let failures: Vec<&str> = printed
        .lines()
        .filter(|l| l.contains("notifier") && l.contains("failed ("))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    harness.stack.stop().await;
}
