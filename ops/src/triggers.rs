//! `trigger-ops triggers`: the ledger, newest first, and one trigger with its
//! run and the triggers coalesced with it. Read through the table's indexes
//! (`by_day`, `by_run`): never a scan.

use crate::error::OpsError;
use serde::Serialize;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::runs::RunRecord;
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::rfc3339;
use shared::rules::trigger::{TriggerRecord, TriggerView};
use std::collections::HashMap;
use std::time::Duration;

/// Records read at most to find `--limit` of one `--status`.
const MAX_READ_FOR_STATUS: usize = 5_000;

/// One line of `triggers list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub view: TriggerView,
    /// The CodePipeline it maps to.
    pub target: String,
    /// The first 12 hex digits of the client key.
    pub client_key: String,
}

/// `triggers show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    pub trigger: Listed,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    pub run: Option<RunShown>,
    /// The other triggers of its run, oldest first.
    pub coalesced_with: Vec<Listed>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunShown {
    pub run_id: String,
    pub status: TriggerStatus,
    pub triggers: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    pub opened_at: String,
    pub updated_at: String,
}

fn store_error(e: shared::aws::table::StoreError) -> OpsError {
    OpsError::Store(e.to_string())
}

/// Runs read once each.
struct Runs<'a> {
    table: &'a Table,
    seen: HashMap<String, Option<RunRecord>>,
}

impl Runs<'_> {
    async fn listed(&mut self, record: &TriggerRecord) -> Result<Listed, OpsError> {
        let run = match &record.run_id {
            None => None,
            Some(id) => {
                if !self.seen.contains_key(id) {
                    let run = self.table.runs().get(id).await.map_err(store_error)?;
                    self.seen.insert(id.clone(), run);
                }
                self.seen[id].clone()
            }
        };
        Ok(Listed {
            view: record.view(
                run.as_ref(),
                None,
                shared::clock::Clock::now_ms(&shared::clock::SystemClock),
            ),
            target: record.target.clone(),
            client_key: record.client_key.prefix().to_string(),
        })
    }
}

/// What `triggers list` asks for.
#[derive(Debug, Clone)]
pub struct ListFilter {
    pub since: Duration,
    /// A public name or a CodePipeline name.
    pub pipeline: Option<String>,
    pub status: Option<TriggerStatus>,
    pub limit: usize,
}

pub async fn list(
    table: &Table,
    filter: &ListFilter,
    now: EpochMillis,
) -> Result<Vec<Listed>, OpsError> {
    let since = now.saturating_sub(u64::try_from(filter.since.as_millis()).unwrap_or(u64::MAX));
    let pipeline = filter.pipeline.clone();
    let keep = move |r: &TriggerRecord| {
        pipeline
            .as_ref()
            .is_none_or(|p| *p == r.pipeline || *p == r.target)
    };
    // A status is the run's once the trigger has one: read more, then filter.
    let read = match filter.status {
        None => filter.limit,
        Some(_) => MAX_READ_FOR_STATUS.max(filter.limit),
    };
    let records = table
        .ledger()
        .since(since, now, read, &keep)
        .await
        .map_err(store_error)?;
    let mut runs = Runs {
        table,
        seen: HashMap::new(),
    };
    let mut listed = Vec::new();
    for record in &records {
        let line = runs.listed(record).await?;
        if filter.status.is_none_or(|s| s == line.view.status) {
            listed.push(line);
            if listed.len() >= filter.limit {
                break;
            }
        }
    }
    Ok(listed)
}

pub async fn show(table: &Table, id: &str, now: EpochMillis) -> Result<Shown, OpsError> {
    let id =
        shared::rules::trigger::canonical_trigger_id(id).ok_or_else(|| OpsError::BadSetting {
            what: "ID",
            reason: format!("{id:?} is not a trigger id"),
        })?;
    let record = table
        .triggers()
        .get(&id, now)
        .await
        .map_err(store_error)?
        .ok_or_else(|| OpsError::NotFound(format!("no trigger {id} (unknown, or expired)")))?;
    let mut runs = Runs {
        table,
        seen: HashMap::new(),
    };
    let trigger = runs.listed(&record).await?;
    let (run, coalesced_with) = match &record.run_id {
        None => (None, Vec::new()),
        Some(run_id) => {
            let run = runs.seen.get(run_id).cloned().flatten();
            let mut others = Vec::new();
            for member in table
                .ledger()
                .of_run(run_id, now)
                .await
                .map_err(store_error)?
            {
                if member.trigger_id != record.trigger_id {
                    others.push(runs.listed(&member).await?);
                }
            }
            (
                run.map(|run| RunShown {
                    run_id: run.run_id,
                    status: run.status.trigger_status(),
                    triggers: run.triggers,
                    execution_id: run.execution_id,
                    opened_at: rfc3339(run.requested_at),
                    updated_at: rfc3339(run.updated_at),
                }),
                others,
            )
        }
    };
    Ok(Shown {
        trigger,
        error_code: record.error_code.clone(),
        error_message: record.error_message.clone(),
        run,
        coalesced_with,
    })
}
