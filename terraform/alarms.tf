# Alarms to the on-call topic: anything in a DLQ, any function error or
# throttle, any API 5xx. Each also says when it clears.

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
