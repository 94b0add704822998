//! A Lambda Runtime API of our own: the function's process polls
//! `/runtime/invocation/next` for events and posts each response (or error)
//! back, exactly as under Lambda. The first poll marks the end of init.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Mutex as AsyncMutex};

/// How an invocation ended.
#[derive(Debug)]
pub enum Outcome {
    Response(Value),
    Error(String),
}

struct Pending {
    id: String,
    event: Value,
    done: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct State {
    first_poll: Option<Instant>,
    init_error: Option<String>,
    waiting: HashMap<String, oneshot::Sender<Outcome>>,
}

/// The Runtime API, served on a loopback port.
#[derive(Clone)]
pub struct RuntimeApi {
    pub address: SocketAddr,
    events: mpsc::Sender<Pending>,
    state: Arc<Mutex<State>>,
}

type Queue = Arc<AsyncMutex<mpsc::Receiver<Pending>>>;

impl RuntimeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let (events, queue) = mpsc::channel::<Pending>(1);
        let queue: Queue = Arc::new(AsyncMutex::new(queue));
        let state = Arc::new(Mutex::new(State::default()));
        let api = Self {
            address,
            events,
            state: state.clone(),
        };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (queue, state) = (queue.clone(), state.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let (queue, state) = (queue.clone(), state.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(request, queue, state).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(api)
    }

    /// When the process first asked for an event, if it has.
    pub fn first_poll(&self) -> Option<Instant> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_poll
    }

    /// The init error the process reported, if any.
    pub fn init_error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .init_error
            .clone()
    }

    /// One invocation: the event is handed to the next poll; returns what
    /// the function answered.
    pub async fn invoke(&self, event: Value) -> Option<Outcome> {
        let (done, outcome) = oneshot::channel();
        let pending = Pending {
            id: ulid::Ulid::new().to_string(),
            event,
            done,
        };
        self.events.send(pending).await.ok()?;
        outcome.await.ok()
    }
}

fn reply(status: u16, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

async fn answer(
    request: Request<Incoming>,
    queue: Queue,
    state: Arc<Mutex<State>>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    let rest = path.strip_prefix("/2018-06-01/runtime/").unwrap_or("");
    if method == hyper::Method::GET && rest == "invocation/next" {
        lock().first_poll.get_or_insert_with(Instant::now);
        let Some(pending) = queue.lock().await.recv().await else {
            return reply(500, Bytes::new());
        };
        lock().waiting.insert(pending.id.clone(), pending.done);
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 30_000)
            .unwrap_or_default();
        let mut response = reply(200, Bytes::from(pending.event.to_string()));
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("lambda-runtime-aws-request-id", pending.id);
        set("lambda-runtime-deadline-ms", deadline.to_string());
        set(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
        );
        set(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000".into(),
        );
        return response;
    }
    if method == hyper::Method::POST && rest == "init/error" {
        lock().init_error = Some(String::from_utf8_lossy(&body).into_owned());
        return reply(202, Bytes::new());
    }
    if method == hyper::Method::POST {
        if let Some((id, kind)) = rest
            .strip_prefix("invocation/")
            .and_then(|r| r.split_once('/'))
        {
            let outcome = match kind {
                "response" => {
                    Outcome::Response(serde_json::from_slice(&body).unwrap_or(Value::Null))
                }
                _ => Outcome::Error(String::from_utf8_lossy(&body).into_owned()),
            };
            if let Some(done) = lock().waiting.remove(id) {
                let _ = done.send(outcome);
            }
            return reply(202, Bytes::new());
        }
    }
    reply(404, Bytes::new())
}
