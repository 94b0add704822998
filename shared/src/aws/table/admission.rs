//! Admission: a slot of the client's quota and of each of its networks'
//! (and of the global budget) taken, and the trigger record written, in one
//! transaction; given back when the enqueue fails; and, for operators, a
//! quota's slots read or freed.
//!
//! Items: `client#<client key>` and `network#<network key>`: `w` (the token
//! of the last write), `t0..t{limit-1}` (acceptance times, epoch ms, newest
//! first, 0 = free), `expires_at`; `global#<window start ms>`: `n`
//! acceptances in that fixed window.
//!
//! The first attempt assumes every level has its whole budget free; when a
//! level's condition fails DynamoDB hands back its item, the decision is
//! made on it, and an acceptance is retried pinned to exactly that state
//! (`w`). So a new client costs one call, a rejection one call, and a race
//! never over-admits at any level.

use super::items::{
    apikey_pk, block_pk, client_pk, get_n, get_s, global_pk, keyquota_pk, n, network_pk,
    record_to_item, s, slot_name, trigger_pk, Item,
};
use super::{cancelled, condition_failed, conflicted, failed, Rounds, StoreError, Table};
use crate::clock::EpochMillis;
use crate::rules::client_key::ClientKey;
use crate::rules::quota::{Decision, GlobalPolicy, QuotaPolicy, QuotaStatus};
use crate::rules::status::TriggerStatus;
use crate::rules::time_format::rfc3339;
use crate::rules::trigger::TriggerRecord;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

/// The attribute of a trigger key whose admission never committed (and now
/// never will): a void marker, read as no record.
pub const VOID: &str = "void";

/// The level name of a client's own quota (in RateLimit, and among a
/// record's `previous_keys`).
pub const CLIENT_LEVEL: &str = "client";

/// One quota a trigger takes a slot of: the client's own (`client#<key>`),
/// a network's (`network#<key>`) or a trigger key's (`keyquota#<name>`),
/// each with its limit over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaLevel {
    pub pk: String,
    pub policy: QuotaPolicy,
    /// A trigger key's quota also counts its uses and its last use.
    pub counts_uses: bool,
}

impl QuotaLevel {
    pub fn client(key: &ClientKey, policy: QuotaPolicy) -> Self {
        Self {
            pk: client_pk(key),
            policy,
            counts_uses: false,
        }
    }

    pub fn network(key: &ClientKey, policy: QuotaPolicy) -> Self {
        Self {
            pk: network_pk(key),
            policy,
            counts_uses: false,
        }
    }

    /// A trigger key's quota, by its name (a rotated key keeps it).
    pub fn key(name: &str, policy: QuotaPolicy) -> Self {
        Self {
            pk: keyquota_pk(name),
            policy,
            counts_uses: true,
        }
    }
}

/// How admission ended. Statuses are per level, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Quota taken at every level and record written; `previous` is each
    /// level's state before, kept to give the quota back if the enqueue fails.
    Accepted {
        statuses: Vec<QuotaStatus>,
        previous: Vec<Vec<EpochMillis>>,
    },
    /// A level is full: `level` is the one that stays full longest, and
    /// `retry_after_ms` is when every level has room again.
    Exhausted {
        level: usize,
        statuses: Vec<QuotaStatus>,
        retry_after_ms: u64,
    },
    GlobalExhausted {
        statuses: Vec<QuotaStatus>,
        retry_after_ms: u64,
    },
    /// An operator blocked the client or its network until then: nothing taken.
    Blocked { until: EpochMillis },
    /// The trigger key was revoked, or its rotation's overlap ended, since
    /// it was read: nothing taken.
    KeyRefused,
}

impl Admission {
    /// The client's own status (the first level).
    pub fn client_status(statuses: &[QuotaStatus]) -> Option<&QuotaStatus> {
        statuses.first()
    }
}

/// What became of an admission whose answer never arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// It committed: the record is there, the quota taken.
    Committed,
    /// It did not, and now never will: nothing was taken.
    Void,
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

