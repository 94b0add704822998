//! The quota rules, without I/O.
//!
//! A client's state is the times of its most recent acceptances ("slots",
//! epoch milliseconds, `0` for a free slot), at most `limit` of them. A new
//! trigger is accepted when fewer than `limit` of them lie inside the rolling
//! window that ends now, so no span of `window` ever holds more than `limit`
//! acceptances. A slot frees exactly `window` after it was taken. Times are
//! always compared here: an item that TTL has not collected yet blocks no one.
//!
//! Quotas nest by network: besides the client's own (an IPv4 address, an
//! IPv6 /64), each level of `NETWORK_QUOTA_LIMITS` (say IPv6 /56 = 6 and
//! /48 = 12) is a quota of the same kind over the same window, shared by
//! every client in that network, and a trigger takes one slot of each.
//!
//! The global budget is a fixed window (aligned to the epoch): a circuit
//! breaker on total spend, counted with one atomic counter per window.

use crate::clock::EpochMillis;
use std::time::Duration;

/// How `NETWORK_QUOTA_LIMITS` names a network group's level: `group:aws`.
pub const GROUP_PREFIX: &str = "group:";
/// The most groups `NETWORK_QUOTA_LIMITS` may name.
pub const MAX_GROUPS: usize = 8;

/// Is `name` a group name: 1 to 32 of a-z 0-9 -, starting with a letter
/// or digit?
pub fn is_valid_group_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `QUOTA_LIMIT` acceptances per client per rolling `QUOTA_WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaPolicy {
    pub limit: usize,
    pub window: Duration,
}

/// `GLOBAL_QUOTA_LIMIT` acceptances for everyone per `GLOBAL_QUOTA_WINDOW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalPolicy {
    pub limit: u64,
    pub window: Duration,
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl QuotaPolicy {
    pub fn window_ms(&self) -> u64 {
        millis(self.window)
    }

    /// Is an acceptance at `taken` still counted at `now`? Future times (clock
    /// skew between instances) count too.
    fn counts(&self, taken: EpochMillis, now: EpochMillis) -> bool {
        taken != 0 && taken.saturating_add(self.window_ms()) > now
    }

    /// The slots in canonical form: most recent first, exactly `limit` long.
    pub fn normalize(&self, slots: &[EpochMillis]) -> Vec<EpochMillis> {
        let mut sorted = slots.to_vec();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.resize(self.limit, 0);
        sorted
    }

    /// Accept or reject a trigger from a client whose slots are `slots`.
    pub fn decide(&self, slots: &[EpochMillis], now: EpochMillis) -> Decision {
        let current = self.normalize(slots);
        let active: Vec<EpochMillis> = current
            .iter()
            .copied()
            .filter(|&t| self.counts(t, now))
            .collect();
        if active.len() >= self.limit {
            // `active` is sorted newest first; the last one frees first.
            let oldest = active[self.limit - 1];
            return Decision::Reject(QuotaStatus {
                limit: self.limit,
                remaining: 0,
                reset_after_ms: oldest.saturating_add(self.window_ms()) - now,
            });
        }
        let mut next = current;
        next.push(now);
        let next = self.normalize(&next);
        Decision::Accept {
            status: self.status(&next, now),
            slots: next,
        }
    }

    /// Remaining acceptances and when the next slot frees.
    pub fn status(&self, slots: &[EpochMillis], now: EpochMillis) -> QuotaStatus {
        let active = slots.iter().filter(|&&t| self.counts(t, now));
        let used = active.clone().count().min(self.limit);
        let reset_after_ms = active
            .map(|&t| t.saturating_add(self.window_ms()).saturating_sub(now))
            .min()
            .unwrap_or(0);
        QuotaStatus {
            limit: self.limit,
            remaining: self.limit - used,
            reset_after_ms,
        }
    }

    /// The state after giving back the acceptance taken at `accepted_at`:
    /// that slot is removed and a free slot appended. `None` when no slot holds
    /// that time any more (nothing to give back).
    pub fn refund(
        &self,
        slots: &[EpochMillis],
        accepted_at: EpochMillis,
    ) -> Option<Vec<EpochMillis>> {
        let mut current = self.normalize(slots);
        let at = current.iter().position(|&t| t == accepted_at)?;
        current.remove(at);
        Some(self.normalize(&current))
    }

    /// The state a brand-new client has after its first acceptance.
    pub fn first_acceptance(&self, now: EpochMillis) -> Vec<EpochMillis> {
        self.normalize(&[now])
    }

    /// The latest time any slot still counts: when the client's item may be
    /// collected by TTL (epoch seconds).
    pub fn expires_at_seconds(&self, slots: &[EpochMillis], now: EpochMillis) -> u64 {
        let newest = slots.iter().copied().max().unwrap_or(0).max(now);
        newest.saturating_add(self.window_ms()).div_ceil(1000)
    }
}

/// The outcome for one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Take the quota: the client's slots become `slots`.
    Accept {
        slots: Vec<EpochMillis>,
        status: QuotaStatus,
    },
    /// Out of quota until a slot frees.
    Reject(QuotaStatus),
}

