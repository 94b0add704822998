//! A run's stages in the table (see [`crate::rules::stages`] for the rules).
//!
//! Each stage is one attribute of the item that owns the execution (the
//! run, or without coalescing the trigger): `stage:<name>`, a map
//! `{state, at, since, seen}` (epoch ms). One stage's change is one conditional
//! `UpdateItem`, so concurrent changes of different stages never overwrite
//! each other, and a change of the same stage is decided again on what is
//! stored.

use super::items::{get_s, n, s, stage_of, stage_value, STAGE_PREFIX};
use super::triggers::ExecutionOwner;
use super::{StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::stages::{stage_change, StageChange, StageRecord};
use crate::rules::status::PipelineState;
use crate::rules::time_format::rfc3339;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

/// Rounds of "decide on what is stored" before [`StoreError::Contention`].
const ROUNDS: usize = 8;

/// What recording a stage's change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRecorded {
    /// The stage now holds this.
    Recorded(StageRecord),
    /// What is stored is as new (a repeat or a late change).
    Kept(StageRecord),
    /// No such item, or it holds another execution.
    NotFound,
}

/// A run's stages, one attribute each.
pub struct Stages<'a>(&'a Table);

impl Table {
    pub fn stages(&self) -> Stages<'_> {
        Stages(self)
    }
}

impl Stages<'_> {
    /// Records that stage `name` of `execution_id` changed to `state` at
    /// `at`, on the item of the execution's owner (its run, or without
    /// coalescing its trigger), forward only.
    pub async fn record(
        &self,
        owner: &ExecutionOwner,
        execution_id: &str,
        name: &str,
        state: PipelineState,
        at: EpochMillis,
        now: EpochMillis,
    ) -> Result<StageRecorded, StoreError> {
        let pk = owner.pk();
        // First guess: the stage's first change (most changes are).
        let mut stored: Option<StageRecord> = None;
        for _ in 0..ROUNDS {
            let new = match stage_change(stored.as_ref(), name, state, at, now) {
                StageChange::Write(new) => new,
                StageChange::Keep => {
                    return Ok(stored.map_or(StageRecorded::NotFound, StageRecorded::Kept))
                }
            };
            let mut update = self
                .0
                .update(&pk)
                .update_expression("SET #stage = :new, updated_at = :now")
                .expression_attribute_names("#stage", format!("{STAGE_PREFIX}{name}"))
                .expression_attribute_values(":new", stage_value(&new))
                .expression_attribute_values(":e", s(execution_id))
                .expression_attribute_values(":now", s(rfc3339(now)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            update = match &stored {
                None => update.condition_expression("execution_id = :e AND attribute_not_exists(#stage)"),
                Some(old) => update
                    .condition_expression(
                        "execution_id = :e AND #stage.#state = :state AND #stage.#at = :at AND #stage.#since = :since AND #stage.#seen = :seen",
                    )
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_names("#at", "at")
                    .expression_attribute_names("#since", "since")
                    .expression_attribute_names("#seen", "seen")
                    .expression_attribute_values(":state", s(old.state.as_str()))
                    .expression_attribute_values(":at", n(old.at))
                    .expression_attribute_values(":since", n(old.since))
                    .expression_attribute_values(":seen", n(old.seen)),
            };
            match update.send().await {
                Ok(_) => return Ok(StageRecorded::Recorded(new)),
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        let Some(item) = failed
                            .item()
                            .filter(|item| get_s(item, "execution_id") == Some(execution_id))
                        else {
                            return Ok(StageRecorded::NotFound);
                        };
                        stored = item
                            .get(&format!("{STAGE_PREFIX}{name}"))
                            .and_then(|value| stage_of(name, value));
                    }
                    _ => return Err(e.into()),
                },
            }
        }
        Err(StoreError::Contention(pk))
    }
}