/// A quota item's stored slots and write token, as a cancellation reason
/// returned them.
#[derive(Debug, Clone, Default)]
struct SlotState {
    /// `None`: no item.
    token: Option<String>,
    slots: Vec<EpochMillis>,
}

impl SlotState {
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

/// What the update of one quota item in a transaction expects to find.
#[derive(Debug, Clone)]
enum Expect {
    /// No item, or one whose slots have all left the window.
    WholeBudgetFree,
    /// Exactly the state seen: this token, or no item at all.
    Token(Option<String>),
}

/// One level's plan in an admission: what it expects, what it was, what it
/// becomes.
#[derive(Debug, Clone)]
struct Plan {
    expect: Expect,
    previous: Vec<EpochMillis>,
    next: Vec<EpochMillis>,
}

/// Is `stored` (an existing trigger item) the item `record` writes?
fn is_this_record(stored: Option<&Item>, record: &TriggerRecord) -> bool {
    stored.is_some_and(|item| {
        get_s(item, "client_key") == Some(record.client_key.as_str())
            && get_s(item, "requested_at") == Some(rfc3339(record.requested_at).as_str())
    })
}

/// A level's refund of the acceptance at `accepted_at`, pinned to the state
/// `item` holds; `None` when the item is gone or no longer holds it.
fn plan_refund(
    item: Option<&Item>,
    level: &QuotaLevel,
    accepted_at: EpochMillis,
) -> Option<(Expect, Vec<EpochMillis>)> {
    let state = SlotState::from_item(item, level.policy.limit);
    let slots = level.policy.refund(&state.slots, accepted_at)?;
    state.token.clone()?;
    Some((Expect::Token(state.token), slots))
}

/// The quotas a trigger took a slot of: a keyed trigger its key's only; an
/// anonymous one its client's and networks', and during a rotation's
/// overlap its previous keys' too.
fn taken_from(record: &TriggerRecord) -> Vec<String> {
    match &record.key {
        Some(name) => vec![keyquota_pk(name)],
        None => std::iter::once(client_pk(&record.client_key))
            .chain(record.networks.iter().map(|n| network_pk(&n.key)))
            .chain(record.previous_keys.iter().map(|n| match n.level.as_str() {
                CLIENT_LEVEL => client_pk(&n.key),
                _ => network_pk(&n.key),
            }))
            .collect(),
    }
}

/// The first plan: every level's whole budget is free.
fn first_guess(levels: &[QuotaLevel], now: EpochMillis) -> Vec<Plan> {
    levels
        .iter()
        .map(|level| Plan {
            expect: Expect::WholeBudgetFree,
            previous: vec![0; level.policy.limit],
            next: level.policy.first_acceptance(now),
        })
        .collect()
}

/// Refused by a check of a cancelled admission: blocked (until the latest
/// block in force ends), or the trigger key no longer good.
fn refused_by_checks(
    reasons: &[CancellationReason],
    key_at: Option<usize>,
    first_check: usize,
) -> Option<Admission> {
    let blocked_until = reasons
        .iter()
        .skip(first_check)
        .filter(|r| failed(Some(r)))
        .filter_map(|r| r.item().and_then(|item| get_n(item, "blocked_until")))
        .max();
    if let Some(until) = blocked_until {
        return Some(Admission::Blocked { until });
    }
    key_at
        .filter(|&at| condition_failed(reasons.get(at)))
        .map(|_| Admission::KeyRefused)
}

/// The admission whose commit was lost (the SDK retried a transaction that
/// had committed): it stands, with each level as stored (a level that did
/// not fail the retry holds what the plan wrote).
fn lost_commit(
    levels: &[QuotaLevel],
    plans: &[Plan],
    reasons: &[CancellationReason],
    now: EpochMillis,
) -> Admission {
    let mut statuses = Vec::new();
    let mut previous = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        let policy = &level.policy;
        let slots = if failed(reasons.get(i)) {
            SlotState::from_item(reasons[i].item(), policy.limit).slots
        } else {
            plans[i].next.clone()
        };
        statuses.push(policy.status(&slots, now));
        previous.push(
            policy
                .refund(&slots, now)
                .unwrap_or_else(|| policy.normalize(&slots)),
        );
    }
    Admission::Accepted { statuses, previous }
}

