//! The ingress handler end to end against the moto emulator: real DynamoDB
//! transactions, real SQS messages, API Gateway events as Lambda delivers them.

mod common;

use common::*;
use ingress::Ingress;
use serde_json::{json, Value};
use shared::aws::queue::WorkQueue;
use shared::aws::table::Table;
use shared::aws::CallCounter;
use shared::clock::Clock;
use shared::config::{Env, IngressConfig};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn accepts_up_to_the_limit_then_refuses_with_retry_after() {
    let h = harness(&[]).await;
    let mut ids = Vec::new();
    for remaining in [2, 1, 0] {
        h.clock.advance(Duration::from_secs(60));
        let r = h.post(None, CLIENT_IP).await;
        assert_eq!(r.status, 202, "{}", r.body);
        assert_eq!(r.body["status"], "queued");
        assert_eq!(r.body["pipeline"], "app");
        assert_eq!(r.body["quota"]["limit"], 3);
        assert_eq!(r.body["quota"]["remaining"], remaining);
        let id = r.body["trigger_id"].as_str().unwrap().to_string();
        assert_eq!(r.body["status_url"], format!("/triggers/{id}"));
        assert_eq!(r.headers["Location"], format!("/triggers/{id}"));
        assert_eq!(r.headers["RateLimit-Policy"], "\"client\";q=3;w=604800");
        ids.push(id);
    }
    // The first slot frees 7 days after the first acceptance, 2 minutes ago.
    let r = h.post(None, CLIENT_IP).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["Content-Type"], "application/problem+json");
    let expected_wait = 7 * 86_400 - 120;
    assert_eq!(r.headers["Retry-After"], expected_wait.to_string());
    assert_eq!(
        r.headers["RateLimit"],
        format!("\"client\";r=0;t={expected_wait}")
    );
    assert_eq!(r.body["retry_after_seconds"], expected_wait);
    assert_eq!(r.body["status"], 429);

    let messages = h.queued().await;
    assert_eq!(messages.len(), 3);
    for (message, id) in messages.iter().zip(&ids) {
        assert!(ids.contains(&message.trigger_id), "{id}");
        assert_eq!(message.pipeline, "app-pipeline");
        assert_eq!(message.version, 1);
        assert_eq!(message.client_key.len(), 64);
    }
    let status = h.get(&ids[0]).await;
    assert_eq!(status.status, 200);
    assert_eq!(status.body["trigger_id"], ids[0].as_str());
    assert_eq!(status.body["status"], "queued");
    assert_eq!(status.body["pipeline"], "app");
    assert!(status.body.get("execution_id").is_none());
}

#[tokio::test]
async fn a_named_pipeline_is_queued_under_its_codepipeline_name() {
    let h = harness(&[]).await;
    let r = h.post(Some(r#"{"pipeline": "docs"}"#), CLIENT_IP).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["pipeline"], "docs");
    let messages = h.queued().await;
    assert_eq!(messages[0].pipeline, "docs-pipeline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_concurrent_requests_admits_exactly_the_limit() {
    let h = Arc::new(harness(&[]).await);
    let requests = (0..60).map(|_| {
        let h = h.clone();
        tokio::spawn(async move { h.post_settled(None, CLIENT_IP).await.status })
    });
    let statuses: Vec<u16> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 202).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        57,
        "{statuses:?}"
    );
    assert_eq!(h.queued().await.len(), 3);
}

#[tokio::test]
async fn quota_returns_after_the_window() {
    let h = harness(&[("QUOTA_LIMIT", "2"), ("QUOTA_WINDOW", "1h")]).await;
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
    h.clock.advance(Duration::from_secs(600));
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
    assert_eq!(h.post(None, CLIENT_IP).await.status, 429);
    // The first slot frees one hour after it was taken, not before.
    h.clock.advance(Duration::from_secs(3000 - 1));
    let r = h.post(None, CLIENT_IP).await;
    assert_eq!(
        (r.status, r.headers["Retry-After"].as_str()),
        (429, Some("1"))
    );
    h.clock.advance(Duration::from_secs(1));
    let r = h.post(None, CLIENT_IP).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.body["quota"]["remaining"], 0);
    assert_eq!(h.post(None, CLIENT_IP).await.status, 429);
    // Long after the window, the client is new again (stale item still present).
    h.clock.advance(Duration::from_secs(86_400));
    let r = h.post(None, CLIENT_IP).await;
    assert_eq!(r.status_and_remaining(), (202, Some(1)));
}

#[tokio::test]
async fn clients_are_separate_and_ipv6_counts_per_64() {
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    assert_eq!(h.post(None, "203.0.113.1").await.status, 202);
    assert_eq!(h.post(None, "203.0.113.2").await.status, 202);
    assert_eq!(h.post(None, "::ffff:203.0.113.1").await.status, 429);
    let v6 = |ip: &str| http_api_event("POST", "/trigger", None, ip);
    assert_eq!(h.send(v6("2001:db8:1:2::1")).await.status, 202);
    assert_eq!(h.send(v6("2001:db8:1:2:aaaa::9")).await.status, 429);
    assert_eq!(h.send(v6("2001:db8:1:3::1")).await.status, 202);
}

#[tokio::test]
async fn forwarded_for_headers_never_choose_the_client() {
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    let mut event = rest_event("POST", "/trigger", None, CLIENT_IP);
    assert_eq!(h.send(event.clone()).await.status, 202);
    // Same source, a different forwarded address: still the same client.
    event["headers"]["X-Forwarded-For"] = json!("192.0.2.200");
    assert_eq!(h.send(event).await.status, 429);
}

