//! API Gateway's proxy events in (REST API v1 and HTTP API v2 payloads):
//! the method, the route's path, the base path the client addressed, the
//! source address API Gateway saw, the `Origin`, and the body as sent
//! (docs/reference/http-api.md).

use crate::rules::keys::{KeyRefusal, PresentedKey};
use serde::Deserialize;
use serde_json::Value;

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
    /// The `Host` header: the API's own origin is `https://` and it.
    pub host: Option<String>,
    /// The `Sec-Fetch-Site` header a browser sends (`same-origin`, `cross-site`, …).
    pub fetch_site: Option<String>,
    /// The `Authorization` header as a trigger key (`None`: no header). Kept
    /// only as the key (which never prints), never as text.
    pub key: Option<Result<PresentedKey, KeyRefusal>>,
    pub(super) body: Option<String>,
    pub(super) body_is_base64: bool,
}

#[derive(Deserialize)]
struct RawEvent {
    version: Option<String>,
    /// REST API: the resource template that matched (`/triggers/{id}`).
    resource: Option<String>,
    /// REST API: the template's values (`{"id": "01J…"}`), decoded.
    #[serde(rename = "pathParameters")]
    path_parameters: Option<serde_json::Map<String, Value>>,
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
            // Route by the resource that matched, never by `path`: behind a
            // custom domain's base path, `path` keeps the base path.
            let path = raw
                .resource
                .as_deref()
                .and_then(|resource| filled(resource, raw.path_parameters.as_ref()))
                .unwrap_or(path);
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
    let header = |wanted: &str| {
        raw.headers.as_ref().and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .and_then(|(_, value)| value.as_str())
                .map(str::to_string)
        })
    };
    Ok(HttpRequest {
        version,
        method: method.to_ascii_uppercase(),
        path,
        base_path,
        source_ip,
        origin: header("origin"),
        host: header("host"),
        fetch_site: header("sec-fetch-site"),
        key: header("authorization").map(|value| PresentedKey::from_authorization(&value)),
        body: raw.body,
        body_is_base64: raw.is_base64_encoded,
    })
}

/// A resource template with its path parameters put in: `/triggers/{id}`
/// and `{"id": "01J…"}` make `/triggers/01J…`; `None` when a parameter is
/// missing or would add a path segment (only a greedy `{name+}` may).
fn filled(resource: &str, parameters: Option<&serde_json::Map<String, Value>>) -> Option<String> {
    if !resource.starts_with('/') {
        return None;
    }
    let mut out = String::with_capacity(resource.len());
    for (i, segment) in resource.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            None => out.push_str(segment),
            Some(name) => {
                let (name, greedy) = match name.strip_suffix('+') {
                    Some(name) => (name, true),
                    None => (name, false),
                };
                let value = parameters?.get(name)?.as_str()?;
                if value.is_empty() || (!greedy && value.contains('/')) {
                    return None;
                }
                out.push_str(value);
            }
        }
    }
    Some(out)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn v1(method: &str, path: &str, body: Option<&str>, b64: bool) -> Value {
        json!({
            "resource": path, "path": path, "httpMethod": method,
            "headers": {"X-Forwarded-For": "198.51.100.1"},
            "body": body, "isBase64Encoded": b64,
            "requestContext": {"stage": "prod", "path": format!("/prod{path}"),
                "identity": {"sourceIp": "203.0.113.7"}}
        })
    }

    pub(crate) fn v2(method: &str, raw_path: &str, stage: &str) -> Value {
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

    /// A REST event exactly as API Gateway sends it for `addressed` (the
    /// URL's path): `path` drops the stage but keeps a custom domain's base
    /// path; `resource` is the matched template, `pathParameters` its values;
    /// `requestContext.path` is the path as addressed.
    fn rest(
        method: &str,
        addressed: &str,
        stage_in_url: bool,
        route: (&str, Option<(&str, &str)>),
    ) -> Value {
        let (resource, parameter) = route;
        let path = if stage_in_url {
            addressed.strip_prefix("/prod").unwrap().to_string()
        } else {
            addressed.to_string()
        };
        json!({
            "resource": resource, "path": path, "httpMethod": method,
            "headers": {"Host": "api.example.com"},
            "pathParameters": parameter.map(|(k, v)| json!({k: v})),
            "body": null, "isBase64Encoded": false,
            "requestContext": {"stage": "prod", "path": addressed, "resourcePath": resource,
                "httpMethod": method, "identity": {"sourceIp": "203.0.113.7"}}
        })
    }

    #[test]
    fn rest_events_route_by_resource_behind_every_kind_of_address() {
        let id = "01JD6Y6W9S3F2Q8K7T4V5X0ABC";
        let status = format!("/triggers/{id}");
        for (addressed, stage_in_url, base) in [
            // The execute-api URL: https://abc.execute-api…/prod/…
            ("/prod", true, "/prod"),
            // A custom domain mapped at its root.
            ("", false, ""),
            // A custom domain with a base path of one segment, and of two.
            ("/ci", false, "/ci"),
            ("/team/ci", false, "/team/ci"),
        ] {
            let trigger = rest(
                "POST",
                &format!("{addressed}/trigger"),
                stage_in_url,
                ("/trigger", None),
            );
            let r = parse_event(&trigger).unwrap();
            assert_eq!(
                (r.path.as_str(), r.base_path.as_str()),
                ("/trigger", base),
                "{addressed}"
            );
            let get = rest(
                "GET",
                &format!("{addressed}{status}"),
                stage_in_url,
                ("/triggers/{id}", Some(("id", id))),
            );
            let r = parse_event(&get).unwrap();
            assert_eq!(
                (r.path.as_str(), r.base_path.as_str()),
                (status.as_str(), base),
                "{addressed}"
            );
            let page = rest(
                "GET",
                if addressed.is_empty() { "/" } else { addressed },
                stage_in_url,
                ("/", None),
            );
            let mut page = page;
            if stage_in_url {
                page["path"] = json!("/");
            }
            let r = parse_event(&page).unwrap();
            assert_eq!(
                (r.path.as_str(), r.base_path.as_str()),
                ("/", base),
                "{addressed}"
            );
        }
    }

    #[test]
    fn a_parameter_cannot_add_a_segment_and_a_missing_one_falls_back_to_the_path() {
        let mut event = rest(
            "GET",
            "/ci/triggers/a%2Fb",
            false,
            ("/triggers/{id}", Some(("id", "a/b"))),
        );
        assert_eq!(parse_event(&event).unwrap().path, "/ci/triggers/a%2Fb");
        event["pathParameters"] = Value::Null;
        assert_eq!(parse_event(&event).unwrap().path, "/ci/triggers/a%2Fb");
        let greedy = rest(
            "GET",
            "/ci/assets/page.js",
            false,
            ("/{proxy+}", Some(("proxy", "assets/page.js"))),
        );
        let r = parse_event(&greedy).unwrap();
        assert_eq!(
            (r.path.as_str(), r.base_path.as_str()),
            ("/assets/page.js", "/ci")
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
}
