//! `trigger-ops secret` and `trigger-ops clients` around a rotation of the
//! client-key secret, against DynamoDB Local: the real binary, the table as
//! the deployment writes it (`meta#client-key`), quotas taken by the real
//! admission transaction.

mod common;

use common::ops_with;
use shared::aws::table::items::SECRET_FINGERPRINT_PK;
use shared::aws::table::Table;
use shared::clock::{Clock, SystemClock};
use shared::rules::client_key::{client_key, secret_fingerprint};
use shared::rules::quota::QuotaPolicy;
use shared::rules::time_format::{parse_rfc3339, rfc3339};
use shared::rules::trigger::{ledger_expires_at, trigger_id_at, TriggerRecord};
use std::time::Duration;
use testkit::Stack;

const OLD: &str = "the-secret-before-the-rotation";
const NEW: &str = "the-secret-after-the-rotation!";
const ADDRESS: &str = "203.0.113.9";
const DAY_MS: u64 = 86_400_000;

/// What the deployment writes (Terraform's `aws_dynamodb_table_item`):
/// the current secret's fingerprint, the generation and, during an
/// overlap, the previous one's and its end.
async fn deployed(table: &Table, generation: u64, previous_until: Option<u64>) {
    let current = if previous_until.is_some() { NEW } else { OLD };
    let mut put = table
        .client()
        .put_item()
        .table_name(table.name())
        .item("pk", s(SECRET_FINGERPRINT_PK))
        .item("fingerprint", s(&secret_fingerprint(current.as_bytes())))
        .item(
            "generation",
            aws_sdk_dynamodb::types::AttributeValue::N(generation.to_string()),
        );
    if let Some(until) = previous_until {
        put = put
            .item(
                "previous_fingerprint",
                s(&secret_fingerprint(OLD.as_bytes())),
            )
            .item("previous_until", s(&rfc3339(until)));
    }
    put.send().await.unwrap();
}

fn s(text: &str) -> aws_sdk_dynamodb::types::AttributeValue {
    aws_sdk_dynamodb::types::AttributeValue::S(text.to_string())
}

/// Spends `n` of the address's quota under `secret`, as the ingress does.
async fn spend(table: &Table, secret: &str, n: usize) {
    let key = client_key(secret.as_bytes(), ADDRESS).unwrap();
    let policy = QuotaPolicy {
        limit: 3,
        window: Duration::from_secs(7 * 86_400),
    };
    for _ in 0..n {
        let now = SystemClock.now_ms();
        let record = TriggerRecord::queued(
            trigger_id_at(now),
            "app",
            "app-pipeline",
            key.clone(),
            Default::default(),
            now,
            ledger_expires_at(now, Duration::from_secs(86_400)),
        );
        let admitted = testkit::table::admit_for_client(table, &key, policy, &record)
            .await
            .unwrap();
        assert!(
            matches!(
                admitted,
                shared::aws::table::admission::Admission::Accepted { .. }
            ),
            "{admitted:?}"
        );
    }
}

