//! The DynamoDB and SQS adapters: against moto for behaviour, and with faults
//! moto cannot produce (throttling, 500s) replayed through the real SDK client
//! by aws-smithy-mocks.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, RuleMode};
use shared::aws::queue::{QueueError, WorkQueue};
use shared::aws::table::admission::{Admission, QuotaLevel, Refund};
use shared::aws::table::items::trigger_pk;
use shared::aws::table::{StoreError, Table};
use shared::rules::client_key::{client_key, ClientKey};
use shared::rules::message::WorkMessage;
use shared::rules::quota::{GlobalPolicy, QuotaPolicy};
use shared::rules::status::TriggerStatus;
use shared::rules::trigger::{new_trigger_id, TriggerRecord};
use std::time::Duration;
use testkit::Stack;

const NOW: u64 = 1_795_000_000_000;

fn policy(limit: usize) -> QuotaPolicy {
    QuotaPolicy {
        limit,
        window: Duration::from_secs(3600),
    }
}

fn record(ip: &str, at: u64) -> TriggerRecord {
    TriggerRecord {
        trigger_id: new_trigger_id(),
        pipeline: "app".into(),
        target: "app-pipeline".into(),
        status: TriggerStatus::Queued,
        requested_at: at,
        updated_at: at,
        client_key: client_key(b"0123456789abcdef", ip).unwrap(),
        networks: Vec::new(),
        previous_keys: Vec::new(),
        global_window: None,
        inputs: Default::default(),
        run_id: None,
        key: None,
        execution_id: None,
        error_code: None,
        error_message: None,
        expires_at: at / 1000 + 86_400,
        stages: Vec::new(),
        refusal: None,
    }
}

fn accepted(admission: Admission) -> Vec<u64> {
    match admission {
        Admission::Accepted { mut previous, .. } => previous.remove(0),
        other => panic!("expected acceptance, got {other:?}"),
    }
}

/// Admission at the client's level alone (and the global budget).
async fn admit(
    table: &Table,
    policy: &QuotaPolicy,
    global: Option<&GlobalPolicy>,
    record: &TriggerRecord,
    blocks: &[ClientKey],
) -> Result<Admission, StoreError> {
    let level = QuotaLevel::client(&record.client_key, *policy);
    table
        .admission()
        .admit(&[level], global, record, blocks, None)
        .await
}

async fn refund(
    table: &Table,
    policy: &QuotaPolicy,
    global: Option<&GlobalPolicy>,
    record: &TriggerRecord,
    previous: &[u64],
) -> Result<Refund, StoreError> {
    let level = QuotaLevel::client(&record.client_key, *policy);
    table
        .admission()
        .refund(&[level], global, record, Some(&[previous.to_vec()]))
        .await
}