/// What the client is told: `RateLimit`, `Retry-After`, the 202's `quota`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaStatus {
    pub limit: usize,
    pub remaining: usize,
    /// Milliseconds until the next slot frees (0: none is taken).
    pub reset_after_ms: u64,
}

impl GlobalPolicy {
    /// The fixed window holding `now`: `(start, end)` in epoch milliseconds.
    pub fn bucket(&self, now: EpochMillis) -> (EpochMillis, EpochMillis) {
        let width = millis(self.window).max(1);
        let start = now - now % width;
        (start, start.saturating_add(width))
    }
}

/// An address family, as network levels name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V4 => "ipv4",
            Self::V6 => "ipv6",
        }
    }

    /// The prefix lengths a network level may have: wider than one client
    /// (an IPv4 address, an IPv6 /64), no wider than a /8 or a /32.
    pub fn prefixes(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Self::V4 => 8..=31,
            Self::V6 => 32..=63,
        }
    }
}

/// One level of `NETWORK_QUOTA_LIMITS`: every client in the same
/// `/prefix` network of `family` shares `limit` acceptances per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkLevel {
    pub family: Family,
    pub prefix: u8,
    pub limit: usize,
}

impl NetworkLevel {
    /// `ipv6/48`: how the 429, the RateLimit fields and operators name it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.family.as_str(), self.prefix)
    }
}

/// The most network levels: each is one more item in the admission.
pub const MAX_NETWORK_LEVELS: usize = 4;

/// One group level of `NETWORK_QUOTA_LIMITS` (`group:aws=30`): every client
/// whose address is in the named network group (`trigger-ops networks
/// import`) shares `limit` acceptances per window.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupLevel {
    pub name: String,
    pub limit: usize,
}

impl GroupLevel {
    /// `group:aws`: how the 429, the RateLimit fields and operators name it.
    pub fn level_name(&self) -> String {
        format!("{}{}", GROUP_PREFIX, self.name)
    }
}

/// `NETWORK_QUOTA_LIMITS`: the network levels, narrowest first per family,
/// and the group levels by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkLimits(Vec<NetworkLevel>, Vec<GroupLevel>);

