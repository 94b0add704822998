//! The ingress handler: `POST /trigger`, `GET /triggers/{id}`, `GET /pipelines`,
//! the public page (`GET /` and its files) and CORS preflights (`OPTIONS`)
//! from API Gateway events. Rules live in `shared`; this wires them to the
//! table and the queue.

use serde_json::Value;
use shared::aws::queue::WorkQueue;
use shared::aws::table::admission::{Admission, Refund};
use shared::aws::table::{StoreError, Table};
use shared::aws::CallCounter;
use shared::clock::Clock;
use shared::config::IngressConfig;
use shared::lambda::metrics::{Metrics, MetricsSink};
use shared::rules::client_key::block_keys;
use shared::rules::http::event::{parse_event, EventError, HttpRequest};
use shared::rules::http::response::{
    ApiError, HttpResponse, QuotaScope, UNAVAILABLE_RETRY_AFTER_S,
};
use shared::rules::http::trigger_api::{
    accepted_response, catalog_response, parse_trigger_body, route, Route,
};
use shared::rules::inputs::values_to_json;
use shared::rules::message::{WorkMessage, MESSAGE_VERSION};
use shared::rules::metrics;
use shared::rules::page::{asset_response, page_response};
use shared::rules::status::TriggerStatus;
use shared::rules::time_format::{ceil_seconds, rfc3339};
use shared::rules::trigger::{
    canonical_trigger_id, ledger_expires_at, new_trigger_id, TriggerRecord,
};
use std::sync::Arc;
use tracing::{error, info, warn};

pub struct Ingress {
    config: IngressConfig,
    table: Table,
    queue: WorkQueue,
    clock: Arc<dyn Clock>,
    calls: CallCounter,
    metrics: Metrics,
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

    /// One metric line per `POST /trigger` decision.
    fn count(&self, result: &Result<HttpResponse, ApiError>) {
        match result {
            Ok(_) => self.metrics.count(metrics::ACCEPTED, None),
            Err(ApiError::QuotaExceeded { scope, .. }) => {
                let scope = match scope {
                    QuotaScope::Client => "client",
                    QuotaScope::Global { .. } => "global",
                };
                self.metrics
                    .count(metrics::REJECTED, Some(("Scope", scope)))
            }
            Err(ApiError::Blocked { .. }) => self
                .metrics
                .count(metrics::REJECTED, Some(("Scope", "blocked"))),
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
        // The client's own key (its quota) and its network's: a block on
        // either stops it.
        let blocks = block_keys(
            &config.client_key_secret,
            request.source_ip.as_deref().unwrap_or(""),
        )
        .map_err(|_| ApiError::NoClientAddress)?;
        let client_key = blocks[0].clone();
        let now = self.clock.now_ms();
        let record = TriggerRecord {
            trigger_id: new_trigger_id(),
            pipeline: pipeline.public.clone(),
            target: pipeline.name.clone(),
            status: TriggerStatus::Queued,
            requested_at: now,
            updated_at: now,
            client_key: client_key.clone(),
            inputs,
            run_id: None,
            execution_id: None,
            error_code: None,
            error_message: None,
            expires_at: ledger_expires_at(now, config.ledger_retention),
            stages: Vec::new(),
        };
        let calls_before = self.calls.total();
        let admission = self
            .table
            .admission()
            .admit(&config.quota, config.global_quota.as_ref(), &record, &blocks)
            .await
            .map_err(|e| {
                error!(decision = "unavailable", stage = "admit", client_key = %client_key, error = %e,
                       "table unavailable: nothing taken, nothing enqueued");
                unavailable()
            })?;
        let (status, previous) = match admission {
            Admission::Accepted { status, previous } => (status, previous),
            Admission::Blocked { until } => {
                let retry_after_s = ceil_seconds(until.saturating_sub(now)).max(1);
                info!(decision = "rejected", scope = "blocked", client_key = %client_key,
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                return Err(ApiError::Blocked { retry_after_s });
            }
            Admission::ClientExhausted(status) => {
                let retry_after_s = ceil_seconds(status.reset_after_ms).max(1);
                info!(decision = "rejected", scope = "client", client_key = %client_key,
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                return Err(ApiError::QuotaExceeded {
                    scope: QuotaScope::Client,
                    policy: config.quota,
                    client: status,
                    retry_after_s,
                });
            }
            Admission::GlobalExhausted {
                client,
                retry_after_ms,
            } => {
                let retry_after_s = ceil_seconds(retry_after_ms).max(1);
                let global = config
                    .global_quota
                    .expect("a global rejection implies a global policy");
                info!(decision = "rejected", scope = "global", client_key = %client_key,
                      retry_after_s, aws_calls = self.calls.total() - calls_before);
                return Err(ApiError::QuotaExceeded {
                    scope: QuotaScope::Global {
                        limit: global.limit,
                        window_s: global.window.as_secs(),
                    },
                    policy: config.quota,
                    client,
                    retry_after_s,
                });
            }
        };
        let message = WorkMessage {
            version: MESSAGE_VERSION,
            trigger_id: record.trigger_id.clone(),
            pipeline: record.target.clone(),
            requested_at: rfc3339(now),
            client_key: client_key.to_string(),
            inputs: match values_to_json(&record.inputs) {
                serde_json::Value::Object(values) if !declared.is_empty() => Some(values),
                _ => None,
            },
        };
        let accepted = || {
            accepted_response(
                &request.base_path,
                &record.trigger_id,
                &record.pipeline,
                values_to_json(&record.inputs),
                &config.quota,
                &status,
                now,
            )
        };
        match self.queue.send(&message).await {
            Ok(message_id) => {
                info!(decision = "accepted", trigger_id = %record.trigger_id, client_key = %client_key,
                      pipeline = %record.pipeline, message_id = %message_id, remaining = status.remaining,
                      aws_calls = self.calls.total() - calls_before);
                Ok(accepted())
            }
            Err(send_error) => self
                .give_back(&record, &previous, &send_error.to_string())
                .await
                .map(|()| accepted()),
        }
    }

    /// The enqueue failed: return the quota and delete the record, then 503.
    /// `Ok` only if the trigger turned out to be in the queue after all.
    async fn give_back(
        &self,
        record: &TriggerRecord,
        previous: &[u64],
        send_error: &str,
    ) -> Result<(), ApiError> {
        let config = &self.config;
        let refund = self
            .table
            .admission()
            .refund(
                &config.quota,
                config.global_quota.as_ref(),
                record,
                previous,
            )
            .await;
        match refund {
            Ok(Refund::Refunded) => {
                warn!(decision = "unavailable", stage = "enqueue", trigger_id = %record.trigger_id,
                      client_key = %record.client_key, error = %send_error,
                      "queue unavailable: quota given back, record deleted");
                Err(unavailable())
            }
            Ok(Refund::AlreadyPickedUp) => {
                info!(decision = "accepted", trigger_id = %record.trigger_id, client_key = %record.client_key,
                      error = %send_error, "the send reported a failure but a worker already took the trigger");
                Ok(())
            }
            Err(e) => {
                error!(decision = "unavailable", stage = "refund", trigger_id = %record.trigger_id,
                       client_key = %record.client_key, error = %e, send_error = %send_error,
                       "queue and table unavailable: one quota unit stays taken, the record stays queued without a message");
                Err(unavailable())
            }
        }
    }

    async fn get_trigger(&self, id: &str) -> Result<HttpResponse, ApiError> {
        let Some(id) = canonical_trigger_id(id) else {
            return Err(ApiError::TriggerNotFound);
        };
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
