//! Trigger keys: the keyed lane (docs/reference/http-api.md, "Keyed
//! triggers"). People and bots the operators trust hold a key; a trigger
//! with `Authorization: Bearer ptk_…` is charged against the key's own quota,
//! may use the pipeline's reserved slots, and starts before anonymous runs.
//!
//! A key is `ptk_` and at least 26 base32 characters (130 random bits and
//! more); the table keeps only its SHA-256, so no secret is needed to look
//! one up and a leaked table leaks no key.

use super::quota::QuotaPolicy;
use crate::clock::EpochMillis;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

/// What every key starts with.
pub const KEY_PREFIX: &str = "ptk_";
/// The fewest base32 characters after the prefix (130 bits).
pub const MIN_KEY_CHARS: usize = 26;
/// The most a key may have after the prefix (a longer header is not a key).
pub const MAX_KEY_CHARS: usize = 64;

/// A key's quota when `--quota` is not given: 20 per day.
pub const DEFAULT_KEY_QUOTA: QuotaPolicy = QuotaPolicy {
    limit: 20,
    window: Duration::from_secs(86_400),
};

/// How long a rotated key keeps working when `--overlap` is not given.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(86_400);

/// Why a key is refused (401 `invalid-key`: charged nothing anywhere, and
/// never the anonymous lane instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("the Authorization header is not \"Bearer ptk_…\"")]
    Malformed,
    #[error("no such key")]
    Unknown,
    #[error("the key was revoked")]
    Revoked,
    #[error("the key was rotated and its overlap has ended")]
    Expired,
    #[error("the key is not allowed for this pipeline")]
    WrongPipeline,
}

/// A key as a request presents it, checked for shape only.
#[derive(Clone, PartialEq, Eq)]
pub struct PresentedKey(String);

/// Never printed: a key must not reach a log line.
impl std::fmt::Debug for PresentedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresentedKey(…)")
    }
}

impl PresentedKey {
    /// Is `text` a key's shape: the prefix, then 26 to 64 of `a-z2-7`?
    pub fn parse(text: &str) -> Result<Self, KeyRefusal> {
        let body = text.strip_prefix(KEY_PREFIX).ok_or(KeyRefusal::Malformed)?;
        let ok = (MIN_KEY_CHARS..=MAX_KEY_CHARS).contains(&body.len())
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if ok {
            Ok(Self(text.to_string()))
        } else {
            Err(KeyRefusal::Malformed)
        }
    }

    /// The key of an `Authorization` header: `Bearer <key>` (the scheme in
    /// any case, RFC 9110).
    pub fn from_authorization(header: &str) -> Result<Self, KeyRefusal> {
        let (scheme, key) = header.trim().split_once(' ').ok_or(KeyRefusal::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(KeyRefusal::Malformed);
        }
        Self::parse(key.trim())
    }

    /// What the table keeps of it: its SHA-256, 64 hex digits.
    pub fn hash(&self) -> String {
        key_hash(&self.0)
    }
}

/// The SHA-256 of a key, 64 hex digits: all the table ever holds of it.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key from random bytes (at least 17: 130 bits and more): `ptk_` and
/// their base32, lower case.
pub fn key_from_bytes(bytes: &[u8]) -> String {
    assert!(bytes.len() * 8 >= 130, "a key needs at least 130 bits");
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut text = String::from(KEY_PREFIX);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            text.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        text.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    text
}

/// Is `name` a key's name: 1 to 64 of `a-z 0-9 . _ -`, starting with a
/// letter or digit (it shows in statuses, the ledger and `keys list`)?
pub fn is_valid_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

/// One key as the table keeps it (`apikey#<hash>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub name: String,
    /// Its SHA-256.
    pub hash: String,
    /// The public pipelines it may trigger; empty: every one.
    pub pipelines: Vec<String>,
    /// Its own quota (`RateLimit` item `"key"`).
    pub quota: QuotaPolicy,
    pub created_at: EpochMillis,
    /// Refused from then on.
    pub revoked_at: Option<EpochMillis>,
    /// A rotated key works until then (the overlap).
    pub valid_until: Option<EpochMillis>,
}

