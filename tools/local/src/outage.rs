//! A switch in front of DynamoDB for one function (the notifier): while it
//! is down, every call is answered `500 InternalServerError`, as DynamoDB
//! answers in an outage, and the SDK's retries fail too; while it is up,
//! calls pass unchanged. Tests and chaos runs use it to take the table
//! away from a function and give it back.

use super::http_server::{self, json_response};
use crate::stopping::Stopping;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::Request;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The switch: its endpoint, and whether the table is away.
#[derive(Clone)]
pub struct Outage {
    pub endpoint: String,
    down: Arc<AtomicBool>,
}

impl Outage {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
}

/// A switch on `listener` in front of `upstream`, up; serves until `stopping`.
pub fn start(
    listener: TcpListener,
    stopping: Stopping,
    upstream: String,
) -> std::io::Result<(
    Outage,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let outage = Outage {
        endpoint: format!("http://{}", listener.local_addr()?),
        down: Arc::new(AtomicBool::new(false)),
    };
    let down = outage.down.clone();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let serve = http_server::serve(
        listener,
        stopping,
        move |request: Request<Incoming>, _peer| {
            let (down, client, upstream) = (down.clone(), client.clone(), upstream.clone());
            async move {
                let failed = || {
                    json_response(
                        500,
                        "application/x-amz-json-1.0",
                        &json!({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                            "message": "the table is away (a local outage)"}),
                    )
                };
                if down.load(Ordering::SeqCst) {
                    return failed();
                }
                let (parts, body) = request.into_parts();
                let Ok(body) = http_server::read_body(body, 16 * 1024 * 1024).await else {
                    return failed();
                };
                testkit::emulation::relay(&client, &upstream, &parts, body)
                    .await
                    .unwrap_or_else(failed)
            }
        },
    );
    Ok((outage, serve))
}
