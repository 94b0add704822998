//! Typed inputs reach CodePipeline as variables, one run per input set.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_with_inputs_start_runs_with_those_variables() {
    let settings = r#"{"app": {"inputs": {
        "environment": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
        "branch": {"type": "string", "pattern": "[a-z0-9/-]{1,40}"}
    }}}"#;
    let harness = Harness::start(&[("PIPELINE_SETTINGS", settings)], None).await;
    let inbox = harness.inbox().await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 17));

    let catalog = send(&client, "GET", &harness.url("/pipelines"), "").await;
    assert_eq!(catalog.status, 200);
    assert_eq!(
        catalog.body["pipelines"][0]["inputs"]["branch"]["type"],
        "string"
    );

    let refused = post(
        &client,
        &harness,
        r#"{"inputs": {"branch": "Main; reboot"}}"#,
    )
    .await;
    assert_eq!(refused.status, 400, "{:?}", refused.body);
    assert_eq!(refused.body["errors"][0]["input"], "branch");

    let mut runs = Vec::new();
    for body in [
        r#"{"inputs": {"branch": "main"}}"#,
        r#"{"pipeline": "app", "inputs": {"branch": "feature/x", "environment": "production"}}"#,
    ] {
        let accepted = post(&client, &harness, body).await;
        assert_eq!(accepted.status, 202, "{:?}", accepted.body);
        runs.push((
            accepted.body["trigger_id"].as_str().unwrap().to_string(),
            accepted.body["inputs"].clone(),
        ));
    }
    let mut executions = Vec::new();
    for (id, inputs) in &runs {
        let status = harness.status_becomes(&client, id, "succeeded").await;
        assert_eq!(&status["inputs"], inputs);
        let execution = status["execution_id"].as_str().unwrap().to_string();
        let expected: Vec<(String, String)> = inputs
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        assert_eq!(
            testkit::execution_variables(&harness.codepipeline, &harness.app, &execution).await,
            expected
        );
        executions.push(execution);
    }
    assert_ne!(executions[0], executions[1], "two input sets, two runs");
    assert_eq!(harness.executions(&harness.app).await, 2);

    let seen = std::sync::Mutex::new(Vec::new());
    let body = eventually("the e-mail of the second trigger", || async {
        let arrived = harness.emails(&inbox).await;
        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen = arrived;
        seen.iter()
            .find(|(_, body)| body.contains(&runs[1].0))
            .map(|(_, body)| body.clone())
    })
    .await;
    assert!(
        body.lines()
            .any(|l| l.starts_with("Input branch") && l.ends_with("feature/x")),
        "{body}"
    );
    assert!(
        body.lines()
            .any(|l| l.starts_with("Input environment") && l.ends_with("production")),
        "{body}"
    );
    let printed = harness.printed();
    assert!(
        printed.contains("variables: branch=feature/x, environment=production"),
        "{printed}"
    );
    harness.stack.stop().await;
}
