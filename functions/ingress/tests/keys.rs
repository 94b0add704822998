//! The keyed lane at the ingress, against DynamoDB Local and moto: a key is
//! charged its own exact quota in the one admission, a bad key is a 401
//! that costs nothing (and, repeated on a warm instance, no AWS call), a
//! revoked key stops at once, a rotated one overlaps, and no key is ever
//! written down.

mod common;

use common::*;
use serde_json::Value;
use shared::aws::table::Table;
use shared::rules::keys::{key_hash, DEFAULT_KEY_QUOTA};
use shared::rules::quota::QuotaPolicy;
use std::time::Duration;
use testkit::keyed_event;

const DAY: Duration = Duration::from_secs(86_400);

impl Harness {
    async fn keyed(&self, body: Option<&str>, ip: &str, key: &str) -> Reply {
        self.send(keyed_event("/trigger", body, ip, key)).await
    }

    fn table(&self) -> Table {
        Table::new(self.stack.dynamodb.clone(), &self.stack.table_name)
    }

    /// Every item of the table, as text: what a key must never be in.
    async fn table_text(&self) -> String {
        let items = self.stack.scan_items().await;
        format!("{items:?}")
    }
}

fn problem_type(reply: &Reply) -> &str {
    reply.body["type"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_keyed_trigger_is_charged_its_key_not_its_address_and_names_its_lane() {
    let h = harness(&[]).await;
    let key = h
        .stack
        .create_key("ci-main", &["app"], DEFAULT_KEY_QUOTA)
        .await;
    let accepted = h
        .keyed(Some(r#"{"pipeline": "app"}"#), CLIENT_IP, &key)
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.body["lane"], "key");
    assert_eq!(accepted.body["key"], "ci-main");
    assert_eq!(accepted.body["quota"]["limit"], 20);
    assert_eq!(accepted.body["quota"]["remaining"], 19);
    assert_eq!(accepted.headers["RateLimit-Policy"], "\"key\";q=20;w=86400");
    assert_eq!(accepted.headers["RateLimit"], "\"key\";r=19;t=86400");
    // The status names the lane and the key.
    let id = accepted.body["trigger_id"].as_str().unwrap();
    let status = h.get(id).await;
    assert_eq!(
        (status.body["lane"].as_str(), status.body["key"].as_str()),
        (Some("key"), Some("ci-main"))
    );
    // The address's own quota is untouched: three anonymous triggers still.
    for remaining in [2, 1, 0] {
        let anonymous = h.post(None, CLIENT_IP).await;
        assert_eq!(anonymous.status, 202);
        assert_eq!(anonymous.body["lane"], "anonymous");
        assert!(anonymous.body.get("key").is_none());
        assert_eq!(anonymous.body["quota"]["remaining"], remaining);
    }
    assert_eq!(h.post(None, CLIENT_IP).await.status, 429);
    // ... and an address out of quota still triggers with its key.
    let keyed = h.keyed(None, CLIENT_IP, &key).await;
    assert_eq!(keyed.status, 202, "{}", keyed.body);
    assert_eq!(keyed.body["quota"]["remaining"], 18);
    // The work message carries no key (and so no e-mail can).
    let messages = h.queued().await;
    assert_eq!(messages.len(), 5);
    for message in &messages {
        let text = message.to_json();
        assert!(!text.contains(&key), "{text}");
    }
}

#[tokio::test]
async fn a_key_has_its_own_exact_quota_and_its_429_says_so() {
    let h = harness(&[]).await;
    let quota = QuotaPolicy {
        limit: 2,
        window: DAY,
    };
    let key = h.stack.create_key("nightly", &[], quota).await;
    for remaining in [1, 0] {
        let accepted = h.keyed(None, CLIENT_IP, &key).await;
        assert_eq!(accepted.status, 202, "{}", accepted.body);
        assert_eq!(accepted.body["quota"]["remaining"], remaining);
    }
    h.clock.advance(Duration::from_secs(3_600));
    let refused = h.keyed(None, "198.51.100.1", &key).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["scope"], "key");
    assert_eq!(
        problem_type(&refused),
        "urn:pipeline-trigger:problem:key-quota-exceeded"
    );
    // The first slot frees a day after it was taken: 23 hours from now.
    assert_eq!(refused.headers["Retry-After"], "82800");
    assert_eq!(refused.headers["RateLimit"], "\"key\";r=0;t=82800");
    // A day later the key has room again.
    h.clock.advance(DAY);
    assert_eq!(h.keyed(None, CLIENT_IP, &key).await.status, 202);
}

#[tokio::test]
async fn concurrent_keyed_triggers_take_exactly_the_quota() {
    let h = harness(&[]).await;
    let quota = QuotaPolicy {
        limit: 5,
        window: DAY,
    };
    let key = h.stack.create_key("burst", &[], quota).await;
    // Twelve at once from twelve addresses: exactly five accepted.
    let sends = (0..12).map(|n| {
        let event = keyed_event("/trigger", None, &format!("192.0.2.{}", n + 1), &key);
        handle_settled(&h.ingress, event)
    });
    let answers = futures::future::join_all(sends).await;
    let accepted = answers.iter().filter(|a| a["statusCode"] == 202).count();
    let refused = answers.iter().filter(|a| a["statusCode"] == 429).count();
    assert_eq!((accepted, refused), (5, 7));
    assert_eq!(h.queued().await.len(), 5);
}

#[tokio::test]
async fn a_bad_key_is_a_401_charged_nothing_and_never_the_anonymous_lane() {
    let h = harness(&[]).await;
    let key = h
        .stack
        .create_key("docs-only", &["docs"], DEFAULT_KEY_QUOTA)
        .await;
    let unknown = format!("ptk_{}", "a".repeat(32));
    let cases = [
        ("unknown", unknown.clone()),
        ("wrong pipeline", key.clone()),
        ("malformed", "ptk_short".to_string()),
        (
            "not a trigger key",
            "ghp_0123456789abcdefghijklmnopqrstuvwxyz".into(),
        ),
        (
            "hostile",
            format!("ptk_{}\u{202e}\r\nX-Injected: 1", "b".repeat(30)),
        ),
        ("oversized", format!("ptk_{}", "c".repeat(100_000))),
    ];
    for (what, presented) in &cases {
        let before = h.stack.calls.snapshot();
        let reply = h
            .keyed(Some(r#"{"pipeline": "app"}"#), CLIENT_IP, presented)
            .await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.body);
        assert_eq!(
            problem_type(&reply),
            "urn:pipeline-trigger:problem:invalid-key",
            "{what}"
        );
        assert_eq!(
            reply.headers["WWW-Authenticate"], "Bearer error=\"invalid_token\"",
            "{what}"
        );
        let detail = reply.body["detail"].as_str().unwrap_or("");
        let secret: String = presented.chars().skip(4).take(16).collect();
        assert!(
            !detail.contains(&secret),
            "{what}: the key is never echoed: {detail}"
        );
        assert!(reply.headers.get("RateLimit").is_none(), "{what}");
        // Nothing written: at most the key looked up, once.
        let after = h.stack.calls.snapshot();
        let made: Vec<_> = after
            .iter()
            .filter(|(call, n)| before.get(*call) != Some(n))
            .map(|(call, _)| call.clone())
            .collect();
        assert!(
            made.iter().all(|c| c == "DynamoDB.GetItem"),
            "{what}: {made:?}"
        );
    }
    // Repeated on this warm instance: no AWS call at all.
    for (what, presented) in &cases {
        let before = h.stack.calls.total();
        let reply = h
            .keyed(Some(r#"{"pipeline": "app"}"#), CLIENT_IP, presented)
            .await;
        assert_eq!(reply.status, 401, "{what}");
        assert_eq!(h.stack.calls.total(), before, "{what}: an AWS call");
    }
    // Never charged, never enqueued, never the anonymous lane: the address
    // has its three triggers, and the key its twenty.
    assert!(h.queued().await.is_empty());
    assert!(!h.table_text().await.contains("trigger#"));
    assert_eq!(h.post(None, CLIENT_IP).await.body["quota"]["remaining"], 2);
    let docs = h
        .keyed(Some(r#"{"pipeline": "docs"}"#), CLIENT_IP, &key)
        .await;
    assert_eq!(docs.body["quota"]["remaining"], 19, "{}", docs.body);
}

#[tokio::test]
async fn a_cross_site_keyed_trigger_is_refused_before_the_key_is_read() {
    let h = harness(&[]).await;
    let key = h.stack.create_key("page", &[], DEFAULT_KEY_QUOTA).await;
    let mut event = keyed_event("/trigger", None, CLIENT_IP, &key);
    event["headers"]["Origin"] = Value::from("https://evil.example");
    event["multiValueHeaders"]["Origin"] = serde_json::json!(["https://evil.example"]);
    let before = h.stack.calls.total();
    let reply = h.send(event).await;
    assert_eq!(reply.status, 403);
    assert_eq!(
        problem_type(&reply),
        "urn:pipeline-trigger:problem:cross-site"
    );
    assert_eq!(h.stack.calls.total(), before);
}

#[tokio::test]
async fn a_revoked_key_stops_at_once_even_on_an_instance_that_remembers_it() {
    let h = harness(&[]).await;
    let key = h.stack.create_key("leaked", &[], DEFAULT_KEY_QUOTA).await;
    assert_eq!(h.keyed(None, CLIENT_IP, &key).await.status, 202);
    // The warm instance remembers the key as good; the operator revokes it.
    let now = shared::clock::Clock::now_ms(h.clock.as_ref());
    assert!(h.table().keys().revoke("leaked", now).await.unwrap());
    h.clock.advance(Duration::from_secs(1));
    let refused = h.keyed(None, CLIENT_IP, &key).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("revoked"));
    // A cold instance reads it revoked.
    let cold = h.cold_instance();
    let answer = handle_settled(&cold, keyed_event("/trigger", None, CLIENT_IP, &key)).await;
    assert_eq!(answer["statusCode"], 401, "{answer}");
    // Nothing of the refused one was charged or enqueued.
    let entry = h.table().keys().get("leaked").await.unwrap().unwrap();
    assert_eq!(entry.uses, 1);
    assert_eq!(h.queued().await.len(), 1);
}

#[tokio::test]
async fn a_rotated_key_works_through_its_overlap_and_not_after() {
    let h = harness(&[]).await;
    let old = h
        .stack
        .create_key("deploy-bot", &[], DEFAULT_KEY_QUOTA)
        .await;
    assert_eq!(h.keyed(None, CLIENT_IP, &old).await.status, 202);
    let now = shared::clock::Clock::now_ms(h.clock.as_ref());
    let new = format!("ptk_{}", "n".repeat(32));
    let overlap_until = now + 3_600_000;
    let rotated = h
        .table()
        .keys()
        .rotate("deploy-bot", &key_hash(&new), overlap_until, now)
        .await
        .unwrap()
        .expect("rotated");
    assert_eq!(rotated.name, "deploy-bot");
    // Both work during the overlap, on the one quota of the name.
    let with_new = h.keyed(None, CLIENT_IP, &new).await;
    assert_eq!(with_new.status, 202, "{}", with_new.body);
    assert_eq!(with_new.body["key"], "deploy-bot");
    assert_eq!(with_new.body["quota"]["remaining"], 18);
    h.clock.advance(Duration::from_secs(3_599));
    assert_eq!(h.keyed(None, CLIENT_IP, &old).await.status, 202);
    // After it, the old key is a 401, even on this warm instance.
    h.clock.advance(Duration::from_secs(2));
    let expired = h.keyed(None, CLIENT_IP, &old).await;
    assert_eq!(expired.status, 401, "{}", expired.body);
    assert_eq!(h.keyed(None, CLIENT_IP, &new).await.status, 202);
    let entry = h.table().keys().get("deploy-bot").await.unwrap().unwrap();
    assert_eq!(entry.uses, 4);
    // A second rotation ends the first one's overlap: only two keys at a
    // time, so a revoke reaches every key of the name.
    let newest = format!("ptk_{}", "m".repeat(32));
    let now = shared::clock::Clock::now_ms(h.clock.as_ref());
    h.table()
        .keys()
        .rotate("deploy-bot", &key_hash(&newest), now + 3_600_000, now)
        .await
        .unwrap()
        .expect("rotated again");
    assert!(h.table().keys().revoke("deploy-bot", now).await.unwrap());
    h.clock.advance(Duration::from_secs(1));
    for key in [&old, &new, &newest] {
        let answer = handle_settled(
            &h.cold_instance(),
            keyed_event("/trigger", None, CLIENT_IP, key),
        )
        .await;
        assert_eq!(answer["statusCode"], 401, "{answer}");
        let record = h.table().keys().by_hash(&key_hash(key)).await.unwrap();
        let now = shared::clock::Clock::now_ms(h.clock.as_ref());
        assert!(
            record.is_none_or(|r| r.allows("app", now).is_err()),
            "{key} still allowed"
        );
    }
}
