//! The CodePipeline adapter: starting an execution, with its failure classified.

use crate::retry::{classify_service_error, short_code, Failure, FailureKind};
use aws_sdk_codepipeline::error::{ProvideErrorMetadata, SdkError};

#[derive(Debug, Clone)]
pub struct PipelineStarter {
    client: aws_sdk_codepipeline::Client,
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
            message: crate::aws::describe(err),
        },
    }
}

impl PipelineStarter {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        Self { client }
    }

    /// Starts `pipeline`; `token` (the trigger id) makes repeated starts of
    /// the same trigger one execution. Returns the execution id.
    pub async fn start(&self, pipeline: &str, token: &str) -> Result<String, Failure> {
        let output = self
            .client
            .start_pipeline_execution()
            .name(pipeline)
            .client_request_token(token)
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
