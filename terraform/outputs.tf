output "trigger_url" {
  description = "POST here to trigger the default pipeline."
  value       = "${aws_api_gateway_stage.api.invoke_url}/trigger"
}

output "status_url_pattern" {
  description = "GET a trigger's status ({id} is the trigger id)."
  value       = "${aws_api_gateway_stage.api.invoke_url}/triggers/{id}"
}

output "queue_url" {
  description = "The work queue (QUEUE_URL of trigger-ops)."
  value       = aws_sqs_queue.work.url
}

output "dlq_url" {
  description = "The work queue's dead-letter queue (DLQ_URL of trigger-ops)."
  value       = aws_sqs_queue.work_dlq.url
}

output "events_dlq_url" {
  description = "Pipeline events the notifier could not handle."
  value       = aws_sqs_queue.events_dlq.url
}

output "table_name" {
  description = "The DynamoDB table (TABLE_NAME of trigger-ops)."
  value       = aws_dynamodb_table.main.name
}

output "topic_arn" {
  description = "The on-call SNS topic."
  value       = aws_sns_topic.alerts.arn
}

output "pipelines" {
  description = "Public name => CodePipeline name, as deployed."
  value       = local.pipelines
}

output "dashboard_url" {
  description = "The CloudWatch dashboard: decisions, runs, queue depths, errors, e-mails."
  value       = "https://${data.aws_region.current.name}.console.aws.amazon.com/cloudwatch/home?region=${data.aws_region.current.name}#dashboards:name=${aws_cloudwatch_dashboard.main.dashboard_name}"
}

output "operators_policy_arn" {
  description = "Attach to the operators' group or role: exactly what trigger-ops calls."
  value       = aws_iam_policy.operators.arn
}

output "ingress_function_name" {
  description = "The ingress function: trigger-ops clients --secret-from-function reads CLIENT_KEY_SECRET from it."
  value       = aws_lambda_function.function["ingress"].function_name
}

output "notifier_function_name" {
  description = "The notifier: trigger-ops events replay hands it dead events again."
  value       = aws_lambda_function.function["notifier"].function_name
}