impl KeyRecord {
    /// May this key trigger `public` at `now`?
    pub fn allows(&self, public: &str, now: EpochMillis) -> Result<(), KeyRefusal> {
        if self.revoked_at.is_some_and(|at| at <= now) {
            return Err(KeyRefusal::Revoked);
        }
        if self.valid_until.is_some_and(|until| until <= now) {
            return Err(KeyRefusal::Expired);
        }
        if !self.pipelines.is_empty() && !self.pipelines.iter().any(|p| p == public) {
            return Err(KeyRefusal::WrongPipeline);
        }
        Ok(())
    }
}

/// A warm instance's memory of the keys it looked up, by hash: a key
/// presented again within `REFUSAL_MEMORY` costs no read, and an unknown or
/// revoked one no AWS call at all. A revocation reaches a warm instance at
/// most that long later for its 401, and never lets a trigger through: the
/// admission checks the key is still good when it commits.
#[derive(Debug)]
pub struct KeyMemory {
    entries: HashMap<String, (Option<KeyRecord>, EpochMillis)>,
    capacity: usize,
    remember_ms: u64,
}

impl KeyMemory {
    /// At most `capacity` keys, each for `remember_ms` (0: none).
    pub fn new(capacity: usize, remember_ms: u64) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            remember_ms,
        }
    }

    /// What was found for `hash` within the memory (`Some(None)`: no such
    /// key), or `None`: not remembered, look it up.
    pub fn recall(&mut self, hash: &str, now: EpochMillis) -> Option<Option<KeyRecord>> {
        match self.entries.get(hash) {
            Some((found, at)) if now.saturating_sub(*at) < self.remember_ms => Some(found.clone()),
            Some(_) => {
                self.entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Remembers what a lookup of `hash` found at `now`.
    pub fn remember(&mut self, hash: &str, found: Option<KeyRecord>, now: EpochMillis) {
        if self.remember_ms == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(hash) {
            let remember_ms = self.remember_ms;
            self.entries
                .retain(|_, (_, at)| now.saturating_sub(*at) < remember_ms);
            if self.entries.len() >= self.capacity {
                // Still full of live entries: a flood of distinct keys; a
                // lookup each is what memory was saving.
                self.entries.clear();
            }
        }
        self.entries.insert(hash.to_string(), (found, now));
    }

    /// Forgets `hash` (the admission found it revoked meanwhile).
    pub fn forget(&mut self, hash: &str) {
        self.entries.remove(hash);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A key's quota as `--quota` writes it: `N/DURATION` (`20/1d`, `100/12h`).
pub fn parse_key_quota(text: &str) -> Result<QuotaPolicy, String> {
    let (limit, window) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not N/DURATION (such as 20/1d)"))?;
    let limit: usize = limit
        .trim()
        .parse()
        .map_err(|_| format!("{limit:?} is not a whole number"))?;
    if !(1..=100).contains(&limit) {
        return Err("a key's quota is 1 to 100 per window".into());
    }
    let window =
        humantime::parse_duration(window.trim()).map_err(|e| format!("{window:?}: {e}"))?;
    if window < Duration::from_secs(1) {
        return Err("a key's window is at least 1s".into());
    }
    Ok(QuotaPolicy { limit, window })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_key_is_the_prefix_and_base32() {
        let key = key_from_bytes(&[0u8; 20]);
        assert_eq!(key, format!("ptk_{}", "a".repeat(32)));
        let key = key_from_bytes(&[0xff; 20]);
        assert_eq!(key, format!("ptk_{}", "7".repeat(32)));
        assert!(PresentedKey::parse(&key).is_ok());
        // 17 bytes, 136 bits: 28 characters.
        assert_eq!(key_from_bytes(&[1; 17]).len(), 4 + 28);
    }

    #[test]
    fn only_a_bearer_key_of_the_right_shape_is_presented() {
        let key = key_from_bytes(&[7; 20]);
        for header in [
            format!("Bearer {key}"),
            format!("bearer {key}"),
            format!("BEARER   {key} "),
        ] {
            assert!(
                PresentedKey::from_authorization(&header).is_ok(),
                "{header}"
            );
        }
        for header in [
            key.clone(),
            format!("Basic {key}"),
            "Bearer ptk_short".into(),
            format!("Bearer {}", key.to_uppercase()),
            format!("Bearer ptk_{}", "a".repeat(65)),
            format!("Bearer xtk_{}", "a".repeat(32)),
            format!("Bearer ptk_{}1", "a".repeat(31)),
            "Bearer ".into(),
            String::new(),
        ] {
            assert_eq!(
                PresentedKey::from_authorization(&header),
                Err(KeyRefusal::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn a_presented_key_never_prints() {
        let key = key_from_bytes(&[9; 20]);
        let presented = PresentedKey::parse(&key).unwrap();
        assert!(!format!("{presented:?}").contains(&key));
        assert_eq!(presented.hash(), key_hash(&key));
        assert_eq!(presented.hash().len(), 64);
    }

    #[test]
    fn a_key_allows_its_pipelines_until_revoked_or_past_its_overlap() {
        let mut record = KeyRecord {
            name: "ci".into(),
            hash: "h".into(),
            pipelines: vec!["app".into()],
            quota: DEFAULT_KEY_QUOTA,
            created_at: 0,
            revoked_at: None,
            valid_until: None,
        };
        assert_eq!(record.allows("app", 10), Ok(()));
        assert_eq!(record.allows("docs", 10), Err(KeyRefusal::WrongPipeline));
        record.valid_until = Some(20);
        assert_eq!(record.allows("app", 19), Ok(()));
        assert_eq!(record.allows("app", 20), Err(KeyRefusal::Expired));
        record.revoked_at = Some(15);
        assert_eq!(record.allows("app", 15), Err(KeyRefusal::Revoked));
        record.pipelines.clear();
        record.revoked_at = None;
        record.valid_until = None;
        assert_eq!(record.allows("anything", 10), Ok(()));
    }

    #[test]
    fn key_names_and_quotas_are_checked() {
        for good in ["ci", "github-actions.deploy_1", "0"] {
            assert!(is_valid_key_name(good), "{good}");
        }
        for bad in ["", "-ci", "CI", "a b", "ä", &"a".repeat(65)] {
            assert!(!is_valid_key_name(bad), "{bad}");
        }
        assert_eq!(
            parse_key_quota("5/12h"),
            Ok(QuotaPolicy {
                limit: 5,
                window: Duration::from_secs(43_200)
            })
        );
        for bad in ["5", "0/1d", "101/1d", "x/1d", "5/soon", "5/0s"] {
            assert!(parse_key_quota(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_remembered_for_a_while_and_memory_stays_bounded() {
        let record = KeyRecord {
            name: "ci".into(),
            hash: "h1".into(),
            pipelines: Vec::new(),
            quota: DEFAULT_KEY_QUOTA,
            created_at: 0,
            revoked_at: None,
            valid_until: None,
        };
        let mut memory = KeyMemory::new(2, 60_000);
        assert_eq!(memory.recall("h1", 0), None);
        memory.remember("h1", Some(record.clone()), 0);
        memory.remember("unknown", None, 0);
        assert_eq!(memory.recall("h1", 59_999), Some(Some(record.clone())));
        assert_eq!(memory.recall("unknown", 59_999), Some(None));
        assert_eq!(
            memory.recall("h1", 60_000),
            None,
            "a minute later: read again"
        );
        memory.remember("h1", Some(record.clone()), 60_000);
        // Full of live entries: a third makes room.
        memory.remember("h3", None, 60_001);
        assert!(memory.len() <= 2);
        memory.forget("h3");
        assert_eq!(memory.recall("h3", 60_002), None);
        let mut off = KeyMemory::new(10, 0);
        off.remember("h1", Some(record), 0);
        assert!(off.is_empty());
    }

    proptest! {
        #[test]
        fn every_generated_key_parses_and_no_other_text_does(
            bytes in proptest::collection::vec(any::<u8>(), 17..40),
            noise in ".{0,80}",
        ) {
            let key = key_from_bytes(&bytes);
            prop_assert!(PresentedKey::parse(&key).is_ok() == (key.len() - 4 <= MAX_KEY_CHARS));
            let parsed = PresentedKey::parse(&noise);
            let shaped = noise.starts_with(KEY_PREFIX)
                && (MIN_KEY_CHARS..=MAX_KEY_CHARS).contains(&(noise.len() - 4))
                && noise[4..].bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
            prop_assert_eq!(parsed.is_ok(), shaped);
        }
    }
}
