//! Property tests of every parser of outside input: the API Gateway event
//! and its body, the work-queue message, the EventBridge state change, the
//! client address and the configuration variables. Arbitrary bytes,
//! arbitrary JSON and near-valid shapes with hostile fields never panic, and
//! what is accepted keeps the invariants the rest of the system relies on.
//!
//! `scripts/test` runs 256 cases per property (`PROPTEST_CASES`); a longer
//! run: `PROPTEST_CASES=100000 cargo test -p shared --test parsers`.
//! That parsing stays linear in the input is measured, not asserted: see the
//! "parse scaling" group of `shared/benches/hot_paths.rs`.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shared::config::{Env, IngressConfig, NotifierConfig, WorkerConfig, VARIABLES};
use shared::rules::client_key::client_key;
use shared::rules::http::event::parse_event;
use shared::rules::http::response::{ApiError, MAX_BODY_BYTES};
use shared::rules::http::trigger_api::{parse_trigger_body, route};
use shared::rules::inputs::{InputValue, Inputs};
use shared::rules::message::{WorkMessage, MESSAGE_VERSION};
use shared::rules::pipeline_event::{self, state_change_event};
use shared::rules::pipelines::is_valid_pipeline_name;
use shared::rules::status::PipelineState;
use shared::rules::trigger::canonical_trigger_id;

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
        hostile_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names the parsers look for, and others.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "version",
            "httpMethod",
            "path",
            "rawPath",
            "body",
            "isBase64Encoded",
            "requestContext",
            "identity",
            "sourceIp",
            "http",
            "method",
            "stage",
            "id",
            "source",
            "detail-type",
            "detail",
            "pipeline",
            "execution-id",
            "state",
            "region",
            "time",
            "trigger_id",
            "client_key",
            "requested_at",
        ])
        .prop_map(str::to_string),
        "[a-z]{1,8}",
    ]
}

/// Text built to hurt: control characters, separators, path tricks,
/// Unicode, very long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[/.%\\\\:@?#&=\r\n\t\u{0}\u{202e}a-z0-9{}\"'<> -]{0,64}",
        (0usize..5000).prop_map(|n| "a".repeat(n)),
        Just("//evil.example".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("test-invoke-source-ip".to_string()),
        Just("::ffff:203.0.113.9".to_string()),
    ]
}

/// A REST (v1) or HTTP API (v2) event whose fields are arbitrary.
fn gateway_event() -> impl Strategy<Value = Value> {
    let fields = (
        prop_oneof![
            hostile_text(),
            prop::sample::select(vec!["POST".to_string(), "GET".into(), "get".into()])
        ],
        prop_oneof![hostile_text(), "/(prod/)?trigger(s/[0-9A-Za-z]{0,30})?/?"],
        prop::option::of(prop_oneof![
            hostile_text(),
            "\\{\"pipeline\": \"[a-z]{0,8}\"\\}"
        ]),
        any::<bool>(),
        hostile_text(),
        hostile_text(),
        hostile_text(),
    );
    (any::<bool>(), fields).prop_map(
        |(v2, (method, path, body, base64, ip, stage, addressed))| {
            if v2 {
                json!({"version": "2.0", "rawPath": path, "body": body, "isBase64Encoded": base64,
                       "requestContext": {"stage": stage, "http": {"method": method, "sourceIp": ip}}})
            } else {
                json!({"httpMethod": method, "path": path, "body": body, "isBase64Encoded": base64,
                       "headers": null,
                       "requestContext": {"stage": stage, "path": addressed, "identity": {"sourceIp": ip}}})
            }
        },
    )
}

/// Everything the ingress does with an event before any I/O.
fn read_request(event: &Value) {
    let Ok(request) = parse_event(event) else {
        return;
    };
    let base = &request.base_path;
    assert!(
        base.is_empty() || (base.starts_with('/') && !base.starts_with("//")),
        "{base:?}"
    );
    assert!(!base.bytes().any(|b| b.is_ascii_control()), "{base:?}");
    let _ = route(&request.method, &request.path);
    match request.body_bytes() {
        Ok(bytes) => {
            assert!(bytes.len() <= MAX_BODY_BYTES);
            if let Ok(request) = parse_trigger_body(&bytes) {
                assert!(request.pipeline.is_none_or(|name| !name.is_empty()));
            }
        }
        Err(e) => assert!((400..500).contains(&e.status()), "{e:?}"),
    }
    if let Some(ip) = &request.source_ip {
        let _ = client_key(b"a-secret-of-sixteen-bytes", ip);
    }
}

