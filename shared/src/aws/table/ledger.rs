//! The trigger ledger as operators read it, without scanning the table:
//! trigger records by day (index `by_day`: `day`, `requested_at`) and the
//! triggers of a run (index `by_run`: `run_id`, `requested_at`).
//!
//! A day is split over [`DAY_SHARDS`] index partitions (`2026-11-21#0` …
//! `#7`, by the trigger id), so a flood's writes spread instead of piling
//! onto one index partition (1,000 writes a second each), which would
//! throttle the admissions themselves.

use super::items::{item_to_record, s, DAY_SHARDS};
use super::{query_all, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::time_format::{days_back, rfc3339};
use crate::rules::trigger::TriggerRecord;
use aws_sdk_dynamodb::types::AttributeValue;

pub const BY_DAY: &str = "by_day";
pub const BY_RUN: &str = "by_run";

/// A day in milliseconds.
const DAY_MS: EpochMillis = 86_400_000;

/// Items read per page of a query.
const PAGE: i32 = 200;

/// The ledger, by day and by run.
pub struct Ledger<'a>(&'a Table);

impl Table {
    pub fn ledger(&self) -> Ledger<'_> {
        Ledger(self)
    }
}

impl Ledger<'_> {
    /// Trigger records requested since `since`, newest first, that `keep`
    /// keeps, at most `limit` of them (expired ones left out).
    pub async fn since(
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
                    let (records, next) = self
                        // No upper bound but a day ahead (another clock's "now").
                        .page(&format!("{day}#{shard}"), since, now + DAY_MS, false, start)
                        .await?;
                    for record in records {
                        if !record.is_expired(now) && keep(&record) && kept < limit {
                            kept += 1;
                            of_day.push(record);
                        }
                    }
                    start = next;
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

    /// Trigger records admitted between `since` and `until` that are still
    /// `queued` with no run (the settler's limbo candidates), at most
    /// `limit`; the caller decides with `rules::settle::needs_settling`.
    pub async fn queued_without_run(
        &self,
        since: EpochMillis,
        until: EpochMillis,
        now: EpochMillis,
        limit: usize,
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let mut found = Vec::new();
        if until < since {
            return Ok(found);
        }
        for day in days_back(since, now) {
            for shard in 0..DAY_SHARDS {
                let mut start = None;
                loop {
                    let (records, next) = self
                        .page(&format!("{day}#{shard}"), since, until, true, start)
                        .await?;
                    for record in records {
                        found.push(record);
                        if found.len() >= limit {
                            return Ok(found);
                        }
                    }
                    start = next;
                    if start.is_none() {
                        break;
                    }
                }
            }
        }
        Ok(found)
    }

    /// One page of the day index's partition `day_shard`: records requested
    /// between `since` and `until`, newest first; with `queued_only`, only
    /// those still `queued` without a run. The records and where the next
    /// page starts.
    async fn page(
        &self,
        day_shard: &str,
        since: EpochMillis,
        until: EpochMillis,
        queued_only: bool,
        start: Option<std::collections::HashMap<String, AttributeValue>>,
    ) -> Result<
        (
            Vec<TriggerRecord>,
            Option<std::collections::HashMap<String, AttributeValue>>,
        ),
        StoreError,
    > {
        let mut query = self
            .0
            .query(BY_DAY)
            .key_condition_expression("#day = :day AND requested_at BETWEEN :since AND :until")
            .expression_attribute_names("#day", "day")
            .expression_attribute_values(":day", s(day_shard))
            .expression_attribute_values(":since", s(rfc3339(since)))
            .expression_attribute_values(":until", s(rfc3339(until)))
            .scan_index_forward(false)
            .limit(PAGE)
            .set_exclusive_start_key(start);
        if queued_only {
            query = query
                .filter_expression("#status = :queued AND attribute_not_exists(run_id)")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":queued",
                    s(crate::rules::status::TriggerStatus::Queued.as_str()),
                );
        }
        let output = query.send().await?;
        let records = output
            .items()
            .iter()
            .map(item_to_record)
            .collect::<Result<Vec<_>, _>>()?;
        Ok((records, output.last_evaluated_key().cloned()))
    }

    /// The triggers a run serves, oldest first.
    pub async fn of_run(
        &self,
        run_id: &str,
        now: EpochMillis,
    ) -> Result<Vec<TriggerRecord>, StoreError> {
        let query = self
            .0
            .query(BY_RUN)
            .key_condition_expression("run_id = :run")
            .filter_expression("begins_with(pk, :trigger)")
            .expression_attribute_values(":run", s(run_id))
            .expression_attribute_values(":trigger", s("trigger#"))
            .limit(PAGE);
        let mut found = Vec::new();
        for item in &query_all(query).await? {
            let record = item_to_record(item)?;
            if !record.is_expired(now) {
                found.push(record);
            }
        }
        Ok(found)
    }
}
