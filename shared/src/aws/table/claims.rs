//! The notifier's exactly-once guard: an EventBridge event id is claimed in
//! the table before its e-mail is published, marked sent after, and released
//! when publishing fails, so the retry can send it.
//!
//! Item `event#<event id>`: `state` (`claimed` or `sent`), `claim` (the
//! claiming invocation's token), `claim_until` (epoch ms: a claim whose
//! holder crashed lapses then), `message_id` once sent, `expires_at` (TTL).

use super::items::{event_pk, get_n, get_s, n, s};
use super::{applied, StoreError, Table};
use crate::clock::EpochMillis;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use std::time::Duration;

const CLAIMED: &str = "claimed";
const SENT: &str = "sent";

/// How claiming an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation holds the event: publish, then [`Claims::mark_sent`].
    Claimed,
    /// Its e-mail went out already: a redelivery.
    AlreadySent { message_id: String },
    /// Another invocation holds a live claim: it may still fail, so this
    /// delivery must not be acknowledged yet.
    HeldElsewhere { until: EpochMillis },
}

/// The notifier's claims on events.
pub struct Claims<'a>(&'a Table);

impl Table {
    pub fn claims(&self) -> Claims<'_> {
        Claims(self)
    }
}

impl Claims<'_> {
    /// Claims `event_id` for `lease`, unless it was sent or is held by a live claim.
    pub async fn claim(
        &self,
        event_id: &str,
        token: &str,
        now: EpochMillis,
        lease: Duration,
        expires_at: u64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .0
            .client()
            .put_item()
            .table_name(self.0.name())
            .item("pk", s(event_pk(event_id)))
            .item("state", s(CLAIMED))
            .item("claim", s(token))
            .item("claim_until", n(now + lease.as_millis() as u64))
            .item("expires_at", n(expires_at))
            .condition_expression(
                "attribute_not_exists(pk) OR (#state = :claimed AND claim_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match result {
            Ok(_) => return Ok(Claim::Claimed),
            Err(err) => err,
        };
        let Some(PutItemError::ConditionalCheckFailedException(failed)) = err.as_service_error()
        else {
            return Err(err.into());
        };
        let corrupt = || StoreError::Corrupt(event_pk(event_id));
        let item = failed.item().ok_or_else(corrupt)?;
        match get_s(item, "state") {
            Some(SENT) => Ok(Claim::AlreadySent {
                message_id: get_s(item, "message_id").unwrap_or_default().to_string(),
            }),
            Some(CLAIMED) => Ok(Claim::HeldElsewhere {
                until: get_n(item, "claim_until").ok_or_else(corrupt)?,
            }),
            _ => Err(corrupt()),
        }
    }

    /// Gives up this invocation's claim (publishing failed). Returns whether
    /// the claim was still ours to give up.
    pub async fn release(&self, event_id: &str, token: &str) -> Result<bool, StoreError> {
        let result = self
            .0
            .client()
            .delete_item()
            .table_name(self.0.name())
            .key("pk", s(event_pk(event_id)))
            .condition_expression("#state = :claimed AND claim = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":claimed", s(CLAIMED))
            .expression_attribute_values(":token", s(token))
            .send()
            .await;
        applied(result)
    }

    /// Records that the e-mail for `event_id` went out; later deliveries are
    /// acknowledged without one.
    pub async fn mark_sent(
        &self,
        event_id: &str,
        token: &str,
        message_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.0
            .update(event_pk(event_id))
            .update_expression("SET #state = :sent, message_id = :m, expires_at = :exp")
            .condition_expression("claim = :token")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":sent", s(SENT))
            .expression_attribute_values(":m", s(message_id))
            .expression_attribute_values(":exp", n(expires_at))
            .expression_attribute_values(":token", s(token))
            .send()
            .await?;
        Ok(())
    }
}
