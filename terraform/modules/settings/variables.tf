# Every setting with its default and the rules the functions apply to it
# (docs/reference/configuration.md). The root module's variables.tf says
# what each means and passes null for "not set": a variable here is not
# nullable, so null takes the default below.
#
# A rule on one variable is a validation here; a rule across variables, or
# one that needs a walk through pipeline_settings, is a precondition of the
# output `environment` (main.tf), which names the variable and every
# problem at once.

variable "pipelines" {
  description = "Public name => CodePipeline name."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition = alltrue([
      for public, pipeline in var.pipelines :
      can(regex("^[A-Za-z0-9.@_-]{1,100}$", public)) && can(regex("^[A-Za-z0-9.@_-]{1,100}$", pipeline))
    ])
    error_message = "pipelines: public names and pipeline names must be 1-100 characters of A-Z a-z 0-9 . @ _ -."
  }
}

variable "default_pipeline" {
  description = "Public name triggered when a request names none; null: the first public name in sort order."
  type        = string
  default     = null
}

variable "example_pipeline" {
  description = "The demo pipeline when the root module creates it: its CodePipeline name and settings (public name \"example\")."
  type = object({
    name     = string
    settings = any
  })
  default = null
}

variable "pipeline_settings" {
  description = "Per public pipeline: description, coalesce, max_pending, reserved_pending, inputs (checked in main.tf)."
  type        = any
  default     = {}
  nullable    = false
}

variable "cors_allowed_origins" {
  description = "Origins whose pages may call the API, or [\"*\"]."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    # ["*"] == ["*"] is false in Terraform (a list against a tuple): compare
    # the elements.
    condition = (
      try(length(var.cors_allowed_origins) == 1 && var.cors_allowed_origins[0] == "*", false)
      || alltrue([for origin in var.cors_allowed_origins : can(regex("^https?://[a-z0-9][a-z0-9.-]{0,252}(:[0-9]{1,5})?$", origin))])
    )
    error_message = "cors_allowed_origins: [\"*\"] alone, or origins such as https://docs.example.com (http or https, the host in lower case not starting with . or -, an optional port, no path or trailing slash)."
  }
  validation {
    condition     = length(var.cors_allowed_origins) <= 50
    error_message = "cors_allowed_origins: at most 50 origins."
  }
}

variable "quota_limit" {
  description = "Accepted triggers per client per quota_window."
  type        = number
  default     = 3
  nullable    = false

  validation {
    condition     = var.quota_limit >= 1 && var.quota_limit <= 100 && floor(var.quota_limit) == var.quota_limit
    error_message = "quota_limit must be a whole number from 1 to 100."
  }
}

variable "quota_window" {
  description = "Rolling quota window."
  type        = string
  default     = "7d"
  nullable    = false

  validation {
    condition     = can(regex("^0*[1-9][0-9]{0,5}(s|m|h|d)$", var.quota_window))
    error_message = "quota_window must be a whole number from 1 to 999999 followed by s, m, h or d (7d, 36h, 90s)."
  }
}

variable "network_quota_limits" {
  description = "Per-network quota levels; null: an IPv6 /56 shares twice quota_limit and a /48 four times it, at most 100 each."
  type        = string
  default     = null
}

variable "global_quota_limit" {
  description = "Accepted triggers for all clients together per global_quota_window; 0: off."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.global_quota_limit >= 0 && var.global_quota_limit <= 1000000000 && floor(var.global_quota_limit) == var.global_quota_limit
    error_message = "global_quota_limit must be a whole number from 0 (off) to 1000000000."
  }
}

variable "global_quota_window" {
  description = "Window of the global budget."
  type        = string
  default     = "1d"
  nullable    = false

  validation {
    condition     = can(regex("^0*[1-9][0-9]{0,5}(s|m|h|d)$", var.global_quota_window))
    error_message = "global_quota_window must be a whole number from 1 to 999999 followed by s, m, h or d."
  }
}

variable "ledger_retention" {
  description = "How long trigger records are kept."
  type        = string
  default     = "30d"
  nullable    = false

  validation {
    condition     = can(regex("^0*[1-9][0-9]{0,5}(s|m|h|d)$", var.ledger_retention))
    error_message = "ledger_retention must be a whole number from 1 to 999999 followed by s, m, h or d."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' metric lines."
  type        = string
  default     = "PipelineTrigger"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9.\\-_/#:]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/") && !startswith(var.metrics_namespace, ":")
    error_message = "metrics_namespace must be 1 to 255 of A-Z a-z 0-9 . - _ / # :, not starting with AWS/ or :."
  }
}