#[tokio::test]
async fn queue_unreachable_is_503_and_the_quota_is_given_back() {
    let h = harness_with(&[("QUOTA_LIMIT", "2")], Faults::DEAD_QUEUE).await;
    for _ in 0..3 {
        let r = h.post(None, CLIENT_IP).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.headers["Retry-After"], "5");
        assert!(r.headers.get("RateLimit").is_none());
    }
    // Nothing is left behind: the client item holds no acceptance, no record remains.
    let items = h.stack.scan_items().await;
    let triggers = items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("trigger#"))
        .count();
    assert_eq!(triggers, 0);
    for item in items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("client#"))
    {
        for slot in ["t0", "t1"] {
            assert_eq!(item[slot].as_n().unwrap(), "0", "{item:?}");
        }
    }
    // The same client, against a live queue, still has its whole quota.
    let live = Ingress::new(
        IngressConfig::from_env(&Env::from_pairs([
            ("TABLE_NAME", h.stack.table_name.as_str()),
            ("QUEUE_URL", h.stack.queues.queue_url.as_str()),
            ("PIPELINES", "app=app-pipeline,docs=docs-pipeline"),
            ("CLIENT_KEY_SECRET", "test-secret-of-sufficient-length"),
            ("QUOTA_LIMIT", "2"),
        ]))
        .unwrap(),
        Table::new(h.stack.dynamodb.clone(), h.stack.table_name.clone()),
        WorkQueue::new(h.stack.sqs.clone(), h.stack.queues.queue_url.clone()),
        h.clock.clone(),
        CallCounter::default(),
    );
    let mut statuses: Vec<u64> = futures::future::join_all(
        (0..3).map(|_| live.handle(rest_event("POST", "/trigger", None, CLIENT_IP))),
    )
    .await
    .into_iter()
    .map(|r| r.unwrap()["statusCode"].as_u64().unwrap())
    .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 202, 429]);
}

#[tokio::test]
async fn table_unreachable_is_503_and_nothing_is_enqueued() {
    let h = harness_with(&[], Faults::DEAD_TABLE).await;
    let r = h.post(None, CLIENT_IP).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.headers["Retry-After"], "5");
    assert_eq!(r.body["status"], 503);
    assert!(h.queued().await.is_empty());
    // An id that could exist needs the table: unavailable too.
    let id = shared::rules::trigger::trigger_id_at(h.clock.now_ms());
    let status = h.get(&id).await;
    assert_eq!(status.status, 503);
}

/// A definite refusal from DynamoDB (here a table that does not exist, on
/// DynamoDB Local: `ResourceNotFoundException`) is a 503 at once: nothing
/// was written, so nothing is settled and nothing is enqueued, however
/// many requests come.
#[tokio::test]
async fn a_missing_table_is_503_at_once_and_nothing_is_enqueued() {
    let h = harness(&[("TABLE_NAME", "no-such-table")]).await;
    let before = h.stack.calls.total();
    for n in 0..3 {
        let r = h.post(None, &format!("203.0.113.{}", 10 + n)).await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert_eq!(r.headers["Retry-After"], "5");
        assert_eq!(r.body["type"], "urn:pipeline-trigger:problem:unavailable");
    }
    // One refused admission per request: no settling write, no message.
    assert_eq!(h.stack.calls.total() - before, 3);
    assert!(h.queued().await.is_empty());
}

