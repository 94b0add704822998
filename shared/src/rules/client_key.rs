//! The client key: who a quota belongs to, without storing who they are.
//!
//! IPv4 clients are keyed per address, IPv6 clients per /64 prefix (one
//! subscriber usually holds a whole /64), and an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) counts as its IPv4 address. The key is
//! HMAC-SHA256(`CLIENT_KEY_SECRET`, canonical prefix) in hex: stable for a
//! client, useless for recovering the address without the secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv6Addr};

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

/// The unit a quota counts: one IPv4 address or one IPv6 /64.
pub fn canonical_client(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => format!("ipv4:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ipv4:{v4}"),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("ipv6:{prefix}/64")
            }
        },
    }
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
    match address {
        IpAddr::V4(v4) => network_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_v4(v4),
            None => {
                let s = v6.segments();
                let prefix = Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("ipv6:{prefix}/48")
            }
        },
    }
}

fn network_v4(v4: std::net::Ipv4Addr) -> String {
    let [a, b, c, _] = v4.octets();
    format!("ipv4:{a}.{b}.{c}.0/24")
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
