//! Network groups: named sets of address ranges (a cloud provider's
//! published ranges, or any list of networks) that share one quota level
//! (`group:NAME=N` in `NETWORK_QUOTA_LIMITS`), so an attacker renting cloud
//! addresses shares one quota with everyone in that cloud (pure: parsing,
//! merging, the stored form, and the matcher the ingress asks).
//!
//! - [`parse_ranges`] reads AWS's `ip-ranges.json`, Google's `cloud.json`,
//!   Oracle's `public_ip_ranges.json`, or one network a line.
//! - [`Ranges`] are merged, disjoint, sorted: IPv4 as address intervals,
//!   IPv6 as intervals of /64 prefixes (the unit an IPv6 client is; a
//!   narrower range counts as its whole /64).
//! - [`Matcher`] answers which groups an address is in by one binary
//!   search over the groups' ranges together.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// How a group is named as a quota level; defined beside the levels.
pub use crate::rules::quota::{is_valid_group_name, GROUP_PREFIX, MAX_GROUPS};
/// The largest file `networks import` reads.
pub const MAX_FILE_BYTES: usize = 32 * 1024 * 1024;
/// The most networks one group holds (AWS publishes about 10,000).
pub const MAX_PREFIXES: usize = 200_000;
/// The widest network a group may hold: an IPv4 /8, an IPv6 /16. Wider is
/// a mistake (or an attack on the quota of everyone).
pub const WIDEST_V4: u8 = 8;
pub const WIDEST_V6: u8 = 16;

/// Which published shape a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"prefixes": [{"ip_prefix": …}], "ipv6_prefixes": [{"ipv6_prefix": …}]}`
    Aws,
    /// `{"prefixes": [{"ipv4Prefix": …} | {"ipv6Prefix": …}]}`
    Google,
    /// `{"regions": [{"cidrs": [{"cidr": …}]}]}`
    Oracle,
    /// One network (or address) a line; `#` starts a comment.
    CidrList,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aws => "aws-ip-ranges",
            Self::Google => "google-cloud",
            Self::Oracle => "oracle-public-ip-ranges",
            Self::CidrList => "cidr-list",
        }
    }
}

/// Why a file is not a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("{0} bytes is more than a group file may have ({MAX_FILE_BYTES})")]
    TooLarge(usize),
    #[error("more than {MAX_PREFIXES} networks")]
    TooMany,
    #[error("no network in it")]
    Empty,
    #[error("{0}")]
    Shape(String),
    #[error("{what} {text:?}: {reason}")]
    Network {
        what: String,
        text: String,
        reason: String,
    },
}

/// One network: its family's start and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    V4(u32, u8),
    V6(u128, u8),
}

/// Reads `192.0.2.0/24`, `2001:db8::/32`, or a bare address.
pub fn parse_network(text: &str) -> Result<Network, String> {
    let text = text.trim();
    let (address, length) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let address: IpAddr = address
        .parse()
        .map_err(|_| "not an IP address or network".to_string())?;
    let length = |max: u8| -> Result<u8, String> {
        let bad = || format!("the prefix length is not 0 to {max}");
        match length {
            None => Ok(max),
            Some(l) if (1..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()) => {
                l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(bad)
            }
            Some(_) => Err(bad()),
        }
    };
    match address {
        IpAddr::V4(v4) => {
            let l = length(32)?;
            if l < WIDEST_V4 {
                return Err(format!(
                    "wider than /{WIDEST_V4}: a group never holds that much"
                ));
            }
            let bits = u32::from(v4);
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            Ok(Network::V4(bits & mask, l))
        }
        IpAddr::V6(v6) => {
            let l = length(128)?;
            if l < WIDEST_V6 {
                return Err(format!(
                    "wider than /{WIDEST_V6}: a group never holds that much"
                ));
            }
            let bits = u128::from(v6);
            let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            Ok(Network::V6(bits & mask, l))
        }
    }
}

