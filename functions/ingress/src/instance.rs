//! One warm instance of the ingress: the configuration and the clients
//! `main` built once, and what the instance remembers between requests
//! (the clients it just refused, the keys it just looked up, the network
//! groups it holds). The handler (`lib.rs`) and the charge (`charge.rs`)
//! are its methods.

use crate::groups::HeldGroups;
use shared::aws::queue::WorkQueue;
use shared::aws::table::Table;
use shared::aws::CallCounter;
use shared::clock::{Clock, EpochMillis};
use shared::config::IngressConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::keys::KeyMemory;
use shared::rules::network_groups::Matcher;
use shared::rules::refusals::RefusalMemory;
use std::sync::{Arc, Mutex};

/// The ingress function: one warm instance of it.
pub struct Ingress {
    pub(crate) config: IngressConfig,
    pub(crate) table: Table,
    pub(crate) queue: WorkQueue,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) calls: CallCounter,
    pub(crate) metrics: Metrics,
    /// Whom this instance just refused: a repeat is answered from memory.
    refusals: Mutex<RefusalMemory>,
    /// The trigger keys this instance just looked up.
    keys: Mutex<KeyMemory>,
    /// The network groups this instance holds.
    groups: HeldGroups,
}

impl Ingress {
    /// `calls` is the counter attached to the clients behind `table` and
    /// `queue`; each decision logs how many AWS calls it took.
    pub fn new(
        config: IngressConfig,
        table: Table,
        queue: WorkQueue,
        clock: Arc<dyn Clock>,
        calls: CallCounter,
    ) -> Self {
        Self {
            metrics: Metrics::new(&config.metrics_namespace, "ingress"),
            refusals: Mutex::new(RefusalMemory::new(
                shared::rules::refusals::MAX_REMEMBERED,
                u64::try_from(config.refusal_memory.as_millis()).unwrap_or(u64::MAX),
            )),
            keys: Mutex::new(KeyMemory::new(
                shared::rules::refusals::MAX_REMEMBERED,
                u64::try_from(config.refusal_memory.as_millis()).unwrap_or(u64::MAX),
            )),
            groups: HeldGroups::new(
                config
                    .networks
                    .groups()
                    .iter()
                    .map(|g| g.name.clone())
                    .collect(),
            ),
            config,
            table,
            queue,
            clock,
            calls,
        }
    }

    /// Sends the metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = self.metrics.with_sink(sink);
        self
    }

    /// The refusal memory (a poisoned lock still holds sound entries).
    pub(crate) fn memory(&self) -> std::sync::MutexGuard<'_, RefusalMemory> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys looked up lately.
    pub(crate) fn keys(&self) -> std::sync::MutexGuard<'_, KeyMemory> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The network groups' matcher at `now`: those of `NETWORK_QUOTA_LIMITS`
    /// as this instance holds them, read again from the table when due.
    pub(crate) async fn groups(&self, now: EpochMillis) -> Arc<Matcher> {
        self.groups.matcher(&self.table, &self.calls, now).await
    }
}
