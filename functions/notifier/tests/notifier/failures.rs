//! Why a run failed, in its e-mail, even when CodePipeline cannot say.

use crate::harness::*;

#[tokio::test]
async fn a_failure_email_leads_with_the_failed_stage_action_and_error() {
    let h = harness().await;
    let client = codepipeline_replaying(
        Ok(vec![
            failed_action("Source", "Checkout", ActionExecutionStatus::Succeeded),
            failed_action("Build", "CodeBuild", ActionExecutionStatus::Failed),
        ]),
        "An action in this pipeline failed",
    );
    let notifier = h.notifier_with(&h.topic, "FAILED", client);
    let (_, event) = event("enterprise-app-pipeline", EXECUTION, PipelineState::Failed);
    let (_, body) = h.the_one_email(&notifier, event).await;
    assert!(
        body.starts_with(
            "Pipeline enterprise-app-pipeline FAILED.\n\n\
             Failed stage   Build\n\
             Failed action  CodeBuild\n\
             Error          JobFailed: Build failed: exit status 2\n\
             Details        https://console.aws.amazon.com/codebuild/b-1\n\
             Summary        An action in this pipeline failed\n\n"
        ),
        "{body}"
    );
    assert!(
        !body.contains("Checkout"),
        "succeeded actions are not listed"
    );
}

#[tokio::test]
async fn a_throttled_failure_lookup_still_sends_the_email_saying_so() {
    let h = harness().await;
    let client = codepipeline_replaying(Err(400), "An action in this pipeline failed");
    let notifier = h.notifier_with(&h.topic, "FAILED", client);
    let (_, event) = event("app", EXECUTION, PipelineState::Failed);
    let (_, body) = h.the_one_email(&notifier, event).await;
    assert!(body.contains(
        "Reason         unavailable (ListActionExecutions: ThrottlingException: Rate exceeded)"
    ));
    assert!(body.contains("Summary        An action in this pipeline failed"));
}