/// The inputs of a pipeline with one of each type.
fn declared_inputs() -> Inputs {
    Inputs::parse(&json!({
        "env": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
        "dry_run": {"type": "boolean"},
        "replicas": {"type": "number", "min": 1, "max": 10, "integer": true, "default": 1},
        "branch": {"type": "string", "pattern": "[a-z0-9/-]{1,63}", "max_length": 63},
    }))
    .expect("valid declarations")
}

/// Values near what the inputs take, and far from it.
fn input_values() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        any_json(),
        prop::sample::select(vec![
            json!("staging"),
            json!("production"),
            json!(true),
            json!(false),
            json!(3),
            json!(3.5),
            json!(0),
            json!(11),
            json!("main"),
            json!("feature/x")
        ]),
    ];
    prop::collection::btree_map(
        prop_oneof![
            prop::sample::select(vec!["env", "dry_run", "replicas", "branch"])
                .prop_map(str::to_string),
            "[a-z_]{1,8}",
        ],
        value,
        0..6,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    /// Any `inputs` gives every declared value, each of its type and within
    /// its bounds, or a 400 that lists errors, each naming an input.
    #[test]
    fn any_inputs_resolve_fully_or_list_their_errors(given in prop_oneof![input_values(), any_json()]) {
        let inputs = declared_inputs();
        match inputs.resolve(Some(&given)) {
            Ok(values) => {
                let names: Vec<&str> = values.keys().map(String::as_str).collect();
                prop_assert_eq!(names, ["branch", "dry_run", "env", "replicas"]);
                prop_assert!(matches!(&values["env"], InputValue::Text(t) if t == "staging" || t == "production"));
                prop_assert!(matches!(values["dry_run"], InputValue::Bool(_)));
                let replicas = values["replicas"].variable_value();
                prop_assert!(replicas.parse::<u8>().is_ok_and(|n| (1..=10).contains(&n)), "{}", replicas);
                let branch = values["branch"].variable_value();
                prop_assert!(!branch.is_empty() && branch.len() <= 63);
                prop_assert!(branch.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'/' || b == b'-'));
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                let response = ApiError::InvalidInputs(errors.clone()).to_response();
                prop_assert_eq!(response.status, 400);
                let body: Value = serde_json::from_str(&response.body).expect("problem+json");
                prop_assert_eq!(body["errors"].as_array().map(Vec::len), Some(errors.len()));
                for error in &errors {
                    prop_assert!(error.input.chars().count() <= 128);
                    prop_assert!(!error.detail.is_empty());
                }
            }
        }
    }

    #[test]
    fn any_json_is_an_event_or_refused(event in any_json()) {
        read_request(&event);
    }

    #[test]
    fn gateway_events_with_hostile_fields_never_panic(event in gateway_event()) {
        read_request(&event);
    }

    #[test]
    fn any_body_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(request) = parse_trigger_body(&bytes) {
            prop_assert!(request.pipeline.is_none_or(|name| !name.is_empty()));
        }
    }

    #[test]
    fn any_json_body_is_read_or_refused(body in any_json()) {
        let _ = parse_trigger_body(body.to_string().as_bytes());
    }

    #[test]
    fn any_client_address_is_keyed_or_refused(ip in hostile_text()) {
        if let Ok(key) = client_key(b"a-secret-of-sixteen-bytes", &ip) {
            prop_assert_eq!(key.as_str().len(), 64);
            prop_assert!(key.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn any_text_is_a_work_message_or_refused(body in any::<String>()) {
        let _ = WorkMessage::parse(&body);
    }

    #[test]
    fn any_json_is_a_work_message_or_refused(body in any_json()) {
        if let Ok(message) = WorkMessage::parse(&body.to_string()) {
            prop_assert!(!message.trigger_id.is_empty() && !message.pipeline.is_empty());
        }
    }

    #[test]
    fn messages_with_hostile_fields_round_trip_or_are_refused(
        trigger_id in hostile_text(),
        pipeline in hostile_text(),
        requested_at in hostile_text(),
        client_key in hostile_text(),
    ) {
        let message = WorkMessage {
            version: MESSAGE_VERSION,
            trigger_id,
            pipeline,
            requested_at,
            client_key,
            inputs: None,
            unsettled: false,
        };
        match WorkMessage::parse(&message.to_json()) {
            Ok(parsed) => prop_assert_eq!(&parsed, &message),
            Err(_) => prop_assert!(message.trigger_id.is_empty() || message.pipeline.is_empty()),
        }
        if let Some(id) = canonical_trigger_id(&message.trigger_id) {
            prop_assert_eq!(id.len(), 26);
        }
    }

    #[test]
    fn any_json_is_a_state_change_or_refused(event in any_json()) {
        let _ = pipeline_event::parse_event(&event);
        let _ = pipeline_event::parse_codepipeline_event(&event);
    }

    #[test]
    fn stage_changes_with_hostile_fields_are_safe_when_accepted(
        stage in prop_oneof![hostile_text(), "[A-Za-z0-9.@_-]{1,100}"],
        execution in prop_oneof![hostile_text(), "[a-f0-9-]{36}"],
        state in prop::sample::select(PipelineState::ALL.to_vec()),
    ) {
        let detail = pipeline_event::stage_change_detail("app-pipeline", &execution, &stage, state);
        let event = pipeline_event::stage_change_event(
            "7b7e8feb-b491-4cf7-a9f1-bf3703467718", "eu-west-1", "123456789012", detail, "2026-11-21T10:04:12Z",
        );
        if let Ok(pipeline_event::CodePipelineEvent::Stage(parsed)) = pipeline_event::parse_codepipeline_event(&event) {
            // What ends up in table attribute names and on a public page is plain.
            prop_assert!(parsed.stage.bytes().all(|b| b.is_ascii_alphanumeric() || b".@_-".contains(&b)), "{:?}", parsed.stage);
            prop_assert!(!parsed.stage.is_empty() && parsed.stage.len() <= 100);
            prop_assert_eq!(parsed.state, state);
        } else {
            // Only a bad stage name or execution id is refused.
            let execution_ok = (1..=128).contains(&execution.len())
                && execution.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            prop_assert!(!(shared::rules::stages::is_valid_stage_name(&stage) && execution_ok));
        }
    }

    #[test]
    fn state_changes_with_hostile_fields_are_safe_when_accepted(
        id in prop_oneof![hostile_text(), "[a-f0-9-]{36}"],
        region in prop_oneof![hostile_text(), "[a-z]{2}-[a-z]{4,7}-[0-9]"],
        pipeline in prop_oneof![hostile_text(), "[A-Za-z0-9.@_-]{1,100}"],
        execution in prop_oneof![hostile_text(), "[a-f0-9-]{36}"],
        state in prop::sample::select(PipelineState::ALL.to_vec()),
        time in prop_oneof![hostile_text(), Just("2026-11-21T10:04:12Z".to_string())],
    ) {
        let event = state_change_event(&id, &region, "123456789012", &pipeline, &execution, state, &time);
        if let Ok(parsed) = pipeline_event::parse_event(&event) {
            // What ends up in a subject, a URL and table keys is plain.
            prop_assert!(is_valid_pipeline_name(&parsed.pipeline));
            for field in [&parsed.event_id, &parsed.execution_id, &parsed.region] {
                prop_assert!(field.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{:?}", field);
            }
            prop_assert_eq!(parsed.state, state);
        }
    }

    #[test]
    fn any_configuration_loads_or_names_its_variable(
        values in prop::collection::vec(prop::option::of(hostile_text()), VARIABLES.len()),
    ) {
        let pairs: Vec<(&str, &str)> = VARIABLES
            .iter()
            .zip(&values)
            .filter_map(|(variable, value)| value.as_deref().map(|v| (variable.name, v)))
            .collect();
        let env = Env::from_pairs(pairs);
        let names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        let errors = [
            IngressConfig::from_env(&env).err(),
            WorkerConfig::from_env(&env).err(),
            NotifierConfig::from_env(&env).err(),
        ];
        for error in errors.into_iter().flatten() {
            let text = error.to_string();
            prop_assert!(names.iter().any(|name| text.contains(name)), "{}", text);
        }
    }
}
