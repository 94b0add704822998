//! `trigger-ops clients`: look up a client's quota and blocks, free its quota,
//! block or unblock a client or a network. Addresses are keyed exactly as
//! the ingress keys them (`CLIENT_KEY_SECRET`); only keys reach the table.

use crate::error::OpsError;
use serde::Serialize;
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::blocks::Block;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::client_key::{
    block_keys, canonical_client, canonical_prefix, effective_address, family_of, keyed,
    parse_block_target, parse_source_ip, quota_keys, shown, BlockTarget, ClientKey,
    IPV4_BLOCK_ANCHORS, IPV6_BLOCK_ANCHORS,
};
use shared::rules::quota::{NetworkLevel, NetworkLimits, QuotaPolicy, QuotaStatus};
use shared::rules::time_format::rfc3339;
use std::time::Duration;

/// The longest block: a block is for a while, not for ever.
pub const MAX_BLOCK: Duration = Duration::from_secs(365 * 86_400);
/// The longest reason kept.
pub const MAX_REASON_CHARS: usize = 200;

/// One block in force, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlockView {
    /// `address` (the client itself) or `network`.
    pub scope: &'static str,
    /// What the block item covers: the client, or a prefix around it
    /// (`203.0.112.0/20`; the block itself may be wider: it is stored as
    /// the anchor prefixes it covers).
    pub covers: String,
    pub until: String,
    pub reason: String,
    pub blocked_at: String,
}

/// `clients show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientView {
    /// What the quota counts: the address, or its IPv6 /64.
    pub client: String,
    /// The first 12 hex digits of the client key (as logs and e-mails show it).
    pub client_key: String,
    pub limit: usize,
    pub window_seconds: u64,
    pub used: usize,
    pub remaining: usize,
    /// When each slot in the window was taken, newest first.
    pub taken_at: Vec<String>,
    /// When the next slot frees (none taken: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_frees_at: Option<String>,
    /// Each network level of `NETWORK_QUOTA_LIMITS` the address belongs to.
    pub networks: Vec<NetworkView>,
    pub blocks: Vec<BlockView>,
}

/// One network level's quota, as `clients show` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkView {
    /// `ipv6/48`.
    pub level: String,
    /// The network: `2001:db8:1::/48`.
    pub network: String,
    /// The first 12 hex digits of its key (as the ingress logs it).
    pub key: String,
    pub limit: usize,
    pub used: usize,
    pub remaining: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_frees_at: Option<String>,
}

/// What a quota holds at `now`: its status and the times in the window,
/// newest first.
async fn quota_of(
    table: &Table,
    level: &QuotaLevel,
    now: EpochMillis,
) -> Result<(QuotaStatus, Vec<EpochMillis>), OpsError> {
    let slots = table.admission().slots(level).await.map_err(store_error)?;
    let policy = &level.policy;
    let mut taken: Vec<EpochMillis> = slots
        .iter()
        .copied()
        .filter(|&t| t > 0 && t + policy.window_ms() > now)
        .collect();
    taken.sort_unstable_by(|a, b| b.cmp(a));
    Ok((policy.status(&slots, now), taken))
}

fn store_error(e: shared::aws::table::StoreError) -> OpsError {
    OpsError::Store(e.to_string())
}

fn address_only(address: &str) -> Result<std::net::IpAddr, OpsError> {
    parse_source_ip(address).map_err(|_| OpsError::BadSetting {
        what: "ADDRESS",
        reason: format!(
            "{address:?} is not an IP address (a prefix can only be blocked or unblocked)"
        ),
    })
}

fn block_view(scope: &'static str, covers: String, block: Block) -> BlockView {
    BlockView {
        scope,
        covers,
        until: rfc3339(block.until),
        reason: block.reason,
        blocked_at: rfc3339(block.blocked_at),
    }
}

