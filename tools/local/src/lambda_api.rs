//! Lambda's `Invoke` for the notifier, as `trigger-ops events replay` calls
//! it: `POST /2015-03-31/functions/<name>/invocations` with the event as
//! the body; the notifier's outcome as the answer, or, when it fails, the
//! error with `X-Amz-Function-Error: Unhandled`, as Lambda answers a
//! function error.

use super::http_server::{self, json_response, read_body};
use crate::stopping::Stopping;
use hyper::body::Incoming;
use hyper::Request;
use notifier::Notifier;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The largest payload Lambda takes in a synchronous invocation.
const MAX_PAYLOAD: usize = 6 * 1024 * 1024;

/// Serves `Invoke` for the function named `name` until `stopping`.
pub async fn serve(
    listener: TcpListener,
    stopping: Stopping,
    name: String,
    notifier: Arc<Notifier>,
) {
    http_server::serve(
        listener,
        stopping,
        move |request: Request<Incoming>, _peer| {
            let (notifier, name) = (notifier.clone(), name.clone());
            async move {
                let path = request.uri().path().to_string();
                let wanted = format!("/2015-03-31/functions/{name}/invocations");
                if request.method() != hyper::Method::POST || path != wanted {
                    return json_response(
                        404,
                        "application/json",
                        &json!({"Type": "User", "message": format!("Function not found: {path}")}),
                    );
                }
                let event: Value = match read_body(request.into_body(), MAX_PAYLOAD).await {
                    Ok(body) => serde_json::from_slice(&body).unwrap_or(Value::Null),
                    Err(_) => Value::Null,
                };
                match notifier.handle(event).await {
                    Ok(outcome) => json_response(200, "application/json", &json!(outcome)),
                    Err(e) => {
                        let mut response = json_response(
                            200,
                            "application/json",
                            &json!({"errorType": e.error_type(), "errorMessage": e.to_string()}),
                        );
                        response.headers_mut().insert(
                            "x-amz-function-error",
                            hyper::header::HeaderValue::from_static("Unhandled"),
                        );
                        response
                    }
                }
            }
        },
    )
    .await
}
