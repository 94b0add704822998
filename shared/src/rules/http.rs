//! The HTTP API, without I/O: API Gateway events in (REST v1 and HTTP API v2
//! proxy payloads), routes, the trigger body, and every response shape out,
//! errors as RFC 9457 problem+json through the one mapping [`ApiError::to_response`].

use crate::rules::inputs::{errors_text, InputError};

use crate::rules::pipelines::PipelineSettings;
use crate::rules::pipelines::Pipelines;
use crate::rules::quota::{QuotaPolicy, QuotaStatus};
use crate::rules::time_format::ceil_seconds;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The largest body `POST /trigger` takes, in bytes (after base64 decoding).
pub const MAX_BODY_BYTES: usize = 8 * 1024;

/// An invocation that is not an API Gateway HTTP event at all.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not an API Gateway proxy event: {0}")]
    NotHttp(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadVersion {
    /// REST API proxy integration.
    V1,
    /// HTTP API, payload format 2.0.
    V2,
}

/// What the ingress needs of an HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub version: PayloadVersion,
    pub method: String,
    /// Path without the stage prefix, e.g. `/trigger`.
    pub path: String,
    /// What stands before [`Self::path`] in the path the client addressed:
    /// the REST API stage (`/prod`), a custom domain's base path (`/api`),
    /// an HTTP API named stage, or nothing. Links back into the API start
    /// with it, so they resolve where the client is.
    pub base_path: String,
    /// The address API Gateway saw; never a client-supplied header.
    pub source_ip: Option<String>,
    /// The `Origin` header (a browser's request from another site), for CORS.
    pub origin: Option<String>,
    body: Option<String>,
    body_is_base64: bool,
}

#[derive(Deserialize)]
struct RawEvent {
    version: Option<String>,
    #[serde(rename = "httpMethod")]
    http_method: Option<String>,
    path: Option<String>,
    #[serde(rename = "rawPath")]
    raw_path: Option<String>,
    body: Option<String>,
    #[serde(rename = "isBase64Encoded", default)]
    is_base64_encoded: bool,
    /// Header names as sent (v1) or in lower case (v2); values may be null.
    headers: Option<serde_json::Map<String, Value>>,
    #[serde(rename = "requestContext")]
    request_context: Option<RawContext>,
}

#[derive(Deserialize)]
struct RawContext {
    stage: Option<String>,
    /// REST API: the path as the client addressed it (stage or base path
    /// included).
    path: Option<String>,
    identity: Option<RawIdentity>,
    http: Option<RawHttp>,
}

#[derive(Deserialize)]
struct RawIdentity {
    #[serde(rename = "sourceIp")]
    source_ip: Option<String>,
}

#[derive(Deserialize)]
struct RawHttp {
    method: Option<String>,
    #[serde(rename = "sourceIp")]
    source_ip: Option<String>,
}

/// Reads an API Gateway proxy event (v1 or v2).
pub fn parse_event(event: &Value) -> Result<HttpRequest, EventError> {
    let raw: RawEvent =
        serde_json::from_value(event.clone()).map_err(|e| EventError::NotHttp(e.to_string()))?;
    let context = raw
        .request_context
        .ok_or_else(|| EventError::NotHttp("no requestContext".into()))?;
    let (version, method, path, source_ip) = match (&raw.version, &context.http) {
        (Some(v), Some(http)) if v == "2.0" => {
            let method = http
                .method
                .clone()
                .ok_or_else(|| EventError::NotHttp("no requestContext.http.method".into()))?;
            let path = raw
                .raw_path
                .clone()
                .ok_or_else(|| EventError::NotHttp("no rawPath".into()))?;
            (PayloadVersion::V2, method, path, http.source_ip.clone())
        }
        _ => {
            let method = raw
                .http_method
                .clone()
                .ok_or_else(|| EventError::NotHttp("no httpMethod".into()))?;
            let path = raw
                .path
                .clone()
                .ok_or_else(|| EventError::NotHttp("no path".into()))?;
            let ip = context.identity.as_ref().and_then(|i| i.source_ip.clone());
            (PayloadVersion::V1, method, path, ip)
        }
    };
    let (base_path, path) = match version {
        PayloadVersion::V1 => (rest_base_path(context.path.as_deref(), &path), path),
        PayloadVersion::V2 => {
            let routed = strip_stage(&path, context.stage.as_deref());
            let base = path[..path.len() - routed.len().min(path.len())].to_string();
            (safe_base_path(&base), routed)
        }
    };
    let origin = raw.headers.as_ref().and_then(|headers| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("origin"))
            .and_then(|(_, value)| value.as_str())
            .map(str::to_string)
    });
    Ok(HttpRequest {
        version,
        method: method.to_ascii_uppercase(),
        path,
        base_path,
        source_ip,
        origin,
        body: raw.body,
        body_is_base64: raw.is_base64_encoded,
    })
}

