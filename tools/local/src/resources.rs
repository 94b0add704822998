//! The local stack's resources on the emulator: what Terraform creates, by the
//! same provisioning code the tests use, named from one prefix so a restart
//! on the same emulator finds them again.

use crate::error::LocalError;
use shared::rules::pipeline_event::rule_pattern;
use std::path::Path;
use testkit::provision;

/// How many times the rule target's queue delivers an event before it moves
/// to the events DLQ: EventBridge's first try and Lambda's two async retries.
pub const EVENT_DELIVERIES: u32 = 3;
/// How long the notifier has for one event before it is delivered again.
pub const EVENT_VISIBILITY_S: i32 = 30;

/// The clients provisioning needs.
pub struct Clients<'a> {
    pub dynamodb: &'a aws_sdk_dynamodb::Client,
    pub sqs: &'a aws_sdk_sqs::Client,
    pub sns: &'a aws_sdk_sns::Client,
    pub iam: &'a aws_sdk_iam::Client,
    pub codepipeline: &'a aws_sdk_codepipeline::Client,
    pub events: &'a aws_sdk_eventbridge::Client,
}

/// What was made, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub table_name: String,
    pub queue_url: String,
    pub dlq_url: String,
    /// Stand-in for the notifier's Lambda target: the rule delivers here.
    pub events_queue_url: String,
    pub events_dlq_url: String,
    pub topic_arn: String,
    /// A queue subscribed to the topic: the e-mails on-call would get.
    pub inbox_url: String,
    pub rule_name: String,
    /// The CodePipeline names provisioned.
    pub pipelines: Vec<String>,
    /// Public name => CodePipeline name, as Terraform's output `pipelines`.
    pub catalog: std::collections::BTreeMap<String, String>,
}

fn failed(what: impl std::fmt::Display) -> LocalError {
    LocalError::Failed(format!("could not provision the local stack: {what}"))
}

/// Creates (or finds) every resource. `max_attempts` is the worker's
/// `MAX_ATTEMPTS`; the work queue's redrive backstop is two more, as in
/// Terraform.
pub async fn provision(
    clients: &Clients<'_>,
    prefix: &str,
    pipelines: &[String],
    max_attempts: u64,
) -> Result<Resources, LocalError> {
    let table_name = format!("{prefix}-triggers");
    provision::create_table(clients.dynamodb, &table_name)
        .await
        .map_err(failed)?;
    let redrive = u32::try_from(max_attempts)
        .unwrap_or(u32::MAX)
        .saturating_add(2);
    let work = provision::create_queues(clients.sqs, &format!("{prefix}-work"), redrive)
        .await
        .map_err(failed)?;
    let events =
        // The rule target moves an event to the DLQ itself after its last
        // delivery (as Lambda's on-failure destination); the queue's own
        // redrive is a backstop behind it.
        provision::create_queues(clients.sqs, &format!("{prefix}-events"), EVENT_DELIVERIES + 2)
            .await
            .map_err(failed)?;
    let topic_arn = provision::create_topic(clients.sns, &format!("{prefix}-on-call"))
        .await
        .map_err(failed)?;
    let inbox_url = provision::create_inbox(
        clients.sns,
        clients.sqs,
        &topic_arn,
        &format!("{prefix}-on-call-inbox"),
    )
    .await
    .map_err(failed)?;
    for pipeline in pipelines {
        provision::create_pipeline(clients.iam, clients.codepipeline, pipeline)
            .await
            .map_err(failed)?;
    }
    let rule_name = format!("{prefix}-pipeline-state");
    let names: Vec<&str> = pipelines.iter().map(String::as_str).collect();
    let events_arn = provision::queue_arn(clients.sqs, &events.queue_url)
        .await
        .map_err(failed)?;
    provision::create_event_rule(
        clients.events,
        &rule_name,
        &rule_pattern(&names),
        &events_arn,
    )
    .await
    .map_err(failed)?;
    Ok(Resources {
        table_name,
        queue_url: work.queue_url,
        dlq_url: work.dlq_url,
        events_queue_url: events.queue_url,
        events_dlq_url: events.dlq_url,
        topic_arn,
        inbox_url,
        rule_name,
        pipelines: pipelines.to_vec(),
        catalog: Default::default(),
    })
}

impl Resources {
    /// The functions' settings with this stack's resource names.
    pub fn functions_env(&self, env: shared::config::Env) -> shared::config::Env {
        env.with("TABLE_NAME", self.table_name.clone())
            .with("QUEUE_URL", self.queue_url.clone())
            .with("DLQ_URL", self.dlq_url.clone())
            .with("TOPIC_ARN", self.topic_arn.clone())
    }

    /// The resources in the shape of `terraform output -json`, so
    /// `trigger-ops --terraform-outputs FILE dlq …` works on the local stack.
    /// `base_url` is where the HTTP API is served.
    /// `notifier` is the notifier's name at the stack's Lambda `Invoke`;
    /// `access` (output `local`, which Terraform never has) says how to reach
    /// the engines, so `trigger-ops --local` needs nothing exported.
    pub fn outputs_json(
        &self,
        base_url: &str,
        notifier: &str,
        access: &ops::targets::LocalAccess,
    ) -> serde_json::Value {
        let output = |value: serde_json::Value| serde_json::json!({"sensitive": false, "type": "string", "value": value});
        serde_json::json!({
            "notifier_function_name": output(notifier.into()),
            (ops::targets::OUTPUT_LOCAL): {
                "sensitive": true,
                "type": "object",
                "value": access,
            },
            "trigger_url": output(format!("{base_url}/trigger").into()),
            "status_url_pattern": output(format!("{base_url}/triggers/{{id}}").into()),
            "queue_url": output(self.queue_url.clone().into()),
            "dlq_url": output(self.dlq_url.clone().into()),
            "events_dlq_url": output(self.events_dlq_url.clone().into()),
            "table_name": output(self.table_name.clone().into()),
            "topic_arn": output(self.topic_arn.clone().into()),
            "pipelines": {"sensitive": false, "type": ["map", "string"], "value": self.catalog},
        })
    }

    /// Writes [`Resources::outputs_json`] to `path`.
    pub fn write_outputs(
        &self,
        path: &Path,
        base_url: &str,
        notifier: &str,
        access: &ops::targets::LocalAccess,
    ) -> Result<(), LocalError> {
        let text = serde_json::to_string_pretty(&self.outputs_json(base_url, notifier, access))
            .map_err(|e| LocalError::Failed(e.to_string()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                LocalError::Failed(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(path, text)
            .map_err(|e| LocalError::Failed(format!("cannot write {}: {e}", path.display())))
    }
}
