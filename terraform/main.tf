# The root module's pieces are split by concern: api, functions, queues,
# table, events, notifications, alarms, waf, iam, kms, variables, outputs,
# versions. This file holds the settings every function and the edge take,
# checked at plan (modules/settings), and the optional demo pipeline.

module "settings" {
  source = "./modules/settings"

  pipelines        = var.pipelines
  default_pipeline = var.default_pipeline
  example_pipeline = var.create_example_pipeline ? {
    name     = module.example_pipeline[0].pipeline_name
    settings = module.example_pipeline[0].pipeline_settings
  } : null
  pipeline_settings    = var.pipeline_settings
  cors_allowed_origins = var.cors_allowed_origins
  quota_limit          = var.quota_limit
  quota_window         = var.quota_window
  network_quota_limits = var.network_quota_limits
  global_quota_limit   = var.global_quota_limit
  global_quota_window  = var.global_quota_window
  ledger_retention     = var.ledger_retention
  metrics_namespace    = var.metrics_namespace
  run_poll_interval    = var.run_poll_interval
  run_check_after      = var.run_check_after
  max_attempts         = var.max_attempts
  notify_states        = var.notify_states
  refusal_memory       = var.refusal_memory

  client_key_generation     = var.client_key_generation
  client_key_previous_until = var.client_key_previous_until

  api_throttle_rate_limit        = var.api_throttle_rate_limit
  api_throttle_burst_limit       = var.api_throttle_burst_limit
  trigger_throttle_rate_limit    = var.trigger_throttle_rate_limit
  trigger_throttle_burst_limit   = var.trigger_throttle_burst_limit
  status_throttle_rate_limit     = var.status_throttle_rate_limit
  status_throttle_burst_limit    = var.status_throttle_burst_limit
  preflight_throttle_rate_limit  = var.preflight_throttle_rate_limit
  preflight_throttle_burst_limit = var.preflight_throttle_burst_limit
  enable_waf                     = var.enable_waf
  waf_window_seconds             = var.waf_window_seconds
  waf_rate_limit                 = var.waf_rate_limit
  waf_trigger_rate_limit         = var.waf_trigger_rate_limit

  reserve_concurrency           = var.reserve_concurrency
  ingress_reserved_concurrency  = var.ingress_reserved_concurrency
  worker_max_concurrency        = var.worker_max_concurrency
  notifier_reserved_concurrency = var.notifier_reserved_concurrency

  resources = {
    table_name                 = aws_dynamodb_table.main.name
    queue_url                  = aws_sqs_queue.work.url
    dlq_url                    = aws_sqs_queue.work_dlq.url
    topic_arn                  = aws_sns_topic.alerts.arn
    worker_role_arn            = aws_iam_role.function["worker"].arn
    client_key_secret          = local.client_key_secret
    client_key_secret_previous = local.client_key_secret_previous
  }
}

module "example_pipeline" {
  source = "./modules/example-pipeline"
  count  = var.create_example_pipeline ? 1 : 0

  name               = "${var.name}-example"
  log_retention_days = var.log_retention_days
}