/// Each level whose condition failed, decided again on the slots its
/// cancellation returned: a new plan expecting exactly that state, or
/// refused with its status.
fn replan(
    levels: &[QuotaLevel],
    plans: &mut [Plan],
    reasons: &[CancellationReason],
    now: EpochMillis,
) -> Vec<(usize, QuotaStatus)> {
    let mut refused = Vec::new();
    for (i, level) in levels.iter().enumerate() {
        if !failed(reasons.get(i)) {
            continue;
        }
        let state = SlotState::from_item(reasons[i].item(), level.policy.limit);
        match level.policy.decide(&state.slots, now) {
            Decision::Accept { slots, .. } => {
                plans[i] = Plan {
                    expect: Expect::Token(state.token),
                    previous: level.policy.normalize(&state.slots),
                    next: slots,
                }
            }
            Decision::Reject(status) => {
                plans[i].previous = level.policy.normalize(&state.slots);
                refused.push((i, status));
            }
        }
    }
    refused
}

/// Refused by the level that frees last (the first such level on a tie),
/// with every level's status as stored; `None` when no level refused.
fn exhausted(
    levels: &[QuotaLevel],
    plans: &[Plan],
    refused: Vec<(usize, QuotaStatus)>,
    now: EpochMillis,
) -> Option<Admission> {
    let &(level, _) = refused
        .iter()
        .max_by_key(|(i, s)| (s.reset_after_ms, std::cmp::Reverse(*i)))?;
    let retry_after_ms = refused
        .iter()
        .map(|(_, s)| s.reset_after_ms)
        .max()
        .unwrap_or(0);
    let mut current = statuses(levels, plans, |p| &p.previous, now);
    for (i, status) in refused {
        current[i] = status;
    }
    Some(Admission::Exhausted {
        level,
        statuses: current,
        retry_after_ms,
    })
}

/// Each level's status for the slots `which` picks out of its plan.
fn statuses(
    levels: &[QuotaLevel],
    plans: &[Plan],
    which: impl Fn(&Plan) -> &Vec<EpochMillis>,
    now: EpochMillis,
) -> Vec<QuotaStatus> {
    levels
        .iter()
        .zip(plans)
        .map(|(level, plan)| level.policy.status(which(plan), now))
        .collect()
}

