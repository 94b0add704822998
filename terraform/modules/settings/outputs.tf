output "environment" {
  description = "Each function's environment variables: ingress, worker, notifier."
  value       = local.environment
  sensitive   = true

  precondition {
    condition     = length(local.problems) == 0
    error_message = "The functions would refuse to start with these settings:\n- ${join("\n- ", local.problems)}"
  }
}

output "pipelines" {
  description = "Public name => CodePipeline name, the example pipeline included."
  value       = local.pipelines
}

output "codepipeline_names" {
  description = "The CodePipelines the system may start, each once (aliases share one)."
  value       = distinct(values(local.pipelines))
}

output "default_pipeline" {
  description = "The public name a request without one triggers."
  value       = local.default_pipeline
}

output "network_quota_limits" {
  description = "NETWORK_QUOTA_LIMITS as the functions read it (derived from quota_limit when not set)."
  value       = local.network_quota_limits
}

output "metrics_namespace" {
  description = "The namespace of the functions' metric lines."
  value       = var.metrics_namespace
}

output "notify_states" {
  description = "The states that e-mail on-call."
  value       = var.notify_states
}

output "max_attempts" {
  description = "Deliveries before the worker gives a message up."
  value       = var.max_attempts
}

output "route_throttles" {
  description = "API Gateway's method throttles: method path => { rate, burst }; every other method (GET / and its files) takes */* (each method a bucket of its own)."
  value = {
    "*/*"               = { rate = var.api_throttle_rate_limit, burst = var.api_throttle_burst_limit }
    "trigger/POST"      = { rate = var.trigger_throttle_rate_limit, burst = var.trigger_throttle_burst_limit }
    "triggers/{id}/GET" = { rate = var.status_throttle_rate_limit, burst = var.status_throttle_burst_limit }
    "pipelines/GET"     = { rate = var.status_throttle_rate_limit, burst = var.status_throttle_burst_limit }
    # Browsers keep a preflight's answer (Access-Control-Max-Age): a few
    # a second serve every embedding page.
    "trigger/OPTIONS"       = { rate = var.preflight_throttle_rate_limit, burst = var.preflight_throttle_burst_limit }
    "triggers/{id}/OPTIONS" = { rate = var.preflight_throttle_rate_limit, burst = var.preflight_throttle_burst_limit }
    "pipelines/OPTIONS"     = { rate = var.preflight_throttle_rate_limit, burst = var.preflight_throttle_burst_limit }
  }
}

output "waf" {
  description = "The WAF's per-address rules: whether on, the window and the limits."
  value = {
    enabled        = var.enable_waf
    window_seconds = var.waf_window_seconds
    rate_limit     = var.waf_rate_limit
    trigger_limit  = var.waf_trigger_rate_limit
  }
}

output "edge" {
  description = "The answers API Gateway and the WAF give in the product's voice: by slug, status (null: API Gateway's own), Retry-After, headers and problem+json body; which gateway response type and WAF rule gives which."
  value = {
    gateway = local.edge_file.gateway
    waf     = local.edge_file.waf
    answers = {
      for slug, answer in local.edge_answers : slug => merge(answer, { headers = local.edge_headers[slug] })
    }
  }
}

output "reserved_concurrency" {
  description = "Reserved concurrency per function (null: none, the unreserved pool)."
  value       = local.reserved_concurrency
}

output "reserved_concurrency_total" {
  description = "What the deployment reserves of the account's concurrency in all (scripts/deploy checks it against the account)."
  value       = sum([for n in values(local.reserved_concurrency) : n == null ? 0 : n])
}

output "worker_max_concurrency" {
  description = "The event source mapping's maximum_concurrency."
  value       = var.worker_max_concurrency
}

output "client_key_slots" {
  description = "The two client-key secrets that take turns, by slot: the generation each holds (a change of it makes that slot's secret anew). The current secret is in slot generation % 2, the previous one in the other."
  value = {
    for slot in [0, 1] : tostring(slot) => var.client_key_generation - ((var.client_key_generation - slot) % 2 + 2) % 2
  }
}

output "client_key_current_slot" {
  description = "The slot of the current client-key secret."
  value       = tostring(var.client_key_generation % 2)
}

output "client_key_rotation" {
  description = "The client-key generation and until when the previous secret counts (\"\": it does not)."
  value = {
    generation     = var.client_key_generation
    previous_until = var.client_key_previous_until
  }
}