#[tokio::test]
async fn a_rotation_is_planned_to_outlast_the_window_and_every_block_and_never_twice() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let run = ops_with(&stack, &[], &["secret", "rotate"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("no fingerprint"), "{}", run.stderr);

    deployed(&table, 0, None).await;
    // The tool reads its own clock between these two.
    let before = SystemClock.now_ms();
    let run = ops_with(&stack, &[], &["secret", "rotate", "--json"]);
    let after = SystemClock.now_ms();
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = run.json();
    assert_eq!(plan["client_key_generation"], 1, "{plan}");
    assert_eq!(plan["overlap_set_by"], "quota window", "{plan}");
    let until = parse_rfc3339(plan["client_key_previous_until"].as_str().unwrap()).unwrap();
    // One window ahead of the tool's clock, rounded up to the second.
    assert!(until >= before + 7 * DAY_MS, "{plan}");
    assert!(until <= after + 7 * DAY_MS + 1000, "{plan}");
    let now = SystemClock.now_ms();

    // A block made with the retiring secret for 30 days: the overlap
    // lasts as long.
    let blocked = client_key(OLD.as_bytes(), "198.51.100.7").unwrap();
    let block_until = now + 30 * DAY_MS;
    table
        .blocks()
        .block(&[blocked], block_until, "abuse", now)
        .await
        .unwrap();
    let run = ops_with(&stack, &[], &["secret", "rotate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("client_key_generation     = 1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&rfc3339(block_until.div_ceil(1000) * 1000)),
        "{}",
        run.stdout
    );
    let run = ops_with(&stack, &[], &["secret", "rotate", "--overlap", "1d"]);
    assert!(
        run.stderr.contains("shorter than QUOTA_WINDOW"),
        "{}",
        run.stderr
    );

    // Applied: while the overlap runs, no second rotation.
    deployed(&table, 1, Some(block_until)).await;
    let run = ops_with(&stack, &[], &["secret", "rotate"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("overlap runs until"), "{}", run.stderr);
    let run = ops_with(
        &stack,
        &[("CLIENT_KEY_SECRET", NEW)],
        &["secret", "status", "--json"],
    );
    let status = run.json();
    assert_eq!(status["generation"], 1, "{status}");
    assert_eq!(status["overlap"], "running", "{status}");
    assert_eq!(status["secret_matches"], true, "{status}");
}

#[tokio::test]
async fn during_the_overlap_clients_show_reset_and_unblock_act_under_both_secrets() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    spend(&table, OLD, 3).await;
    let now = SystemClock.now_ms();
    let until = rfc3339(now + 7 * DAY_MS);
    deployed(&table, 1, Some(now + 7 * DAY_MS)).await;
    let overlap = [
        ("CLIENT_KEY_SECRET", NEW),
        ("CLIENT_KEY_SECRET_PREVIOUS", OLD),
        ("CLIENT_KEY_PREVIOUS_UNTIL", until.as_str()),
    ];
    // Spent before the rotation: shown as spent.
    let run = ops_with(&stack, &overlap, &["clients", "show", ADDRESS, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["remaining"], 0, "{}", run.stdout);
    // The new secret alone would not see it: the overlap is what keeps it.
    let run = ops_with(
        &stack,
        &[("CLIENT_KEY_SECRET", NEW)],
        &["clients", "show", ADDRESS, "--json"],
    );
    assert_eq!(run.json()["remaining"], 3, "{}", run.stdout);
    // A block made with the old secret is shown, and lifted under both.
    let blocked = client_key(OLD.as_bytes(), ADDRESS).unwrap();
    table
        .blocks()
        .block(&[blocked], now + DAY_MS, "abuse", now)
        .await
        .unwrap();
    let shown = ops_with(&stack, &overlap, &["clients", "show", ADDRESS, "--json"]).json();
    assert_eq!(shown["blocks"].as_array().unwrap().len(), 1, "{shown}");
    let run = ops_with(&stack, &overlap, &["clients", "unblock", ADDRESS]);
    assert!(run.stdout.contains("block lifted"), "{}", run.stdout);
    // A reset frees the quota under both keys.
    let run = ops_with(&stack, &overlap, &["clients", "reset", ADDRESS, "--yes"]);
    assert!(run.stdout.contains("it is free again"), "{}", run.stdout);
    let shown = ops_with(&stack, &overlap, &["clients", "show", ADDRESS, "--json"]).json();
    assert_eq!(shown["remaining"], 3, "{shown}");
    assert!(shown["blocks"].as_array().unwrap().is_empty(), "{shown}");
    // The retired secret alone is refused, by name.
    let run = ops_with(
        &stack,
        &[("CLIENT_KEY_SECRET", OLD)],
        &["clients", "show", ADDRESS],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("previous one"), "{}", run.stderr);
}
