# One dashboard for the whole system: the decisions the functions publish as
# Embedded Metric Format lines (namespace module.settings.metrics_namespace,
# dimension Function and Lane, Scope or State; shared::rules::metrics::PUBLISHED lists every one and
# tests/terraform.rs checks each is drawn), the queue depths, the
# functions' errors and the API's 5xx.

locals {
  dashboard_region = data.aws_region.current.name
  # The values of the metrics' second dimension: shared::rules::metrics
  # REJECTED_SCOPES (Scope) and LANES (Lane), exactly (tests/terraform.rs).
  refusal_scopes = ["client", "network", "global", "key", "invalid-key", "blocked", "cross-site"]
  lanes          = ["anonymous", "key"]
  # One metric line of a widget: [namespace, metric, dimension, value, ...].
  # Per lane (local.lanes: anonymous, key): accepted, started, refused behind a full queue.
  accepted = [for lane in local.lanes : [module.settings.metrics_namespace, "Accepted", "Function", "ingress", "Lane", lane, { label = "Accepted (${lane})" }]]
  decision = { for name in ["Invalid", "Unavailable"] : name => [module.settings.metrics_namespace, name, "Function", "ingress"] }
  rejected = [for scope in local.refusal_scopes : [module.settings.metrics_namespace, "Rejected", "Function", "ingress", "Scope", scope, { label = "Rejected (${scope})" }]]
  by_lane  = [for pair in setproduct(["RunsStarted", "TriggersRefused"], local.lanes) : [module.settings.metrics_namespace, pair[0], "Function", "worker", "Lane", pair[1], { label = "${pair[0]} (${pair[1]})" }]]
  runs     = [for name in ["TriggersCoalesced", "RunsWaiting", "Retried", "DeadLettered"] : [module.settings.metrics_namespace, name, "Function", "worker"]]
  emails   = [for state in module.settings.notify_states : [module.settings.metrics_namespace, "Emails", "Function", "notifier", "State", state, { label = "E-mails ${state}" }]]
  # The WAF's rules that block, by the name each metric carries (none without the WAF).
  waf_blocking = module.settings.waf.enabled ? concat(keys(local.waf_rate_rules), ["known-bad-inputs"]) : []
  widget = {
    type   = "metric"
    width  = 12
    height = 6
  }
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      merge(local.widget, { x = 0, y = 0, properties = {
        title   = "Triggers: accepted, refused, invalid, unavailable (per 5 min)"
        region  = local.dashboard_region
        stat    = "Sum"
        period  = 300
        view    = "timeSeries"
        metrics = concat(local.accepted, values(local.decision), local.rejected)
      } }),
      merge(local.widget, { x = 12, y = 0, properties = {
        title   = "Runs: started and refused behind a full queue (per lane), triggers coalesced, waiting, retried, dead-lettered"
        region  = local.dashboard_region
        stat    = "Sum"
        period  = 300
        view    = "timeSeries"
        metrics = concat(local.by_lane, local.runs)
      } }),
      merge(local.widget, { x = 0, y = 6, properties = {
        title  = "Queue depths"
        region = local.dashboard_region
        stat   = "Maximum"
        period = 60
        view   = "timeSeries"
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.work.name, { label = "work queue" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesDelayed", "QueueName", aws_sqs_queue.work.name, { label = "runs waiting (delayed)" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.work_dlq.name, { label = "work DLQ" }],
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", aws_sqs_queue.events_dlq.name, { label = "events DLQ" }],
        ]
      } }),
      merge(local.widget, { x = 12, y = 6, properties = {
        title  = "Function errors and API 5xx"
        region = local.dashboard_region
        stat   = "Sum"
        period = 300
        view   = "timeSeries"
        metrics = concat(
          [for name, _ in local.functions : ["AWS/Lambda", "Errors", "FunctionName", aws_lambda_function.function[name].function_name, { label = "${name} errors" }]],
          [["AWS/ApiGateway", "5XXError", "ApiName", aws_api_gateway_rest_api.api.name, "Stage", aws_api_gateway_stage.api.stage_name, { label = "API 5xx" }]],
        )
      } }),
      merge(local.widget, { x = 0, y = 12, properties = {
        title  = "The edge: API 4xx (throttles, unknown paths) and the WAF's blocks by rule"
        region = local.dashboard_region
        stat   = "Sum"
        period = 300
        view   = "timeSeries"
        metrics = concat(
          [["AWS/ApiGateway", "4XXError", "ApiName", aws_api_gateway_rest_api.api.name, "Stage", aws_api_gateway_stage.api.stage_name, { label = "API 4xx" }]],
          [
            for rule in local.waf_blocking :
            ["AWS/WAFV2", "BlockedRequests", "WebACL", var.name, "Region", local.dashboard_region, "Rule", "${var.name}-${rule}", { label = "WAF ${rule}" }]
          ],
        )
      } }),
      merge(local.widget, { x = 12, y = 12, properties = {
        title   = "On-call e-mails by state"
        region  = local.dashboard_region
        stat    = "Sum"
        period  = 3600
        view    = "timeSeries"
        metrics = local.emails
      } }),
    ]
  })
}
