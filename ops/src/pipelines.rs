//! `trigger-ops pipelines`: one CodePipeline's lane as operators need it
//! during a flood — the run in progress, the runs waiting in each lane,
//! the last hour's acceptances and refusals, the busiest network keys —
//! and `flush`, which ends the waiting runs of a lane as refused.

use crate::cli::FlushLane;
use crate::clients::{busiest, TopView};
use crate::error::OpsError;
use serde::Serialize;
use shared::aws::table::Table;
use shared::clock::EpochMillis;
use shared::rules::runs::{RunLane, RunRecord};
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::rfc3339;
use shared::rules::trigger::TriggerRecord;
use std::collections::BTreeMap;

/// How far back `show` counts: the last hour.
const LAST_HOUR_MS: u64 = 3_600_000;
/// The most ledger records `show` reads for its hour.
const MAX_READ: usize = 50_000;
/// How many of the busiest keys `show` lists.
const BUSIEST: usize = 5;

fn store_error(e: shared::aws::table::StoreError) -> OpsError {
    OpsError::Store(e.to_string())
}

/// Which pipeline `name` means: its public name (from the outputs'
/// `pipelines`, or the last hour's triggers), or its CodePipeline name.
/// Returns the CodePipeline name and the public names that point at it.
pub fn resolve(
    name: &str,
    known: &BTreeMap<String, String>,
    recent: &[TriggerRecord],
) -> Option<(String, Vec<String>)> {
    let target = known
        .get(name)
        .cloned()
        .or_else(|| known.values().find(|t| *t == name).cloned())
        .or_else(|| {
            recent
                .iter()
                .find(|r| r.pipeline == name || r.target == name)
                .map(|r| r.target.clone())
        })?;
    let mut publics: Vec<String> = known
        .iter()
        .filter(|(_, t)| **t == target)
        .map(|(p, _)| p.clone())
        .chain(
            recent
                .iter()
                .filter(|r| r.target == target)
                .map(|r| r.pipeline.clone()),
        )
        .collect();
    publics.sort();
    publics.dedup();
    Some((target, publics))
}

/// A run in the lane, as `show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct RunShown {
    pub run_id: String,
    /// `anonymous` or `key`.
    pub lane: &'static str,
    pub pipeline: String,
    pub triggers: u64,
    pub opened_at: String,
    pub age_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
}

fn shown(run: &RunRecord, now: EpochMillis) -> RunShown {
    RunShown {
        run_id: run.run_id.clone(),
        lane: run.lane.unwrap_or(RunLane::Anonymous).as_str(),
        pipeline: run.pipeline.clone(),
        triggers: run.triggers,
        opened_at: rfc3339(run.requested_at),
        age_seconds: now.saturating_sub(run.requested_at) / 1000,
        execution_id: run.execution_id.clone(),
    }
}

/// Accepted (a 202) and refused behind the full queue, per lane.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PerLane {
    pub anonymous: usize,
    pub key: usize,
}

impl PerLane {
    fn add(&mut self, record: &TriggerRecord) {
        match record.lane() {
            RunLane::Anonymous => self.anonymous += 1,
            RunLane::Key => self.key += 1,
        }
    }
}

/// `pipelines show`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineShown {
    pub codepipeline: String,
    /// The public names that point at it.
    pub pipelines: Vec<String>,
    pub table: String,
    pub in_progress: Option<RunShown>,
    /// The pending runs in the order they start: keyed first.
    pub pending: Vec<RunShown>,
    pub last_hour: LastHour,
    /// The client and network keys with the most of the hour's anonymous triggers.
    pub busiest: Vec<TopView>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LastHour {
    pub accepted: PerLane,
    /// Refused behind the full queue (charged nothing).
    pub refused: PerLane,
}

/// The last hour's triggers (every pipeline), newest first.
pub async fn last_hour(table: &Table, now: EpochMillis) -> Result<Vec<TriggerRecord>, OpsError> {
    table
        .ledger()
        .since(now.saturating_sub(LAST_HOUR_MS), now, MAX_READ, &|_| true)
        .await
        .map_err(store_error)
}

pub async fn show(
    table: &Table,
    codepipeline: &str,
    publics: Vec<String>,
    recent: &[TriggerRecord],
    now: EpochMillis,
) -> Result<PipelineShown, OpsError> {
    let runs = table.runs();
    let lane = runs.get_lane(codepipeline).await.map_err(store_error)?;
    let in_progress = match &lane.run_id {
        Some(id) => runs
            .get(id)
            .await
            .map_err(store_error)?
            .map(|r| shown(&r, now)),
        None => None,
    };
    let mut pending = Vec::new();
    for id in lane.in_order() {
        if let Some(run) = runs.get(id).await.map_err(store_error)? {
            pending.push(shown(&run, now));
        }
    }
    let ours: Vec<TriggerRecord> = recent
        .iter()
        .filter(|r| r.target == codepipeline)
        .cloned()
        .collect();
    let mut last_hour = LastHour::default();
    for record in &ours {
        last_hour.accepted.add(record);
        if record.status == TriggerStatus::Refused {
            last_hour.refused.add(record);
        }
    }
    let anonymous: Vec<TriggerRecord> = ours.into_iter().filter(|r| r.key.is_none()).collect();
    Ok(PipelineShown {
        codepipeline: codepipeline.to_string(),
        pipelines: publics,
        table: table.name().to_string(),
        in_progress,
        pending,
        last_hour,
        busiest: busiest(&anonymous, BUSIEST),
    })
}

