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
  description = "Allowlist of pipelines the public may trigger: public name => CodePipeline name. Leave empty only with create_example_pipeline. Default: {}."
  type        = map(string)
  default     = null
}

variable "pipeline_settings" {
  description = "Per public pipeline (a key of pipelines): description, coalesce (default true), max_pending (runs pending at once, default 3), reserved_pending (of those, slots only keyed triggers may fill, default 1) and typed inputs, as docs/reference/configuration.md \"PIPELINE_SETTINGS\" says; an attribute set to null counts as not set. Rendered with jsonencode into PIPELINE_SETTINGS; modules/settings refuses at plan whatever the functions would refuse at start, naming the pipeline and input. Example: { app = { description = \"The app\", inputs = { env = { type = \"choice\", options = [\"staging\", \"production\"], default = \"staging\" } } } } Default: {}."
  type        = any
  default     = null
}

variable "cors_allowed_origins" {
  description = "Origins whose pages may call the API from a browser (a trigger button embedded on another site), such as [\"https://docs.example.com\"], or [\"*\"] for any; empty: only the API's own page. CORS decides only what a browser lets another site read: the quota applies to every caller all the same. Default: []."
  type        = list(string)
  default     = null
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
  description = "Accepted triggers per client (IPv4 address or IPv6 /64) per quota_window. Default: 3."
  type        = number
  default     = null
}

variable "quota_window" {
  description = "Rolling quota window (humantime: 7d, 36h, 90s). Default: \"7d\"."
  type        = string
  default     = null
}

variable "network_quota_limits" {
  description = "Per-network quotas over quota_window, each a slot every trigger also takes: comma-separated ipv4/<8-31>=N or ipv6/<32-63>=N, at most 4 levels, each N from quota_limit to 100; \"off\" for none. Not set: an IPv6 /56 (a household) shares twice quota_limit and a /48 (a site, or a free tunnel) four times it, at most 100 each (ipv6/56=6,ipv6/48=12 at the default 3), so one person cannot multiply the quota by the 65,536 /64s of a /48. IPv4 levels are off by default: carrier-grade NAT puts many people behind one /24."
  type        = string
  default     = null
}

variable "global_quota_limit" {
  description = "Accepted triggers for all clients together per global_quota_window; 0 turns the global budget off. Default: 0."
  type        = number
  default     = null
}

variable "global_quota_window" {
  description = "Window of the global budget (humantime). Default: \"1d\"."
  type        = string
  default     = null
}

variable "ledger_retention" {
  description = "How long trigger records are kept (humantime). Default: \"30d\"."
  type        = string
  default     = null
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the functions' metrics (Embedded Metric Format lines in their logs, METRICS_NAMESPACE); the dashboard reads it. Default: \"PipelineTrigger\"."
  type        = string
  default     = null
}

variable "run_poll_interval" {
  description = "How often a pending run (coalesced triggers) looks whether its pipeline is free again (humantime, at most 15m: its message is sent again with this delay). Default: \"20s\"."
  type        = string
  default     = null
}

variable "run_check_after" {
  description = "How long a run in progress may go without a state change before the worker asks CodePipeline whether it still runs (a lost or late EventBridge event never holds the pipeline longer). Longer than a stage usually takes without news; humantime. Default: \"15m\"."
  type        = string
  default     = null
}

variable "max_attempts" {
  description = "Deliveries before the worker gives a message up to the DLQ. Default: 5."
  type        = number
  default     = null
}

variable "notify_states" {
  description = "Pipeline execution states that e-mail on-call. Only the e-mails: the EventBridge rule delivers every state to the notifier, which records each on its run (GET /triggers/{id}, the page). Default: [\"SUCCEEDED\", \"FAILED\", \"STOPPED\"]."
  type        = list(string)
  default     = null
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
  description = "Requests per second API Gateway lets through to the page and its files (GET /, /assets), all clients together; the stage default. A page view is 4 requests: 20/s serves 5 new visitors a second, and costs at most 1.7 million Lambda requests a day (docs/cost.md). Default: 20."
  type        = number
  default     = null
}

variable "api_throttle_burst_limit" {
  description = "Burst of requests API Gateway lets through to the page and its files. Default: 40."
  type        = number
  default     = null
}

variable "trigger_throttle_rate_limit" {
  description = "Requests per second to POST /trigger, all clients together: the costly route (an accepted trigger is a DynamoDB transaction, a message and a worker run; a refusal one transaction or none). Chosen with waf_trigger_rate_limit and waf_window_seconds: it takes trigger_throttle_rate_limit x waf_window_seconds / waf_trigger_rate_limit addresses, each under the WAF's limit, to hold it (1,200 with the defaults), and a day at this rate costs at most about 7 USD (docs/cost.md, \"The throttles and the WAF\"). Default: 20."
  type        = number
  default     = null
}

variable "trigger_throttle_burst_limit" {
  description = "Burst of requests to POST /trigger. Default: 40."
  type        = number
  default     = null
}

variable "status_throttle_rate_limit" {
  description = "Requests per second to GET /triggers/{id} and GET /pipelines, all clients together: the page polls a followed trigger every 2 to 30 s, so 50/s follows some 250 runs at once; a status read is one DynamoDB read or none (docs/cost.md). Default: 50."
  type        = number
  default     = null
}

