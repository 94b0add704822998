//! The network groups a warm instance holds (`group:NAME=N` levels of
//! `NETWORK_QUOTA_LIMITS`). Loaded by the first anonymous trigger that
//! needs them, not at start (a cold start stays as short as without
//! groups); looked at again at most once every [`RECHECK_MS`] (one read
//! of the index item; the ranges only when a group changed), so an import
//! or a removal reaches the instance within a minute and a trigger costs
//! no AWS call for them otherwise.

use shared::aws::table::Table;
use shared::aws::CallCounter;
use shared::clock::EpochMillis;
use shared::rules::network_groups::{Matcher, Ranges};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::{info, warn};

/// How long the groups held are trusted before the index is read again.
pub const RECHECK_MS: u64 = 50_000;
/// After a failed read, how long before the next try (the groups held
/// meanwhile stay in force).
pub const RETRY_MS: u64 = 5_000;

/// The groups held, and when the index was last read.
#[derive(Debug, Default)]
struct GroupMemory {
    matcher: Arc<Matcher>,
    ranges: BTreeMap<String, Ranges>,
    versions: BTreeMap<String, String>,
    /// When the index may be read again; `None`: never read.
    next_look: Option<EpochMillis>,
}

/// What one instance holds of the network groups it is configured with.
#[derive(Debug)]
pub(crate) struct HeldGroups {
    /// The groups' names (`group:NAME=N` of `NETWORK_QUOTA_LIMITS`).
    names: Vec<String>,
    memory: Mutex<GroupMemory>,
}

impl HeldGroups {
    pub(crate) fn new(names: Vec<String>) -> Self {
        Self {
            names,
            memory: Mutex::default(),
        }
    }

    /// The memory (a poisoned lock still holds sound groups).
    fn memory(&self) -> MutexGuard<'_, GroupMemory> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The groups' matcher at `now`, read again from `table` when it is due
    /// (`calls`: the counter behind the table's client, for the decision's
    /// log line).
    pub(crate) async fn matcher(
        &self,
        table: &Table,
        calls: &CallCounter,
        now: EpochMillis,
    ) -> Arc<Matcher> {
        let names = &self.names;
        let held = {
            let memory = self.memory();
            if names.is_empty() || memory.next_look.is_some_and(|at| now < at) {
                return memory.matcher.clone();
            }
            memory.versions.clone()
        };
        let calls_before = calls.total();
        let loaded = table.network_groups().load(names, &held).await;
        let aws_calls = calls.total() - calls_before;
        let mut memory = self.memory();
        match loaded {
            Ok(loaded) => {
                let before = memory.versions.clone();
                for name in names {
                    if loaded.unreadable.contains(name) {
                        continue;
                    }
                    match (loaded.versions.get(name), loaded.changed.get(name)) {
                        (Some(version), Some(ranges)) => {
                            memory.ranges.insert(name.clone(), ranges.clone());
                            memory.versions.insert(name.clone(), version.clone());
                        }
                        (Some(_), None) => {}
                        (None, _) => {
                            memory.ranges.remove(name);
                            memory.versions.remove(name);
                        }
                    }
                }
                if memory.versions != before {
                    memory.matcher = Arc::new(Matcher::new(&memory.ranges));
                    info!(decision = "groups_loaded", groups = ?memory.versions.keys().collect::<Vec<_>>(),
                          missing = ?names.iter().filter(|n| !memory.versions.contains_key(*n)).collect::<Vec<_>>(),
                          aws_calls, "network groups changed: the ingress matches addresses against them now");
                }
                memory.next_look = Some(now + RECHECK_MS);
            }
            Err(e) => {
                warn!(decision = "groups_unread", error = %e, aws_calls,
                      "could not read the network groups: the ones held stay in force, read again in 5 s");
                memory.next_look = Some(now + RETRY_MS);
            }
        }
        memory.matcher.clone()
    }
}
