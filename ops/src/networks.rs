//! `trigger-ops networks`: network groups — a cloud provider's published
//! address ranges, or any list of networks — each a quota level of its own
//! once `NETWORK_QUOTA_LIMITS` names it (`group:NAME=N`).

use crate::cli::NetworksCommand;
use crate::error::OpsError;
use crate::report::{self, age, table as columns};
use shared::aws::table::network_groups::GroupEntry;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::network_groups::{is_valid_group_name, parse_ranges, Parsed, MAX_FILE_BYTES};
use shared::rules::quota::NetworkLimits;
use shared::rules::time_format::rfc3339;
use std::io::Read;
use std::path::Path;

fn store_error(e: shared::aws::table::StoreError) -> OpsError {
    OpsError::Store(e.to_string())
}

fn check_name(name: &str) -> Result<(), OpsError> {
    if is_valid_group_name(name) {
        Ok(())
    } else {
        Err(OpsError::BadSetting {
            what: "NAME",
            reason: format!(
                "{:?} is not a group name: 1 to 32 of a-z 0-9 -, starting with a letter or digit",
                name.chars().take(80).collect::<String>()
            ),
        })
    }
}

/// Reads and parses a group file, at most [`MAX_FILE_BYTES`] of it.
pub fn read_group_file(path: &Path) -> Result<Parsed, OpsError> {
    let bad = |reason: String| OpsError::BadSetting {
        what: "FILE",
        reason: format!("{}: {reason}", path.display()),
    };
    let file = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    parse_ranges(&bytes).map_err(|e| bad(e.to_string()))
}

/// What the group's level is, as `limits` (this environment's
/// `NETWORK_QUOTA_LIMITS`) say.
fn level_of(name: &str, limits: &NetworkLimits) -> Option<usize> {
    limits
        .groups()
        .iter()
        .find(|g| g.name == name)
        .map(|g| g.limit)
}

fn level_text(name: &str, limits: &NetworkLimits) -> String {
    match level_of(name, limits) {
        Some(limit) => format!("its level: group:{name}={limit} (NETWORK_QUOTA_LIMITS)"),
        None => format!(
            "no level yet: NETWORK_QUOTA_LIMITS here names no group:{name}=N; until the ingress's does (Terraform network_quota_limits), the group shares nothing"
        ),
    }
}

/// Runs one `networks` command; its output, as text or JSON.
pub async fn run(
    command: &NetworksCommand,
    json: bool,
    table: &Table,
    limits: &NetworkLimits,
    now: EpochMillis,
) -> Result<String, OpsError> {
    let groups = table.network_groups();
    match command {
        NetworksCommand::Import { name, file } => {
            import(name, file, json, table, limits, now).await
        }
        NetworksCommand::List => {
            let entries = groups.list().await.map_err(store_error)?;
            if json {
                let listed: Vec<serde_json::Value> = entries
                    .values()
                    .map(|e| {
                        let mut value = serde_json::json!(e);
                        value["imported_at"] = serde_json::json!(rfc3339(e.imported_at));
                        value["level"] = serde_json::json!(level_of(&e.name, limits));
                        value
                    })
                    .collect();
                return Ok(serde_json::json!({ "groups": listed }).to_string());
            }
            Ok(list_text(
                &entries.into_values().collect::<Vec<_>>(),
                limits,
                now,
            ))
        }
        NetworksCommand::Remove { name } => {
            check_name(name)?;
            let removed = groups
                .remove(name)
                .await
                .map_err(store_error)?
                .ok_or_else(|| OpsError::NotFound(format!("no network group named {name}")))?;
            Ok(report::answer(
                json,
                serde_json::json!({"removed": removed.name, "table": table.name()}),
                || {
                    format!(
                    "removed network group {name} ({} networks) from table {}: within a minute its addresses no longer share group:{name}\n",
                    removed.networks,
                    table.name()
                )
                },
            ))
        }
    }
}

/// `networks import NAME FILE`: the group's ranges replaced by the file's.
async fn import(
    name: &str,
    file: &std::path::Path,
    json: bool,
    table: &Table,
    limits: &NetworkLimits,
    now: EpochMillis,
) -> Result<String, OpsError> {
    check_name(name)?;
    let parsed = read_group_file(file)?;
    let source = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (entry, replaced) = table
        .network_groups()
        .import(name, &parsed, &source, now)
        .await
        .map_err(store_error)?;
    let (v4, v6) = parsed.ranges.coverage();
    if json {
        return Ok(serde_json::json!({
            "group": entry,
            "table": table.name(),
            "ipv4_addresses": v4,
            "ipv6_64s": v6.to_string(),
            "replaced": replaced.map(|r| r.version),
            "level": level_of(name, limits),
        })
        .to_string());
    }
    Ok(format!(
        "network group {name} on table {}: {} networks from {source} ({}), merged into {} IPv4 and {} IPv6 ranges ({v4} IPv4 addresses, {v6} IPv6 /64s){}; the ingress uses it within a minute\n{}\n",
        table.name(),
        entry.networks,
        entry.format,
        entry.v4,
        entry.v6,
        match &replaced {
            Some(old) => format!("; it replaces the import of {}", rfc3339(old.imported_at)),
            None => String::new(),
        },
        level_text(name, limits),
    ))
}

fn list_text(entries: &[GroupEntry], limits: &NetworkLimits, now: EpochMillis) -> String {
    if entries.is_empty() {
        return "no network groups (trigger-ops networks import NAME FILE)\n".into();
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.networks.to_string(),
                e.v4.to_string(),
                e.v6.to_string(),
                e.format.clone(),
                format!(
                    "{} ago",
                    age(Some(now.saturating_sub(e.imported_at) / 1000))
                ),
                level_of(&e.name, limits)
                    .map(|l| format!("group:{}={l}", e.name))
                    .unwrap_or_else(|| "none".into()),
                e.source.clone(),
            ]
        })
        .collect();
    columns(
        &[
            "GROUP", "NETWORKS", "IPV4", "IPV6", "FORMAT", "IMPORTED", "LEVEL", "SOURCE",
        ],
        &rows,
    )
}
