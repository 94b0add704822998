//! `trigger-ops keys …` against DynamoDB Local: the real binary makes a key
//! shown once (only its hash kept), lists keys without them, revokes and
//! rotates; what it makes is what the ingress accepts.

mod common;

use common::ops;
use shared::aws::table::Table;
use shared::clock::{Clock, SystemClock};
use shared::rules::keys::{key_hash, PresentedKey};
use testkit::Stack;

fn table(stack: &Stack) -> Table {
    Table::new(stack.dynamodb.clone(), &stack.table_name)
}

#[tokio::test]
async fn a_key_is_shown_once_and_only_its_hash_is_kept() {
    let stack = Stack::new().await;
    let made = ops(
        &stack,
        &[
            "keys",
            "create",
            "ci-main",
            "--pipeline",
            "app",
            "--quota",
            "5/1h",
        ],
    );
    assert_eq!(made.code, 0, "{}", made.stderr);
    let key = made
        .stdout
        .lines()
        .find(|l| l.starts_with("ptk_"))
        .unwrap_or_else(|| panic!("no key printed: {}", made.stdout))
        .to_string();
    assert!(made.stdout.contains(&format!("table {}", stack.table_name)));
    assert!(made.stdout.contains("shown once"), "{}", made.stdout);
    // ptk_ and at least 26 base32 characters: at least 130 random bits.
    assert!(key.len() >= 4 + 26, "{key}");
    assert!(PresentedKey::parse(&key).is_ok(), "{key}");
    let stored = format!("{:?}", stack.scan_items().await);
    assert!(!stored.contains(&key[4..]), "the key itself is stored");
    let record = table(&stack)
        .keys()
        .by_hash(&key_hash(&key))
        .await
        .unwrap()
        .expect("found by its hash");
    assert_eq!(record.name, "ci-main");
    assert_eq!(record.pipelines, ["app"]);
    assert_eq!(record.quota.limit, 5);
    assert_eq!(record.quota.window.as_secs(), 3_600);
    // Every key is new: two keys of two names never repeat.
    let other = ops(&stack, &["--json", "keys", "create", "nightly"]);
    assert_eq!(other.code, 0, "{}", other.stderr);
    let other = other.json();
    assert_eq!(other["name"], "nightly");
    assert_ne!(other["key"].as_str().unwrap(), key);
    assert!(table(&stack)
        .keys()
        .by_hash(&key_hash(other["key"].as_str().unwrap()))
        .await
        .unwrap()
        .is_some_and(|r| r.pipelines.is_empty() && r.quota.limit == 20));
    // A name is one key: a second create is refused, nothing changed.
    let again = ops(&stack, &["keys", "create", "ci-main"]);
    assert_eq!(again.code, 2, "{}", again.stdout);
    assert!(again.stderr.contains("rotate"), "{}", again.stderr);
    assert!(!again.stdout.contains("ptk_"));
}

#[tokio::test]
async fn bad_names_and_quotas_are_refused_before_anything_is_written() {
    let stack = Stack::new().await;
    for args in [
        vec!["keys", "create", "Has Space"],
        vec!["keys", "create", "-dash-first"],
        vec!["keys", "create", &"x".repeat(65)],
        vec!["keys", "create", "ok", "--quota", "0/1d"],
        vec!["keys", "create", "ok", "--quota", "101/1d"],
        vec!["keys", "create", "ok", "--quota", "5"],
        vec!["keys", "create", "ok", "--quota", "5/soon"],
        vec!["keys", "create", "ok", "--pipeline", "not a name"],
        vec!["keys", "rotate", "ok", "--overlap", "forever"],
        vec!["keys", "revoke", "../etc"],
    ] {
        let run = ops(&stack, &args);
        assert_eq!(run.code, 2, "{args:?}: {} {}", run.stdout, run.stderr);
        assert!(!run.stderr.is_empty(), "{args:?}: says why");
    }
    assert!(stack.scan_items().await.is_empty());
    // Unknown names: said so, exit 1.
    for args in [["keys", "revoke", "ghost"], ["keys", "rotate", "ghost"]] {
        let run = ops(&stack, &args);
        assert_eq!(run.code, 1, "{args:?}");
        assert!(run.stderr.contains("no key named ghost"), "{}", run.stderr);
    }
}

