//! The one HTTP/1.1 server of the local stack (the API, and CodePipeline's
//! read calls): accept on a loopback listener, bounded header and body reads.

use crate::stopping::Stopping;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, warn};

/// How long a client has to send its headers, and then its body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

/// The whole body, at most `max` bytes, within [`READ_TIMEOUT`].
pub async fn read_body(body: Incoming, max: usize) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(READ_TIMEOUT, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Ok(Err(_)) => Err(BodyError::Broken),
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// Serves `handler` (given each request and its TCP peer) until `stopping`
/// fires; connections in flight finish on their own.
pub async fn serve<H, F>(listener: TcpListener, mut stopping: Stopping, handler: H)
where
    H: Fn(Request<Incoming>, IpAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "could not accept a connection");
                continue;
            }
        };
        let handler = handler.clone();
        let peer_ip = peer.ip().to_canonical();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let answer = handler(request, peer_ip);
                async move { Ok::<_, std::convert::Infallible>(answer.await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            match served {
                // Idle keep-alive connections and slow clients end this way.
                Err(e) if e.is_timeout() => debug!(error = %e, "connection timed out"),
                Err(e) => warn!(error = %e, "connection ended with an error"),
                Ok(()) => {}
            }
        });
    }
}

/// A response with a JSON body.
pub fn json_response(
    status: u16,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
