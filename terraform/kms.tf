# One customer-managed key (rotated yearly) encrypts the table, the queues,
# the topic, the log groups and the functions' environment. Account principals
# may use it only through those services, so no role needs KMS actions of its
# own; CloudWatch (alarms to the topic), EventBridge (its DLQ) and CloudWatch
# Logs are let in by service principal.

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_111:A key policy's "*" resource is this key alone; writes are limited by principal and conditions.
  #checkov:skip=CKV_AWS_356:A key policy's "*" resource is this key alone.
  #checkov:skip=CKV_AWS_109:Only the account root administers the key, as AWS's default key policy does.
  statement {
    sid       = "AccountAdministersTheKey"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }

  statement {
    sid       = "AccountPrincipalsThroughTheServicesOnly"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:CallerAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [for service in ["dynamodb", "sqs", "sns", "lambda"] :
      "${service}.${data.aws_region.current.name}.amazonaws.com"]
    }
  }

  # The ingress's environment holds CLIENT_KEY_SECRET. Lambda encrypts each
  # function's environment with the function's name as encryption context;
  # reading it back (GetFunctionConfiguration, the console) decrypts through
  # Lambda as the caller. Only the ingress's role and the readers named in
  # ingress_environment_readers may: anyone else sees no values.
  statement {
    sid       = "OnlyTheIngressAndItsReadersDecryptItsEnvironment"
    effect    = "Deny"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:LambdaFunctionName"
      values   = ["${var.name}-ingress"]
    }
    condition {
      test     = "ArnNotEquals"
      variable = "aws:PrincipalArn"
      values   = concat([aws_iam_role.function["ingress"].arn], var.ingress_environment_readers)
    }
    # Lambda's own service principal is never denied.
    condition {
      test     = "Bool"
      variable = "aws:PrincipalIsAWSService"
      values   = ["false"]
    }
  }

  statement {
    sid       = "AlarmsAndEventBridgeDeliverEncrypted"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }

  statement {
    sid       = "LogsEncryptTheirGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:log-group:*"]
    }
  }
}

resource "aws_kms_key" "main" {
  description             = "${var.name}: table, queues, topic, logs, function environment"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.main.key_id
}
