//! Every response shape out: the one mapping from an error to what the
//! client gets ([`ApiError::to_response`], RFC 9457 problem+json), the IETF
//! RateLimit fields, and the Lambda proxy response.

use crate::rules::inputs::{errors_text, InputError};
use crate::rules::quota::{QuotaPolicy, QuotaStatus};
use crate::rules::time_format::ceil_seconds;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The largest body `POST /trigger` takes, in bytes (after base64 decoding).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// Which budget a 429 came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaScope {
    Client,
    /// A network level, by name (`ipv6/48`, `group:aws`).
    Network(String),
    Global,
    /// A trigger key's own quota.
    Key,
}

impl QuotaScope {
    /// What the 429 names (`"scope"`) and the metrics count by.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Network(_) => "network",
            Self::Global => "global",
            Self::Key => "key",
        }
    }
}

/// One quota level in the IETF RateLimit fields: its policy
/// (`"ipv6/48";q=12;w=604800`) and, when known, where it stands
/// (`"ipv6/48";r=0;t=3600`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitItem {
    /// `client`, `ipv6/48`, `global`.
    pub name: String,
    pub limit: u64,
    pub window_s: u64,
    /// `None`: not known (the item then appears in the policy only).
    pub remaining: Option<u64>,
    pub reset_s: u64,
}

impl LimitItem {
    /// A level's item from its policy and its status.
    pub fn of(name: impl Into<String>, policy: &QuotaPolicy, status: &QuotaStatus) -> Self {
        Self {
            name: name.into(),
            limit: policy.limit as u64,
            window_s: policy.window.as_secs(),
            remaining: Some(status.remaining as u64),
            reset_s: ceil_seconds(status.reset_after_ms),
        }
    }
}

/// Every way a request can fail, each with one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("no such resource")]
    NotFound,
    #[error("method not allowed; use {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("the body is larger than {MAX_BODY_BYTES} bytes")]
    PayloadTooLarge,
    #[error("{0}")]
    MalformedBody(String),
    #[error("unknown pipeline {given:?}; valid pipelines: {}", valid.join(", "))]
    UnknownPipeline { given: String, valid: Vec<String> },
    #[error("invalid inputs: {}", errors_text(.0))]
    InvalidInputs(Vec<InputError>),
    #[error("the request has no usable client address")]
    NoClientAddress,
    #[error("no trigger with this id (it may have expired)")]
    TriggerNotFound,
    #[error("{} exhausted; retry in {retry_after_s} s", scope_words(scope))]
    QuotaExceeded {
        scope: QuotaScope,
        /// Every level that applies, the client's first.
        limits: Vec<LimitItem>,
        retry_after_s: u64,
    },
    #[error("the service is temporarily unavailable; retry in {retry_after_s} s")]
    Unavailable { retry_after_s: u64 },
    /// The reason the operators gave is theirs: it is never shown.
    #[error("this client is blocked by the operators; retry in {retry_after_s} s")]
    Blocked { retry_after_s: u64 },
    /// A browser's POST from another site's page (docs/reference/http-api.md).
    #[error("a trigger from another site's page is refused; trigger from this API's own page, or ask its operators to allow your site")]
    CrossSite,
    /// A trigger key that is malformed, unknown, revoked, past its
    /// rotation's overlap or not for this pipeline: charged nothing, and
    /// never the anonymous lane instead.
    #[error("{0}; ask the operators for a key, or trigger without one")]
    InvalidKey(crate::rules::keys::KeyRefusal),
}

fn scope_words(scope: &QuotaScope) -> String {
    match scope {
        QuotaScope::Client => "quota".into(),
        QuotaScope::Network(name) => format!("the quota of your network ({name})"),
        QuotaScope::Global => "the global budget".into(),
        QuotaScope::Key => "the quota of your trigger key".into(),
    }
}

