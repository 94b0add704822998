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

/// The network around a client that an operator can block as a whole: the
/// IPv4 /24 of an IPv4 client, the IPv6 /48 of an IPv6 one.
pub fn canonical_network(address: IpAddr) -> String {
    match effective_address(address) {
        v4 @ IpAddr::V4(_) => canonical_prefix(v4, 24),
        v6 => canonical_prefix(v6, 48),
    }
}

/// The keys whose block stops a source address: its own (its IPv4 address or
/// IPv6 /64, the client key) and its network's (/24 or /48), in that order.
pub fn block_keys(secret: &[u8], source_ip: &str) -> Result<[ClientKey; 2], ClientKeyError> {
    let address = parse_source_ip(source_ip)?;
    Ok([
        keyed(secret, &canonical_client(address)),
        keyed(secret, &canonical_network(address)),
    ])
}

/// What an operator names to block: an address (IPv4, or IPv6 meaning its
/// /64) or a prefix (IPv4 /24, IPv6 /48 or /64), as the canonical text the
/// ingress keys. Host bits of a prefix must be zero.
pub fn parse_block_target(text: &str) -> Result<String, String> {
    let text = text.trim();
    let Some((address, length)) = text.split_once('/') else {
        let address = parse_source_ip(text).map_err(|_| {
            format!(
                "{text:?} is not an IP address or a prefix like 203.0.113.0/24 or 2001:db8::/48"
            )
        })?;
        return Ok(canonical_client(address));
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    let length: u8 = length
        .parse()
        .map_err(|_| format!("{length:?} is not a prefix length"))?;
    let canonical = match (address, length) {
        (IpAddr::V4(_), 24) => canonical_network(address),
        (IpAddr::V6(v6), 48) if v6.to_ipv4_mapped().is_none() => canonical_network(address),
        (IpAddr::V6(v6), 64) if v6.to_ipv4_mapped().is_none() => canonical_client(address),
        (IpAddr::V4(_), _) => return Err(format!("an IPv4 prefix must be a /24, not /{length}")),
        (IpAddr::V6(_), _) => {
            return Err(format!(
                "an IPv6 prefix must be a /48 or a /64, not /{length}"
            ))
        }
    };
    let network = canonical
        .rsplit_once('/')
        .map_or(canonical.as_str(), |(n, _)| n);
    let given = match address {
        IpAddr::V4(v4) => format!("ipv4:{v4}"),
        IpAddr::V6(v6) => format!("ipv6:{v6}"),
    };
    if network != given {
        return Err(format!(
            "{text} has host bits set; did you mean {}?",
            canonical.split_once(':').map_or("", |(_, rest)| rest)
        ));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
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
    fn block_keys_are_the_client_key_and_its_network_key() {
        let [own, network] = block_keys(SECRET, "203.0.113.7").unwrap();
        assert_eq!(own, key("203.0.113.7"));
        assert_eq!(network, keyed(SECRET, "ipv4:203.0.113.0/24"));
        assert_eq!(block_keys(SECRET, "203.0.113.200").unwrap()[1], network);
        assert_ne!(block_keys(SECRET, "203.0.114.7").unwrap()[1], network);
        let [own6, network6] = block_keys(SECRET, "2001:db8:1:2::1").unwrap();
        assert_eq!(own6, key("2001:db8:1:2::9"));
        assert_eq!(network6, keyed(SECRET, "ipv6:2001:db8:1::/48"));
        assert_eq!(
            block_keys(SECRET, "2001:db8:1:ffff::1").unwrap()[1],
            network6
        );
        // Mapped addresses are their IPv4 address, network included.
        assert_eq!(
            block_keys(SECRET, "::ffff:203.0.113.9").unwrap()[1],
            network
        );
        assert!(block_keys(SECRET, "nope").is_err());
    }

    #[test]
    fn block_targets_name_addresses_and_the_allowed_prefixes() {
        for (given, canonical) in [
            ("203.0.113.7", "ipv4:203.0.113.7"),
            ("203.0.113.0/24", "ipv4:203.0.113.0/24"),
            ("2001:db8:1:2::1", "ipv6:2001:db8:1:2::/64"),
            ("2001:db8:1:2::/64", "ipv6:2001:db8:1:2::/64"),
            ("2001:db8:1::/48", "ipv6:2001:db8:1::/48"),
            ("::ffff:203.0.113.7", "ipv4:203.0.113.7"),
        ] {
            assert_eq!(
                parse_block_target(given).as_deref(),
                Ok(canonical),
                "{given}"
            );
        }
        for bad in [
            "",
            "example.com",
            "203.0.113.0/16",
            "203.0.113.5/24",
            "2001:db8::/32",
            "2001:db8:1:2::1/64",
            "203.0.113.0/x",
            "::ffff:203.0.113.0/24",
        ] {
            assert!(parse_block_target(bad).is_err(), "{bad}");
        }
        // A prefix block is keyed as the ingress keys the network of an address in it.
        let target = parse_block_target("203.0.113.0/24").unwrap();
        assert_eq!(
            keyed(SECRET, &target),
            block_keys(SECRET, "203.0.113.99").unwrap()[1]
        );
        let target = parse_block_target("2001:db8:1:2::/64").unwrap();
        assert_eq!(
            keyed(SECRET, &target),
            block_keys(SECRET, "2001:db8:1:2::77").unwrap()[0]
        );
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