impl Admissions<'_> {
    /// The update of one quota item to `slots`, expecting `expect`; an
    /// admission (`admitting`) also counts a trigger key's use.
    fn quota_update(
        &self,
        level: &QuotaLevel,
        expect: &Expect,
        token: &str,
        slots: &[EpochMillis],
        now: EpochMillis,
        admitting: bool,
    ) -> Result<TransactWriteItem, StoreError> {
        let policy = &level.policy;
        let mut sets = vec!["w = :w".to_string(), "expires_at = :exp".to_string()];
        let mut update = self
            .0
            .update_in_transaction(&level.pk)
            .expression_attribute_values(":w", s(token))
            .expression_attribute_values(":exp", n(policy.expires_at_seconds(slots, now)))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if level.counts_uses && admitting {
            sets.push("uses = if_not_exists(uses, :zero) + :one".to_string());
            sets.push("last_used_at = :now".to_string());
            update = update
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":now", n(now));
        }
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
        let mut update = self
            .0
            .update_in_transaction(global_pk(start))
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

    /// The admission's check that the trigger key (by its hash) is still
    /// good: there, not revoked, within its rotation's overlap.
    fn key_still_good(
        &self,
        hash: &str,
        now: EpochMillis,
    ) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.0.name())
            .key("pk", s(apikey_pk(hash)))
            .condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(revoked_at) AND (attribute_not_exists(valid_until) OR valid_until > :now)",
            )
            .expression_attribute_values(":now", n(now))
            .build()?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// The admission's transaction: each level's slot, the record, the
    /// global budget's, then the checks.
    fn admission_items(
        &self,
        levels: &[QuotaLevel],
        plans: &[Plan],
        record: &TriggerRecord,
        global: Option<&GlobalPolicy>,
        checks: &[TransactWriteItem],
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let now = record.requested_at;
        let mut items = Vec::with_capacity(levels.len() + 2 + checks.len());
        for (level, plan) in levels.iter().zip(plans) {
            items.push(self.quota_update(
                level,
                &plan.expect,
                &record.trigger_id,
                &plan.next,
                now,
                true,
            )?);
        }
        items.push(self.record_put(record)?);
        if let Some(global) = global {
            items.push(self.global_update(global, now, 1)?);
        }
        items.extend(checks.iter().cloned());
        Ok(items)
    }

    /// Takes one slot of every level (the client's, then each network's;
    /// or a trigger key's) and of the global budget, and writes the trigger
    /// record, atomically, or says why not. With `key` (a trigger key's
    /// hash), the key must still be good when it commits.
    pub async fn admit(
        &self,
        levels: &[QuotaLevel],
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        blocks: &[ClientKey],
        key: Option<&str>,
    ) -> Result<Admission, StoreError> {
        let now = record.requested_at;
        let mut plans = first_guess(levels, now);
        // After the levels, the record and the global budget: the key's
        // check, then each block's.
        let record_at = levels.len();
        let global_at = record_at + 1;
        let key_at = global_at + usize::from(global.is_some());
        let checks = key
            .map(|hash| self.key_still_good(hash, now))
            .into_iter()
            .chain(blocks.iter().map(|block| self.not_blocked(block, now)))
            .collect::<Result<Vec<_>, _>>()?;
        let first_check = key_at + usize::from(key.is_some());
        let contended = levels.first().map_or_else(String::new, |l| l.pk.clone());
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let items = self.admission_items(levels, &plans, record, global, &checks)?;
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(Admission::Accepted {
                    statuses: statuses(levels, &plans, |p| &p.next, now),
                    previous: plans.into_iter().map(|p| p.previous).collect(),
                });
            };
            if let Some(refused) = refused_by_checks(&reasons, key.map(|_| key_at), first_check) {
                return Ok(refused);
            }
            let level_failed: Vec<bool> =
                (0..levels.len()).map(|i| failed(reasons.get(i))).collect();
            let global_failed = global.is_some() && failed(reasons.get(global_at));
            if failed(reasons.get(record_at)) {
                // The record exists. If it is this very record (same client,
                // same request time), an earlier attempt of this transaction
                // committed and its answer was lost (the SDK retried), whatever
                // was accepted since: the admission stands, exactly once.
                if level_failed.first() == Some(&true)
                    && is_this_record(reasons[record_at].item(), record)
                {
                    return Ok(lost_commit(levels, &plans, &reasons, now));
                }
                return Err(StoreError::Corrupt(format!(
                    "trigger id {} already exists",
                    record.trigger_id
                )));
            }
            if !level_failed.contains(&true) && !global_failed {
                if conflicted(&reasons) {
                    rounds.conflicted();
                    continue;
                }
                return Err(cancelled(&reasons));
            }
            // Decide each level that failed on what is really stored.
            let refused = replan(levels, &mut plans, &reasons, now);
            if let Some(exhausted) = exhausted(levels, &plans, refused, now) {
                return Ok(exhausted);
            }
            let current = statuses(levels, &plans, |p| &p.previous, now);
            if global_failed {
                let (_, end) = global.map(|g| g.bucket(now)).unwrap_or((now, now));
                return Ok(Admission::GlobalExhausted {
                    statuses: current,
                    retry_after_ms: end - now,
                });
            }
        }
    }

    /// Settles an admission of `record` whose outcome is unknown (every
    /// answer to its transaction was lost): one conditional write of a void
    /// marker under the record's key. If the record is there, the admission
    /// committed; if not, the marker makes sure it never will (its record
    /// is written only where nothing is), so nothing was taken.
    pub async fn settle(&self, record: &TriggerRecord) -> Result<Settled, StoreError> {
        let result = self
            .0
            .client()
            .put_item()
            .table_name(self.0.name())
            .item("pk", s(trigger_pk(&record.trigger_id)))
            .item(VOID, AttributeValue::Bool(true))
            .item("expires_at", n(record.expires_at))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Settled::Void),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed))
                    if is_this_record(failed.item(), record) =>
                {
                    Ok(Settled::Committed)
                }
                Some(PutItemError::ConditionalCheckFailedException(_)) => Err(StoreError::Corrupt(
                    format!("trigger id {} already exists", record.trigger_id),
                )),
                _ => Err(e.into()),
            },
        }
    }

    /// Gives back what [`Admissions::admit`] took for `record` at every
    /// level (`previous` as admission returned it; `None`: not known, each
    /// level is read first) and deletes the record, unless a worker already
    /// picked the trigger up.
    pub async fn refund(
        &self,
        levels: &[QuotaLevel],
        global: Option<&GlobalPolicy>,
        record: &TriggerRecord,
        previous: Option<&[Vec<EpochMillis>]>,
    ) -> Result<Refund, StoreError> {
        let now = record.requested_at;
        let token = format!("refund:{}", record.trigger_id);
        // First guess: nobody wrote since our acceptance. A level whose item
        // no longer holds this acceptance drops out of the plan.
        let mut plans: Vec<Option<(Expect, Vec<EpochMillis>)>> = match previous {
            Some(previous) => previous
                .iter()
                .map(|slots| {
                    Some((
                        Expect::Token(Some(record.trigger_id.clone())),
                        slots.clone(),
                    ))
                })
                .collect(),
            None => {
                let mut plans = Vec::new();
                for level in levels {
                    let item = self.0.get(level.pk.clone()).await?;
                    plans.push(plan_refund(item.as_ref(), level, now));
                }
                plans
            }
        };
        let contended = levels.first().map_or_else(String::new, |l| l.pk.clone());
        let mut rounds = Rounds::new(&contended);
        loop {
            rounds.next().await?;
            let mut items = Vec::new();
            let mut planned = Vec::new();
            for (i, (level, plan)) in levels.iter().zip(&plans).enumerate() {
                if let Some((expect, slots)) = plan {
                    items.push(self.quota_update(level, expect, &token, slots, now, false)?);
                    planned.push(i);
                }
            }
            let delete = Delete::builder()
                .table_name(self.0.name())
                .key("pk", s(trigger_pk(&record.trigger_id)))
                .condition_expression("#status = :queued")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":queued", s(TriggerStatus::Queued.as_str()))
                .build()?;
            let delete_at = items.len();
            items.push(TransactWriteItem::builder().delete(delete).build());
            if let Some(global) = global {
                items.push(self.global_update(global, now, -1)?);
            }
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(Refund::Refunded);
            };
            if failed(reasons.get(delete_at)) {
                return Ok(Refund::AlreadyPickedUp);
            }
            let mut moved = false;
            for (at, &i) in planned.iter().enumerate() {
                if !failed(reasons.get(at)) {
                    continue;
                }
                moved = true;
                plans[i] = plan_refund(reasons[at].item(), &levels[i], now);
            }
            if moved {
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

    /// The record's side of a refusal: `refused`, with its reason, while it
    /// is still `queued` without a run.
    fn refusal_mark(
        &self,
        record: &TriggerRecord,
        reason: &str,
        retry_at: EpochMillis,
        now: EpochMillis,
    ) -> Result<Update, StoreError> {
        Ok(self.0.update_in_transaction(trigger_pk(&record.trigger_id))
            .update_expression(
                "SET #status = :refused, refusal_reason = :reason, retry_at = :retry_at, updated_at = :now",
            )
            .condition_expression("#status = :queued AND attribute_not_exists(run_id)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":refused", s(TriggerStatus::Refused.as_str()))
            .expression_attribute_values(":queued", s(TriggerStatus::Queued.as_str()))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":retry_at", n(retry_at))
            .expression_attribute_values(":now", s(rfc3339(now)))
            .build()?)
    }

    /// The quota `pk` with the record's slot given back, on the condition
    /// that it is still as read; `None` when nothing of the record's is
    /// left there.
    async fn slot_refund(
        &self,
        pk: &str,
        record: &TriggerRecord,
        token: &str,
    ) -> Result<Option<TransactWriteItem>, StoreError> {
        let Some(item) = self.0.get(pk.to_string()).await? else {
            return Ok(None);
        };
        let slots: Vec<EpochMillis> = (0..).map_while(|i| get_n(&item, &slot_name(i))).collect();
        let policy = QuotaPolicy {
            limit: slots.len(),
            window: std::time::Duration::ZERO,
        };
        let (Some(seen), Some(kept)) = (
            get_s(&item, "w"),
            policy.refund(&slots, record.requested_at),
        ) else {
            return Ok(None);
        };
        let mut sets = vec!["w = :w".to_string()];
        let mut update = self
            .0
            .update_in_transaction(pk)
            .condition_expression("w = :seen")
            .expression_attribute_values(":seen", s(seen))
            .expression_attribute_values(":w", s(token));
        for (i, slot) in kept.iter().enumerate() {
            sets.push(format!("{} = :t{i}", slot_name(i)));
            update = update.expression_attribute_values(format!(":t{i}"), n(slot));
        }
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .build()?;
        Ok(Some(TransactWriteItem::builder().update(update).build()))
    }

    /// One admission given back to the global window's counter, while it
    /// holds any.
    fn global_refund(&self, window: EpochMillis) -> Result<TransactWriteItem, StoreError> {
        let update = self
            .0
            .update_in_transaction(global_pk(window))
            .update_expression("ADD n :minus")
            .condition_expression("n > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .build()?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Refuses a queued trigger behind the queue (its pipeline's queue is
    /// full): its record says `refused`, why and when to try again, and
    /// every slot it took — its client's, its networks', the global
    /// budget's, or its trigger key's — is given back, in one transaction. Returns whether it did
    /// (`false`: the trigger moved on, it joined a run or is gone).
    pub async fn refuse(
        &self,
        record: &TriggerRecord,
        reason: &str,
        retry_at: EpochMillis,
        now: EpochMillis,
    ) -> Result<bool, StoreError> {
        let quotas = taken_from(record);
        let mark = self.refusal_mark(record, reason, retry_at, now)?;
        let token = format!("refused:{}", record.trigger_id);
        let contended = trigger_pk(&record.trigger_id);
        let mut rounds = Rounds::new(&contended);
        // The global window's counter, while it holds anything to give back.
        let mut global = record.global_window;
        loop {
            rounds.next().await?;
            let mut items = vec![TransactWriteItem::builder().update(mark.clone()).build()];
            for pk in &quotas {
                items.extend(self.slot_refund(pk, record, &token).await?);
            }
            let global_at = items.len();
            if let Some(window) = global {
                items.push(self.global_refund(window)?);
            }
            let Some(reasons) = self.0.transact(items).await? else {
                return Ok(true);
            };
            if condition_failed(reasons.first()) {
                return Ok(false);
            }
            if global.is_some() && condition_failed(reasons.get(global_at)) {
                // The window is gone (collected) or holds nothing any more.
                global = None;
                continue;
            }
            if reasons.iter().skip(1).any(|r| condition_failed(Some(r))) {
                // A quota moved (or the global window is gone): look again.
                continue;
            }
            if conflicted(&reasons) {
                rounds.conflicted();
                continue;
            }
            return Err(cancelled(&reasons));
        }
    }

    /// A quota's acceptance times as stored (epoch ms, 0 = free), or none
    /// when the table has no item for it.
    pub async fn slots(&self, level: &QuotaLevel) -> Result<Vec<EpochMillis>, StoreError> {
        let Some(item) = self.0.get(level.pk.clone()).await? else {
            return Ok(Vec::new());
        };
        Ok((0..).map_while(|i| get_n(&item, &slot_name(i))).collect())
    }

    /// Frees a whole quota. Returns whether it had one stored.
    pub async fn reset(&self, level: &QuotaLevel) -> Result<bool, StoreError> {
        let output = self
            .0
            .client()
            .delete_item()
            .table_name(self.0.name())
            .key("pk", s(&level.pk))
            .return_values(ReturnValue::AllOld)
            .send()
            .await?;
        Ok(output.attributes().is_some())
    }
}