#[tokio::test]
async fn an_admission_whose_answer_was_lost_stands_once_when_retried() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(3);
    let earlier = record("192.0.2.20", NOW - 1000);
    accepted(admit(&table, &p, None, &earlier, &[]).await.unwrap());
    let trigger = record("192.0.2.20", NOW);
    let first = admit(&table, &p, None, &trigger, &[]).await.unwrap();
    // The same transaction again, as the SDK sends it when the first answer
    // never arrived: accepted, with the same quota and the same state before.
    let again = admit(&table, &p, None, &trigger, &[]).await.unwrap();
    match (&first, &again) {
        (
            Admission::Accepted {
                statuses: s1,
                previous: p1,
            },
            Admission::Accepted {
                statuses: s2,
                previous: p2,
            },
        ) => {
            assert_eq!(s1[0].remaining, 1);
            assert_eq!(s2[0].remaining, 1, "the retry took no second slot");
            assert_eq!(p1, p2);
        }
        other => panic!("expected two acceptances, got {other:?}"),
    }
    // A third trigger still fits, a fourth does not: one slot per trigger.
    accepted(
        admit(&table, &p, None, &record("192.0.2.20", NOW + 1000), &[])
            .await
            .unwrap(),
    );
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.20", NOW + 2000), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
    // A record of the same id written by someone else is still refused.
    let mut stranger = record("192.0.2.21", NOW);
    stranger.trigger_id = trigger.trigger_id.clone();
    assert!(matches!(
        admit(&table, &p, None, &stranger, &[]).await,
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn an_admission_whose_answer_was_lost_stands_once_even_after_another_acceptance() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(3);
    let lost = record("192.0.2.30", NOW);
    accepted(admit(&table, &p, None, &lost, &[]).await.unwrap());
    // Another request of the same client is accepted before the SDK retries
    // the first one, whose answer was lost: the client's last writer is now
    // the other trigger.
    accepted(
        admit(&table, &p, None, &record("192.0.2.30", NOW + 10), &[])
            .await
            .unwrap(),
    );
    match admit(&table, &p, None, &lost, &[]).await.unwrap() {
        Admission::Accepted { statuses, previous } => {
            assert_eq!(statuses[0].remaining, 1, "the retry took no third slot");
            assert!(!previous[0].contains(&NOW), "{previous:?}");
        }
        other => panic!("expected the lost admission to stand, got {other:?}"),
    }
    // One slot per trigger: a third fits, a fourth does not.
    accepted(
        admit(&table, &p, None, &record("192.0.2.30", NOW + 20), &[])
            .await
            .unwrap(),
    );
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.30", NOW + 30), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
}

#[tokio::test]
async fn a_refund_after_later_acceptances_removes_only_its_own_slot() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(2);
    let first = record("192.0.2.10", NOW);
    let second = record("192.0.2.10", NOW + 1000);
    let previous = accepted(admit(&table, &p, None, &first, &[]).await.unwrap());
    accepted(admit(&table, &p, None, &second, &[]).await.unwrap());
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.10", NOW + 2000), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
    // The first one's enqueue failed: its refund meets a state it did not write.
    assert_eq!(
        refund(&table, &p, None, &first, &previous).await.unwrap(),
        Refund::Refunded
    );
    assert!(table
        .triggers()
        .get(&first.trigger_id, NOW)
        .await
        .unwrap()
        .is_none());
    assert!(table
        .triggers()
        .get(&second.trigger_id, NOW)
        .await
        .unwrap()
        .is_some());
    // Exactly one slot came back.
    accepted(
        admit(&table, &p, None, &record("192.0.2.10", NOW + 3000), &[])
            .await
            .unwrap(),
    );
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.10", NOW + 4000), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
}

#[tokio::test]
async fn no_refund_once_a_worker_took_the_trigger() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(1);
    let r = record("192.0.2.11", NOW);
    let previous = accepted(admit(&table, &p, None, &r, &[]).await.unwrap());
    stack
        .dynamodb
        .update_item()
        .table_name(&stack.table_name)
        .key("pk", AttributeValue::S(trigger_pk(&r.trigger_id)))
        .update_expression("SET #s = :started")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":started", AttributeValue::S("started".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refund(&table, &p, None, &r, &previous).await.unwrap(),
        Refund::AlreadyPickedUp
    );
    let kept = testkit::table::stored(&table, &r.trigger_id, NOW).await;
    assert_eq!(kept.status, TriggerStatus::Started);
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.11", NOW + 1), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
}

#[tokio::test]
async fn a_global_refund_gives_the_budget_back() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(3);
    let g = GlobalPolicy {
        limit: 1,
        window: Duration::from_secs(3600),
    };
    let r = record("192.0.2.12", NOW);
    let previous = accepted(admit(&table, &p, Some(&g), &r, &[]).await.unwrap());
    assert!(matches!(
        admit(&table, &p, Some(&g), &record("192.0.2.13", NOW + 1), &[])
            .await
            .unwrap(),
        Admission::GlobalExhausted { .. }
    ));
    assert_eq!(
        refund(&table, &p, Some(&g), &r, &previous).await.unwrap(),
        Refund::Refunded
    );
    accepted(
        admit(&table, &p, Some(&g), &record("192.0.2.13", NOW + 2), &[])
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_corrupt_trigger_item_is_reported_not_served() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let id = new_trigger_id();
    stack
        .dynamodb
        .put_item()
        .table_name(&stack.table_name)
        .item("pk", AttributeValue::S(trigger_pk(&id)))
        .item("status", AttributeValue::S("exploded".into()))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        table.triggers().get(&id, NOW).await,
        Err(StoreError::Corrupt(_))
    ));
}

