//! The ingress handler: `POST /trigger`, `GET /triggers/{id}`, `GET /pipelines`,
//! the public page (`GET /` and its files) and CORS preflights (`OPTIONS`)
//! from API Gateway events. Rules live in `shared`; this wires them to the
//! table and the queue.

mod charge;
mod groups;
mod instance;

pub use instance::Ingress;

use charge::Charge;
use serde_json::Value;
use shared::aws::queue::QueueError;
use shared::aws::table::admission::{Admission, QuotaLevel, Refund, Settled};
use shared::aws::table::StoreError;
use shared::clock::EpochMillis;
use shared::rules::http::event::{parse_event, EventError, HttpRequest};
use shared::rules::http::response::{ApiError, HttpResponse, UNAVAILABLE_RETRY_AFTER_S};
use shared::rules::http::trigger_api::{
    accepted_response, catalog_response, parse_trigger_body, route, Route,
};
use shared::rules::inputs::InputValues;
use shared::rules::keys::PresentedKey;
use shared::rules::message::WorkMessage;
use shared::rules::metrics;
use shared::rules::page::{asset_response, page_response};
use shared::rules::pipelines::Pipeline;
use shared::rules::quota::GlobalPolicy;
use shared::rules::trigger::{
    canonical_trigger_id, could_exist, ledger_expires_at, trigger_id_at, TriggerRecord,
};
use tracing::{error, info, warn};

/// How many times an admission of unknown outcome, or an enqueue that
/// failed, is settled before the ingress gives up asking (with pauses of
/// 0.1, 0.2, 0.4 s).
const SETTLE_ATTEMPTS: u32 = 3;

/// No further round of settling an enqueue starts after this long, so the
/// answer comes well inside the function's 10 s (each call is bounded by
/// the SDK's operation timeout).
const ENQUEUE_SETTLE_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        retry_after_s: UNAVAILABLE_RETRY_AFTER_S,
    }
}

