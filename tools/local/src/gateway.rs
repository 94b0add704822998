//! API Gateway's part: HTTP on a loopback port, each request turned into the
//! REST API event the ingress Lambda takes, and its proxy response back into
//! HTTP. Like API Gateway (and the WAF in front of it), it answers what
//! never reaches the function itself, in the product's voice ([`Edge`]): a
//! body over its payload limit, an unknown path or method, a throttled
//! route, an address over the WAF's rate rules, a failed invocation. It
//! names the TCP peer as the source address (`X-Forwarded-For` is passed
//! along and ignored by the ingress).

use super::console::Console;
use super::edge::{Answer, Edge, Request as EdgeRequest};
use super::http_server::{self, json_response, read_body, BodyError};
use crate::stopping::Stopping;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use ingress::Ingress;
use serde_json::Value;
use shared::clock::Clock;
use std::net::IpAddr;
use std::sync::Arc;
use testkit::events::{api_gateway_event, GatewayRequest};
use tokio::net::TcpListener;
use tracing::warn;

/// Largest request body passed on (API Gateway's own limit is 10 MB; the
/// ingress refuses anything over 8 KiB with its own 413).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// What the gateway hands each request to.
#[derive(Clone)]
pub struct Gateway {
    pub ingress: Arc<Ingress>,
    /// Serve under `/<stage>/`, as a REST API stage does (`None`: at the root).
    pub stage: Option<String>,
    pub console: Console,
    pub clock: Arc<dyn Clock>,
    /// What API Gateway and the WAF answer before the ingress runs.
    pub edge: Arc<Edge>,
}

impl Gateway {
    /// Serves until `stopping` fires.
    pub async fn serve(self, listener: TcpListener, stopping: Stopping) {
        let gateway = Arc::new(self);
        http_server::serve(listener, stopping, move |request, peer| {
            let gateway = Arc::clone(&gateway);
            async move { gateway.answer(request, peer).await }
        })
        .await
    }

    async fn answer(&self, request: Request<Incoming>, source_ip: IpAddr) -> Response<Full<Bytes>> {
        let request_id = ulid::Ulid::new().to_string();
        let (parts, body) = request.into_parts();
        let method = parts.method.as_str();
        let path = parts.uri.path();
        let body = match read_body(body, MAX_REQUEST_BYTES).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                return self.edge_answer(method, path, self.edge.too_large(), &request_id)
            }
            Err(BodyError::TimedOut) => return gateway_error(408, "Request Timeout", &request_id),
            Err(BodyError::Broken) => return gateway_error(400, "Bad Request", &request_id),
        };
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_string(), v.to_string()))
            })
            .collect();
        // The path inside the stage; outside every stage, no route.
        let inner = match &self.stage {
            None => Some(path),
            Some(stage) => path
                .strip_prefix(&format!("/{stage}"))
                .map(|rest| if rest.is_empty() { "/" } else { rest })
                .filter(|rest| rest.starts_with('/')),
        };
        let seen = EdgeRequest {
            method,
            path: inner.unwrap_or(""),
            uri: parts.uri.path_and_query().map_or(path, |p| p.as_str()),
            headers: &headers,
            body: &body,
            source_ip,
        };
        if let Some(answer) = self.edge.answer(&seen, std::time::Instant::now()) {
            return self.edge_answer(method, path, answer, &request_id);
        }
        let source = source_ip.to_string();
        let event = api_gateway_event(&GatewayRequest {
            method,
            path,
            stage: self.stage.as_deref(),
            query: parts.uri.query(),
            headers,
            body: &body,
            source_ip: &source,
            request_id: &request_id,
        });
        match self.ingress.handle(event).await {
            Ok(response) => {
                self.log_hop(method, path, &response);
                proxy_response(&response, &request_id)
            }
            Err(e) => {
                warn!(error = %e, request_id = %request_id, "the ingress failed the invocation");
                self.edge_answer(method, path, self.edge.bad_gateway(), &request_id)
            }
        }
    }

    /// An answer of the edge, logged as a hop of the gateway's.
    fn edge_answer(
        &self,
        method: &str,
        path: &str,
        answer: Answer,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let title = serde_json::from_str::<Value>(&answer.body)
            .ok()
            .and_then(|body| body["title"].as_str().map(str::to_string))
            .unwrap_or_default();
        let path: String = path.chars().take(80).collect();
        self.console.hop(
            self.clock.now_ms(),
            None,
            "gateway",
            &format!(
                "{method} {path} -> {} {title} (the gateway's own answer)",
                answer.status
            ),
        );
        let mut builder = Response::builder()
            .status(answer.status)
            .header("x-amzn-RequestId", request_id);
        for (name, value) in &answer.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder
            .body(Full::new(Bytes::from(answer.body)))
            .unwrap_or_else(|_| gateway_error(502, "Internal server error", request_id))
    }

    fn log_hop(&self, method: &str, path: &str, response: &Value) {
        let status = response["statusCode"].as_u64().unwrap_or(0);
        let body: Value = response["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        let trigger_id = body["trigger_id"].as_str();
        let path: String = path.chars().take(80).collect();
        let what = match status {
            202 => format!(
                "{method} {path} -> 202 accepted for {} ({} of {} left)",
                body["pipeline"].as_str().unwrap_or("?"),
                body["quota"]["remaining"],
                body["quota"]["limit"]
            ),
            200 => format!(
                "{method} {path} -> 200 {}",
                body["status"].as_str().unwrap_or("?")
            ),
            _ => format!(
                "{method} {path} -> {status} {}",
                body["title"].as_str().unwrap_or("")
            ),
        };
        self.console
            .hop(self.clock.now_ms(), trigger_id, "gateway", &what);
    }
}

/// The HTTP response for an API Gateway proxy response.
fn proxy_response(response: &Value, request_id: &str) -> Response<Full<Bytes>> {
    let status = response["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok());
    let Some(status) = status else {
        return gateway_error(502, "Internal server error", request_id);
    };
    let body = response["body"].as_str().unwrap_or_default().to_string();
    let mut builder = Response::builder()
        .status(status)
        .header("x-amzn-RequestId", request_id);
    if let Some(headers) = response["headers"].as_object() {
        for (name, value) in headers {
            if let Some(value) = value.as_str() {
                builder = builder.header(name.as_str(), value);
            }
        }
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| gateway_error(502, "Internal server error", request_id))
}

/// An error API Gateway itself answers, in its own shape.
fn gateway_error(status: u16, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = json_response(
        status,
        "application/json",
        &serde_json::json!({ "message": message }),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}
