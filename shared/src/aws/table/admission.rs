//! Admission: the client's quota (and the global budget) taken, and the
//! trigger record written, in one transaction; given back when the enqueue
//! fails; and, for operators, a client's slots read or freed.
//!
//! Items: `client#<client key>`: `w` (the token of the last write),
//! `t0..t{limit-1}` (acceptance times, epoch ms, newest first, 0 = free),
//! `expires_at`; `global#<window start ms>`: `n` acceptances in that fixed
//! window.
//!
//! The first attempt assumes a client with its whole budget free; when that
//! condition fails DynamoDB hands back the item, the decision is made on it,
//! and an acceptance is retried pinned to exactly that state (`w`). So a new
//! client costs one call, a rejection one call, a race never over-admits.

use super::items::{
    block_pk, client_pk, get_n, get_s, global_pk, n, record_to_item, s, slot_name, trigger_pk, Item,
};
use super::{cancelled, conflicted, failed, Rounds, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::quota::{Decision, GlobalPolicy, QuotaPolicy, QuotaStatus};
use crate::rules::status::TriggerStatus;
use crate::rules::time_format::rfc3339;
use crate::rules::trigger::TriggerRecord;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};

/// How admission ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Quota taken and record written; `previous` is the client's state before,
    /// kept to give the quota back if the enqueue fails.
    Accepted {
        status: QuotaStatus,
        previous: Vec<EpochMillis>,
    },
    ClientExhausted(QuotaStatus),
    GlobalExhausted {
        client: QuotaStatus,
        retry_after_ms: u64,
    },
    /// An operator blocked the client or its network until then: nothing taken.
    Blocked {
        until: EpochMillis,
    },
}

/// How giving quota back ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refund {
    Refunded,
    /// The trigger is no longer `queued` (a worker already took it): nothing
    /// was given back, because the message did arrive.
    AlreadyPickedUp,
}

/// Quota taken and given back, and the trigger record with it.
pub struct Admissions<'a>(&'a Table);

impl Table {
    pub fn admission(&self) -> Admissions<'_> {
        Admissions(self)
    }
}

/// The client's stored slots and write token, as a cancellation reason returned them.
#[derive(Debug, Clone, Default)]
struct ClientState {
    /// `None`: no item.
    token: Option<String>,
    slots: Vec<EpochMillis>,
}

impl ClientState {
    fn from_item(item: Option<&Item>, limit: usize) -> Self {
        match item {
            None => Self::default(),
            Some(item) => Self {
                token: get_s(item, "w").map(str::to_string),
                slots: (0..limit)
                    .map(|i| get_n(item, &slot_name(i)).unwrap_or(0))
                    .collect(),
            },
        }
    }
}

/// What the client update of a transaction expects to find.
enum Expect {
    /// No item, or one whose slots have all left the window.
    WholeBudgetFree,
    /// Exactly the state seen: this token, or no item at all.
    Token(Option<String>),
}

/// Is `stored` (an existing trigger item) the item `record` writes?
fn is_this_record(stored: Option<&Item>, record: &TriggerRecord) -> bool {
    stored.is_some_and(|item| {
        get_s(item, "client_key") == Some(record.client_key.as_str())
            && get_s(item, "requested_at") == Some(rfc3339(record.requested_at).as_str())
    })
}

