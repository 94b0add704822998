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
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(canonical_client(address).as_bytes());
    Ok(ClientKey(hex::encode(mac.finalize().into_bytes())))
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
