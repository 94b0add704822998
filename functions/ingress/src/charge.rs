//! Who a trigger is charged to, and what a refusal of it says.
//!
//! - An anonymous trigger takes a slot of its address's quota (an IPv4
//!   address, an IPv6 /64), of each network level its address is in, and
//!   of each network group it is in (`group:NAME`), and of the global
//!   budget; operators' blocks of any of them stop it.
//! - A keyed trigger (`Authorization: Bearer ptk_…`) takes a slot of its
//!   key's own quota only: no address, network, block or global budget of
//!   the anonymous lane can stop it. A key that is malformed, unknown,
//!   revoked, past its rotation's overlap or not for the pipeline is a 401,
//!   charged nothing, never the anonymous lane instead.

use crate::instance::Ingress;
use shared::aws::table::admission::{Admission, QuotaLevel, CLIENT_LEVEL};
use shared::aws::table::StoreError;
use shared::clock::EpochMillis;
use shared::config::PreviousSecret;
use shared::rules::client_key::{block_keys, group_key, parse_source_ip, quota_keys, ClientKey};
use shared::rules::http::response::{ApiError, LimitItem, QuotaScope, UNAVAILABLE_RETRY_AFTER_S};
use shared::rules::keys::{KeyRecord, KeyRefusal, PresentedKey};
use shared::rules::network_groups::Matcher;
use shared::rules::quota::{GlobalPolicy, QuotaPolicy, QuotaStatus};
use shared::rules::refusals::GLOBAL;
use shared::rules::time_format::ceil_seconds;
use shared::rules::trigger::NetworkKey;
use tracing::{error, info};

/// Who a trigger is charged to.
pub(crate) struct Charge {
    /// The quotas it takes a slot of, in the order the RateLimit fields
    /// name them (`names`).
    pub levels: Vec<QuotaLevel>,
    pub names: Vec<String>,
    pub blocks: Vec<ClientKey>,
    pub global: Option<GlobalPolicy>,
    /// The address's key: the ledger's, whatever the lane.
    pub client_key: ClientKey,
    pub networks: Vec<NetworkKey>,
    /// During a rotation's overlap, the previous secret's keys it is also
    /// charged under (the record keeps them, so a refusal gives them back).
    pub previous_keys: Vec<NetworkKey>,
    /// The trigger key, in the keyed lane.
    pub key: Option<KeyRecord>,
    /// Under which keys a warm instance remembers its refusals, the
    /// client's own first.
    pub remembered: Vec<String>,
}

impl Charge {
    /// The RateLimit items of `statuses`, one per level name: during a
    /// rotation's overlap a level counted under both secrets shows the
    /// fuller of the two.
    pub fn limits(&self, statuses: &[QuotaStatus]) -> Vec<LimitItem> {
        let mut items: Vec<LimitItem> = Vec::new();
        for ((name, level), status) in self.names.iter().zip(&self.levels).zip(statuses) {
            let item = LimitItem::of(name.clone(), &level.policy, status);
            match items.iter_mut().find(|i| i.name == item.name) {
                Some(kept)
                    if (item.remaining, std::cmp::Reverse(item.reset_s))
                        < (kept.remaining, std::cmp::Reverse(kept.reset_s)) =>
                {
                    *kept = item
                }
                Some(_) => {}
                None => items.push(item),
            }
        }
        items
    }

    /// Whose quota `level` is: the trigger key's, the client's, or a
    /// network's.
    pub fn scope(&self, level: usize) -> QuotaScope {
        let name = &self.names[level];
        match (&self.key, name.as_str()) {
            (Some(_), _) => QuotaScope::Key,
            (None, CLIENT_LEVEL) => QuotaScope::Client,
            (None, _) => QuotaScope::Network(name.clone()),
        }
    }

    /// The 429 of a full level: its scope (the trigger key's, the
    /// client's, or a network's) and every level's RateLimit.
    pub fn quota_refusal(
        &self,
        level: usize,
        statuses: &[QuotaStatus],
        retry_after_ms: u64,
    ) -> ApiError {
        ApiError::QuotaExceeded {
            scope: self.scope(level),
            limits: self.limits(statuses),
            retry_after_s: ceil_seconds(retry_after_ms).max(1),
        }
    }

    /// The 429 of the global budget: every level's RateLimit, and the
    /// budget's, spent.
    pub fn global_refusal(&self, statuses: &[QuotaStatus], retry_after_ms: u64) -> ApiError {
        let retry_after_s = ceil_seconds(retry_after_ms).max(1);
        let mut limits = self.limits(statuses);
        if let Some(global) = self.global {
            limits.push(LimitItem {
                name: "global".into(),
                limit: global.limit,
                window_s: global.window.as_secs(),
                remaining: Some(0),
                reset_s: retry_after_s,
            });
        }
        ApiError::QuotaExceeded {
            scope: QuotaScope::Global,
            limits,
            retry_after_s,
        }
    }

