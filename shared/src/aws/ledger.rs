//! The trigger ledger as operators read it, without scanning the table:
//! trigger records by day (index `by_day`: `day`, `requested_at`) and the
//! triggers of a run (index `by_run`: `run_id`, `requested_at`).
//!
//! A day is split over [`DAY_SHARDS`] index partitions (`2026-11-21#0` …
//! `#7`, by the trigger id), so a flood's writes spread instead of piling
//! onto one index partition (1,000 writes a second each), which would
//! throttle the admissions themselves.

use crate::aws::describe;
use crate::aws::table::{item_to_record, s, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::time_format::{days_back, rfc3339};
use crate::rules::trigger::TriggerRecord;

pub const BY_DAY: &str = "by_day";
pub const BY_RUN: &str = "by_run";

/// Items read per page of a query.
const PAGE: i32 = 200;

/// Index partitions per day.
pub const DAY_SHARDS: u8 = 8;

/// The `day` attribute of a trigger record: its day and a shard picked by
/// its id.
pub fn day_key(day: &str, trigger_id: &str) -> String {
    let shard = trigger_id.bytes().last().unwrap_or(0) % DAY_SHARDS;
    format!("{day}#{shard}")
}

impl Table {
    /// Trigger records requested since `since`, newest first, that `keep`
    /// keeps, at most `limit` of them (expired ones left out).
    pub async fn triggers_since(
        &self,
        since: EpochMillis,
        now: EpochMillis,
        limit: usize,
        keep: &(dyn Fn(&TriggerRecord) -> bool + Sync),
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let mut found = Vec::new();
        for day in days_back(since, now) {
            // Each shard newest first, up to `limit` kept; then merged.
            let mut of_day = Vec::new();
            for shard in 0..DAY_SHARDS {
                let mut kept = 0;
                let mut start = None;
                loop {
                    let output = self
                        .client()
                        .query()
                        .table_name(self.name())
                        .index_name(BY_DAY)
                        .key_condition_expression("#day = :day AND requested_at >= :since")
                        .expression_attribute_names("#day", "day")
                        .expression_attribute_values(":day", s(format!("{day}#{shard}")))
                        .expression_attribute_values(":since", s(rfc3339(since)))
                        .scan_index_forward(false)
                        .limit(PAGE)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| StoreError::Unavailable(describe(&e)))?;
                    for item in output.items() {
                        let record = item_to_record(item)?;
                        if !record.is_expired(now) && keep(&record) && kept < limit {
                            kept += 1;
                            of_day.push(record);
                        }
                    }
                    start = output.last_evaluated_key().cloned();
                    if start.is_none() || kept >= limit {
                        break;
                    }
                }
            }
            of_day.sort_by(|a, b| {
                (b.requested_at, &b.trigger_id).cmp(&(a.requested_at, &a.trigger_id))
            });
            found.extend(of_day);
            if found.len() >= limit {
                found.truncate(limit);
                return Ok(found);
            }
        }
        Ok(found)
    }

    /// The triggers a run serves, oldest first.
    pub async fn triggers_of_run(
        &self,
        run_id: &str,
        now: EpochMillis,
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client()
                .query()
                .table_name(self.name())
                .index_name(BY_RUN)
                .key_condition_expression("run_id = :run")
                .filter_expression("begins_with(pk, :trigger)")
                .expression_attribute_values(":run", s(run_id))
                .expression_attribute_values(":trigger", s("trigger#"))
                .limit(PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(describe(&e)))?;
            for item in output.items() {
                let record = item_to_record(item)?;
                if !record.is_expired(now) {
                    found.push(record);
                }
            }
            start = output.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(found);
            }
        }
    }
}
