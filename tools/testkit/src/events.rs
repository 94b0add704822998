//! The events AWS hands to the functions, built from what caused them: the
//! REST API event API Gateway builds from an HTTP request (ingress), and the
//! SQS event the event source mapping builds from received messages
//! (worker). The local stack and the tests build them here so both hand the
//! handlers exactly what Lambda would.

use base64::Engine;
use serde_json::{json, Map, Value};

/// One HTTP request as API Gateway receives it.
#[derive(Debug, Clone, Default)]
pub struct GatewayRequest<'a> {
    pub method: &'a str,
    /// The path as the client addressed it, without its query string.
    pub path: &'a str,
    /// The REST API stage the path starts with (`prod` for `/prod/trigger`),
    /// or `None`: the API at the root.
    pub stage: Option<&'a str>,
    /// The raw query string, if any (without `?`).
    pub query: Option<&'a str>,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
    /// The TCP peer: what API Gateway reports as `identity.sourceIp`.
    pub source_ip: &'a str,
    pub request_id: &'a str,
}

/// The REST API (payload v1) proxy event for `request`. A body that is not
/// UTF-8 is base64 encoded and flagged, as API Gateway does.
pub fn api_gateway_event(request: &GatewayRequest<'_>) -> Value {
    let mut headers = Map::new();
    let mut multi_headers = Map::new();
    for (name, value) in &request.headers {
        headers.insert(name.clone(), Value::from(value.as_str()));
        let entry = multi_headers
            .entry(name.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::from(value.as_str()));
        }
    }
    let query: Option<Map<String, Value>> = request.query.filter(|q| !q.is_empty()).map(|q| {
        q.split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (k.to_string(), Value::from(v))
            })
            .collect()
    });
    let (body, is_base64) = if request.body.is_empty() {
        (Value::Null, false)
    } else {
        match std::str::from_utf8(request.body) {
            Ok(text) => (Value::from(text), false),
            Err(_) => (
                Value::from(base64::engine::general_purpose::STANDARD.encode(request.body)),
                true,
            ),
        }
    };
    // REST API: `path` is the resource path; `requestContext.path` is
    // the addressed one, stage included.
    let routed = match request.stage {
        Some(stage) => match request.path.strip_prefix(&format!("/{stage}")) {
            Some("") => "/",
            Some(rest) => rest,
            None => request.path,
        },
        None => request.path,
    };
    // The resource template API Gateway would match, and its parameters.
    let (resource, parameters) = shared::rules::http::trigger_api::resource_of(routed);
    json!({
        "resource": resource,
        "path": routed,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "pathParameters": parameters,
        "body": body,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "stage": request.stage.unwrap_or("local"),
            "requestId": request.request_id,
            "path": request.path,
            "httpMethod": request.method,
            "identity": {"sourceIp": request.source_ip},
        },
    })
}

/// The SQS event the event source mapping delivers for `messages` received
/// from the queue `queue_arn` in `region`: system attributes (receive count),
/// message attributes and receipt handles included.
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str, region: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), Value::from(v.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let value = json!({
                                "stringValue": v.string_value(),
                                "dataType": v.data_type(),
                                "stringListValues": [],
                                "binaryListValues": [],
                            });
                            (k.clone(), value)
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rules::http::event::parse_event;

    fn request<'a>(body: &'a [u8]) -> GatewayRequest<'a> {
        GatewayRequest {
            method: "POST",
            path: "/trigger",
            stage: None,
            query: Some("a=1&b"),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-forwarded-for".into(), "203.0.113.9".into()),
            ],
            body,
            source_ip: "127.0.0.2",
            request_id: "req-1",
        }
    }

    #[test]
    fn the_ingress_reads_what_the_gateway_event_says() {
        let event = api_gateway_event(&request(br#"{"pipeline":"app"}"#));
        let parsed = parse_event(&event).expect("a REST event");
        assert_eq!(parsed.method, "POST");
        assert_eq!(parsed.path, "/trigger");
        assert_eq!(parsed.source_ip.as_deref(), Some("127.0.0.2"));
        assert_eq!(parsed.body_bytes().unwrap(), br#"{"pipeline":"app"}"#);
        assert_eq!(event["queryStringParameters"], json!({"a": "1", "b": ""}));
        assert_eq!(
            event["multiValueHeaders"]["x-forwarded-for"],
            json!(["203.0.113.9"])
        );
    }

    #[test]
    fn binary_bodies_are_base64_and_empty_bodies_null() {
        let event = api_gateway_event(&request(&[0xff, 0xfe, 0x00]));
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "//4A");
        let parsed = parse_event(&event).unwrap();
        assert_eq!(parsed.body_bytes().unwrap(), vec![0xff, 0xfe, 0x00]);

        let event = api_gateway_event(&request(b""));
        assert_eq!(event["body"], Value::Null);
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn sqs_events_carry_receipt_handles_and_attributes() {
        use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh-1")
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3")
            .message_attributes(
                "error_code",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("Throttling")
                    .build()
                    .unwrap(),
            )
            .build();
        let event = sqs_event(
            &[message],
            "arn:aws:sqs:us-east-1:123456789012:work",
            "us-east-1",
        );
        let record = &event["Records"][0];
        assert_eq!(record["receiptHandle"], "rh-1");
        assert_eq!(record["attributes"]["ApproximateReceiveCount"], "3");
        assert_eq!(
            record["messageAttributes"]["error_code"]["stringValue"],
            "Throttling"
        );
        assert_eq!(
            record["eventSourceARN"],
            "arn:aws:sqs:us-east-1:123456789012:work"
        );
        let typed: aws_lambda_events::sqs::SqsEvent =
            serde_json::from_value(event).expect("the worker's event type reads it");
        assert_eq!(typed.records[0].message_id.as_deref(), Some("m-1"));
    }
}
