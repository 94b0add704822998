//! The ingress handler: `POST /trigger`, `GET /triggers/{id}`, `GET /pipelines`,
//! the public page (`GET /` and its files) and CORS preflights (`OPTIONS`)
//! from API Gateway events. Rules live in `shared`; this wires them to the
//! table and the queue.

use serde_json::Value;
use shared::aws::queue::{QueueError, WorkQueue};
use shared::aws::table::admission::{Admission, QuotaLevel, Refund, Settled};
use shared::aws::table::{StoreError, Table};
use shared::aws::CallCounter;
use shared::clock::Clock;
use shared::config::IngressConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::client_key::{block_keys, quota_keys, QuotaKeys};
use shared::rules::http::event::{parse_event, EventError, HttpRequest};
use shared::rules::http::response::{
    ApiError, HttpResponse, LimitItem, QuotaScope, UNAVAILABLE_RETRY_AFTER_S,
};
use shared::rules::http::trigger_api::{
    accepted_response, catalog_response, parse_trigger_body, route, Route,
};
use shared::rules::inputs::values_to_json;
use shared::rules::message::{WorkMessage, MESSAGE_VERSION};
use shared::rules::metrics;
use shared::rules::page::{asset_response, page_response};
use shared::rules::quota::{QuotaPolicy, QuotaStatus};
use shared::rules::refusals::{RefusalMemory, GLOBAL};
use shared::rules::time_format::{ceil_seconds, rfc3339};
use shared::rules::trigger::{
    canonical_trigger_id, could_exist, ledger_expires_at, trigger_id_at, NetworkKey, TriggerRecord,
};
use std::sync::{Arc, Mutex};
use tracing::{error, info, warn};

/// The quota levels a request takes a slot of: the client's, then each
/// network's, every one over `QUOTA_WINDOW`.
fn quota_levels(config: &IngressConfig, keys: &QuotaKeys) -> Vec<QuotaLevel> {
    std::iter::once(QuotaLevel::client(&keys.client, config.quota))
        .chain(keys.networks.iter().map(|(level, key)| {
            QuotaLevel::network(
                key,
                QuotaPolicy {
                    limit: level.limit,
                    window: config.quota.window,
                },
            )
        }))
        .collect()
}

/// How many times an admission of unknown outcome, or an enqueue that
/// failed, is settled before the ingress gives up asking (with pauses of
/// 0.1, 0.2, 0.4 s).
const SETTLE_ATTEMPTS: u32 = 3;

/// No further round of settling an enqueue starts after this long, so the
/// answer comes well inside the function's 10 s (each call is bounded by
/// the SDK's operation timeout).
const ENQUEUE_SETTLE_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// The work queue message of an accepted trigger (`inputs` when the
/// pipeline declares any).
fn work_message(record: &TriggerRecord, has_inputs: bool) -> WorkMessage {
    WorkMessage {
        version: MESSAGE_VERSION,
        trigger_id: record.trigger_id.clone(),
        pipeline: record.target.clone(),
        requested_at: rfc3339(record.requested_at),
        client_key: record.client_key.to_string(),
        inputs: match values_to_json(&record.inputs) {
            serde_json::Value::Object(values) if has_inputs => Some(values),
            _ => None,
        },
        unsettled: false,
    }
}

/// How the RateLimit fields and the 429 name each level.
fn level_names(keys: &QuotaKeys) -> Vec<String> {
    std::iter::once("client".to_string())
        .chain(keys.networks.iter().map(|(level, _)| level.name()))
        .collect()
}

fn limit_items(
    names: &[String],
    levels: &[QuotaLevel],
    statuses: &[QuotaStatus],
) -> Vec<LimitItem> {
    names
        .iter()
        .zip(levels)
        .zip(statuses)
        .map(|((name, level), status)| LimitItem::of(name.clone(), &level.policy, status))
        .collect()
}

pub struct Ingress {
    config: IngressConfig,
    table: Table,
    queue: WorkQueue,
    clock: Arc<dyn Clock>,
    calls: CallCounter,
    metrics: Metrics,
    /// Whom this instance just refused: a repeat is answered from memory.
    refusals: Mutex<RefusalMemory>,
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        retry_after_s: UNAVAILABLE_RETRY_AFTER_S,
    }
}