    /// The key a refusal of `level` is remembered under.
    fn refused_key(&self, level: usize) -> &str {
        &self.remembered[level.min(self.remembered.len() - 1)]
    }
}

/// One secret's keys for an address: (level name, key, limit) per level,
/// the client's first; and its block keys.
struct KeyedLevels {
    levels: Vec<(String, ClientKey, usize)>,
    blocks: Vec<ClientKey>,
}

/// An accepted trigger: its statuses, one per level, and what the levels
/// were before (to give them back should the enqueue fail; `None` when a
/// settled admission knows no earlier state).
pub(crate) type Decided = (Vec<QuotaStatus>, Option<Vec<Vec<EpochMillis>>>);

/// How a key's 401 is logged and counted: its reason, never the key.
fn invalid_key(refusal: KeyRefusal, name: Option<&str>, aws_calls: u64) -> ApiError {
    info!(decision = "rejected", scope = "invalid-key", reason = %refusal,
          key = %name.unwrap_or("-"), aws_calls);
    ApiError::InvalidKey(refusal)
}

impl Ingress {
    /// An anonymous trigger's charge: its address's quota, its networks'
    /// and network groups' (`groups`: those the instance holds), the global
    /// budget, and the blocks that may stop it. During a rotation's overlap
    /// the same again under the previous secret's keys: a client is charged
    /// and refused under both, so a rotation gives nobody a fresh quota and
    /// lifts no block.
    pub(crate) fn address_charge(
        &self,
        source_ip: &str,
        groups: &Matcher,
        now: EpochMillis,
    ) -> Result<Charge, ApiError> {
        let config = &self.config;
        let current = self.keyed_levels(&config.client_key_secret, source_ip, groups)?;
        let previous = PreviousSecret::at(config.previous_secret.as_ref(), now)
            .map(|secret| self.keyed_levels(secret, source_ip, groups))
            .transpose()?;
        let policy = |limit: usize| QuotaPolicy {
            limit,
            window: config.quota.window,
        };
        let every = || {
            current
                .levels
                .iter()
                .chain(previous.iter().flat_map(|p| &p.levels))
        };
        let levels = every()
            .map(|(name, key, limit)| match name.as_str() {
                CLIENT_LEVEL => QuotaLevel::client(key, config.quota),
                _ => QuotaLevel::network(key, policy(*limit)),
            })
            .collect();
        let names = every().map(|(name, _, _)| name.clone()).collect();
        let mut remembered: Vec<String> = every().map(|(_, key, _)| key.to_string()).collect();
        remembered.push(GLOBAL.to_string());
        let mut blocks = current.blocks;
        let mut previous_keys = Vec::new();
        if let Some(previous) = previous {
            blocks.extend(previous.blocks);
            previous_keys = previous
                .levels
                .into_iter()
                .map(|(level, key, _)| NetworkKey { level, key })
                .collect();
        }
        let mut levels_now = current.levels.into_iter();
        let client_key = levels_now
            .next()
            .map(|(_, key, _)| key)
            .ok_or(ApiError::NoClientAddress)?;
        Ok(Charge {
            levels,
            names,
            blocks,
            global: config.global_quota,
            networks: levels_now
                .map(|(level, key, _)| NetworkKey { level, key })
                .collect(),
            previous_keys,
            client_key,
            key: None,
            remembered,
        })
    }

    /// Under one secret: the client's level, then each network level, then
    /// each group the address is in, as (name, key, limit); and the keys of
    /// the blocks that may stop it.
    fn keyed_levels(
        &self,
        secret: &[u8],
        source_ip: &str,
        groups: &Matcher,
    ) -> Result<KeyedLevels, ApiError> {
        let config = &self.config;
        let blocks = block_keys(secret, source_ip).map_err(|_| ApiError::NoClientAddress)?;
        let keys = quota_keys(secret, source_ip, &config.networks)
            .map_err(|_| ApiError::NoClientAddress)?;
        let address = parse_source_ip(source_ip).map_err(|_| ApiError::NoClientAddress)?;
        let mut levels = vec![(CLIENT_LEVEL.to_string(), keys.client, config.quota.limit)];
        levels.extend(
            keys.networks
                .into_iter()
                .map(|(level, key)| (level.name(), key, level.limit)),
        );
        for name in groups.groups_of(address) {
            if let Some(level) = config.networks.groups().iter().find(|g| g.name == name) {
                levels.push((level.level_name(), group_key(secret, name), level.limit));
            }
        }
        Ok(KeyedLevels { levels, blocks })
    }

