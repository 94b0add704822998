//! The one HTTP/1.1 server of the test rig's stand-ins and proxies, and the
//! one way they pass a request on.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves `handler` on `listener` for as long as the runtime lives, each
/// connection on a task of its own. A handler that fails closes the
/// connection without an answer.
pub fn serve_http<H, F, E>(listener: TcpListener, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(handler);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
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
    Some(Response::from_parts(parts, Full::new(body)))
}
