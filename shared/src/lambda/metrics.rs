//! Where a function's metric lines go: stdout under Lambda (CloudWatch Logs
//! extracts Embedded Metric Format lines from the log stream: no API call),
//! a collector in the local stack and in tests. The lines themselves are
//! [`crate::rules::metrics`].

use crate::rules::metrics::emf_count;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where lines go.
#[derive(Debug, Clone, Default)]
pub enum MetricsSink {
    /// Standard output, one line each (Lambda).
    #[default]
    Stdout,
    /// Kept in memory, in order (the local stack, tests).
    Collect(Arc<Mutex<Vec<String>>>),
}

impl MetricsSink {
    /// A collector and the lines it holds.
    pub fn collector() -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (Self::Collect(lines.clone()), lines)
    }
}

/// One function's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    function: &'static str,
    sink: MetricsSink,
}

impl Metrics {
    /// Lines on stdout under `namespace` (`METRICS_NAMESPACE`).
    pub fn new(namespace: &str, function: &'static str) -> Self {
        Self {
            namespace: namespace.to_string(),
            function,
            sink: MetricsSink::Stdout,
        }
    }

    pub fn with_sink(mut self, sink: MetricsSink) -> Self {
        self.sink = sink;
        self
    }

    /// Counts `metric` once (with an extra dimension when given).
    pub fn count(&self, metric: &str, extra: Option<(&str, &str)>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let line = emf_count(&self.namespace, self.function, metric, extra, now);
        match &self.sink {
            MetricsSink::Stdout => println!("{line}"),
            MetricsSink::Collect(lines) => {
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line)
            }
        }
    }
}
