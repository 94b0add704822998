//! The public page and CORS through the ingress handler, as API Gateway
//! delivers the requests (a REST API `prod` stage): the page and its files
//! cost no AWS call, an allowed origin reads the answers and a disallowed
//! one gets no CORS header, and the quota applies whoever calls.

mod common;

use common::*;
use serde_json::Value;
use testkit::events::{api_gateway_event, GatewayRequest};

const SITE: &str = "https://docs.example.com";

/// A request through the `prod` stage, from `origin` when given.
fn staged(method: &str, path: &str, origin: Option<&str>, body: &str) -> Value {
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    if let Some(origin) = origin {
        headers.push(("Origin".to_string(), origin.to_string()));
    }
    api_gateway_event(&GatewayRequest {
        method,
        path,
        stage: Some("prod"),
        query: None,
        headers,
        body: body.as_bytes(),
        source_ip: CLIENT_IP,
        request_id: "r-page",
    })
}

/// Status, headers and the raw body.
async fn answer(h: &Harness, event: Value) -> (u64, Value, String) {
    let out = h.ingress.handle(event).await.expect("an HTTP response");
    (
        out["statusCode"].as_u64().unwrap(),
        out["headers"].clone(),
        out["body"].as_str().unwrap_or_default().to_string(),
    )
}

fn cors_headers(headers: &Value) -> Vec<String> {
    headers
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("Access-Control-"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_page_and_its_files_are_served_under_the_stage_without_any_aws_call() {
    let h = harness(&[]).await;
    let before = h.stack.calls.snapshot();
    for addressed in ["/prod", "/prod/"] {
        let (status, headers, body) = answer(&h, staged("GET", addressed, None, "")).await;
        assert_eq!(status, 200, "{addressed}");
        assert_eq!(headers["Content-Type"], "text/html; charset=utf-8");
        let policy = headers["Content-Security-Policy"].as_str().unwrap();
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
        assert!(body.contains("data-api-base=\"/prod\""), "{addressed}");
        assert!(body.contains("src=\"/prod/assets/page.js?v="));
        assert!(body.contains("<button type=\"submit\""));
        assert!(body.contains("role=\"status\""));
    }
    for (file, content_type) in [
        ("page.js", "text/javascript; charset=utf-8"),
        ("page.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let (status, headers, body) =
            answer(&h, staged("GET", &format!("/prod/assets/{file}"), None, "")).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(headers["Content-Type"], content_type);
        assert!(!body.is_empty());
    }
    let (status, headers, _) = answer(&h, staged("GET", "/prod/assets/secret.env", None, "")).await;
    assert_eq!(status, 404);
    assert_eq!(headers["Content-Type"], "application/problem+json");
    let (status, _, _) = answer(&h, staged("POST", "/prod", None, "")).await;
    assert_eq!(status, 405);
    assert!(
        h.stack.calls.since(&before).is_empty(),
        "the page costs no AWS call"
    );
}

#[tokio::test]
async fn an_allowed_origin_reads_the_answers_and_its_preflight_passes() {
    let h = harness(&[(
        "CORS_ALLOWED_ORIGINS",
        "https://docs.example.com,http://localhost:8080",
    )])
    .await;
    for (path, methods) in [
        ("/prod/trigger", "POST, OPTIONS"),
        ("/prod/pipelines", "GET, OPTIONS"),
        ("/prod/triggers/01JD0000000000000000000000", "GET, OPTIONS"),
    ] {
        let (status, headers, body) = answer(&h, staged("OPTIONS", path, Some(SITE), "")).await;
        assert_eq!(status, 204, "{path}");
        assert_eq!(body, "");
        assert_eq!(headers["Access-Control-Allow-Origin"], SITE);
        assert_eq!(headers["Access-Control-Allow-Methods"], methods);
        assert_eq!(headers["Access-Control-Allow-Headers"], "content-type");
        assert_eq!(headers["Access-Control-Max-Age"], "600");
        assert_eq!(headers["Vary"], "Origin");
    }
    let (status, headers, body) = answer(&h, staged("POST", "/prod/trigger", Some(SITE), "")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(headers["Access-Control-Allow-Origin"], SITE);
    assert_eq!(headers["Vary"], "Origin");
    let exposed = headers["Access-Control-Expose-Headers"].as_str().unwrap();
    for name in ["Location", "Retry-After", "RateLimit", "RateLimit-Policy"] {
        assert!(exposed.contains(name), "{exposed}");
    }
    let id = serde_json::from_str::<Value>(&body).unwrap()["trigger_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, headers, _) = answer(
        &h,
        staged("GET", &format!("/prod/triggers/{id}"), Some(SITE), ""),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["Access-Control-Allow-Origin"], SITE);
    // Errors carry the headers too, so the embedding page can read why.
    let (status, headers, _) = answer(
        &h,
        staged(
            "POST",
            "/prod/trigger",
            Some(SITE),
            "{\"pipeline\":\"nope\"}",
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(headers["Access-Control-Allow-Origin"], SITE);
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_cors_header_and_cannot_trigger() {
    let h = harness(&[("CORS_ALLOWED_ORIGINS", SITE), ("QUOTA_LIMIT", "1")]).await;
    for origin in [
        "https://evil.example",
        "https://docs.example.com.evil.example",
        "null",
        "HTTPS://DOCS.EXAMPLE.COM",
    ] {
        let (status, headers, _) =
            answer(&h, staged("OPTIONS", "/prod/trigger", Some(origin), "")).await;
        assert_eq!(status, 204, "{origin}");
        assert_eq!(headers["Allow"], "POST, OPTIONS");
        assert!(cors_headers(&headers).is_empty(), "{origin}: {headers}");
    }
    // A trigger from the disallowed page is refused (403 cross-site) and
    // costs nothing: the allowed site's next trigger still has the quota.
    let (status, headers, _) = answer(
        &h,
        staged("POST", "/prod/trigger", Some("https://evil.example"), ""),
    )
    .await;
    assert_eq!(status, 403);
    assert!(cors_headers(&headers).is_empty());
    let (status, headers, _) = answer(&h, staged("POST", "/prod/trigger", Some(SITE), "")).await;
    assert_eq!(status, 202);
    assert_eq!(headers["Access-Control-Allow-Origin"], SITE);
    // Without an Origin (curl, the page itself): no CORS header either.
    let (_, headers, _) = answer(&h, staged("GET", "/prod/pipelines", None, "")).await;
    assert!(cors_headers(&headers).is_empty());
}

#[tokio::test]
async fn any_origin_with_a_star_and_none_without_the_setting() {
    let h = harness(&[("CORS_ALLOWED_ORIGINS", "*")]).await;
    let (status, headers, _) = answer(
        &h,
        staged(
            "OPTIONS",
            "/prod/pipelines",
            Some("https://anyone.example"),
            "",
        ),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(headers["Access-Control-Allow-Origin"], "*");
    let (_, headers, _) = answer(
        &h,
        staged("GET", "/prod/pipelines", Some("https://anyone.example"), ""),
    )
    .await;
    assert_eq!(headers["Access-Control-Allow-Origin"], "*");

    let off = harness(&[]).await;
    let (status, headers, _) =
        answer(&off, staged("OPTIONS", "/prod/trigger", Some(SITE), "")).await;
    assert_eq!(status, 204);
    assert!(cors_headers(&headers).is_empty());
    let (_, headers, _) = answer(&off, staged("GET", "/prod/pipelines", Some(SITE), "")).await;
    assert!(cors_headers(&headers).is_empty());
}
