//! The client key: who a quota belongs to, without storing who they are.
//!
//! IPv4 clients are keyed per address, IPv6 clients per /64 prefix (one
//! subscriber usually holds a whole /64). An IPv6 address that carries an
//! IPv4 address counts as that IPv4 address: IPv4-mapped (`::ffff:a.b.c.d`),
//! 6to4 (`2002:AABB:CCDD::/48`, one IPv4 host's 65,536 /64s), NAT64's
//! well-known prefix (`64:ff9b::/96`) and Teredo (`2001::/32`, the client's
//! address inverted in the last 32 bits). The key is
//! HMAC-SHA256(`CLIENT_KEY_SECRET`, canonical prefix) in hex: stable for a
//! client, useless for recovering the address without the secret.
//!
//! The networks around a client (each level of `NETWORK_QUOTA_LIMITS`) are
//! keyed the same way, from their canonical prefix (`ipv6:2001:db8:1::/48`).

use super::quota::{Family, NetworkLevel, NetworkLimits};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientKeyError {
    #[error("the request carries no client address")]
    Missing,
    #[error("the client address is not an IP address")]
    NotAnAddress,
}

/// A client key: lowercase hex of 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey(String);

impl ClientKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, enough to tell clients apart in an e-mail.
    pub fn prefix(&self) -> &str {
        &self.0[..12]
    }

    /// A key read back from storage; `None` unless it is 64 lowercase hex digits.
    pub fn from_stored(text: &str) -> Option<Self> {
        (text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_string()))
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The IPv4 address an IPv6 address carries, if it is one of the forms
/// that do: IPv4-mapped, 6to4, NAT64's well-known prefix, Teredo.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // 6to4: 2002:AABB:CCDD::/48 belongs to the IPv4 host AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        // NAT64, well-known prefix: 64:ff9b::a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // Teredo: 2001:0::/32, the client's public address inverted.
        [0x2001, 0, .., hi, lo] => Some(low(!hi, !lo)),
        _ => None,
    }
}

/// The address a client is known by: its IPv4 address whenever it has one.
pub fn effective_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => embedded_ipv4(v6).map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The family of the address a client is known by.
pub fn family_of(address: IpAddr) -> Family {
    match effective_address(address) {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    }
}

/// The canonical `/prefix` network around an address (already effective):
/// `ipv4:203.0.113.0/24`, `ipv6:2001:db8:1::/48`.
pub fn canonical_prefix(address: IpAddr, prefix: u8) -> String {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4) & u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            format!("ipv4:{}/{prefix}", Ipv4Addr::from(bits))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            format!("ipv6:{}/{prefix}", Ipv6Addr::from(bits))
        }
    }
}

/// The unit a quota counts: one IPv4 address or one IPv6 /64.
pub fn canonical_client(address: IpAddr) -> String {
    match effective_address(address) {
        IpAddr::V4(v4) => format!("ipv4:{v4}"),
        v6 => canonical_prefix(v6, 64),
    }
}

/// Every key the ingress takes quota under for one request: the client's
/// own, then each network level of its address family, narrowest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaKeys {
    pub client: ClientKey,
    pub networks: Vec<(NetworkLevel, ClientKey)>,
}

/// The quota keys of a source address under `limits`.
pub fn quota_keys(
    secret: &[u8],
    source_ip: &str,
    limits: &NetworkLimits,
) -> Result<QuotaKeys, ClientKeyError> {
    let address = parse_source_ip(source_ip)?;
    let effective = effective_address(address);
    Ok(QuotaKeys {
        client: keyed(secret, &canonical_client(address)),
        networks: limits
            .of(family_of(address))
            .map(|level| {
                (
                    *level,
                    keyed(secret, &canonical_prefix(effective, level.prefix)),
                )
            })
            .collect(),
    })
}

/// Parses the source address API Gateway reports (no port, no brackets, no zone).
pub fn parse_source_ip(text: &str) -> Result<IpAddr, ClientKeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ClientKeyError::Missing);
    }
    text.parse().map_err(|_| ClientKeyError::NotAnAddress)
}

/// Prefixed to the secret for its fingerprint (Terraform's `sha256()` of the
/// same text gives the same hex, so the deployment writes it too).
pub const FINGERPRINT_LABEL: &str = "pipeline-trigger client-key fingerprint:";

