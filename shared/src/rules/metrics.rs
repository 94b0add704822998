//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: no API
//! call, CloudWatch extracts them from the function's log stream. One line
//! per decision; every metric is a `Count` with the dimension `Function`,
//! plus at most one more (`Scope`, `State`).
//!
//! The names each function publishes (the dashboard draws these):
//! - ingress: `Accepted`, `Rejected` (`Scope` = `client`, `global`, `blocked`),
//!   `Invalid`, `Unavailable`;
//! - worker: `RunsStarted`, `TriggersCoalesced`, `RunsWaiting`, `Retried`,
//!   `DeadLettered`;
//! - notifier: `Emails` (`State` = the pipeline state).

use crate::clock::EpochMillis;
use serde_json::{json, Map, Value};

pub const ACCEPTED: &str = "Accepted";
pub const REJECTED: &str = "Rejected";
pub const INVALID: &str = "Invalid";
pub const UNAVAILABLE: &str = "Unavailable";
pub const RUNS_STARTED: &str = "RunsStarted";
pub const TRIGGERS_COALESCED: &str = "TriggersCoalesced";
pub const RUNS_WAITING: &str = "RunsWaiting";
pub const TRIGGERS_REFUSED: &str = "TriggersRefused";
pub const RETRIED: &str = "Retried";
pub const DEAD_LETTERED: &str = "DeadLettered";
pub const EMAILS: &str = "Emails";

/// The longest namespace CloudWatch accepts.
pub const MAX_NAMESPACE: usize = 255;

/// Is `namespace` one CloudWatch accepts (`METRICS_NAMESPACE`)?
pub fn is_valid_namespace(namespace: &str) -> bool {
    !namespace.is_empty()
        && namespace.len() <= MAX_NAMESPACE
        && !namespace.starts_with(':')
        && !namespace.starts_with("AWS/")
        && namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#:".contains(c))
}

/// One EMF line: `metric` counted once, for `function`, with an optional
/// extra dimension.
pub fn emf_count(
    namespace: &str,
    function: &str,
    metric: &str,
    extra: Option<(&str, &str)>,
    timestamp: EpochMillis,
) -> String {
    let mut dimensions = vec!["Function"];
    let mut root = Map::new();
    root.insert("Function".into(), json!(function));
    if let Some((name, value)) = extra {
        dimensions.push(name);
        root.insert(name.into(), json!(value));
    }
    root.insert(metric.into(), json!(1));
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [dimensions],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        }),
    );
    Value::Object(root).to_string()
}