variable "run_poll_interval" {
  description = "Safety poll of a pipeline whose runs wait; at most 15m."
  type        = string
  default     = "20s"
  nullable    = false

  validation {
    condition = can(regex("^0*[1-9][0-9]{0,2}(s|m)$", var.run_poll_interval)) && try(
      endswith(var.run_poll_interval, "s") ? tonumber(trimsuffix(var.run_poll_interval, "s")) <= 900 : tonumber(trimsuffix(var.run_poll_interval, "m")) <= 15,
      false
    )
    error_message = "run_poll_interval must be between 1s and 15m (SQS's longest message delay), written like 20s or 2m."
  }
}

variable "run_check_after" {
  description = "How long a run in progress may go without news before the worker asks CodePipeline."
  type        = string
  default     = "15m"
  nullable    = false

  validation {
    condition     = can(regex("^0*[1-9][0-9]{0,5}(s|m|h)$", var.run_check_after))
    error_message = "run_check_after must be a whole number from 1 to 999999 followed by s, m or h."
  }
}

variable "max_attempts" {
  description = "Deliveries before the worker gives a message up to the DLQ."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100 && floor(var.max_attempts) == var.max_attempts
    error_message = "max_attempts must be a whole number from 1 to 100."
  }
}

variable "notify_states" {
  description = "Pipeline execution states that e-mail on-call."
  type        = list(string)
  default     = ["SUCCEEDED", "FAILED", "STOPPED"]
  nullable    = false

  validation {
    condition = length(var.notify_states) > 0 && length(var.notify_states) == length(distinct(var.notify_states)) && alltrue([
      for s in var.notify_states : contains(["STARTED", "RESUMED", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "SUPERSEDED", "CANCELED"], s)
    ])
    error_message = "notify_states must be distinct CodePipeline execution states (STARTED, RESUMED, STOPPING, STOPPED, SUCCEEDED, FAILED, SUPERSEDED, CANCELED), at least one."
  }
}

variable "client_key_generation" {
  description = "Which client-key secret is current: each step up rotates it (trigger-ops secret rotate says to what, with client_key_previous_until)."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.client_key_generation >= 0 && floor(var.client_key_generation) == var.client_key_generation
    error_message = "client_key_generation must be a whole number, 0 or more."
  }
}

variable "client_key_previous_until" {
  description = "Until when the secret before the last rotation still counts (RFC 3339, like 2026-12-14T18:00:00Z): the ingress charges and refuses each client under both secrets' keys until then. Empty: only the current secret."
  type        = string
  default     = ""
  nullable    = false

  validation {
    condition     = var.client_key_previous_until == "" || can(formatdate("YYYY", var.client_key_previous_until))
    error_message = "client_key_previous_until must be empty or an RFC 3339 time, like 2026-12-14T18:00:00Z."
  }
  validation {
    condition     = var.client_key_previous_until == "" || var.client_key_generation >= 1
    error_message = "client_key_previous_until needs a rotation: client_key_generation 1 or more."
  }
}

variable "refusal_memory" {
  description = "How long a warm ingress answers a client it refused from memory: 0s to 60s."
  type        = string
  default     = "60s"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]{1,2}s$", var.refusal_memory)) && try(tonumber(trimsuffix(var.refusal_memory, "s")) <= 60, false)
    error_message = "refusal_memory must be whole seconds from 0s (off) to 60s."
  }
}

# The edge: API Gateway's route throttles and the WAF's per-address rules,
# chosen together (docs/cost.md, "The throttles and the WAF"). The local
# stack's gateway plays the same numbers (tools/local/src/edge.rs reads
# these defaults).

