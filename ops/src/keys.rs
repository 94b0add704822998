//! `trigger-ops keys`: trigger keys for the people and bots the operators
//! trust (the keyed lane). A key is made from 160 random bits of the
//! operating system's generator and shown once; the table keeps its
//! SHA-256 only.

use crate::cli::KeysCommand;
use crate::error::OpsError;
use crate::report::{self, age};
use shared::aws::table::keys::KeyEntry;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::keys::{
    is_valid_key_name, key_from_bytes, key_hash, KeyRecord, DEFAULT_KEY_QUOTA, DEFAULT_OVERLAP,
};
use shared::rules::time_format::rfc3339 as when;

/// A new key: 20 random bytes (160 bits), `ptk_` and 32 base32 characters.
fn new_key() -> Result<String, OpsError> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes)
        .map_err(|e| OpsError::Local(format!("no random bytes from the system: {e}")))?;
    Ok(key_from_bytes(&bytes))
}

fn store_error(e: shared::aws::table::StoreError) -> OpsError {
    OpsError::Store(e.to_string())
}

fn check_name(name: &str) -> Result<(), OpsError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(OpsError::BadSetting {
            what: "NAME",
            reason: format!(
                "{:?} is not a key name: 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit",
                name.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// Runs one `keys` command; its output, as text or JSON.
pub async fn run(
    command: &KeysCommand,
    json: bool,
    table: &Table,
    now: EpochMillis,
) -> Result<String, OpsError> {
    match command {
        KeysCommand::Create {
            name,
            pipelines,
            quota,
        } => {
            check_name(name)?;
            if let Some(bad) = pipelines
                .iter()
                .find(|p| !shared::rules::pipelines::is_valid_pipeline_name(p))
            {
                return Err(OpsError::BadSetting {
                    what: "--pipeline",
                    reason: format!("{bad:?} is not a public pipeline name"),
                });
            }
            let key = new_key()?;
            let record = KeyRecord {
                name: name.clone(),
                hash: key_hash(&key),
                pipelines: pipelines.clone(),
                quota: quota.unwrap_or(DEFAULT_KEY_QUOTA),
                created_at: now,
                revoked_at: None,
                valid_until: None,
            };
            if !table.keys().create(&record).await.map_err(store_error)? {
                return Err(OpsError::Refused(format!(
                    "a key named {name} exists: rotate it (keys rotate {name}) or revoke it first"
                )));
            }
            Ok(shown(json, &record, &key, None, table.name()))
        }
        KeysCommand::Rotate { name, overlap } => {
            check_name(name)?;
            let key = new_key()?;
            let overlap = overlap.unwrap_or(DEFAULT_OVERLAP);
            let until = now.saturating_add(u64::try_from(overlap.as_millis()).unwrap_or(u64::MAX));
            let record = table
                .keys()
                .rotate(name, &key_hash(&key), until, now)
                .await
                .map_err(store_error)?
                .ok_or_else(|| {
                    OpsError::NotFound(format!("no key named {name} (or it was revoked)"))
                })?;
            Ok(shown(json, &record, &key, Some(until), table.name()))
        }
        KeysCommand::Revoke { name } => {
            check_name(name)?;
            if !table.keys().revoke(name, now).await.map_err(store_error)? {
                return Err(OpsError::NotFound(format!("no key named {name}")));
            }
            Ok(report::answer(
                json,
                serde_json::json!({"name": name, "revoked": true}),
                || {
                    format!(
                    "revoked {name} on table {}: refused from now on (a warm ingress answers its 401 from memory at most REFUSAL_MEMORY later; no trigger of it is accepted after now)\n",
                    table.name()
                )
                },
            ))
        }
        KeysCommand::List => {
            let keys = table.keys().list().await.map_err(store_error)?;
            Ok(report::answer(
                json,
                serde_json::json!({"keys": keys.iter().map(|k| entry_json(k, now)).collect::<Vec<_>>()}),
                || list_text(&keys, now),
            ))
        }
    }
}

/// A key just made: the only time it is shown.
fn shown(
    json: bool,
    record: &KeyRecord,
    key: &str,
    old_until: Option<EpochMillis>,
    table: &str,
) -> String {
    if json {
        let mut shown = serde_json::json!({"name": record.name, "key": key});
        if let Some(until) = old_until {
            shown["previous_valid_until"] = serde_json::json!(when(until));
        }
        return shown.to_string();
    }
    let pipelines = if record.pipelines.is_empty() {
        "every pipeline".to_string()
    } else {
        record.pipelines.join(", ")
    };
    let mut text = format!(
        "key {} on table {table} ({pipelines}; {} per {}); shown once, only its SHA-256 is kept:\n{key}\n",
        record.name,
        record.quota.limit,
        humantime::format_duration(record.quota.window)
    );
    if let Some(until) = old_until {
        text.push_str(&format!(
            "the key it replaces works until {}\n",
            when(until)
        ));
    }
    text
}

/// What state a key is in.
fn state(entry: &KeyEntry, now: EpochMillis) -> &'static str {
    match (entry.record.revoked_at, entry.previous_valid_until) {
        (Some(_), _) => "revoked",
        (None, Some(until)) if until > now => "rotating",
        _ => "active",
    }
}

fn entry_json(entry: &KeyEntry, now: EpochMillis) -> serde_json::Value {
    let record = &entry.record;
    serde_json::json!({
        "name": record.name,
        "pipelines": record.pipelines,
        "quota": {"limit": record.quota.limit, "window_seconds": record.quota.window.as_secs()},
        "created_at": when(record.created_at),
        "last_used_at": entry.last_used_at.map(when),
        "uses": entry.uses,
        "state": state(entry, now),
        "previous_valid_until": entry.previous_valid_until.filter(|u| *u > now).map(when),
    })
}

fn list_text(keys: &[KeyEntry], now: EpochMillis) -> String {
    if keys.is_empty() {
        return "no trigger keys (trigger-ops keys create NAME)\n".into();
    }
    let mut text = format!(
        "{:<24} {:<8} {:<20} {:<10} {:<12} {:<12} {:>6}\n",
        "NAME", "STATE", "PIPELINES", "QUOTA", "CREATED", "LAST USED", "USES"
    );
    for entry in keys {
        let record = &entry.record;
        let pipelines = if record.pipelines.is_empty() {
            "(every one)".to_string()
        } else {
            record.pipelines.join(",")
        };
        text.push_str(&format!(
            "{:<24} {:<8} {:<20} {:<10} {:<12} {:<12} {:>6}\n",
            record.name,
            state(entry, now),
            pipelines,
            format!(
                "{}/{}",
                record.quota.limit,
                humantime::format_duration(record.quota.window)
            ),
            format!(
                "{} ago",
                age(Some(now.saturating_sub(record.created_at) / 1000))
            ),
            entry
                .last_used_at
                .map(|at| format!("{} ago", age(Some(now.saturating_sub(at) / 1000))))
                .unwrap_or_else(|| "never".into()),
            entry.uses,
        ));
    }
    text
}