/// HTTP API paths carry a named stage (`/prod/trigger`); REST paths do not.
fn strip_stage(path: &str, stage: Option<&str>) -> String {
    if let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") {
        let prefix = format!("/{stage}");
        if let Some(rest) = path.strip_prefix(&prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return if rest.is_empty() {
                    "/".into()
                } else {
                    rest.into()
                };
            }
        }
    }
    path.to_string()
}

/// REST API: the prefix the client's path (`requestContext.path`) has before
/// the resource path (`path`): `/prod` for `/prod/trigger`, `/api` behind a
/// custom domain's base path, empty when they are the same or do not match.
fn rest_base_path(addressed: Option<&str>, path: &str) -> String {
    let base = addressed
        .and_then(|addressed| {
            // The stage's root addressed without its slash: `/prod` for `/`.
            addressed
                .strip_suffix(path)
                .or_else(|| (path == "/").then_some(addressed))
        })
        .unwrap_or("");
    safe_base_path(base)
}

/// A base path fit to start a link: `/` and then path characters, never two
/// slashes at the start (a link to another host) nor anything that could
/// break a header; anything else becomes empty (links from the root).
fn safe_base_path(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let safe = base.len() <= 256
        && base.starts_with('/')
        && !base.starts_with("//")
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%!$&'()*+,;=:@".contains(&b));
    if safe {
        base.to_string()
    } else {
        String::new()
    }
}

impl HttpRequest {
    /// The body bytes: at most [`MAX_BODY_BYTES`], base64 decoded if flagged.
    pub fn body_bytes(&self) -> Result<Vec<u8>, ApiError> {
        let Some(body) = self.body.as_deref() else {
            return Ok(Vec::new());
        };
        if !self.body_is_base64 {
            if body.len() > MAX_BODY_BYTES {
                return Err(ApiError::PayloadTooLarge);
            }
            return Ok(body.as_bytes().to_vec());
        }
        // Refuse before decoding anything huge: 4 characters carry 3 bytes.
        if body.len() > MAX_BODY_BYTES.div_ceil(3) * 4 + 4 {
            return Err(ApiError::PayloadTooLarge);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|e| ApiError::MalformedBody(format!("the body is not valid base64: {e}")))?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        Ok(bytes)
    }
}

/// The operations of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    PostTrigger,
    /// The public catalog.
    GetPipelines,
    /// The id exactly as it appeared in the path (validated later).
    GetTrigger(String),
    /// The public page (`GET /`).
    Page,
    /// One of the page's files, by name (`GET /assets/<name>`).
    Asset(String),
    /// `OPTIONS` (a CORS preflight) on a route that takes `methods`.
    Preflight {
        methods: &'static str,
    },
}

/// The routes as API Gateway declares them (Terraform's resources), with
/// their methods: the ingress answers exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("/", "GET"),
    ("/assets/{file}", "GET"),
    ("/pipelines", "GET, OPTIONS"),
    ("/trigger", "POST, OPTIONS"),
    ("/triggers/{id}", "GET, OPTIONS"),
];