#[tokio::test]
async fn list_shows_every_key_its_uses_and_state_never_the_key() {
    let stack = Stack::new().await;
    let empty = ops(&stack, &["keys", "list"]);
    assert_eq!(
        empty.stdout,
        "no trigger keys (trigger-ops keys create NAME)\n"
    );
    let mut keys = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let made = ops(&stack, &["--json", "keys", "create", name]);
        keys.push(made.json()["key"].as_str().unwrap().to_string());
    }
    // alpha is used twice, beta rotated, gamma revoked.
    let level = shared::aws::table::admission::QuotaLevel::key(
        "alpha",
        shared::rules::keys::DEFAULT_KEY_QUOTA,
    );
    for _ in 0..2 {
        let trigger = stack
            .enqueue_keyed_trigger("p", serde_json::json!({}), "alpha")
            .await;
        assert!(!trigger.is_empty());
    }
    assert_eq!(
        table(&stack)
            .admission()
            .slots(&level)
            .await
            .unwrap()
            .iter()
            .filter(|s| **s != 0)
            .count(),
        2
    );
    assert_eq!(
        ops(&stack, &["keys", "rotate", "beta", "--overlap", "1h"]).code,
        0
    );
    assert_eq!(ops(&stack, &["keys", "revoke", "gamma"]).code, 0);
    let listed = ops(&stack, &["--json", "keys", "list"]).json();
    let listed = listed["keys"].as_array().unwrap();
    let by_name = |name: &str| listed.iter().find(|k| k["name"] == name).unwrap().clone();
    assert_eq!(listed.len(), 3);
    assert_eq!(by_name("alpha")["uses"], 2);
    assert!(by_name("alpha")["last_used_at"].is_string());
    assert_eq!(by_name("alpha")["state"], "active");
    assert_eq!(by_name("beta")["state"], "rotating");
    assert!(by_name("beta")["previous_valid_until"].is_string());
    assert_eq!(by_name("beta")["uses"], 0);
    assert!(by_name("beta")["last_used_at"].is_null());
    assert_eq!(by_name("gamma")["state"], "revoked");
    let text = ops(&stack, &["keys", "list"]).stdout;
    assert!(text.starts_with("NAME"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    for key in &keys {
        assert!(!text.contains(&key[4..]));
        assert!(!listed.iter().any(|k| k.to_string().contains(&key[4..])));
    }
}

#[tokio::test]
async fn rotate_keeps_the_old_key_for_the_overlap_and_revoke_ends_both() {
    let stack = Stack::new().await;
    let old = ops(&stack, &["--json", "keys", "create", "deploy-bot"]).json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let rotated = ops(
        &stack,
        &["--json", "keys", "rotate", "deploy-bot", "--overlap", "2h"],
    );
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let rotated = rotated.json();
    let new = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let now = SystemClock.now_ms();
    let keys = table(&stack);
    let old_record = keys.keys().by_hash(&key_hash(&old)).await.unwrap().unwrap();
    let until = old_record.valid_until.expect("the overlap's end");
    assert!(
        (until as i64 - (now + 7_200_000) as i64).abs() < 60_000,
        "{until}"
    );
    assert!(old_record.allows("app", now).is_ok());
    assert!(old_record.allows("app", until).is_err());
    let new_record = keys.keys().by_hash(&key_hash(&new)).await.unwrap().unwrap();
    assert!(new_record.allows("app", until + 1).is_ok());
    // Revoking the name refuses both at once.
    assert_eq!(ops(&stack, &["keys", "revoke", "deploy-bot"]).code, 0);
    let now = SystemClock.now_ms() + 1;
    for key in [&old, &new] {
        let record = keys.keys().by_hash(&key_hash(key)).await.unwrap().unwrap();
        assert!(record.allows("app", now).is_err(), "{key}");
    }
    // A revoked key is not rotated back to life.
    assert_eq!(ops(&stack, &["keys", "rotate", "deploy-bot"]).code, 1);
}
