//! A loopback HTTP proxy in front of an engine that loses answers: the first
//! time it sees a request body, it forwards the request (so the engine acts
//! on it: a transaction commits) and then drops the connection instead of
//! answering. The SDK sees a broken connection and retries the same request,
//! which goes through. Every operation thus runs with one lost answer, which
//! no engine can be asked to produce. [`LossyProxy::losing_every_answer_to`]
//! goes further: every answer to one operation is lost (the SDK's retries
//! too), while the others get theirs; [`LossyProxy::losing_first_answers_to`]
//! loses the answers of one operation's first calls, then none; and
//! [`LossyProxy::failing_after`] lets an operation's first calls through,
//! then answers every later one `500` without passing it on (the table
//! went away after an admission).

use crate::http_server::{relay, serve_http};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// Why a connection was dropped (hyper closes it when the service fails).
#[derive(Debug)]
struct AnswerLost;

impl std::fmt::Display for AnswerLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer lost on purpose")
    }
}

impl std::error::Error for AnswerLost {}

#[derive(Default)]
struct State {
    seen: Mutex<HashSet<[u8; 32]>>,
    lost: AtomicU64,
    failed: AtomicU64,
    /// Lose every answer to these operations (`X-Amz-Target` suffixes),
    /// and only to them.
    always: Vec<String>,
    /// Lose only this many answers more to `always`'s operations (none: no
    /// bound).
    countdown: Option<AtomicU64>,
    /// After this many calls to the operation pass, answer every later one
    /// `500 InternalServerError` without passing it on.
    fail_after: Option<(String, AtomicU64)>,
}

/// A running proxy; it stops with the test's runtime.
#[derive(Clone)]
pub struct LossyProxy {
    pub endpoint: String,
    state: Arc<State>,
}

impl LossyProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:port`).
    pub async fn start(upstream: &str) -> Self {
        Self::with_state(upstream, State::default()).await
    }

    /// A proxy that loses every answer to `operation` (`TransactWriteItems`),
    /// however often it is retried, and loses nothing else.
    pub async fn losing_every_answer_to(upstream: &str, operation: &str) -> Self {
        Self::losing_every_answer_to_any(upstream, &[operation]).await
    }

    /// [`LossyProxy::losing_every_answer_to`] for several operations.
    pub async fn losing_every_answer_to_any(upstream: &str, operations: &[&str]) -> Self {
        let state = State {
            always: operations.iter().map(|op| format!(".{op}")).collect(),
            ..State::default()
        };
        Self::with_state(upstream, state).await
    }

    /// A proxy that loses the answers to the first `n` calls of `operation`
    /// (the engine acts on each: `SendMessage` keeps its message), then
    /// loses nothing.
    pub async fn losing_first_answers_to(upstream: &str, operation: &str, n: u64) -> Self {
        let state = State {
            always: vec![format!(".{operation}")],
            countdown: Some(AtomicU64::new(n)),
            ..State::default()
        };
        Self::with_state(upstream, state).await
    }

    /// A proxy that passes the first `n` calls of `operation`, answers
    /// every later one `500 InternalServerError` (the engine never sees
    /// it), and passes everything else.
    pub async fn failing_after(upstream: &str, operation: &str, n: u64) -> Self {
        let state = State {
            fail_after: Some((format!(".{operation}"), AtomicU64::new(n))),
            ..State::default()
        };
        Self::with_state(upstream, state).await
    }

    async fn with_state(upstream: &str, state: State) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Arc::new(state);
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let upstream = Arc::new(upstream.trim_end_matches('/').to_string());
        let shared = state.clone();
        serve_http(listener, move |request| {
            let (state, client, upstream) = (shared.clone(), client.clone(), upstream.clone());
            async move { forward(request, &state, &client, &upstream).await }
        });
        Self { endpoint, state }
    }

    /// How many answers were lost so far.
    pub fn lost(&self) -> u64 {
        self.state.lost.load(Ordering::SeqCst)
    }

    /// How many calls were answered `500` so far.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Ordering::SeqCst)
    }
}

/// DynamoDB's answer in an outage.
fn server_error() -> Response<Full<Bytes>> {
    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"the table is away (a test outage)"}"#;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}

async fn forward(
    request: Request<Incoming>,
    state: &State,
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
) -> Result<Response<Full<Bytes>>, AnswerLost> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| AnswerLost)?.to_bytes();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default();
    if let Some((operation, passes)) = &state.fail_after {
        let passes = || {
            passes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        if target.ends_with(operation.as_str()) && !passes() {
            state.failed.fetch_add(1, Ordering::SeqCst);
            return Ok(server_error());
        }
    }
    let first_time = match state.always.is_empty() {
        false => {
            state.always.iter().any(|op| target.ends_with(op.as_str()))
                && state.countdown.as_ref().is_none_or(|left| {
                    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                })
        }
        true => state
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(Sha256::digest(&body).into()),
    };
    let response = relay(client, upstream, &parts, body)
        .await
        .ok_or(AnswerLost)?;
    if first_time {
        // The engine has acted; its answer never reaches the caller.
        state.lost.fetch_add(1, Ordering::SeqCst);
        return Err(AnswerLost);
    }
    Ok(response)
}
