//! CodePipeline's part, which the emulator does not play: for each execution
//! the worker starts, publish `STARTED`, then each of its stages (`Source`,
//! `Build`, `Deploy`) `STARTED` and `SUCCEEDED` over the run time, then
//! `SUCCEEDED` (or, for pipelines configured to fail, `Build` and the
//! execution `FAILED`) through the emulator's EventBridge, where the rule
//! routes them to the notifier. The notifier's
//! read calls about a run (`ListActionExecutions`, `GetPipelineExecution`)
//! are answered here too, from the runs played, so a failure e-mail names
//! its stage, action and reason.

use super::console::Console;
use super::http_server::{self, json_response, read_body};
use crate::stopping::Stopping;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_smithy_types::DateTime;
use hyper::body::Incoming;
use hyper::Request;
use serde_json::{json, Value};
use shared::aws::table::Table;
use shared::clock::Clock;
use shared::rules::pipeline_event::{
    stage_change_detail, state_change_detail, EVENT_DETAIL_TYPE, EVENT_SOURCE, STAGE_DETAIL_TYPE,
};
use shared::rules::status::PipelineState;
use shared::rules::time_format::rfc3339;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::emulation::CodePipelineFront;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::warn;

/// How often the emulator is asked for new executions.
const POLL: Duration = Duration::from_millis(500);

/// The stages every played run goes through, in order.
pub const STAGES: [&str; 3] = ["Source", FAILED_STAGE, "Deploy"];

/// The failure a failing pipeline's runs report.
pub const FAILED_STAGE: &str = "Build";
pub const FAILED_ACTION: &str = "Build";
pub const FAILED_CODE: &str = "JobFailed";
pub const FAILED_MESSAGE: &str =
    "Build failed: command \"make test\" exited with status 2 (played by trigger-ops local)";

/// One run as played.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub pipeline: String,
    pub state: PipelineState,
    pub started_ms: u64,
    pub ended_ms: Option<u64>,
}

/// Every run played so far, by execution id.
#[derive(Clone, Default)]
pub struct RunBook(Arc<Mutex<HashMap<String, Run>>>);

impl RunBook {
    pub fn set(&self, execution_id: &str, run: Run) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(execution_id.to_string(), run);
    }

    pub fn get(&self, execution_id: &str) -> Option<Run> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(execution_id)
            .cloned()
    }
}

pub struct PipelineRuns {
    /// On the emulator: where the worker's executions are listed.
    pub codepipeline: aws_sdk_codepipeline::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub pipelines: Vec<String>,
    pub failing: HashSet<String>,
    pub run_time: Duration,
    pub book: RunBook,
    /// Who started each execution (the worker's starts go through it; the
    /// stack's pushes are recorded in it): the events' `execution-trigger`.
    pub front: CodePipelineFront,
    /// Finds the trigger of an execution, for the hop lines.
    pub table: Table,
    pub console: Console,
    pub clock: Arc<dyn Clock>,
}

