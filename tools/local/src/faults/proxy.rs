//! A loopback proxy in front of an engine that fails calls at random, with
//! a seeded generator: it loses answers (forwards the request, so the
//! engine acts, then drops the connection: the SDK retries what already
//! happened), answers `500` without forwarding, answers throttling (`400
//! ThrottlingException` for the JSON protocols; `500` for SNS's query
//! protocol) without forwarding, and for a stretch of time fails every
//! call (an outage). Every fault is counted by kind and operation.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How often each fault happens, per call (0.0 to 1.0).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    pub lost_answer: f64,
    pub server_error: f64,
    pub throttled: f64,
}

/// What the proxy did to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    LostAnswer,
    ServerError,
    Throttled,
    Outage,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Self::LostAnswer => "answer lost (the engine acted)",
            Self::ServerError => "500",
            Self::Throttled => "throttled",
            Self::Outage => "outage (refused)",
        }
    }
}

struct State {
    name: &'static str,
    upstream: Mutex<String>,
    rates: FaultRates,
    rng: Mutex<StdRng>,
    down_until: Mutex<Option<Instant>>,
    faults: Mutex<BTreeMap<(Fault, String), u64>>,
}

/// A running proxy; it stops with the runtime.
#[derive(Clone)]
pub struct ChaosProxy {
    pub endpoint: String,
    state: Arc<State>,
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

impl ChaosProxy {
    /// A proxy named `name` (`DynamoDB`, `moto`, …) in front of `upstream`.
    pub async fn start(
        name: &'static str,
        upstream: &str,
        rates: FaultRates,
        seed: u64,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            name,
            upstream: Mutex::new(upstream.trim_end_matches('/').to_string()),
            rates,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            down_until: Mutex::new(None),
            faults: Mutex::new(BTreeMap::new()),
        });
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (state, client) = (serving.clone(), client.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (state, client) = (state.clone(), client.clone());
                        async move { forward(request, &state, &client).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { endpoint, state })
    }

    /// Sends the calls somewhere else from now on.
    pub fn set_upstream(&self, upstream: &str) {
        *lock(&self.state.upstream) = upstream.trim_end_matches('/').to_string();
    }

    /// Fails every call for `how_long` from now.
    pub fn take_down(&self, how_long: Duration) {
        *lock(&self.state.down_until) = Some(Instant::now() + how_long);
    }

    /// Faults so far, by kind and operation.
    pub fn faults(&self) -> BTreeMap<(Fault, String), u64> {
        lock(&self.state.faults).clone()
    }

    pub fn name(&self) -> &'static str {
        self.state.name
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Service.Operation` of a call: `X-Amz-Target` (the JSON protocols) or
/// the form's `Action` (SNS).
fn operation(request: &hyper::http::request::Parts, body: &[u8]) -> (String, bool) {
    if let Some(target) = request
        .headers
        .get("x-amz-target")
        .and_then(|t| t.to_str().ok())
    {
        return (target.to_string(), true);
    }
    let form = String::from_utf8_lossy(body);
    let action = form
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("unknown");
    (action.to_string(), false)
}

fn answer(status: u16, json: bool, code: &str) -> Response<Full<Bytes>> {
    let (body, content_type) = if json {
        (
            format!(r#"{{"__type":"{code}","message":"injected by the chaos run"}}"#),
            "application/x-amz-json-1.0",
        )
    } else {
        (
            format!("<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>injected by the chaos run</Message></Error></ErrorResponse>"),
            "text/xml",
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn forward(
    request: Request<Incoming>,
    state: &State,
    client: &Client<HttpConnector, Full<Bytes>>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let (op, json) = operation(&parts, &body);
    let down = lock(&state.down_until).is_some_and(|until| Instant::now() < until);
    let fault = if down {
        Some(Fault::Outage)
    } else {
        let roll: f64 = lock(&state.rng).random();
        let r = state.rates;
        if roll < r.lost_answer {
            Some(Fault::LostAnswer)
        } else if roll < r.lost_answer + r.server_error {
            Some(Fault::ServerError)
        } else if roll < r.lost_answer + r.server_error + r.throttled {
            Some(Fault::Throttled)
        } else {
            None
        }
    };
    if let Some(fault) = fault {
        *lock(&state.faults).entry((fault, op)).or_insert(0) += 1;
    }
    let upstream = lock(&state.upstream).clone();
    match fault {
        None => testkit::emulation::relay(client, &upstream, &parts, body)
            .await
            .ok_or(Dropped),
        Some(Fault::LostAnswer) => {
            // The engine acts; its answer never arrives.
            let _ = testkit::emulation::relay(client, &upstream, &parts, body).await;
            Err(Dropped)
        }
        Some(Fault::ServerError | Fault::Outage) => Ok(answer(500, json, "InternalServerError")),
        Some(Fault::Throttled) if json => Ok(answer(400, true, "ThrottlingException")),
        Some(Fault::Throttled) => Ok(answer(400, false, "Throttling")),
    }
}