/// How long a client should wait after a 503.
pub const UNAVAILABLE_RETRY_AFTER_S: u64 = 5;

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound | Self::TriggerNotFound => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::PayloadTooLarge => 413,
            Self::MalformedBody(_)
            | Self::UnknownPipeline { .. }
            | Self::InvalidInputs(_)
            | Self::NoClientAddress => 400,
            Self::InvalidKey(_) => 401,
            Self::Blocked { .. } | Self::CrossSite => 403,
            Self::QuotaExceeded { .. } => 429,
            Self::Unavailable { .. } => 503,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::NotFound => ("not-found", "Not Found"),
            Self::TriggerNotFound => ("trigger-not-found", "Trigger Not Found"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method Not Allowed"),
            Self::PayloadTooLarge => ("payload-too-large", "Payload Too Large"),
            Self::MalformedBody(_) => ("malformed-body", "Malformed Request Body"),
            Self::UnknownPipeline { .. } => ("unknown-pipeline", "Unknown Pipeline"),
            Self::InvalidInputs(_) => ("invalid-inputs", "Invalid Inputs"),
            Self::NoClientAddress => ("no-client-address", "No Client Address"),
            Self::QuotaExceeded {
                scope: QuotaScope::Client,
                ..
            } => ("quota-exceeded", "Trigger Quota Exceeded"),
            Self::QuotaExceeded {
                scope: QuotaScope::Network(_),
                ..
            } => ("network-quota-exceeded", "Network Trigger Quota Exceeded"),
            Self::QuotaExceeded {
                scope: QuotaScope::Global,
                ..
            } => ("global-quota-exceeded", "Global Trigger Budget Exhausted"),
            Self::QuotaExceeded {
                scope: QuotaScope::Key,
                ..
            } => ("key-quota-exceeded", "Trigger Key Quota Exceeded"),
            Self::InvalidKey(_) => ("invalid-key", "Invalid Trigger Key"),
            Self::Unavailable { .. } => ("unavailable", "Service Unavailable"),
            Self::Blocked { .. } => ("blocked", "Client Blocked"),
            Self::CrossSite => ("cross-site", "Cross-Site Trigger Refused"),
        }
    }

    /// The one mapping from an error to what the client gets.
    pub fn to_response(&self) -> HttpResponse {
        let (slug, title) = self.slug_and_title();
        let mut problem = json!({
            "type": format!("urn:pipeline-trigger:problem:{slug}"),
            "title": title,
            "status": self.status(),
            "detail": self.to_string(),
        });
        let mut response = HttpResponse::new(self.status(), "application/problem+json");
        match self {
            Self::MethodNotAllowed { allow } => response.header("Allow", allow),
            Self::UnknownPipeline { valid, .. } => {
                problem["valid_pipelines"] = json!(valid);
            }
            Self::InvalidInputs(errors) => {
                problem["errors"] = errors
                    .iter()
                    .map(|e| json!({"input": e.input, "detail": e.detail}))
                    .collect();
            }
            Self::QuotaExceeded {
                scope,
                limits,
                retry_after_s,
            } => {
                problem["retry_after_seconds"] = json!(retry_after_s);
                problem["scope"] = json!(scope.as_str());
                if let QuotaScope::Network(name) = scope {
                    problem["network"] = json!(name);
                }
                response.header("Retry-After", &retry_after_s.to_string());
                response.rate_limit(limits);
            }
            Self::Unavailable { retry_after_s } | Self::Blocked { retry_after_s } => {
                response.header("Retry-After", &retry_after_s.to_string());
            }
            Self::InvalidKey(_) => {
                response.header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
            }
            _ => {}
        }
        response.body = problem.to_string();
        response
    }
}

