//! A warm instance's memory of whom it just refused, so that a client who
//! keeps knocking costs no AWS call (docs/reference/http-api.md, "Quota
//! levels"). Each refusal is remembered under the key of the level that
//! refused — the client, a network, the global budget — for at most
//! [`REMEMBER_MS`] and never past its own `Retry-After`; the answer from
//! memory is the same refusal with its times shortened by the time since.
//!
//! Memory is bounded ([`MAX_REMEMBERED`] keys): a flood of distinct
//! addresses makes the oldest entries go first, never the memory grow.
//! What memory may get wrong is bounded too: a slot given back within the
//! minute (a trigger refused behind a full queue) is seen at the first
//! check after the memory ends.

use super::http::response::ApiError;
use crate::clock::EpochMillis;
use std::collections::{HashMap, VecDeque};

/// The longest a refusal is remembered (`REFUSAL_MEMORY` may shorten it,
/// down to 0: off). An operator's unblock or reset reaches a warm instance
/// at most this long later.
pub const REMEMBER_MS: u64 = 60_000;
/// The most keys remembered at once (each entry is a few hundred bytes).
pub const MAX_REMEMBERED: usize = 10_000;
/// The key the global budget's refusals are remembered under.
pub const GLOBAL: &str = "global";

#[derive(Debug, Clone)]
struct Entry {
    error: ApiError,
    refused_at: EpochMillis,
    until: EpochMillis,
    /// Which insertion this is (older queue positions of the key are stale).
    seq: u64,
}

/// The refusals an instance remembers, by key.
#[derive(Debug)]
pub struct RefusalMemory {
    entries: HashMap<String, Entry>,
    order: VecDeque<(String, u64)>,
    capacity: usize,
    remember_ms: u64,
    seq: u64,
}

impl Default for RefusalMemory {
    fn default() -> Self {
        Self::with_capacity(MAX_REMEMBERED)
    }
}

impl RefusalMemory {
    pub fn with_capacity(capacity: usize) -> Self {
        Self::new(capacity, REMEMBER_MS)
    }

    /// At most `capacity` keys, each for at most `remember_ms` (capped at
    /// [`REMEMBER_MS`]; 0 remembers nothing).
    pub fn new(capacity: usize, remember_ms: u64) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            remember_ms: remember_ms.min(REMEMBER_MS),
            seq: 0,
        }
    }

    /// How many keys are remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Remembers `error` (a 429 or a 403 blocked) under `key` until its
    /// `Retry-After` or [`REMEMBER_MS`], whichever comes first.
    pub fn remember(&mut self, key: &str, error: ApiError, now: EpochMillis) {
        let Some(retry_after_s) = retry_after_s(&error) else {
            return;
        };
        if self.remember_ms == 0 {
            return;
        }
        let until = now + self.remember_ms.min(retry_after_s.saturating_mul(1000));
        while self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            self.evict_one(now);
        }
        self.seq += 1;
        self.entries.insert(
            key.to_string(),
            Entry {
                error,
                refused_at: now,
                until,
                seq: self.seq,
            },
        );
        self.order.push_back((key.to_string(), self.seq));
        // Stale positions (keys remembered again) must not pile up.
        if self.order.len() > 2 * self.capacity {
            let entries = &self.entries;
            self.order
                .retain(|(k, seq)| entries.get(k).is_some_and(|e| e.seq == *seq));
        }
    }

    /// Drops the oldest remembered key (an expired one if the oldest is).
    fn evict_one(&mut self, now: EpochMillis) {
        while let Some((key, seq)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|e| e.seq == seq) {
                self.entries.remove(&key);
                return;
            }
        }
        // The order lost track (it cannot, but memory must stay bounded).
        self.entries.retain(|_, e| e.until > now);
        if self.entries.len() >= self.capacity {
            self.entries.clear();
        }
    }

    /// The refusal in force for the first of `keys` that has one, its
    /// times shortened by the time since it was made. `own` is the asking
    /// client's key: a refusal remembered under another key (its network's,
    /// the global budget's) says nothing of this client's own quota, so its
    /// client item keeps only its policy.
    pub fn recall(&mut self, keys: &[&str], own: &str, now: EpochMillis) -> Option<ApiError> {
        for key in keys {
            let Some(entry) = self.entries.get(*key) else {
                continue;
            };
            if entry.until <= now {
                self.entries.remove(*key);
                continue;
            }
            let elapsed_s = (now - entry.refused_at) / 1000;
            return Some(aged(&entry.error, elapsed_s, *key == own));
        }
        None
    }
}

fn retry_after_s(error: &ApiError) -> Option<u64> {
    match error {
        ApiError::QuotaExceeded { retry_after_s, .. } | ApiError::Blocked { retry_after_s } => {
            Some(*retry_after_s)
        }
        _ => None,
    }
}

