# The three Lambda functions: provided.al2023 custom runtimes built by
# scripts/build, 128 MB, each with its own log group and role (iam.tf).

locals {
  # Checked and rendered by modules/settings (main.tf): the allowlist and
  # exactly the variables of docs/reference/configuration.md each function
  # reads (tests/terraform.rs checks them against shared::config::VARIABLES).
  pipelines            = module.settings.pipelines
  function_environment = module.settings.environment
  pipeline_arns = [
    for name in module.settings.codepipeline_names :
    "arn:${data.aws_partition.current.partition}:codepipeline:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:${name}"
  ]

  functions = {
    ingress = {
      description = "POST /trigger and GET /triggers/{id}: quota, ledger, enqueue"
      timeout     = 10
      concurrency = module.settings.reserved_concurrency["ingress"]
    }
    worker = {
      description = "Starts CodePipeline for queued triggers"
      timeout     = var.worker_timeout_seconds
      concurrency = module.settings.reserved_concurrency["worker"]
    }
    notifier = {
      description = "E-mails on-call on pipeline outcomes"
      timeout     = 30
      concurrency = module.settings.reserved_concurrency["notifier"]
    }
  }

  built_architecture = try(trimspace(file("${var.lambda_package_dir}/architecture")), "not built")
}

# Generated here, kept in the state (encrypt the state backend), never in a
# tfvars file. Two secrets take turns: a rotation (client_key_generation one
# up) makes the other slot's secret anew and keeps this one as the previous
# for the overlap. Slot 0 keeps no keeper at generation 0, so a deployment
# from before rotations keeps its secret.
resource "random_password" "client_key_secret" {
  for_each = module.settings.client_key_slots
  length   = 48
  special  = false
  keepers  = each.value <= 0 ? null : { generation = tostring(each.value) }
}

moved {
  from = random_password.client_key_secret
  to   = random_password.client_key_secret["0"]
}

locals {
  client_key_current_slot    = module.settings.client_key_current_slot
  client_key_secret          = random_password.client_key_secret[local.client_key_current_slot].result
  client_key_secret_previous = random_password.client_key_secret[local.client_key_current_slot == "0" ? "1" : "0"].result
}

resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_338:Kept log_retention_days (30 by default: as long as the ledger keeps the triggers its lines speak of); set 365 where an audit asks for a year (docs/cost.md prices it).
  for_each          = local.functions
  name              = "/aws/lambda/${var.name}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_117:The functions call only AWS public endpoints; a VPC would add NAT cost and cold-start latency for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code signing needs a Signer profile the build does not have; packages come from scripts/build and are pinned by source_code_hash.
  #checkov:skip=CKV_AWS_50:Each decision is one JSON log line with its ids; X-Ray would add a *-resource permission for no extra insight.
  #checkov:skip=CKV_AWS_115:Concurrency is reserved only with reserve_concurrency (a new account cannot reserve any: AWS keeps 100 unreserved); without it the route throttles bound the ingress and the event source mapping bounds the worker (docs/deploy.md, "Concurrency").
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

  # null: none reserved, the account's unreserved pool (reserve_concurrency).
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
    maximum_concurrency = module.settings.worker_max_concurrency
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
