# One role per function allowing only the actions its code calls, on only its
# resources (shared/src/permissions.rs is the list; tests/terraform.rs checks
# these documents against it). Statement ids name the resource.

# Who may assume the roles: the functions' (Lambda) and the API's log
# writer (API Gateway), each only on this account's behalf.
data "aws_iam_policy_document" "service_trust" {
  for_each = toset(["lambda", "apigateway"])
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["${each.key}.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "ingress" {
  statement {
    sid = "Table"
    # Reads: the quota read back, the operators' blocks and a trigger key
    # still good (condition checks in the admission transaction), a
    # presented key by its hash, the network groups (at most once a minute),
    # a trigger's status with its run and lane.
    actions   = ["dynamodb:BatchGetItem", "dynamodb:ConditionCheckItem", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["client#*", "network#*", "global#*", "keyquota#*", "apikey#*", "netgroup#*", "trigger#*", "run#*", "lane#*", "block#*"]
    }
  }
  statement {
    sid = "TableWrites"
    # Admission writes quota (client, networks, global budget, a trigger
    # key's) and the trigger record; a refund deletes it. Nothing else: no
    # run, lane, block or key.
    actions   = ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["client#*", "network#*", "global#*", "keyquota#*", "trigger#*"]
    }
  }
  statement {
    sid       = "WorkQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work.arn]
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "Table"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["trigger#*", "run#*", "lane#*", "pending#*", "execution#*"]
    }
  }
  statement {
    sid = "TableWrites"
    # Runs, lanes, pending sets, the execution index, the triggers' starts;
    # a refusal behind a full queue gives quota slots back.
    actions   = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["client#*", "network#*", "global#*", "keyquota#*", "trigger#*", "run#*", "lane#*", "pending#*", "execution#*"]
    }
  }
  statement {
    sid = "WorkQueue"
    # ReceiveMessage and GetQueueAttributes: the event source mapping polls with this role.
    # SendMessage: a run waiting for its pipeline sends its message again, delayed.
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage", "sqs:SendMessage"]
    resources = [aws_sqs_queue.work.arn]
  }
  statement {
    sid       = "WorkDlq"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work_dlq.arn]
  }
  statement {
    sid = "DayIndex"
    # The settler (on its schedule) finds records the last double fault left queued.
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.main.arn}/index/by_day"]
  }
  statement {
    sid = "Pipelines"
    # GetPipelineExecution: is a run not heard of for RUN_CHECK_AFTER still going?
    # ListPipelineExecutions: did a start that was never recorded go through?
    actions   = ["codepipeline:GetPipelineExecution", "codepipeline:ListPipelineExecutions", "codepipeline:StartPipelineExecution"]
    resources = local.pipeline_arns
  }
}

data "aws_iam_policy_document" "notifier" {
  statement {
    sid       = "Table"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["trigger#*", "run#*", "lane#*", "execution#*", "event#*"]
    }
  }
  statement {
    sid = "TableWrites"
    # Outcomes and stages of triggers and runs, the lane freed, e-mail claims.
    actions   = ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.main.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["trigger#*", "run#*", "lane#*", "event#*"]
    }
  }
  statement {
    sid       = "Topic"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }
  statement {
    sid       = "Pipelines"
    actions   = ["codepipeline:GetPipelineExecution", "codepipeline:ListActionExecutions"]
    resources = local.pipeline_arns
  }
  statement {
    sid = "WorkQueue"
    # A run that ended wakes the first run waiting for its pipeline.
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.work.arn]
  }
  statement {
    sid = "EventsDlq"
    # Lambda sends a failed asynchronous invocation here with this role.
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
  }
}

locals {
  function_policies = {
    ingress  = data.aws_iam_policy_document.ingress.json
    worker   = data.aws_iam_policy_document.worker.json
    notifier = data.aws_iam_policy_document.notifier.json
  }
}

data "aws_iam_policy_document" "logs" {
  for_each = local.functions
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }
}

resource "aws_iam_role" "function" {
  for_each           = local.functions
  name               = "${var.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.service_trust["lambda"].json
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions
  name     = "${each.key}-calls"
  role     = aws_iam_role.function[each.key].id
  policy   = local.function_policies[each.key]
}

resource "aws_iam_role_policy" "logs" {
  for_each = local.functions
  name     = "${each.key}-logs"
  role     = aws_iam_role.function[each.key].id
  policy   = data.aws_iam_policy_document.logs[each.key].json
}

# What trigger-ops calls, and nothing else: attach it to the operators' group
# or role (output operators_policy_arn). The stack's key lets account
# principals use it through SQS and DynamoDB (kms.tf), so no KMS action here.
data "aws_iam_policy_document" "operators" {
  statement {
    sid       = "Table"
    actions   = ["dynamodb:BatchGetItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.main.arn]
  }
  statement {
    sid       = "LedgerIndexes"
    actions   = ["dynamodb:Query"]
    resources = ["${aws_dynamodb_table.main.arn}/index/by_day", "${aws_dynamodb_table.main.arn}/index/by_run"]
  }
  statement {
    sid       = "WorkQueue"
    actions   = ["sqs:GetQueueAttributes", "sqs:SendMessage"]
    resources = [aws_sqs_queue.work.arn]
  }
  statement {
    sid       = "WorkDlq"
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.work_dlq.arn]
  }
  statement {
    sid       = "EventsDlq"
    actions   = ["sqs:ChangeMessageVisibility", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.events_dlq.arn]
  }
  statement {
    sid       = "IngressFunction"
    actions   = ["lambda:GetFunctionConfiguration"]
    resources = [aws_lambda_function.function["ingress"].arn]
  }
  statement {
    sid       = "NotifierFunction"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.function["notifier"].arn]
  }
}

resource "aws_iam_policy" "operators" {
  name        = "${var.name}-operators"
  description = "trigger-ops: both DLQs, trigger ledger and clients of ${var.name}"
  policy      = data.aws_iam_policy_document.operators.json
}