/// `text` without the ASCII blanks around it.
fn blank(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// Inside an item, ASCII blanks only around `/` and `=`, and numbers of
/// 1 to 3 digits (as Terraform's check reads them).
fn digits(text: &str) -> Option<usize> {
    let text = blank(text);
    ((1..=3).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse::<usize>().ok())
        .flatten()
}

/// An item's limit: a whole number from the client's limit (a network
/// never holds less than one of its clients) to `max_limit`.
fn level_limit(
    item: &str,
    limit: &str,
    client_limit: usize,
    max_limit: usize,
) -> Result<usize, String> {
    let limit =
        digits(limit).ok_or_else(|| format!("{item:?}: the limit is not a whole number"))?;
    if limit < client_limit || limit > max_limit {
        return Err(format!(
            "{item:?}: the limit must be between QUOTA_LIMIT ({client_limit}) and {max_limit}"
        ));
    }
    Ok(limit)
}

impl NetworkLimits {
    /// `ipv6/56=6,ipv6/48=12,group:aws=30`; `off` or empty: none. Each limit
    /// is at least `client_limit` (a network never holds less than one of
    /// its clients) and at most `max_limit` (the slots one item holds).
    pub fn parse(text: &str, client_limit: usize, max_limit: usize) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("off") {
            return Ok(Self::default());
        }
        let mut levels: Vec<NetworkLevel> = Vec::new();
        let mut groups: Vec<GroupLevel> = Vec::new();
        for item in text.split(',').map(str::trim) {
            let bad = || {
                format!(
                    "{item:?} is not a level like ipv4/24=20, ipv6/48=12 (ipv4/8-31, ipv6/32-63) or group:aws=30"
                )
            };
            let (network, limit) = item.split_once('=').ok_or_else(bad)?;
            let network = blank(network);
            let limit_of = |limit: &str| level_limit(item, limit, client_limit, max_limit);
            if let Some(name) = network.strip_prefix(GROUP_PREFIX) {
                if !is_valid_group_name(name) {
                    return Err(format!(
                        "{item:?}: a group name is 1 to 32 of a-z 0-9 -, starting with a letter or digit"
                    ));
                }
                if groups.iter().any(|g| g.name == name) {
                    return Err(format!("{GROUP_PREFIX}{name} is listed twice"));
                }
                groups.push(GroupLevel {
                    name: name.to_string(),
                    limit: limit_of(limit)?,
                });
                continue;
            }
            let (family, prefix) = network.split_once('/').ok_or_else(bad)?;
            let family = match blank(family).to_ascii_lowercase().as_str() {
                "ipv4" => Family::V4,
                "ipv6" => Family::V6,
                _ => return Err(bad()),
            };
            let prefix = digits(prefix)
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(bad)?;
            if !family.prefixes().contains(&prefix) {
                return Err(bad());
            }
            let limit = limit_of(limit)?;
            if levels
                .iter()
                .any(|l| l.family == family && l.prefix == prefix)
            {
                return Err(format!("{}/{prefix} is listed twice", family.as_str()));
            }
            levels.push(NetworkLevel {
                family,
                prefix,
                limit,
            });
        }
        if levels.len() > MAX_NETWORK_LEVELS {
            return Err(format!("at most {MAX_NETWORK_LEVELS} levels"));
        }
        if groups.len() > MAX_GROUPS {
            return Err(format!("at most {MAX_GROUPS} groups"));
        }
        levels.sort_by_key(|l| (l.family, std::cmp::Reverse(l.prefix)));
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self(levels, groups))
    }

    /// The group levels, by name.
    pub fn groups(&self) -> &[GroupLevel] {
        &self.1
    }

    /// The levels that apply to an address of `family`, narrowest first.
    pub fn of(&self, family: Family) -> impl Iterator<Item = &NetworkLevel> {
        self.0.iter().filter(move |l| l.family == family)
    }

    pub fn iter(&self) -> impl Iterator<Item = &NetworkLevel> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty() && self.1.is_empty()
    }
}

