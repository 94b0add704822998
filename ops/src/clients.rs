//! `trigger-ops clients`: look up a client's quota and blocks, free its quota,
//! block or unblock a client or a network. Addresses are keyed exactly as
//! the ingress keys them (`CLIENT_KEY_SECRET`); only keys reach the table.

use crate::OpsError;
use serde::Serialize;
use shared::aws::table::blocks::Block;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::client_key::{
    block_keys, canonical_client, keyed, parse_block_target, parse_source_ip, ClientKey,
};
use shared::rules::quota::QuotaPolicy;
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
    pub blocks: Vec<BlockView>,
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

/// The client's quota and any block on it or its network.
pub async fn show(
    table: &Table,
    secret: &[u8],
    policy: &QuotaPolicy,
    address: &str,
    now: EpochMillis,
) -> Result<ClientView, OpsError> {
    let ip = address_only(address)?;
    let [own, network] = block_keys(secret, &ip.to_string()).map_err(|e| OpsError::BadSetting {
        what: "ADDRESS",
        reason: e.to_string(),
    })?;
    let slots = table
        .admission()
        .client_slots(&own)
        .await
        .map_err(store_error)?;
    let status = policy.status(&slots, now);
    let mut taken: Vec<EpochMillis> = slots
        .iter()
        .copied()
        .filter(|&t| t > 0 && t + policy.window_ms() > now)
        .collect();
    taken.sort_unstable_by(|a, b| b.cmp(a));
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
        blocks,
    })
}

/// Frees exactly this client's quota. Returns whether it had slots stored.
pub async fn reset(table: &Table, secret: &[u8], address: &str) -> Result<bool, OpsError> {
    let ip = address_only(address)?;
    table
        .admission()
        .reset_client(&keyed(secret, &canonical_client(ip)))
        .await
        .map_err(store_error)
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