/// Which operation a method and path name.
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    if path == "/" || path.is_empty() {
        return match method {
            "GET" => Ok(Route::Page),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        };
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let (only, route) = if path == "/trigger" {
        ("POST", Route::PostTrigger)
    } else if path == "/pipelines" {
        ("GET", Route::GetPipelines)
    } else if let Some(id) = path
        .strip_prefix("/triggers/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        ("GET", Route::GetTrigger(id.to_string()))
    } else if let Some(name) = path
        .strip_prefix("/assets/")
        .filter(|name| !name.is_empty() && !name.contains('/'))
    {
        return match method {
            "GET" => Ok(Route::Asset(name.to_string())),
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        };
    } else {
        return Err(ApiError::NotFound);
    };
    match method {
        m if m == only => Ok(route),
        "OPTIONS" => Ok(Route::Preflight { methods: only }),
        _ => Err(ApiError::MethodNotAllowed { allow: only }),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    pipeline: Option<String>,
    inputs: Option<Value>,
}

/// What a `POST /trigger` body asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TriggerRequest {
    /// The public pipeline name; `None`: the default target.
    pub pipeline: Option<String>,
    /// The input values as sent (checked against the pipeline's inputs later).
    pub inputs: Option<Value>,
}

/// A `POST /trigger` body: empty, or `{"pipeline": …, "inputs": {…}}`.
/// Read as JSON whatever the Content-Type says.
pub fn parse_trigger_body(bytes: &[u8]) -> Result<TriggerRequest, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::MalformedBody("the body is not UTF-8 text".into()))?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(TriggerRequest::default());
    }
    if !text.starts_with('{') {
        return Err(ApiError::MalformedBody(
            "the body must be empty or a JSON object like {\"pipeline\": \"name\", \"inputs\": {}}"
                .into(),
        ));
    }
    let body: TriggerBody = serde_json::from_str(text).map_err(|e| {
        ApiError::MalformedBody(format!("the body is not a valid trigger request: {e}"))
    })?;
    match &body.pipeline {
        Some(name) if name.is_empty() => Err(ApiError::MalformedBody(
            "\"pipeline\" must not be empty".into(),
        )),
        _ => Ok(TriggerRequest {
            pipeline: body.pipeline,
            inputs: body.inputs,
        }),
    }
}

/// `GET /pipelines`: the public catalog, in `PIPELINES` order; public names
/// only, never a CodePipeline name.
pub fn catalog_response(pipelines: &Pipelines, settings: &PipelineSettings) -> HttpResponse {
    let default = &pipelines.default_pipeline().public;
    let entries: Vec<Value> = pipelines
        .iter()
        .map(|pipeline| {
            let setting = settings.of(&pipeline.public);
            let mut entry = json!({
                "name": pipeline.public,
                "default": &pipeline.public == default,
                "inputs": setting.inputs.to_json(),
            });
            if let Some(description) = &setting.description {
                entry["description"] = json!(description);
            }
            entry
        })
        .collect();
    HttpResponse::json(200, &json!({ "pipelines": entries }))
}

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

/// The `quota` object of a 202.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuotaBody {
    pub limit: usize,
    pub remaining: usize,
    pub resets_at: String,
}

/// The body of a 202.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AcceptedBody {
    pub trigger_id: String,
    pub status: &'static str,
    pub pipeline: String,
    /// Every input of the pipeline, defaults filled in.
    pub inputs: Value,
    pub status_url: String,
    pub quota: QuotaBody,
}

/// The path of a trigger's status, as the client addresses the API
/// (`base_path`: [`HttpRequest::base_path`]).
pub fn status_url(base_path: &str, trigger_id: &str) -> String {
    format!("{base_path}/triggers/{trigger_id}")
}

