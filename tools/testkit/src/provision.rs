//! Creating the resources Terraform creates, on an emulator: the local stack
//! and the tests use these so both see the same shapes.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

#[derive(Debug, thiserror::Error)]
#[error("provisioning {what}: {detail}")]
pub struct ProvisionError {
    what: String,
    detail: String,
}

fn err(what: &str, detail: impl std::fmt::Debug) -> ProvisionError {
    ProvisionError {
        what: what.to_string(),
        detail: format!("{detail:?}"),
    }
}

/// The one table: `pk` string key, on demand, TTL on `expires_at`. A table
/// of that name that exists already is kept as it is (the local stack
/// restarted on the same emulator).
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    if client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| err(name, e))?,
        )
        .set_attribute_definitions(Some(
            ["pk", "day", "run_id", "requested_at"]
                .into_iter()
                .map(|attribute| {
                    AttributeDefinition::builder()
                        .attribute_name(attribute)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|e| err(name, e))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ))
        .set_global_secondary_indexes(Some(ledger_indexes(name)?))
        .send()
        .await
        .map_err(|e| err(name, e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(|e| err(name, e))?,
        )
        .send()
        .await
        .map_err(|e| err(name, e))?;
    Ok(())
}

/// The ledger's indexes: by day and by run, each sorted by request time,
/// every attribute projected.
fn ledger_indexes(name: &str) -> Result<Vec<GlobalSecondaryIndex>, ProvisionError> {
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(|e| err(name, e))
    };
    [
        (shared::aws::table::ledger::BY_DAY, "day"),
        (shared::aws::table::ledger::BY_RUN, "run_id"),
    ]
    .into_iter()
    .map(|(index, hash)| {
        GlobalSecondaryIndex::builder()
            .index_name(index)
            .key_schema(key(hash, KeyType::Hash)?)
            .key_schema(key("requested_at", KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build(),
            )
            .build()
            .map_err(|e| err(name, e))
    })
    .collect()
}

/// The ARN of a queue.
pub async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> Result<String, ProvisionError> {
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| err(url, e))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| err(url, "no queue ARN"))
}

/// URLs of a work queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub queue_url: String,
    pub dlq_url: String,
}

/// Visibility timeout of the work queue (Terraform: at least 6x the worker timeout).
pub const WORK_QUEUE_VISIBILITY_S: u32 = 180;

/// The work queue with a redrive policy to its DLQ after `max_receive_count`.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    name: &str,
    max_receive_count: u32,
) -> Result<Queues, ProvisionError> {
    let dlq_name = format!("{name}-dlq");
    let dlq_url = client
        .create_queue()
        .queue_name(&dlq_name)
        .attributes(QueueAttributeName::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .map_err(|e| err(&dlq_name, e))?
        .queue_url
        .ok_or_else(|| err(&dlq_name, "no queue URL"))?;
    let dlq_arn = queue_arn(client, &dlq_url).await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": max_receive_count,
    });
    let queue_url = client
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            WORK_QUEUE_VISIBILITY_S.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| err(name, e))?
        .queue_url
        .ok_or_else(|| err(name, "no queue URL"))?;
    Ok(Queues { queue_url, dlq_url })
}

/// The trust policy CodePipeline needs to assume its service role.
const PIPELINE_TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codepipeline.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// A minimal two-stage pipeline (`Source` from S3, `Build` on CodeBuild)
/// named `name`, with a service role of its own: the demo pipeline of the
/// local stack. A pipeline of that name that exists already is kept.
pub async fn create_pipeline(
    iam: &aws_sdk_iam::Client,
    codepipeline: &aws_sdk_codepipeline::Client,
    name: &str,
) -> Result<(), ProvisionError> {
    if codepipeline.get_pipeline().name(name).send().await.is_ok() {
        return Ok(());
    }
    use aws_sdk_codepipeline::types::{
        ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore,
        ArtifactStoreType, InputArtifact, OutputArtifact, PipelineDeclaration, StageDeclaration,
    };
    let role_arn = create_role(iam, &format!("{name}-role"), PIPELINE_TRUST_POLICY).await?;
    let action = |action_name: &str, category: ActionCategory, provider: &str| {
        ActionTypeId::builder()
            .category(category)
            .owner(ActionOwner::Aws)
            .provider(provider)
            .version("1")
            .build()
            .map(|type_id| {
                ActionDeclaration::builder()
                    .name(action_name)
                    .action_type_id(type_id)
            })
            .map_err(|e| err(name, e))
    };
    let source = action("Source", ActionCategory::Source, "S3")?
        .configuration("S3Bucket", format!("{name}-source"))
        .configuration("S3ObjectKey", "source.zip")
        .output_artifacts(
            OutputArtifact::builder()
                .name("src")
                .build()
                .map_err(|e| err(name, e))?,
        )
        .build()
        .map_err(|e| err(name, e))?;
    let build = action("Build", ActionCategory::Build, "CodeBuild")?
        .configuration("ProjectName", format!("{name}-build"))
        .input_artifacts(
            InputArtifact::builder()
                .name("src")
                .build()
                .map_err(|e| err(name, e))?,
        )
        .build()
        .map_err(|e| err(name, e))?;
    let stage = |stage_name: &str, action: ActionDeclaration| {
        StageDeclaration::builder()
            .name(stage_name)
            .actions(action)
            .build()
            .map_err(|e| err(name, e))
    };
    let pipeline = PipelineDeclaration::builder()
        .name(name)
        .role_arn(role_arn)
        .artifact_store(
            ArtifactStore::builder()
                .r#type(ArtifactStoreType::S3)
                .location(format!("{name}-artifacts"))
                .build()
                .map_err(|e| err(name, e))?,
        )
        .stages(stage("Source", source)?)
        .stages(stage("Build", build)?)
        .build()
        .map_err(|e| err(name, e))?;
    codepipeline
        .create_pipeline()
        .pipeline(pipeline)
        .send()
        .await
        .map_err(|e| err(name, e))?;
    Ok(())
}

