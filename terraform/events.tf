# Every execution and stage state change of the allowlisted pipelines to the
# notifier: each reaches the records (a superseded or cancelled run included,
# and the lane of a run that ended is freed; stages show on GET /triggers/{id}
# and the public page); NOTIFY_STATES only decides which send an e-mail.
# EventBridge retries for a day, then dead-letters.

resource "aws_cloudwatch_event_rule" "pipeline_state" {
  name        = "${var.name}-pipeline-state"
  description = "Execution and stage state changes of the pipelines pipeline-trigger starts"

  event_pattern = jsonencode({
    source = ["aws.codepipeline"]
    "detail-type" = [
      "CodePipeline Pipeline Execution State Change",
      "CodePipeline Stage Execution State Change",
    ]
    detail = {
      pipeline = distinct(values(local.pipelines))
    }
  })
}

resource "aws_cloudwatch_event_target" "notifier" {
  rule = aws_cloudwatch_event_rule.pipeline_state.name
  arn  = aws_lambda_function.function["notifier"].arn

  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.events_dlq.arn
  }
}

resource "aws_lambda_permission" "events" {
  statement_id  = "eventbridge-pipeline-state"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["notifier"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.pipeline_state.arn
}

# The settler: every 5 minutes the worker looks for trigger records the last
# double fault left `queued` without a run (admission committed, neither the
# message nor the refund got through, the client told 503) and sends each
# again marked `unsettled`, so what it took is given back
# (docs/design.md, "When something fails").
resource "aws_cloudwatch_event_rule" "settle" {
  name                = "${var.name}-settle"
  description         = "The worker settles triggers left queued without a run"
  schedule_expression = "rate(5 minutes)"
}

resource "aws_cloudwatch_event_target" "settle" {
  rule  = aws_cloudwatch_event_rule.settle.name
  arn   = aws_lambda_function.function["worker"].arn
  input = jsonencode({ settle = { queue_url = aws_sqs_queue.work.url } })

  retry_policy {
    maximum_event_age_in_seconds = 300
    maximum_retry_attempts       = 2
  }
}

resource "aws_lambda_permission" "settle" {
  statement_id  = "eventbridge-settle"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["worker"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.settle.arn
}
