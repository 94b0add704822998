# A demo V2 pipeline for users without one: S3 source -> CodeBuild. Its own
# rotated KMS key, versioned private buckets, least-privilege service roles.

locals {
  account = data.aws_caller_identity.current.account_id
  region  = data.aws_region.current.name
  buckets = {
    source    = "${var.name}-source-${local.account}"
    artifacts = "${var.name}-artifacts-${local.account}"
    access    = "${var.name}-access-logs-${local.account}"
  }
}

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
      identifiers = ["arn:${data.aws_partition.current.partition}:iam::${local.account}:root"]
    }
  }
  statement {
    sid       = "LogsEncryptTheBuildLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${data.aws_partition.current.partition}:logs:${local.region}:${local.account}:log-group:/aws/codebuild/${var.name}*"]
    }
  }
}

resource "aws_kms_key" "pipeline" {
  description             = "${var.name}: artifacts and build logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
}

resource "aws_s3_bucket" "bucket" {
  #checkov:skip=CKV_AWS_144:A demo pipeline's artifacts are rebuildable; cross-region replication would double the cost for nothing.
  #checkov:skip=CKV_AWS_18:Access logging is set by aws_s3_bucket_logging.bucket (source and artifacts log to the access bucket, which cannot log to itself).
  #checkov:skip=CKV_AWS_145:Source and artifacts use the KMS key; the access-log bucket must use SSE-S3, the only encryption S3 log delivery supports.
  #checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: the pipeline does not poll its source (pipeline-trigger starts it).
  for_each      = local.buckets
  bucket        = each.value
  force_destroy = false
}

resource "aws_s3_bucket_logging" "bucket" {
  for_each      = { for k, v in local.buckets : k => v if k != "access" }
  bucket        = aws_s3_bucket.bucket[each.key].id
  target_bucket = aws_s3_bucket.bucket["access"].id
  target_prefix = "${each.key}/"
}

resource "aws_s3_bucket_versioning" "bucket" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.bucket[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  for_each                = local.buckets
  bucket                  = aws_s3_bucket.bucket[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "bucket" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.bucket[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bucket" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.bucket[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      # S3 server access logs can only be delivered to SSE-S3 buckets.
      sse_algorithm     = each.key == "access" ? "AES256" : "aws:kms"
      kms_master_key_id = each.key == "access" ? null : aws_kms_key.pipeline.arn
    }
    bucket_key_enabled = each.key != "access"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "bucket" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.bucket[each.key].id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.bucket[each.key].arn, "${aws_s3_bucket.bucket[each.key].arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
  dynamic "statement" {
    for_each = each.key == "access" ? [1] : []
    content {
      sid       = "ServerAccessLogs"
      actions   = ["s3:PutObject"]
      resources = ["${aws_s3_bucket.bucket["access"].arn}/*"]
      principals {
        type        = "Service"
        identifiers = ["logging.s3.amazonaws.com"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [local.account]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "bucket" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.bucket[each.key].id
  policy   = data.aws_iam_policy_document.tls_only[each.key].json
}

resource "aws_cloudwatch_log_group" "build" {
  #checkov:skip=CKV_AWS_338:Kept log_retention_days (30 by default: as long as the ledger keeps the triggers its lines speak of); set 365 where an audit asks for a year (docs/cost.md prices it).
  name              = "/aws/codebuild/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.pipeline.arn
}

data "aws_iam_policy_document" "codebuild_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }
    # Against the confused deputy: only this account's project of this name.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:codebuild:${local.region}:${local.account}:project/${var.name}"]
    }
  }
}

data "aws_iam_policy_document" "codebuild" {
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.build.arn}:*"]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${aws_s3_bucket.bucket["artifacts"].arn}/*"]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
}

resource "aws_iam_role" "codebuild" {
  name               = "${var.name}-codebuild"
  assume_role_policy = data.aws_iam_policy_document.codebuild_trust.json
}

resource "aws_iam_role_policy" "codebuild" {
  name   = "build"
  role   = aws_iam_role.codebuild.id
  policy = data.aws_iam_policy_document.codebuild.json
}