/// A group's networks, merged: disjoint, sorted, adjacent ones joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ranges {
    /// IPv4 address intervals, inclusive.
    pub v4: Vec<(u32, u32)>,
    /// IPv6 /64-prefix intervals (the address's top 64 bits), inclusive.
    pub v6: Vec<(u64, u64)>,
}

fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if next(last.1).is_none_or(|after| start <= after) => {
                last.1 = last.1.max(end);
            }
            _ => merged.push((start, end)),
        }
    }
    merged
}

impl Ranges {
    /// The ranges of `networks`, merged.
    pub fn of(networks: &[Network]) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for network in networks {
            match *network {
                Network::V4(start, l) => {
                    let size = if l == 0 {
                        u32::MAX
                    } else {
                        (1u32 << (32 - l)).wrapping_sub(1)
                    };
                    v4.push((start, start | size));
                }
                Network::V6(start, l) => {
                    let top = (start >> 64) as u64;
                    let size = if l >= 64 { 0 } else { u64::MAX >> l };
                    v6.push((top, top | size));
                }
            }
        }
        Self {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u64| x.checked_add(1)),
        }
    }

    /// How many IPv4 addresses and IPv6 /64s the group covers.
    pub fn coverage(&self) -> (u64, u128) {
        let v4 = self.v4.iter().map(|(s, e)| u64::from(e - s) + 1).sum();
        let v6 = self.v6.iter().map(|(s, e)| u128::from(e - s) + 1).sum();
        (v4, v6)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The stored form: `NG1`, then the IPv4 count and pairs (u32, big
    /// endian), then the IPv6 count and pairs (u64). Split in pieces of at
    /// most `max_bytes` each, every piece a whole stored form.
    pub fn encode(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        let per_piece = max_bytes.saturating_sub(11).max(16);
        let mut pieces = Vec::new();
        let mut piece = Self::default();
        let mut size = 0;
        let flush = |piece: &mut Self, pieces: &mut Vec<Vec<u8>>| {
            if !piece.is_empty() {
                pieces.push(piece.encode_one());
                *piece = Self::default();
            }
        };
        for range in &self.v4 {
            if size + 8 > per_piece {
                flush(&mut piece, &mut pieces);
                size = 0;
            }
            piece.v4.push(*range);
            size += 8;
        }
        for range in &self.v6 {
            if size + 16 > per_piece {
                flush(&mut piece, &mut pieces);
                size = 0;
            }
            piece.v6.push(*range);
            size += 16;
        }
        flush(&mut piece, &mut pieces);
        pieces
    }

    fn encode_one(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(11 + self.v4.len() * 8 + self.v6.len() * 16);
        out.extend_from_slice(b"NG1");
        out.extend_from_slice(&(self.v4.len() as u32).to_be_bytes());
        for (s, e) in &self.v4 {
            out.extend_from_slice(&s.to_be_bytes());
            out.extend_from_slice(&e.to_be_bytes());
        }
        out.extend_from_slice(&(self.v6.len() as u32).to_be_bytes());
        for (s, e) in &self.v6 {
            out.extend_from_slice(&s.to_be_bytes());
            out.extend_from_slice(&e.to_be_bytes());
        }
        out
    }

    /// Reads stored pieces back (merged again: pieces may come in any
    /// order). `None` when a piece is not one.
    pub fn decode(pieces: &[&[u8]]) -> Option<Self> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for piece in pieces {
            let rest = piece.strip_prefix(b"NG1")?;
            let (count, mut rest) = take_u32(rest)?;
            for _ in 0..count {
                let (s, r) = take_u32(rest)?;
                let (e, r) = take_u32(r)?;
                (s <= e).then_some(())?;
                v4.push((s, e));
                rest = r;
            }
            let (count, mut rest) = take_u32(rest)?;
            for _ in 0..count {
                let (s, r) = take_u64(rest)?;
                let (e, r) = take_u64(r)?;
                (s <= e).then_some(())?;
                v6.push((s, e));
                rest = r;
            }
            rest.is_empty().then_some(())?;
        }
        Some(Self {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u64| x.checked_add(1)),
        })
    }
}

