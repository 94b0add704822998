//! The quota across the whole system.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_holds_across_the_whole_system() {
    // Without coalescing, so that every accepted trigger is one execution.
    let harness = Harness::start(&[("PIPELINE_SETTINGS", ALONE)], None).await;
    let client = client_from(Ipv4Addr::new(127, 0, 0, 13));
    let mut ids = Vec::new();
    for n in 1..=3 {
        let accepted = post(&client, &harness, "").await;
        assert_eq!(accepted.status, 202, "trigger {n}: {:?}", accepted.body);
        assert_eq!(accepted.body["quota"]["remaining"], 3 - n);
        ids.push(accepted.body["trigger_id"].as_str().unwrap().to_string());
    }
    let refused = post(&client, &harness, "").await;
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let retry_after: u64 = refused
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(
        retry_after > 0 && retry_after <= 7 * 86_400,
        "{retry_after}"
    );

    // Another client is not affected by the first one's quota.
    let other = post(&client_from(Ipv4Addr::new(127, 0, 0, 14)), &harness, "").await;
    assert_eq!(other.status, 202, "{:?}", other.body);
    ids.push(other.body["trigger_id"].as_str().unwrap().to_string());

    for id in &ids {
        harness.status_becomes(&client, id, "succeeded").await;
    }
    harness.settled().await;
    assert_eq!(
        harness.executions(&harness.app).await,
        4,
        "3 + 1 accepted, the refused one never ran"
    );
    harness.stack.stop().await;
}