/// A DynamoDB client whose every response is replayed by `rules`, with the
/// project's retry settings.
fn mocked_dynamodb(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_dynamodb::Client {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_dynamodb::Config::builder()
        .with_test_defaults_v2()
        .http_client(create_mock_http_client())
        .retry_config(
            aws_sdk_dynamodb::config::retry::RetryConfig::standard()
                .with_max_attempts(shared::aws::MAX_SDK_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .interceptor(interceptor)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

#[tokio::test]
async fn throttling_is_retried_then_reported_unavailable() {
    let throttled = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(400, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#.into()))
        .times(3)
        .build();
    let table = Table::new(mocked_dynamodb(&[&throttled]), "t");
    let err = admit(&table, &policy(3), None, &record("192.0.2.20", NOW), &[])
        .await
        .unwrap_err();
    assert_eq!(
        throttled.num_calls(),
        3,
        "the SDK retried the throttled call"
    );
    match err {
        StoreError::Unavailable(detail) => {
            assert!(detail.contains("ThrottlingException"), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_throttle_that_clears_admits() {
    let flaky = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(400, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#.into()))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let table = Table::new(mocked_dynamodb(&[&flaky]), "t");
    let admission = admit(&table, &policy(3), None, &record("192.0.2.21", NOW), &[])
        .await
        .unwrap();
    assert!(matches!(admission, Admission::Accepted { .. }));
    assert_eq!(flaky.num_calls(), 2);
}

/// A refusal that means nothing was done (the table is missing, the role
/// may not write it, the request is invalid) is told apart from one whose
/// outcome is unknown: the ingress then answers 503 without settling or
/// enqueueing anything.
#[tokio::test]
async fn definite_refusals_are_refused_not_unavailable() {
    for (code, refused) in [
        ("ResourceNotFoundException", true),
        ("AccessDeniedException", true),
        ("ValidationException", true),
        ("UnrecognizedClientException", true),
        ("ThrottlingException", false),
        ("InternalServerError", false),
    ] {
        let body =
            format!(r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"no"}}"#);
        let status = if code == "InternalServerError" {
            500
        } else {
            400
        };
        let answer = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .sequence()
            .http_status(status, Some(body))
            .times(3)
            .build();
        let table = Table::new(mocked_dynamodb(&[&answer]), "t");
        let err = admit(&table, &policy(3), None, &record("192.0.2.22", NOW), &[])
            .await
            .unwrap_err();
        match (&err, refused) {
            (StoreError::Refused(detail), true) | (StoreError::Unavailable(detail), false) => {
                assert!(detail.contains(code), "{code}: {detail}")
            }
            _ => panic!("{code}: {err:?}"),
        }
        // A definite refusal is never retried: nothing happened.
        assert_eq!(answer.num_calls(), if refused { 1 } else { 3 }, "{code}");
    }
}

#[tokio::test]
async fn a_500_is_unavailable() {
    let broken = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(500, None)
        .times(3)
        .build();
    let table = Table::new(mocked_dynamodb(&[&broken]), "t");
    let err = admit(&table, &policy(3), None, &record("192.0.2.22", NOW), &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert_eq!(broken.num_calls(), 3);
}

#[tokio::test]
async fn an_sqs_500_is_a_queue_error() {
    let broken = mock!(aws_sdk_sqs::Client::send_message)
        .sequence()
        .http_status(500, None)
        .times(3)
        .build();
    let sqs = aws_smithy_mocks::mock_client!(aws_sdk_sqs, RuleMode::Sequential, &[&broken], |c| c
        .retry_config(
            aws_sdk_sqs::config::retry::RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1))
        ));
    let queue = WorkQueue::new(sqs, "https://sqs.us-east-1.amazonaws.com/1/q");
    let message = WorkMessage {
        version: 1,
        trigger_id: new_trigger_id(),
        pipeline: "app".into(),
        requested_at: "2026-11-21T00:00:00.000Z".into(),
        client_key: "ab".repeat(32),
        inputs: None,
        unsettled: false,
    };
    assert!(matches!(
        queue.send(&message).await,
        Err(QueueError::Unavailable(_))
    ));
    assert_eq!(broken.num_calls(), 3);
}

#[tokio::test]
async fn a_block_on_the_client_or_its_network_refuses_inside_the_admission_and_takes_nothing() {
    use shared::rules::client_key::{block_keys, keyed};
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let secret = b"0123456789abcdef";
    let p = policy(3);
    let blocks = |ip: &str| block_keys(secret, ip).unwrap();
    // The network 192.0.2.0/24 is blocked until NOW + 60 s.
    table
        .blocks()
        .block(
            &[keyed(secret, "ipv4:192.0.2.0/24")],
            NOW + 60_000,
            "flood",
            NOW,
        )
        .await
        .unwrap();
    for ip in ["192.0.2.40", "192.0.2.41"] {
        let refused = admit(&table, &p, None, &record(ip, NOW + 10), &blocks(ip))
            .await
            .unwrap();
        assert_eq!(
            refused,
            Admission::Blocked {
                until: NOW + 60_000
            }
        );
        let key = client_key(secret, ip).unwrap();
        assert!(
            table
                .admission()
                .slots(&QuotaLevel::client(&key, p))
                .await
                .unwrap()
                .is_empty(),
            "nothing taken"
        );
    }
    // A neighbour network is not blocked.
    accepted(
        admit(
            &table,
            &p,
            None,
            &record("192.0.3.40", NOW + 10),
            &blocks("192.0.3.40"),
        )
        .await
        .unwrap(),
    );
    // A block on one address stops that address only.
    table
        .blocks()
        .block(
            &[client_key(secret, "192.0.3.41").unwrap()],
            NOW + 30_000,
            "x",
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        admit(
            &table,
            &p,
            None,
            &record("192.0.3.41", NOW + 10),
            &blocks("192.0.3.41")
        )
        .await
        .unwrap(),
        Admission::Blocked {
            until: NOW + 30_000
        }
    );
    // Blocks end by themselves: past `until` the same request is admitted.
    accepted(
        admit(
            &table,
            &p,
            None,
            &record("192.0.2.40", NOW + 60_000),
            &blocks("192.0.2.40"),
        )
        .await
        .unwrap(),
    );
    // Lifting a block ends it at once; a lifted or expired one cannot be lifted again.
    assert!(table
        .blocks()
        .unblock(&[client_key(secret, "192.0.3.41").unwrap()], NOW + 20)
        .await
        .unwrap());
    assert!(!table
        .blocks()
        .unblock(&[client_key(secret, "192.0.3.41").unwrap()], NOW + 20)
        .await
        .unwrap());
    assert!(!table
        .blocks()
        .unblock(&[keyed(secret, "ipv4:192.0.2.0/24")], NOW + 70_000)
        .await
        .unwrap());
    accepted(
        admit(
            &table,
            &p,
            None,
            &record("192.0.3.41", NOW + 30),
            &blocks("192.0.3.41"),
        )
        .await
        .unwrap(),
    );
}

#[tokio::test]
async fn reset_frees_exactly_that_client() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(1);
    for ip in ["192.0.2.50", "192.0.2.51"] {
        accepted(
            admit(&table, &p, None, &record(ip, NOW), &[])
                .await
                .unwrap(),
        );
    }
    let key = |ip: &str| client_key(b"0123456789abcdef", ip).unwrap();
    assert!(table
        .admission()
        .reset(&QuotaLevel::client(&key("192.0.2.50"), p))
        .await
        .unwrap());
    assert!(
        !table
            .admission()
            .reset(&QuotaLevel::client(&key("192.0.2.50"), p))
            .await
            .unwrap(),
        "nothing left to free"
    );
    accepted(
        admit(&table, &p, None, &record("192.0.2.50", NOW + 1), &[])
            .await
            .unwrap(),
    );
    assert!(matches!(
        admit(&table, &p, None, &record("192.0.2.51", NOW + 1), &[])
            .await
            .unwrap(),
        Admission::Exhausted { level: 0, .. }
    ));
    assert_eq!(
        table
            .admission()
            .slots(&QuotaLevel::client(&key("192.0.2.51"), p))
            .await
            .unwrap(),
        vec![NOW]
    );
}

#[tokio::test]
async fn a_transaction_still_in_progress_is_asked_again_not_reported_unavailable() {
    // DynamoDB's answer to an SDK retry whose first attempt has not finished.
    let in_progress = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(400, Some(r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionInProgressException","message":"in progress"}"#.into()))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let table = Table::new(mocked_dynamodb(&[&in_progress]), "t");
    let admission = admit(&table, &policy(3), None, &record("192.0.2.23", NOW), &[])
        .await
        .unwrap();
    assert!(matches!(admission, Admission::Accepted { .. }));
    assert_eq!(in_progress.num_calls(), 2);
}

#[tokio::test]
async fn the_ledger_lists_newest_first_across_days_and_shards_without_a_scan() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let p = policy(3);
    let day = 86_400_000;
    let mut all = Vec::new();
    for i in 0..30u64 {
        // Three days, ten triggers each, every one its own client.
        let at = NOW - (i % 3) * day - i * 1000;
        let mut r = record(&format!("198.51.100.{}", i + 1), at);
        r.expires_at = (NOW + day) / 1000;
        if i % 5 == 0 {
            r.pipeline = "docs".into();
        }
        accepted(admit(&table, &p, None, &r, &[]).await.unwrap());
        all.push(r);
    }
    all.sort_by_key(|r| std::cmp::Reverse(r.requested_at));
    let newest: Vec<String> = all.iter().take(12).map(|r| r.trigger_id.clone()).collect();
    let listed = table
        .ledger()
        .since(NOW - 3 * day, NOW, 12, &|_| true)
        .await
        .unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|r| r.trigger_id.clone())
            .collect::<Vec<_>>(),
        newest
    );
    // Only what is asked for: a window and a filter.
    let docs = table
        .ledger()
        .since(NOW - 3 * day, NOW, 100, &|r| r.pipeline == "docs")
        .await
        .unwrap();
    assert_eq!(docs.len(), 6);
    let recent = table
        .ledger()
        .since(NOW - day / 2, NOW, 100, &|_| true)
        .await
        .unwrap();
    assert_eq!(recent.len(), 10);
    assert!(recent.iter().all(|r| r.requested_at >= NOW - day / 2));
}

/// A transaction DynamoDB cancelled because a concurrent one touched the
/// same item (reason `TransactionConflict` on the item at `conflicted`).
fn conflict(conflicted: usize, items: usize) -> String {
    let reasons: Vec<String> = (0..items)
        .map(|i| {
            if i == conflicted {
                r#"{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"}"#
                    .to_string()
            } else {
                r#"{"Code":"None"}"#.to_string()
            }
        })
        .collect();
    format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"Transaction cancelled","CancellationReasons":[{}]}}"#,
        reasons.join(",")
    )
}

#[tokio::test]
async fn a_conflict_on_the_run_is_retried_never_taken_for_a_run_that_moved_on() {
    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use shared::aws::table::runs::{Joined, Take};
    use shared::rules::runs::RunRecord;
    use shared::rules::status::RunStatus;
    // Taking the lane while joins update the run: the conflict is retried.
    let take = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(400, Some(conflict(1, 2)))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let table = Table::new(mocked_dynamodb(&[&take]), "t");
    let run = RunRecord {
        run_id: "R".into(),
        pipeline: "app".into(),
        target: "app-pipeline".into(),
        status: RunStatus::Pending,
        triggers: 3,
        requested_at: NOW,
        updated_at: NOW,
        execution_id: None,
        started_at: None,
        expires_at: NOW / 1000 + 60,
        stages: Vec::new(),
        wake: None,
        lane: None,
    };
    assert_eq!(
        table.runs().take_lane(&run, NOW).await.unwrap(),
        Take::Taken
    );
    assert_eq!(take.num_calls(), 2);
    // Joining while the run is updated by another join: retried, joined,
    // never a second pending run.
    let slot = mock!(aws_sdk_dynamodb::Client::get_item)
        .sequence()
        .output(|| {
            GetItemOutput::builder()
                .item("pk", AttributeValue::S("pending#app#app-pipeline#k".into()))
                .item("run_id", AttributeValue::S("R".into()))
                .build()
        })
        .times(2)
        .build();
    let join = mock!(aws_sdk_dynamodb::Client::transact_write_items)
        .sequence()
        .http_status(400, Some(conflict(1, 2)))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let client =
        aws_smithy_mocks::mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, &[&slot, &join]);
    let table = Table::new(client, "t");
    let joined = table
        .runs()
        .join_or_open(
            &record("192.0.2.60", NOW),
            "k",
            &shared::aws::table::runs::Opening::up_to(3),
            NOW,
            NOW / 1000 + 60,
        )
        .await
        .unwrap();
    assert_eq!(joined, Joined::Joined("R".into()));
    assert_eq!(join.num_calls(), 2, "the join again, not an open");
}

/// A run's triggers come back whole and oldest first when they fill more
/// than one page of the run index (200 a page).
#[tokio::test]
async fn a_runs_triggers_are_read_across_pages_oldest_first() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let run_id = new_trigger_id();
    let mut ids = Vec::new();
    for n in 0..230 {
        let mut trigger = record("192.0.2.90", NOW + n);
        trigger.run_id = Some(run_id.clone());
        let item = shared::aws::table::items::record_to_item(&trigger);
        stack
            .dynamodb
            .put_item()
            .table_name(&stack.table_name)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
        ids.push(trigger.trigger_id);
    }
    let served = table.ledger().of_run(&run_id, NOW).await.unwrap();
    let read: Vec<String> = served.into_iter().map(|r| r.trigger_id).collect();
    assert_eq!(read.len(), ids.len(), "every trigger of the run");
    assert_eq!(read, ids);
}