fn take_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<4>()?;
    Some((u32::from_be_bytes(*head), rest))
}

fn take_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (head, rest) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*head), rest))
}

/// A file's networks, and which shape it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub format: Format,
    /// How many networks the file listed (before merging).
    pub networks: usize,
    pub ranges: Ranges,
}

/// Reads a group file: one of the published JSON shapes, else one network
/// a line. Every network must be valid; the first bad one is named.
pub fn parse_ranges(bytes: &[u8]) -> Result<Parsed, GroupError> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(GroupError::TooLarge(bytes.len()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| GroupError::Shape(format!("not UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let (format, listed) = if text.trim_start().starts_with('{') {
        json_networks(text)?
    } else {
        (Format::CidrList, cidr_lines(text))
    };
    if listed.len() > MAX_PREFIXES {
        return Err(GroupError::TooMany);
    }
    let mut networks = Vec::with_capacity(listed.len());
    for (what, text) in &listed {
        networks.push(parse_network(text).map_err(|reason| GroupError::Network {
            what: what.clone(),
            text: text.chars().take(80).collect(),
            reason,
        })?);
    }
    if networks.is_empty() {
        return Err(GroupError::Empty);
    }
    Ok(Parsed {
        format,
        networks: networks.len(),
        ranges: Ranges::of(&networks),
    })
}

/// The lines of a CIDR list that name a network, with where they are.
fn cidr_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let line = line.split('#').next().unwrap_or_default().trim();
            (!line.is_empty()).then(|| (format!("line {}", i + 1), line.to_string()))
        })
        .collect()
}

/// The networks of a published JSON file, with where each is.
fn json_networks(text: &str) -> Result<(Format, Vec<(String, String)>), GroupError> {
    use serde_json::Value;
    let value: Value =
        serde_json::from_str(text).map_err(|e| GroupError::Shape(format!("not JSON: {e}")))?;
    let shape = |what: &str| GroupError::Shape(format!("not a published shape: {what}"));
    let field = |item: &Value, name: &str, at: String| -> Result<(String, String), GroupError> {
        let text = item
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| shape(&format!("{at} has no string {name:?}")))?;
        Ok((at, text.to_string()))
    };
    let list = |name: &str| value.get(name).and_then(Value::as_array);
    if let Some(regions) = list("regions") {
        let mut found = Vec::new();
        for (r, region) in regions.iter().enumerate() {
            let cidrs = region
                .get("cidrs")
                .and_then(Value::as_array)
                .ok_or_else(|| shape(&format!("regions[{r}] has no \"cidrs\" list")))?;
            for (c, cidr) in cidrs.iter().enumerate() {
                found.push(field(cidr, "cidr", format!("regions[{r}].cidrs[{c}]"))?);
            }
        }
        return Ok((Format::Oracle, found));
    }
    let prefixes = list("prefixes")
        .ok_or_else(|| shape("no \"prefixes\" (AWS, Google) or \"regions\" (Oracle)"))?;
    let google = prefixes
        .iter()
        .any(|p| p.get("ipv4Prefix").is_some() || p.get("ipv6Prefix").is_some());
    let mut found = Vec::new();
    if google {
        for (i, prefix) in prefixes.iter().enumerate() {
            let name = if prefix.get("ipv6Prefix").is_some() {
                "ipv6Prefix"
            } else {
                "ipv4Prefix"
            };
            found.push(field(prefix, name, format!("prefixes[{i}]"))?);
        }
        return Ok((Format::Google, found));
    }
    for (i, prefix) in prefixes.iter().enumerate() {
        found.push(field(prefix, "ip_prefix", format!("prefixes[{i}]"))?);
    }
    for (i, prefix) in list("ipv6_prefixes").into_iter().flatten().enumerate() {
        found.push(field(prefix, "ipv6_prefix", format!("ipv6_prefixes[{i}]"))?);
    }
    Ok((Format::Aws, found))
}

