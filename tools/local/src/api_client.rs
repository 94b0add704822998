//! A client of the local stack's HTTP API, for the programs that drive it
//! (the chaos run, the flood bench): one request, its status and JSON body.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::Value;

/// Sends `method url` with `body`; the status and the body as JSON
/// (`Null` when it is not JSON). A connection that failed is status 0.
pub async fn request(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: String,
) -> (u16, Value) {
    request_with(client, method, url, body, &[]).await
}

/// [`request`] with more headers (`Authorization` for a trigger key).
pub async fn request_with(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: String,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut builder = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let Ok(request) = builder.body(Full::new(Bytes::from(body))) else {
        return (0, Value::Null);
    };
    match client.request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(_) => (0, Value::Null),
    }
}
