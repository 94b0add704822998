//! Nested network quotas on DynamoDB Local, through the handler: many
//! clients of one network at once admit exactly the network's limit, the
//! 429 names the level that ran out and lists every level, and a failed
//! enqueue gives every level its slot back.

mod common;

use common::*;
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::Table;
use shared::rules::client_key::keyed;
use shared::rules::quota::QuotaPolicy;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &[u8] = b"test-secret-of-sufficient-length";

/// Sends every (ip, count) request at once; returns each reply.
async fn burst(h: &Arc<Harness>, requests: Vec<String>) -> Vec<Reply> {
    let tasks = requests.into_iter().map(|ip| {
        let h = h.clone();
        tokio::spawn(async move { h.post_settled(None, &ip).await })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("request task"))
        .collect()
}

fn count(replies: &[Reply], status: u16) -> usize {
    replies.iter().filter(|r| r.status == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_64s_of_one_48_at_once_admit_exactly_the_48s_limit() {
    // Defaults: 3 per client, 6 per /56, 12 per /48.
    let h = Arc::new(harness(&[]).await);
    // 40 clients, each a /64 in a /56 of its own, all of one /48; two
    // requests each, all at once: only the /48 can bind.
    let requests: Vec<String> = (0..80)
        .map(|i| format!("2001:db8:77:{:x}00::{}", i / 2, 1 + i % 2))
        .collect();
    let replies = burst(&h, requests).await;
    assert_eq!(count(&replies, 202), 12, "exactly the /48's limit");
    assert_eq!(count(&replies, 429), 68);
    for refused in replies.iter().filter(|r| r.status == 429) {
        assert_eq!(refused.body["scope"], "network", "{:?}", refused.body);
        assert_eq!(refused.body["network"], "ipv6/48");
        assert_eq!(
            refused.body["type"],
            "urn:pipeline-trigger:problem:network-quota-exceeded"
        );
    }
    assert_eq!(h.queued().await.len(), 12, "one message per acceptance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_56_fills_before_its_48_and_every_level_is_listed() {
    let h = Arc::new(harness(&[]).await);
    // 10 clients of one /56, one request each.
    let requests: Vec<String> = (0..10).map(|i| format!("2001:db8:88:{i:x}::1")).collect();
    let replies = burst(&h, requests).await;
    assert_eq!(count(&replies, 202), 6, "exactly the /56's limit");
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(refused.len(), 4);
    let r = refused[0];
    assert_eq!(r.body["network"], "ipv6/56");
    assert_eq!(
        r.headers["RateLimit-Policy"],
        "\"client\";q=3;w=604800, \"ipv6/56\";q=6;w=604800, \"ipv6/48\";q=12;w=604800"
    );
    let limit = r.headers["RateLimit"].as_str().unwrap();
    assert!(
        limit.starts_with("\"client\";r=3;t=0, \"ipv6/56\";r=0;t=604800, \"ipv6/48\";r=6;t="),
        "{limit}"
    );
    assert_eq!(r.headers["Retry-After"], "604800");
    // An accepted client of the same /56 sees every level in its 202 too.
    let accepted = replies.iter().find(|r| r.status == 202).unwrap();
    assert!(accepted.headers["RateLimit-Policy"]
        .as_str()
        .unwrap()
        .contains("\"ipv6/48\";q=12"));
    // A client of another /56 of the same /48 still has room.
    assert_eq!(h.post_settled(None, "2001:db8:88:100::1").await.status, 202);
}

#[tokio::test]
async fn retry_after_waits_for_every_full_level() {
    let h = harness(&[
        ("QUOTA_LIMIT", "1"),
        ("QUOTA_WINDOW", "1h"),
        ("NETWORK_QUOTA_LIMITS", "ipv6/48=2"),
    ])
    .await;
    assert_eq!(h.post(None, "2001:db8:99:1::1").await.status, 202);
    h.clock.advance(Duration::from_secs(600));
    assert_eq!(h.post(None, "2001:db8:99:2::1").await.status, 202);
    // The first client is full until 50 minutes from now, the /48 until its
    // first slot frees (also 50 minutes): both bind.
    let r = h.post(None, "2001:db8:99:1::1").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers["Retry-After"], "3000");
    h.clock.advance(Duration::from_secs(3000));
    // The /48's first slot and the first client's are free again.
    assert_eq!(h.post(None, "2001:db8:99:1::1").await.status, 202);
    // The /48 is full again (the second client's slot frees in 10 minutes),
    // though a third client has its own room: the /48 binds.
    let r = h.post(None, "2001:db8:99:3::1").await;
    assert_eq!(
        (r.status, r.body["network"].as_str()),
        (429, Some("ipv6/48"))
    );
    assert_eq!(r.headers["Retry-After"], "600");
}

#[tokio::test]
async fn ipv4_levels_apply_to_ipv4_and_to_what_carries_it() {
    let h = harness(&[("NETWORK_QUOTA_LIMITS", "ipv4/24=4")]).await;
    for i in 1..=3 {
        assert_eq!(h.post(None, &format!("198.51.100.{i}")).await.status, 202);
    }
    // 6to4 for 198.51.100.9 is that IPv4 host: its /24 has one slot left.
    assert_eq!(h.post(None, "2002:c633:6409:1::1").await.status, 202);
    let r = h.post(None, "198.51.100.200").await;
    assert_eq!(
        (r.status, r.body["network"].as_str()),
        (429, Some("ipv4/24"))
    );
    // IPv6 clients have no IPv4 level.
    let v6 = h.post(None, "2001:db8:5::1").await;
    assert_eq!(v6.status, 202);
    assert_eq!(v6.headers["RateLimit-Policy"], "\"client\";q=3;w=604800");
}

#[tokio::test]
async fn an_enqueue_that_fails_gives_every_level_its_slot_back() {
    let h = harness_with(&[], Faults::DEAD_QUEUE).await;
    let ip = "2001:db8:aa:1::1";
    let r = h.post(None, ip).await;
    assert_eq!(r.status, 503);
    let table = Table::new(h.stack.dynamodb.clone(), &h.stack.table_name);
    let window = Duration::from_secs(604_800);
    for (canonical, limit) in [
        ("ipv6:2001:db8:aa:1::/64", 3),
        ("ipv6:2001:db8:aa::/56", 6),
        ("ipv6:2001:db8:aa::/48", 12),
    ] {
        let key = keyed(SECRET, canonical);
        let policy = QuotaPolicy { limit, window };
        let level = if canonical.ends_with("/64") {
            QuotaLevel::client(&key, policy)
        } else {
            QuotaLevel::network(&key, policy)
        };
        let slots = table.admission().slots(&level).await.unwrap();
        assert!(slots.iter().all(|&t| t == 0), "{canonical}: {slots:?}");
    }
}
