//! `trigger-ops clients`: look up a client's quota and blocks, free its quota,
//! block or unblock a client or a network. Addresses are keyed exactly as
//! the ingress keys them (`CLIENT_KEY_SECRET`); only keys reach the table.

use crate::OpsError;
use serde::Serialize;
use shared::aws::table::admission::QuotaLevel;
use shared::aws::table::blocks::Block;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::client_key::{
    block_keys, canonical_client, canonical_prefix, effective_address, family_of, keyed,
    parse_block_target, parse_source_ip, quota_keys, ClientKey,
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
    /// `address` (the client itself) or `network` (its /24 or /48).
    pub scope: &'static str,
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

fn block_view(scope: &'static str, block: Block) -> BlockView {
    BlockView {
        scope,
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
    let [own, network] = block_keys(secret, &ip.to_string()).map_err(bad)?;
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
    let mut blocks = Vec::new();
    for (scope, key) in [("address", &own), ("network", &network)] {
        if let Some(block) = table.blocks().get(key, now).await.map_err(store_error)? {
            blocks.push(block_view(scope, block));
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

/// A network level's policy: its limit over the client's window.
fn level_policy(policy: &QuotaPolicy, level: &NetworkLevel) -> QuotaPolicy {
    QuotaPolicy {
        limit: level.limit,
        window: policy.window,
    }
}

/// `ipv6:2001:db8::/48` as people write it: `2001:db8::/48`.
fn shown(canonical: &str) -> String {
    canonical
        .split_once(':')
        .map_or(canonical, |(_, rest)| rest)
        .to_string()
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

/// The key a block target (address or prefix) is stored under, and its
/// canonical text.
pub fn block_target(secret: &[u8], target: &str) -> Result<(ClientKey, String), OpsError> {
    let canonical = parse_block_target(target).map_err(|reason| OpsError::BadSetting {
        what: "ADDRESS|PREFIX",
        reason,
    })?;
    Ok((keyed(secret, &canonical), canonical))
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
    let (key, _) = block_target(secret, target)?;
    let until = now.saturating_add(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
    table
        .blocks()
        .block(&key, until, &reason, now)
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
    let (key, _) = block_target(secret, target)?;
    table.blocks().unblock(&key, now).await.map_err(store_error)
}
