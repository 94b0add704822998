# On by default (enable_waf): a regional web ACL on the stage with per-
# address rate rules over waf_window_seconds (every route; POST /trigger
# tighter), chosen with the route throttles (docs/cost.md, "The throttles
# and the WAF"), and AWS's known-bad-inputs rules. A rate rule answers 429
# rate-limited in the product's voice; another block gets API Gateway's
# WAF_FILTERED answer (403 forbidden, api.tf). Only blocked requests are
# logged (aws_wafv2_web_acl_logging_configuration.api).

locals {
  waf = module.settings.edge.waf
  waf_rate_rules = {
    "rate-per-ip"         = { priority = 1, limit = module.settings.waf.rate_limit, post_trigger_only = false }
    "trigger-rate-per-ip" = { priority = 2, limit = module.settings.waf.trigger_limit, post_trigger_only = true }
  }
  # A WAF answer's headers: every edge header but Content-Type, which the
  # WAF sets from the body's type (APPLICATION_JSON) and lets no rule set.
  waf_headers = {
    for slug in values(local.waf) : slug => {
      for name, value in module.settings.edge.answers[slug].headers : name => value if name != "Content-Type"
    }
  }
}

resource "aws_wafv2_web_acl" "api" {
  count = module.settings.waf.enabled ? 1 : 0
  name  = var.name
  scope = "REGIONAL"

  default_action {
    allow {}
  }

  # The per-address rate rules: every route, and POST /trigger tighter.
  # Each answers 429 rate-limited with Retry-After (the window).
  dynamic "rule" {
    for_each = local.waf_rate_rules
    content {
      name     = rule.key
      priority = rule.value.priority

      action {
        block {
          custom_response {
            response_code            = module.settings.edge.answers[local.waf.rate].status
            custom_response_body_key = local.waf.rate

            dynamic "response_header" {
              for_each = local.waf_headers[local.waf.rate]
              content {
                name  = response_header.key
                value = response_header.value
              }
            }
          }
        }
      }

      statement {
        rate_based_statement {
          limit                 = rule.value.limit
          evaluation_window_sec = module.settings.waf.window_seconds
          aggregate_key_type    = "IP"

          dynamic "scope_down_statement" {
            for_each = rule.value.post_trigger_only ? [true] : []
            content {
              and_statement {
                statement {
                  byte_match_statement {
                    search_string         = "/trigger"
                    positional_constraint = "ENDS_WITH"
                    field_to_match {
                      uri_path {}
                    }
                    text_transformation {
                      priority = 0
                      type     = "LOWERCASE"
                    }
                  }
                }
                statement {
                  byte_match_statement {
                    search_string         = "POST"
                    positional_constraint = "EXACTLY"
                    field_to_match {
                      method {}
                    }
                    text_transformation {
                      priority = 0
                      type     = "NONE"
                    }
                  }
                }
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${var.name}-${rule.key}"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "known-bad-inputs"
    priority = 3

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  custom_response_body {
    key          = local.waf.rate
    content      = module.settings.edge.answers[local.waf.rate].body
    content_type = "APPLICATION_JSON"
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }
}

resource "aws_wafv2_web_acl_association" "api" {
  count        = module.settings.waf.enabled ? 1 : 0
  resource_arn = aws_api_gateway_stage.api.arn
  web_acl_arn  = aws_wafv2_web_acl.api[0].arn
}

resource "aws_cloudwatch_log_group" "waf" {
  #checkov:skip=CKV_AWS_338:Kept log_retention_days (30 by default: as long as the ledger keeps the triggers its lines speak of); set 365 where an audit asks for a year (docs/cost.md prices it).
  count             = module.settings.waf.enabled ? 1 : 0
  name              = "aws-waf-logs-${var.name}" # WAF requires this prefix
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

resource "aws_wafv2_web_acl_logging_configuration" "api" {
  count                   = module.settings.waf.enabled ? 1 : 0
  resource_arn            = aws_wafv2_web_acl.api[0].arn
  log_destination_configs = [aws_cloudwatch_log_group.waf[0].arn]

  # Blocked requests only: a flood's allowed requests are in the API's
  # access log already, and logging each would bill every request twice.
  logging_filter {
    default_behavior = "DROP"

    filter {
      behavior    = "KEEP"
      requirement = "MEETS_ANY"

      condition {
        action_condition {
          action = "BLOCK"
        }
      }
    }
  }
}