/// `pipelines flush`: what it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Flushed {
    pub codepipeline: String,
    pub table: String,
    pub lane: &'static str,
    pub runs: usize,
    pub triggers: u64,
    /// Keyed runs left waiting (`--lane anonymous`).
    pub keyed_kept: usize,
}

pub async fn flush(
    table: &Table,
    codepipeline: &str,
    lane: FlushLane,
    now: EpochMillis,
) -> Result<Flushed, OpsError> {
    let keyed = lane == FlushLane::All;
    let flushed = table
        .runs()
        .flush(codepipeline, keyed, now)
        .await
        .map_err(store_error)?;
    let after = table
        .runs()
        .get_lane(codepipeline)
        .await
        .map_err(store_error)?;
    Ok(Flushed {
        codepipeline: codepipeline.to_string(),
        table: table.name().to_string(),
        lane: if keyed { "all" } else { "anonymous" },
        runs: flushed.len(),
        triggers: flushed.iter().map(|r| r.triggers).sum(),
        keyed_kept: after.waiting_key.len(),
    })
}

pub fn show_text(view: &PipelineShown) -> String {
    let mut out = format!(
        "pipeline {} (CodePipeline {}) on table {}\n",
        if view.pipelines.is_empty() {
            "-".to_string()
        } else {
            view.pipelines.join(", ")
        },
        view.codepipeline,
        view.table
    );
    match &view.in_progress {
        None => out.push_str("in progress  none: the lane is free\n"),
        Some(run) => out.push_str(&format!(
            "in progress  {} ({}, {} trigger(s), execution {}, opened {} ago)\n",
            run.run_id,
            run.lane,
            run.triggers,
            run.execution_id.as_deref().unwrap_or("starting"),
            crate::report::age(Some(run.age_seconds)),
        )),
    }
    if view.pending.is_empty() {
        out.push_str("pending      none\n");
    } else {
        out.push_str(&format!(
            "pending      {} (keyed first):\n",
            view.pending.len()
        ));
        let rows: Vec<Vec<String>> = view
            .pending
            .iter()
            .enumerate()
            .map(|(i, run)| {
                vec![
                    format!("  {}", i + 1),
                    run.run_id.clone(),
                    run.lane.to_string(),
                    run.pipeline.clone(),
                    run.triggers.to_string(),
                    crate::report::age(Some(run.age_seconds)),
                ]
            })
            .collect();
        out.push_str(&crate::report::table(
            &["  #", "RUN", "LANE", "PIPELINE", "TRIGGERS", "WAITING"],
            &rows,
        ));
    }
    let hour = &view.last_hour;
    out.push_str(&format!(
        "last hour    accepted {} (anonymous {}, key {}), of those refused behind the full queue {} (anonymous {}, key {})\n",
        hour.accepted.anonymous + hour.accepted.key,
        hour.accepted.anonymous,
        hour.accepted.key,
        hour.refused.anonymous + hour.refused.key,
        hour.refused.anonymous,
        hour.refused.key,
    ));
    if view.busiest.is_empty() {
        out.push_str("busiest      no anonymous trigger in the last hour\n");
    } else {
        out.push_str(
            "busiest keys of the last hour's anonymous triggers (clients block KEY takes them):\n",
        );
        out.push_str(&crate::report::top_text(&view.busiest));
    }
    out
}

pub fn flushed_text(flushed: &Flushed) -> String {
    format!(
        "flushed {} pending run(s) of the {} lane of {} on table {}: {} trigger(s) refused (flushed), no quota given back{}\n",
        flushed.runs,
        flushed.lane,
        flushed.codepipeline,
        flushed.table,
        flushed.triggers,
        if flushed.keyed_kept > 0 {
            format!("; {} keyed run(s) kept (--lane all flushes them too)", flushed.keyed_kept)
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::rules::client_key::ClientKey;

    fn record(public: &str, target: &str) -> TriggerRecord {
        TriggerRecord::queued(
            "01KAKXR9VJ4N6P8Q2R3S4T5V6W".into(),
            public,
            target,
            ClientKey::from_stored(&"ab".repeat(32)).unwrap(),
            Default::default(),
            0,
            0,
        )
    }

    #[test]
    fn a_name_is_a_public_name_or_a_codepipeline_name() {
        let known = BTreeMap::from([
            ("app".to_string(), "prod-app".to_string()),
            ("app-too".to_string(), "prod-app".to_string()),
        ]);
        let recent = [record("docs", "prod-docs")];
        assert_eq!(
            resolve("app", &known, &recent),
            Some(("prod-app".into(), vec!["app".into(), "app-too".into()]))
        );
        assert_eq!(resolve("prod-app", &known, &recent).unwrap().0, "prod-app");
        assert_eq!(
            resolve("docs", &known, &recent),
            Some(("prod-docs".into(), vec!["docs".into()]))
        );
        assert_eq!(
            resolve("prod-docs", &known, &recent).unwrap().0,
            "prod-docs"
        );
        assert_eq!(resolve("nothing", &known, &recent), None);
    }
}