resource "aws_codebuild_project" "build" {
  name           = var.name
  description    = "Demo build of ${var.name}"
  service_role   = aws_iam_role.codebuild.arn
  encryption_key = aws_kms_key.pipeline.arn
  build_timeout  = 15

  artifacts {
    type = "CODEPIPELINE"
  }

  environment {
    type                        = "LINUX_CONTAINER"
    compute_type                = "BUILD_GENERAL1_SMALL"
    image                       = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.build.name
    }
  }

  source {
    type = "CODEPIPELINE"
    # The pipeline's variables arrive as environment variables (set by the
    # pipeline's Build action) and are only ever quoted expansions here:
    # never interpolated into the buildspec's text, where a value could
    # become a command.
    buildspec = <<-YAML
      version: 0.2
      phases:
        build:
          commands:
            - echo "Built $CODEBUILD_RESOLVED_SOURCE_VERSION"
            - echo "Target environment: $DEPLOY_ENVIRONMENT, dry run: $DRY_RUN, replicas: $REPLICAS"
    YAML
  }
}

data "aws_iam_policy_document" "codepipeline_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["codepipeline.amazonaws.com"]
    }
    # Against the confused deputy: only this account's pipeline of this name.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${data.aws_partition.current.partition}:codepipeline:${local.region}:${local.account}:${var.name}"]
    }
  }
}

data "aws_iam_policy_document" "codepipeline" {
  statement {
    sid       = "Source"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketVersioning"]
    resources = [aws_s3_bucket.bucket["source"].arn, "${aws_s3_bucket.bucket["source"].arn}/*"]
  }
  statement {
    sid       = "Artifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:GetBucketVersioning"]
    resources = [aws_s3_bucket.bucket["artifacts"].arn, "${aws_s3_bucket.bucket["artifacts"].arn}/*"]
  }
  statement {
    sid       = "Build"
    actions   = ["codebuild:BatchGetBuilds", "codebuild:StartBuild"]
    resources = [aws_codebuild_project.build.arn]
  }
  statement {
    sid       = "Key"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.pipeline.arn]
  }
}

resource "aws_iam_role" "codepipeline" {
  name               = "${var.name}-codepipeline"
  assume_role_policy = data.aws_iam_policy_document.codepipeline_trust.json
}

resource "aws_iam_role_policy" "codepipeline" {
  name   = "pipeline"
  role   = aws_iam_role.codepipeline.id
  policy = data.aws_iam_policy_document.codepipeline.json
}

locals {
  # The pipeline's variables, declared once: as CodePipeline variables here,
  # and as typed inputs for pipeline-trigger (output pipeline_settings).
  inputs = {
    environment = { type = "choice", options = ["staging", "production"], default = "staging", description = "Where to deploy" }
    dry_run     = { type = "boolean", default = true, description = "Build without deploying" }
    replicas    = { type = "number", min = 1, max = 5, integer = true, default = 1, description = "How many instances" }
  }
}

resource "aws_codepipeline" "example" {
  name           = var.name
  pipeline_type  = "V2"
  execution_mode = "QUEUED"
  role_arn       = aws_iam_role.codepipeline.arn

  dynamic "variable" {
    for_each = local.inputs
    content {
      name          = variable.key
      default_value = tostring(variable.value.default)
      description   = variable.value.description
    }
  }

  artifact_store {
    type     = "S3"
    location = aws_s3_bucket.bucket["artifacts"].bucket

    encryption_key {
      id   = aws_kms_key.pipeline.arn
      type = "KMS"
    }
  }

  stage {
    name = "Source"
    action {
      name             = "Source"
      category         = "Source"
      owner            = "AWS"
      provider         = "S3"
      version          = "1"
      output_artifacts = ["source"]
      configuration = {
        S3Bucket             = aws_s3_bucket.bucket["source"].bucket
        S3ObjectKey          = var.source_object_key
        PollForSourceChanges = "false"
      }
    }
  }

  stage {
    name = "Build"
    action {
      name            = "Build"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source"]
      configuration = {
        ProjectName = aws_codebuild_project.build.name
        # Pipeline variables become the build's environment variables.
        EnvironmentVariables = jsonencode([
          { name = "DEPLOY_ENVIRONMENT", value = "#{variables.environment}", type = "PLAINTEXT" },
          { name = "DRY_RUN", value = "#{variables.dry_run}", type = "PLAINTEXT" },
          { name = "REPLICAS", value = "#{variables.replicas}", type = "PLAINTEXT" },
        ])
      }
    }
  }
}
