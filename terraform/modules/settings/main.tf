# What the variables come to: the allowlist, each pipeline's settings as
# the functions read them, the network levels, and every problem the
# functions would refuse to start with, each naming its variable.
#
# Terraform knows no "is a string" or "is a bool": `x == tostring(x)` is
# true only for a string (3 == "3" is false: == compares types too),
# `x == true || x == false` only for a bool, `tonumber(x) == x` only for a
# number, `can(keys(x))` for an object and `can(concat(x, []))` for a list.
# `&&` and `||` evaluate both sides, so each check sits inside try().
# length() counts grapheme clusters, the functions count characters:
# local.chars counts characters. Numbers stay within ±1e308: Terraform
# writes a number as all its digits, and a JSON parser reading the 309
# digits of the largest double can round them past it.

locals {
  # A character (code point), as the functions count them.
  chars = "(?s)."
  # What the functions refuse in text people read: controls, format
  # characters (bidi controls, zero-width, soft hyphen, tags), line and
  # paragraph separators and private use (shared/src/rules/text.rs).
  unreadable = "[\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}\\p{Co}]"
  # The largest number a setting may hold (see above).
  max_number = pow(10, 308)

  # The allowlist: the example pipeline, when created, as "example".
  pipelines = merge(
    var.pipelines,
    var.example_pipeline == null ? {} : { example = var.example_pipeline.name },
  )
  default_pipeline = var.default_pipeline != null ? var.default_pipeline : try(sort(keys(local.pipelines))[0], "")
  # PIPELINES: the default target first, then the others in sort order;
  # `name` alone when the public name is the pipeline's own.
  pipeline_entries = [
    for public in concat([local.default_pipeline], [for p in sort(keys(local.pipelines)) : p if p != local.default_pipeline]) :
    public == local.pipelines[public] ? public : "${public}=${local.pipelines[public]}"
    if contains(keys(local.pipelines), public)
  ]

  # Each pipeline's settings, an attribute set to null left out (HCL's
  # "not set"), inputs too.
  given_settings = merge(
    var.example_pipeline == null ? {} : { example = var.example_pipeline.settings },
    try({ for public, setting in var.pipeline_settings : public => setting }, {}),
  )
  settings = {
    for public, setting in local.given_settings : public => try(merge(
      { for field, value in setting : field => value if value != null && field != "inputs" },
      {
        for field in try(setting.inputs, null) == null ? [] : ["inputs"] : field => try({
          for name, input in setting.inputs : name => try({ for f, v in input : f => v if v != null }, input)
        }, setting.inputs)
      },
    ), setting)
  }

  setting_fields = ["description", "coalesce", "max_pending", "reserved_pending", "inputs"]
  input_fields = {
    choice  = ["type", "options", "default", "description", "hint"]
    boolean = ["type", "default", "description", "hint"]
    number  = ["type", "min", "max", "integer", "default", "description", "hint"]
    string  = ["type", "pattern", "max_length", "default", "description", "hint"]
  }

  # NETWORK_QUOTA_LIMITS: as given, or derived from quota_limit as the
  # functions derive it when the variable is unset.
  network_quota_limits = (
    var.network_quota_limits != null ? var.network_quota_limits
    : "ipv6/56=${min(var.quota_limit * 2, 100)},ipv6/48=${min(var.quota_limit * 4, 100)}"
  )
  network_text   = lower(trimspace(local.network_quota_limits))
  network_levels = local.network_text == "" || local.network_text == "off" ? [] : [for item in split(",", local.network_quota_limits) : trimspace(item)]
  # Each item is a prefix level (ipv6/48=12) or a network group's
  # (group:aws=30, the group imported with trigger-ops networks import).
  network_items = [
    for item in local.network_levels : {
      item  = item
      group = try(regex("^group:([a-z0-9][a-z0-9-]{0,31})\\s*=\\s*([0-9]{1,3})$", item), null)
    }
  ]
  network_parsed = [
    for level in local.network_items : {
      item   = level.item
      parsed = try(regex("^(?i)(ipv4|ipv6)\\s*/\\s*([0-9]{1,3})\\s*=\\s*([0-9]{1,3})$", level.item), null)
    } if level.group == null
  ]
  network_groups = [for level in local.network_items : level if level.group != null]

  problems = concat(
    local.pipeline_problems,
    local.network_problems,
    local.setting_problems,
    local.input_problems,
  )

  pipeline_problems = concat(
    length(local.pipelines) > 0 ? [] : ["pipelines: none set; set pipelines (public name => CodePipeline name) or create_example_pipeline"],
    var.example_pipeline != null && contains(keys(var.pipelines), "example") ? ["pipelines: \"example\" is the example pipeline's public name (create_example_pipeline); choose another"] : [],
    length(local.pipelines) == 0 || contains(keys(local.pipelines), local.default_pipeline) ? [] : ["default_pipeline: ${jsonencode(local.default_pipeline)} is not a public name of pipelines (${join(", ", sort(keys(local.pipelines)))})"],
    can(keys(var.pipeline_settings)) ? [] : ["pipeline_settings: must be a map keyed by public pipeline name"],
    [
      for public in keys(local.given_settings) :
      "pipeline_settings: ${jsonencode(public)} is not a public name of pipelines (${join(", ", sort(keys(local.pipelines)))})"
      if !contains(keys(local.pipelines), public)
    ],
  )

  network_problems = concat(
    [
      for level in local.network_parsed :
      "network_quota_limits: ${jsonencode(level.item)} is not a level like ipv4/24=20, ipv6/48=12 (ipv4/8-31, ipv6/32-63) or group:aws=30"
      if level.parsed == null ? true : !(
        lower(level.parsed[0]) == "ipv4" ? tonumber(level.parsed[1]) >= 8 && tonumber(level.parsed[1]) <= 31
        : tonumber(level.parsed[1]) >= 32 && tonumber(level.parsed[1]) <= 63
      )
    ],
    [
      for level in local.network_parsed :
      "network_quota_limits: ${jsonencode(level.item)}: the limit must be between quota_limit (${var.quota_limit}) and 100"
      if level.parsed == null ? false : tonumber(level.parsed[2]) < var.quota_limit || tonumber(level.parsed[2]) > 100
    ],
    [
      for level in local.network_groups :
      "network_quota_limits: ${jsonencode(level.item)}: the limit must be between quota_limit (${var.quota_limit}) and 100"
      if tonumber(level.group[1]) < var.quota_limit || tonumber(level.group[1]) > 100
    ],
    length(local.network_parsed) <= 4 ? [] : ["network_quota_limits: at most 4 levels"],
    length(local.network_groups) <= 8 ? [] : ["network_quota_limits: at most 8 groups"],
    length(distinct([for level in local.network_parsed : level.parsed == null ? level.item : "${lower(level.parsed[0])}/${tonumber(level.parsed[1])}"])) == length(local.network_parsed) ? [] : ["network_quota_limits: a level is listed twice"],
    length(distinct([for level in local.network_groups : level.group[0]])) == length(local.network_groups) ? [] : ["network_quota_limits: a group is listed twice"],
  )

  setting_problems = flatten([
    for public, setting in local.settings : can(keys(setting)) ? concat(
      [
        for field in keys(setting) :
        "pipeline_settings.${public}: unknown field ${jsonencode(field)} (allowed: ${join(", ", local.setting_fields)})"
        if !contains(local.setting_fields, field)
      ],
      [
        for text in try([setting.description], []) :
        "pipeline_settings.${public}.description must be a string of at most 500 characters"
        if !try(text == tostring(text) && length(regexall(local.chars, text)) <= 500, false)
      ],
      [
        for text in try([setting.description], []) :
        "pipeline_settings.${public}.description must not contain control, bidi, zero-width or other invisible characters"
        if try(length(regexall(local.unreadable, text)) > 0, false)
      ],
      [
        for value in try([setting.coalesce], []) :
        "pipeline_settings.${public}.coalesce must be true or false"
        if !(value == true || value == false)
      ],
      [
        for value in try([setting.max_pending], []) :
        "pipeline_settings.${public}.max_pending must be a whole number from 1 to 100"
        if !try(value == tonumber(value) && floor(value) == value && value >= 1 && value <= 100, false)
      ],
      [
        for value in try([setting.reserved_pending], []) :
        "pipeline_settings.${public}.reserved_pending must be a whole number from 0 to max_pending - 1 (${try(setting.max_pending - 1, 2)})"
        if !try(value == tonumber(value) && floor(value) == value && value >= 0 && value < try(tonumber(setting.max_pending), 3), false)
      ],
      [
        for inputs in try([setting.inputs], []) :
        "pipeline_settings.${public}.inputs must be an object of input declarations"
        if !can(keys(inputs))
      ],
      length(try(keys(setting.inputs), [])) <= 50 ? [] : ["pipeline_settings.${public}.inputs: ${length(keys(setting.inputs))} inputs declared; at most 50"],
    ) : ["pipeline_settings.${public} must be an object (${join(", ", local.setting_fields)})"]
  ])

  # Every input declaration, flattened: its pipeline, name and fields.
  inputs = flatten([
    for public, setting in local.settings : [
      for name in try(keys(setting.inputs), []) : {
        at    = "pipeline_settings.${public}.inputs.${name}"
        name  = name
        input = setting.inputs[name]
        type  = try(tostring(setting.inputs[name].type), "")
      }
    ]
  ])

  input_problems = flatten([
    for i in local.inputs : can(regex("^[A-Za-z0-9@_-]{1,128}$", i.name)) ? (
      !can(keys(i.input)) ? ["${i.at} must be an object with a type"]
      : !contains(keys(local.input_fields), i.type) ? [
        try(i.input.type, null) == null ? "${i.at} needs a type: choice, boolean, number or string" : "${i.at}: unknown type ${jsonencode(i.input.type)} (choice, boolean, number or string)"
      ]
      : concat(
        [
          for field in keys(i.input) :
          "${i.at}: unknown field ${jsonencode(field)} for a ${i.type} (allowed: ${join(", ", local.input_fields[i.type])})"
          if !contains(local.input_fields[i.type], field)
        ],
        [
          for field in ["description", "hint"] :
          "${i.at}.${field} must be a string of at most 500 characters, without invisible characters"
          if try(!(i.input[field] == tostring(i.input[field]) && length(regexall(local.chars, i.input[field])) <= 500 && length(regexall(local.unreadable, i.input[field])) == 0), false)
        ],
        local.input_type_problems[i.at],
      )
    ) : ["pipeline_settings: input ${jsonencode(i.name)} is not a valid name (1-128 of A-Z a-z 0-9 @ - _)"]
  ])

  input_type_problems = {
    for i in local.inputs : i.at => (
      i.type == "choice" ? concat(
        try(length(i.input.options) >= 1 && length(i.input.options) <= 100 && alltrue([for o in i.input.options : o == tostring(o)]) && can(concat(i.input.options, [])), false)
        ? [] : ["${i.at}: a choice needs \"options\": a list of 1 to 100 strings"],
        try([for o in i.input.options : "${i.at}: an option is longer than 1000 characters" if try(length(regexall(local.chars, o)) > 1000, false)], []),
        [
          for d in try([i.input.default], []) : "${i.at}: its default must be one of the options"
          if !try(d == tostring(d) && contains(i.input.options, d), false)
        ],
      )
      : i.type == "boolean" ? [
        for d in try([i.input.default], []) : "${i.at}: its default must be true or false"
        if !(d == true || d == false)
      ]
      : i.type == "number" ? concat(
        [
          for bound in ["min", "max"] : "${i.at}.${bound} must be a number from -1e308 to 1e308"
          if can(i.input[bound]) && !try(i.input[bound] == tonumber(i.input[bound]) && abs(i.input[bound]) <= local.max_number, false)
        ],
        try(tonumber(i.input.min) > tonumber(i.input.max), false) ? ["${i.at}: \"min\" is greater than \"max\""] : [],
        [for value in try([i.input.integer], []) : "${i.at}.integer must be true or false" if !(value == true || value == false)],
        [
          for d in try([i.input.default], []) : "${i.at}: its default must be a number within its bounds${try(i.input.integer, false) == true ? ", whole" : ""}"
          if !try(
            d == tonumber(d) && abs(d) <= local.max_number
            && (try(i.input.integer, false) == true ? floor(d) == d : true)
            && (can(i.input.min) ? d >= i.input.min : true)
            && (can(i.input.max) ? d <= i.input.max : true),
            false
          )
        ],
      )
      : concat(
        # A string input: its pattern must compile as the functions'
        # engine (regex-lite) compiles it: Terraform's engine (RE2)
        # accepts more (local.pattern_problems).
        try(
          i.input.pattern == tostring(i.input.pattern)
          && length(regexall(local.chars, i.input.pattern)) <= 1000
          && can(regexall("^(?:${i.input.pattern})$", ""))
          && length(local.pattern_problems[i.at]) == 0,
          false
          ) ? [] : [
          try(i.input.pattern, null) == null
          ? "${i.at}: a string input needs a \"pattern\" its whole value must match (free text is never passed to a pipeline)"
          : "${i.at}.pattern must be a regular expression of at most 1000 characters that compiles with ASCII classes only${try(" (${join(", ", local.pattern_problems[i.at])})", "")}"
        ],
        [
          for value in try([i.input.max_length], []) : "${i.at}.max_length must be a whole number from 1 to 1000"
          if !try(value == tonumber(value) && floor(value) == value && value >= 1 && value <= 1000, false)
        ],
        [
          for d in try([i.input.default], []) : "${i.at}: its default must be a string of at most ${try(i.input.max_length, 1000)} characters, without invisible characters, matching the pattern"
          if !try(
            d == tostring(d)
            && length(regexall(local.chars, d)) <= try(tonumber(i.input.max_length), 1000)
            && length(regexall(local.unreadable, d)) == 0
            && can(regex("^(?:${i.input.pattern})$", d))
            # Case folding differs beyond ASCII (regex-lite folds ASCII
            # letters only): a pattern with flags takes an ASCII default.
            && (strcontains(i.input.pattern, "(?") ? can(regex("^[\\x20-\\x7e]*$", d)) : true),
            false
          )
        ],
      )
    )
  }

  # What RE2 accepts in a pattern and regex-lite refuses, found by
  # tests/terraform_plan.rs comparing the two: Unicode classes, \Q..\E,
  # octal escapes, surrogate code points, a `{` that does not start a
  # repetition, class set operations (&& ~~), a [ inside a class, empty flags `(?)`, and group
  # names that are not identifiers or repeat.
  patterns = { for i in local.inputs : i.at => try(tostring(i.input.pattern), "") if i.type == "string" }
  # Without escaped backslashes; then with every escape one plain letter.
  pattern_unescaped = { for at, p in local.patterns : at => replace(p, "\\\\", "E") }
  pattern_bare = {
    for at, p in local.pattern_unescaped : at => replace(replace(p, "/\\\\[xuU]\\{[0-9A-Fa-f]*\\}/", "E"), "/\\\\./", "E")
  }
  pattern_groups = { for at, p in local.pattern_bare : at => flatten(regexall("\\(\\?P?<([^>]*)>", p)) }
  pattern_problems = {
    for at, p in local.pattern_unescaped : at => concat(
      length(regexall("\\\\[pPQE0-7]", p)) == 0 ? [] : ["no \\p, \\P, \\Q, \\E or octal escapes"],
      length(regexall("\\\\[xuU]\\{0*[dD][89a-fA-F][0-9a-fA-F]{2}\\}", p)) == 0 ? [] : ["no surrogate code points"],
      length(regexall("\\{", local.pattern_bare[at])) == length(regexall("\\{[0-9]+(,[0-9]*)?\\}", local.pattern_bare[at])) && length(regexall("(^|[(|])\\{", local.pattern_bare[at])) == 0 ? [] : ["a { must start a repetition of what comes before it, such as a{2} or a{1,3}: write \\{ for the character"],
      length(regexall("&&|~~", local.pattern_bare[at])) == 0 ? [] : ["no && or ~~"],
      length(regexall("\\[\\^?\\]?[^\\]]*\\[", replace(local.pattern_bare[at], "/\\[:\\^?[a-z]+:\\]/", "A"))) == 0 ? [] : ["a [ inside a class must be written \\["],
      !strcontains(local.pattern_bare[at], "(?)") ? [] : ["no empty flags (?)"],
      alltrue([for name in local.pattern_groups[at] : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", name))]) && length(distinct(local.pattern_groups[at])) == length(local.pattern_groups[at]) ? [] : ["group names must be distinct identifiers"],
    )
  }

  # The environment of each function: exactly the variables of
  # docs/reference/configuration.md it reads (tests/terraform.rs checks
  # the names against shared::config::VARIABLES).
  pipeline_settings_json = jsonencode(local.settings)
  environment = {
    ingress = {
      TABLE_NAME           = var.resources.table_name
      QUEUE_URL            = var.resources.queue_url
      PIPELINES            = join(",", local.pipeline_entries)
      QUOTA_LIMIT          = tostring(var.quota_limit)
      QUOTA_WINDOW         = var.quota_window
      NETWORK_QUOTA_LIMITS = local.network_quota_limits
      GLOBAL_QUOTA_LIMIT   = tostring(var.global_quota_limit)
      GLOBAL_QUOTA_WINDOW  = var.global_quota_window
      CLIENT_KEY_SECRET    = var.resources.client_key_secret
      # Both set during a rotation's overlap, both empty otherwise.
      CLIENT_KEY_SECRET_PREVIOUS = var.client_key_previous_until == "" ? "" : var.resources.client_key_secret_previous
      CLIENT_KEY_PREVIOUS_UNTIL  = var.client_key_previous_until
      LEDGER_RETENTION           = var.ledger_retention
      METRICS_NAMESPACE          = var.metrics_namespace
      PIPELINE_SETTINGS          = local.pipeline_settings_json
      CORS_ALLOWED_ORIGINS       = join(",", var.cors_allowed_origins)
      REFUSAL_MEMORY             = var.refusal_memory
    }
    worker = {
      TABLE_NAME        = var.resources.table_name
      DLQ_URL           = var.resources.dlq_url
      PIPELINES         = join(",", local.pipeline_entries)
      MAX_ATTEMPTS      = tostring(var.max_attempts)
      RUN_POLL_INTERVAL = var.run_poll_interval
      RUN_CHECK_AFTER   = var.run_check_after
      LEDGER_RETENTION  = var.ledger_retention
      METRICS_NAMESPACE = var.metrics_namespace
      PIPELINE_SETTINGS = local.pipeline_settings_json
    }
    notifier = {
      TABLE_NAME        = var.resources.table_name
      TOPIC_ARN         = var.resources.topic_arn
      NOTIFY_STATES     = join(",", var.notify_states)
      LEDGER_RETENTION  = var.ledger_retention
      WORKER_ROLE_ARN   = var.resources.worker_role_arn
      METRICS_NAMESPACE = var.metrics_namespace
    }
  }

  # The answers API Gateway and the WAF give before the ingress runs, in
  # the product's voice (docs/reference/http-api.md): problem+json with
  # Retry-After where it applies and the CORS headers an allowed origin
  # needs. Their bodies are the same for everyone, so with several allowed
  # origins they carry "*" (a gateway answer cannot choose among origins).
  # The local stack's gateway plays the same file (tools/local/src/edge.rs).
  edge_file = jsondecode(file("${path.module}/edge-answers.json"))
  edge_cors = {
    for name, value in {
      "Access-Control-Allow-Origin"   = length(var.cors_allowed_origins) == 1 ? var.cors_allowed_origins[0] : "*"
      "Access-Control-Expose-Headers" = "Retry-After"
      "Vary"                          = "Origin"
    } : name => value
    if length(var.cors_allowed_origins) > 0 && (name != "Vary" || length(var.cors_allowed_origins) == 1 && !contains(var.cors_allowed_origins, "*"))
  }
  edge_answers = {
    for slug, answer in local.edge_file.answers : slug => {
      status      = try(answer.status, null)
      retry_after = try(answer.retry_after == "waf_window_seconds" ? var.waf_window_seconds : tonumber(answer.retry_after), null)
      body = jsonencode(merge(
        { type = "urn:pipeline-trigger:problem:${slug}", title = answer.title, detail = answer.detail },
        { for field, value in { status = try(answer.status, null), scope = try(answer.scope, null) } : field => value if value != null },
        { for field, value in { retry_after_seconds = try(answer.retry_after == "waf_window_seconds" ? var.waf_window_seconds : tonumber(answer.retry_after), null) } : field => value if value != null },
      ))
    }
  }
  edge_headers = {
    for slug, answer in local.edge_answers : slug => merge(
      { "Content-Type" = "application/problem+json", "Cache-Control" = "no-store" },
      { for name, value in { "Retry-After" = answer.retry_after == null ? null : tostring(answer.retry_after) } : name => value if value != null },
      local.edge_cors,
    )
  }

  reserved_concurrency = {
    ingress  = var.reserve_concurrency ? var.ingress_reserved_concurrency : null
    worker   = var.reserve_concurrency ? var.worker_max_concurrency : null
    notifier = var.reserve_concurrency ? var.notifier_reserved_concurrency : null
  }
}
