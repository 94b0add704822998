//! Operators' blocks of a client or a network (`block#<key>`: `blocked_until`
//! (epoch ms), `reason`, `blocked_at`), checked by the admission transaction
//! (see [`super::admission`]). Keys only: no address is stored.

use super::items::{block_pk, get_n, get_s, n, s, BLOCK_PREFIX};
use super::{StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};

/// An operator's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub until: EpochMillis,
    /// For operators only; the blocked client never sees it.
    pub reason: String,
    pub blocked_at: EpochMillis,
}

/// Operators' blocks of clients and networks.
pub struct Blocks<'a>(&'a Table);

impl Table {
    pub fn blocks(&self) -> Blocks<'_> {
        Blocks(self)
    }
}

impl Blocks<'_> {
    /// Blocks client or network keys until `until`, all or none (a prefix
    /// is up to 8 anchor items); the block then ends by itself: admission
    /// compares the time, and TTL collects the items later.
    pub async fn block(
        &self,
        keys: &[ClientKey],
        until: EpochMillis,
        reason: &str,
        now: EpochMillis,
    ) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let put = Put::builder()
                .table_name(self.0.name())
                .item("pk", s(block_pk(key)))
                .item("blocked_until", n(until))
                .item("blocked_at", n(now))
                .item("reason", s(reason))
                .item("expires_at", n(until.div_ceil(1000) + 86_400))
                .build()?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.0
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await?;
        Ok(())
    }

    /// Lifts the blocks on `keys`. Returns whether one was in force.
    pub async fn unblock(&self, keys: &[ClientKey], now: EpochMillis) -> Result<bool, StoreError> {
        let mut lifted = false;
        for key in keys {
            let old = self
                .0
                .client()
                .delete_item()
                .table_name(self.0.name())
                .key("pk", s(block_pk(key)))
                .return_values(ReturnValue::AllOld)
                .send()
                .await?;
            lifted |= old
                .attributes()
                .and_then(|item| get_n(item, "blocked_until"))
                .is_some_and(|until| until > now);
        }
        Ok(lifted)
    }

    /// The block in force on a key, if any.
    pub async fn get(
        &self,
        key: &ClientKey,
        now: EpochMillis,
    ) -> Result<Option<Block>, StoreError> {
        let item = self.0.get(block_pk(key)).await?;
        Ok(item.as_ref().and_then(|item| {
            let until = get_n(item, "blocked_until")?;
            (until > now).then(|| Block {
                until,
                reason: get_s(item, "reason").unwrap_or_default().to_string(),
                blocked_at: get_n(item, "blocked_at").unwrap_or(0),
            })
        }))
    }

    /// When the last block in force ends (`None`: none is). A Scan of the
    /// whole table, for `trigger-ops secret rotate` only: an overlap must
    /// outlast every block made with the secret it retires.
    pub async fn last_ends(&self, now: EpochMillis) -> Result<Option<EpochMillis>, StoreError> {
        let in_force = self
            .0
            .client()
            .scan()
            .table_name(self.0.name())
            .filter_expression("begins_with(pk, :block) AND blocked_until > :now")
            .projection_expression("blocked_until")
            .expression_attribute_values(":block", s(BLOCK_PREFIX))
            .expression_attribute_values(":now", n(now))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await?;
        Ok(in_force
            .iter()
            .filter_map(|item| get_n(item, "blocked_until"))
            .max())
    }
}