impl PipelineRuns {
    /// Watches for new executions until `stopping` fires. Executions that
    /// existed before the start (an earlier session) are not played again.
    /// Runs in play when the stack stops end at once, with their outcome
    /// published, so no execution is left running.
    pub async fn run(self: Arc<Self>, mut stopping: Stopping) {
        let mut seen: HashSet<String> = self
            .executions()
            .await
            .into_iter()
            .map(|(_, id)| id)
            .collect();
        let mut plays = JoinSet::new();
        while !stopping.is_set() {
            for (pipeline, execution_id) in self.executions().await {
                if seen.insert(execution_id.clone()) {
                    let runs = Arc::clone(&self);
                    let stopping = stopping.clone();
                    plays.spawn(async move { runs.play(&pipeline, &execution_id, stopping).await });
                }
            }
            while plays.try_join_next().is_some() {}
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stopping.wait() => {}
            }
        }
        while plays.join_next().await.is_some() {}
    }

    /// (pipeline, execution id) of the latest executions of every pipeline.
    async fn executions(&self) -> Vec<(String, String)> {
        let mut all = Vec::new();
        for pipeline in &self.pipelines {
            match self
                .codepipeline
                .list_pipeline_executions()
                .pipeline_name(pipeline)
                .max_results(100)
                .send()
                .await
            {
                Ok(output) => all.extend(
                    output
                        .pipeline_execution_summaries()
                        .iter()
                        .filter_map(|s| s.pipeline_execution_id())
                        .map(|id| (pipeline.clone(), id.to_string())),
                ),
                Err(e) => {
                    warn!(pipeline = %pipeline, error = %shared::aws::describe(&e), "could not list executions")
                }
            }
        }
        all
    }

    /// One run: `STARTED`, its stages over the run time, then its outcome.
    async fn play(&self, pipeline: &str, execution_id: &str, mut stopping: Stopping) {
        let started_ms = self.clock.now_ms();
        let mut run = Run {
            pipeline: pipeline.to_string(),
            state: PipelineState::Started,
            started_ms,
            ended_ms: None,
        };
        self.book.set(execution_id, run.clone());
        self.front.played(execution_id, api_status(run.state));
        self.publish_execution(&run, execution_id).await;
        self.show_variables(pipeline, execution_id).await;
        let step = self.run_time / STAGES.len() as u32;
        let mut outcome = PipelineState::Succeeded;
        for stage in STAGES {
            let detail = stage_change_detail(pipeline, execution_id, stage, PipelineState::Started);
            self.publish(STAGE_DETAIL_TYPE, detail, execution_id, stage)
                .await;
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = stopping.wait() => {}
            }
            let fails = stage == FAILED_STAGE && self.failing.contains(pipeline);
            let state = if fails {
                PipelineState::Failed
            } else {
                PipelineState::Succeeded
            };
            let detail = stage_change_detail(pipeline, execution_id, stage, state);
            self.publish(STAGE_DETAIL_TYPE, detail, execution_id, stage)
                .await;
            if fails {
                outcome = PipelineState::Failed;
            }
            if fails || stopping.is_set() {
                break;
            }
        }
        run.state = outcome;
        run.ended_ms = Some(self.clock.now_ms());
        self.book.set(execution_id, run.clone());
        self.front.played(execution_id, api_status(run.state));
        self.publish_execution(&run, execution_id).await;
    }

    /// The execution's state change, as the run book has it.
    async fn publish_execution(&self, run: &Run, execution_id: &str) {
        let detail = state_change_detail(
            &run.pipeline,
            execution_id,
            run.state,
            Some(&rfc3339(run.started_ms)),
        );
        self.publish(EVENT_DETAIL_TYPE, detail, execution_id, "")
            .await;
    }

    /// The trigger that started an execution, for the hop lines.
    async fn trigger_of(&self, execution_id: &str) -> Option<String> {
        self.table
            .triggers()
            .execution_owner(execution_id)
            .await
            .ok()
            .flatten()
            .map(|o| o.trigger_id)
    }

    /// Prints the pipeline variables the execution was started with.
    async fn show_variables(&self, pipeline: &str, execution_id: &str) {
        let execution = self
            .codepipeline
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await;
        let variables: Vec<String> = match &execution {
            Ok(output) => output
                .pipeline_execution()
                .map(|e| e.variables())
                .unwrap_or_default()
                .iter()
                .map(|v| {
                    format!(
                        "{}={}",
                        v.name().unwrap_or("?"),
                        v.resolved_value().unwrap_or("")
                    )
                })
                .collect(),
            Err(e) => vec![format!("(unreadable: {})", shared::aws::describe(e))],
        };
        if variables.is_empty() {
            return;
        }
        let trigger_id = self.trigger_of(execution_id).await;
        self.console.hop(
            self.clock.now_ms(),
            trigger_id.as_deref(),
            "pipeline",
            &format!(
                "{pipeline} execution {execution_id} variables: {}",
                variables.join(", ")
            ),
        );
    }

    /// Who started `execution_id`, as CodePipeline's events say: the
    /// worker's starts and the stack's pushes as recorded; anything else
    /// was started from the console.
    fn execution_trigger(&self, execution_id: &str) -> Value {
        self.front
            .started(execution_id)
            .map(|started| started.event_trigger())
            .unwrap_or_else(|| {
                json!({"trigger-type": "StartPipelineExecution",
                       "trigger-detail": "arn:aws:sts::123456789012:assumed-role/Admin/console"})
            })
    }

    /// Puts a state change on the default bus, as CodePipeline does.
    async fn publish(&self, detail_type: &str, mut detail: Value, execution_id: &str, stage: &str) {
        detail["execution-trigger"] = self.execution_trigger(execution_id);
        let now = self.clock.now_ms();
        let what = format!(
            "{}{}{} {}",
            detail["pipeline"].as_str().unwrap_or_default(),
            if stage.is_empty() { "" } else { " stage " },
            stage,
            detail["state"].as_str().unwrap_or_default()
        );
        let entry = PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .time(DateTime::from_millis(now as i64))
            .build();
        let result = self.events.put_events().entries(entry).send().await;
        let trigger_id = self.trigger_of(execution_id).await;
        let what = match result {
            Ok(output) if output.failed_entry_count() == 0 => {
                format!("{what} execution {execution_id}: event published")
            }
            Ok(output) => format!(
                "{what}: EventBridge refused the event: {:?}",
                output.entries()
            ),
            Err(e) => format!(
                "{what}: could not publish the event: {}",
                shared::aws::describe(&e)
            ),
        };
        self.console
            .hop(now, trigger_id.as_deref(), "pipeline", &what);
    }
}