/// The on-call topic; returns its ARN.
pub async fn create_topic(
    client: &aws_sdk_sns::Client,
    name: &str,
) -> Result<String, ProvisionError> {
    client
        .create_topic()
        .name(name)
        .send()
        .await
        .map_err(|e| err(name, e))?
        .topic_arn
        .ok_or_else(|| err(name, "no topic ARN"))
}

/// A queue subscribed to `topic_arn` that receives what on-call would get
/// by e-mail (SNS's JSON envelope with `Subject` and `Message`); returns its URL.
pub async fn create_inbox(
    sns: &aws_sdk_sns::Client,
    sqs: &aws_sdk_sqs::Client,
    topic_arn: &str,
    name: &str,
) -> Result<String, ProvisionError> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| err(name, e))?
        .queue_url
        .ok_or_else(|| err(name, "no queue URL"))?;
    let arn = queue_arn(sqs, &url).await?;
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(arn)
        .send()
        .await
        .map_err(|e| err(name, e))?;
    Ok(url)
}

/// The rule on the default bus with `pattern`, delivering matched events to
/// the queue `target_queue_arn` (the local stand-in for the notifier's
/// Lambda target, which the emulator cannot invoke). Idempotent.
pub async fn create_event_rule(
    events: &aws_sdk_eventbridge::Client,
    name: &str,
    pattern: &serde_json::Value,
    target_queue_arn: &str,
) -> Result<(), ProvisionError> {
    events
        .put_rule()
        .name(name)
        .event_pattern(pattern.to_string())
        .send()
        .await
        .map_err(|e| err(name, e))?;
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("notifier")
        .arn(target_queue_arn)
        .build()
        .map_err(|e| err(name, e))?;
    let output = events
        .put_targets()
        .rule(name)
        .targets(target)
        .send()
        .await
        .map_err(|e| err(name, e))?;
    if output.failed_entry_count > 0 {
        return Err(err(name, output.failed_entries()));
    }
    Ok(())
}

/// An empty zip archive: the code of a function that is only configured
/// (the emulator never runs it).
const EMPTY_ZIP: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// A Lambda function named `name` with `environment`, as Terraform deploys
/// the ingress (for tests of what operators read from it).
pub async fn create_function(
    iam: &aws_sdk_iam::Client,
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    environment: &[(&str, &str)],
) -> Result<(), ProvisionError> {
    let role_arn = create_role(
        iam,
        &format!("{name}-role"),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    )
    .await?;
    let mut variables = aws_sdk_lambda::types::Environment::builder();
    for (key, value) in environment {
        variables = variables.variables(*key, *value);
    }
    lambda
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role_arn)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_smithy_types::Blob::new(EMPTY_ZIP))
                .build(),
        )
        .environment(variables.build())
        .send()
        .await
        .map_err(|e| err(name, e))?;
    Ok(())
}

/// A role `name` with the trust policy `trust`; returns its ARN.
async fn create_role(
    iam: &aws_sdk_iam::Client,
    name: &str,
    trust: &str,
) -> Result<String, ProvisionError> {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust)
        .send()
        .await
        .map_err(|e| err(name, e))?
        .role
        .map(|r| r.arn)
        .ok_or_else(|| err(name, "no role"))
}
