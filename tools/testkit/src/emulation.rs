//! CodePipeline as AWS plays it, in front of an emulator that does not
//! (moto), for the tests and the local stack — never in a Lambda.
//!
//! - `StartPipelineExecution` with a `clientRequestToken` that already
//!   started an execution of that pipeline answers that execution, as
//!   CodePipeline does; moto would start another. Without this, no test
//!   could tell a double start from a single one.
//! - Every execution started through here is remembered with who started
//!   it (`executionTrigger`, which moto does not keep): `StartPipelineExecution`
//!   by the role this front stands for (the worker's). The local stack also
//!   records runs it starts itself (a push, the console) with
//!   [`CodePipelineFront::record`]. `ListPipelineExecutions` and
//!   `GetPipelineExecution` answers carry it.
//! - Every other call is passed on unchanged.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Who started an execution, as CodePipeline's `executionTrigger` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pipeline: String,
    pub started_ms: u64,
    /// `StartPipelineExecution`, `WebhookV2`, `CloudWatchEvent`, …
    pub trigger_type: String,
    /// The caller's ARN for `StartPipelineExecution`; the webhook's ARN, …
    pub trigger_detail: String,
}

impl Started {
    /// CodePipeline's `executionTrigger` object (API shape).
    pub fn api_trigger(&self) -> Value {
        json!({"triggerType": self.trigger_type, "triggerDetail": self.trigger_detail})
    }

    /// The event's `execution-trigger` object (EventBridge shape).
    pub fn event_trigger(&self) -> Value {
        json!({"trigger-type": self.trigger_type, "trigger-detail": self.trigger_detail})
    }
}

#[derive(Default)]
struct Book {
    /// (pipeline, token) → the execution it started.
    tokens: HashMap<(String, String), String>,
    started: HashMap<String, Started>,
    /// Executions whose state is played elsewhere (the local stack's
    /// runs): the status CodePipeline's API answers for them.
    status: HashMap<String, String>,
}

struct State {
    book: Mutex<Book>,
    /// One start at a time, so two calls with one token start once.
    starting: tokio::sync::Mutex<()>,
    /// The ARN a `StartPipelineExecution` through here is recorded as made by.
    caller_arn: String,
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: String,
}

/// A running front: its endpoint, and what it remembers.
#[derive(Clone)]
pub struct CodePipelineFront {
    pub endpoint: String,
    state: Arc<State>,
}