/// A fingerprint of `CLIENT_KEY_SECRET`: SHA-256 of the label and the
/// secret, in hex. The secret is 48 random characters, so the fingerprint
/// tells nothing of it; it tells an operator's tool whether it holds the
/// ingress's secret before keying an address with it.
pub fn secret_fingerprint(secret: &[u8]) -> String {
    use sha2::Digest;
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_LABEL.as_bytes());
    hash.update(secret);
    hex::encode(hash.finalize())
}

/// The key for a source address.
pub fn client_key(secret: &[u8], source_ip: &str) -> Result<ClientKey, ClientKeyError> {
    let address = parse_source_ip(source_ip)?;
    Ok(keyed(secret, &canonical_client(address)))
}

/// The keyed hash of a canonical client or network.
pub fn keyed(secret: &[u8], canonical: &str) -> ClientKey {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(canonical.as_bytes());
    ClientKey(hex::encode(mac.finalize().into_bytes()))
}

/// The quota key of a network group (`group:aws`): every address in the
/// group shares it.
pub fn group_key(secret: &[u8], name: &str) -> ClientKey {
    keyed(
        secret,
        &format!("{}{name}", crate::rules::quota::GROUP_PREFIX),
    )
}

/// The network around a client that `clients show` names as its network:
/// the IPv4 /24 of an IPv4 client, the IPv6 /48 of an IPv6 one.
pub fn canonical_network(address: IpAddr) -> String {
    match effective_address(address) {
        v4 @ IpAddr::V4(_) => canonical_prefix(v4, 24),
        v6 => canonical_prefix(v6, 48),
    }
}

/// The prefix lengths the admission checks for a block ("anchors"): every
/// 4 bits from the widest prefix an operator may block to the client. A
/// block of another length is stored as the anchor prefixes it covers (at
/// most 8), so a request needs one check per anchor, whatever was blocked.
pub const IPV4_BLOCK_ANCHORS: [u8; 5] = [16, 20, 24, 28, 32];
/// IPv6 anchors: /32 (a provider's allocation) to /64 (the client).
pub const IPV6_BLOCK_ANCHORS: [u8; 9] = [32, 36, 40, 44, 48, 52, 56, 60, 64];

/// The keys whose block stops a source address: its own (the client key)
/// first, then each anchor prefix around it, narrowest first.
pub fn block_keys(secret: &[u8], source_ip: &str) -> Result<Vec<ClientKey>, ClientKeyError> {
    let address = parse_source_ip(source_ip)?;
    let effective = effective_address(address);
    let anchors: &[u8] = match effective {
        IpAddr::V4(_) => &IPV4_BLOCK_ANCHORS,
        IpAddr::V6(_) => &IPV6_BLOCK_ANCHORS,
    };
    let mut keys = vec![keyed(secret, &canonical_client(address))];
    // The narrowest anchor is the client itself.
    keys.extend(
        anchors
            .iter()
            .rev()
            .skip(1)
            .map(|&length| keyed(secret, &canonical_prefix(effective, length))),
    );
    Ok(keys)
}

/// What an operator blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockTarget {
    /// An address or a prefix: `shown` as people write it, and the
    /// canonical texts of the anchors that cover it (keyed, they are the
    /// block items).
    Prefix { shown: String, anchors: Vec<String> },
    /// A client or network key as the logs and `clients top` show it.
    Key(ClientKey),
}

/// Reads a block target: a client key (64 hex digits), an address (IPv4,
/// or IPv6 meaning its /64), or a prefix (IPv4 /16 to /32, IPv6 /32 to
/// /64) with its host bits zero.
pub fn parse_block_target(text: &str) -> Result<BlockTarget, String> {
    let text = text.trim();
    if let Some(key) = ClientKey::from_stored(&text.to_ascii_lowercase()) {
        return Ok(BlockTarget::Key(key));
    }
    let (address, length) = match text.split_once('/') {
        None => {
            let address = parse_source_ip(text).map_err(|_| {
                format!(
                    "{text:?} is not an IP address, a prefix like 203.0.113.0/24 or \
                     2001:db8::/48, or a client key (64 hex digits)"
                )
            })?;
            return Ok(BlockTarget::Prefix {
                shown: shown(&canonical_client(address)),
                anchors: vec![canonical_client(address)],
            });
        }
        Some((address, length)) => (address, length),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let length: u8 = length
        .parse()
        .map_err(|_| format!("{length:?} is not a prefix length"))?;
    let (bits, anchors): (u8, &[u8]) = match address {
        IpAddr::V4(_) => (32, &IPV4_BLOCK_ANCHORS),
        IpAddr::V6(v6) => {
            if effective_address(address) != address || v6.segments()[0] == 0x2002 {
                return Err(format!(
                    "{text} is inside a range whose addresses count as the IPv4 address they \
                     carry (IPv4-mapped, 6to4 2002::/16, NAT64 64:ff9b::/96, Teredo 2001::/32): \
                     block that IPv4 address or prefix instead"
                ));
            }
            (128, &IPV6_BLOCK_ANCHORS)
        }
    };
    let (widest, narrowest) = (anchors[0], anchors[anchors.len() - 1]);
    if !(widest..=narrowest).contains(&length) {
        return Err(format!(
            "a {} prefix must be /{widest} to /{narrowest}, not /{length}",
            if bits == 32 { "IPv4" } else { "IPv6" }
        ));
    }
    let canonical = canonical_prefix(address, length);
    let given = match address {
        IpAddr::V4(v4) => format!("ipv4:{v4}/{length}"),
        IpAddr::V6(v6) => format!("ipv6:{v6}/{length}"),
    };
    if canonical != given {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            shown(&canonical)
        ));
    }
    Ok(BlockTarget::Prefix {
        shown: shown(&canonical),
        anchors: anchors_of(address, length, anchors),
    })
}