impl Admissions<'_> {
    fn client_update(
        &self,
        key: &ClientKey,
        policy: &QuotaPolicy,
        expect: &Expect,
        token: &str,
        slots: &[EpochMillis],
        now: EpochMillis,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut sets = vec!["w = :w".to_string(), "expires_at = :exp".to_string()];
        let mut update = Update::builder()
            .table_name(self.0.name())
            .key("pk", s(client_pk(key)))
            .expression_attribute_values(":w", s(token))
            .expression_attribute_values(":exp", n(policy.expires_at_seconds(slots, now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (i, slot) in policy.normalize(slots).iter().enumerate() {
            sets.push(format!("{} = :t{i}", slot_name(i)));
            update = update.expression_attribute_values(format!(":t{i}"), n(slot));
        }
        update = match expect {
            Expect::WholeBudgetFree => update
                .condition_expression("attribute_not_exists(pk) OR t0 <= :cutoff")
                .expression_attribute_values(":cutoff", n(now.saturating_sub(policy.window_ms()))),
            Expect::Token(Some(seen)) => update
                .condition_expression("w = :seen")
                .expression_attribute_values(":seen", s(seen)),
            Expect::Token(None) => update.condition_expression("attribute_not_exists(pk)"),
        };
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn global_update(
        &self,
        policy: &GlobalPolicy,
        now: EpochMillis,
        delta: i64,
    ) -> Result<TransactWriteItem, StoreError> {
        let (start, end) = policy.bucket(now);
        let mut update = Update::builder()
            .table_name(self.0.name())
            .key("pk", s(global_pk(start)))
            .update_expression("ADD n :delta SET expires_at = if_not_exists(expires_at, :exp)")
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":exp", n(end.div_ceil(1000) + 3600));
        if delta > 0 {
            update = update
                .condition_expression("attribute_not_exists(n) OR n < :limit")
                .expression_attribute_values(":limit", n(policy.limit));
        }
        Ok(TransactWriteItem::builder().update(update.build()?).build())
    }

    /// The admission's check that no operator's block on `key` is in force.
    fn not_blocked(
        &self,
        key: &ClientKey,
        now: EpochMillis,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.0.name())
            .key("pk", s(block_pk(key)))
            .condition_expression("attribute_not_exists(pk) OR blocked_until <= :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    fn record_put(&self, record: &TriggerRecord) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.0.name())
            .set_item(Some(record_to_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            // An existing record comes back, to tell our own lost commit
            // from someone else's trigger.
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Takes one unit of the client's quota (and of the global budget) and
    /// writes the trigger record, atomically, or says why not.
    pub async fn admit(
        &self,
        policy: &QuotaPolicy,
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        blocks: &[ClientKey],
    ) -> Result<Admission, StoreError> {
        let now = record.requested_at;
        let key = &record.client_key;
        let mut expect = Expect::WholeBudgetFree;
        let mut previous: Vec<EpochMillis> = vec![0; policy.limit];
        let mut next = policy.first_acceptance(now);
        let block_checks = blocks
            .iter()
            .map(|block| self.not_blocked(block, now))
            .collect::<Result<Vec<_>, _>>()?;
        let first_check = 2 + usize::from(global.is_some());
        let contended = client_pk(key);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let mut items = vec![
                self.client_update(key, policy, &expect, &record.trigger_id, &next, now)?,
                self.record_put(record)?,
            ];
            if let Some(global) = global {
                items.push(self.global_update(global, now, 1)?);
            }
            items.extend(block_checks.iter().cloned());
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(Admission::Accepted {
                    status: policy.status(&next, now),
                    previous: previous.clone(),
                });
            };
            let blocked_until = reasons
                .iter()
                .skip(first_check)
                .filter(|r| failed(Some(r)))
                .filter_map(|r| r.item().and_then(|item| get_n(item, "blocked_until")))
                .max();
            if let Some(until) = blocked_until {
                return Ok(Admission::Blocked { until });
            }
            let client_failed = failed(reasons.first());
            let global_failed = global.is_some() && failed(reasons.get(2));
            if failed(reasons.get(1)) {
                // The record exists. If it is this very record (same client,
                // same request time), an earlier attempt of this transaction
                // committed and its answer was lost (the SDK retried), whatever
                // was accepted since: the admission stands, exactly once.
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                if client_failed && is_this_record(reasons[1].item(), record) {
                    return Ok(Admission::Accepted {
                        status: policy.status(&state.slots, now),
                        previous: policy
                            .refund(&state.slots, now)
                            .unwrap_or_else(|| policy.normalize(&state.slots)),
                    });
                }
                return Err(StoreError::Corrupt(format!(
                    "trigger id {} already exists",
                    record.trigger_id
                )));
            }
            if !client_failed && !global_failed {
                if conflicted(&reasons) {
                    rounds.conflicted();
                    continue;
                }
                return Err(cancelled(&reasons));
            }
            // Decide on what is really stored.
            let decision = if client_failed {
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                let decision = policy.decide(&state.slots, now);
                if let Decision::Accept { slots, .. } = &decision {
                    previous = policy.normalize(&state.slots);
                    next = slots.clone();
                    expect = Expect::Token(state.token);
                }
                decision
            } else {
                policy.decide(&previous, now)
            };
            match decision {
                Decision::Reject(status) => return Ok(Admission::ClientExhausted(status)),
                Decision::Accept { .. } if global_failed => {
                    let (_, end) = global.map(|g| g.bucket(now)).unwrap_or((now, now));
                    return Ok(Admission::GlobalExhausted {
                        client: policy.status(&previous, now),
                        retry_after_ms: end - now,
                    });
                }
                Decision::Accept { .. } => continue,
            }
        }
    }

    /// Gives back what [`Admissions::admit`] took for `record` and deletes the
    /// record, unless a worker already picked the trigger up.
    pub async fn refund(
        &self,
        policy: &QuotaPolicy,
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        previous: &[EpochMillis],
    ) -> Result<Refund, StoreError> {
        let now = record.requested_at;
        let token = format!("refund:{}", record.trigger_id);
        // First guess: nobody wrote since our acceptance.
        let mut client_plan = Some((
            Expect::Token(Some(record.trigger_id.clone())),
            previous.to_vec(),
        ));
        let contended = client_pk(&record.client_key);
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let mut items = Vec::new();
            if let Some((expect, slots)) = &client_plan {
                items.push(self.client_update(
                    &record.client_key,
                    policy,
                    expect,
                    &token,
                    slots,
                    now,
                )?);
            }
            let delete = Delete::builder()
                .table_name(self.0.name())
                .key("pk", s(trigger_pk(&record.trigger_id)))
                .condition_expression("#status = :queued")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", s(TriggerStatus::Queued.as_str()))
                .build()?;
            items.push(TransactWriteItem::builder().delete(delete).build());
            if let Some(global) = global {
                items.push(self.global_update(global, now, -1)?);
            }
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(Refund::Refunded);
            };
            let offset = usize::from(client_plan.is_some());
            if failed(reasons.get(offset)) {
                return Ok(Refund::AlreadyPickedUp);
            }
            if client_plan.is_some() && failed(reasons.first()) {
                let state = ClientState::from_item(reasons[0].item(), policy.limit);
                client_plan = match (
                    &state.token,
                    policy.refund(&state.slots, record.requested_at),
                ) {
                    (Some(_), Some(slots)) => Some((Expect::Token(state.token.clone()), slots)),
                    // The item is gone or no longer holds this acceptance.
                    _ => None,
                };
                continue;
            }
            if conflicted(&reasons) {
                rounds.conflicted();
                continue;
            }
            return Err(StoreError::Unavailable(format!(
                "refund cancelled: {reasons:?}"
            )));
        }
    }

    /// The client's acceptance times as stored (epoch ms, 0 = free), or
    /// none when the table has no item for it.
    pub async fn client_slots(&self, key: &ClientKey) -> Result<Vec<EpochMillis>, StoreError> {
        let Some(item) = self.0.get(client_pk(key)).await? else {
            return Ok(Vec::new());
        };
        Ok((0..).map_while(|i| get_n(&item, &slot_name(i))).collect())
    }

    /// Frees the client's whole quota. Returns whether it had one stored.
    pub async fn reset_client(&self, key: &ClientKey) -> Result<bool, StoreError> {
        let output = self
            .0
            .client()
            .delete_item()
            .table_name(self.0.name())
            .key("pk", s(client_pk(key)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await?;
        Ok(output.attributes().is_some())
    }
}
