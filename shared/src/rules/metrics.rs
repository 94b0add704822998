//! Metrics as CloudWatch Embedded Metric Format (EMF) log lines: no API
//! call, CloudWatch extracts them from the function's log stream. One line
//! per decision; every metric is a `Count` with the dimension `Function`,
//! plus at most one more (`Lane`, `Scope`, `State`).
//!
//! What each function publishes is [`PUBLISHED`] (the dashboard draws
//! every one):
//! - ingress: `Accepted` (`Lane` = [`LANES`]), `Rejected` (`Scope` =
//!   [`REJECTED_SCOPES`]), `Invalid`, `Unavailable`;
//! - worker: `RunsStarted` (`Lane`), `TriggersCoalesced`, `RunsWaiting`,
//!   `TriggersRefused` (behind a full queue; `Lane`), `Retried`,
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

/// One metric the functions publish: the function, its name, and its extra
/// dimension with the values it takes (`None`: `Function` alone; an empty
/// list of values: as configured, such as the states of `NOTIFY_STATES`).
#[derive(Debug, Clone, Copy)]
pub struct Published {
    pub function: &'static str,
    pub metric: &'static str,
    pub dimension: Option<(&'static str, &'static [&'static str])>,
}

/// The scopes a refusal at the ingress is counted under (`Rejected`).
pub const REJECTED_SCOPES: &[&str] = &[
    "client",
    "network",
    "global",
    "key",
    "invalid-key",
    "blocked",
    "cross-site",
];

/// The lanes a trigger comes in (`Lane`): without a key, or with one.
pub const LANES: &[&str] = &["anonymous", "key"];

/// Every metric the functions publish; the dashboard draws each
/// (tests/terraform.rs).
pub const PUBLISHED: &[Published] = &[
    Published {
        function: "ingress",
        metric: ACCEPTED,
        dimension: Some(("Lane", LANES)),
    },
    Published {
        function: "ingress",
        metric: REJECTED,
        dimension: Some(("Scope", REJECTED_SCOPES)),
    },
    Published {
        function: "ingress",
        metric: INVALID,
        dimension: None,
    },
    Published {
        function: "ingress",
        metric: UNAVAILABLE,
        dimension: None,
    },
    Published {
        function: "worker",
        metric: RUNS_STARTED,
        dimension: Some(("Lane", LANES)),
    },
    Published {
        function: "worker",
        metric: TRIGGERS_COALESCED,
        dimension: None,
    },
    Published {
        function: "worker",
        metric: RUNS_WAITING,
        dimension: None,
    },
    Published {
        function: "worker",
        metric: TRIGGERS_REFUSED,
        dimension: Some(("Lane", LANES)),
    },
    Published {
        function: "worker",
        metric: RETRIED,
        dimension: None,
    },
    Published {
        function: "worker",
        metric: DEAD_LETTERED,
        dimension: None,
    },
    Published {
        function: "notifier",
        metric: EMAILS,
        dimension: Some(("State", &[])),
    },
];

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
