//! A loopback proxy in front of the engines (DynamoDB Local for DynamoDB,
//! moto for the rest) that counts every AWS call by
//! service and operation (what the function really sent, not what it says
//! it sent). It can also stand in for `StartPipelineExecution` with a fixed
//! latency and no work: the emulator handles one call at a time and gets
//! slower with every execution it keeps, which would hide the worker's
//! concurrency behind the emulator's queue.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use shared::aws::Endpoints;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Default)]
struct State {
    calls: BTreeMap<String, u64>,
    /// Answer `StartPipelineExecution` here, after this long.
    start_stand_in: Option<Duration>,
}

#[derive(Clone)]
pub struct AwsProxy {
    pub address: SocketAddr,
    state: Arc<Mutex<State>>,
}

/// `Service.Operation` of a request: from `X-Amz-Target` (JSON protocols:
/// DynamoDB, SQS, CodePipeline, EventBridge) or the form's `Action` (SNS).
pub fn operation(target: Option<&str>, body: &[u8]) -> String {
    if let Some(target) = target {
        let (service, op) = target.split_once('.').unwrap_or(("unknown", target));
        let service = match service {
            s if s.starts_with("DynamoDB") => "DynamoDB",
            "AmazonSQS" => "SQS",
            s if s.starts_with("CodePipeline") => "CodePipeline",
            s if s.starts_with("AWSEvents") => "EventBridge",
            s => s,
        };
        return format!("{service}.{op}");
    }
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown");
    format!("SNS.{action}")
}

impl AwsProxy {
    pub async fn start(engines: Endpoints) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let proxy = Self {
            address,
            state: state.clone(),
        };
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let engines = Arc::new(engines);
        testkit::serve_http(listener, move |request| {
            let (state, client, engines) = (state.clone(), client.clone(), engines.clone());
            async move {
                Ok::<_, std::convert::Infallible>(forward(request, &state, &client, &engines).await)
            }
        });
        Ok(proxy)
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Calls so far, by `Service.Operation`.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clone()
    }

    /// Answers `StartPipelineExecution` itself after `latency` (`None`:
    /// the emulator answers).
    pub fn stand_in_for_starts(&self, latency: Option<Duration>) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .start_stand_in = latency;
    }
}

/// The calls made between two snapshots.
pub fn since(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// The engine a call goes to: DynamoDB Local for DynamoDB, moto for the rest.
fn upstream_of<'a>(engines: &'a Endpoints, op: &str) -> &'a str {
    let upstream = if op.starts_with("DynamoDB.") {
        &engines.dynamodb
    } else {
        &engines.others
    };
    upstream.trim_end_matches('/')
}

async fn forward(
    request: Request<Incoming>,
    state: &Mutex<State>,
    client: &Client<HttpConnector, Full<Bytes>>,
    engines: &Endpoints,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok());
    let op = operation(target, &body);
    let stand_in = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        *state.calls.entry(op.clone()).or_insert(0) += 1;
        state.start_stand_in
    };
    if let (Some(latency), "CodePipeline.StartPipelineExecution") = (stand_in, op.as_str()) {
        tokio::time::sleep(latency).await;
        let body = format!(r#"{{"pipelineExecutionId":"{}"}}"#, ulid::Ulid::new());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
        );
        return response;
    }
    testkit::relay(client, upstream_of(engines, &op), &parts, body)
        .await
        .unwrap_or_else(|| error(502))
}

fn error(status: u16) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_by_service() {
        assert_eq!(
            operation(Some("DynamoDB_20120810.PutItem"), b""),
            "DynamoDB.PutItem"
        );
        assert_eq!(
            operation(Some("AmazonSQS.SendMessage"), b""),
            "SQS.SendMessage"
        );
        assert_eq!(
            operation(Some("CodePipeline_20150709.StartPipelineExecution"), b""),
            "CodePipeline.StartPipelineExecution"
        );
        assert_eq!(operation(None, b"Action=Publish&TopicArn=x"), "SNS.Publish");
    }

    #[test]
    fn differences_keep_only_new_calls() {
        let before = BTreeMap::from([("SQS.SendMessage".to_string(), 2)]);
        let after = BTreeMap::from([
            ("SQS.SendMessage".to_string(), 3),
            ("DynamoDB.PutItem".to_string(), 1),
        ]);
        assert_eq!(
            since(&before, &after),
            BTreeMap::from([
                ("DynamoDB.PutItem".to_string(), 1),
                ("SQS.SendMessage".to_string(), 1)
            ])
        );
    }
}