/// The block items that cover `address/length`: the narrowest anchor at
/// least as long as the prefix, and its copies across the prefix (at the
/// narrowest anchor, each a client's own canonical text).
fn anchors_of(address: IpAddr, length: u8, anchors: &[u8]) -> Vec<String> {
    let bits: u32 = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    let narrowest = anchors[anchors.len() - 1];
    let anchor = anchors
        .iter()
        .copied()
        .find(|&a| a >= length)
        .unwrap_or(narrowest);
    let count = 1u128 << (anchor - length);
    let step = 1u128 << (bits - u32::from(anchor));
    let base = match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    };
    (0..count)
        .map(|i| {
            let value = base + i * step;
            let network = match address {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
            };
            if anchor == narrowest {
                canonical_client(network)
            } else {
                canonical_prefix(network, anchor)
            }
        })
        .collect()
}

/// `ipv6:2001:db8::/48` as people write it: `2001:db8::/48`.
pub fn shown(canonical: &str) -> String {
    canonical
        .split_once(':')
        .map_or(canonical, |(_, rest)| rest)
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fingerprint_is_terraforms_sha256_of_label_and_secret() {
        // printf 'pipeline-trigger client-key fingerprint:abc' | sha256sum
        assert_eq!(
            secret_fingerprint(b"abc"),
            "58f4f4d691f6832effca7d55b0971285f01f99f8dbe5b09e75d44b358d384db0"
        );
        assert_ne!(secret_fingerprint(b"abc"), secret_fingerprint(b"abd"));
    }

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef";

    fn key(ip: &str) -> ClientKey {
        client_key(SECRET, ip).unwrap()
    }

    #[test]
    fn ipv4_is_keyed_per_address() {
        assert_eq!(key("203.0.113.7"), key("203.0.113.7"));
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("203.0.113.7").as_str().len(), 64);
    }

    #[test]
    fn ipv6_is_keyed_per_64() {
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(key("2001:db8:1:2::1"), key("2001:DB8:1:2:0:0:0:9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }

    #[test]
    fn ipv4_mapped_ipv6_is_its_ipv4_address() {
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
        assert_eq!(key("::ffff:cb00:7107"), key("203.0.113.7"));
        assert_ne!(key("::ffff:203.0.113.8"), key("203.0.113.7"));
    }

    #[test]
    fn block_keys_are_the_client_then_every_anchor_around_it() {
        let keys = block_keys(SECRET, "203.0.113.7").unwrap();
        assert_eq!(keys.len(), IPV4_BLOCK_ANCHORS.len());
        assert_eq!(keys[0], key("203.0.113.7"));
        assert_eq!(keys[1], keyed(SECRET, "ipv4:203.0.113.0/28"));
        assert_eq!(keys[2], keyed(SECRET, "ipv4:203.0.113.0/24"));
        assert_eq!(keys[4], keyed(SECRET, "ipv4:203.0.0.0/16"));
        let keys6 = block_keys(SECRET, "2001:db8:1:2::1").unwrap();
        assert_eq!(keys6.len(), IPV6_BLOCK_ANCHORS.len());
        assert_eq!(keys6[0], key("2001:db8:1:2::9"));
        assert!(keys6.contains(&keyed(SECRET, "ipv6:2001:db8:1::/48")));
        assert_eq!(keys6[8], keyed(SECRET, "ipv6:2001:db8::/32"));
        // Mapped and 6to4 addresses are their IPv4 address, anchors included.
        assert_eq!(
            block_keys(SECRET, "::ffff:203.0.113.9").unwrap()[2],
            keys[2]
        );
        assert_eq!(block_keys(SECRET, "2002:cb00:7107:5::1").unwrap(), keys);
        assert!(block_keys(SECRET, "nope").is_err());
    }

    fn anchors_of(text: &str) -> Vec<String> {
        match parse_block_target(text) {
            Ok(BlockTarget::Prefix { anchors, .. }) => anchors,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn block_targets_are_addresses_prefixes_from_16_or_32_and_keys() {
        assert_eq!(anchors_of("203.0.113.7"), ["ipv4:203.0.113.7"]);
        assert_eq!(anchors_of("203.0.113.7/32"), ["ipv4:203.0.113.7"]);
        assert_eq!(anchors_of("203.0.113.0/24"), ["ipv4:203.0.113.0/24"]);
        assert_eq!(anchors_of("203.0.0.0/16"), ["ipv4:203.0.0.0/16"]);
        // A /22 is the four /24s it covers; a /31 its two addresses.
        assert_eq!(
            anchors_of("203.0.112.0/22"),
            [
                "ipv4:203.0.112.0/24",
                "ipv4:203.0.113.0/24",
                "ipv4:203.0.114.0/24",
                "ipv4:203.0.115.0/24"
            ]
        );
        assert_eq!(
            anchors_of("203.0.113.6/31"),
            ["ipv4:203.0.113.6", "ipv4:203.0.113.7"]
        );
        assert_eq!(anchors_of("2001:db8:1:2::1"), ["ipv6:2001:db8:1:2::/64"]);
        assert_eq!(anchors_of("2001:db8::/32"), ["ipv6:2001:db8::/32"]);
        assert_eq!(anchors_of("2001:db8::/47").len(), 2);
        assert_eq!(anchors_of("2001:db8:1:8::/61").len(), 8);
        let key = "ab".repeat(32);
        assert_eq!(
            parse_block_target(&key),
            Ok(BlockTarget::Key(ClientKey::from_stored(&key).unwrap()))
        );
        for bad in [
            "",
            "example.com",
            "203.0.0.0/15",
            "203.0.113.5/24",
            "2001:db8::/31",
            "2001:db8:1:2::/65",
            "2001:db8:1:2::1/64",
            "203.0.113.0/x",
            "::ffff:203.0.113.0/120",
            "2002:cb00::/32",
            "abcd",
        ] {
            assert!(parse_block_target(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever prefix is blocked, every address in it is stopped (one
        /// of its block keys is a block item) and an address outside is not.
        #[test]
        fn a_blocked_prefix_stops_every_address_in_it_and_none_outside(
            base in proptest::num::u32::ANY, length in 16u8..=32, offset in proptest::num::u32::ANY,
        ) {
            let network = base & u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
            let text = format!("{}/{length}", Ipv4Addr::from(network));
            let items: std::collections::HashSet<ClientKey> =
                anchors_of(&text).iter().map(|c| keyed(SECRET, c)).collect();
            let inside = network | (offset & !u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0));
            let stopped = |address: u32| block_keys(SECRET, &Ipv4Addr::from(address).to_string())
                .unwrap().iter().any(|k| items.contains(k));
            proptest::prop_assert!(stopped(inside));
            if length > 16 {
                let outside = network ^ (1u32 << (32 - u32::from(length)));
                proptest::prop_assert!(!stopped(outside));
            }
        }
    }

    #[test]
    fn addresses_that_carry_an_ipv4_address_are_that_address() {
        // 6to4: every /64 of 2002:cb00:7107::/48 is the host 203.0.113.7.
        assert_eq!(key("2002:cb00:7107:1::1"), key("203.0.113.7"));
        assert_eq!(key("2002:cb00:7107:ffff::9"), key("203.0.113.7"));
        assert_ne!(key("2002:cb00:7108::1"), key("203.0.113.7"));
        // NAT64's well-known prefix.
        assert_eq!(key("64:ff9b::cb00:7107"), key("203.0.113.7"));
        assert_eq!(key("64:ff9b::203.0.113.7"), key("203.0.113.7"));
        // Teredo: the last 32 bits are the client's address inverted.
        assert_eq!(
            key("2001:0:4136:e378:8000:63bf:34ff:8ef8"),
            key("203.0.113.7")
        );
        // Not embedding forms: a plain 2001:db8:: address, 64:ff9b:1::/48.
        assert_eq!(
            effective_address("2001:db8::cb00:7107".parse().unwrap()),
            "2001:db8::cb00:7107".parse::<IpAddr>().unwrap()
        );
        assert!(effective_address("64:ff9b:1::cb00:7107".parse().unwrap()).is_ipv6());
        assert_eq!(family_of("2002:cb00:7107::1".parse().unwrap()), Family::V4);
    }

    #[test]
    fn network_keys_are_one_per_level_of_the_family() {
        let limits = NetworkLimits::parse("ipv6/56=6,ipv6/48=12,ipv4/24=30", 3, 100).unwrap();
        let v6 = quota_keys(SECRET, "2001:db8:1:2::1", &limits).unwrap();
        assert_eq!(v6.client, key("2001:db8:1:2::1"));
        let names: Vec<String> = v6.networks.iter().map(|(l, _)| l.name()).collect();
        assert_eq!(names, ["ipv6/56", "ipv6/48"]);
        assert_eq!(v6.networks[0].1, keyed(SECRET, "ipv6:2001:db8:1::/56"));
        assert_eq!(v6.networks[1].1, keyed(SECRET, "ipv6:2001:db8:1::/48"));
        // Another /64 of the same /56 shares both networks; one of another /56 only the /48.
        let same56 = quota_keys(SECRET, "2001:db8:1:ff::1", &limits).unwrap();
        assert_eq!(same56.networks, v6.networks);
        assert_ne!(same56.client, v6.client);
        let other56 = quota_keys(SECRET, "2001:db8:1:100::1", &limits).unwrap();
        assert_ne!(other56.networks[0], v6.networks[0]);
        assert_eq!(other56.networks[1], v6.networks[1]);
        // IPv4 (and what carries it) gets the IPv4 levels only.
        let v4 = quota_keys(SECRET, "2002:cb00:7107::1", &limits).unwrap();
        assert_eq!(v4.networks.len(), 1);
        assert_eq!(v4.networks[0].1, keyed(SECRET, "ipv4:203.0.113.0/24"));
        assert!(quota_keys(SECRET, "2001:db8::1", &NetworkLimits::default())
            .unwrap()
            .networks
            .is_empty());
    }

    #[test]
    fn canonical_prefixes_clear_the_host_bits() {
        let a = |t: &str| t.parse::<IpAddr>().unwrap();
        assert_eq!(
            canonical_prefix(a("203.0.113.77"), 24),
            "ipv4:203.0.113.0/24"
        );
        assert_eq!(canonical_prefix(a("203.0.113.77"), 8), "ipv4:203.0.0.0/8");
        assert_eq!(
            canonical_prefix(a("203.0.113.77"), 32),
            "ipv4:203.0.113.77/32"
        );
        assert_eq!(
            canonical_prefix(a("2001:db8:1:2:3::9"), 56),
            "ipv6:2001:db8:1::/56"
        );
        assert_eq!(
            canonical_prefix(a("2001:db8:1:2ff::9"), 56),
            "ipv6:2001:db8:1:200::/56"
        );
        assert_eq!(canonical_prefix(a("2001:db8:1:2::9"), 0), "ipv6:::/0");
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical_client("10.0.0.1".parse().unwrap()),
            "ipv4:10.0.0.1"
        );
        assert_eq!(
            canonical_client("2001:db8:aa:bb:cc::1".parse().unwrap()),
            "ipv6:2001:db8:aa:bb::/64"
        );
    }

    #[test]
    fn the_secret_changes_the_key() {
        assert_ne!(
            client_key(b"another-secret-of-16", "203.0.113.7").unwrap(),
            key("203.0.113.7")
        );
    }

    #[test]
    fn the_key_does_not_contain_the_address() {
        let k = key("203.0.113.7");
        assert!(!k.as_str().contains("203"));
        assert!(!k.as_str().contains("113"));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(client_key(SECRET, ""), Err(ClientKeyError::Missing));
        for bad in [
            "localhost",
            "203.0.113.7:443",
            "[2001:db8::1]",
            "300.1.1.1",
            "203.0.113.7, 10.0.0.1",
            "fe80::1%eth0",
            "<script>",
        ] {
            assert_eq!(
                client_key(SECRET, bad),
                Err(ClientKeyError::NotAnAddress),
                "{bad}"
            );
        }
    }

    #[test]
    fn stored_keys_are_validated() {
        let k = key("203.0.113.7");
        assert_eq!(ClientKey::from_stored(k.as_str()), Some(k.clone()));
        assert_eq!(ClientKey::from_stored("203.0.113.7"), None);
        assert_eq!(k.prefix().len(), 12);
    }
}
