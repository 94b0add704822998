# Alarms to the on-call topic: anything in a DLQ, any function error or
# throttle, any API 5xx, and a surge of accepted or refused triggers (a
# flood: docs/operating.md). Each also says when it clears.

locals {
  alarms = merge(
    {
      work-dlq-not-empty = {
        description = "Triggers the worker gave up on: inspect with trigger-ops dlq peek, replay with trigger-ops dlq replay."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.work_dlq.name }
        statistic   = "Maximum"
        period      = 60
      }
      events-dlq-not-empty = {
        description = "Pipeline events the notifier could not handle: on-call missed an e-mail."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = aws_sqs_queue.events_dlq.name }
        statistic   = "Maximum"
        period      = 60
      }
      api-5xx = {
        description = "The API answered 5xx (table or queue unreachable, or the ingress failed)."
        namespace   = "AWS/ApiGateway"
        metric      = "5XXError"
        dimensions  = { ApiName = aws_api_gateway_rest_api.api.name, Stage = aws_api_gateway_stage.api.stage_name }
        statistic   = "Sum"
        period      = 300
      }
    },
    merge([
      for function, _ in local.functions : {
        for metric in ["Errors", "Throttles"] :
        "${function}-${lower(metric)}" => {
          description = "${metric} of the ${function} function."
          namespace   = "AWS/Lambda"
          metric      = metric
          dimensions  = { FunctionName = aws_lambda_function.function[function].function_name }
          statistic   = "Sum"
          period      = 300
        }
      }
    ]...),
  )
}

resource "aws_cloudwatch_metric_alarm" "alarm" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = each.value.period
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# Alarms on the functions' decisions, from their metric lines (EMF), each
# above a threshold: a surge of accepted anonymous triggers (5 minutes), and
# an anonymous lane the worker keeps refusing behind (every minute of 5).
locals {
  decision_alarms = {
    accepted-surge = {
      description = "More than ${var.alarm_accepted_per_5m} anonymous triggers accepted in 5 minutes: a flood from many addresses? trigger-ops clients top --since 1h names the busiest keys (docs/operating.md)."
      metric      = "Accepted"
      dimensions  = { Function = "ingress", Lane = "anonymous" }
      period      = 300
      periods     = 1
      threshold   = var.alarm_accepted_per_5m
    }
    # A flood holds a pipeline's anonymous lane: keyed triggers still run
    # (their reserved slots), anonymous people do not.
    anonymous-lane-full = {
      description = "More than ${var.alarm_lane_full_per_minute} anonymous triggers a minute refused behind a full queue, 5 minutes running: a flood holds the anonymous lane. trigger-ops pipelines show NAME, then flush and block (docs/operating.md)."
      metric      = "TriggersRefused"
      dimensions  = { Function = "worker", Lane = "anonymous" }
      period      = 60
      periods     = 5
      threshold   = var.alarm_lane_full_per_minute
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "decision" {
  for_each            = local.decision_alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = module.settings.metrics_namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = "Sum"
  period              = each.value.period
  evaluation_periods  = each.value.periods
  datapoints_to_alarm = each.value.periods
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
}

# Refusals at the ingress, every level (local.refusal_scopes, dashboard.tf)
# summed.
resource "aws_cloudwatch_metric_alarm" "refused_surge" {
  alarm_name          = "${var.name}-refused-surge"
  alarm_description   = "More than ${var.alarm_refused_per_5m} triggers refused in 5 minutes (quota, network, global, key quota, invalid key, blocked, cross-site): someone is knocking. The dashboard splits them by scope (docs/operating.md)."
  evaluation_periods  = 1
  threshold           = var.alarm_refused_per_5m
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]

  metric_query {
    id          = "refused"
    expression  = join(" + ", [for i, _ in local.refusal_scopes : "FILL(m${i}, 0)"])
    label       = "Refused"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = local.refusal_scopes
    content {
      id = "m${metric_query.key}"
      metric {
        namespace   = module.settings.metrics_namespace
        metric_name = "Rejected"
        dimensions  = { Function = "ingress", Scope = metric_query.value }
        period      = 300
        stat        = "Sum"
      }
    }
  }
}

# The surge alarm of earlier versions is the first of the decision alarms.
moved {
  from = aws_cloudwatch_metric_alarm.accepted_surge
  to   = aws_cloudwatch_metric_alarm.decision["accepted-surge"]
}
