//! The trigger API: which route a method and path name, the `POST /trigger`
//! body, the public catalog (`GET /pipelines`) and the 202 of an accepted
//! trigger (docs/reference/http-api.md).

use super::event::HttpRequest;
use super::response::{ApiError, HttpResponse, LimitItem, MAX_BODY_BYTES};
use crate::rules::inputs::values_to_json;
use crate::rules::pipelines::{PipelineSettings, Pipelines};
use crate::rules::quota::QuotaStatus;
use crate::rules::runs::RunLane;
use crate::rules::trigger::TriggerRecord;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// The resource of [`ROUTES`] a path matches, as API Gateway names it in a
/// REST event (`/triggers/{id}`), and its path parameters (`{"id": …}`);
/// a path that matches none is its own resource, without parameters.
pub fn resource_of(path: &str) -> (String, Option<serde_json::Value>) {
    let segments: Vec<&str> = path.split('/').collect();
    for (resource, _) in ROUTES {
        let template: Vec<&str> = resource.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut parameters = serde_json::Map::new();
        let matches = template.iter().zip(&segments).all(|(t, s)| {
            match t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(name) if !s.is_empty() => {
                    parameters.insert(name.to_string(), serde_json::Value::from(*s));
                    true
                }
                Some(_) => false,
                None => t == s,
            }
        });
        if matches {
            let parameters =
                (!parameters.is_empty()).then_some(serde_json::Value::Object(parameters));
            return (resource.to_string(), parameters);
        }
    }
    (path.to_string(), None)
}

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
    inputs: Option<SentInputs>,
}

/// The `inputs` field as sent. An object naming one input twice is
/// refused, as a repeated top-level field is: a JSON map would silently
/// keep the last value. Anything else is kept as sent (the pipeline's
/// inputs refuse it later, naming the field).
struct SentInputs(Value);

impl<'de> Deserialize<'de> for SentInputs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SentInputsVisitor)
    }
}

struct SentInputsVisitor;

impl<'de> serde::de::Visitor<'de> for SentInputsVisitor {
    type Value = SentInputs;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of input values")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SentInputs, A::Error> {
        let mut values = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if values.contains_key(&name) {
                let shown: String = name.chars().take(128).collect();
                return Err(serde::de::Error::custom(format!(
                    "input {shown:?} is given twice in \"inputs\""
                )));
            }
            let value: Value = map.next_value()?;
            values.insert(name, value);
        }
        Ok(SentInputs(Value::Object(values)))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SentInputs, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(SentInputs(Value::Array(items)))
    }

    fn visit_bool<E>(self, v: bool) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<SentInputs, E> {
        Ok(SentInputs(Value::Null))
    }
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
            inputs: body.inputs.map(|sent| sent.0),
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
    /// The quota the trigger was charged to: its client's, or its key's.
    pub quota: QuotaBody,
    /// `anonymous`, or `key` for a trigger that came with a trigger key.
    pub lane: RunLane,
    /// The trigger key's name (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The path of a trigger's status, as the client addresses the API
/// (`base_path`: [`HttpRequest::base_path`]).
pub fn status_url(base_path: &str, trigger_id: &str) -> String {
    format!("{base_path}/triggers/{trigger_id}")
}

/// `202 Accepted` for a queued trigger: `status` is the quota it was
/// charged to (the body's `quota`), `limits` every level for the RateLimit
/// fields.
pub fn accepted_response(
    base_path: &str,
    record: &TriggerRecord,
    status: &QuotaStatus,
    limits: &[LimitItem],
    now_ms: u64,
) -> HttpResponse {
    let body = AcceptedBody {
        trigger_id: record.trigger_id.clone(),
        status: "queued",
        pipeline: record.pipeline.clone(),
        inputs: values_to_json(&record.inputs),
        status_url: status_url(base_path, &record.trigger_id),
        quota: QuotaBody {
            limit: status.limit,
            remaining: status.remaining,
            resets_at: crate::rules::time_format::rfc3339(now_ms + status.reset_after_ms),
        },
        lane: record.lane(),
        key: record.key.clone(),
    };
    let mut response = HttpResponse::json(202, &body);
    response.header("Location", &status_url(base_path, &record.trigger_id));
    response.rate_limit(limits);
    response
}

#[cfg(test)]
mod tests {
    use super::super::event::parse_event;
    use super::super::event::tests::v1;
    use super::*;
    use crate::rules::quota::QuotaPolicy;
    use std::time::Duration;

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
            br#"{"inputs": {"env": "a", "env": "b"}}"#,
            br#"{"inputs": {"env": "a", "n": 1, "env": "a"}}"#,
            b"\xff\xfe",
            b"{\"pipeline\": \"a\"} trailing",
        ] {
            let err = parse_trigger_body(bad).unwrap_err();
            assert_eq!(err.status(), 400, "{}", String::from_utf8_lossy(bad));
        }
        let twice = parse_trigger_body(br#"{"inputs": {"env": "a", "env": "b"}}"#).unwrap_err();
        assert!(
            twice.to_string().contains(r#"input "env" is given twice"#),
            "{twice}"
        );
        // Not an object: kept as sent, for the inputs check to name.
        for (sent, kept) in [
            (&br#"{"inputs": null}"#[..], None),
            (br#"{"inputs": 5}"#, Some(json!(5))),
            (br#"{"inputs": -5}"#, Some(json!(-5))),
            (br#"{"inputs": 0.5}"#, Some(json!(0.5))),
            (br#"{"inputs": "x"}"#, Some(json!("x"))),
            (br#"{"inputs": true}"#, Some(json!(true))),
            (br#"{"inputs": [1, {"a": 1}]}"#, Some(json!([1, {"a": 1}]))),
            (
                br#"{"inputs": {"a": {"b": 1}}}"#,
                Some(json!({"a": {"b": 1}})),
            ),
        ] {
            assert_eq!(parse_trigger_body(sent).unwrap().inputs, kept);
        }
        let deep = format!("{}{}", "{\"pipeline\":".repeat(200), "1");
        assert_eq!(
            parse_trigger_body(deep.as_bytes()).unwrap_err().status(),
            400
        );
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
        let mut inputs = crate::rules::inputs::InputValues::new();
        inputs.insert(
            "env".into(),
            crate::rules::inputs::InputValue::Text("staging".into()),
        );
        let mut record = TriggerRecord::queued(
            "01ABC".into(),
            "app",
            "app-pipeline",
            crate::rules::client_key::ClientKey::from_stored(&"ab".repeat(32)).unwrap(),
            inputs,
            1_000,
            0,
        );
        let response = accepted_response(
            "/prod",
            &record,
            &status,
            &[LimitItem::of("client", &policy, &status)],
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
                   "quota": {"limit": 3, "remaining": 2, "resets_at": "1970-01-08T00:00:01.000Z"},
                   "lane": "anonymous"})
        );
        // A keyed trigger names its key (never the key itself).
        record.key = Some("ci-main".into());
        let keyed = accepted_response("", &record, &status, &[], 1_000);
        let body: Value = serde_json::from_str(&keyed.body).unwrap();
        assert_eq!(
            (&body["lane"], &body["key"]),
            (&json!("key"), &json!("ci-main"))
        );
        let apigw = response.to_apigw();
        assert_eq!(apigw["statusCode"], 202);
        assert_eq!(apigw["isBase64Encoded"], false);
        assert_eq!(apigw["headers"]["Content-Type"], "application/json");
    }
}
