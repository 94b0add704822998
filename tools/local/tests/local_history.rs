//! The local stack's answers to CodePipeline's read calls about the runs it
//! played, read through the real SDK client as the notifier reads them.

use aws_sdk_codepipeline::types::{
    ActionExecutionFilter, ActionExecutionStatus, PipelineExecutionStatus,
};
use local_stack::pipeline_runs::{
    serve_history, Run, RunBook, FAILED_CODE, FAILED_MESSAGE, FAILED_STAGE,
};
use local_stack::Stopping;
use shared::rules::status::PipelineState;

async fn history(
    book: &RunBook,
) -> (
    aws_sdk_codepipeline::Client,
    tokio::sync::watch::Sender<bool>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, stopping) = Stopping::channel();
    tokio::spawn(serve_history(listener, stopping, book.clone()));
    let sdk = testkit::sdk_config_at(&url).await;
    (aws_sdk_codepipeline::Client::new(&sdk), stop)
}

#[tokio::test]
async fn a_failed_run_reads_as_failed_with_its_stage_and_reason() {
    let book = RunBook::default();
    book.set(
        "exec-1",
        Run {
            pipeline: "broken".into(),
            state: PipelineState::Failed,
            started_ms: 1_000,
            ended_ms: Some(3_000),
        },
    );
    let (client, stop) = history(&book).await;
    let filter = ActionExecutionFilter::builder()
        .pipeline_execution_id("exec-1")
        .build();
    let actions = client
        .list_action_executions()
        .pipeline_name("broken")
        .filter(filter)
        .send()
        .await
        .expect("ListActionExecutions");
    let failed: Vec<_> = actions
        .action_execution_details()
        .iter()
        .filter(|a| a.status() == Some(&ActionExecutionStatus::Failed))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].stage_name(), Some(FAILED_STAGE));
    let error = failed[0]
        .output()
        .and_then(|o| o.execution_result())
        .and_then(|r| r.error_details());
    assert_eq!(error.and_then(|e| e.code()), Some(FAILED_CODE));
    assert_eq!(error.and_then(|e| e.message()), Some(FAILED_MESSAGE));

    let execution = client
        .get_pipeline_execution()
        .pipeline_name("broken")
        .pipeline_execution_id("exec-1")
        .send()
        .await
        .expect("GetPipelineExecution");
    let execution = execution.pipeline_execution().expect("an execution");
    assert_eq!(execution.status(), Some(&PipelineExecutionStatus::Failed));
    assert!(execution
        .status_summary()
        .unwrap_or_default()
        .contains(FAILED_MESSAGE));
    let _ = stop.send(true);
}

#[tokio::test]
async fn runs_it_did_not_play_are_not_found() {
    let (client, stop) = history(&RunBook::default()).await;
    let err = client
        .get_pipeline_execution()
        .pipeline_name("app")
        .pipeline_execution_id("never-played")
        .send()
        .await
        .expect_err("not found");
    assert!(err
        .into_service_error()
        .is_pipeline_execution_not_found_exception());
    let _ = stop.send(true);
}
