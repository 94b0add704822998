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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    Client,
    Global { limit: u64, window_s: u64 },
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
    #[error("quota exhausted; retry in {retry_after_s} s")]
    QuotaExceeded {
        scope: QuotaScope,
        policy: QuotaPolicy,
        client: QuotaStatus,
        retry_after_s: u64,
    },
    #[error("the service is temporarily unavailable; retry in {retry_after_s} s")]
    Unavailable { retry_after_s: u64 },
    /// The reason the operators gave is theirs: it is never shown.
    #[error("this client is blocked by the operators; retry in {retry_after_s} s")]
    Blocked { retry_after_s: u64 },
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
            Self::Blocked { .. } => 403,
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
                scope: QuotaScope::Global { .. },
                ..
            } => ("global-quota-exceeded", "Global Trigger Budget Exhausted"),
            Self::Unavailable { .. } => ("unavailable", "Service Unavailable"),
            Self::Blocked { .. } => ("blocked", "Client Blocked"),
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
                policy,
                client,
                retry_after_s,
            } => {
                problem["retry_after_seconds"] = json!(retry_after_s);
                response.header("Retry-After", &retry_after_s.to_string());
                response.rate_limit(policy, client, *scope, *retry_after_s);
            }
            Self::Unavailable { retry_after_s } | Self::Blocked { retry_after_s } => {
                response.header("Retry-After", &retry_after_s.to_string());
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

    /// The IETF RateLimit fields (draft-ietf-httpapi-ratelimit-headers-10).
    pub fn rate_limit(
        &mut self,
        policy: &QuotaPolicy,
        client: &QuotaStatus,
        scope: QuotaScope,
        global_reset_s: u64,
    ) {
        let mut policies = format!(
            "\"client\";q={};w={}",
            policy.limit,
            policy.window.as_secs()
        );
        let mut limits = format!(
            "\"client\";r={};t={}",
            client.remaining,
            ceil_seconds(client.reset_after_ms)
        );
        if let QuotaScope::Global { limit, window_s } = scope {
            policies.push_str(&format!(", \"global\";q={limit};w={window_s}"));
            limits.push_str(&format!(", \"global\";r=0;t={global_reset_s}"));
        }
        self.header("RateLimit-Policy", &policies);
        self.header("RateLimit", &limits);
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

    #[test]
    fn every_error_is_problem_json_with_its_status() {
        let policy = QuotaPolicy {
            limit: 3,
            window: Duration::from_secs(604_800),
        };
        let client = QuotaStatus {
            limit: 3,
            remaining: 0,
            reset_after_ms: 3_600_500,
        };
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
            (
                ApiError::QuotaExceeded {
                    scope: QuotaScope::Client,
                    policy,
                    client,
                    retry_after_s: 3601,
                },
                429,
            ),
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
        let policy = QuotaPolicy {
            limit: 3,
            window: Duration::from_secs(604_800),
        };
        let client = QuotaStatus {
            limit: 3,
            remaining: 0,
            reset_after_ms: 3_600_500,
        };
        let err = ApiError::QuotaExceeded {
            scope: QuotaScope::Client,
            policy,
            client,
            retry_after_s: 3601,
        };
        let (response, body) = problem(&err);
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
        let policy = QuotaPolicy {
            limit: 3,
            window: Duration::from_secs(60),
        };
        let client = QuotaStatus {
            limit: 3,
            remaining: 3,
            reset_after_ms: 0,
        };
        let scope = QuotaScope::Global {
            limit: 100,
            window_s: 86_400,
        };
        let err = ApiError::QuotaExceeded {
            scope,
            policy,
            client,
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
