//! The pure hot paths, per call: reading an API Gateway event, the client
//! key, deciding the quota, checking a request's inputs, shaping the 202,
//! rendering a failure e-mail, and matching an address against network
//! groups.
//! `cargo bench -p shared --bench hot_paths` (scripts/bench runs it).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shared::rules::client_key::client_key;
use shared::rules::email::{render, FailedAction, FailureDetails};
use shared::rules::http::event::parse_event;
use shared::rules::http::response::LimitItem;
use shared::rules::http::trigger_api::{accepted_response, parse_trigger_body};
use shared::rules::inputs::Inputs;
use shared::rules::message::WorkMessage;
use shared::rules::network_groups::{Matcher, Ranges};
use shared::rules::pipeline_event::{parse_event as parse_state_change, state_change_event};
use shared::rules::quota::QuotaPolicy;
use shared::rules::status::PipelineState;
use std::hint::black_box;
use std::time::Duration;
use testkit::events::{api_gateway_event, GatewayRequest};

const NOW: u64 = 1_795_000_000_000;

/// The ingress's path: the event, the client key, the quota, the inputs.
fn hot_paths(c: &mut Criterion) {
    let event = api_gateway_event(&GatewayRequest {
        method: "POST",
        stage: None,
        path: "/trigger",
        query: None,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("user-agent".into(), "curl/8.5.0".into()),
        ],
        body: br#"{"pipeline":"app"}"#,
        source_ip: "203.0.113.7",
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
    });
    c.bench_function("parse API Gateway event + body", |b| {
        b.iter(|| {
            let request = parse_event(black_box(&event)).expect("an event");
            let body = request.body_bytes().expect("a body");
            parse_trigger_body(&body).expect("a body")
        })
    });
    c.bench_function("client key (HMAC-SHA256 of the address)", |b| {
        b.iter(|| client_key(black_box(b"0123456789abcdef"), black_box("2001:db8::1")))
    });
    let policy = QuotaPolicy {
        limit: 3,
        window: Duration::from_secs(7 * 86_400),
    };
    let slots = [NOW - 3_600_000, NOW - 60_000, 0];
    c.bench_function("decide the quota (3 per 7 days)", |b| {
        b.iter(|| policy.decide(black_box(&slots), black_box(NOW)))
    });
    // Input values are checked against their patterns (regex-lite: a
    // linear-time matcher without a DFA) after the length limit: the longest
    // value a pattern can be asked about is 1000 characters.
    let inputs = Inputs::parse(&serde_json::json!({
        "branch": {"type": "string", "pattern": "[a-z0-9][a-z0-9/._-]{0,999}"},
        "words": {"type": "string", "pattern": "([a-z]+-)*[a-z]+"},
        "env": {"type": "choice", "options": ["staging", "production"]},
    }))
    .expect("valid declarations");
    let longest = "ab-".repeat(333) + "a";
    c.bench_function("check inputs (two 1000-character values + a choice)", |b| {
        let given = serde_json::json!({"branch": longest, "words": longest, "env": "staging"});
        b.iter(|| {
            inputs
                .resolve(Some(black_box(&given)))
                .expect("valid values")
        })
    });
    accepted_202(c, &policy, &slots);
}

/// Shaping the 202 of an accepted trigger.
fn accepted_202(c: &mut Criterion, policy: &QuotaPolicy, slots: &[u64]) {
    let status = policy.status(slots, NOW);
    let record = shared::rules::trigger::TriggerRecord::queued(
        "01M7YF4J7YB11KS24RQ2ZCHF1Q".into(),
        "app",
        "app-pipeline",
        shared::rules::client_key::client_key(b"0123456789abcdef", "192.0.2.1")
            .expect("an address"),
        Default::default(),
        NOW,
        NOW / 1000 + 86_400,
    );
    c.bench_function("shape the 202 response", |b| {
        b.iter(|| {
            accepted_response(
                "/prod",
                black_box(&record),
                &status,
                &[LimitItem::of("client", policy, &status)],
                NOW,
            )
            .to_apigw()
        })
    });
}