#[tokio::test]
async fn malformed_requests_get_their_4xx_and_consume_nothing() {
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    let big = format!("{{\"pipeline\": \"{}\"}}", "x".repeat(9000));
    let cases: Vec<(Value, u16)> = vec![
        (
            rest_event("POST", "/trigger", Some("pipeline=app"), CLIENT_IP),
            400,
        ),
        (
            rest_event("POST", "/trigger", Some("[1,2]"), CLIENT_IP),
            400,
        ),
        (
            rest_event("POST", "/trigger", Some("{\"pipeline\": 7}"), CLIENT_IP),
            400,
        ),
        (
            rest_event(
                "POST",
                "/trigger",
                Some("{\"pipeline\": \"app\", \"ref\": \"main\"}"),
                CLIENT_IP,
            ),
            400,
        ),
        (
            rest_event(
                "POST",
                "/trigger",
                Some("{\"pipeline\": \"nope\"}"),
                CLIENT_IP,
            ),
            400,
        ),
        (
            rest_event(
                "POST",
                "/trigger",
                Some("{\"pipeline\": \"app-pipeline\"}"),
                CLIENT_IP,
            ),
            400,
        ),
        (
            rest_event(
                "POST",
                "/trigger",
                Some("{\"pipeline\": \"'; DROP TABLE x; --\"}"),
                CLIENT_IP,
            ),
            400,
        ),
        (rest_event("POST", "/trigger", Some(&big), CLIENT_IP), 413),
        (rest_event("POST", "/trigger", None, "not-an-ip"), 400),
        (rest_event("POST", "/trigger", None, ""), 400),
        (rest_event("GET", "/trigger", None, CLIENT_IP), 405),
        (
            rest_event(
                "PUT",
                "/triggers/01JD0000000000000000000000",
                None,
                CLIENT_IP,
            ),
            405,
        ),
        (rest_event("POST", "/admin", None, CLIENT_IP), 404),
        (
            rest_event("GET", "/triggers/..%2F..%2Fetc", None, CLIENT_IP),
            404,
        ),
        (
            rest_event(
                "GET",
                "/triggers/01JD0000000000000000000000",
                None,
                CLIENT_IP,
            ),
            404,
        ),
    ];
    let mut bad_b64 = rest_event("POST", "/trigger", Some("***"), CLIENT_IP);
    bad_b64["isBase64Encoded"] = json!(true);
    let mut cases = cases;
    cases.push((bad_b64, 400));
    for (event, expected) in cases {
        let r = h.send(event.clone()).await;
        assert_eq!(r.status, expected, "{event}: {}", r.body);
        assert_eq!(r.headers["Content-Type"], "application/problem+json");
        assert_eq!(r.body["status"], expected);
        assert!(r.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert!(r.headers.get("RateLimit").is_none(), "a 4xx is not counted");
    }
    let unknown = h.post(Some("{\"pipeline\": \"nope\"}"), CLIENT_IP).await;
    assert!(unknown.body["detail"]
        .as_str()
        .unwrap()
        .contains("app, docs"));
    assert!(
        h.stack.scan_items().await.is_empty(),
        "no 4xx writes anything"
    );
    assert!(h.queued().await.is_empty());
    // The client's single trigger is still there.
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
}

#[tokio::test]
async fn an_event_that_is_not_http_fails_only_its_invocation() {
    let h = harness(&[]).await;
    let sqs_event =
        json!({"Records": [{"messageId": "1", "body": "{}", "eventSource": "aws:sqs"}]});
    assert!(h.ingress.handle(sqs_event).await.is_err());
    assert!(h.ingress.handle(json!("garbage")).await.is_err());
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
}

#[tokio::test]
async fn status_of_an_expired_trigger_is_404() {
    let h = harness(&[("LEDGER_RETENTION", "1h")]).await;
    let id = h.post(None, CLIENT_IP).await.body["trigger_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(h.get(&id).await.status, 200);
    assert_eq!(h.get(&id.to_lowercase()).await.status, 200);
    h.clock.advance(Duration::from_secs(3601));
    // TTL has not collected the item; the read compares the time itself.
    assert_eq!(
        h.stack
            .scan_items()
            .await
            .iter()
            .filter(|i| i["pk"].as_s().unwrap().starts_with("trigger#"))
            .count(),
        1
    );
    let r = h.get(&id).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["type"],
        "urn:pipeline-trigger:problem:trigger-not-found"
    );
}

#[tokio::test]
async fn global_budget_caps_all_clients_together() {
    let h = harness(&[("GLOBAL_QUOTA_LIMIT", "2"), ("GLOBAL_QUOTA_WINDOW", "1h")]).await;
    assert_eq!(h.post(None, "192.0.2.1").await.status, 202);
    assert_eq!(h.post(None, "192.0.2.2").await.status, 202);
    let r = h.post(None, "192.0.2.3").await;
    assert_eq!(r.status, 429);
    assert_eq!(
        r.body["type"],
        "urn:pipeline-trigger:problem:global-quota-exceeded"
    );
    assert!(r.headers["RateLimit-Policy"]
        .as_str()
        .unwrap()
        .contains("\"global\";q=2;w=3600"));
    // The client's own quota was not touched by the refusal.
    assert!(r.headers["RateLimit"]
        .as_str()
        .unwrap()
        .starts_with("\"client\";r=3;"));
    h.clock.advance(Duration::from_secs(3600));
    assert_eq!(h.post(None, "192.0.2.3").await.status, 202);
}

#[tokio::test]
async fn aws_calls_per_request_meet_the_budget() {
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    let calls = &h.stack.calls;
    let before = calls.snapshot();
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
    let accepted = calls.since(&before);
    assert_eq!(
        accepted.into_iter().collect::<Vec<_>>(),
        [
            ("DynamoDB.TransactWriteItems".to_string(), 1),
            ("SQS.SendMessage".to_string(), 1)
        ]
    );
    let before = calls.snapshot();
    assert_eq!(h.post(None, CLIENT_IP).await.status, 429);
    let rejected = calls.since(&before);
    assert_eq!(
        rejected.into_iter().collect::<Vec<_>>(),
        [("DynamoDB.TransactWriteItems".to_string(), 1)]
    );
    let before = calls.snapshot();
    assert_eq!(h.post(Some("nonsense"), CLIENT_IP).await.status, 400);
    assert!(calls.since(&before).is_empty(), "a 4xx makes no AWS call");
    // A blocked client: the block is checked inside the same transaction.
    let table = shared::aws::table::Table::new(h.stack.dynamodb.clone(), &h.stack.table_name);
    let blocked = "198.51.100.77";
    let key = shared::rules::client_key::client_key(b"test-secret-of-sufficient-length", blocked)
        .unwrap();
    table
        .blocks()
        .block(std::slice::from_ref(&key), u64::MAX / 2, "test", 0)
        .await
        .unwrap();
    let before = calls.snapshot();
    let refused = h.post(None, blocked).await;
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(
        calls.since(&before).into_iter().collect::<Vec<_>>(),
        [("DynamoDB.TransactWriteItems".to_string(), 1)]
    );
}

/// A REST API event for a request the client addressed as `addressed`
/// (stage or base path, then the route), exactly as API Gateway builds it:
/// through the execute-api URL `path` loses the stage; through a custom
/// domain it keeps the base path; `resource` and `pathParameters` name the
/// route.
fn addressed_event(method: &str, route: &str, addressed: &str, stage: &str) -> Value {
    let mut event = rest_event(method, route, None, CLIENT_IP);
    let through_stage = addressed.strip_prefix(&format!("/{stage}")) == Some(route);
    event["path"] = json!(if through_stage { route } else { addressed });
    event["requestContext"]["stage"] = json!(stage);
    event["requestContext"]["path"] = json!(addressed);
    let (resource, parameters) = shared::rules::http::trigger_api::resource_of(route);
    event["resource"] = json!(resource);
    event["requestContext"]["resourcePath"] = json!(resource);
    event["pathParameters"] = parameters.unwrap_or(Value::Null);
    event
}

#[tokio::test]
async fn status_urls_resolve_behind_a_stage_or_a_base_path() {
    let h = harness(&[("QUOTA_LIMIT", "10")]).await;
    // The execute-api URL with its stage; custom domains with a base path of
    // one and of two segments; a custom domain mapped at its root.
    for (prefix, stage) in [
        ("/prod", "prod"),
        ("/ci", "prod"),
        ("/api/v1", "live"),
        ("", "prod"),
    ] {
        let r = h
            .send(addressed_event(
                "POST",
                "/trigger",
                &format!("{prefix}/trigger"),
                stage,
            ))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["trigger_id"].as_str().unwrap();
        let location = r.headers["Location"].as_str().unwrap().to_string();
        assert_eq!(location, format!("{prefix}/triggers/{id}"));
        assert_eq!(r.body["status_url"], location.as_str());
        // Following it, as the client does, reaches the trigger.
        let route = location.strip_prefix(prefix).unwrap();
        let status = h
            .send(addressed_event("GET", route, &location, stage))
            .await;
        assert_eq!(status.status, 200, "{}", status.body);
        assert_eq!(status.body["trigger_id"], id);
    }
    // HTTP API: $default has no prefix, a named stage keeps its own.
    for (raw, expected_prefix) in [("/trigger", ""), ("/staging/trigger", "/staging")] {
        let mut event = http_api_event("POST", raw, None, "203.0.113.90");
        if !expected_prefix.is_empty() {
            event["requestContext"]["stage"] = json!("staging");
        }
        let r = h.send(event).await;
        assert_eq!(r.status, 202, "{}", r.body);
        let id = r.body["trigger_id"].as_str().unwrap();
        assert_eq!(
            r.headers["Location"],
            format!("{expected_prefix}/triggers/{id}")
        );
    }
}

#[tokio::test]
async fn the_console_test_event_gets_a_clean_4xx_and_costs_nothing() {
    let h = harness(&[]).await;
    let event = json!({
        "resource": "/trigger", "path": "/trigger", "httpMethod": "POST",
        "headers": null, "multiValueHeaders": null, "queryStringParameters": null,
        "multiValueQueryStringParameters": null, "pathParameters": null,
        "stageVariables": null, "body": null, "isBase64Encoded": false,
        "requestContext": {"stage": "test-invoke-stage", "path": "/trigger",
            "resourcePath": "/trigger", "httpMethod": "POST", "requestId": "t-1",
            "identity": {"sourceIp": "test-invoke-source-ip", "userAgent": null}}
    });
    let before = h.stack.calls.snapshot();
    let r = h.send(event).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.headers["Content-Type"], "application/problem+json");
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("client address"));
    assert!(h.stack.calls.since(&before).is_empty());
    assert!(h.queued().await.is_empty());
}

