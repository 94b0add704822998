//! Set-ups over the product's table that tests in many crates share: an
//! admission for one client, a trigger's record, and a run joined as the
//! worker joins one.

use shared::aws::table::admission::{Admission, QuotaLevel};
use shared::aws::table::runs::{Joined, Opening};
use shared::aws::table::{StoreError, Table};
use shared::rules::client_key::ClientKey;
use shared::rules::quota::QuotaPolicy;
use shared::rules::runs::input_set_key;
use shared::rules::trigger::TriggerRecord;

/// Admits `record` against `key`'s quota alone: no network levels, no
/// global budget, no blocks, no API key.
pub async fn admit_for_client(
    table: &Table,
    key: &ClientKey,
    policy: QuotaPolicy,
    record: &TriggerRecord,
) -> Result<Admission, StoreError> {
    table
        .admission()
        .admit(&[QuotaLevel::client(key, policy)], None, record, &[], None)
        .await
}

/// A trigger's record as stored at `now` (it must be there).
pub async fn stored(table: &Table, trigger_id: &str, now: u64) -> TriggerRecord {
    let record = table.triggers().get(trigger_id, now).await;
    record.expect("the table answers").expect("a record")
}

/// Joins `record`'s run or opens one, keyed by its own input set, as the
/// worker does before it starts a pipeline.
pub async fn join_run(
    table: &Table,
    record: &TriggerRecord,
    opening: &Opening,
    now: u64,
    expires_at: u64,
) -> Joined {
    let set_key = input_set_key(&record.inputs);
    table
        .runs()
        .join_or_open(record, &set_key, opening, now, expires_at)
        .await
        .expect("join or open a run")
}