/// `202 Accepted` for a queued trigger.
pub fn accepted_response(
    base_path: &str,
    trigger_id: &str,
    pipeline: &str,
    inputs: Value,
    policy: &QuotaPolicy,
    status: &QuotaStatus,
    now_ms: u64,
) -> HttpResponse {
    let body = AcceptedBody {
        trigger_id: trigger_id.to_string(),
        status: "queued",
        pipeline: pipeline.to_string(),
        inputs,
        status_url: status_url(base_path, trigger_id),
        quota: QuotaBody {
            limit: status.limit,
            remaining: status.remaining,
            resets_at: crate::rules::time_format::rfc3339(now_ms + status.reset_after_ms),
        },
    };
    let mut response = HttpResponse::json(202, &body);
    response.header("Location", &status_url(base_path, trigger_id));
    response.rate_limit(policy, status, QuotaScope::Client, 0);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn v1(method: &str, path: &str, body: Option<&str>, b64: bool) -> Value {
        json!({
            "resource": "/trigger", "path": path, "httpMethod": method,
            "headers": {"X-Forwarded-For": "198.51.100.1"},
            "body": body, "isBase64Encoded": b64,
            "requestContext": {"stage": "prod", "path": format!("/prod{path}"),
                "identity": {"sourceIp": "203.0.113.7"}}
        })
    }

    fn v2(method: &str, raw_path: &str, stage: &str) -> Value {
        json!({
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": "",
            "headers": {"x-forwarded-for": "198.51.100.1"}, "isBase64Encoded": false,
            "requestContext": {"stage": stage, "http": {"method": method, "path": raw_path,
                "sourceIp": "2001:db8::5"}}
        })
    }

    #[test]
    fn reads_rest_api_events() {
        let r = parse_event(&v1("POST", "/trigger", Some("{}"), false)).unwrap();
        assert_eq!(r.version, PayloadVersion::V1);
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/trigger"));
        assert_eq!(r.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(r.body_bytes().unwrap(), b"{}");
    }

    #[test]
    fn reads_http_api_events_and_strips_named_stages() {
        let r = parse_event(&v2("GET", "/prod/triggers/abc", "prod")).unwrap();
        assert_eq!(r.version, PayloadVersion::V2);
        assert_eq!(r.path, "/triggers/abc");
        assert_eq!(r.source_ip.as_deref(), Some("2001:db8::5"));
        let r = parse_event(&v2("POST", "/trigger", "$default")).unwrap();
        assert_eq!(r.path, "/trigger");
        // A stage name that is only a prefix of the first segment stays.
        let r = parse_event(&v2("POST", "/production/trigger", "prod")).unwrap();
        assert_eq!(r.path, "/production/trigger");
    }

    #[test]
    fn the_base_path_is_what_the_client_addressed_before_the_route() {
        // REST API through its stage URL: /prod/trigger.
        let r = parse_event(&v1("POST", "/trigger", None, false)).unwrap();
        assert_eq!(
            (r.base_path.as_str(), r.path.as_str()),
            ("/prod", "/trigger")
        );
        // Behind a custom domain's base path, and behind one mapped to the root.
        for (addressed, base) in [("/api/v1/trigger", "/api/v1"), ("/trigger", "")] {
            let mut event = v1("POST", "/trigger", None, false);
            event["requestContext"]["path"] = json!(addressed);
            assert_eq!(parse_event(&event).unwrap().base_path, base, "{addressed}");
        }
        // HTTP API: the $default stage has no prefix, a named stage has one.
        let r = parse_event(&v2("POST", "/trigger", "$default")).unwrap();
        assert_eq!((r.base_path.as_str(), r.path.as_str()), ("", "/trigger"));
        let r = parse_event(&v2("GET", "/prod/triggers/abc", "prod")).unwrap();
        assert_eq!(
            (r.base_path.as_str(), r.path.as_str()),
            ("/prod", "/triggers/abc")
        );
    }

    #[test]
    fn a_base_path_that_could_lead_elsewhere_is_dropped() {
        for addressed in [
            "//evil.example/trigger",
            "/prod\r\nSet-Cookie: x/trigger",
            "/prod\"><script>/trigger",
            "https://evil.example/trigger",
            "prod/trigger",
            "/wrong/route",
        ] {
            let mut event = v1("POST", "/trigger", None, false);
            event["requestContext"]["path"] = json!(addressed);
            assert_eq!(parse_event(&event).unwrap().base_path, "", "{addressed:?}");
        }
        let mut event = v1("POST", "/trigger", None, false);
        event["requestContext"]["path"] = json!(format!("/{}/trigger", "a".repeat(300)));
        assert_eq!(parse_event(&event).unwrap().base_path, "");
        // No requestContext.path at all: links from the root.
        let mut event = v1("POST", "/trigger", None, false);
        event["requestContext"]
            .as_object_mut()
            .unwrap()
            .remove("path");
        assert_eq!(parse_event(&event).unwrap().base_path, "");
    }

    #[test]
    fn the_console_test_event_is_read() {
        // What the API Gateway console's "Test" button sends.
        let event = json!({
            "resource": "/trigger", "path": "/trigger", "httpMethod": "POST",
            "headers": null, "multiValueHeaders": null, "queryStringParameters": null,
            "pathParameters": null, "stageVariables": null, "body": null, "isBase64Encoded": false,
            "requestContext": {"stage": "test-invoke-stage", "path": "/trigger",
                "resourcePath": "/trigger", "httpMethod": "POST",
                "identity": {"sourceIp": "test-invoke-source-ip", "userAgent": null}}
        });
        let r = parse_event(&event).unwrap();
        assert_eq!(r.base_path, "");
        assert_eq!(r.source_ip.as_deref(), Some("test-invoke-source-ip"));
    }

    #[test]
    fn forwarded_for_never_chooses_the_client() {
        let r = parse_event(&v1("POST", "/trigger", None, false)).unwrap();
        assert_ne!(r.source_ip.as_deref(), Some("198.51.100.1"));
    }

    #[test]
    fn events_that_are_not_http_are_refused() {
        for event in [
            json!({"Records": [{"eventSource": "aws:sqs"}]}),
            json!({"source": "aws.codepipeline", "detail": {}}),
            json!("just a string"),
            json!(null),
            json!({"httpMethod": "GET", "path": "/x"}),
            json!({"requestContext": {}, "path": 5}),
        ] {
            assert!(parse_event(&event).is_err(), "{event}");
        }
    }

    #[test]
    fn base64_bodies_are_decoded_and_checked() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(r#"{"pipeline":"app"}"#);
        let r = parse_event(&v1("POST", "/trigger", Some(&b64), true)).unwrap();
        assert_eq!(r.body_bytes().unwrap(), br#"{"pipeline":"app"}"#);
        let r = parse_event(&v1("POST", "/trigger", Some("%%%not base64"), true)).unwrap();
        assert_eq!(r.body_bytes().unwrap_err().status(), 400);
    }

    #[test]
    fn oversized_bodies_are_413_plain_or_encoded() {
        let big = format!("{{\"pipeline\":\"{}\"}}", "a".repeat(MAX_BODY_BYTES));
        let r = parse_event(&v1("POST", "/trigger", Some(&big), false)).unwrap();
        assert_eq!(r.body_bytes().unwrap_err(), ApiError::PayloadTooLarge);
        let exact = "x".repeat(MAX_BODY_BYTES);
        let r = parse_event(&v1("POST", "/trigger", Some(&exact), false)).unwrap();
        assert_eq!(r.body_bytes().unwrap().len(), MAX_BODY_BYTES);
        let b64 = base64::engine::general_purpose::STANDARD.encode(vec![b' '; MAX_BODY_BYTES + 1]);
        let r = parse_event(&v1("POST", "/trigger", Some(&b64), true)).unwrap();
        assert_eq!(r.body_bytes().unwrap_err(), ApiError::PayloadTooLarge);
        let huge = "A".repeat(10_000_000);
        let r = parse_event(&v1("POST", "/trigger", Some(&huge), true)).unwrap();
        assert_eq!(r.body_bytes().unwrap_err(), ApiError::PayloadTooLarge);
    }

    #[test]
    fn routes() {
        assert_eq!(route("POST", "/trigger"), Ok(Route::PostTrigger));
        assert_eq!(route("POST", "/trigger/"), Ok(Route::PostTrigger));
        assert_eq!(
            route("GET", "/triggers/ABC"),
            Ok(Route::GetTrigger("ABC".into()))
        );
        assert_eq!(
            route("GET", "/trigger"),
            Err(ApiError::MethodNotAllowed { allow: "POST" })
        );
        assert_eq!(
            route("DELETE", "/triggers/x"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(route("GET", "/pipelines"), Ok(Route::GetPipelines));
        assert_eq!(
            route("POST", "/pipelines"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
        for page in ["/", ""] {
            assert_eq!(route("GET", page), Ok(Route::Page));
        }
        assert_eq!(
            route("POST", "/"),
            Err(ApiError::MethodNotAllowed { allow: "GET" })
        );
        assert_eq!(
            route("GET", "/assets/page.js"),
            Ok(Route::Asset("page.js".into()))
        );
        for (path, methods) in [
            ("/trigger", "POST"),
            ("/pipelines", "GET"),
            ("/triggers/X", "GET"),
        ] {
            assert_eq!(
                route("OPTIONS", path),
                Ok(Route::Preflight { methods }),
                "{path}"
            );
        }
        for path in [
            "/triggers",
            "/triggers/",
            "/triggers/a/b",
            "/admin",
            "/trigger/x",
            "/assets/",
            "/assets/a/b",
            "//",
        ] {
            assert_eq!(route("GET", path), Err(ApiError::NotFound), "{path}");
        }
    }

    #[test]
    fn trigger_bodies() {
        let none = TriggerRequest::default();
        assert_eq!(parse_trigger_body(b""), Ok(none.clone()));
        assert_eq!(parse_trigger_body(b" \n"), Ok(none.clone()));
        assert_eq!(parse_trigger_body(b"{}"), Ok(none.clone()));
        assert_eq!(parse_trigger_body(br#"{"pipeline": null}"#), Ok(none));
        assert_eq!(
            parse_trigger_body(br#"{"pipeline":"docs"}"#)
                .unwrap()
                .pipeline,
            Some("docs".into())
        );
        assert_eq!(
            parse_trigger_body(br#"{"pipeline":"docs", "inputs": {"env": "a", "n": 1}}"#)
                .unwrap()
                .inputs,
            Some(json!({"env": "a", "n": 1}))
        );
        for bad in [
            &b"pipeline=docs"[..],
            b"[]",
            b"\"docs\"",
            b"42",
            b"{",
            br#"{"pipeline": 5}"#,
            br#"{"pipeline": ""}"#,
            br#"{"pipeline": "a", "extra": 1}"#,
            br#"{"pipeline": "a", "pipeline": "b"}"#,
            b"\xff\xfe",
            b"{\"pipeline\": \"a\"} trailing",
        ] {
            let err = parse_trigger_body(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "{\"pipeline\":".repeat(200), "1");
        assert_eq!(
            parse_trigger_body(deep.as_bytes()).unwrap_err().status(),
            400
        );
    }

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

    #[test]
    fn a_202_has_location_body_and_rate_limit() {
        let policy = QuotaPolicy {
            limit: 3,
            window: Duration::from_secs(604_800),
        };
        let status = QuotaStatus {
            limit: 3,
            remaining: 2,
            reset_after_ms: 604_800_000,
        };
        let response = accepted_response(
            "/prod",
            "01ABC",
            "app",
            json!({"env": "staging"}),
            &policy,
            &status,
            1_000,
        );
        assert_eq!(response.status, 202);
        assert_eq!(response.headers["Location"], "/prod/triggers/01ABC");
        assert_eq!(response.headers["RateLimit"], "\"client\";r=2;t=604800");
        let body: Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(
            body,
            json!({"trigger_id": "01ABC", "status": "queued", "pipeline": "app",
                   "inputs": {"env": "staging"},
                   "status_url": "/prod/triggers/01ABC",
                   "quota": {"limit": 3, "remaining": 2, "resets_at": "1970-01-08T00:00:01.000Z"}})
        );
        let apigw = response.to_apigw();
        assert_eq!(apigw["statusCode"], 202);
        assert_eq!(apigw["isBase64Encoded"], false);
        assert_eq!(apigw["headers"]["Content-Type"], "application/json");
    }
}