/// Another ingress on the same table and queue with SDK clients of its own
/// (its own connections): a second Lambda process, as far as DynamoDB can tell.
async fn another_instance(h: &Harness) -> Ingress {
    h.instance_between(testkit::dynamodb_endpoint(), testkit::moto_endpoint())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bursts_through_many_instances_admit_exactly_the_limit_every_round() {
    const INSTANCES: usize = 8;
    const CLIENTS: usize = 3;
    const REQUESTS_PER_CLIENT: usize = 40;
    const ROUNDS: usize = 8;
    let h = harness(&[]).await;
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        instances.push(Arc::new(another_instance(&h).await));
    }
    for round in 0..ROUNDS {
        // Every request of the round in flight at once, each client's spread
        // over every instance.
        let mut requests = Vec::new();
        for client in 0..CLIENTS {
            let ip = format!("198.51.100.{}", round * CLIENTS + client + 1);
            for n in 0..REQUESTS_PER_CLIENT {
                let ingress = instances[(n + client) % INSTANCES].clone();
                let event = rest_event("POST", "/trigger", None, &ip);
                requests.push(tokio::spawn(async move {
                    let out = handle_settled(&ingress, event).await;
                    (client, out["statusCode"].as_u64().unwrap_or(0))
                }));
            }
        }
        let mut statuses = vec![Vec::new(); CLIENTS];
        for request in futures::future::join_all(requests).await {
            let (client, status) = request.expect("request task");
            statuses[client].push(status);
        }
        for (client, statuses) in statuses.iter().enumerate() {
            let accepted = statuses.iter().filter(|&&s| s == 202).count();
            let refused = statuses.iter().filter(|&&s| s == 429).count();
            assert_eq!(
                (accepted, refused),
                (3, REQUESTS_PER_CLIENT - 3),
                "round {round}, client {client}: {statuses:?}"
            );
        }
        // Exactly what was accepted reached the queue to run: 3 per client.
        // On a slow engine an admission can lose its every answer: a 503
        // (retried above) whose message goes out marked `unsettled`, for
        // the worker to give back; it is never one of the acceptances.
        let (unsettled, to_run): (Vec<_>, Vec<_>) =
            h.queued().await.into_iter().partition(|m| m.unsettled);
        assert_eq!(to_run.len(), 3 * CLIENTS, "round {round}: {unsettled:?}");
        let mut per_client = std::collections::HashMap::new();
        for message in &to_run {
            *per_client.entry(message.client_key.clone()).or_insert(0) += 1;
        }
        assert!(per_client.values().all(|&n| n == 3), "{per_client:?}");
        for message in &unsettled {
            assert!(
                !to_run.iter().any(|m| m.trigger_id == message.trigger_id),
                "{message:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_answers_during_a_burst_never_over_admit_nor_lose_a_trigger() {
    let h = harness(&[]).await;
    // Every DynamoDB call of this ingress loses its first answer after the
    // engine acted on it; the SDK retries it.
    let proxy = testkit::LossyProxy::start(testkit::dynamodb_endpoint()).await;
    let ingress = Arc::new(
        h.instance_between(&proxy.endpoint, testkit::moto_endpoint())
            .await,
    );
    // Each request's log lines say why, should one of them not be 202/429.
    let logs = testkit::CapturedLogs::default();
    let dispatch = tracing::Dispatch::new(shared::lambda::logging::json_subscriber(logs.clone()));
    let requests = (0..30).map(|_| {
        let ingress = ingress.clone();
        let request = async move {
            let out =
                handle_settled(&ingress, rest_event("POST", "/trigger", None, CLIENT_IP)).await;
            let body: Value =
                serde_json::from_str(out["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
            (out["statusCode"].as_u64().unwrap_or(0), body)
        };
        tokio::spawn(tracing::instrument::WithSubscriber::with_subscriber(
            request,
            dispatch.clone(),
        ))
    });
    let replies: Vec<(u64, Value)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect();
    assert!(proxy.lost() >= 30, "only {} answers lost", proxy.lost());
    let statuses: Vec<u64> = replies.iter().map(|(s, _)| *s).collect();
    let accepted: Vec<&str> = replies
        .iter()
        .filter(|(s, _)| *s == 202)
        .map(|(_, body)| body["trigger_id"].as_str().unwrap())
        .collect();
    let logs = logs.text();
    assert_eq!(accepted.len(), 3, "{statuses:?}\n{logs}");
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        27,
        "{statuses:?}\n{logs}"
    );
    // Every acceptance, and only they, reached the queue with its record to
    // run. An admission whose every answer was lost on a slow engine is a
    // 503 (retried above) whose message goes out marked `unsettled`: the
    // worker gives it back and runs nothing (docs/design.md, "When
    // something fails"); such a message is never one of the acceptances.
    let (unsettled, to_run): (Vec<_>, Vec<_>) =
        h.queued().await.into_iter().partition(|m| m.unsettled);
    let mut queued: Vec<String> = to_run.into_iter().map(|m| m.trigger_id).collect();
    queued.sort();
    let mut expected: Vec<String> = accepted.iter().map(|id| id.to_string()).collect();
    expected.sort();
    assert_eq!(queued, expected, "unsettled: {unsettled:?}");
    for message in &unsettled {
        assert!(!expected.contains(&message.trigger_id), "{message:?}");
    }
    for id in &expected {
        assert_eq!(h.get(id).await.body["status"], "queued", "{id}");
    }
}

/// Under the default quota of 3, the client has spent one slot: two more
/// requests fit, then 429.
async fn one_slot_spent(h: &Harness) {
    for _ in 0..2 {
        assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
    }
    assert_eq!(h.post(None, CLIENT_IP).await.status, 429);
}

/// `ingress`'s answer to one `POST /trigger` from the client.
async fn answer_of(ingress: &Ingress) -> Value {
    ingress
        .handle(rest_event("POST", "/trigger", None, CLIENT_IP))
        .await
        .expect("an HTTP response")
}

/// The request's 202 body, or a failure naming what came back.
async fn accepted_by(ingress: &Ingress) -> Value {
    let out = answer_of(ingress).await;
    assert_eq!(out["statusCode"], 202, "{out}");
    serde_json::from_str(out["body"].as_str().unwrap()).unwrap()
}

/// An ingress whose table calls go through `proxy`.
async fn instance_behind(h: &Harness, proxy: &testkit::LossyProxy) -> Ingress {
    h.instance_between(&proxy.endpoint, testkit::moto_endpoint())
        .await
}

#[tokio::test]
async fn a_send_whose_answers_were_lost_is_sent_again_and_accepted_with_one_slot_spent() {
    let h = harness(&[]).await;
    // SQS keeps the message of every attempt of the first send, and none
    // of their answers arrives: the send fails though messages exist.
    let queue = testkit::LossyProxy::losing_first_answers_to(
        testkit::moto_endpoint(),
        "SendMessage",
        u64::from(shared::aws::MAX_SDK_ATTEMPTS),
    )
    .await;
    let ingress = h
        .instance_between(testkit::dynamodb_endpoint(), &queue.endpoint)
        .await;
    let body = accepted_by(&ingress).await;
    assert_eq!(queue.lost(), u64::from(shared::aws::MAX_SDK_ATTEMPTS));
    let id = body["trigger_id"].as_str().unwrap();
    assert_eq!(body["quota"]["remaining"], 2);
    // Every message is this trigger's (the worker runs it once:
    // functions/worker/tests/worker.rs, several messages of one trigger).
    let queued = h.queued().await;
    assert_eq!(queued.len(), shared::aws::MAX_SDK_ATTEMPTS as usize + 1);
    assert!(queued.iter().all(|m| m.trigger_id == id && !m.unsettled));
    assert_eq!(h.get(id).await.body["status"], "queued");
    one_slot_spent(&h).await;
}

#[tokio::test]
async fn a_send_lost_while_the_table_is_away_is_sent_again_never_a_503_that_spends_and_runs() {
    let h = harness(&[]).await;
    // The admission commits; then every answer of the first send is lost
    // (SQS kept its messages) and the table answers 500 to any refund.
    // Answered 503, the slot would stay taken and a message would run.
    let table =
        testkit::LossyProxy::failing_after(testkit::dynamodb_endpoint(), "TransactWriteItems", 1)
            .await;
    let queue = testkit::LossyProxy::losing_first_answers_to(
        testkit::moto_endpoint(),
        "SendMessage",
        u64::from(shared::aws::MAX_SDK_ATTEMPTS),
    )
    .await;
    let ingress = h.instance_between(&table.endpoint, &queue.endpoint).await;
    let body = accepted_by(&ingress).await;
    let id = body["trigger_id"].as_str().unwrap();
    assert!(h
        .queued()
        .await
        .iter()
        .all(|m| m.trigger_id == id && !m.unsettled));
    assert_eq!(h.get(id).await.body["status"], "queued");
    assert_eq!(body["quota"]["remaining"], 2);
}

#[tokio::test]
async fn a_send_lost_every_time_is_given_back_and_its_messages_find_no_record() {
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    let queue =
        testkit::LossyProxy::losing_every_answer_to(testkit::moto_endpoint(), "SendMessage").await;
    let ingress = h
        .instance_between(testkit::dynamodb_endpoint(), &queue.endpoint)
        .await;
    let out = answer_of(&ingress).await;
    assert_eq!(out["statusCode"], 503, "{out}");
    // Messages got through (sent, their answers lost); their trigger's
    // record is gone, so the worker runs none of them
    // (functions/worker/tests/worker.rs, a_refunded_trigger_is_not_started).
    let queued = h.queued().await;
    assert!(
        queued.len() > shared::aws::MAX_SDK_ATTEMPTS as usize,
        "sent again before giving back"
    );
    let id = queued[0].trigger_id.clone();
    assert!(queued.iter().all(|m| m.trigger_id == id));
    assert_eq!(h.get(&id).await.status, 404);
    // The one slot is back.
    assert_eq!(h.post(None, CLIENT_IP).await.status, 202);
}

#[tokio::test]
async fn every_answer_of_the_admission_lost_is_202_with_its_trigger_never_a_charge_without_one() {
    let h = harness(&[]).await;
    let proxy = testkit::LossyProxy::losing_every_answer_to(
        testkit::dynamodb_endpoint(),
        "TransactWriteItems",
    )
    .await;
    let ingress = instance_behind(&h, &proxy).await;
    // The transaction commits, and neither its answer nor its retries'
    // ever arrive: the ingress settles it (one conditional write) and
    // finds it committed.
    let out = answer_of(&ingress).await;
    assert!(proxy.lost() >= 1);
    assert_eq!(out["statusCode"], 202, "{out}");
    let body: Value = serde_json::from_str(out["body"].as_str().unwrap()).unwrap();
    let id = body["trigger_id"].as_str().unwrap().to_string();
    assert_eq!(body["quota"]["remaining"], 2);
    let queued = h.queued().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].trigger_id, id);
    assert_eq!(h.get(&id).await.body["status"], "queued");
    one_slot_spent(&h).await;
}

#[tokio::test]
async fn an_admission_that_cannot_be_settled_is_503_and_its_one_message_says_so() {
    let h = harness(&[]).await;
    // The transaction commits, and neither its answers nor any answer of
    // the settling write ever arrive.
    let proxy = testkit::LossyProxy::losing_every_answer_to_any(
        testkit::dynamodb_endpoint(),
        &["TransactWriteItems", "PutItem"],
    )
    .await;
    let ingress = instance_behind(&h, &proxy).await;
    let out = answer_of(&ingress).await;
    assert_eq!(out["statusCode"], 503, "{out}");
    // One message, marked: the worker gives back what the trigger took
    // and runs nothing (functions/worker/tests/worker.rs,
    // an_unsettled_admission_is_given_back_never_started), so the 503's
    // "nothing spent" holds once it has passed.
    let queued = h.queued().await;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].unsettled);
}