impl Ingress {
    /// One metric line per `POST /trigger` decision; an acceptance by its
    /// lane.
    fn count(&self, result: &Result<HttpResponse, ApiError>, keyed: bool) {
        let lane = if keyed { "key" } else { "anonymous" };
        match result {
            Ok(_) => self.metrics.count(metrics::ACCEPTED, Some(("Lane", lane))),
            Err(ApiError::QuotaExceeded { scope, .. }) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", scope.as_str()))),
            Err(ApiError::Blocked { .. }) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "blocked"))),
            Err(ApiError::CrossSite) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "cross-site"))),
            Err(ApiError::InvalidKey(_)) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "invalid-key"))),
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
                self.count(&result, request.key.is_some());
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
        let presented = self.presented_key(request)?;
        let asked = parse_trigger_body(&request.body_bytes()?)?;
        let pipeline = self.pipeline_of(asked.pipeline)?;
        let declared = &config.settings.of(&pipeline.public).inputs;
        let inputs = declared
            .resolve(asked.inputs.as_ref())
            .map_err(ApiError::InvalidInputs)?;
        let source_ip = request.source_ip.as_deref().unwrap_or("");
        let now = self.clock.now_ms();
        let calls_before = self.calls.total();
        let charge = match presented {
            Some(key) => {
                self.key_charge(key, &pipeline.public, source_ip, now)
                    .await?
            }
            None => self.address_charge(source_ip, &*self.groups(now).await, now)?,
        };
        // Refused within the last minute (this client, one of its networks,
        // the global budget, or this key): the same answer again, without
        // an AWS call.
        let remembered: Vec<&str> = charge.remembered.iter().map(String::as_str).collect();
        if let Some(refusal) = self.memory().recall(&remembered, remembered[0], now) {
            info!(decision = "rejected", from_memory = true, reason = %refusal, client_key = %charge.client_key, aws_calls = 0);
            return Err(refusal);
        }
        let record = self.new_record(pipeline, &charge, inputs, now);
        let message = WorkMessage::of(&record, !declared.is_empty());
        let key_hash = charge.key.as_ref().map(|k| k.hash.as_str());
        let admitted = self
            .table
            .admission()
            .admit(
                &charge.levels,
                charge.global.as_ref(),
                &record,
                &charge.blocks,
                key_hash,
            )
            .await;
        let admission = match admitted {
            Ok(admission) => admission,
            Err(e) => self.settle(&record, &charge.levels, &message, e).await?,
        };
        let (statuses, previous) =
            self.decide(admission, &charge, now, self.calls.total() - calls_before)?;
        let accepted = || {
            accepted_response(
                &request.base_path,
                &record,
                &statuses[0],
                &charge.limits(&statuses),
                now,
            )
        };
        match self.queue.send(&message).await {
            Ok(message_id) => {
                info!(decision = "accepted", trigger_id = %record.trigger_id, client_key = %record.client_key,
                      lane = record.lane().as_str(), key = %record.key.as_deref().unwrap_or("-"),
                      pipeline = %record.pipeline, message_id = %message_id, remaining = statuses[0].remaining,
                      aws_calls = self.calls.total() - calls_before);
                Ok(accepted())
            }
            Err(send_error) => self
                .settle_enqueue(
                    &charge.levels,
                    charge.global.as_ref(),
                    &record,
                    &message,
                    previous.as_deref(),
                    send_error,
                )
                .await
                .map(|()| accepted()),
        }
    }

    /// Refused before anything is read or charged: a trigger from another
    /// site's page (it cannot spend its visitors' quota, a key included),
    /// or a key of the wrong shape (it never falls back to the anonymous
    /// lane). Otherwise the key presented, if any.
    fn presented_key<'r>(
        &self,
        request: &'r HttpRequest,
    ) -> Result<Option<&'r PresentedKey>, ApiError> {
        if self.config.cors.refuses_trigger(
            request.origin.as_deref(),
            request.host.as_deref(),
            request.fetch_site.as_deref(),
        ) {
            info!(decision = "rejected", scope = "cross-site", origin = %request.origin.as_deref().unwrap_or("-"),
                  fetch_site = %request.fetch_site.as_deref().unwrap_or("-"), aws_calls = 0);
            return Err(ApiError::CrossSite);
        }
        match &request.key {
            None => Ok(None),
            Some(Ok(key)) => Ok(Some(key)),
            Some(Err(refusal)) => {
                info!(decision = "rejected", scope = "invalid-key", reason = %refusal, aws_calls = 0);
                Err(ApiError::InvalidKey(*refusal))
            }
        }
    }

    /// The trigger's record, `queued`, with everything it is charged to
    /// (so a refusal can give each back).
    fn new_record(
        &self,
        pipeline: &Pipeline,
        charge: &Charge,
        inputs: InputValues,
        now: EpochMillis,
    ) -> TriggerRecord {
        let mut record = TriggerRecord::queued(
            trigger_id_at(now),
            &pipeline.public,
            &pipeline.name,
            charge.client_key.clone(),
            inputs,
            now,
            ledger_expires_at(now, self.config.ledger_retention),
        );
        record.networks = charge.networks.clone();
        record.previous_keys = charge.previous_keys.clone();
        record.key = charge.key.as_ref().map(|k| k.name.clone());
        record.global_window = charge.global.map(|g| g.bucket(now).0);
        record
    }

    /// The public pipeline a request names, or the default.
    fn pipeline_of(&self, asked: Option<String>) -> Result<&Pipeline, ApiError> {
        let pipelines = &self.config.pipelines;
        match asked {
            None => Ok(pipelines.default_pipeline()),
            Some(name) => pipelines
                .by_public(&name)
                .ok_or_else(|| ApiError::UnknownPipeline {
                    given: name.chars().take(100).collect(),
                    valid: pipelines
                        .public_names()
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                }),
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
        global: Option<&GlobalPolicy>,
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
                .refund(levels, global, record, previous)
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
