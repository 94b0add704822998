//! Shared harness of the ingress tests: the handler over real moto clients.
#![allow(dead_code)]

use ingress::Ingress;
use serde_json::{json, Value};
use shared::aws;
use shared::aws::queue::WorkQueue;
use shared::aws::table::Table;
use shared::clock::ManualClock;
use shared::config::{Env, IngressConfig};
use shared::rules::message::WorkMessage;
use std::sync::Arc;
pub use testkit::rest_event;
use testkit::{dead_endpoint, sdk_config_at, Stack};

pub const START_MS: u64 = 1_795_000_000_000;
pub const CLIENT_IP: &str = "203.0.113.77";
/// How many 503s in a row a settled request takes before the test fails.
pub const SETTLE_ATTEMPTS: usize = 30;

pub struct Harness {
    pub stack: Stack,
    pub ingress: Ingress,
    pub clock: Arc<ManualClock>,
    pub config: IngressConfig,
}

#[derive(Default)]
pub struct Faults {
    pub dead_table: bool,
    pub dead_queue: bool,
}

impl Faults {
    /// Every table call fails to connect.
    pub const DEAD_TABLE: Faults = Faults {
        dead_table: true,
        dead_queue: false,
    };
    /// Every queue call fails to connect.
    pub const DEAD_QUEUE: Faults = Faults {
        dead_table: false,
        dead_queue: true,
    };
}

pub async fn harness_with(extra: &[(&str, &str)], faults: Faults) -> Harness {
    let stack = Stack::new().await;
    let mut pairs: Vec<(&str, &str)> = vec![
        ("TABLE_NAME", stack.table_name.as_str()),
        ("QUEUE_URL", stack.queues.queue_url.as_str()),
        ("PIPELINES", "app=app-pipeline,docs=docs-pipeline"),
        ("CLIENT_KEY_SECRET", "test-secret-of-sufficient-length"),
    ];
    pairs.extend_from_slice(extra);
    let config = IngressConfig::from_env(&Env::from_pairs(pairs)).expect("valid config");
    let dead = sdk_config_at(&dead_endpoint()).await;
    let calls = stack.calls.clone();
    let dynamodb = if faults.dead_table {
        aws::dynamodb(&dead, &calls)
    } else {
        stack.dynamodb.clone()
    };
    let sqs = if faults.dead_queue {
        aws::sqs(&dead, &calls)
    } else {
        stack.sqs.clone()
    };
    let clock = Arc::new(ManualClock::new(START_MS));
    let ingress = Ingress::new(
        config.clone(),
        Table::new(dynamodb, config.table_name.clone()),
        WorkQueue::new(sqs, config.queue_url.clone()),
        clock.clone(),
        calls,
    );
    Harness {
        stack,
        ingress,
        clock,
        config,
    }
}

pub async fn harness(extra: &[(&str, &str)]) -> Harness {
    harness_with(extra, Faults::default()).await
}

pub fn http_api_event(method: &str, path: &str, body: Option<&str>, ip: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"x-forwarded-for": "198.51.100.99"}, "body": body, "isBase64Encoded": false,
        "requestContext": {"stage": "$default", "http": {"method": method, "path": path, "sourceIp": ip,
                            "protocol": "HTTP/1.1", "userAgent": "curl/8"}}
    })
}

/// The ingress's answer to `event`, sent again (the same request, as a
/// client would) after each 503, which means "nothing spent, try again":
/// bounded, and never counted as an answer.
pub async fn handle_settled(ingress: &Ingress, event: Value) -> Value {
    for _ in 0..SETTLE_ATTEMPTS {
        let out = ingress
            .handle(event.clone())
            .await
            .expect("an HTTP response");
        if out["statusCode"] != 503 {
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("still 503 after {SETTLE_ATTEMPTS} attempts: {event}");
}

pub struct Reply {
    pub status: u16,
    pub headers: Value,
    pub body: Value,
}

impl Reply {
    /// The status and the quota left that the body reports.
    pub fn status_and_remaining(&self) -> (u16, Option<u64>) {
        (self.status, self.body["quota"]["remaining"].as_u64())
    }
}

impl Harness {
    /// Another instance of the function, just started (nothing remembered),
    /// on the same table, queue and clock.
    pub fn cold_instance(&self) -> Ingress {
        self.instance_with(self.stack.dynamodb.clone())
    }

    /// Another instance with SDK clients (and connections) of its own, its
    /// table calls through `table` and its queue calls through `queue` (each
    /// a proxy's endpoint, or an engine's): a second Lambda process, as far
    /// as the engines can tell.
    pub async fn instance_between(&self, table: &str, queue: &str) -> Ingress {
        let sdk = testkit::sdk_config_with(aws::Endpoints {
            dynamodb: table.to_string(),
            others: testkit::moto_endpoint().to_string(),
            services: vec![("SQS".to_string(), queue.to_string())],
        })
        .await;
        let calls = aws::CallCounter::default();
        Ingress::new(
            self.config.clone(),
            Table::new(aws::dynamodb(&sdk, &calls), self.config.table_name.clone()),
            WorkQueue::new(aws::sqs(&sdk, &calls), self.config.queue_url.clone()),
            self.clock.clone(),
            calls,
        )
    }

    /// [`Harness::cold_instance`] whose table calls go through `dynamodb`.
    pub fn instance_with(&self, dynamodb: aws_sdk_dynamodb::Client) -> Ingress {
        Ingress::new(
            self.config.clone(),
            Table::new(dynamodb, self.config.table_name.clone()),
            WorkQueue::new(self.stack.sqs.clone(), self.config.queue_url.clone()),
            self.clock.clone(),
            self.stack.calls.clone(),
        )
    }

    pub async fn send(&self, event: Value) -> Reply {
        let out = self
            .ingress
            .handle(event)
            .await
            .expect("an HTTP event gets a response");
        let body = out["body"].as_str().unwrap_or("");
        Reply {
            status: out["statusCode"].as_u64().unwrap() as u16,
            headers: out["headers"].clone(),
            body: if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(body).expect("JSON body")
            },
        }
    }

    pub async fn post(&self, body: Option<&str>, ip: &str) -> Reply {
        self.send(rest_event("POST", "/trigger", body, ip)).await
    }

    /// `POST /trigger` as a client that honours a 503 ("nothing spent, try
    /// again"): sent again after its `Retry-After` (shortened, bounded)
    /// until the answer is something else. An overloaded engine makes the
    /// SDK's attempts time out; that must never count as an answer.
    pub async fn post_settled(&self, body: Option<&str>, ip: &str) -> Reply {
        let out = handle_settled(&self.ingress, rest_event("POST", "/trigger", body, ip)).await;
        let body = out["body"].as_str().unwrap_or("");
        Reply {
            status: out["statusCode"].as_u64().unwrap() as u16,
            headers: out["headers"].clone(),
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, id: &str) -> Reply {
        self.send(rest_event(
            "GET",
            &format!("/triggers/{id}"),
            None,
            CLIENT_IP,
        ))
        .await
    }

    pub async fn queued(&self) -> Vec<WorkMessage> {
        self.stack
            .drain(&self.stack.queues.queue_url)
            .await
            .iter()
            .map(|m| WorkMessage::parse(m.body().unwrap()).expect("contract message"))
            .collect()
    }
}
