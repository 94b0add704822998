variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like us-east-1."
  }
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "pipeline-trigger"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}[a-z0-9]$", var.name))
    error_message = "name must be 3-40 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "pipelines" {
  description = "Allowlist of pipelines the public may trigger: public name => CodePipeline name. Leave empty only with create_example_pipeline."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for public, pipeline in var.pipelines :
      can(regex("^[A-Za-z0-9.@_-]{1,100}$", public)) && can(regex("^[A-Za-z0-9.@_-]{1,100}$", pipeline))
    ])
    error_message = "public names and pipeline names must be 1-100 characters of A-Z a-z 0-9 . @ _ -."
  }
}

variable "pipeline_settings" {
  description = "Per public pipeline (a key of pipelines): description, coalesce (default true) and typed inputs, as docs/reference/configuration.md \"Typed inputs\" says; rendered with jsonencode into PIPELINE_SETTINGS. The functions check it fully when they start; Terraform checks what it can here. Example: { app = { description = \"The app\", inputs = { env = { type = \"choice\", options = [\"staging\", \"production\"], default = \"staging\" } } } }"
  type        = any
  default     = {}

  validation {
    condition     = can(keys(var.pipeline_settings))
    error_message = "pipeline_settings must be a map keyed by public pipeline name."
  }
  validation {
    condition = alltrue([
      for public, setting in var.pipeline_settings :
      can(regex("^[A-Za-z0-9.@_-]{1,100}$", public)) && length(setdiff(keys(setting), ["description", "coalesce", "inputs"])) == 0
    ])
    error_message = "Each pipeline's settings may have only description, coalesce and inputs."
  }
  validation {
    condition = alltrue([
      for public, setting in var.pipeline_settings :
      length(try(setting.inputs, {})) <= 50 && alltrue([
        for name, input in try(setting.inputs, {}) :
        can(regex("^[A-Za-z0-9@_-]{1,128}$", name))
        && contains(["choice", "boolean", "number", "string"], try(input.type, ""))
        && (try(input.type, "") != "string" || can(regex(input.pattern, "")) || try(length(input.pattern) > 0, false))
        && (try(input.type, "") != "choice" || try(length(input.options) > 0, false))
      ])
    ])
    error_message = "Inputs: at most 50 per pipeline, names of 1-128 of A-Z a-z 0-9 @ - _, type choice, boolean, number or string; a string input needs a pattern, a choice input options."
  }
}

variable "cors_allowed_origins" {
  description = "Origins whose pages may call the API from a browser (a trigger button embedded on another site), such as [\"https://docs.example.com\"], or [\"*\"] for any; empty: only the API's own page. CORS decides only what a browser lets another site read: the quota applies to every caller all the same."
  type        = list(string)
  default     = []

  validation {
    condition = (
      var.cors_allowed_origins == ["*"]
      || alltrue([for origin in var.cors_allowed_origins : can(regex("^https?://[a-z0-9.-]+(:[0-9]{1,5})?$", origin))])
    )
    error_message = "cors_allowed_origins: [\"*\"] alone, or origins such as https://docs.example.com (scheme and host in lower case, an optional port, no path or trailing slash)."
  }
  validation {
    condition     = length(var.cors_allowed_origins) <= 50
    error_message = "cors_allowed_origins: at most 50 origins."
  }
}

variable "default_pipeline" {
  description = "Public name triggered when a request names none; null means the first public name in sort order."
  type        = string
  default     = null
}

variable "create_example_pipeline" {
  description = "Create a demo CodePipeline (S3 source, CodeBuild) and allow it as public name \"example\"."
  type        = bool
  default     = false
}

variable "alert_emails" {
  description = "E-mail addresses subscribed to the on-call topic (each must confirm)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "quota_limit" {
  description = "Accepted triggers per client (IPv4 address or IPv6 /64) per quota_window."
  type        = number
  default     = 3

  validation {
    condition     = var.quota_limit >= 1 && var.quota_limit <= 100 && floor(var.quota_limit) == var.quota_limit
    error_message = "quota_limit must be a whole number from 1 to 100."
  }
}