/// The CodePipeline status name of a played state.
fn execution_status(state: PipelineState) -> &'static str {
    match state {
        PipelineState::Started | PipelineState::Resumed => "InProgress",
        PipelineState::Succeeded => "Succeeded",
        PipelineState::Failed => "Failed",
        PipelineState::Stopped | PipelineState::Canceled => "Stopped",
        PipelineState::Stopping => "Stopping",
        PipelineState::Superseded => "Superseded",
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn not_found(execution_id: &str) -> (u16, Value) {
    (
        400,
        json!({"__type": "PipelineExecutionNotFoundException",
               "message": format!("no execution {execution_id} was played by trigger-ops local")}),
    )
}

/// The answer to one CodePipeline call (`X-Amz-Target`, JSON body) from the
/// runs played: status and JSON body, errors in the JSON 1.1 protocol's shape.
pub fn answer(target: &str, body: &Value, book: &RunBook) -> (u16, Value) {
    let operation = target.rsplit('.').next().unwrap_or_default();
    let execution_id = match operation {
        "ListActionExecutions" => body["filter"]["pipelineExecutionId"].as_str(),
        "GetPipelineExecution" => body["pipelineExecutionId"].as_str(),
        _ => {
            return (
                400,
                json!({"__type": "UnknownOperationException",
                       "message": format!("trigger-ops local answers only ListActionExecutions and GetPipelineExecution, not {operation:?}")}),
            )
        }
    };
    let Some(execution_id) = execution_id else {
        return (
            400,
            json!({"__type": "ValidationException", "message": "no pipeline execution id"}),
        );
    };
    let Some(run) = book
        .get(execution_id)
        .filter(|r| body["pipelineName"].as_str() == Some(r.pipeline.as_str()))
    else {
        return not_found(execution_id);
    };
    let ended = seconds(run.ended_ms.unwrap_or(run.started_ms));
    match operation {
        "GetPipelineExecution" => {
            let mut execution = json!({
                "pipelineName": run.pipeline,
                "pipelineVersion": 1,
                "pipelineExecutionId": execution_id,
                "status": execution_status(run.state),
            });
            if run.state == PipelineState::Failed {
                execution["statusSummary"] =
                    format!("Stage {FAILED_STAGE} failed: {FAILED_MESSAGE}").into();
            }
            (200, json!({ "pipelineExecution": execution }))
        }
        _ => {
            let action = |stage: &str, status: &str, result: Value| {
                json!({
                    "pipelineExecutionId": execution_id,
                    "actionExecutionId": format!("{execution_id}-{stage}"),
                    "pipelineVersion": 1,
                    "stageName": stage,
                    "actionName": stage,
                    "startTime": seconds(run.started_ms),
                    "lastUpdateTime": ended,
                    "status": status,
                    "output": {"executionResult": result},
                })
            };
            let mut details = vec![action(
                "Source",
                "Succeeded",
                json!({"externalExecutionSummary": "source.zip"}),
            )];
            match run.state {
                PipelineState::Failed => details.push(action(
                    FAILED_STAGE,
                    "Failed",
                    json!({
                        "externalExecutionId": format!("{}-build:{execution_id}", run.pipeline),
                        "externalExecutionSummary": FAILED_MESSAGE,
                        "externalExecutionUrl": "http://127.0.0.1/local-build-log",
                        "errorDetails": {"code": FAILED_CODE, "message": FAILED_MESSAGE},
                    }),
                )),
                PipelineState::Succeeded => {
                    details.push(action(FAILED_STAGE, "Succeeded", json!({})))
                }
                _ => details.push(action(FAILED_STAGE, "InProgress", json!({}))),
            }
            details.reverse();
            (200, json!({ "actionExecutionDetails": details }))
        }
    }
}

/// Serves [`answer`] over HTTP for the notifier's CodePipeline client.
pub async fn serve_history(listener: TcpListener, stopping: Stopping, book: RunBook) {
    http_server::serve(
        listener,
        stopping,
        move |request: Request<Incoming>, _peer| {
            let book = book.clone();
            async move {
                let target = request
                    .headers()
                    .get("x-amz-target")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = read_body(request.into_body(), 64 * 1024).await;
                let parsed: Value = body
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(Value::Null);
                let (status, body) = answer(&target, &parsed, &book);
                json_response(status, "application/x-amz-json-1.1", &body)
            }
        },
    )
    .await
}

/// CodePipeline's API name of an execution's state (`GetPipelineExecution`).
fn api_status(state: PipelineState) -> &'static str {
    match state {
        PipelineState::Started | PipelineState::Resumed => "InProgress",
        PipelineState::Succeeded => "Succeeded",
        PipelineState::Failed => "Failed",
        PipelineState::Stopping => "Stopping",
        PipelineState::Stopped => "Stopped",
        PipelineState::Canceled => "Cancelled",
        PipelineState::Superseded => "Superseded",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(state: PipelineState) -> RunBook {
        let book = RunBook::default();
        book.set(
            "exec-1",
            Run {
                pipeline: "broken".into(),
                state,
                started_ms: 1_000,
                ended_ms: Some(4_000),
            },
        );
        book
    }

    #[test]
    fn a_failed_run_names_its_stage_and_reason() {
        let book = book_with(PipelineState::Failed);
        let (status, body) = answer(
            "CodePipeline_20150709.ListActionExecutions",
            &json!({"pipelineName": "broken", "filter": {"pipelineExecutionId": "exec-1"}}),
            &book,
        );
        assert_eq!(status, 200);
        let failed: Vec<&Value> = body["actionExecutionDetails"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "Failed")
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["stageName"], FAILED_STAGE);
        assert_eq!(
            failed[0]["output"]["executionResult"]["errorDetails"]["code"],
            FAILED_CODE
        );

        let (status, body) = answer(
            "CodePipeline_20150709.GetPipelineExecution",
            &json!({"pipelineName": "broken", "pipelineExecutionId": "exec-1"}),
            &book,
        );
        assert_eq!(status, 200);
        assert_eq!(body["pipelineExecution"]["status"], "Failed");
        assert!(body["pipelineExecution"]["statusSummary"]
            .as_str()
            .unwrap()
            .contains(FAILED_MESSAGE));
    }

    #[test]
    fn unknown_runs_pipelines_and_operations_are_errors() {
        let book = book_with(PipelineState::Succeeded);
        let get = "CodePipeline_20150709.GetPipelineExecution";
        let (status, body) = answer(
            get,
            &json!({"pipelineName": "broken", "pipelineExecutionId": "nope"}),
            &book,
        );
        assert_eq!(
            (status, body["__type"].as_str()),
            (400, Some("PipelineExecutionNotFoundException"))
        );
        let (status, _) = answer(
            get,
            &json!({"pipelineName": "other", "pipelineExecutionId": "exec-1"}),
            &book,
        );
        assert_eq!(status, 400);
        let (status, body) = answer("CodePipeline_20150709.DeletePipeline", &json!({}), &book);
        assert_eq!(
            (status, body["__type"].as_str()),
            (400, Some("UnknownOperationException"))
        );
        let (status, body) = answer(get, &Value::Null, &book);
        assert_eq!(
            (status, body["__type"].as_str()),
            (400, Some("ValidationException"))
        );
    }
}
