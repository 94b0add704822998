//! Operators' actions on clients in the table: a client's quota slots, freeing
//! them, and blocking or unblocking a client or a network (`block#<key>`,
//! checked by the admission transaction, see [`Table::admit`]). Keys only:
//! no address is stored.

use crate::aws::describe;
use crate::aws::table::{applied, block_pk, client_pk, get_n, get_s, n, s, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use aws_sdk_dynamodb::types::ReturnValue;

/// An operator's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub until: EpochMillis,
    /// For operators only; the blocked client never sees it.
    pub reason: String,
    pub blocked_at: EpochMillis,
}

impl Table {
    /// The client's acceptance times as stored (epoch ms, 0 = free), or
    /// none when the table has no item for it.
    pub async fn client_slots(&self, key: &ClientKey) -> Result<Vec<EpochMillis>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.name())
            .key("pk", s(client_pk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        let Some(item) = output.item() else {
            return Ok(Vec::new());
        };
        Ok((0..).map_while(|i| get_n(item, &format!("t{i}"))).collect())
    }

    /// Frees the client's whole quota. Returns whether it had one stored.
    pub async fn reset_client(&self, key: &ClientKey) -> Result<bool, StoreError> {
        let output = self
            .client()
            .delete_item()
            .table_name(self.name())
            .key("pk", s(client_pk(key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output.attributes().is_some())
    }

    /// Blocks a client or network key until `until` (the block then ends by
    /// itself: admission compares the time; TTL collects the item later).
    pub async fn block_client(
        &self,
        key: &ClientKey,
        until: EpochMillis,
        reason: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(self.name())
            .item("pk", s(block_pk(key)))
            .item("blocked_until", n(until))
            .item("blocked_at", n(now))
            .item("reason", s(reason))
            .item("expires_at", n(until.div_ceil(1000) + 86_400))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(())
    }

    /// Lifts a block. Returns whether one was in force.
    pub async fn unblock_client(
        &self,
        key: &ClientKey,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.name())
            .key("pk", s(block_pk(key)))
            .condition_expression("blocked_until > :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        applied(result)
    }

    /// The block in force on a key, if any.
    pub async fn client_block(
        &self,
        key: &ClientKey,
        now: EpochMillis,
    ) -> Result<Option<Block>, StoreError> {
        let output = self
            .client()
            .get_item()
            .table_name(self.name())
            .key("pk", s(block_pk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(describe(&e)))?;
        Ok(output.item().and_then(|item| {
            let until = get_n(item, "blocked_until")?;
            (until > now).then(|| Block {
                until,
                reason: get_s(item, "reason").unwrap_or_default().to_string(),
                blocked_at: get_n(item, "blocked_at").unwrap_or(0),
            })
        }))
    }
}
