//! One delivery of a work message, read once from its SQS record: what the
//! rest of the worker needs to know about it and to act on it (send it on,
//! delay it, delete it), whatever its body says.

use aws_lambda_events::sqs::SqsMessage;
use shared::aws::queue::queue_url_from_arn;
use shared::rules::runs::Wake;

/// The message attribute that marks the one message carrying a lane's
/// safety poll.
pub const POLL_TOKEN: &str = "poll_token";

/// A work message as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// SQS's message id (empty if the record had none).
    pub id: String,
    /// The body, as sent (empty if the record had none).
    pub body: String,
    /// How many times SQS has delivered it (1 the first time).
    pub receive_count: u32,
    /// The lane poll's token it carries, if it carries the poll.
    pub poll_token: Option<String>,
    /// The URL of the queue it came from (from the record's source ARN).
    pub source_queue: Option<String>,
    /// The receipt that changes or deletes this delivery.
    pub receipt: Option<String>,
    /// Its String attributes, the poll token among them.
    pub attributes: Vec<(String, String)>,
}

impl Delivery {
    /// Reads the record; a field it lacks is left empty, never an error
    /// (the message is still acknowledged or dead-lettered by its id).
    pub fn from_message(message: SqsMessage) -> Self {
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let mut attributes: Vec<(String, String)> = message
            .message_attributes
            .into_iter()
            .filter_map(|(name, value)| value.string_value.map(|v| (name, v)))
            .collect();
        attributes.sort();
        let poll_token = attributes
            .iter()
            .find(|(name, _)| name == POLL_TOKEN)
            .map(|(_, value)| value.clone());
        Self {
            id: message.message_id.unwrap_or_default(),
            body: message.body.unwrap_or_default(),
            receive_count,
            poll_token,
            source_queue: message
                .event_source_arn
                .as_deref()
                .and_then(queue_url_from_arn),
            receipt: message.receipt_handle,
            attributes,
        }
    }

    /// The lane poll's token it carries, if any.
    pub fn poll_token(&self) -> Option<&str> {
        self.poll_token.as_deref()
    }

    /// Where this delivery can be delayed or deleted: its queue and receipt.
    pub fn handle(&self) -> Option<(&str, &str)> {
        Some((self.source_queue.as_deref()?, self.receipt.as_deref()?))
    }

    /// Its String attributes but the lane's poll: what a copy of it
    /// carries on (a replay's mark among them); the poll belongs to this
    /// delivery alone.
    pub fn carried_attributes(&self) -> Vec<(String, String)> {
        self.attributes
            .iter()
            .filter(|(name, _)| name != POLL_TOKEN)
            .cloned()
            .collect()
    }

    /// How to wake a run this message opens: the same message, with the
    /// attributes it carries on, on the queue it came from.
    pub fn wake(&self) -> Option<Wake> {
        Some(Wake {
            queue_url: self.source_queue.clone()?,
            message: self.body.clone(),
            attributes: self.carried_attributes(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::sqs::SqsMessageAttribute;

    fn attribute(value: Option<&str>) -> SqsMessageAttribute {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = value.map(str::to_string);
        attribute.data_type = Some("String".into());
        attribute
    }

    fn message() -> SqsMessage {
        let mut message = SqsMessage::default();
        message.message_id = Some("m-1".into());
        message.body = Some("{}".into());
        message.receipt_handle = Some("r-1".into());
        message.event_source_arn = Some("arn:aws:sqs:eu-west-1:123456789012:work".into());
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), "3".into());
        message
            .message_attributes
            .insert(POLL_TOKEN.into(), attribute(Some("tok")));
        message
            .message_attributes
            .insert("replayed_by".into(), attribute(Some("r")));
        message
            .message_attributes
            .insert("binary".into(), attribute(None));
        message
    }

    #[test]
    fn a_delivery_reads_every_field_once() {
        let delivery = Delivery::from_message(message());
        assert_eq!(delivery.id, "m-1");
        assert_eq!(delivery.receive_count, 3);
        assert_eq!(delivery.poll_token(), Some("tok"));
        assert_eq!(
            delivery.handle(),
            Some((
                "https://sqs.eu-west-1.amazonaws.com/123456789012/work",
                "r-1"
            ))
        );
        // Only String attributes; the poll stays with this delivery.
        assert_eq!(delivery.attributes.len(), 2);
        assert_eq!(
            delivery.carried_attributes(),
            vec![("replayed_by".to_string(), "r".to_string())]
        );
        let wake = delivery.wake().expect("a wake");
        assert_eq!(wake.message, "{}");
        assert_eq!(wake.attributes, delivery.carried_attributes());
    }

    #[test]
    fn a_bare_record_is_read_with_defaults_not_refused() {
        let delivery = Delivery::from_message(SqsMessage::default());
        assert_eq!(delivery.id, "");
        assert_eq!(delivery.receive_count, 1);
        assert_eq!(delivery.poll_token(), None);
        assert_eq!(delivery.handle(), None);
        assert_eq!(delivery.wake(), None);
    }

    #[test]
    fn an_unreadable_receive_count_counts_as_the_first() {
        let mut message = message();
        message
            .attributes
            .insert("ApproximateReceiveCount".into(), "many".into());
        assert_eq!(Delivery::from_message(message).receive_count, 1);
    }
}
