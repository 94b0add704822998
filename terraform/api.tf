# The public REST API: every route the ingress answers (docs/reference/http-api.md,
# shared::rules::http::trigger_api::ROUTES) is a Lambda proxy integration of the
# ingress, on a throttled stage with JSON access logs: the public page and
# its files, the catalog, POST /trigger, GET /triggers/{id}, and OPTIONS
# (CORS preflights) on the three API routes.

resource "aws_api_gateway_rest_api" "api" {
  name        = var.name
  description = "pipeline-trigger: public, quota-limited pipeline triggers"

  # The page's files and larger answers travel gzipped to browsers that ask.
  minimum_compression_size = 1024

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

# /assets, /pipelines, /trigger, /triggers, and the two path parameters
# /assets/{file} and /triggers/{id}.
resource "aws_api_gateway_resource" "top" {
  for_each    = toset(["assets", "pipelines", "trigger", "triggers"])
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_rest_api.api.root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_resource" "parameter" {
  for_each    = { assets = "{file}", triggers = "{id}" }
  rest_api_id = aws_api_gateway_rest_api.api.id
  parent_id   = aws_api_gateway_resource.top[each.key].id
  path_part   = each.value
}

locals {
  api_resources = {
    "/"              = aws_api_gateway_rest_api.api.root_resource_id
    "/assets/{file}" = aws_api_gateway_resource.parameter["assets"].id
    "/pipelines"     = aws_api_gateway_resource.top["pipelines"].id
    "/trigger"       = aws_api_gateway_resource.top["trigger"].id
    "/triggers/{id}" = aws_api_gateway_resource.parameter["triggers"].id
  }

  # "METHOD path" => where it goes; every one to the ingress.
  api_routes = {
    "GET /"                  = { path = "/", method = "GET" }
    "GET /assets/{file}"     = { path = "/assets/{file}", method = "GET" }
    "GET /pipelines"         = { path = "/pipelines", method = "GET" }
    "OPTIONS /pipelines"     = { path = "/pipelines", method = "OPTIONS" }
    "POST /trigger"          = { path = "/trigger", method = "POST" }
    "OPTIONS /trigger"       = { path = "/trigger", method = "OPTIONS" }
    "GET /triggers/{id}"     = { path = "/triggers/{id}", method = "GET" }
    "OPTIONS /triggers/{id}" = { path = "/triggers/{id}", method = "OPTIONS" }
  }
}

resource "aws_api_gateway_method" "route" {
  #checkov:skip=CKV_AWS_59:Public by design: anyone may trigger and read the page; a trigger id (a ULID) is the capability to read its status; the per-client quota, stage throttling and the optional WAF are the guard.
  #checkov:skip=CKV2_AWS_53:The ingress validates every request itself (JSON object of known fields up to 8 KiB, typed inputs, ids, file names) and answers problem+json; a gateway validator would answer differently.
  for_each      = local.api_routes
  rest_api_id   = aws_api_gateway_rest_api.api.id
  resource_id   = local.api_resources[each.value.path]
  http_method   = each.value.method
  authorization = "NONE"

  request_parameters = {
    for name in regexall("{([a-z]+)}", each.value.path) : "method.request.path.${name[0]}" => true
  }
}

resource "aws_api_gateway_integration" "route" {
  for_each                = aws_api_gateway_method.route
  rest_api_id             = aws_api_gateway_rest_api.api.id
  resource_id             = each.value.resource_id
  http_method             = each.value.http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = aws_lambda_function.function["ingress"].invoke_arn
}

# The resources and routes of earlier versions keep their API Gateway objects.
moved {
  from = aws_api_gateway_resource.trigger
  to   = aws_api_gateway_resource.top["trigger"]
}

moved {
  from = aws_api_gateway_resource.triggers
  to   = aws_api_gateway_resource.top["triggers"]
}

moved {
  from = aws_api_gateway_resource.trigger_id
  to   = aws_api_gateway_resource.parameter["triggers"]
}

moved {
  from = aws_api_gateway_method.post_trigger
  to   = aws_api_gateway_method.route["POST /trigger"]
}

moved {
  from = aws_api_gateway_method.get_trigger
  to   = aws_api_gateway_method.route["GET /triggers/{id}"]
}

moved {
  from = aws_api_gateway_integration.post_trigger
  to   = aws_api_gateway_integration.route["POST /trigger"]
}

moved {
  from = aws_api_gateway_integration.get_trigger
  to   = aws_api_gateway_integration.route["GET /triggers/{id}"]
}

# API Gateway's own answers (a throttle's 429, an unknown path or a method
# a path does not take, a WAF block without its own answer, a 5xx) in the
# product's voice:
# problem+json with Retry-After where it applies and the CORS headers an
# allowed origin needs (modules/settings/edge-answers.json).
resource "aws_api_gateway_gateway_response" "edge" {
  for_each      = module.settings.edge.gateway
  rest_api_id   = aws_api_gateway_rest_api.api.id
  response_type = each.key
  # null: the status API Gateway chose (DEFAULT_4XX covers several).
  status_code = module.settings.edge.answers[each.value].status == null ? null : tostring(module.settings.edge.answers[each.value].status)

  response_templates = {
    "application/json" = module.settings.edge.answers[each.value].body
  }
  response_parameters = {
    for name, value in module.settings.edge.answers[each.value].headers : "gatewayresponse.header.${name}" => "'${value}'"
  }
}

moved {
  from = aws_api_gateway_gateway_response.cors["DEFAULT_4XX"]
  to   = aws_api_gateway_gateway_response.edge["DEFAULT_4XX"]
}

moved {
  from = aws_api_gateway_gateway_response.cors["DEFAULT_5XX"]
  to   = aws_api_gateway_gateway_response.edge["DEFAULT_5XX"]
}

resource "aws_api_gateway_deployment" "api" {
  rest_api_id = aws_api_gateway_rest_api.api.id

  triggers = {
    redeployment = sha1(jsonencode([
      local.api_resources,
      [for key, method in aws_api_gateway_method.route : method.id],
      [for key, integration in aws_api_gateway_integration.route : integration.id],
      [for key, response in aws_api_gateway_gateway_response.edge : response.id],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_338:Kept log_retention_days (30 by default: as long as the ledger keeps the triggers its lines speak of); set 365 where an audit asks for a year (docs/cost.md prices it).
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_api_gateway_stage" "api" {
  #checkov:skip=CKV_AWS_73:Requests are traced by the ingress's JSON log line (request id, trigger id, client key); X-Ray adds cost without insight here.
  #checkov:skip=CKV_AWS_120:Responses are per-client and must not be cached (quota headers, 202/429).
  #checkov:skip=CKV2_AWS_29:The WAF is on by default (enable_waf, waf.tf: aws_wafv2_web_acl_association); checkov cannot see an association that has a count.
  #checkov:skip=CKV2_AWS_51:A public API cannot require client certificates.
  #checkov:skip=CKV2_AWS_77:The WAF (on by default, waf.tf) includes AWSManagedRulesKnownBadInputsRuleSet, the Log4j rules.
  rest_api_id   = aws_api_gateway_rest_api.api.id
  deployment_id = aws_api_gateway_deployment.api.id
  stage_name    = var.stage_name

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      extendedRequestId  = "$context.extendedRequestId"
      requestTime        = "$context.requestTime"
      httpMethod         = "$context.httpMethod"
      resourcePath       = "$context.resourcePath"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      responseLatency    = "$context.responseLatency"
      integrationError   = "$context.integration.error"
      wafStatus          = "$context.waf.status"
    })
  }

  depends_on = [aws_api_gateway_account.api]
}

# Throttles per route, so that a flood on one does not starve the others:
# the stage default (the page and its files), POST /trigger, the status
# polls and the catalog. They are chosen with the WAF's per-address rules
# (docs/cost.md, "The throttles and the WAF"); each answers 429 throttled
# in the product's voice (aws_api_gateway_gateway_response.edge).
resource "aws_api_gateway_method_settings" "route" {
  #checkov:skip=CKV_AWS_225:Responses are per-client (quota headers, 202/429) and must never be cached.
  for_each    = module.settings.route_throttles
  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = each.key

  settings {
    throttling_rate_limit  = each.value.rate
    throttling_burst_limit = each.value.burst
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    caching_enabled        = false
  }
}

moved {
  from = aws_api_gateway_method_settings.all
  to   = aws_api_gateway_method_settings.route["*/*"]
}

# API Gateway writes logs through one role per account and region.
resource "aws_iam_role" "api_gateway_logs" {
  count              = var.manage_api_gateway_account ? 1 : 0
  name               = "${var.name}-api-gateway-logs"
  assume_role_policy = data.aws_iam_policy_document.service_trust["apigateway"].json
}

resource "aws_iam_role_policy_attachment" "api_gateway_logs" {
  count      = var.manage_api_gateway_account ? 1 : 0
  role       = aws_iam_role.api_gateway_logs[0].name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
}

resource "aws_api_gateway_account" "api" {
  count               = var.manage_api_gateway_account ? 1 : 0
  cloudwatch_role_arn = aws_iam_role.api_gateway_logs[0].arn
}