/// The client's quota, its networks' and any block on it or its network.
pub async fn show(
    table: &Table,
    secret: &[u8],
    policy: &QuotaPolicy,
    networks: &NetworkLimits,
    address: &str,
    now: EpochMillis,
) -> Result<ClientView, OpsError> {
    let ip = address_only(address)?;
    let bad = |e: shared::rules::client_key::ClientKeyError| OpsError::BadSetting {
        what: "ADDRESS",
        reason: e.to_string(),
    };
    let blocks_of = block_keys(secret, &ip.to_string()).map_err(bad)?;
    let own = blocks_of[0].clone();
    let keys = quota_keys(secret, &ip.to_string(), networks).map_err(bad)?;
    let (status, taken) = quota_of(table, &QuotaLevel::client(&own, *policy), now).await?;
    let mut network_views = Vec::new();
    for (level, key) in &keys.networks {
        let quota = QuotaLevel::network(key, level_policy(policy, level));
        let (status, _) = quota_of(table, &quota, now).await?;
        network_views.push(NetworkView {
            level: level.name(),
            network: shown(&canonical_prefix(effective_address(ip), level.prefix)),
            key: key.prefix().to_string(),
            limit: status.limit,
            used: status.limit - status.remaining,
            remaining: status.remaining,
            next_frees_at: (status.reset_after_ms > 0)
                .then(|| rfc3339(now + status.reset_after_ms)),
        });
    }
    // The client's own block, then each anchor prefix around it, narrowest first.
    let effective = effective_address(ip);
    let anchors: &[u8] = match effective {
        std::net::IpAddr::V4(_) => &IPV4_BLOCK_ANCHORS,
        std::net::IpAddr::V6(_) => &IPV6_BLOCK_ANCHORS,
    };
    let covers = std::iter::once(shown(&canonical_client(ip))).chain(
        anchors
            .iter()
            .rev()
            .skip(1)
            .map(|&length| shown(&canonical_prefix(effective, length))),
    );
    let mut blocks = Vec::new();
    for (i, (key, covers)) in blocks_of.iter().zip(covers).enumerate() {
        if let Some(block) = table.blocks().get(key, now).await.map_err(store_error)? {
            let scope = if i == 0 { "address" } else { "network" };
            blocks.push(block_view(scope, covers, block));
        }
    }
    Ok(ClientView {
        client: canonical_client(ip),
        client_key: own.prefix().to_string(),
        limit: status.limit,
        window_seconds: policy.window.as_secs(),
        used: status.limit - status.remaining,
        remaining: status.remaining,
        taken_at: taken.iter().map(|&t| rfc3339(t)).collect(),
        next_frees_at: (status.reset_after_ms > 0).then(|| rfc3339(now + status.reset_after_ms)),
        networks: network_views,
        blocks,
    })
}

/// During a rotation's overlap: the client as the ingress sees it under
/// both secrets, the fuller of each quota, and every block.
pub fn fuller(current: ClientView, previous: ClientView) -> ClientView {
    let mut view = if previous.remaining < current.remaining {
        ClientView {
            client_key: current.client_key.clone(),
            networks: current.networks.clone(),
            blocks: current.blocks.clone(),
            ..previous.clone()
        }
    } else {
        current
    };
    for network in &mut view.networks {
        if let Some(before) = previous.networks.iter().find(|n| n.level == network.level) {
            if before.remaining < network.remaining {
                *network = NetworkView {
                    key: network.key.clone(),
                    ..before.clone()
                };
            }
        }
    }
    for block in previous.blocks {
        if !view.blocks.contains(&block) {
            view.blocks.push(block);
        }
    }
    view
}

/// A network level's policy: its limit over the client's window.
fn level_policy(policy: &QuotaPolicy, level: &NetworkLevel) -> QuotaPolicy {
    QuotaPolicy {
        limit: level.limit,
        window: policy.window,
    }
}

/// What `clients reset` freed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reset {
    /// `client`, or the network level (`ipv6/48`).
    pub level: String,
    /// The client (`203.0.113.7`, `2001:db8:1:2::/64`) or network reset.
    pub target: String,
    /// Whether any slot was stored.
    pub had_slots: bool,
}

