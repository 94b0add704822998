//! The CodePipeline adapter: starting an execution, with its failure
//! classified (worker), and finding out why an execution failed (notifier).

use crate::aws::{describe, Lazy};
use crate::rules::email::{FailedAction, FailureDetails};
use crate::rules::retry::{classify_service_error, short_code, Failure, FailureKind};
use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_codepipeline::types::{
    ActionExecutionDetail, ActionExecutionFilter, ActionExecutionStatus, PipelineVariable,
};

#[derive(Debug, Clone)]
pub struct PipelineStarter {
    client: Lazy<aws_sdk_codepipeline::Client>,
}

/// Classifies any SDK error: service errors by code, everything that never got
/// an answer (timeouts, refused connections, unreadable responses) as transient.
pub fn classify<E, R>(err: &SdkError<E, R>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("UnknownServiceError");
            Failure {
                kind: classify_service_error(e.code()),
                code: short_code(code).to_string(),
                message: e.message().unwrap_or("no message").to_string(),
            }
        }
        SdkError::TimeoutError(_) => Failure::transient("Timeout", "the call timed out"),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            Failure::transient("Timeout", "the call timed out")
        }
        SdkError::DispatchFailure(_) => {
            Failure::transient("ConnectionError", "could not reach the service")
        }
        SdkError::ResponseError(_) => {
            Failure::transient("ResponseError", "the response could not be read")
        }
        _ => Failure {
            kind: FailureKind::Transient,
            code: "SdkError".into(),
            message: describe(err),
        },
    }
}

impl PipelineStarter {
    pub fn new(client: impl Into<Lazy<aws_sdk_codepipeline::Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// Starts `pipeline` with `variables` (name, value) as its pipeline
    /// variables; `token` (the trigger id) makes repeated starts of the same
    /// trigger one execution. Returns the execution id.
    pub async fn start(
        &self,
        pipeline: &str,
        token: &str,
        variables: &[(String, String)],
    ) -> Result<String, Failure> {
        let variables = variables
            .iter()
            .map(|(name, value)| {
                PipelineVariable::builder()
                    .name(name)
                    .value(value)
                    .build()
                    .map_err(|e| Failure::permanent("InvalidInputs", e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let output = self
            .client
            .start_pipeline_execution()
            .name(pipeline)
            .client_request_token(token)
            .set_variables((!variables.is_empty()).then_some(variables))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        output
            .pipeline_execution_id()
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::transient("NoExecutionId", "CodePipeline returned no execution id")
            })
    }
}

impl PipelineStarter {
    /// The execution's status as CodePipeline reports it (`InProgress`,
    /// `Succeeded`, ...), or `None` when it does not exist (the worker asks
    /// this about a lane holder nobody has heard of for a while).
    pub async fn execution_status(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Option<String>, Failure> {
        match self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
        {
            Ok(output) => Ok(Some(
                output
                    .pipeline_execution()
                    .and_then(|e| e.status())
                    .map_or("Unknown", |s| s.as_str())
                    .to_string(),
            )),
            Err(e)
                if e.as_service_error().is_some_and(|s| {
                    s.is_pipeline_execution_not_found_exception()
                        || s.is_pipeline_not_found_exception()
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify(&e)),
        }
    }
}

impl PipelineStarter {
    /// The first execution of `pipeline` started through
    /// `StartPipelineExecution` since `since_ms` (less a few seconds of
    /// clock skew), among its 20 latest: a lane holder's start whose record
    /// was lost. While a run holds its CodePipeline's lane, the worker
    /// starts nothing else there, so such an execution is the holder's.
    pub async fn started_since(
        &self,
        pipeline: &str,
        since_ms: u64,
    ) -> Result<Option<String>, Failure> {
        let output = self
            .client
            .list_pipeline_executions()
            .pipeline_name(pipeline)
            .max_results(20)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let earliest = since_ms.saturating_sub(5_000) as i64;
        Ok(output
            .pipeline_execution_summaries()
            .iter()
            .filter(|s| {
                s.trigger()
                    .and_then(|t| t.trigger_type())
                    .is_some_and(|t| t.as_str() == "StartPipelineExecution")
            })
            .filter_map(|s| {
                Some((
                    s.start_time()?.to_millis().ok()?,
                    s.pipeline_execution_id()?,
                ))
            })
            .filter(|(started, _)| *started >= earliest)
            .min_by_key(|(started, _)| *started)
            .map(|(_, id)| id.to_string()))
    }
}

/// Read-only calls about past executions: why one failed.
#[derive(Debug, Clone)]
pub struct PipelineHistory {
    client: Lazy<aws_sdk_codepipeline::Client>,
}

/// Action executions looked at per failure (one page).
const ACTION_PAGE: i32 = 100;

impl PipelineHistory {
    pub fn new(client: impl Into<Lazy<aws_sdk_codepipeline::Client>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// The failed actions (`ListActionExecutions`) and the execution's status
    /// summary (`GetPipelineExecution`), both asked at once. A lookup that
    /// fails is named in [`FailureDetails::unavailable`]; it never fails the caller.
    pub async fn failure_details(&self, pipeline: &str, execution_id: &str) -> FailureDetails {
        let actions = self
            .client
            .list_action_executions()
            .pipeline_name(pipeline)
            .filter(
                ActionExecutionFilter::builder()
                    .pipeline_execution_id(execution_id)
                    .build(),
            )
            .max_results(ACTION_PAGE)
            .send();
        let execution = self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send();
        let (actions, execution) = tokio::join!(actions, execution);
        let mut details = FailureDetails::default();
        match actions {
            Ok(output) => {
                details.actions = output
                    .action_execution_details()
                    .iter()
                    .filter(|a| a.status() == Some(&ActionExecutionStatus::Failed))
                    .map(failed_action)
                    .collect();
            }
            Err(e) => details
                .unavailable
                .push(format!("ListActionExecutions: {}", describe(&e))),
        }
        match execution {
            Ok(output) => {
                details.summary = output
                    .pipeline_execution()
                    .and_then(|e| e.status_summary())
                    .filter(|s| !s.trim().is_empty())
                    .map(str::to_string);
            }
            Err(e) => details
                .unavailable
                .push(format!("GetPipelineExecution: {}", describe(&e))),
        }
        details
    }
}

fn failed_action(detail: &ActionExecutionDetail) -> FailedAction {
    let result = detail.output().and_then(|o| o.execution_result());
    let error = result.and_then(|r| r.error_details());
    FailedAction {
        stage: detail.stage_name().unwrap_or("?").to_string(),
        action: detail.action_name().unwrap_or("?").to_string(),
        code: error.and_then(|e| e.code()).map(str::to_string),
        message: error
            .and_then(|e| e.message())
            .or_else(|| result.and_then(|r| r.external_execution_summary()))
            .map(str::to_string),
        url: result
            .and_then(|r| r.external_execution_url())
            .map(str::to_string),
    }
}