/// Which groups an address is in: the groups' ranges together, as disjoint
/// intervals each tagged with the groups (a bit each) that hold it.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    names: Vec<String>,
    v4: Vec<(u32, u32, u16)>,
    v6: Vec<(u64, u64, u16)>,
}

/// Disjoint intervals, each with the bits of the sets covering it, from
/// per-set merged intervals (`end` inclusive; `T` widened to `W` so the
/// end + 1 of the last address does not overflow).
fn overlay<T: Copy + Ord + Into<u128> + TryFrom<u128>>(
    sets: &[(u16, &[(T, T)])],
) -> Vec<(T, T, u16)> {
    let mut events: Vec<(u128, i8, u16)> = Vec::new();
    for (bit, ranges) in sets {
        for (start, end) in ranges.iter() {
            events.push(((*start).into(), 1, *bit));
            events.push(((*end).into() + 1, -1, *bit));
        }
    }
    events.sort_unstable();
    let mut out: Vec<(T, T, u16)> = Vec::new();
    let mut counts = [0i32; 16];
    let mut mask: u16 = 0;
    let mut at: u128 = 0;
    let mut i = 0;
    while i < events.len() {
        let point = events[i].0;
        if mask != 0 && point > at {
            if let (Ok(s), Ok(e)) = (T::try_from(at), T::try_from(point - 1)) {
                match out.last_mut() {
                    Some(last) if last.2 == mask && last.1.into() + 1 == at => last.1 = e,
                    _ => out.push((s, e, mask)),
                }
            }
        }
        while i < events.len() && events[i].0 == point {
            let (_, delta, bit) = events[i];
            let slot = usize::from(bit.trailing_zeros() as u8);
            counts[slot] += i32::from(delta);
            if counts[slot] > 0 {
                mask |= bit;
            } else {
                mask &= !bit;
            }
            i += 1;
        }
        at = point;
    }
    out
}

impl Matcher {
    /// The matcher of `groups` (at most [`MAX_GROUPS`]; more are ignored).
    pub fn new(groups: &BTreeMap<String, Ranges>) -> Self {
        let groups: Vec<(&String, &Ranges)> = groups.iter().take(MAX_GROUPS).collect();
        let v4: Vec<(u16, &[(u32, u32)])> = groups
            .iter()
            .enumerate()
            .map(|(i, (_, r))| (1u16 << i, r.v4.as_slice()))
            .collect();
        let v6: Vec<(u16, &[(u64, u64)])> = groups
            .iter()
            .enumerate()
            .map(|(i, (_, r))| (1u16 << i, r.v6.as_slice()))
            .collect();
        Self {
            names: groups.iter().map(|(n, _)| (*n).clone()).collect(),
            v4: overlay(&v4),
            v6: overlay(&v6),
        }
    }

    fn find<T: Ord + Copy>(intervals: &[(T, T, u16)], x: T) -> u16 {
        let i = intervals.partition_point(|(_, end, _)| *end < x);
        match intervals.get(i) {
            Some((start, _, mask)) if *start <= x => *mask,
            _ => 0,
        }
    }