/// A response, independent of the payload version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl HttpResponse {
    /// A response without a body (`204`).
    pub fn empty(status: u16) -> Self {
        let mut response = Self {
            status,
            headers: BTreeMap::new(),
            body: String::new(),
        };
        response.header("Cache-Control", "no-store");
        response.header("X-Content-Type-Options", "nosniff");
        response
    }

    /// A text body of `content_type`.
    pub fn text(status: u16, content_type: &str, body: String) -> Self {
        let mut response = Self::new(status, content_type);
        response.body = body;
        response
    }

    fn new(status: u16, content_type: &str) -> Self {
        let mut response = Self::empty(status);
        response.header("Content-Type", content_type);
        response
    }

    pub fn json(status: u16, body: &impl Serialize) -> Self {
        let mut response = Self::new(status, "application/json");
        response.body = serde_json::to_string(body).expect("response bodies always serialize");
        response
    }

    pub fn header(&mut self, name: &str, value: &str) {
        self.headers.insert(name.to_string(), value.to_string());
    }

    /// The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10):
    /// one item per level, in the order given (the client's first).
    pub fn rate_limit(&mut self, limits: &[LimitItem]) {
        let policies: Vec<String> = limits
            .iter()
            .map(|l| format!("\"{}\";q={};w={}", l.name, l.limit, l.window_s))
            .collect();
        let states: Vec<String> = limits
            .iter()
            .filter_map(|l| {
                l.remaining
                    .map(|r| format!("\"{}\";r={r};t={}", l.name, l.reset_s))
            })
            .collect();
        self.header("RateLimit-Policy", &policies.join(", "));
        self.header("RateLimit", &states.join(", "));
    }

    /// The Lambda proxy response; the same shape serves v1 and v2.
    pub fn to_apigw(&self) -> Value {
        json!({
            "statusCode": self.status,
            "headers": self.headers,
            "body": self.body,
            "isBase64Encoded": false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn problem(err: &ApiError) -> (HttpResponse, Value) {
        let response = err.to_response();
        let body: Value = serde_json::from_str(&response.body).unwrap();
        (response, body)
    }

    /// The client level's item: 3 per `window_s` seconds, `remaining`
    /// left, the next slot back in `reset_after_ms`.
    fn client_item(window_s: u64, remaining: usize, reset_after_ms: u64) -> LimitItem {
        let policy = QuotaPolicy {
            limit: 3,
            window: Duration::from_secs(window_s),
        };
        let status = QuotaStatus {
            limit: 3,
            remaining,
            reset_after_ms,
        };
        LimitItem::of("client", &policy, &status)
    }

    /// The 429 of a client that spent its 3 a week, the first back in an
    /// hour.
    fn client_429() -> ApiError {
        ApiError::QuotaExceeded {
            scope: QuotaScope::Client,
            limits: vec![client_item(604_800, 0, 3_600_500)],
            retry_after_s: 3601,
        }
    }

    #[test]
    fn every_error_is_problem_json_with_its_status() {
        let errors = [
            (ApiError::NotFound, 404),
            (ApiError::TriggerNotFound, 404),
            (ApiError::MethodNotAllowed { allow: "POST" }, 405),
            (ApiError::PayloadTooLarge, 413),
            (ApiError::MalformedBody("x".into()), 400),
            (
                ApiError::UnknownPipeline {
                    given: "x".into(),
                    valid: vec!["app".into()],
                },
                400,
            ),
            (ApiError::NoClientAddress, 400),
            (client_429(), 429),
            (ApiError::Unavailable { retry_after_s: 5 }, 503),
            (ApiError::Blocked { retry_after_s: 60 }, 403),
        ];
        let (blocked, body) = problem(&ApiError::Blocked { retry_after_s: 60 });
        assert_eq!(body["type"], "urn:pipeline-trigger:problem:blocked");
        assert_eq!(blocked.headers["Retry-After"], "60");
        for (err, status) in errors {
            let (response, body) = problem(&err);
            assert_eq!(response.status, status);
            assert_eq!(response.headers["Content-Type"], "application/problem+json");
            assert_eq!(body["status"], status);
            for field in ["type", "title", "detail"] {
                assert!(
                    body[field].as_str().is_some_and(|s| !s.is_empty()),
                    "{err:?} {field}"
                );
            }
        }
    }

    #[test]
    fn a_429_carries_retry_after_and_rate_limit_fields() {
        let (response, body) = problem(&client_429());
        assert_eq!(response.headers["Retry-After"], "3601");
        assert_eq!(
            response.headers["RateLimit-Policy"],
            "\"client\";q=3;w=604800"
        );
        assert_eq!(response.headers["RateLimit"], "\"client\";r=0;t=3601");
        assert_eq!(body["retry_after_seconds"], 3601);
    }

    #[test]
    fn a_global_429_names_both_policies() {
        let global = LimitItem {
            name: "global".into(),
            limit: 100,
            window_s: 86_400,
            remaining: Some(0),
            reset_s: 7,
        };
        let err = ApiError::QuotaExceeded {
            scope: QuotaScope::Global,
            limits: vec![client_item(60, 3, 0), global],
            retry_after_s: 7,
        };
        let (response, body) = problem(&err);
        assert_eq!(
            response.headers["RateLimit-Policy"],
            "\"client\";q=3;w=60, \"global\";q=100;w=86400"
        );
        assert_eq!(
            response.headers["RateLimit"],
            "\"client\";r=3;t=0, \"global\";r=0;t=7"
        );
        assert_eq!(
            body["type"],
            "urn:pipeline-trigger:problem:global-quota-exceeded"
        );
    }

    #[test]
    fn a_network_429_names_its_level_and_lists_every_level() {
        let policy = |limit| QuotaPolicy {
            limit,
            window: Duration::from_secs(604_800),
        };
        let status = |limit, remaining, reset_after_ms| QuotaStatus {
            limit,
            remaining,
            reset_after_ms,
        };
        let err = ApiError::QuotaExceeded {
            scope: QuotaScope::Network("ipv6/48".into()),
            limits: vec![
                LimitItem::of("client", &policy(3), &status(3, 3, 0)),
                LimitItem::of("ipv6/56", &policy(6), &status(6, 2, 1_000)),
                LimitItem::of("ipv6/48", &policy(12), &status(12, 0, 90_000)),
            ],
            retry_after_s: 90,
        };
        let (response, body) = problem(&err);
        assert_eq!(response.status, 429);
        assert_eq!(response.headers["Retry-After"], "90");
        assert_eq!(
            response.headers["RateLimit-Policy"],
            "\"client\";q=3;w=604800, \"ipv6/56\";q=6;w=604800, \"ipv6/48\";q=12;w=604800"
        );
        assert_eq!(
            response.headers["RateLimit"],
            "\"client\";r=3;t=0, \"ipv6/56\";r=2;t=1, \"ipv6/48\";r=0;t=90"
        );
        assert_eq!(body["scope"], "network");
        assert_eq!(body["network"], "ipv6/48");
        assert_eq!(
            body["type"],
            "urn:pipeline-trigger:problem:network-quota-exceeded"
        );
        assert!(body["detail"].as_str().unwrap().contains("ipv6/48"));
    }

    #[test]
    fn unknown_pipeline_lists_the_valid_ones() {
        let err = ApiError::UnknownPipeline {
            given: "nope".into(),
            valid: vec!["app".into(), "docs".into()],
        };
        let (_, body) = problem(&err);
        assert!(body["detail"].as_str().unwrap().contains("app, docs"));
        assert_eq!(body["valid_pipelines"], json!(["app", "docs"]));
    }

    #[test]
    fn a_405_says_what_is_allowed() {
        let (response, _) = problem(&ApiError::MethodNotAllowed { allow: "GET" });
        assert_eq!(response.headers["Allow"], "GET");
    }
}
