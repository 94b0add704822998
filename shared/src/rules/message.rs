//! The work-queue message (ingress → worker), docs/reference/work-message.md.

use serde::{Deserialize, Serialize};

pub const MESSAGE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkMessage {
    pub version: u32,
    pub trigger_id: String,
    /// The CodePipeline name.
    pub pipeline: String,
    /// RFC 3339.
    pub requested_at: String,
    /// Hex client key, never an address.
    pub client_key: String,
    /// The pipeline's input values (defaults filled in), when it has inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<serde_json::Map<String, serde_json::Value>>,
    /// Sent by an ingress that could not tell whether its admission
    /// committed, and answered 503 ("nothing spent"): the worker gives back
    /// whatever the trigger took and runs nothing (docs/reference/work-message.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsettled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message body is not JSON: {0}")]
    NotJson(String),
    #[error("message version {0} is not supported (expected {MESSAGE_VERSION})")]
    UnknownVersion(u64),
    #[error("message does not match the schema: {0}")]
    Schema(String),
}

impl WorkMessage {
    /// The message of an accepted trigger (`inputs` when its pipeline
    /// declares any): what the ingress sends, and what the settler sends
    /// again marked `unsettled`.
    pub fn of(record: &crate::rules::trigger::TriggerRecord, has_inputs: bool) -> Self {
        Self {
            version: MESSAGE_VERSION,
            trigger_id: record.trigger_id.clone(),
            pipeline: record.target.clone(),
            requested_at: crate::rules::time_format::rfc3339(record.requested_at),
            client_key: record.client_key.to_string(),
            inputs: match crate::rules::inputs::values_to_json(&record.inputs) {
                serde_json::Value::Object(values) if has_inputs => Some(values),
                _ => None,
            },
            unsettled: false,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a WorkMessage always serializes")
    }

    /// Parses a body, telling apart garbage, a future version and a bad shape.
    pub fn parse(body: &str) -> Result<Self, MessageError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| MessageError::NotJson(e.to_string()))?;
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(MESSAGE_VERSION) => {}
            Some(v) => return Err(MessageError::UnknownVersion(v)),
            None => {
                return Err(MessageError::Schema(
                    "missing or non-numeric \"version\"".into(),
                ))
            }
        }
        let message: Self =
            serde_json::from_value(value).map_err(|e| MessageError::Schema(e.to_string()))?;
        if message.trigger_id.is_empty() || message.pipeline.is_empty() {
            return Err(MessageError::Schema("empty trigger_id or pipeline".into()));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkMessage {
        WorkMessage {
            version: 1,
            trigger_id: "01JCZ8W5Q4S0Y6Y8C0Z1V2X3Y4".into(),
            pipeline: "app-pipeline".into(),
            requested_at: "2026-11-21T05:00:00.000Z".into(),
            client_key: "ab".repeat(32),
            inputs: None,
            unsettled: false,
        }
    }

    #[test]
    fn round_trips_with_the_contract_field_names() {
        let json = sample().to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "client_key",
                "pipeline",
                "requested_at",
                "trigger_id",
                "version"
            ]
        );
        assert_eq!(WorkMessage::parse(&json), Ok(sample()));
    }

    #[test]
    fn tells_apart_the_ways_a_body_can_be_wrong() {
        assert!(matches!(
            WorkMessage::parse("not json"),
            Err(MessageError::NotJson(_))
        ));
        assert!(matches!(
            WorkMessage::parse("[]"),
            Err(MessageError::Schema(_))
        ));
        assert!(matches!(
            WorkMessage::parse(r#"{"version": 2, "trigger_id": "x"}"#),
            Err(MessageError::UnknownVersion(2))
        ));
        assert!(matches!(
            WorkMessage::parse(r#"{"version": 1, "trigger_id": "x"}"#),
            Err(MessageError::Schema(_))
        ));
        let mut extra: serde_json::Value = serde_json::to_value(sample()).unwrap();
        extra["shell"] = "rm -rf /".into();
        assert!(matches!(
            WorkMessage::parse(&extra.to_string()),
            Err(MessageError::Schema(_))
        ));
    }
}
