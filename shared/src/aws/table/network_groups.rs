//! Network groups (see [`crate::rules::network_groups`]). Items:
//!
//! - `netgroup#` (the index): `groups`, a map of each group's name to its
//!   `version`, `pieces`, `imported_at` (epoch ms), `format`, `source`,
//!   `networks` (as the file listed them) and `v4`/`v6` (ranges, merged):
//!   the one item a warm ingress reads, at most once a minute, to learn
//!   whether a group changed;
//! - `netgroup#<name>#<version>#<i>`: `ranges`, piece `i` of the group's
//!   stored form (binary, at most [`PIECE_BYTES`]).
//!
//! An import writes the new version's pieces first, then switches the
//! index to it, then deletes the old pieces: a reader sees the old group
//! or the new one, whole. Nothing here is keyed by an address.

use super::items::{get_n, get_s, n, s, Item};
use super::{StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::network_groups::{Parsed, Ranges};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::{BTreeMap, HashMap};

/// The index item's key.
pub const INDEX_PK: &str = "netgroup#";
/// The largest piece of a group's stored form (an item holds 400 KB).
pub const PIECE_BYTES: usize = 350_000;

fn piece_pk(name: &str, version: &str, i: u64) -> String {
    format!("netgroup#{name}#{version}#{i}")
}

/// Network groups.
pub struct NetworkGroups<'a>(&'a Table);

impl Table {
    pub fn network_groups(&self) -> NetworkGroups<'_> {
        NetworkGroups(self)
    }
}

/// One group as the index describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupEntry {
    pub name: String,
    pub version: String,
    pub pieces: u64,
    pub imported_at: EpochMillis,
    pub format: String,
    pub source: String,
    pub networks: u64,
    pub v4: u64,
    pub v6: u64,
}

fn entry_of(name: &str, value: &AttributeValue) -> Option<GroupEntry> {
    let map = value.as_m().ok()?;
    Some(GroupEntry {
        name: name.to_string(),
        version: get_s(map, "version")?.to_string(),
        pieces: get_n(map, "pieces")?,
        imported_at: get_n(map, "imported_at")?,
        format: get_s(map, "format").unwrap_or_default().to_string(),
        source: get_s(map, "source").unwrap_or_default().to_string(),
        networks: get_n(map, "networks").unwrap_or(0),
        v4: get_n(map, "v4").unwrap_or(0),
        v6: get_n(map, "v6").unwrap_or(0),
    })
}