variable "quota_window" {
  description = "Rolling quota window (humantime: 7d, 36h, 90s)."
  type        = string
  default     = "7d"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.quota_window))
    error_message = "quota_window must be a number followed by s, m, h or d."
  }
}

variable "network_quota_limits" {
  description = "Per-network quotas over quota_window, each a slot every trigger also takes: comma-separated ipv4/<8-31>=N or ipv6/<32-63>=N, at most 4 levels, each N from quota_limit to 100; \"off\" for none. The default gives an IPv6 /56 (a household) 6 and a /48 (a site, or a free tunnel) 12 per week, so one person cannot multiply the quota by the 65,536 /64s of a /48. IPv4 levels are off by default: carrier-grade NAT puts many people behind one /24."
  type        = string
  default     = "ipv6/56=6,ipv6/48=12"

  validation {
    condition     = lower(trimspace(var.network_quota_limits)) == "off" || trimspace(var.network_quota_limits) == "" || alltrue([for level in split(",", var.network_quota_limits) : can(regex("^\\s*ipv(4/([89]|[12][0-9]|3[01])|6/(3[2-9]|[45][0-9]|6[0-3]))=[0-9]{1,3}\\s*$", level))])
    error_message = "network_quota_limits must be off, or levels like ipv6/56=6,ipv6/48=12 (ipv4/8-31, ipv6/32-63)."
  }
}

variable "global_quota_limit" {
  description = "Accepted triggers for all clients together per global_quota_window; 0 turns the global budget off."
  type        = number
  default     = 0

  validation {
    condition     = var.global_quota_limit >= 0 && floor(var.global_quota_limit) == var.global_quota_limit
    error_message = "global_quota_limit must be a whole number, 0 or more."
  }
}

variable "global_quota_window" {
  description = "Window of the global budget (humantime)."
  type        = string
  default     = "1d"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.global_quota_window))
    error_message = "global_quota_window must be a number followed by s, m, h or d."
  }
}

variable "ledger_retention" {
  description = "How long trigger records are kept (humantime)."
  type        = string
  default     = "30d"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h|d)$", var.ledger_retention))
    error_message = "ledger_retention must be a number followed by s, m, h or d."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' metrics (Embedded Metric Format lines in their logs, METRICS_NAMESPACE); the dashboard reads it."
  type        = string
  default     = "PipelineTrigger"

  validation {
    condition     = can(regex("^[A-Za-z0-9.\\-_/#:]{1,255}$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "AWS/") && !startswith(var.metrics_namespace, ":")
    error_message = "metrics_namespace must be 1 to 255 of A-Z a-z 0-9 . - _ / # :, not starting with AWS/ or :."
  }
}

variable "run_poll_interval" {
  description = "How often a pending run (coalesced triggers) looks whether its pipeline is free again (humantime, at most 15m: its message is sent again with this delay)."
  type        = string
  default     = "20s"

  validation {
    condition = can(regex("^[1-9][0-9]*(s|m)$", var.run_poll_interval)) && try(
      endswith(var.run_poll_interval, "s") ? tonumber(trimsuffix(var.run_poll_interval, "s")) <= 900 : tonumber(trimsuffix(var.run_poll_interval, "m")) <= 15,
      false
    )
    error_message = "run_poll_interval must be between 1s and 15m (SQS's longest message delay), written like 20s or 2m."
  }
}

variable "run_check_after" {
  description = "How long a run in progress may go without a state change before the worker asks CodePipeline whether it still runs (a lost or late EventBridge event never holds the pipeline longer). Longer than a stage usually takes without news; humantime."
  type        = string
  default     = "15m"

  validation {
    condition     = can(regex("^[1-9][0-9]*(s|m|h)$", var.run_check_after))
    error_message = "run_check_after must be a positive number followed by s, m or h."
  }
}

variable "max_attempts" {
  description = "Deliveries before the worker gives a message up to the DLQ."
  type        = number
  default     = 5

  validation {
    condition     = var.max_attempts >= 1 && var.max_attempts <= 100 && floor(var.max_attempts) == var.max_attempts
    error_message = "max_attempts must be a whole number from 1 to 100."
  }
}

variable "notify_states" {
  description = "Pipeline execution states that e-mail on-call (and that the EventBridge rule delivers)."
  type        = list(string)
  default     = ["SUCCEEDED", "FAILED", "STOPPED"]

  validation {
    condition = length(var.notify_states) > 0 && length(var.notify_states) == length(distinct(var.notify_states)) && alltrue([
      for s in var.notify_states : contains(["STARTED", "RESUMED", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "SUPERSEDED", "CANCELED"], s)
    ])
    error_message = "notify_states must be distinct CodePipeline execution states (STARTED, RESUMED, STOPPING, STOPPED, SUCCEEDED, FAILED, SUPERSEDED, CANCELED)."
  }
}

variable "stage_name" {
  description = "API Gateway stage name."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,64}$", var.stage_name))
    error_message = "stage_name must be letters, digits or underscores."
  }
}