/// The default of `NETWORK_QUOTA_LIMITS`: an IPv6 /56 (a household's
/// usual delegation) shares 6, a /48 (a site, or a free tunnel broker's
/// allocation) shares 12. IPv4 levels are off by default: carrier-grade
/// NAT puts many unrelated people behind one /24.
pub const DEFAULT_NETWORK_LIMITS: &str = "ipv6/56=6,ipv6/48=12";

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn policy(limit: usize, window_ms: u64) -> QuotaPolicy {
        QuotaPolicy {
            limit,
            window: Duration::from_millis(window_ms),
        }
    }

    /// Feeds `times` through `decide`, keeping state, and returns the verdicts.
    fn run(p: &QuotaPolicy, times: &[u64]) -> Vec<bool> {
        let mut slots = Vec::new();
        times
            .iter()
            .map(|&now| match p.decide(&slots, now) {
                Decision::Accept { slots: next, .. } => {
                    slots = next;
                    true
                }
                Decision::Reject(_) => false,
            })
            .collect()
    }

    #[test]
    fn new_client_gets_the_limit_then_is_refused() {
        let p = policy(3, 7 * DAY);
        let t = 1_000 * DAY;
        assert_eq!(
            run(&p, &[t, t + 1, t + 2, t + 3]),
            [true, true, true, false]
        );
    }

    #[test]
    fn the_first_slot_frees_exactly_one_window_after_it_was_taken() {
        let p = policy(3, 7 * DAY);
        let t = 1_000 * DAY;
        let w = 7 * DAY;
        assert_eq!(
            run(
                &p,
                &[t, t + 10, t + 20, t + w - 1, t + w, t + w + 5, t + w + 10]
            ),
            [true, true, true, false, true, false, true]
        );
    }

    #[test]
    fn retry_after_points_at_the_oldest_counted_slot() {
        let p = policy(2, 1_000);
        let slots = vec![5_300, 5_000];
        match p.decide(&slots, 5_400) {
            Decision::Reject(status) => {
                assert_eq!(status.remaining, 0);
                assert_eq!(status.reset_after_ms, 600);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(matches!(p.decide(&slots, 6_000), Decision::Accept { .. }));
    }

    #[test]
    fn limit_one() {
        let p = policy(1, 1_000);
        assert_eq!(
            run(&p, &[10_000, 10_999, 11_000, 11_001]),
            [true, false, true, false]
        );
    }

    #[test]
    fn second_long_windows() {
        let p = policy(2, 1_000);
        assert_eq!(
            run(&p, &[1, 500, 999, 1_001, 1_499, 1_500, 2_001]),
            [true, true, false, true, false, true, true]
        );
    }

    #[test]
    fn expired_but_present_slots_block_no_one() {
        // A stored item that TTL has not collected yet, all of its slots old.
        let p = policy(3, 7 * DAY);
        let now = 1_000 * DAY;
        let stale = vec![now - 8 * DAY, now - 9 * DAY, now - 30 * DAY];
        match p.decide(&stale, now) {
            Decision::Accept { slots, status } => {
                assert_eq!(slots[0], now);
                assert_eq!(status.remaining, 2);
                assert_eq!(status.reset_after_ms, 7 * DAY);
            }
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        // Requests every 7 ms for a while; check every window of acceptances.
        let p = policy(3, 100);
        let times: Vec<u64> = (1..400).map(|i| i * 7).collect();
        let accepted: Vec<u64> = times
            .iter()
            .zip(run(&p, &times))
            .filter(|(_, ok)| *ok)
            .map(|(&t, _)| t)
            .collect();
        assert!(accepted.len() > 30);
        for (i, &start) in accepted.iter().enumerate() {
            let inside = accepted[i..]
                .iter()
                .take_while(|&&t| t < start + 100)
                .count();
            assert!(inside <= 3, "window from {start} holds {inside}");
        }
    }

    #[test]
    fn status_counts_remaining_and_next_reset() {
        let p = policy(3, 1_000);
        let s = p.status(&[1_900, 1_500, 200], 2_000);
        assert_eq!(s.remaining, 1);
        assert_eq!(s.reset_after_ms, 500);
        let empty = p.status(&[0, 0, 0], 2_000);
        assert_eq!((empty.remaining, empty.reset_after_ms), (3, 0));
    }

    #[test]
    fn slots_are_normalized_whatever_was_stored() {
        let p = policy(3, 1_000);
        assert_eq!(p.normalize(&[1, 3]), [3, 1, 0]);
        // A larger limit in an earlier deployment left more slots behind.
        assert_eq!(p.normalize(&[5, 9, 7, 8]), [9, 8, 7]);
    }

    #[test]
    fn future_slots_from_clock_skew_still_count() {
        let p = policy(1, 1_000);
        assert!(matches!(p.decide(&[5_000], 4_990), Decision::Reject(_)));
    }

    #[test]
    fn refund_removes_exactly_that_acceptance() {
        let p = policy(3, 1_000);
        assert_eq!(p.refund(&[300, 200, 100], 200), Some(vec![300, 100, 0]));
        assert_eq!(p.refund(&[300, 200, 100], 999), None);
        // Two acceptances in the same millisecond: one is given back.
        assert_eq!(p.refund(&[200, 200, 100], 200), Some(vec![200, 100, 0]));
    }

    #[test]
    fn a_refund_makes_room_again() {
        let p = policy(2, 1_000);
        let full = vec![500, 400];
        assert!(matches!(p.decide(&full, 600), Decision::Reject(_)));
        let refunded = p.refund(&full, 500).unwrap();
        assert!(matches!(p.decide(&refunded, 600), Decision::Accept { .. }));
    }

    #[test]
    fn expiry_is_one_window_after_the_newest_slot() {
        let p = policy(3, 10_000);
        assert_eq!(p.expires_at_seconds(&[5_000, 1_000, 0], 5_000), 15);
        assert_eq!(p.expires_at_seconds(&[5_000, 1_000, 0], 5_001), 16);
    }

    #[test]
    fn network_limits_parse_sort_and_refuse_what_cannot_hold() {
        let limits = NetworkLimits::parse(" ipv6/48=12, ipv4/24=20 ,ipv6/56=6", 3, 100).unwrap();
        let names: Vec<String> = limits.iter().map(NetworkLevel::name).collect();
        assert_eq!(names, ["ipv4/24", "ipv6/56", "ipv6/48"]);
        assert_eq!(
            limits.of(Family::V6).map(|l| l.limit).collect::<Vec<_>>(),
            [6, 12]
        );
        assert_eq!(limits.of(Family::V4).count(), 1);
        for off in ["", "off", " OFF "] {
            assert!(
                NetworkLimits::parse(off, 3, 100).unwrap().is_empty(),
                "{off:?}"
            );
        }
        assert_eq!(
            NetworkLimits::parse(DEFAULT_NETWORK_LIMITS, 3, 100)
                .unwrap()
                .iter()
                .count(),
            2
        );
        for bad in [
            "ipv6/48",
            "ipv6/64=12",
            "ipv6/31=12",
            "ipv4/32=5",
            "ipv4/7=5",
            "ipv5/24=5",
            "ipv6/48=2",
            "ipv6/48=101",
            "ipv6/48=x",
            "ipv6/48=12,ipv6/48=20",
            "ipv4/8=3,ipv4/9=3,ipv4/10=3,ipv4/11=3,ipv4/12=3",
            "ipv6/48=12,",
            "group:=30",
            "group:AWS=30",
            "group:aws=2",
            "group:aws=30,group:aws=40",
            "group:aws",
            "group:a,b=30",
            "groups:aws=30",
            "group:a=9,group:b=9,group:c=9,group:d=9,group:e=9,group:f=9,group:g=9,group:h=9,group:i=9",
        ] {
            assert!(NetworkLimits::parse(bad, 3, 100).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_levels_come_by_name_beside_the_network_levels() {
        let limits =
            NetworkLimits::parse("group:oracle=20,ipv6/48=12,group:aws=30", 3, 100).unwrap();
        assert_eq!(limits.iter().count(), 1);
        let groups: Vec<(String, usize)> = limits
            .groups()
            .iter()
            .map(|g| (g.level_name(), g.limit))
            .collect();
        assert_eq!(
            groups,
            [("group:aws".into(), 30), ("group:oracle".into(), 20)]
        );
        // Groups do not count against the four prefix levels.
        assert!(NetworkLimits::parse(
            "ipv4/8=3,ipv4/9=3,ipv4/10=3,ipv4/11=3,group:aws=3,group:gcp=3",
            3,
            100
        )
        .is_ok());
        assert!(!NetworkLimits::parse("group:aws=30", 3, 100)
            .unwrap()
            .is_empty());
        let error = NetworkLimits::parse("group:Aws=30", 3, 100).unwrap_err();
        assert!(error.contains("a group name is"), "{error}");
    }

    #[test]
    fn global_buckets_are_fixed_windows() {
        let g = GlobalPolicy {
            limit: 10,
            window: Duration::from_secs(60),
        };
        assert_eq!(g.bucket(125_000), (120_000, 180_000));
        assert_eq!(g.bucket(120_000), (120_000, 180_000));
        assert_eq!(g.bucket(179_999), (120_000, 180_000));
    }
}