variable "api_throttle_rate_limit" {
  description = "Requests per second to the page and its files, all clients together."
  type        = number
  default     = 20
  nullable    = false

  validation {
    condition     = var.api_throttle_rate_limit > 0 && var.api_throttle_rate_limit <= 10000
    error_message = "api_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "api_throttle_burst_limit" {
  description = "Burst of requests to the page and its files."
  type        = number
  default     = 40
  nullable    = false

  validation {
    condition     = var.api_throttle_burst_limit >= 1 && var.api_throttle_burst_limit <= 5000 && floor(var.api_throttle_burst_limit) == var.api_throttle_burst_limit
    error_message = "api_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "trigger_throttle_rate_limit" {
  description = "Requests per second to POST /trigger, all clients together."
  type        = number
  default     = 20
  nullable    = false

  validation {
    condition     = var.trigger_throttle_rate_limit > 0 && var.trigger_throttle_rate_limit <= 10000
    error_message = "trigger_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "trigger_throttle_burst_limit" {
  description = "Burst of requests to POST /trigger."
  type        = number
  default     = 40
  nullable    = false

  validation {
    condition     = var.trigger_throttle_burst_limit >= 1 && var.trigger_throttle_burst_limit <= 5000 && floor(var.trigger_throttle_burst_limit) == var.trigger_throttle_burst_limit
    error_message = "trigger_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "status_throttle_rate_limit" {
  description = "Requests per second to GET /triggers/{id} and GET /pipelines, all clients together."
  type        = number
  default     = 50
  nullable    = false

  validation {
    condition     = var.status_throttle_rate_limit > 0 && var.status_throttle_rate_limit <= 10000
    error_message = "status_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "status_throttle_burst_limit" {
  description = "Burst of requests to GET /triggers/{id} and GET /pipelines."
  type        = number
  default     = 100
  nullable    = false

  validation {
    condition     = var.status_throttle_burst_limit >= 1 && var.status_throttle_burst_limit <= 5000 && floor(var.status_throttle_burst_limit) == var.status_throttle_burst_limit
    error_message = "status_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "preflight_throttle_rate_limit" {
  description = "Requests per second to each OPTIONS route (CORS preflights), all clients together."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.preflight_throttle_rate_limit > 0 && var.preflight_throttle_rate_limit <= 10000
    error_message = "preflight_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "preflight_throttle_burst_limit" {
  description = "Burst of requests to each OPTIONS route."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.preflight_throttle_burst_limit >= 1 && var.preflight_throttle_burst_limit <= 5000 && floor(var.preflight_throttle_burst_limit) == var.preflight_throttle_burst_limit
    error_message = "preflight_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "enable_waf" {
  description = "Put the WAF's per-address rules in front of the API."
  type        = bool
  default     = true
  nullable    = false
}

variable "waf_window_seconds" {
  description = "The window over which the WAF counts each address's requests: 60, 120, 300 or 600 seconds."
  type        = number
  default     = 600
  nullable    = false

  validation {
    condition     = contains([60, 120, 300, 600], var.waf_window_seconds)
    error_message = "waf_window_seconds must be 60, 120, 300 or 600 (the windows AWS WAF offers)."
  }
}

variable "waf_rate_limit" {
  description = "Requests per address per waf_window_seconds, all routes, before the WAF refuses."
  type        = number
  default     = 200
  nullable    = false

  validation {
    condition     = var.waf_rate_limit >= 10 && var.waf_rate_limit <= 2000000000 && floor(var.waf_rate_limit) == var.waf_rate_limit
    error_message = "waf_rate_limit must be a whole number of at least 10 (AWS WAF's minimum)."
  }
}

variable "waf_trigger_rate_limit" {
  description = "POST /trigger requests per address per waf_window_seconds before the WAF refuses."
  type        = number
  default     = 10
  nullable    = false

  validation {
    condition     = var.waf_trigger_rate_limit >= 10 && var.waf_trigger_rate_limit <= 2000000000 && floor(var.waf_trigger_rate_limit) == var.waf_trigger_rate_limit
    error_message = "waf_trigger_rate_limit must be a whole number of at least 10 (AWS WAF's minimum)."
  }
}

variable "reserve_concurrency" {
  description = "Reserve concurrency for the functions (ingress_reserved_concurrency, worker_max_concurrency, notifier_reserved_concurrency); off: they share the account's unreserved pool."
  type        = bool
  default     = false
  nullable    = false
}

variable "ingress_reserved_concurrency" {
  description = "The ingress's reserved concurrency, with reserve_concurrency."
  type        = number
  default     = 20
  nullable    = false

  validation {
    condition     = var.ingress_reserved_concurrency >= 1 && var.ingress_reserved_concurrency <= 1000 && floor(var.ingress_reserved_concurrency) == var.ingress_reserved_concurrency
    error_message = "ingress_reserved_concurrency must be a whole number from 1 to 1000."
  }
}

variable "worker_max_concurrency" {
  description = "Most concurrent worker invocations (the event source mapping's maximum_concurrency; reserved too, with reserve_concurrency)."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.worker_max_concurrency >= 2 && var.worker_max_concurrency <= 1000 && floor(var.worker_max_concurrency) == var.worker_max_concurrency
    error_message = "worker_max_concurrency must be a whole number from 2 to 1000 (the event source mapping's range)."
  }
}

variable "notifier_reserved_concurrency" {
  description = "The notifier's reserved concurrency, with reserve_concurrency."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.notifier_reserved_concurrency >= 1 && var.notifier_reserved_concurrency <= 1000 && floor(var.notifier_reserved_concurrency) == var.notifier_reserved_concurrency
    error_message = "notifier_reserved_concurrency must be a whole number from 1 to 1000."
  }
}

variable "resources" {
  description = "What the root module created that the functions are told: the table, the queues, the topic, the worker's role and the client-key secret."
  type = object({
    table_name        = string
    queue_url         = string
    dlq_url           = string
    topic_arn         = string
    worker_role_arn   = string
    client_key_secret = string
    # The secret before the last rotation ("" when client_key_previous_until is).
    client_key_secret_previous = string
  })
  sensitive = true
}