/// Frees one quota: an address's own (its client), or, for a prefix that
/// is a level of `NETWORK_QUOTA_LIMITS`, that network's.
pub async fn reset(
    table: &Table,
    secret: &[u8],
    policy: &QuotaPolicy,
    networks: &NetworkLimits,
    target: &str,
) -> Result<Reset, OpsError> {
    let (quota, level, canonical) = match target.split_once('/') {
        None => {
            let ip = address_only(target)?;
            let canonical = canonical_client(ip);
            let key = keyed(secret, &canonical);
            (
                QuotaLevel::client(&key, *policy),
                "client".to_string(),
                canonical,
            )
        }
        Some((address, prefix)) => {
            let bad = |reason: String| OpsError::BadSetting {
                what: "ADDRESS|PREFIX",
                reason,
            };
            let ip = address_only(address)?;
            let family = family_of(ip);
            let prefix: u8 = prefix
                .parse()
                .map_err(|_| bad(format!("{prefix:?} is not a prefix length")))?;
            let level = networks
                .of(family)
                .find(|l| l.prefix == prefix)
                .ok_or_else(|| {
                    let known: Vec<String> = networks.iter().map(|l| l.name()).collect();
                    bad(format!(
                        "{target} is not a network level of NETWORK_QUOTA_LIMITS ({})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ))
                })?;
            let canonical = canonical_prefix(effective_address(ip), prefix);
            if shown(&canonical) != format!("{address}/{prefix}") && shown(&canonical) != target {
                return Err(bad(format!(
                    "{target} has host bits set; did you mean {}?",
                    shown(&canonical)
                )));
            }
            let key = keyed(secret, &canonical);
            (
                QuotaLevel::network(&key, level_policy(policy, level)),
                level.name(),
                canonical,
            )
        }
    };
    let had_slots = table.admission().reset(&quota).await.map_err(store_error)?;
    Ok(Reset {
        level,
        target: shown(&canonical),
        had_slots,
    })
}

/// The keys a block target (an address, a prefix, a key) is stored under,
/// and what it is, as people write it.
pub fn block_target(secret: &[u8], target: &str) -> Result<(Vec<ClientKey>, String), OpsError> {
    let parsed = parse_block_target(target).map_err(|reason| OpsError::BadSetting {
        what: "ADDRESS|PREFIX|KEY",
        reason,
    })?;
    Ok(match parsed {
        BlockTarget::Prefix { shown, anchors } => (
            anchors
                .iter()
                .map(|canonical| keyed(secret, canonical))
                .collect(),
            shown,
        ),
        BlockTarget::Key(key) => {
            let shown = format!("key {}", key.prefix());
            (vec![key], shown)
        }
    })
}

/// Blocks `target` for `duration`; returns when the block ends.
pub async fn block(
    table: &Table,
    secret: &[u8],
    target: &str,
    duration: Duration,
    reason: &str,
    now: EpochMillis,
) -> Result<EpochMillis, OpsError> {
    if duration.is_zero() || duration > MAX_BLOCK {
        return Err(OpsError::BadSetting {
            what: "--for",
            reason: "must be more than 0 and at most 365d".into(),
        });
    }
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_REASON_CHARS)
        .collect();
    if reason.is_empty() {
        return Err(OpsError::BadSetting {
            what: "--reason",
            reason: "say why (operators read it; the client never sees it)".into(),
        });
    }
    let (keys, _) = block_target(secret, target)?;
    let until = now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    table
        .blocks()
        .block(&keys, until, &reason, now)
        .await
        .map_err(store_error)?;
    Ok(until)
}

/// Lifts the block on `target`; returns whether one was in force.
pub async fn unblock(
    table: &Table,
    secret: &[u8],
    target: &str,
    now: EpochMillis,
) -> Result<bool, OpsError> {
    let (keys, _) = block_target(secret, target)?;
    table
        .blocks()
        .unblock(&keys, now)
        .await
        .map_err(store_error)
}

/// One line of `clients top`: a client or network key and what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopView {
    /// `client`, or the network level (`ipv6/48`).
    pub level: String,
    /// The whole key: `clients block KEY` takes it as it is.
    pub key: String,
    /// Triggers accepted in the window (refused behind the queue included).
    pub triggers: usize,
    /// Of those, refused behind a full queue (charged nothing).
    pub refused: usize,
    /// Different client keys among them (1 for a client).
    pub clients: usize,
    pub first_at: String,
    pub last_at: String,
}