/// `error` as it stands `elapsed_s` later.
fn aged(error: &ApiError, elapsed_s: u64, own_key: bool) -> ApiError {
    let later = |s: u64| s.saturating_sub(elapsed_s).max(1);
    match error {
        ApiError::QuotaExceeded {
            scope,
            limits,
            retry_after_s,
        } => ApiError::QuotaExceeded {
            scope: scope.clone(),
            limits: limits
                .iter()
                .map(|item| {
                    let mut item = item.clone();
                    item.reset_s = item.reset_s.saturating_sub(elapsed_s);
                    if !own_key && item.name == "client" {
                        item.remaining = None;
                    }
                    item
                })
                .collect(),
            retry_after_s: later(*retry_after_s),
        },
        ApiError::Blocked { retry_after_s } => ApiError::Blocked {
            retry_after_s: later(*retry_after_s),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::http::response::{LimitItem, QuotaScope};
    use proptest::prelude::*;

    fn quota(scope: QuotaScope, retry_after_s: u64) -> ApiError {
        ApiError::QuotaExceeded {
            scope,
            limits: vec![
                LimitItem {
                    name: "client".into(),
                    limit: 3,
                    window_s: 604_800,
                    remaining: Some(0),
                    reset_s: retry_after_s,
                },
                LimitItem {
                    name: "ipv6/48".into(),
                    limit: 12,
                    window_s: 604_800,
                    remaining: Some(0),
                    reset_s: retry_after_s,
                },
            ],
            retry_after_s,
        }
    }

    #[test]
    fn a_refusal_is_recalled_aged_for_a_minute_at_most() {
        let mut memory = RefusalMemory::default();
        memory.remember("c1", quota(QuotaScope::Client, 3600), 1_000);
        let Some(ApiError::QuotaExceeded {
            retry_after_s,
            limits,
            ..
        }) = memory.recall(&["c1"], "c1", 31_000)
        else {
            panic!("remembered")
        };
        assert_eq!(retry_after_s, 3570);
        assert_eq!(limits[0].reset_s, 3570);
        assert_eq!(limits[0].remaining, Some(0));
        assert!(
            memory.recall(&["c1"], "c1", 61_000).is_none(),
            "60 s at most"
        );
        assert!(memory.is_empty(), "an expired entry is dropped when seen");
    }

    #[test]
    fn never_past_the_refusals_own_retry_after() {
        let mut memory = RefusalMemory::default();
        memory.remember("c1", ApiError::Blocked { retry_after_s: 5 }, 0);
        assert!(matches!(
            memory.recall(&["c1"], "c1", 4_999),
            Some(ApiError::Blocked { retry_after_s: 1 })
        ));
        assert!(memory.recall(&["c1"], "c1", 5_000).is_none());
    }

    #[test]
    fn a_networks_refusal_answers_its_other_clients_without_their_own_figures() {
        let mut memory = RefusalMemory::default();
        memory.remember("net", quota(QuotaScope::Network("ipv6/48".into()), 600), 0);
        let Some(ApiError::QuotaExceeded { scope, limits, .. }) =
            memory.recall(&["other-client", "net"], "other-client", 1_000)
        else {
            panic!("the network's refusal")
        };
        assert_eq!(scope, QuotaScope::Network("ipv6/48".into()));
        assert_eq!(
            limits[0].remaining, None,
            "this client's own quota is not known"
        );
        assert_eq!(limits[1].remaining, Some(0));
    }

    #[test]
    fn a_shorter_memory_or_none_at_all() {
        let mut memory = RefusalMemory::new(10, 2_000);
        memory.remember(
            "c1",
            ApiError::Blocked {
                retry_after_s: 3600,
            },
            0,
        );
        assert!(memory.recall(&["c1"], "c1", 1_999).is_some());
        assert!(memory.recall(&["c1"], "c1", 2_000).is_none());
        let mut off = RefusalMemory::new(10, 0);
        off.remember(
            "c1",
            ApiError::Blocked {
                retry_after_s: 3600,
            },
            0,
        );
        assert!(off.is_empty());
    }

    #[test]
    fn only_refusals_with_a_retry_after_are_remembered() {
        let mut memory = RefusalMemory::default();
        memory.remember("c1", ApiError::NotFound, 0);
        memory.remember("c2", ApiError::Unavailable { retry_after_s: 5 }, 0);
        assert!(memory.is_empty());
    }

    proptest! {
        /// However many distinct keys are refused, memory never holds more
        /// than its capacity, and the newest refusal is always recalled.
        #[test]
        fn memory_stays_bounded_and_keeps_the_newest(
            keys in proptest::collection::vec(0u32..500, 1..2000),
            capacity in 1usize..64,
        ) {
            let mut memory = RefusalMemory::with_capacity(capacity);
            for (i, key) in keys.iter().enumerate() {
                let key = key.to_string();
                memory.remember(&key, ApiError::Blocked { retry_after_s: 30 }, i as u64);
                prop_assert!(memory.len() <= capacity);
                prop_assert!(memory.order.len() <= 2 * capacity + 1);
                prop_assert!(memory.recall(&[&key], &key, i as u64).is_some());
            }
        }
    }
}