#[tokio::test]
async fn an_admission_that_never_committed_is_settled_void_and_costs_nothing() {
    let h = harness(&[]).await;
    let table = Table::new(h.stack.dynamodb.clone(), &h.stack.table_name);
    let key = shared::rules::client_key::client_key(b"test-secret-of-sufficient-length", CLIENT_IP)
        .unwrap();
    let record = shared::rules::trigger::TriggerRecord::queued(
        shared::rules::trigger::new_trigger_id(),
        "app",
        "app-pipeline",
        key.clone(),
        Default::default(),
        START_MS,
        START_MS / 1000 + 3600,
    );
    use shared::aws::table::admission::{Admission, QuotaLevel, Settled};
    // Nothing committed: settling makes sure nothing ever will.
    assert_eq!(
        table.admission().settle(&record).await.unwrap(),
        Settled::Void
    );
    let policy = shared::rules::quota::QuotaPolicy {
        limit: 3,
        window: Duration::from_secs(3600),
    };
    let late = testkit::table::admit_for_client(&table, &key, policy, &record).await;
    assert!(
        matches!(late, Err(shared::aws::table::StoreError::Corrupt(_))),
        "a late commit of the same admission is refused: {late:?}"
    );
    assert!(table
        .admission()
        .slots(&QuotaLevel::client(&key, policy))
        .await
        .unwrap()
        .iter()
        .all(|&t| t == 0));
    assert_eq!(
        h.get(&record.trigger_id).await.status,
        404,
        "a void is no trigger"
    );
    // Committed, settling says so.
    let committed = shared::rules::trigger::TriggerRecord {
        trigger_id: shared::rules::trigger::new_trigger_id(),
        ..record.clone()
    };
    assert!(matches!(
        testkit::table::admit_for_client(&table, &key, policy, &committed)
            .await
            .unwrap(),
        Admission::Accepted { .. }
    ));
    assert_eq!(
        table.admission().settle(&committed).await.unwrap(),
        Settled::Committed
    );
}