variable "status_throttle_burst_limit" {
  description = "Burst of requests to GET /triggers/{id} and GET /pipelines. Default: 100."
  type        = number
  default     = null
}

variable "preflight_throttle_rate_limit" {
  description = "Requests per second to each OPTIONS route (a CORS preflight of an embedding page), all clients together: browsers keep a preflight's answer for Access-Control-Max-Age, so a few a second serve every page. Default: 5."
  type        = number
  default     = null
}

variable "preflight_throttle_burst_limit" {
  description = "Burst of requests to each OPTIONS route. Default: 10."
  type        = number
  default     = null
}

variable "client_key_generation" {
  description = "Which client-key secret is current: each step up rotates it, keeping the one before for the overlap client_key_previous_until sets (docs/operating.md, \"Rotating the client-key secret\"; trigger-ops secret rotate prints both values). Default: 0."
  type        = number
  default     = null
}

variable "client_key_previous_until" {
  description = "Until when the secret before the last rotation still counts (RFC 3339): each client is charged and refused under both secrets' keys until then, so a rotation gives nobody a fresh quota and lifts no block; empty: none. Default: \"\"."
  type        = string
  default     = null
}

variable "refusal_memory" {
  description = "How long a warm ingress answers a client it refused (quota, block) from memory, without an AWS call: 0s (off) to 60s. An unblock or a quota reset reaches warm instances at most this long later. Default: \"60s\"."
  type        = string
  default     = null
}

variable "alarm_accepted_per_5m" {
  description = "Alarm when more anonymous triggers than this are accepted in 5 minutes: a distributed flood that the quotas let through one slot at a time (see docs/operating.md, \"A flood\")."
  type        = number
  default     = 100
}

variable "alarm_refused_per_5m" {
  description = "Alarm when more triggers than this are refused in 5 minutes (quota, network, global, key quota, invalid key, blocked, cross-site): someone is knocking."
  type        = number
  default     = 500
}

variable "alarm_lane_full_per_minute" {
  description = "Alarm when more anonymous triggers than this are refused a minute behind a full queue (queue_full), 5 minutes running: a flood holds a pipeline's anonymous lane (see docs/operating.md, \"Alarm anonymous-lane-full\")."
  type        = number
  default     = 5
  validation {
    condition     = var.alarm_lane_full_per_minute >= 0
    error_message = "alarm_lane_full_per_minute is a count of refusals a minute: 0 or more."
  }
}

variable "manage_api_gateway_account" {
  description = "Set this region's API Gateway CloudWatch role (needed for access logs). Turn off if the account already manages it."
  type        = bool
  default     = true
}

variable "enable_waf" {
  description = "Put a WAFv2 web ACL in front of the API: per-address rate rules (all routes, and POST /trigger tighter, over waf_window_seconds) that answer 429 in the product's voice, and AWS's known-bad-inputs rules. On by default: without it one address can use a route's whole throttle and answer everyone else 429 (about 6 USD a month plus 0.60 USD per million requests; docs/cost.md). Default: true."
  type        = bool
  default     = null
}

variable "waf_trigger_rate_limit" {
  description = "POST /trigger requests per address per waf_window_seconds before the WAF answers 429 (with enable_waf; at least 10, AWS WAF's minimum). The quota allows 3 a week: 10 in 10 minutes leaves room for retries and refusals while an address holds 1/60 of a request a second, so holding trigger_throttle_rate_limit takes 1,200 addresses (docs/cost.md). Default: 10."
  type        = number
  default     = null
}

variable "waf_window_seconds" {
  description = "The window over which the WAF counts each address's requests (with enable_waf): 60, 120, 300 or 600 seconds; a refused address gets Retry-After of this window. Default: 600."
  type        = number
  default     = null
}

variable "waf_rate_limit" {
  description = "Requests per address per waf_window_seconds, all routes, before the WAF answers 429 (with enable_waf): a page view is 4 requests and following a run polls at most every 2 s while it changes, about 30 times in 10 minutes. Default: 200."
  type        = number
  default     = null
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
  description = "Retention of the functions', API's and WAF's log groups: as long as the ledger keeps the triggers they speak of (ledger_retention, 30 days). A day of flood at every throttle's ceiling writes about 15 GB (docs/cost.md); raise it when an audit asks for longer. Default: 30."
  type        = number
  default     = 30

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
  description = "Most concurrent worker invocations (the event source mapping's maximum_concurrency, so no reservation is needed to bound it), keeping StartPipelineExecution within CodePipeline's API limits; with reserve_concurrency also reserved. Default: 2."
  type        = number
  default     = null
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

variable "reserve_concurrency" {
  description = "Reserve concurrency for the functions: ingress_reserved_concurrency, worker_max_concurrency and notifier_reserved_concurrency (27 with the defaults). Off by default: an account keeps at least 100 unreserved, so a new account (a quota of 10 or 50) cannot reserve any; scripts/deploy checks what the account has before it applies (docs/operating.md, \"Concurrency\"). Default: false."
  type        = bool
  default     = null
}

variable "notifier_reserved_concurrency" {
  description = "The notifier's reserved concurrency, with reserve_concurrency. Default: 5."
  type        = number
  default     = null
}

variable "ingress_reserved_concurrency" {
  description = "The ingress's reserved (and most) concurrent invocations, with reserve_concurrency. Default: 20."
  type        = number
  default     = null
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