/// The most accepted client and network keys since `since`, from the
/// ledger's day index (no scan, no address: keys only).
pub async fn top(
    table: &Table,
    since: Duration,
    limit: usize,
    now: EpochMillis,
) -> Result<Vec<TopView>, OpsError> {
    let since = now.saturating_sub(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    let records = table
        .ledger()
        .since(since, now, MAX_TOP_READ, &|_| true)
        .await
        .map_err(store_error)?;
    Ok(busiest(&records, limit))
}

/// The `limit` client and network keys with the most of `records`, the
/// busiest first (pure).
pub fn busiest(records: &[shared::rules::trigger::TriggerRecord], limit: usize) -> Vec<TopView> {
    use std::collections::{BTreeSet, HashMap};
    struct Tally {
        triggers: usize,
        refused: usize,
        clients: BTreeSet<String>,
        first: EpochMillis,
        last: EpochMillis,
    }
    // A rotation's overlap: a record charged under both secrets names the
    // key each level had before, so earlier records count as the same one.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for record in records {
        for previous in &record.previous_keys {
            let now_key = match previous.level.as_str() {
                "client" => Some(&record.client_key),
                level => record
                    .networks
                    .iter()
                    .find(|n| n.level == level)
                    .map(|n| &n.key),
            };
            if let Some(now_key) = now_key {
                renamed.insert(previous.key.to_string(), now_key.to_string());
            }
        }
    }
    let current = |key: &shared::rules::client_key::ClientKey| {
        renamed
            .get(key.as_str())
            .cloned()
            .unwrap_or_else(|| key.to_string())
    };
    let mut tallies: HashMap<(String, String), Tally> = HashMap::new();
    for record in records {
        let refused = usize::from(record.status == shared::rules::status::TriggerStatus::Refused);
        let client = current(&record.client_key);
        let levels = std::iter::once(("client".to_string(), client.clone())).chain(
            record
                .networks
                .iter()
                .map(|n| (n.level.clone(), current(&n.key))),
        );
        for level in levels {
            let tally = tallies.entry(level).or_insert_with(|| Tally {
                triggers: 0,
                refused: 0,
                clients: BTreeSet::new(),
                first: record.requested_at,
                last: record.requested_at,
            });
            tally.triggers += 1;
            tally.refused += refused;
            tally.clients.insert(client.clone());
            tally.first = tally.first.min(record.requested_at);
            tally.last = tally.last.max(record.requested_at);
        }
    }
    let mut top: Vec<TopView> = tallies
        .into_iter()
        .map(|((level, key), t)| TopView {
            level,
            key,
            triggers: t.triggers,
            refused: t.refused,
            clients: t.clients.len(),
            first_at: rfc3339(t.first),
            last_at: rfc3339(t.last),
        })
        .collect();
    top.sort_by(|a, b| b.triggers.cmp(&a.triggers).then(a.key.cmp(&b.key)));
    top.truncate(limit);
    top
}

/// The most ledger records `clients top` reads.
pub const MAX_TOP_READ: usize = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rules::trigger::{NetworkKey, TriggerRecord};

    fn key(secret: &str, canonical: &str) -> ClientKey {
        keyed(secret.as_bytes(), canonical)
    }

    fn record(at: EpochMillis, client: ClientKey, previous: Option<ClientKey>) -> TriggerRecord {
        let mut record = TriggerRecord::queued(
            format!("t{at}"),
            "app",
            "app-pipeline",
            client,
            Default::default(),
            at,
            0,
        );
        record.previous_keys = previous
            .into_iter()
            .map(|key| NetworkKey {
                level: "client".into(),
                key,
            })
            .collect();
        record
    }

    /// Triggers from before a rotation, from its overlap (charged under
    /// both secrets) and after: one client, counted once.
    #[test]
    fn top_counts_a_client_across_a_rotation_as_one() {
        let (old, new) = (key("old", "ipv4:192.0.2.7"), key("new", "ipv4:192.0.2.7"));
        let other = key("new", "ipv4:192.0.2.8");
        let records = [
            record(1, old.clone(), None),
            record(2, old.clone(), None),
            record(3, new.clone(), Some(old.clone())),
            record(4, new.clone(), None),
            record(5, other.clone(), Some(key("old", "ipv4:192.0.2.8"))),
        ];
        let top = busiest(&records, 10);
        assert_eq!(top.len(), 2, "{top:?}");
        assert_eq!(top[0].key, new.to_string());
        assert_eq!((top[0].triggers, top[0].clients), (4, 1));
        assert_eq!(top[0].first_at, rfc3339(1));
        assert_eq!(top[1].key, other.to_string());
        // Without the overlap's records nothing links the two keys.
        let unlinked = busiest(&[records[0].clone(), records[3].clone()], 10);
        assert_eq!(unlinked.len(), 2, "{unlinked:?}");
    }
}
