//! Network groups of the sizes the cloud providers publish (AWS about
//! 10,000 networks, Google and Oracle about a thousand each), drawn from a
//! fixed seed: what the benchmarks match addresses against and load.

use shared::rules::network_groups::{Network, Ranges};
use std::collections::BTreeMap;

/// `aws` (7,500 IPv4 and 2,500 IPv6 networks), `gcp` (700 and 200) and
/// `oracle` (1,000 IPv4), each merged; `extra` networks go into `aws`.
pub fn cloud_sized_groups(extra: &[Network]) -> BTreeMap<String, Ranges> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut groups = BTreeMap::new();
    for (name, v4, v6) in [
        ("aws", 7_500, 2_500),
        ("gcp", 700, 200),
        ("oracle", 1_000, 0),
    ] {
        let mut networks: Vec<Network> = if name == "aws" {
            extra.to_vec()
        } else {
            Vec::new()
        };
        for _ in 0..v4 {
            let length = 16 + (next() % 13) as u8;
            let mask = u32::MAX << (32 - length);
            networks.push(Network::V4(next() as u32 & mask, length));
        }
        for _ in 0..v6 {
            let length = 32 + (next() % 33) as u8;
            let mask = u128::MAX << (128 - length);
            networks.push(Network::V6(((next() as u128) << 64) & mask, length));
        }
        groups.insert(name.to_string(), Ranges::of(&networks));
    }
    groups
}