fn entries_of(index: Option<&Item>) -> BTreeMap<String, GroupEntry> {
    index
        .and_then(|item| item.get("groups"))
        .and_then(|groups| groups.as_m().ok())
        .map(|groups| {
            groups
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), entry_of(name, value)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// What a load found: every group of the index by name, and the ranges of
/// those asked for whose version is not the one already held.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub versions: BTreeMap<String, String>,
    pub changed: BTreeMap<String, Ranges>,
    /// Asked for, in the index, but its pieces could not be read (replaced
    /// meanwhile): what the caller holds of it stays, until the next load.
    pub unreadable: std::collections::BTreeSet<String>,
}

impl NetworkGroups<'_> {
    /// Every group, by name.
    pub async fn list(&self) -> Result<BTreeMap<String, GroupEntry>, StoreError> {
        Ok(entries_of(self.0.get(INDEX_PK.to_string()).await?.as_ref()))
    }

    /// Writes `parsed` as the group `name` (a new one, or a new version of
    /// it), then deletes the version it replaces. Returns the entry and the
    /// one replaced.
    pub async fn import(
        &self,
        name: &str,
        parsed: &Parsed,
        source: &str,
        now: EpochMillis,
    ) -> Result<(GroupEntry, Option<GroupEntry>), StoreError> {
        let version = crate::rules::trigger::trigger_id_at(now);
        let pieces = parsed.ranges.encode(PIECE_BYTES);
        for (i, piece) in pieces.iter().enumerate() {
            self.0
                .client()
                .put_item()
                .table_name(self.0.name())
                .item("pk", s(piece_pk(name, &version, i as u64)))
                .item("ranges", AttributeValue::B(Blob::new(piece.clone())))
                .send()
                .await?;
        }
        let entry = GroupEntry {
            name: name.to_string(),
            version: version.clone(),
            pieces: pieces.len() as u64,
            imported_at: now,
            format: parsed.format.as_str().to_string(),
            source: source.chars().take(200).collect(),
            networks: parsed.networks as u64,
            v4: parsed.ranges.v4.len() as u64,
            v6: parsed.ranges.v6.len() as u64,
        };
        let value = AttributeValue::M(HashMap::from([
            ("version".to_string(), s(&entry.version)),
            ("pieces".to_string(), n(entry.pieces)),
            ("imported_at".to_string(), n(entry.imported_at)),
            ("format".to_string(), s(&entry.format)),
            ("source".to_string(), s(&entry.source)),
            ("networks".to_string(), n(entry.networks)),
            ("v4".to_string(), n(entry.v4)),
            ("v6".to_string(), n(entry.v6)),
        ]));
        // The map first (a fresh table has none), then the group in it.
        self.0
            .update(INDEX_PK)
            .update_expression("SET #groups = if_not_exists(#groups, :none)")
            .expression_attribute_names("#groups", "groups")
            .expression_attribute_values(":none", AttributeValue::M(HashMap::new()))
            .send()
            .await?;
        let old = self
            .0
            .update(INDEX_PK)
            .update_expression("SET #groups.#name = :entry")
            .expression_attribute_names("#groups", "groups")
            .expression_attribute_names("#name", name)
            .expression_attribute_values(":entry", value)
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await?;
        let replaced = old
            .attributes()
            .and_then(|a| a.get("groups"))
            .and_then(|g| g.as_m().ok())
            .and_then(|g| g.get(name))
            .and_then(|v| entry_of(name, v));
        if let Some(replaced) = &replaced {
            self.delete_pieces(replaced).await?;
        }
        Ok((entry, replaced))
    }

    /// Removes the group `name`. Returns its entry, `None` if there was none.
    pub async fn remove(&self, name: &str) -> Result<Option<GroupEntry>, StoreError> {
        let result = self
            .0
            .update(INDEX_PK)
            .update_expression("REMOVE #groups.#name")
            .condition_expression("attribute_exists(#groups.#name)")
            .expression_attribute_names("#groups", "groups")
            .expression_attribute_names("#name", name)
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        let old = match result {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e.into()),
        };
        let removed = old
            .attributes()
            .and_then(|a| a.get("groups"))
            .and_then(|g| g.as_m().ok())
            .and_then(|g| g.get(name))
            .and_then(|v| entry_of(name, v));
        if let Some(removed) = &removed {
            self.delete_pieces(removed).await?;
        }
        Ok(removed)
    }

    async fn delete_pieces(&self, entry: &GroupEntry) -> Result<(), StoreError> {
        for i in 0..entry.pieces {
            self.0
                .client()
                .delete_item()
                .table_name(self.0.name())
                .key("pk", s(piece_pk(&entry.name, &entry.version, i)))
                .send()
                .await?;
        }
        Ok(())
    }

    /// The index, and the ranges of each group of `wanted` whose version
    /// differs from `held` (what the caller has already). A group whose
    /// pieces are gone (replaced meanwhile) is left out of `changed`: the
    /// next load finds the new version.
    pub async fn load(
        &self,
        wanted: &[String],
        held: &BTreeMap<String, String>,
    ) -> Result<Loaded, StoreError> {
        let entries = self.list().await?;
        let mut loaded = Loaded {
            versions: entries
                .iter()
                .map(|(name, e)| (name.clone(), e.version.clone()))
                .collect(),
            changed: BTreeMap::new(),
            unreadable: Default::default(),
        };
        for name in wanted {
            let Some(entry) = entries.get(name) else {
                continue;
            };
            if held.get(name) == Some(&entry.version) {
                continue;
            }
            let pks: Vec<String> = (0..entry.pieces)
                .map(|i| piece_pk(name, &entry.version, i))
                .collect();
            let mut found = HashMap::new();
            for chunk in pks.chunks(100) {
                found.extend(self.0.batch_get(chunk).await?);
            }
            let pieces: Option<Vec<&[u8]>> = pks
                .iter()
                .map(|pk| match found.get(pk)?.get("ranges")? {
                    AttributeValue::B(blob) => Some(blob.as_ref()),
                    _ => None,
                })
                .collect();
            let Some(ranges) = pieces.and_then(|p| Ranges::decode(&p)) else {
                loaded.unreadable.insert(name.clone());
                continue;
            };
            loaded.changed.insert(name.clone(), ranges);
        }
        Ok(loaded)
    }
}