/// The notifier's path: a state change read, the failure e-mail rendered.
fn notifier_paths(c: &mut Criterion) {
    // A failure as EventBridge delivers it, with the start time and the
    // worker's role as its starter, as real events carry them.
    let state_change = serde_json::json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "CodePipeline Pipeline Execution State Change",
        "source": "aws.codepipeline",
        "account": "123456789012",
        "time": "2026-11-21T10:04:12Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:codepipeline:eu-west-1:123456789012:enterprise-app-pipeline"],
        "detail": {
            "pipeline": "enterprise-app-pipeline",
            "execution-id": "1a2b3c4d-1111-2222-3333-444455556666",
            "start-time": "2026-11-21T10:00:00.000Z",
            "execution-trigger": {
                "trigger-type": "StartPipelineExecution",
                "trigger-detail": "arn:aws:sts::123456789012:assumed-role/pipeline-trigger-worker/worker"
            },
            "state": "FAILED",
            "version": 3.0
        }
    });
    let parsed = parse_state_change(&state_change).expect("an event");
    let failure = FailureDetails {
        actions: vec![FailedAction {
            stage: "Build".into(),
            action: "Build".into(),
            code: Some("JobFailed".into()),
            message: Some("Build failed: exit status 2".into()),
            url: Some("https://console.aws.amazon.com/codebuild/".into()),
        }],
        summary: Some("Stage Build failed".into()),
        unavailable: vec![],
    };
    c.bench_function("parse a state change + render the failure e-mail", |b| {
        b.iter(|| {
            let event = parse_state_change(black_box(&state_change)).expect("an event");
            render(&event, None, Some(black_box(&failure)))
        })
    });
    c.bench_function("render the failure e-mail", |b| {
        b.iter(|| render(black_box(&parsed), None, Some(&failure)))
    });
}

/// Parse time against input size: each parser of outside input at 1, 8 and
/// 64 KiB. Linear parsing shows as a flat time per byte across the sizes.
fn parse_scaling(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse scaling");
    for kib in [1usize, 8, 64] {
        let size = kib * 1024;
        group.throughput(Throughput::Bytes(size as u64));
        let body = format!("{{\"pipeline\": \"{}\"}}", "a".repeat(size));
        let event = api_gateway_event(&GatewayRequest {
            method: "POST",
            stage: None,
            path: "/trigger",
            body: body.as_bytes(),
            source_ip: "203.0.113.9",
            request_id: "r-1",
            ..GatewayRequest::default()
        });
        group.bench_with_input(
            BenchmarkId::new("API Gateway event + body", kib),
            &event,
            |b, event| {
                b.iter(|| {
                    let request = parse_event(black_box(event)).expect("an event");
                    // The body limit refuses the larger ones; reading them is what counts.
                    let _ = request.body_bytes().map(|bytes| parse_trigger_body(&bytes));
                })
            },
        );
        let message = format!(
            "{{\"version\": 1, \"trigger_id\": \"{}\", \"pipeline\": \"p\", \"requested_at\": \"x\", \"client_key\": \"k\"}}",
            "0".repeat(size)
        );
        group.bench_with_input(
            BenchmarkId::new("work message", kib),
            &message,
            |b, message| b.iter(|| WorkMessage::parse(black_box(message))),
        );
        let state_change = state_change_event(
            &"e".repeat(size),
            "eu-west-1",
            "123456789012",
            "app",
            "x",
            PipelineState::Failed,
            "2026-11-21T10:04:12Z",
        );
        group.bench_with_input(
            BenchmarkId::new("state change", kib),
            &state_change,
            |b, event| b.iter(|| parse_state_change(black_box(event))),
        );
    }
    group.finish();
}

/// What the ingress does with network groups: match an address (every
/// anonymous trigger), and build the matcher from the stored pieces (the
/// first trigger after an import, once a minute at most).
fn network_groups(c: &mut Criterion) {
    let groups = testkit::clouds::cloud_sized_groups(&[]);
    let matcher = Matcher::new(&groups);
    let addresses: Vec<std::net::IpAddr> = [
        "203.0.113.7",
        "52.94.76.9",
        "35.160.4.1",
        "2600:1f14:8::1",
        "2001:db8::1",
        "::ffff:198.51.100.7",
    ]
    .iter()
    .map(|a| a.parse().expect("an address"))
    .collect();
    c.bench_function(
        "match an address against 3 cloud-sized groups (12,900 networks)",
        |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % addresses.len();
                matcher.groups_of(black_box(addresses[i]))
            })
        },
    );
    let stored: Vec<(String, Vec<Vec<u8>>)> = groups
        .iter()
        .map(|(name, ranges)| (name.clone(), ranges.encode(350_000)))
        .collect();
    c.bench_function(
        "read 3 cloud-sized groups back and build their matcher",
        |b| {
            b.iter(|| {
                let read: std::collections::BTreeMap<String, Ranges> = stored
                    .iter()
                    .map(|(name, pieces)| {
                        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
                        (
                            name.clone(),
                            Ranges::decode(black_box(&refs)).expect("stored ranges"),
                        )
                    })
                    .collect();
                Matcher::new(&read)
            })
        },
    );
}

criterion_group!(
    benches,
    hot_paths,
    notifier_paths,
    parse_scaling,
    network_groups
);
criterion_main!(benches);
