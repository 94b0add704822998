# The one table: quota, global budget, trigger ledger, execution index and
# the notifier's event claims (docs/reference/table.md).

resource "aws_dynamodb_table" "main" {
  name                        = var.name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.table_deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  # The ledger for operators (trigger-ops triggers list/show) without a scan:
  # trigger records by day ("2026-11-21#<shard>": a day spread over 8 index
  # partitions, so a flood's writes never pile onto one) and by run.
  attribute {
    name = "day"
    type = "S"
  }

  attribute {
    name = "run_id"
    type = "S"
  }

  attribute {
    name = "requested_at"
    type = "S"
  }

  global_secondary_index {
    name            = "by_day"
    hash_key        = "day"
    range_key       = "requested_at"
    projection_type = "ALL"
  }

  global_secondary_index {
    name            = "by_run"
    hash_key        = "run_id"
    range_key       = "requested_at"
    projection_type = "ALL"
  }

  # Garbage collection only: every read compares times itself.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# The client-key secrets' fingerprints beside them (docs/reference/table.md):
# trigger-ops refuses to key addresses with a CLIENT_KEY_SECRET that is not
# the ingress's, and `trigger-ops secret rotate` reads the generation and the
# overlap from here. SHA-256 of a label and 48 random characters tells
# nothing of a secret; a rotation (docs/operating.md) rewrites the item.
resource "aws_dynamodb_table_item" "secret_fingerprint" {
  table_name = aws_dynamodb_table.main.name
  hash_key   = aws_dynamodb_table.main.hash_key
  item = jsonencode(merge(
    {
      pk          = { S = "meta#client-key" }
      fingerprint = { S = sha256("pipeline-trigger client-key fingerprint:${local.client_key_secret}") }
      generation  = { N = tostring(module.settings.client_key_rotation.generation) }
    },
    module.settings.client_key_rotation.previous_until == "" ? {} : {
      previous_fingerprint = { S = sha256("pipeline-trigger client-key fingerprint:${local.client_key_secret_previous}") }
      previous_until       = { S = module.settings.client_key_rotation.previous_until }
    },
  ))
}