/// A browser's "simple" POST from another site's page (no preflight):
/// refused `403 cross-site` before anything is read or charged. The API's
/// own page, an allowed site and curl (no such headers) still trigger.
#[tokio::test]
async fn a_trigger_from_another_sites_page_is_refused_and_costs_nothing() {
    let h = harness(&[("CORS_ALLOWED_ORIGINS", "https://docs.example.com")]).await;
    let from = |origin: Option<&str>, fetch_site: Option<&str>| {
        let mut event = rest_event("POST", "/trigger", Some("{}"), CLIENT_IP);
        event["headers"]["Host"] = json!("api.example.com");
        event["headers"]["Content-Type"] = json!("text/plain;charset=UTF-8");
        if let Some(origin) = origin {
            event["headers"]["Origin"] = json!(origin);
        }
        if let Some(site) = fetch_site {
            event["headers"]["Sec-Fetch-Site"] = json!(site);
        }
        event
    };
    let before = h.stack.calls.snapshot();
    for (origin, site) in [
        (Some("https://evil.example"), Some("cross-site")),
        (Some("null"), Some("cross-site")),
        (Some("https://evil.example"), None),
        (None, Some("cross-site")),
    ] {
        let r = h.send(from(origin, site)).await;
        assert_eq!(r.status, 403, "{origin:?} {site:?}: {}", r.body);
        assert_eq!(r.body["type"], "urn:pipeline-trigger:problem:cross-site");
        assert!(r.headers.get("Access-Control-Allow-Origin").is_none());
    }
    assert!(h.stack.calls.since(&before).is_empty(), "no AWS call");
    // The API's own page, an allowed site, and curl: each charged once.
    for (n, (origin, site)) in [
        (Some("https://api.example.com"), Some("same-origin")),
        (Some("https://docs.example.com"), Some("cross-site")),
        (None, None),
    ]
    .into_iter()
    .enumerate()
    {
        let r = h.send(from(origin, site)).await;
        assert_eq!(r.status, 202, "{origin:?}: {}", r.body);
        assert_eq!(r.body["quota"]["remaining"], 2 - n as u64, "{}", r.body);
    }
}