impl Ingress {
    /// `calls` is the counter attached to the clients behind `table` and
    /// `queue`; each decision logs how many AWS calls it took.
    pub fn new(
        config: IngressConfig,
        table: Table,
        queue: WorkQueue,
        clock: Arc<dyn Clock>,
        calls: CallCounter,
    ) -> Self {
        Self {
            metrics: Metrics::new(&config.metrics_namespace, "ingress"),
            refusals: Mutex::new(RefusalMemory::new(
                shared::rules::refusals::MAX_REMEMBERED,
                u64::try_from(config.refusal_memory.as_millis()).unwrap_or(u64::MAX),
            )),
            config,
            table,
            queue,
            clock,
            calls,
        }
    }

    /// Sends the metric lines to `sink` instead of stdout.
    pub fn with_metrics(mut self, sink: MetricsSink) -> Self {
        self.metrics = self.metrics.with_sink(sink);
        self
    }

    /// The refusal memory (a poisoned lock still holds sound entries).
    fn memory(&self) -> std::sync::MutexGuard<'_, RefusalMemory> {
        self.refusals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One metric line per `POST /trigger` decision.
    fn count(&self, result: &Result<HttpResponse, ApiError>) {
        match result {
            Ok(_) => self.metrics.count(metrics::ACCEPTED, None),
            Err(ApiError::QuotaExceeded { scope, .. }) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", scope.as_str()))),
            Err(ApiError::Blocked { .. }) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "blocked"))),
            Err(ApiError::CrossSite) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "cross-site"))),
            Err(ApiError::Unavailable { .. }) => self.metrics.count(metrics::UNAVAILABLE, None),
            Err(_) => self.metrics.count(metrics::INVALID, None),
        }
    }

    /// One invocation: an API Gateway event in, a proxy response out. An event
    /// that is not HTTP fails the invocation (the process lives on).
    pub async fn handle(&self, event: Value) -> Result<Value, EventError> {
        let request = match parse_event(&event) {
            Ok(request) => request,
            Err(e) => {
                warn!(decision = "not_http", error = %e, "invocation is not an API Gateway event");
                return Err(e);
            }
        };
        let mut response = self.respond(&request).await.unwrap_or_else(|e| {
            if e.status() < 429 {
                info!(decision = "refused", status = e.status(), method = %request.method, path = %request.path, reason = %e);
            }
            e.to_response()
        });
        self.config
            .cors
            .decorate(&mut response, request.origin.as_deref());
        Ok(response.to_apigw())
    }

    async fn respond(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        match route(&request.method, &request.path)? {
            Route::PostTrigger => {
                let result = self.post_trigger(request).await;
                self.count(&result);
                result
            }
            Route::GetPipelines => Ok(catalog_response(
                &self.config.pipelines,
                &self.config.settings,
            )),
            Route::GetTrigger(id) => self.get_trigger(&id).await,
            Route::Page => Ok(page_response(&request.base_path)),
            Route::Asset(name) => asset_response(&name),
            Route::Preflight { methods } => {
                // `preflight` adds the CORS headers; `handle` adds the same again.
                Ok(self
                    .config
                    .cors
                    .preflight(methods, request.origin.as_deref()))
            }
        }
    }

    async fn post_trigger(&self, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
        let config = &self.config;
        // Another site's page cannot spend its visitors' quota: refused
        // before anything is read or charged.
        if config.cors.refuses_trigger(
            request.origin.as_deref(),
            request.host.as_deref(),
            request.fetch_site.as_deref(),
        ) {
            info!(decision = "rejected", scope = "cross-site", origin = %request.origin.as_deref().unwrap_or("-"),
                  fetch_site = %request.fetch_site.as_deref().unwrap_or("-"), aws_calls = 0);
            return Err(ApiError::CrossSite);
        }
        let asked = parse_trigger_body(&request.body_bytes()?)?;
        let pipeline = match asked.pipeline {
            None => config.pipelines.default_pipeline(),
            Some(name) => {
                config
                    .pipelines
                    .by_public(&name)
                    .ok_or_else(|| ApiError::UnknownPipeline {
                        given: name.chars().take(100).collect(),
                        valid: config
                            .pipelines
                            .public_names()
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                    })?
            }
        };
        let declared = &config.settings.of(&pipeline.public).inputs;
        let inputs = declared
            .resolve(asked.inputs.as_ref())
            .map_err(ApiError::InvalidInputs)?;
        let source_ip = request.source_ip.as_deref().unwrap_or("");
        // The client's own key (its quota) and its network's: a block on
        // either stops it.
        let blocks = block_keys(&config.client_key_secret, source_ip)
            .map_err(|_| ApiError::NoClientAddress)?;
        let keys = quota_keys(&config.client_key_secret, source_ip, &config.networks)
            .map_err(|_| ApiError::NoClientAddress)?;
        let client_key = keys.client.clone();
        let now = self.clock.now_ms();
        // Refused within the last minute (this client, one of its networks,
        // the global budget): the same answer again, without an AWS call.
        let mut remembered: Vec<&str> = vec![client_key.as_str()];
        remembered.extend(keys.networks.iter().map(|(_, key)| key.as_str()));
        remembered.push(GLOBAL);
        if let Some(refusal) = self.memory().recall(&remembered, client_key.as_str(), now) {
            info!(decision = "rejected", from_memory = true, reason = %refusal, client_key = %client_key, aws_calls = 0);
            return Err(refusal);
        }
        let levels = quota_levels(config, &keys);
        let mut record = TriggerRecord::queued(
            trigger_id_at(now),
            &pipeline.public,
            &pipeline.name,
            client_key.clone(),
            inputs,
            now,
            ledger_expires_at(now, config.ledger_retention),
        );
        record.networks = keys
            .networks
            .iter()
            .map(|(level, key)| NetworkKey {
                level: level.name(),
                key: key.clone(),
            })
            .collect();
        record.global_window = config.global_quota.map(|g| g.bucket(now).0);
        let calls_before = self.calls.total();
        let message = work_message(&record, !declared.is_empty());
        let admission = match self
            .table
            .admission()
            .admit(&levels, config.global_quota.as_ref(), &record, &blocks)
            .await
        {
            Ok(admission) => admission,
            Err(e) => self.settle(&record, &levels, &message, e).await?,
        };
        let names = level_names(&keys);
        let (statuses, previous) = match admission {
            // A settled admission knows no earlier state (empty): a refund reads it.
            Admission::Accepted { statuses, previous } => {
                (statuses, (!previous.is_empty()).then_some(previous))
            }
            Admission::Blocked { until } => {
                let retry_after_s = ceil_seconds(until.saturating_sub(now)).max(1);
                info!(decision = "rejected", scope = "blocked", client_key = %client_key,
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                let refusal = ApiError::Blocked { retry_after_s };
                self.memory()
                    .remember(client_key.as_str(), refusal.clone(), now);
                return Err(refusal);
            }
            Admission::Exhausted {
                level,
                statuses,
                retry_after_ms,
            } => {
                let retry_after_s = ceil_seconds(retry_after_ms).max(1);
                let scope = match level {
                    0 => QuotaScope::Client,
                    n => QuotaScope::Network(names[n].clone()),
                };
                info!(decision = "rejected", scope = scope.as_str(), level = %names[level], client_key = %client_key,
                      network_key = %level.checked_sub(1).map(|n| keys.networks[n].1.to_string()).unwrap_or_default(),
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                let refusal = ApiError::QuotaExceeded {
                    scope,
                    limits: limit_items(&names, &levels, &statuses),
                    retry_after_s,
                };
                // Under the key of the level that refused.
                let refused_key = match level {
                    0 => client_key.as_str(),
                    n => keys.networks[n - 1].1.as_str(),
                };
                self.memory().remember(refused_key, refusal.clone(), now);
                return Err(refusal);
            }
            Admission::GlobalExhausted {
                statuses,
                retry_after_ms,
            } => {
                let retry_after_s = ceil_seconds(retry_after_ms).max(1);
                let global = config
                    .global_quota
                    .expect("a global rejection implies a global policy");
                info!(decision = "rejected", scope = "global", client_key = %client_key,
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                let mut limits = limit_items(&names, &levels, &statuses);
                limits.push(LimitItem {
                    name: "global".into(),
                    limit: global.limit,
                    window_s: global.window.as_secs(),
                    remaining: Some(0),
                    reset_s: retry_after_s,
                });
                let refusal = ApiError::QuotaExceeded {
                    scope: QuotaScope::Global,
                    limits,
                    retry_after_s,
                };
                self.memory().remember(GLOBAL, refusal.clone(), now);
                return Err(refusal);
            }
        };
        let accepted = || {
            accepted_response(
                &request.base_path,
                &record.trigger_id,
                &record.pipeline,
                values_to_json(&record.inputs),
                &statuses[0],
                &limit_items(&names, &levels, &statuses),
                now,
            )
        };
        match self.queue.send(&message).await {
            Ok(message_id) => {
                info!(decision = "accepted", trigger_id = %record.trigger_id, client_key = %client_key,
                      pipeline = %record.pipeline, message_id = %message_id, remaining = statuses[0].remaining,
                      aws_calls = self.calls.total() - calls_before);
                Ok(accepted())
            }
            Err(send_error) => self
                .settle_enqueue(&levels, &record, &message, previous.as_deref(), send_error)
                .await
                .map(|()| accepted()),
        }
    }

    /// The admission failed. When the table could not say whether it
    /// committed (every answer lost), one conditional write settles it: a
    /// committed admission goes on as accepted (its quota read back), one
    /// that did not is made void, so the 503 spends nothing. Should even
    /// that fail, the message is sent all the same: a committed trigger is
    /// then never left without one (the worker skips a trigger that has no
    /// record).
    async fn settle(
        &self,
        record: &TriggerRecord,
        levels: &[QuotaLevel],
        message: &WorkMessage,
        error: StoreError,
    ) -> Result<Admission, ApiError> {
        let client_key = &record.client_key;
        if !matches!(error, StoreError::Unavailable(_)) || error.is_unreachable() {
            // Refused (the table is missing, the role may not write it, the
            // request was invalid), contended or never connected: it did
            // not commit, and nothing is enqueued.
            error!(decision = "unavailable", stage = "admit", client_key = %client_key, error = %error,
                   "table unavailable: nothing taken, nothing enqueued");
            return Err(unavailable());
        }
        let mut unreachable = false;
        for attempt in 0..SETTLE_ATTEMPTS {
            match self.table.admission().settle(record).await {
                Ok(Settled::Void) => {
                    warn!(decision = "unavailable", stage = "admit", trigger_id = %record.trigger_id,
                          client_key = %client_key, error = %error,
                          "the admission did not commit (settled): nothing taken, nothing enqueued");
                    return Err(unavailable());
                }
                Ok(Settled::Committed) => {
                    info!(trigger_id = %record.trigger_id, client_key = %client_key, error = %error,
                          "the admission committed though its answer was lost (settled)");
                    let mut statuses = Vec::new();
                    for level in levels {
                        let slots = self.table.admission().slots(level).await;
                        let slots = slots.unwrap_or_else(|_| vec![record.requested_at]);
                        statuses.push(level.policy.status(&slots, record.requested_at));
                    }
                    return Ok(Admission::Accepted {
                        statuses,
                        previous: Vec::new(),
                    });
                }
                Err(e) => {
                    warn!(trigger_id = %record.trigger_id, attempt, error = %e, "could not settle the admission yet");
                    unreachable = e.is_unreachable();
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
            }
        }
        if unreachable {
            // The table cannot be reached at all: the admission almost
            // surely never got there, and a message per request while the
            // table is down would only cost. Nothing is enqueued.
            error!(decision = "unavailable", stage = "admit", trigger_id = %record.trigger_id,
                   client_key = %client_key, error = %error,
                   "table unreachable: nothing taken, nothing enqueued");
            return Err(unavailable());
        }
        // Marked unsettled: the client is told 503 (nothing spent), so the
        // worker gives back whatever a committed admission took and starts
        // nothing; without a committed record it does nothing.
        let unsettled = WorkMessage {
            unsettled: true,
            ..message.clone()
        };
        let sent = self.queue.send(&unsettled).await;
        error!(decision = "unavailable", stage = "settle", trigger_id = %record.trigger_id, client_key = %client_key,
               error = %error, enqueued = sent.is_ok(),
               "the admission's outcome is unknown: a message was sent for the worker to give back what it took, if it committed");
        Err(unavailable())
    }

    /// The enqueue failed after the admission committed: the first of two
    /// ways to settle it decides the answer. Sending again (`Ok`: 202, the
    /// slot is spent on a trigger that runs; the worker runs a trigger once
    /// however many messages carry it) or giving the quota back with the
    /// record (503, nothing spent: a message that did get through finds no
    /// record and runs nothing).
    ///
    /// A send whose outcome is unknown (its answer lost, a timeout, a 500)
    /// may have left a message, so it is sent again before anything is
    /// given back: with the table away, a refund cannot undo that message,
    /// and a 503 would spend a slot and start a run. A refund whose outcome
    /// is unknown rules sending again out (its record may be gone, and the
    /// trigger with it); it is retried under its token, which DynamoDB
    /// applies once.
    async fn settle_enqueue(
        &self,
        levels: &[QuotaLevel],
        record: &TriggerRecord,
        message: &WorkMessage,
        previous: Option<&[Vec<u64>]>,
        send_error: QueueError,
    ) -> Result<(), ApiError> {
        let ids = (&record.trigger_id, &record.client_key);
        let started = tokio::time::Instant::now();
        let mut may_send = true;
        let mut send_again = !send_error.is_unreachable();
        let mut maybe_sent = send_again;
        let mut last_error = send_error.to_string();
        for round in 0..SETTLE_ATTEMPTS {
            if may_send && send_again {
                match self.queue.send(message).await {
                    Ok(message_id) => {
                        info!(decision = "accepted", trigger_id = %ids.0, client_key = %ids.1,
                              message_id = %message_id, error = %last_error, round,
                              "the send failed, and was sent again: the trigger runs once");
                        return Ok(());
                    }
                    Err(e) => {
                        warn!(trigger_id = %ids.0, round, error = %e, "could not send again yet");
                        maybe_sent |= !e.is_unreachable();
                        last_error = e.to_string();
                    }
                }
            }
            let refund = self
                .table
                .admission()
                .refund(levels, self.config.global_quota.as_ref(), record, previous)
                .await;
            match refund {
                Ok(Refund::Refunded) => {
                    warn!(decision = "unavailable", stage = "enqueue", trigger_id = %ids.0,
                          client_key = %ids.1, error = %last_error,
                          "queue unavailable: quota given back, record deleted");
                    return Err(unavailable());
                }
                Ok(Refund::AlreadyPickedUp) => {
                    info!(decision = "accepted", trigger_id = %ids.0, client_key = %ids.1,
                          error = %last_error, "the send reported a failure but a worker already took the trigger");
                    return Ok(());
                }
                Err(e) => {
                    warn!(trigger_id = %ids.0, round, error = %e, send_error = %last_error,
                          "could not give the quota back yet");
                    may_send &= e.is_unreachable();
                }
            }
            send_again = true;
            if round + 1 == SETTLE_ATTEMPTS || started.elapsed() >= ENQUEUE_SETTLE_BUDGET {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 << round)).await;
        }
        error!(decision = "unavailable", stage = "refund", trigger_id = %ids.0,
               client_key = %ids.1, error = %last_error, message_may_exist = maybe_sent,
               refund_may_have_committed = !may_send,
               "queue and table unavailable: unless the refund went through, one quota unit stays taken and the record stays queued (run by the message if one got through)");
        Err(unavailable())
    }

    async fn get_trigger(&self, id: &str) -> Result<HttpResponse, ApiError> {
        let Some(id) = canonical_trigger_id(id) else {
            return Err(ApiError::TriggerNotFound);
        };
        // An id made in the future, or before the ledger's retention: no
        // such record can exist, and no read is spent to say so.
        if !could_exist(&id, self.clock.now_ms(), self.config.ledger_retention) {
            info!(decision = "not_found", trigger_id = %id, reason = "impossible id", aws_calls = 0);
            return Err(ApiError::TriggerNotFound);
        }
        let failed = |e: StoreError| {
            error!(decision = "unavailable", stage = "get", trigger_id = %id, error = %e);
            unavailable()
        };
        let view = self
            .table
            .triggers()
            .view(&id, self.clock.now_ms())
            .await
            .map_err(failed)?
            .ok_or(ApiError::TriggerNotFound)?;
        Ok(HttpResponse::json(200, &view))
    }
}