    /// The groups `address` is in, by name (an IPv4-mapped IPv6 address
    /// as its IPv4 address).
    pub fn groups_of(&self, address: IpAddr) -> Vec<&str> {
        let mask = match crate::rules::client_key::effective_address(address) {
            IpAddr::V4(v4) => Self::find(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => Self::find(&self.v6, (u128::from(v6) >> 64) as u64),
        };
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn group(text: &str) -> Ranges {
        parse_ranges(text.as_bytes()).unwrap().ranges
    }

    #[test]
    fn each_published_shape_is_read() {
        let aws = r#"{"syncToken": "1", "createDate": "2026-12-01-00-00-00",
            "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON", "network_border_group": "ap-northeast-2"}],
            "ipv6_prefixes": [{"ipv6_prefix": "2600:1f14::/35", "region": "us-west-2", "service": "EC2", "network_border_group": "us-west-2"}]}"#;
        let parsed = parse_ranges(aws.as_bytes()).unwrap();
        assert_eq!((parsed.format, parsed.networks), (Format::Aws, 2));
        assert_eq!(parsed.ranges.v4, [(0x0305_8C00, 0x0305_8FFF)]);
        let google = r#"{"syncToken": "1", "creationTime": "2026-12-01T00:00:00",
            "prefixes": [{"ipv4Prefix": "34.1.208.0/20", "service": "Google Cloud", "scope": "africa-south1"},
                         {"ipv6Prefix": "2600:1900:8000::/44", "service": "Google Cloud", "scope": "africa-south1"}]}"#;
        let parsed = parse_ranges(google.as_bytes()).unwrap();
        assert_eq!((parsed.format, parsed.networks), (Format::Google, 2));
        assert_eq!(parsed.ranges.v6.len(), 1);
        let oracle = r#"{"last_updated_timestamp": "2026-12-01T00:00:00.000000",
            "regions": [{"region": "us-phoenix-1", "cidrs": [{"cidr": "129.146.0.0/21", "tags": ["OCI"]},
                                                             {"cidr": "129.146.8.0/22", "tags": ["OCI"]}]}]}"#;
        let parsed = parse_ranges(oracle.as_bytes()).unwrap();
        assert_eq!((parsed.format, parsed.networks), (Format::Oracle, 2));
        // Adjacent networks are one range.
        assert_eq!(parsed.ranges.v4, [(0x8192_0000, 0x8192_0BFF)]);
        let list = "# our partners\n198.51.100.0/24\n\n203.0.113.7  # one address\n2001:db8::/32\n";
        let parsed = parse_ranges(list.as_bytes()).unwrap();
        assert_eq!((parsed.format, parsed.networks), (Format::CidrList, 3));
        assert_eq!(parsed.ranges.coverage(), (257, 1 << 32));
    }

    #[test]
    fn bad_files_and_networks_are_named() {
        for (text, says) in [
            ("10.0.0.0/33", "line 1"),
            ("ok\n", "not an IP address"),
            ("192.0.2.0/24\n0.0.0.0/0\n", "line 2"),
            ("::/0", "wider than /16"),
            ("2001:db8::/15", "wider than /16"),
            ("1.2.3.0/+24", "prefix length"),
            ("1.2.3.0/0024", "prefix length"),
            ("1.2.3.0/", "prefix length"),
            ("1.2.3.4/24/1", "prefix length"),
            ("[2001:db8::1]", "not an IP address"),
            ("fe80::1%eth0", "not an IP address"),
            (
                "{\"prefixes\": [{\"ip_prefix\": 7}]}",
                "prefixes[0] has no string \"ip_prefix\"",
            ),
            (
                "{\"regions\": [{\"cidr\": []}]}",
                "regions[0] has no \"cidrs\"",
            ),
            ("{\"nothing\": 1}", "no \"prefixes\""),
            ("{not json", "not JSON"),
            ("# nothing\n\n", "no network"),
        ] {
            let error = parse_ranges(text.as_bytes()).unwrap_err().to_string();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert!(matches!(
            parse_ranges(&vec![b'#'; MAX_FILE_BYTES + 1]),
            Err(GroupError::TooLarge(_))
        ));
        assert!(matches!(
            parse_ranges(&[0xff, 0xfe]),
            Err(GroupError::Shape(_))
        ));
        let many: String = (0..=MAX_PREFIXES)
            .map(|i| format!("10.{}.{}.0/24\n", i / 256 % 256, i % 256))
            .collect();
        assert_eq!(parse_ranges(many.as_bytes()), Err(GroupError::TooMany));
    }

    #[test]
    fn the_matcher_names_every_group_an_address_is_in() {
        let groups = BTreeMap::from([
            ("aws".to_string(), group("3.5.140.0/22\n2600:1f14::/35\n")),
            (
                "partners".to_string(),
                group("3.5.142.0/24\n198.51.100.7\n"),
            ),
            ("empty-v6".to_string(), group("192.0.2.0/24")),
        ]);
        let matcher = Matcher::new(&groups);
        assert_eq!(matcher.groups_of(ip("3.5.140.0")), ["aws"]);
        assert_eq!(matcher.groups_of(ip("3.5.142.9")), ["aws", "partners"]);
        assert_eq!(matcher.groups_of(ip("3.5.143.255")), ["aws"]);
        assert!(matcher.groups_of(ip("3.5.144.0")).is_empty());
        assert!(matcher.groups_of(ip("3.5.139.255")).is_empty());
        assert_eq!(matcher.groups_of(ip("198.51.100.7")), ["partners"]);
        assert!(matcher.groups_of(ip("198.51.100.8")).is_empty());
        // IPv4-mapped IPv6 is its IPv4 address.
        assert_eq!(matcher.groups_of(ip("::ffff:198.51.100.7")), ["partners"]);
        assert_eq!(
            matcher.groups_of(ip("2002:c633:6407::1")),
            ["partners"],
            "6to4"
        );
        assert_eq!(matcher.groups_of(ip("2600:1f14:1234::1")), ["aws"]);
        assert!(matcher.groups_of(ip("2600:1f15::1")).is_empty());
        assert!(matcher.groups_of(ip("0.0.0.0")).is_empty());
        assert!(matcher.groups_of(ip("255.255.255.255")).is_empty());
        // A range narrower than /64 is its whole /64: the unit a client is.
        let narrow = Matcher::new(&BTreeMap::from([(
            "one".to_string(),
            group("2001:db8:1:2::5/128"),
        )]));
        assert_eq!(narrow.groups_of(ip("2001:db8:1:2:ffff::1")), ["one"]);
        assert!(narrow.groups_of(ip("2001:db8:1:3::5")).is_empty());
        // The ends of the address space.
        let ends = Matcher::new(&BTreeMap::from([(
            "ends".to_string(),
            group("255.0.0.0/8\nffff::/16"),
        )]));
        assert_eq!(ends.groups_of(ip("255.255.255.255")), ["ends"]);
        assert_eq!(
            ends.groups_of(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            ["ends"]
        );
    }

    #[test]
    fn the_stored_form_reads_back_in_pieces_of_any_size() {
        let ranges =
            group("10.0.0.0/24\n10.0.2.0/24\n172.16.0.0/12\n2001:db8::/32\n2001:db9::/48\n");
        for max in [0, 20, 40, 100, 400_000] {
            let pieces = ranges.encode(max);
            assert!(!pieces.is_empty());
            let refs: Vec<&[u8]> = pieces.iter().rev().map(Vec::as_slice).collect();
            assert_eq!(Ranges::decode(&refs), Some(ranges.clone()), "{max}");
        }
        assert_eq!(Ranges::decode(&[b"NG1\0\0\0\x01"]), None);
        assert_eq!(Ranges::decode(&[b"XX"]), None);
        // An end before its start is not a range.
        let mut bad = b"NG1\0\0\0\x01".to_vec();
        bad.extend_from_slice(&5u32.to_be_bytes());
        bad.extend_from_slice(&4u32.to_be_bytes());
        bad.extend_from_slice(&0u32.to_be_bytes());
        assert_eq!(Ranges::decode(&[&bad]), None);
    }

    #[test]
    fn group_names_are_checked() {
        for good in ["aws", "google-cloud", "a", "0ci", &"x".repeat(32)] {
            assert!(is_valid_group_name(good), "{good}");
        }
        for bad in [
            "",
            "-aws",
            "AWS",
            "aws_ec2",
            "a:b",
            &"x".repeat(33),
            "aws\n",
        ] {
            assert!(!is_valid_group_name(bad), "{bad:?}");
        }
    }

    fn network() -> impl Strategy<Value = Network> {
        prop_oneof![
            (any::<u32>(), 8u8..=32).prop_map(|(a, l)| {
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                Network::V4(a & mask, l)
            }),
            (any::<u128>(), 16u8..=128).prop_map(|(a, l)| {
                let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
                Network::V6(a & mask, l)
            }),
        ]
    }

    fn naive(networks: &[Network], address: IpAddr) -> bool {
        networks.iter().any(|n| match (*n, address) {
            (Network::V4(start, l), IpAddr::V4(a)) => {
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                u32::from(a) & mask == start
            }
            (Network::V6(start, l), IpAddr::V6(a)) => {
                // At /64 granularity: a narrower network is its /64.
                let l = l.min(64);
                let mask = if l == 0 { 0 } else { u128::MAX << (128 - l) };
                u128::from(a) & mask == start & mask
            }
            _ => false,
        })
    }

    proptest! {
        /// The matcher agrees with checking every network of every group,
        /// for addresses inside, at the edges of and outside the networks.
        #[test]
        fn the_matcher_agrees_with_every_network_checked_one_by_one(
            sets in proptest::collection::vec(proptest::collection::vec(network(), 1..20), 1..5),
            probes in proptest::collection::vec((any::<u32>(), any::<u128>()), 0..40),
        ) {
            let groups: BTreeMap<String, Ranges> = sets
                .iter()
                .enumerate()
                .map(|(i, networks)| (format!("g{i}"), Ranges::of(networks)))
                .collect();
            let matcher = Matcher::new(&groups);
            let mut addresses: Vec<IpAddr> = probes
                .iter()
                .flat_map(|(a, b)| [IpAddr::from(a.to_be_bytes()), IpAddr::from(b.to_be_bytes())])
                .collect();
            for networks in &sets {
                for n in networks {
                    match *n {
                        Network::V4(s, l) => {
                            let size = if l == 0 { u32::MAX } else { (1u32 << (32 - l)).wrapping_sub(1) };
                            for a in [s.wrapping_sub(1), s, s | size, (s | size).wrapping_add(1)] {
                                addresses.push(IpAddr::from(a.to_be_bytes()));
                            }
                        }
                        Network::V6(s, _) => {
                            for a in [s.wrapping_sub(1), s, s.wrapping_add(u128::from(u64::MAX) + 1)] {
                                addresses.push(IpAddr::from(a.to_be_bytes()));
                            }
                        }
                    }
                }
            }
            for address in addresses {
                // An IPv6 form carrying an IPv4 address (mapped, 6to4,
                // NAT64, Teredo) is that address: checked as such above.
                if crate::rules::client_key::effective_address(address) != address {
                    continue;
                }
                let found = matcher.groups_of(address);
                for (i, networks) in sets.iter().enumerate() {
                    let name = format!("g{i}");
                    prop_assert_eq!(
                        found.contains(&name.as_str()),
                        naive(networks, address),
                        "{} in {}", address, name
                    );
                }
            }
        }

        /// The stored form of any ranges reads back the same; arbitrary
        /// bytes never read as anything but `None` or valid ranges.
        #[test]
        fn the_stored_form_round_trips_and_garbage_never_panics(
            networks in proptest::collection::vec(network(), 0..60),
            max in 0usize..600,
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let ranges = Ranges::of(&networks);
            let pieces = ranges.encode(max);
            let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(Ranges::decode(&refs), Some(ranges));
            let mut prefixed = b"NG1".to_vec();
            prefixed.extend_from_slice(&garbage);
            for bytes in [garbage.as_slice(), prefixed.as_slice()] {
                if let Some(read) = Ranges::decode(&[bytes]) {
                    prop_assert!(read.v4.windows(2).all(|w| w[0].1 < w[1].0));
                }
            }
        }

        /// Any text is a group file or a named refusal, never a panic.
        #[test]
        fn any_text_is_read_or_refused(text in ".{0,400}") {
            let _ = parse_ranges(text.as_bytes());
        }
    }
}