variable "api_throttle_rate_limit" {
  description = "Requests per second API Gateway lets through to the page and its files (GET /, /assets), all clients together; the stage default. A page view is 4 requests: 20/s serves 5 new visitors a second, and costs at most 1.7 million Lambda requests a day (docs/cost.md)."
  type        = number
  default     = 20

  validation {
    condition     = var.api_throttle_rate_limit > 0 && var.api_throttle_rate_limit <= 10000
    error_message = "api_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "api_throttle_burst_limit" {
  description = "Burst of requests API Gateway lets through to the page and its files."
  type        = number
  default     = 40

  validation {
    condition     = var.api_throttle_burst_limit >= 1 && var.api_throttle_burst_limit <= 5000 && floor(var.api_throttle_burst_limit) == var.api_throttle_burst_limit
    error_message = "api_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "trigger_throttle_rate_limit" {
  description = "Requests per second to POST /trigger, all clients together: the costly route (an accepted trigger is a DynamoDB transaction, a message and a worker run; a refusal one transaction or none). 5/s is far above what the quota lets people use (3 a week each) and bounds a flood to 432,000 requests a day (docs/cost.md)."
  type        = number
  default     = 5

  validation {
    condition     = var.trigger_throttle_rate_limit > 0 && var.trigger_throttle_rate_limit <= 10000
    error_message = "trigger_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "trigger_throttle_burst_limit" {
  description = "Burst of requests to POST /trigger."
  type        = number
  default     = 10

  validation {
    condition     = var.trigger_throttle_burst_limit >= 1 && var.trigger_throttle_burst_limit <= 5000 && floor(var.trigger_throttle_burst_limit) == var.trigger_throttle_burst_limit
    error_message = "trigger_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "status_throttle_rate_limit" {
  description = "Requests per second to GET /triggers/{id} and GET /pipelines, all clients together: the page polls a followed trigger every 2 to 30 s, so 50/s follows some 250 runs at once; a status read is one DynamoDB read or none (docs/cost.md)."
  type        = number
  default     = 50

  validation {
    condition     = var.status_throttle_rate_limit > 0 && var.status_throttle_rate_limit <= 10000
    error_message = "status_throttle_rate_limit must be above 0 and at most 10000."
  }
}

variable "status_throttle_burst_limit" {
  description = "Burst of requests to GET /triggers/{id} and GET /pipelines."
  type        = number
  default     = 100

  validation {
    condition     = var.status_throttle_burst_limit >= 1 && var.status_throttle_burst_limit <= 5000 && floor(var.status_throttle_burst_limit) == var.status_throttle_burst_limit
    error_message = "status_throttle_burst_limit must be a whole number from 1 to 5000."
  }
}

variable "refusal_memory" {
  description = "How long a warm ingress answers a client it refused (quota, block) from memory, without an AWS call: 0s (off) to 60s. An unblock or a quota reset reaches warm instances at most this long later."
  type        = string
  default     = "60s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.refusal_memory)) && tonumber(trimsuffix(var.refusal_memory, "s")) <= 60
    error_message = "refusal_memory must be whole seconds from 0s to 60s."
  }
}

variable "alarm_accepted_per_5m" {
  description = "Alarm when more triggers than this are accepted in 5 minutes: a distributed flood that the quotas let through one slot at a time (see docs/operating.md, \"A flood\")."
  type        = number
  default     = 100
}

variable "alarm_refused_per_5m" {
  description = "Alarm when more triggers than this are refused in 5 minutes (quota, network, global, blocked, cross-site): someone is knocking."
  type        = number
  default     = 500
}

variable "manage_api_gateway_account" {
  description = "Set this region's API Gateway CloudWatch role (needed for access logs). Turn off if the account already manages it."
  type        = bool
  default     = true
}

variable "enable_waf" {
  description = "Put a WAFv2 web ACL in front of the API: per-IP rate rules (all routes, and POST /trigger tighter) and AWS's known-bad-inputs rules. On by default: without it one address can use a route's whole throttle and answer everyone else 429 (about 5 USD a month plus 0.60 USD per million requests; docs/cost.md)."
  type        = bool
  default     = true
}

variable "waf_trigger_rate_limit" {
  description = "POST /trigger requests per IP per 5 minutes before WAF blocks (with enable_waf; at least 10, WAF's minimum). The quota allows 3 a week: 20 leaves room for retries and refusals while one address cannot take a real share of trigger_throttle_rate_limit."
  type        = number
  default     = 20

  validation {
    condition     = var.waf_trigger_rate_limit >= 10 && var.waf_trigger_rate_limit <= 2000000000
    error_message = "waf_trigger_rate_limit must be at least 10."
  }
}

variable "waf_rate_limit" {
  description = "Requests per IP per 5 minutes, all routes, before WAF blocks (with enable_waf): the page and a followed run's polls stay well under 100."
  type        = number
  default     = 100

  validation {
    condition     = var.waf_rate_limit >= 10 && var.waf_rate_limit <= 2000000000
    error_message = "waf_rate_limit must be at least 10."
  }
}

variable "architecture" {
  description = "Lambda architecture; must match what scripts/build built (LAMBDA_ARCH)."
  type        = string
  default     = "x86_64"

  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be x86_64 or arm64."
  }
}

variable "lambda_package_dir" {
  description = "Where scripts/build put <function>/bootstrap.zip and the architecture file."
  type        = string
  default     = "../target/lambda"
}

variable "log_retention_days" {
  description = "Retention of the functions', API's and WAF's log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ..., 365, ...)."
  }
}

variable "worker_timeout_seconds" {
  description = "Worker Lambda timeout; the work queue's visibility timeout is 6 times this."
  type        = number
  default     = 30

  validation {
    condition     = var.worker_timeout_seconds >= 10 && var.worker_timeout_seconds <= 120
    error_message = "worker_timeout_seconds must be from 10 to 120."
  }
}

variable "worker_max_concurrency" {
  description = "Most concurrent worker invocations (event source mapping maximum_concurrency), keeping StartPipelineExecution within CodePipeline's API limits."
  type        = number
  default     = 2

  validation {
    condition     = var.worker_max_concurrency >= 2 && var.worker_max_concurrency <= 1000
    error_message = "worker_max_concurrency must be from 2 to 1000."
  }
}

variable "worker_batch_size" {
  description = "Messages per worker invocation."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_batch_size >= 1 && var.worker_batch_size <= 10
    error_message = "worker_batch_size must be from 1 to 10."
  }
}

variable "worker_batching_window_seconds" {
  description = "How long the event source mapping gathers a batch."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_batching_window_seconds >= 0 && var.worker_batching_window_seconds <= 300
    error_message = "worker_batching_window_seconds must be from 0 to 300."
  }
}

variable "ingress_reserved_concurrency" {
  description = "Reserved (and most) concurrent ingress invocations."
  type        = number
  default     = 20

  validation {
    condition     = var.ingress_reserved_concurrency >= 1
    error_message = "ingress_reserved_concurrency must be at least 1."
  }
}

variable "table_deletion_protection" {
  description = "Protect the DynamoDB table from deletion."
  type        = bool
  default     = true
}

variable "ingress_environment_readers" {
  description = "IAM role ARNs besides the ingress's own that may decrypt the ingress's environment (CLIENT_KEY_SECRET): the operators' role (for trigger-ops clients --secret-from-function) and the role that runs this Terraform (the AWS provider reads the function's environment back). Everyone else, admins included, gets the variables' values withheld."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.ingress_environment_readers : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", arn))])
    error_message = "ingress_environment_readers must be IAM role ARNs."
  }
}