/// A client refused once is answered from this instance's memory for a
/// minute at most, never past its Retry-After: no AWS call, the same 429
/// with its times shortened. Other clients of a full network likewise.
#[tokio::test]
async fn a_repeated_refusal_on_a_warm_instance_costs_no_aws_call() {
    let h = harness(&[("QUOTA_LIMIT", "1"), ("NETWORK_QUOTA_LIMITS", "ipv6/48=2")]).await;
    assert_eq!(h.post_settled(None, CLIENT_IP).await.status, 202);
    let first = h.post_settled(None, CLIENT_IP).await;
    assert_eq!(first.status, 429);
    let first_retry: u64 = first.headers["Retry-After"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let before = h.stack.calls.snapshot();
    h.clock.advance(std::time::Duration::from_secs(20));
    let again = h.post(None, CLIENT_IP).await;
    assert_eq!(again.status, 429, "{}", again.body);
    assert!(
        h.stack.calls.since(&before).is_empty(),
        "answered from memory"
    );
    let retry: u64 = again.headers["Retry-After"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, first_retry - 20);
    assert_eq!(again.body["scope"], "client");
    // After a minute the table is asked again (one transaction).
    h.clock.advance(std::time::Duration::from_secs(41));
    let later = h.post(None, CLIENT_IP).await;
    assert_eq!(later.status, 429);
    assert_eq!(
        h.stack.calls.since(&before).into_iter().collect::<Vec<_>>(),
        [("DynamoDB.TransactWriteItems".to_string(), 1)]
    );

    // A full /48: its other /64s are refused from memory after the first.
    for n in 1..=2 {
        let r = h.post_settled(None, &format!("2001:db8:7:{n}::1")).await;
        assert_eq!(r.status, 202, "{}", r.body);
    }
    let full = h.post_settled(None, "2001:db8:7:3::1").await;
    assert_eq!(
        (full.status, full.body["network"].as_str()),
        (429, Some("ipv6/48"))
    );
    let before = h.stack.calls.snapshot();
    let other = h.post(None, "2001:db8:7:4::1").await;
    assert_eq!(
        (other.status, other.body["network"].as_str()),
        (429, Some("ipv6/48"))
    );
    assert!(h.stack.calls.since(&before).is_empty());
    // Its own quota is not known without a read: the client item has its policy only.
    let policy = other.headers["RateLimit-Policy"].as_str().unwrap();
    assert!(policy.starts_with("\"client\";q=1;"), "{policy}");
    assert!(!other.headers["RateLimit"]
        .as_str()
        .unwrap()
        .contains("\"client\""));
}

/// `GET /triggers/{id}`: an id made in the future or before the ledger's
/// retention is 404 without a read; a known id without a run, one read.
#[tokio::test]
async fn impossible_ids_cost_no_read_and_a_known_one_costs_one() {
    let h = harness(&[("LEDGER_RETENTION", "30d")]).await;
    let now = h.clock.now_ms();
    let before = h.stack.calls.snapshot();
    for at in [now + 3_600_000, now - 40 * 86_400_000] {
        let id = shared::rules::trigger::trigger_id_at(at);
        assert_eq!(h.get(&id).await.status, 404);
    }
    assert!(h.stack.calls.since(&before).is_empty());
    let id = shared::rules::trigger::trigger_id_at(now - 60_000);
    assert_eq!(h.get(&id).await.status, 404);
    assert_eq!(
        h.stack.calls.since(&before).into_iter().collect::<Vec<_>>(),
        [("DynamoDB.BatchGetItem".to_string(), 1)],
        "a possible id costs one read (the trigger and the run it would open)"
    );
    let r = h.post_settled(None, CLIENT_IP).await;
    let before = h.stack.calls.snapshot();
    let status = h.get(r.body["trigger_id"].as_str().unwrap()).await;
    assert_eq!(status.status, 200);
    assert_eq!(
        h.stack.calls.since(&before).into_iter().collect::<Vec<_>>(),
        [("DynamoDB.BatchGetItem".to_string(), 1)],
        "a queued trigger not yet in a run: one read"
    );
}

/// Rotating `CLIENT_KEY_SECRET` with its overlap (docs/operating.md,
/// "Rotating the client-key secret"): while the previous secret counts, a
/// client is charged and refused under both keys, so nobody gets a fresh
/// quota and no block lifts; a refusal behind a full queue gives back the
/// slots of both. Once the overlap ends only the new keys count.
#[tokio::test]
async fn a_rotation_keeps_every_quota_and_block_through_its_overlap() {
    let old_secret = "test-secret-of-sufficient-length";
    let h = harness(&[("CLIENT_KEY_SECRET", old_secret)]).await;
    let (blocked_ip, halfway_ip) = ("198.51.100.23", "198.51.100.24");
    for _ in 0..3 {
        assert_eq!(h.post_settled(None, CLIENT_IP).await.status, 202);
    }
    assert_eq!(h.post_settled(None, CLIENT_IP).await.status, 429);
    for _ in 0..2 {
        assert_eq!(h.post_settled(None, halfway_ip).await.status, 202);
    }
    let now = h.clock.now_ms();
    let blocked = shared::rules::client_key::client_key(old_secret.as_bytes(), blocked_ip).unwrap();
    let table = Table::new(h.stack.dynamodb.clone(), h.stack.table_name.clone());
    table
        .blocks()
        .block(&[blocked], now + 3 * 86_400_000, "runbook test", now)
        .await
        .unwrap();
    assert_eq!(h.post_settled(None, blocked_ip).await.status, 403);

    // The same table and queue, the new secret, the old one for a day.
    let new_secret = "rotated-secret-of-sufficient-length";
    let until = shared::rules::time_format::rfc3339(now + 86_400_000);
    let config = IngressConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", h.stack.table_name.as_str()),
        ("QUEUE_URL", h.stack.queues.queue_url.as_str()),
        ("PIPELINES", "app=app-pipeline,docs=docs-pipeline"),
        ("CLIENT_KEY_SECRET", new_secret),
        ("CLIENT_KEY_SECRET_PREVIOUS", old_secret),
        ("CLIENT_KEY_PREVIOUS_UNTIL", until.as_str()),
    ]))
    .unwrap();
    let rotated = Ingress::new(
        config.clone(),
        Table::new(h.stack.dynamodb.clone(), config.table_name.clone()),
        WorkQueue::new(h.stack.sqs.clone(), config.queue_url.clone()),
        h.clock.clone(),
        CallCounter::default(),
    );
    let post = |ip: &str| rest_event("POST", "/trigger", None, ip);
    // The client that had spent its quota is still refused, by its own
    // level, and RateLimit names each level once.
    let answer = handle_settled(&rotated, post(CLIENT_IP)).await;
    assert_eq!(answer["statusCode"], 429, "{answer}");
    let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["scope"], "client", "{body}");
    let limits = answer["headers"]["RateLimit"].as_str().unwrap_or_default();
    assert_eq!(limits.matches("\"client\"").count(), 1, "{answer}");
    assert!(limits.contains("r=0"), "{answer}");
    // The block made with the old secret still stops its address.
    let answer = handle_settled(&rotated, post(blocked_ip)).await;
    assert_eq!(answer["statusCode"], 403, "{answer}");
    // A client halfway through its quota has exactly what it had left.
    let answer = handle_settled(&rotated, post(halfway_ip)).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let third: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let answer = handle_settled(&rotated, post(halfway_ip)).await;
    assert_eq!(answer["statusCode"], 429, "{answer}");
    // Its third trigger is charged under both keys, and the ledger says so.
    let id = third["trigger_id"].as_str().unwrap();
    let record = table
        .triggers()
        .get(id, h.clock.now_ms())
        .await
        .unwrap()
        .unwrap();
    let previous =
        shared::rules::client_key::client_key(old_secret.as_bytes(), halfway_ip).unwrap();
    assert_eq!(
        record.client_key,
        shared::rules::client_key::client_key(new_secret.as_bytes(), halfway_ip).unwrap()
    );
    assert_eq!(record.previous_keys[0].level, "client");
    assert_eq!(record.previous_keys[0].key, previous);
    // Refused behind a full queue, it gets its slot back under both keys.
    let refused = table
        .admission()
        .refuse(&record, "queue_full", h.clock.now_ms(), h.clock.now_ms())
        .await
        .unwrap();
    assert!(refused);
    for key in [&record.client_key, &previous] {
        let level = shared::aws::table::admission::QuotaLevel::client(key, config.quota);
        let slots = table.admission().slots(&level).await.unwrap();
        let taken = slots.iter().filter(|&&t| t > 0).count();
        assert_eq!(taken, usize::from(key == &previous) * 2, "{key}: {slots:?}");
    }
    // (Past the minute a warm instance remembers its refusal for.)
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(
        handle_settled(&rotated, post(halfway_ip)).await["statusCode"],
        202
    );

    // Past the overlap only the new keys count: the old slots and the
    // block keyed with the old secret no longer match (the rotation
    // command makes the overlap a whole window and outlast every block).
    h.clock.advance(std::time::Duration::from_secs(86_400 + 1));
    let answer = handle_settled(&rotated, post(CLIENT_IP)).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
    let answer = handle_settled(&rotated, post(blocked_ip)).await;
    assert_eq!(answer["statusCode"], 202, "{answer}");
}
