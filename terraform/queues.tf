# The work queue (ingress -> worker) and its dead-letter queue, and the DLQ of
# pipeline events the notifier could not handle.

locals {
  # AWS: at least six times the function timeout, so a batch in flight is
  # never delivered twice while the worker still runs it.
  work_visibility_timeout_seconds = 6 * var.worker_timeout_seconds
}

resource "aws_sqs_queue" "work_dlq" {
  name                              = "${var.name}-work-dlq"
  message_retention_seconds         = 1209600 # 14 days, the most SQS keeps
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_sqs_queue" "work" {
  name                              = "${var.name}-work"
  visibility_timeout_seconds        = local.work_visibility_timeout_seconds
  message_retention_seconds         = 345600 # 4 days
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300

  # The worker dead-letters after MAX_ATTEMPTS deliveries, with the reason;
  # SQS's redrive is the safety net beyond that (a worker that keeps crashing).
  # A run waiting for its pipeline does not hold its message invisible: the
  # worker sends it again with a delay of run_poll_interval (at most 15 min)
  # and deletes the delivery, so waiting never counts towards either limit,
  # never outlives the retention, and the visibility timeout only has to
  # cover one worker invocation.
  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.work_dlq.arn
    maxReceiveCount     = module.settings.max_attempts + 2
  })
}

resource "aws_sqs_queue_redrive_allow_policy" "work_dlq" {
  queue_url = aws_sqs_queue.work_dlq.id
  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.work.arn]
  })
}

resource "aws_sqs_queue" "events_dlq" {
  name                              = "${var.name}-events-dlq"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = aws_kms_key.main.arn
  kms_data_key_reuse_period_seconds = 300
}

data "aws_iam_policy_document" "events_dlq" {
  statement {
    sid       = "EventBridgeDeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.pipeline_state.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "events_dlq" {
  queue_url = aws_sqs_queue.events_dlq.id
  policy    = data.aws_iam_policy_document.events_dlq.json
}
