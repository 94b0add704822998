//! The settler on the real engines: a trigger the last double fault left
//! `queued` without a run (its message never went out) is found once the
//! wait has passed and given back; one whose message did go out is run or
//! given back, whichever comes first, never both; nothing else is touched.

mod common;

use common::*;
use serde_json::json;
use shared::aws::table::admission::QuotaLevel;
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::rules::quota::QuotaPolicy;
use shared::rules::status::TriggerStatus;
use shared::rules::trigger::UNSETTLED;
use std::sync::Arc;
use std::time::Duration;
use testkit::Stack;

/// The slots the trigger's client holds (the testkit charges 1 a minute).
async fn slots_held(h: &Harness, trigger_id: &str) -> usize {
    let record = h.record(trigger_id).await;
    let level = QuotaLevel::client(
        &record.client_key,
        QuotaPolicy {
            limit: 1,
            window: Duration::from_secs(60),
        },
    );
    let slots = h.table.admission().slots(&level).await.unwrap();
    slots.iter().filter(|&&t| t > 0).count()
}

/// Hands the work queue to the worker until it is empty.
async fn work_off(h: &Harness) {
    loop {
        let (count, response) = h.run_batch(60).await;
        if count == 0 {
            break;
        }
        assert!(response.batch_item_failures.is_empty(), "{response:?}");
    }
}

#[tokio::test]
async fn a_trigger_left_queued_without_a_run_is_given_back_and_never_both() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("settle").await;
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let h = harness_with_clock(stack, &pipeline, "3", false, clock.clone()).await;
    let settle = json!({"settle": {"queue_url": h.stack.queues.queue_url}});

    // Limbo: admitted, its message lost (the double fault).
    let lost = h.enqueue(&pipeline).await;
    h.stack.drain(&h.stack.queues.queue_url).await;
    // Late: admitted, its message held back; it arrives after the settle's.
    let late = h.enqueue(&pipeline).await;
    let held = h.stack.drain(&h.stack.queues.queue_url).await;
    assert_eq!(held.len(), 1);
    // Ran: its message went through before anything else.
    let ran = h.enqueue(&pipeline).await;
    work_off(&h).await;
    assert_eq!(h.view(&ran).await.status, TriggerStatus::Started);

    // Before the wait has passed, nothing is settled.
    let early = h.worker.invoke(settle.clone()).await.unwrap();
    assert_eq!(
        early["settled"],
        json!({"found": 0, "sent": 0, "failed": 0})
    );

    clock.advance(Duration::from_secs(11 * 60));
    let answer = h.worker.invoke(settle.clone()).await.unwrap();
    assert_eq!(
        answer["settled"],
        json!({"found": 2, "sent": 2, "failed": 0})
    );
    work_off(&h).await;
    for id in [&lost, &late] {
        let record = h.record(id).await;
        assert_eq!(record.status, TriggerStatus::Refused, "{id}");
        assert_eq!(record.refusal.map(|r| r.reason).as_deref(), Some(UNSETTLED));
        assert_eq!(slots_held(&h, id).await, 0, "{id}: its slot given back");
    }
    // The held-back message arrives now: it runs nothing.
    h.send_raw(held[0].body().unwrap()).await;
    work_off(&h).await;
    assert_eq!(h.record(&late).await.status, TriggerStatus::Refused);
    assert_eq!(h.stack.executions(&pipeline).await, 1, "only `ran` started");
    assert_eq!(slots_held(&h, &ran).await, 1, "a run keeps its slot");

    // The other order: the settle's message comes after the first got
    // through and started it: it keeps its run and its slot.
    let raced = h.enqueue(&pipeline).await;
    let first = h.stack.drain(&h.stack.queues.queue_url).await;
    clock.advance(Duration::from_secs(11 * 60));
    let answer = h.worker.invoke(settle.clone()).await.unwrap();
    assert_eq!(answer["settled"]["found"], 1);
    let settling = h.stack.drain(&h.stack.queues.queue_url).await;
    assert_eq!(settling.len(), 1);
    h.send_raw(first[0].body().unwrap()).await;
    work_off(&h).await;
    h.send_raw(settling[0].body().unwrap()).await;
    work_off(&h).await;
    let record = h.record(&raced).await;
    assert!(
        record.run_id.is_some() && record.status != TriggerStatus::Refused,
        "{record:?}"
    );
    assert_eq!(slots_held(&h, &raced).await, 1);
    // Nothing is left to settle.
    let answer = h.worker.invoke(settle).await.unwrap();
    assert_eq!(answer["settled"]["found"], 0);
}

#[tokio::test]
async fn a_settle_request_that_is_not_one_fails_the_invocation() {
    let stack = Stack::new().await;
    let pipeline = stack.pipeline("settle").await;
    let h = harness(stack, &pipeline, "3", false).await;
    for bad in [json!({"settle": {}}), json!({"settle": {"queue_url": 1}})] {
        let err = h.worker.invoke(bad.clone()).await.unwrap_err();
        assert!(err.to_string().contains("settle request"), "{bad}: {err}");
    }
}