    /// A keyed trigger's charge: the key, looked up (or remembered), must
    /// be good for `public`; it is charged its own quota only.
    pub(crate) async fn key_charge(
        &self,
        presented: &PresentedKey,
        public: &str,
        source_ip: &str,
        now: EpochMillis,
    ) -> Result<Charge, ApiError> {
        let client_key =
            shared::rules::client_key::client_key(&self.config.client_key_secret, source_ip)
                .map_err(|_| ApiError::NoClientAddress)?;
        let hash = presented.hash();
        let remembered = self.keys().recall(&hash, now);
        let calls_before = self.calls.total();
        let found = match remembered {
            Some(found) => found,
            None => {
                let found = self.table.keys().by_hash(&hash).await.map_err(|e| {
                    error!(decision = "unavailable", stage = "key", error = %e);
                    unavailable(&e)
                })?;
                self.keys().remember(&hash, found.clone(), now);
                found
            }
        };
        let aws_calls = self.calls.total() - calls_before;
        let Some(record) = found else {
            return Err(invalid_key(KeyRefusal::Unknown, None, aws_calls));
        };
        if let Err(refusal) = record.allows(public, now) {
            return Err(invalid_key(refusal, Some(&record.name), aws_calls));
        }
        Ok(Charge {
            levels: vec![QuotaLevel::key(&record.name, record.quota)],
            names: vec!["key".to_string()],
            blocks: Vec::new(),
            global: None,
            client_key,
            networks: Vec::new(),
            previous_keys: Vec::new(),
            remembered: vec![format!("key:{}", record.name)],
            key: Some(record),
        })
    }

    /// What an admission that took nothing says to the client (remembered,
    /// so a repeat costs no AWS call); an acceptance's statuses and what
    /// the levels were before (to give them back).
    pub(crate) fn decide(
        &self,
        admission: Admission,
        charge: &Charge,
        now: EpochMillis,
        aws_calls: u64,
    ) -> Result<Decided, ApiError> {
        let client_key = &charge.client_key;
        let key = charge.key.as_ref().map_or("-", |k| k.name.as_str());
        let refusal = match admission {
            // A settled admission knows no earlier state (empty): a refund reads it.
            Admission::Accepted { statuses, previous } => {
                return Ok((statuses, (!previous.is_empty()).then_some(previous)))
            }
            Admission::KeyRefused => {
                // Revoked (or past its overlap) since it was read.
                let hash = charge
                    .key
                    .as_ref()
                    .map(|k| k.hash.clone())
                    .unwrap_or_default();
                self.keys().forget(&hash);
                return Err(invalid_key(KeyRefusal::Revoked, Some(key), aws_calls));
            }
            Admission::Blocked { until } => {
                let retry_after_s = ceil_seconds(until.saturating_sub(now)).max(1);
                info!(decision = "rejected", scope = "blocked", client_key = %client_key, retry_after_s, aws_calls);
                self.memory().remember(
                    charge.refused_key(0),
                    ApiError::Blocked { retry_after_s },
                    now,
                );
                return Err(ApiError::Blocked { retry_after_s });
            }
            Admission::Exhausted {
                level,
                statuses,
                retry_after_ms,
            } => {
                let refusal = charge.quota_refusal(level, &statuses, retry_after_ms);
                info!(decision = "rejected", scope = charge.scope(level).as_str(), level = %charge.names[level],
                      client_key = %client_key, key = %key, level_key = %charge.refused_key(level),
                      retry_after_s = ceil_seconds(retry_after_ms).max(1), aws_calls);
                self.memory()
                    .remember(charge.refused_key(level), refusal.clone(), now);
                refusal
            }
            Admission::GlobalExhausted {
                statuses,
                retry_after_ms,
            } => {
                let refusal = charge.global_refusal(&statuses, retry_after_ms);
                info!(decision = "rejected", scope = "global", client_key = %client_key,
                      retry_after_s = ceil_seconds(retry_after_ms).max(1), aws_calls);
                self.memory().remember(GLOBAL, refusal.clone(), now);
                refusal
            }
        };
        Err(refusal)
    }
}

/// The table could not be asked: 503, nothing taken.
fn unavailable(_: &StoreError) -> ApiError {
    ApiError::Unavailable {
        retry_after_s: UNAVAILABLE_RETRY_AFTER_S,
    }
}
