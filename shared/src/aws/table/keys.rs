//! Trigger keys (the keyed lane). Items:
//!
//! - `apikey#<SHA-256 of the key>`: `name`, `pipelines` (empty: every
//!   one), `quota_limit`, `quota_window_ms`, `created_at`, `revoked_at`,
//!   `valid_until` (a rotated key's overlap): what the ingress looks a
//!   presented key up by, and what the admission checks is still good;
//! - `keyname#<name>`: the same settings with `hash` (the current key) and
//!   `previous_hash` (the one a rotation keeps working for its overlap),
//!   `day` = `keys` and `requested_at`, so `keys list` reads them from the
//!   ledger's day index without a scan;
//! - `keyquota#<name>`: the key's quota (written by the admission, see
//!   [`super::admission`]) with `uses` and `last_used_at`: a rotation keeps
//!   it, so rotating never hands a key a fresh quota.
//!
//! Only hashes are stored: the key itself is shown once, when made.

use super::items::{apikey_pk, get_n, get_s, keyname_pk, keyquota_pk, n, s, Item, KEYS_DAY};
use super::ledger::BY_DAY;
use super::{cancelled, changed, condition_failed, query_all, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::keys::KeyRecord;
use crate::rules::quota::QuotaPolicy;
use crate::rules::time_format::rfc3339;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::time::Duration;

/// Trigger keys.
pub struct Keys<'a>(&'a Table);

impl Table {
    pub fn keys(&self) -> Keys<'_> {
        Keys(self)
    }
}

/// One key as operators see it: its settings, the hash a rotation keeps
/// working, and how much it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub record: KeyRecord,
    pub previous_hash: Option<String>,
    /// Until when the key a rotation replaced keeps working.
    pub previous_valid_until: Option<EpochMillis>,
    pub uses: u64,
    pub last_used_at: Option<EpochMillis>,
}

/// The settings of a key, as both its items hold them.
fn settings_item(record: &KeyRecord) -> Item {
    let mut item = Item::from([
        ("name".to_string(), s(&record.name)),
        ("quota_limit".to_string(), n(record.quota.limit)),
        (
            "quota_window_ms".to_string(),
            n(record.quota.window.as_millis()),
        ),
        ("created_at".to_string(), n(record.created_at)),
    ]);
    if !record.pipelines.is_empty() {
        item.insert(
            "pipelines".to_string(),
            AttributeValue::L(record.pipelines.iter().map(s).collect()),
        );
    }
    item
}

