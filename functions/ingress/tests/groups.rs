//! Network groups through the handler on DynamoDB Local: every address of
//! a group shares its quota exactly, the 429 names the group, a warm
//! instance asks the table about groups at most once a minute, and an
//! import or a removal is in force within that minute.

mod common;

use common::*;
use shared::aws::table::Table;
use shared::rules::network_groups::parse_ranges;
use std::sync::Arc;
use std::time::Duration;

const GROUPS: (&str, &str) = ("NETWORK_QUOTA_LIMITS", "group:hosting=4");

impl Harness {
    async fn import(&self, name: &str, networks: &str) {
        let parsed = parse_ranges(networks.as_bytes()).unwrap();
        Table::new(self.stack.dynamodb.clone(), &self.stack.table_name)
            .network_groups()
            .import(name, &parsed, "test", START_MS)
            .await
            .unwrap();
    }

    async fn remove(&self, name: &str) {
        Table::new(self.stack.dynamodb.clone(), &self.stack.table_name)
            .network_groups()
            .remove(name)
            .await
            .unwrap()
            .expect("the group was there");
    }
}

/// An instance whose table calls are recorded, key by key.
struct Recorded {
    ingress: ingress::Ingress,
    keys: testkit::keys::KeyLog,
}

impl Recorded {
    fn of(h: &Harness) -> Self {
        let keys = testkit::keys::KeyLog::default();
        let dynamodb = testkit::keys::recording(h.stack.dynamodb.clone(), &keys);
        Self {
            ingress: h.instance_with(dynamodb),
            keys,
        }
    }

    /// The answer to a trigger from `ip`, and how many reads of network
    /// group items (`netgroup#…`) it took.
    async fn post(&self, ip: &str) -> (u64, usize) {
        let start = self.keys.len();
        let out = handle_settled(&self.ingress, rest_event("POST", "/trigger", None, ip)).await;
        let reads = self
            .keys
            .since(start)
            .iter()
            .filter(|(_, pk)| pk.starts_with("netgroup#"))
            .count();
        (out["statusCode"].as_u64().unwrap(), reads)
    }
}

#[tokio::test]
async fn every_address_of_a_group_shares_its_quota_and_the_429_names_it() {
    let h = harness(&[GROUPS]).await;
    h.import("hosting", "198.51.100.0/24\n2001:db8:4000::/36\n")
        .await;
    for ip in [
        "198.51.100.1",
        "198.51.100.2",
        "2001:db8:4000:1::1",
        "2001:db8:4abc::7",
    ] {
        let accepted = h.post(None, ip).await;
        assert_eq!(accepted.status, 202, "{ip}: {}", accepted.body);
        let policy = accepted.headers["RateLimit-Policy"].as_str().unwrap();
        assert!(
            policy.contains("\"group:hosting\";q=4;w=604800"),
            "{policy}"
        );
    }
    let refused = h.post(None, "198.51.100.3").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["scope"], "network");
    assert_eq!(refused.body["network"], "group:hosting");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("group:hosting"));
    assert!(
        refused.headers["Retry-After"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    // An address outside the group is not held by it.
    let outside = h.post(None, "203.0.113.9").await;
    assert_eq!(outside.status, 202);
    assert!(!outside.headers["RateLimit-Policy"]
        .as_str()
        .unwrap()
        .contains("group:"));
    // A keyed trigger from inside the group is charged to its key only.
    let key = h
        .stack
        .create_key("ci", &[], shared::rules::keys::DEFAULT_KEY_QUOTA)
        .await;
    let keyed = h
        .send(testkit::keyed_event("/trigger", None, "198.51.100.4", &key))
        .await;
    assert_eq!(keyed.status, 202, "{}", keyed.body);
    assert_eq!(h.queued().await.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_triggers_from_a_group_admit_exactly_its_limit() {
    let h = Arc::new(harness(&[GROUPS]).await);
    h.import("hosting", "198.51.100.0/24\n").await;
    let tasks = (1..=30).map(|n| {
        let h = h.clone();
        tokio::spawn(async move { h.post_settled(None, &format!("198.51.100.{n}")).await })
    });
    let replies: Vec<Reply> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(replies.iter().filter(|r| r.status == 202).count(), 4);
    assert_eq!(replies.iter().filter(|r| r.status == 429).count(), 26);
}

#[tokio::test]
async fn a_warm_instance_asks_about_groups_once_a_minute_and_follows_imports_and_removals() {
    let h = harness(&[GROUPS]).await;
    h.import("hosting", "198.51.100.0/24\n").await;
    let warm = Recorded::of(&h);
    // The first anonymous trigger loads the group: its index, its piece.
    assert_eq!(warm.post("198.51.100.1").await, (202, 2));
    // Then, within the minute: no read about groups at all.
    for n in 2..=4 {
        h.clock.advance(Duration::from_secs(10));
        assert_eq!(
            warm.post(&format!("198.51.100.{n}")).await,
            (202, 0),
            "trigger {n}"
        );
    }
    // The group now covers 192.0.2.0/24 instead. Until the instance looks
    // again, the old ranges hold; after, the new ones (the group's quota
    // is the name's: already used up).
    h.import("hosting", "192.0.2.0/24\n").await;
    assert_eq!(warm.post("198.51.100.5").await, (429, 0));
    assert_eq!(warm.post("192.0.2.1").await, (202, 0));
    h.clock.advance(Duration::from_secs(21));
    assert_eq!(
        warm.post("198.51.100.6").await,
        (202, 2),
        "out of the group now"
    );
    assert_eq!(warm.post("192.0.2.2").await, (429, 0));
    // An unchanged group costs the index only, once a minute.
    h.clock.advance(Duration::from_secs(51));
    assert_eq!(warm.post("203.0.113.1").await, (202, 1));
    // Removed: within a minute the addresses are free of it.
    h.remove("hosting").await;
    h.clock.advance(Duration::from_secs(51));
    assert_eq!(warm.post("192.0.2.3").await, (202, 1));
    // A group NETWORK_QUOTA_LIMITS does not name is never read.
    let plain = harness(&[]).await;
    plain.import("hosting", "198.51.100.0/24\n").await;
    assert_eq!(Recorded::of(&plain).post("198.51.100.1").await, (202, 0));
}
