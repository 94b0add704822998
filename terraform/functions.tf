# The three Lambda functions: provided.al2023 custom runtimes built by
# scripts/build, 128 MB, each with its own log group and role (iam.tf).

locals {
  pipelines = merge(
    var.pipelines,
    var.create_example_pipeline ? { example = module.example_pipeline[0].pipeline_name } : {},
  )
  default_pipeline = coalesce(var.default_pipeline, try(sort(keys(local.pipelines))[0], "none"))
  # PIPELINES: the default target first, then the others; `name` alone when
  # the public name is the pipeline's own.
  pipeline_entries = [
    for public in concat([local.default_pipeline], [for p in sort(keys(local.pipelines)) : p if p != local.default_pipeline]) :
    public == local.pipelines[public] ? public : "${public}=${local.pipelines[public]}"
  ]
  # PIPELINE_SETTINGS: the example pipeline declares its inputs; the
  # functions check every setting again when they start.
  pipeline_settings_by_public = merge(
    var.create_example_pipeline ? { example = module.example_pipeline[0].pipeline_settings } : {},
    var.pipeline_settings,
  )
  pipeline_settings = jsonencode(local.pipeline_settings_by_public)
  pipeline_arns = [
    for name in distinct(values(local.pipelines)) :
    "arn:${data.aws_partition.current.partition}:codepipeline:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:${name}"
  ]

  # Exactly the variables of docs/reference/configuration.md each function reads (checked by
  # tests/terraform.rs against shared::config::VARIABLES).
  function_environment = {
    ingress = {
      TABLE_NAME           = aws_dynamodb_table.main.name
      QUEUE_URL            = aws_sqs_queue.work.url
      PIPELINES            = join(",", local.pipeline_entries)
      QUOTA_LIMIT          = tostring(var.quota_limit)
      QUOTA_WINDOW         = var.quota_window
      NETWORK_QUOTA_LIMITS = var.network_quota_limits
      GLOBAL_QUOTA_LIMIT   = tostring(var.global_quota_limit)
      GLOBAL_QUOTA_WINDOW  = var.global_quota_window
      CLIENT_KEY_SECRET    = random_password.client_key_secret.result
      LEDGER_RETENTION     = var.ledger_retention
      METRICS_NAMESPACE    = var.metrics_namespace
      PIPELINE_SETTINGS    = local.pipeline_settings
      CORS_ALLOWED_ORIGINS = join(",", var.cors_allowed_origins)
      REFUSAL_MEMORY       = var.refusal_memory
    }
    worker = {
      TABLE_NAME        = aws_dynamodb_table.main.name
      DLQ_URL           = aws_sqs_queue.work_dlq.url
      PIPELINES         = join(",", local.pipeline_entries)
      MAX_ATTEMPTS      = tostring(var.max_attempts)
      RUN_POLL_INTERVAL = var.run_poll_interval
      RUN_CHECK_AFTER   = var.run_check_after
      LEDGER_RETENTION  = var.ledger_retention
      METRICS_NAMESPACE = var.metrics_namespace
      PIPELINE_SETTINGS = local.pipeline_settings
    }
    notifier = {
      TABLE_NAME        = aws_dynamodb_table.main.name
      TOPIC_ARN         = aws_sns_topic.alerts.arn
      NOTIFY_STATES     = join(",", var.notify_states)
      LEDGER_RETENTION  = var.ledger_retention
      WORKER_ROLE_ARN   = aws_iam_role.function["worker"].arn
      METRICS_NAMESPACE = var.metrics_namespace
    }
  }

  functions = {
    ingress = {
      description = "POST /trigger and GET /triggers/{id}: quota, ledger, enqueue"
      timeout     = 10
      concurrency = var.ingress_reserved_concurrency
    }
    worker = {
      description = "Starts CodePipeline for queued triggers"
      timeout     = var.worker_timeout_seconds
      concurrency = var.worker_max_concurrency
    }
    notifier = {
      description = "E-mails on-call on pipeline outcomes"
      timeout     = 30
      concurrency = 5
    }
  }

  built_architecture = try(trimspace(file("${var.lambda_package_dir}/architecture")), "not built")
}

# Generated here, kept in the state (encrypt the state backend), never in a tfvars file.
resource "random_password" "client_key_secret" {
  length  = 48
  special = false
}

resource "aws_cloudwatch_log_group" "function" {
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:The functions call only AWS public endpoints; a VPC would add NAT cost and cold-start latency for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code signing needs a Signer profile the build does not have; packages come from scripts/build and are pinned by source_code_hash.
  #checkov:skip=CKV_AWS_50:Each decision is one JSON log line with its ids; X-Ray would add a *-resource permission for no extra insight.
  #checkov:skip=CKV_AWS_116:ingress and worker are invoked synchronously (API Gateway, event source mapping), where a function DLQ never applies; the notifier's async failures go to the events DLQ through aws_lambda_function_event_invoke_config.
  for_each      = local.functions
  function_name = "${var.name}-${each.key}"
  description   = each.value.description
  role          = aws_iam_role.function[each.key].arn
  runtime       = "provided.al2023"
  handler       = "bootstrap"
  architectures = [var.architecture]
  memory_size   = 128
  timeout       = each.value.timeout
  kms_key_arn   = aws_kms_key.main.arn

  filename         = "${var.lambda_package_dir}/${each.key}/bootstrap.zip"
  source_code_hash = filebase64sha256("${var.lambda_package_dir}/${each.key}/bootstrap.zip")

  reserved_concurrent_executions = each.value.concurrency

  environment {
    variables = local.function_environment[each.key]
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.function[each.key].name
  }

  lifecycle {
    precondition {
      condition     = local.built_architecture == var.architecture
      error_message = "The packages in lambda_package_dir were built for ${local.built_architecture}, not ${var.architecture}: run LAMBDA_ARCH=${var.architecture} scripts/build."
    }
    precondition {
      condition     = length(local.pipelines) > 0 && contains(keys(local.pipelines), local.default_pipeline)
      error_message = "Set pipelines (public name => CodePipeline name) or create_example_pipeline; default_pipeline must be one of the public names."
    }
    precondition {
      condition     = alltrue([for public in keys(local.pipeline_settings_by_public) : contains(keys(local.pipelines), public)])
      error_message = "Every key of pipeline_settings must be a public name of pipelines."
    }
  }

  depends_on = [aws_iam_role_policy.logs]
}

# API Gateway may invoke the ingress for each of its routes (api.tf), and
# nothing else: METHOD/path, a path parameter as *.
resource "aws_lambda_permission" "api" {
  for_each      = toset([for route in values(local.api_routes) : "${route.method}${replace(route.path, "/\\{[a-z]+\\}/", "*")}"])
  statement_id  = "api-${replace(replace(each.key, "/", "-"), "*", "id")}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["ingress"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.api.execution_arn}/${var.stage_name}/${each.key}"
}

resource "aws_lambda_event_source_mapping" "worker" {
  event_source_arn                   = aws_sqs_queue.work.arn
  function_name                      = aws_lambda_function.function["worker"].arn
  batch_size                         = var.worker_batch_size
  maximum_batching_window_in_seconds = var.worker_batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = var.worker_max_concurrency
  }
}

# EventBridge invokes the notifier asynchronously: Lambda retries a failed
# invocation (a failed publish) twice, then the event goes to the events DLQ.
resource "aws_lambda_function_event_invoke_config" "notifier" {
  function_name                = aws_lambda_function.function["notifier"].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = 21600

  destination_config {
    on_failure {
      destination = aws_sqs_queue.events_dlq.arn
    }
  }
}