fn item_to_key(item: &Item, hash: &str) -> Result<KeyRecord, StoreError> {
    let corrupt =
        |field: &str| StoreError::Corrupt(format!("{}: {field}", get_s(item, "pk").unwrap_or("?")));
    Ok(KeyRecord {
        name: get_s(item, "name")
            .ok_or_else(|| corrupt("name"))?
            .to_string(),
        hash: hash.to_string(),
        pipelines: item
            .get("pipelines")
            .and_then(|v| v.as_l().ok())
            .map(|list| list.iter().filter_map(|p| p.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
        quota: QuotaPolicy {
            limit: get_n(item, "quota_limit").ok_or_else(|| corrupt("quota_limit"))? as usize,
            window: Duration::from_millis(
                get_n(item, "quota_window_ms").ok_or_else(|| corrupt("quota_window_ms"))?,
            ),
        },
        created_at: get_n(item, "created_at").ok_or_else(|| corrupt("created_at"))?,
        revoked_at: get_n(item, "revoked_at"),
        valid_until: get_n(item, "valid_until"),
    })
}

impl Keys<'_> {
    /// A put of `item` that applies only where no item is.
    fn new_item(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.0.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The key a request presents, by its hash.
    pub async fn by_hash(&self, hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.0
            .get(apikey_pk(hash))
            .await?
            .map(|item| item_to_key(&item, hash))
            .transpose()
    }

    /// Makes a key: both its items, or nothing when the name is taken.
    /// Returns whether it did.
    pub async fn create(&self, record: &KeyRecord) -> Result<bool, StoreError> {
        let mut by_hash = settings_item(record);
        by_hash.insert("pk".into(), s(apikey_pk(&record.hash)));
        let mut by_name = settings_item(record);
        by_name.insert("pk".into(), s(keyname_pk(&record.name)));
        by_name.insert("hash".into(), s(&record.hash));
        by_name.insert("day".into(), s(KEYS_DAY));
        by_name.insert("requested_at".into(), s(rfc3339(record.created_at)));
        let items = vec![self.new_item(by_name)?, self.new_item(by_hash)?];
        match self.0.transact(items).await? {
            None => Ok(true),
            Some(reasons) if condition_failed(reasons.first()) => Ok(false),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    /// One key by its name, with its uses.
    pub async fn get(&self, name: &str) -> Result<Option<KeyEntry>, StoreError> {
        let Some(item) = self.0.get(keyname_pk(name)).await? else {
            return Ok(None);
        };
        let usage = self.0.get(keyquota_pk(name)).await?;
        Ok(Some(entry_of(&item, usage.as_ref())?))
    }

    /// Every key, oldest first, read from the ledger's day index (no scan).
    pub async fn list(&self) -> Result<Vec<KeyEntry>, StoreError> {
        let query = self
            .0
            .query(BY_DAY)
            .key_condition_expression("#day = :keys")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":keys", s(KEYS_DAY));
        let items = query_all(query).await?;
        let names: Vec<String> = items
            .iter()
            .filter_map(|item| get_s(item, "name").map(keyquota_pk))
            .collect();
        let usage = if names.is_empty() {
            Default::default()
        } else {
            let mut usage = std::collections::HashMap::new();
            for chunk in names.chunks(100) {
                usage.extend(self.0.batch_get(chunk).await?);
            }
            usage
        };
        items
            .iter()
            .map(|item| {
                let name = get_s(item, "name").unwrap_or_default();
                entry_of(item, usage.get(&keyquota_pk(name)))
            })
            .collect()
    }

    /// Revokes a key by name, and the one a rotation keeps working: refused
    /// from now on. Returns whether there was such a key.
    pub async fn revoke(&self, name: &str, now: EpochMillis) -> Result<bool, StoreError> {
        let Some(item) = self.0.get(keyname_pk(name)).await? else {
            return Ok(false);
        };
        let mut pks = vec![keyname_pk(name)];
        pks.extend(get_s(&item, "hash").map(apikey_pk));
        pks.extend(get_s(&item, "previous_hash").map(apikey_pk));
        let mut items = Vec::new();
        for pk in pks {
            let update = self
                .0
                .update_in_transaction(pk)
                .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":now", n(now))
                .build()?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        match self.0.transact(items).await? {
            None => Ok(true),
            // The key that the rotation kept is already collected.
            Some(reasons) if reasons.iter().skip(1).any(|r| condition_failed(Some(r))) => {
                let keep: Vec<_> = [keyname_pk(name)]
                    .into_iter()
                    .chain(get_s(&item, "hash").map(apikey_pk))
                    .collect();
                for pk in keep {
                    self.0
                        .update(pk)
                        .update_expression("SET revoked_at = if_not_exists(revoked_at, :now)")
                        .expression_attribute_values(":now", n(now))
                        .send()
                        .await?;
                }
                Ok(true)
            }
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }

    /// Rotates a key: `new_hash` becomes the key; the current one keeps
    /// working until `overlap_until`. The quota stays (it is the name's).
    /// Returns the new key's record, or `None`: no such key, or revoked.
    pub async fn rotate(
        &self,
        name: &str,
        new_hash: &str,
        overlap_until: EpochMillis,
        now: EpochMillis,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let Some(item) = self.0.get(keyname_pk(name)).await? else {
            return Ok(None);
        };
        let Some(current) = get_s(&item, "hash").map(str::to_string) else {
            return Err(StoreError::Corrupt(format!("{}: hash", keyname_pk(name))));
        };
        let old = item_to_key(&item, &current)?;
        if old.revoked_at.is_some() {
            return Ok(None);
        }
        let record = KeyRecord {
            hash: new_hash.to_string(),
            created_at: now,
            ..old
        };
        // One overlap at a time: the key an earlier rotation kept working
        // stops now (else a revoke could miss it).
        if let Some(earlier) = get_s(&item, "previous_hash") {
            let ended = self.0.update(apikey_pk(earlier))
                .update_expression("SET valid_until = :now")
                .condition_expression("attribute_exists(pk) AND (attribute_not_exists(valid_until) OR valid_until > :now)")
                .expression_attribute_values(":now", n(now));
            // Not applied: collected already, or its overlap is over.
            changed(ended).await?;
        }
        let mut by_hash = settings_item(&record);
        by_hash.insert("pk".into(), s(apikey_pk(new_hash)));
        // The old key works for the overlap, then the table collects it.
        let expiring = self
            .0
            .update_in_transaction(apikey_pk(&current))
            .update_expression("SET valid_until = :until, expires_at = :gone")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(revoked_at)")
            .expression_attribute_values(":until", n(overlap_until))
            .expression_attribute_values(":gone", n(overlap_until / 1000 + 86_400))
            .build()?;
        let renamed = self.0.update_in_transaction(keyname_pk(name))
            .update_expression(
                "SET #hash = :new, previous_hash = :old, previous_valid_until = :until, rotated_at = :now",
            )
            .condition_expression("#hash = :old AND attribute_not_exists(revoked_at)")
            .expression_attribute_names("#hash", "hash")
            .expression_attribute_values(":new", s(new_hash))
            .expression_attribute_values(":old", s(&current))
            .expression_attribute_values(":until", n(overlap_until))
            .expression_attribute_values(":now", n(now))
            .build()?;
        let items = vec![
            self.new_item(by_hash)?,
            TransactWriteItem::builder().update(expiring).build(),
            TransactWriteItem::builder().update(renamed).build(),
        ];
        match self.0.transact(items).await? {
            None => Ok(Some(record)),
            // Revoked or rotated meanwhile.
            Some(reasons) if reasons.iter().any(|r| condition_failed(Some(r))) => Ok(None),
            Some(reasons) => Err(cancelled(&reasons)),
        }
    }
}

/// A `keyname#` item and its quota item as a [`KeyEntry`].
fn entry_of(item: &Item, usage: Option<&Item>) -> Result<KeyEntry, StoreError> {
    let hash = get_s(item, "hash").unwrap_or_default().to_string();
    Ok(KeyEntry {
        record: item_to_key(item, &hash)?,
        previous_hash: get_s(item, "previous_hash").map(str::to_string),
        previous_valid_until: get_n(item, "previous_valid_until"),
        uses: usage.and_then(|u| get_n(u, "uses")).unwrap_or(0),
        last_used_at: usage.and_then(|u| get_n(u, "last_used_at")),
    })
}