impl CodePipelineFront {
    /// A front on `listener` passing calls on to `upstream`
    /// (`http://127.0.0.1:port`); `caller_arn` is who its starts are
    /// recorded as made by. The returned future serves until dropped.
    pub fn new(
        listener: TcpListener,
        upstream: &str,
        caller_arn: &str,
    ) -> std::io::Result<(Self, impl Future<Output = ()> + Send + 'static)> {
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            book: Mutex::new(Book::default()),
            starting: tokio::sync::Mutex::new(()),
            caller_arn: caller_arn.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            upstream: upstream.trim_end_matches('/').to_string(),
        });
        let serving = state.clone();
        let serve = async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(request, &state).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        Ok((Self { endpoint, state }, serve))
    }

    /// Who started `execution_id`, if it was started through here or recorded.
    pub fn started(&self, execution_id: &str) -> Option<Started> {
        self.book().started.get(execution_id).cloned()
    }

    /// Every `StartPipelineExecution` through here with a token: (pipeline,
    /// token, the one execution it started).
    pub fn starts(&self) -> Vec<(String, String, String)> {
        self.book()
            .tokens
            .iter()
            .map(|((pipeline, token), execution)| {
                (pipeline.clone(), token.clone(), execution.clone())
            })
            .collect()
    }

    /// The status (`InProgress`, `Succeeded`, `Failed`, …) the API answers
    /// for `execution_id` from now on: the emulator behind ends every
    /// execution at once with `Succeeded`, while the runs played say
    /// otherwise.
    pub fn played(&self, execution_id: &str, status: &str) {
        self.book()
            .status
            .insert(execution_id.to_string(), status.to_string());
    }

    /// Records an execution started some other way (a push, the console).
    pub fn record(&self, execution_id: &str, started: Started) {
        self.book()
            .started
            .insert(execution_id.to_string(), started);
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.state.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn json_answer(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    response
}

/// The emulator behind did not answer.
fn unavailable() -> Response<Full<Bytes>> {
    json_answer(
        502,
        &json!({"__type": "ServiceUnavailableException", "message": "the emulator did not answer"}),
    )
}

async fn answer(request: Request<Incoming>, state: &Arc<State>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return json_answer(
            400,
            &json!({"__type": "SerializationException", "message": "unreadable body"}),
        );
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default()
        .rsplit('.')
        .next()
        .unwrap_or_default()
        .to_string();
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match target.as_str() {
        "StartPipelineExecution" => {
            // AWS starts an execution whether or not its caller is still
            // there to hear the answer. Served inline, a caller that gave
            // up (an SDK attempt timeout) would cancel this half-way: after
            // the emulator started the execution, before its token was
            // kept, so the caller's retry would start a second one. On a
            // task of its own, the start always finishes.
            let state = Arc::clone(state);
            tokio::spawn(async move { start(&state, &parts, body, &asked).await })
                .await
                .unwrap_or_else(|_| unavailable())
        }
        "ListPipelineExecutions" | "GetPipelineExecution" => {
            let Some((head, answer)) =
                relay_parts(&state.client, &state.upstream, &parts, body).await
            else {
                return unavailable();
            };
            if !head.status.is_success() {
                return Response::from_parts(head, Full::new(answer));
            }
            let mut answered: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            let book = state.book.lock().unwrap_or_else(|p| p.into_inner());
            let with_trigger = |execution: &mut Value, key: &str| {
                let id = execution["pipelineExecutionId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let id = id.as_str();
                if let Some(status) = book.status.get(id) {
                    execution["status"] = json!(status);
                }
                if let Some(started) = book.started.get(id) {
                    execution[key] = started.api_trigger();
                    if execution.get("startTime").is_none_or(Value::is_null) {
                        execution["startTime"] = json!(started.started_ms as f64 / 1000.0);
                    }
                }
            };
            if let Some(summaries) = answered["pipelineExecutionSummaries"].as_array_mut() {
                for summary in summaries {
                    with_trigger(summary, "trigger");
                }
            } else if answered["pipelineExecution"].is_object() {
                with_trigger(&mut answered["pipelineExecution"], "executionTrigger");
            }
            json_answer(200, &answered)
        }
        _ => relay(&state.client, &state.upstream, &parts, body)
            .await
            .unwrap_or_else(unavailable),
    }
}

/// The longest the emulator is waited for on a start.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// `StartPipelineExecution`, played as AWS plays it: one execution per
/// (pipeline, token), remembered with who started it.
async fn start(state: &State, parts: &Parts, body: Bytes, asked: &Value) -> Response<Full<Bytes>> {
    let pipeline = asked["name"].as_str().unwrap_or_default().to_string();
    let token = asked["clientRequestToken"].as_str().map(str::to_string);
    let _one_at_a_time = state.starting.lock().await;
    if let Some(token) = &token {
        let known = state
            .book
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tokens
            .get(&(pipeline.clone(), token.clone()))
            .cloned();
        if let Some(execution_id) = known {
            return json_answer(200, &json!({"pipelineExecutionId": execution_id}));
        }
    }
    // Bounded: a start that never comes back must not hold every other
    // start behind `starting` for ever.
    let relayed = tokio::time::timeout(
        START_TIMEOUT,
        relay_parts(&state.client, &state.upstream, parts, body),
    )
    .await;
    let Ok(Some((head, answer))) = relayed else {
        return unavailable();
    };
    if head.status.is_success() {
        let answered: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if let Some(execution_id) = answered["pipelineExecutionId"].as_str() {
            let mut book = state.book.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(token) = token {
                book.tokens
                    .insert((pipeline.clone(), token), execution_id.to_string());
            }
            book.started.insert(
                execution_id.to_string(),
                Started {
                    pipeline,
                    started_ms: now_ms(),
                    trigger_type: "StartPipelineExecution".into(),
                    trigger_detail: state.caller_arn.clone(),
                },
            );
        }
    }
    Response::from_parts(head, Full::new(answer))
}

/// Sends a request (its method, path, headers but `Host`, and `body`) to
/// `upstream` (`http://127.0.0.1:port`) and returns the whole answer; `None`
/// when the upstream could not be reached or its answer read.
pub async fn relay(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    parts: &Parts,
    body: Bytes,
) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = relay_parts(client, upstream, parts, body).await?;
    Some(Response::from_parts(parts, Full::new(body)))
}

/// [`relay`], the answer's head and body apart.
async fn relay_parts(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    parts: &Parts,
    body: Bytes,
) -> Option<(hyper::http::response::Parts, Bytes)> {
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut request = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", upstream.trim_end_matches('/')));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            request = request.header(name, value);
        }
    }
    let response = client
        .request(request.body(Full::new(body)).ok()?)
        .await
        .ok()?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.ok()?.to_bytes();
    Some((parts, body))
}
