//! The Terraform under `terraform/`, parsed with hcl-rs (no Terraform binary
//! here) and checked against the code: the environment each function reads,
//! the actions each role allows, the queue and event wiring.

use hcl::eval::{Context, Evaluate};
use hcl::{Block, Body, Expression};
use shared::config::{variables_of, Function, VARIABLES};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use testkit::permissions::{allowed, Resource, KEY_GRANTS};

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform")
}

/// Every `.tf` file of a module, parsed, as one body.
fn module(dir: &Path) -> Body {
    let mut structures = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .tf files in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let body: Body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        structures.extend(body.into_inner());
    }
    Body::from(structures)
}

fn root() -> Body {
    module(&terraform_dir())
}

/// The provider-free module that checks the settings and renders each
/// function's environment (planned by tests/terraform_plan.rs).
fn settings() -> Body {
    module(&terraform_dir().join("modules/settings"))
}

fn block<'a>(body: &'a Body, kind: &str, labels: &[&str]) -> &'a Block {
    body.blocks()
        .find(|b| {
            b.identifier() == kind
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(labels.iter().copied())
        })
        .unwrap_or_else(|| panic!("no {kind} {labels:?}"))
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no attribute {key}"))
}

/// An expression as one line of HCL (`[a, b]`, `var.x`, `"text"`).
fn text(expr: &Expression) -> String {
    expr.to_string()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("[ ", "[")
        .replace(" ]", "]")
        .replace("{ ", "{")
        .replace(" }", "}")
}

fn local<'a>(body: &'a Body, name: &str) -> &'a Expression {
    body.blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == name)
        .map(|a| a.expr())
        .unwrap_or_else(|| panic!("no local {name}"))
}

/// An object expression's entries, keys as text.
fn entries(expr: &Expression) -> BTreeMap<String, &Expression> {
    match expr {
        Expression::Object(object) => object
            .iter()
            .map(|(k, v)| (k.to_string().trim_matches('"').to_string(), v))
            .collect(),
        other => panic!("not an object: {other}"),
    }
}

fn strings(expr: &Expression) -> BTreeSet<String> {
    match expr {
        Expression::Array(items) => items
            .iter()
            .map(|i| match i {
                Expression::String(s) => s.clone(),
                other => panic!("not a string: {other}"),
            })
            .collect(),
        other => panic!("not an array: {other}"),
    }
}

const FUNCTIONS: [(&str, Function); 3] = [
    ("ingress", Function::Ingress),
    ("worker", Function::Worker),
    ("notifier", Function::Notifier),
];

#[test]
fn every_module_parses() {
    root();
    settings();
    module(&terraform_dir().join("modules/example-pipeline"));
}

#[test]
fn each_function_gets_exactly_the_variables_it_reads() {
    let body = root();
    let settings = settings();
    let environment = entries(local(&settings, "environment"));
    assert_eq!(
        environment.keys().collect::<Vec<_>>(),
        ["ingress", "notifier", "worker"]
    );
    for (name, function) in FUNCTIONS {
        let set: BTreeSet<String> = entries(environment[name]).into_keys().collect();
        let read: BTreeSet<String> = variables_of(function)
            .into_iter()
            .map(str::to_string)
            .collect();
        assert_eq!(set, read, "{name}");
    }
    // Each points at the right thing: what the root module created comes
    // in as `resources`.
    let ingress = entries(environment["ingress"]);
    let worker = entries(environment["worker"]);
    let notifier = entries(environment["notifier"]);
    for env in [&ingress, &worker, &notifier] {
        assert_eq!(text(env["TABLE_NAME"]), "var.resources.table_name");
        assert_eq!(text(env["LEDGER_RETENTION"]), "var.ledger_retention");
    }
    assert_eq!(text(ingress["QUEUE_URL"]), "var.resources.queue_url");
    assert_eq!(
        text(ingress["CLIENT_KEY_SECRET"]),
        "var.resources.client_key_secret"
    );
    assert_eq!(text(worker["DLQ_URL"]), "var.resources.dlq_url");
    assert_eq!(text(notifier["TOPIC_ARN"]), "var.resources.topic_arn");
    let call = block(&body, "module", &["settings"]).body();
    let resources = entries(attr(call, "resources"));
    for (field, expected) in [
        ("table_name", "aws_dynamodb_table.main.name"),
        ("queue_url", "aws_sqs_queue.work.url"),
        ("dlq_url", "aws_sqs_queue.work_dlq.url"),
        ("topic_arn", "aws_sns_topic.alerts.arn"),
        ("worker_role_arn", "aws_iam_role.function[\"worker\"].arn"),
        ("client_key_secret", "local.client_key_secret"),
        (
            "client_key_secret_previous",
            "local.client_key_secret_previous",
        ),
    ] {
        assert_eq!(text(resources[field]), expected, "{field}");
    }
    // Only the contract's variables exist at all.
    let contract: BTreeSet<&str> = VARIABLES.iter().map(|v| v.name).collect();
    for env in environment.values() {
        for key in entries(env).keys() {
            assert!(contract.contains(key.as_str()), "{key}");
        }
    }
    // The functions take exactly that map.
    assert_eq!(
        text(local(&body, "function_environment")),
        "module.settings.environment"
    );
    let function = block(&body, "resource", &["aws_lambda_function", "function"]);
    let env_block = function
        .body()
        .blocks()
        .find(|b| b.identifier() == "environment")
        .expect("environment block");
    assert_eq!(
        text(attr(env_block.body(), "variables")),
        "local.function_environment[each.key]"
    );
}

/// Every variable of the settings module is a variable of the root module
/// too, passed as it is, null by default there (the module's default then
/// applies), and the root's description says the module's default.
#[test]
fn the_root_passes_every_setting_through_and_says_its_default() {
    let body = root();
    let settings = settings();
    let call = block(&body, "module", &["settings"]).body();
    for variable in settings.blocks().filter(|b| b.identifier() == "variable") {
        let name = variable.labels()[0].as_str();
        if ["resources", "example_pipeline"].contains(&name) {
            assert!(call.attributes().any(|a| a.key() == name), "{name}");
            continue;
        }
        assert_eq!(text(attr(call, name)), format!("var.{name}"), "{name}");
        let root_variable = block(&body, "variable", &[name]).body();
        assert_eq!(text(attr(root_variable, "default")), "null", "{name}");
        let described = text(attr(root_variable, "description"));
        let default = variable.body().attributes().find(|a| a.key() == "default");
        match default.map(|d| text(d.expr())) {
            None => panic!("{name}: the module gives no default"),
            Some(value) if value == "null" => {}
            Some(value) => {
                let said = format!("Default: {}.", value.replace('"', "\\\""));
                assert!(
                    described.ends_with(&format!("{said}\"")),
                    "{name}: {described} does not end with {said}"
                );
            }
        }
    }
}

#[test]
fn every_function_is_a_small_custom_runtime_with_its_own_log_group_and_role() {
    let body = root();
    let functions = entries(local(&body, "functions"));
    assert_eq!(
        functions.keys().collect::<Vec<_>>(),
        ["ingress", "notifier", "worker"]
    );
    for (kind, name) in [
        ("aws_lambda_function", "function"),
        ("aws_cloudwatch_log_group", "function"),
        ("aws_iam_role", "function"),
        ("aws_iam_role_policy", "function"),
        ("aws_iam_role_policy", "logs"),
    ] {
        let b = block(&body, "resource", &[kind, name]);
        assert_eq!(
            text(attr(b.body(), "for_each")),
            "local.functions",
            "{kind}"
        );
    }
    let function = block(&body, "resource", &["aws_lambda_function", "function"]).body();
    assert_eq!(text(attr(function, "runtime")), "\"provided.al2023\"");
    assert_eq!(text(attr(function, "handler")), "\"bootstrap\"");
    assert_eq!(text(attr(function, "memory_size")), "128");
    assert_eq!(text(attr(function, "architectures")), "[var.architecture]");
    assert_eq!(
        text(attr(function, "role")),
        "aws_iam_role.function[each.key].arn"
    );
    let logging = function
        .blocks()
        .find(|b| b.identifier() == "logging_config")
        .expect("logging_config");
    assert_eq!(
        text(attr(logging.body(), "log_group")),
        "aws_cloudwatch_log_group.function[each.key].name"
    );
    let logs = block(&body, "data", &["aws_iam_policy_document", "logs"]).body();
    let statement = logs
        .blocks()
        .find(|b| b.identifier() == "statement")
        .unwrap();
    assert!(text(attr(statement.body(), "resources"))
        .contains("aws_cloudwatch_log_group.function[each.key].arn"));
}

/// sid → actions of a policy document.
fn statements(document: &Body) -> BTreeMap<String, (BTreeSet<String>, String)> {
    document
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .map(|s| {
            let sid = match attr(s.body(), "sid") {
                Expression::String(sid) => sid.clone(),
                other => panic!("sid {other}"),
            };
            (
                sid,
                (
                    strings(attr(s.body(), "actions")),
                    text(attr(s.body(), "resources")),
                ),
            )
        })
        .collect()
}

fn reference(resource: Resource) -> &'static str {
    match resource {
        Resource::Table => "[aws_dynamodb_table.main.arn]",
        Resource::WorkQueue => "[aws_sqs_queue.work.arn]",
        Resource::WorkDlq => "[aws_sqs_queue.work_dlq.arn]",
        Resource::EventsDlq => "[aws_sqs_queue.events_dlq.arn]",
        Resource::Topic => "[aws_sns_topic.alerts.arn]",
        Resource::Pipelines => "local.pipeline_arns",
        Resource::IngressFunction => "[aws_lambda_function.function[\"ingress\"].arn]",
        Resource::NotifierFunction => "[aws_lambda_function.function[\"notifier\"].arn]",
        Resource::DayIndex => "[\"${aws_dynamodb_table.main.arn}/index/by_day\"]",
        Resource::LedgerIndexes => {
            "[\"${aws_dynamodb_table.main.arn}/index/by_day\", \"${aws_dynamodb_table.main.arn}/index/by_run\"]"
        }
    }
}

#[test]
fn each_role_allows_exactly_its_calls_on_its_resources() {
    let body = root();
    let policies = entries(local(&body, "function_policies"));
    for (name, function) in FUNCTIONS {
        assert_eq!(
            text(policies[name]),
            format!("data.aws_iam_policy_document.{name}.json")
        );
        document_allows_exactly(&body, name, function);
    }
}

/// The policy document `name` has one statement per resource `function`
/// is granted on, with exactly its actions, and no wildcard.
fn document_allows_exactly(body: &Body, name: &str, function: Function) {
    let document = block(body, "data", &["aws_iam_policy_document", name]).body();
    let mut found = statements(document);
    // The table's reads and writes are two statements, each naming the
    // keys it may touch (testkit::permissions::KEY_GRANTS).
    let grants: Vec<_> = KEY_GRANTS
        .iter()
        .filter(|g| g.function == function)
        .collect();
    for grant in &grants {
        let statement = document
            .blocks()
            .filter(|b| b.identifier() == "statement")
            .find(|s| text(attr(s.body(), "sid")) == format!("\"{}\"", grant.sid))
            .unwrap_or_else(|| panic!("{name}: no statement {}", grant.sid));
        let expected: BTreeSet<String> = grant.actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            strings(attr(statement.body(), "actions")),
            expected,
            "{name} {}",
            grant.sid
        );
        let patterns: Vec<String> = grant.prefixes.iter().map(|p| format!("\"{p}*\"")).collect();
        assert_eq!(
            conditions(statement),
            vec![(
                "ForAllValues:StringLike".to_string(),
                "dynamodb:LeadingKeys".to_string(),
                format!("[{}]", patterns.join(", "))
            )],
            "{name} {}",
            grant.sid
        );
    }
    if let Some((writes, _)) = found.remove("TableWrites") {
        found
            .get_mut("Table")
            .unwrap_or_else(|| panic!("{name}: writes without reads"))
            .0
            .extend(writes);
    }
    let expected = allowed(function);
    assert_eq!(
        found.keys().cloned().collect::<BTreeSet<_>>(),
        expected.keys().map(|r| r.sid().to_string()).collect(),
        "{name}: statements"
    );
    for (resource, actions) in expected {
        let (found_actions, resources) = &found[resource.sid()];
        let expected_actions: BTreeSet<String> = actions.iter().map(|a| a.to_string()).collect();
        assert_eq!(found_actions, &expected_actions, "{name} {resource:?}");
        assert_eq!(resources, reference(resource), "{name} {resource:?}");
    }
    for (actions, resources) in found.values() {
        assert!(actions.iter().all(|a| !a.contains('*')));
        assert!(!resources.contains('*'));
    }
}

#[test]
fn the_operators_policy_allows_exactly_what_trigger_ops_calls() {
    let body = root();
    document_allows_exactly(&body, "operators", Function::Ops);
    let policy = block(&body, "resource", &["aws_iam_policy", "operators"]).body();
    assert_eq!(
        text(attr(policy, "policy")),
        "data.aws_iam_policy_document.operators.json"
    );
}

fn variable_default(body: &Body, name: &str) -> hcl::Value {
    attr(block(body, "variable", &[name]).body(), "default")
        .evaluate(&Context::new())
        .unwrap()
}

#[test]
fn the_worker_queue_and_mapping_are_wired_for_partial_batches() {
    let body = root();
    let mapping = block(
        &body,
        "resource",
        &["aws_lambda_event_source_mapping", "worker"],
    )
    .body();
    assert_eq!(
        strings(attr(mapping, "function_response_types")),
        BTreeSet::from(["ReportBatchItemFailures".to_string()])
    );
    assert_eq!(
        text(attr(mapping, "event_source_arn")),
        "aws_sqs_queue.work.arn"
    );
    assert!(text(attr(mapping, "function_name")).contains("[\"worker\"]"));
    assert!(text(attr(mapping, "maximum_batching_window_in_seconds")).starts_with("var."));
    let scaling = mapping
        .blocks()
        .find(|b| b.identifier() == "scaling_config")
        .expect("scaling_config bounds the worker's concurrency");
    assert_eq!(
        text(attr(scaling.body(), "maximum_concurrency")),
        "module.settings.worker_max_concurrency"
    );

    // Visibility at least 6x the worker timeout, for every allowed timeout.
    let functions = entries(local(&body, "functions"));
    let worker = entries(functions["worker"]);
    assert_eq!(text(worker["timeout"]), "var.worker_timeout_seconds");
    let queue = block(&body, "resource", &["aws_sqs_queue", "work"]).body();
    assert_eq!(
        text(attr(queue, "visibility_timeout_seconds")),
        "local.work_visibility_timeout_seconds"
    );
    let visibility = local(&body, "work_visibility_timeout_seconds");
    let default = variable_default(&body, "worker_timeout_seconds");
    for timeout in [hcl::Value::from(10), hcl::Value::from(120), default] {
        let mut ctx = Context::new();
        let mut var = hcl::Map::new();
        var.insert("worker_timeout_seconds".to_string(), timeout.clone());
        ctx.declare_var("var", hcl::Value::Object(var));
        let seconds = visibility.evaluate(&ctx).unwrap().as_u64().unwrap();
        assert!(seconds >= 6 * timeout.as_u64().unwrap(), "{timeout}");
    }
    // Redrive to the DLQ only beyond the worker's own attempts.
    let redrive = text(attr(queue, "redrive_policy"));
    assert!(redrive.contains("aws_sqs_queue.work_dlq.arn"), "{redrive}");
    assert!(
        redrive.contains("module.settings.max_attempts + 2"),
        "{redrive}"
    );
    let dlq = block(&body, "resource", &["aws_sqs_queue", "work_dlq"]).body();
    assert_eq!(text(attr(dlq, "message_retention_seconds")), "1209600");
    block(
        &body,
        "resource",
        &["aws_sqs_queue_redrive_allow_policy", "work_dlq"],
    );
}

#[test]
fn the_rule_delivers_every_state_and_stage_of_the_allowlisted_pipelines() {
    let body = root();
    let rule = block(
        &body,
        "resource",
        &["aws_cloudwatch_event_rule", "pipeline_state"],
    )
    .body();
    let pattern = match attr(rule, "event_pattern") {
        Expression::FuncCall(call) => {
            assert_eq!(call.name.to_string(), "jsonencode");
            entries(&call.args[0])
        }
        other => panic!("{other}"),
    };
    assert_eq!(
        strings(pattern["source"]),
        BTreeSet::from([shared::rules::pipeline_event::EVENT_SOURCE.to_string()])
    );
    // The same detail types as the local stack's rule: executions and stages.
    let local = shared::rules::pipeline_event::rule_pattern(&["p"]);
    let local_types: BTreeSet<String> = local["detail-type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(strings(pattern["detail-type"]), local_types);
    assert!(local_types.contains(shared::rules::pipeline_event::STAGE_DETAIL_TYPE));
    let detail = entries(pattern["detail"]);
    // Every state reaches the records; NOTIFY_STATES decides only e-mails.
    assert!(
        !detail.contains_key("state"),
        "the rule must not filter states"
    );
    assert_eq!(
        text(detail["pipeline"]),
        "distinct(values(local.pipelines))"
    );
    // The variable's default is the notifier's default.
    let default = variable_default(&settings(), "notify_states");
    let contract = VARIABLES
        .iter()
        .find(|v| v.name == "NOTIFY_STATES")
        .and_then(|v| v.default)
        .unwrap();
    let listed: Vec<String> = default
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.join(","), contract);
    let target = block(
        &body,
        "resource",
        &["aws_cloudwatch_event_target", "notifier"],
    )
    .body();
    assert!(text(attr(target, "arn")).contains("[\"notifier\"]"));
    for needed in ["retry_policy", "dead_letter_config"] {
        assert!(
            target.blocks().any(|b| b.identifier() == needed),
            "{needed}"
        );
    }
}

#[test]
fn alarms_cover_both_dlqs_every_function_and_the_api() {
    let body = root();
    let alarms = text(local(&body, "alarms"));
    for needed in [
        "aws_sqs_queue.work_dlq.name",
        "aws_sqs_queue.events_dlq.name",
        "\"5XXError\"",
        "local.functions",
        "\"Errors\"",
        "\"Throttles\"",
    ] {
        assert!(alarms.contains(needed), "{needed}");
    }
    let alarm = block(&body, "resource", &["aws_cloudwatch_metric_alarm", "alarm"]).body();
    assert_eq!(text(attr(alarm, "for_each")), "local.alarms");
    assert_eq!(
        text(attr(alarm, "alarm_actions")),
        "[aws_sns_topic.alerts.arn]"
    );
    assert_eq!(text(attr(alarm, "threshold")), "0");
}

/// Every alarm's name as its e-mail gives it after `<name>-`: the keys of
/// `local.alarms` (its functions' errors and throttles expanded) and the
/// `alarm_name` of every other alarm resource.
fn alarm_names(body: &Body) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let functions: Vec<String> = entries(local(body, "functions")).into_keys().collect();
    let alarms = local(body, "alarms");
    let Expression::FuncCall(merge) = alarms else {
        panic!("local.alarms is a merge: {alarms}")
    };
    for arg in &merge.args {
        match arg {
            Expression::Object(_) => names.extend(entries(arg).into_keys()),
            // merge([for function, _ in local.functions : {for metric in [...] : "${function}-${lower(metric)}" => ...}]...)
            other => {
                let text = text(other);
                assert!(text.contains("local.functions"), "{text}");
                let metrics = text
                    .split("for metric in [")
                    .nth(1)
                    .and_then(|rest| rest.split(']').next())
                    .expect("the metrics of each function");
                for function in &functions {
                    for metric in metrics.split(',') {
                        let metric = metric.trim().trim_matches('"').to_lowercase();
                        names.insert(format!("{function}-{metric}"));
                    }
                }
            }
        }
    }
    // Alarms over a map of their own: its keys.
    for alarm in body.blocks().filter(|b| {
        b.identifier() == "resource"
            && b.labels()[0].as_str() == "aws_cloudwatch_metric_alarm"
            && b.body().attributes().any(|a| a.key() == "for_each")
    }) {
        let each = text(attr(alarm.body(), "for_each"));
        let map = each.strip_prefix("local.").expect("for_each = local.<map>");
        assert_eq!(
            text(attr(alarm.body(), "alarm_name")),
            "\"${var.name}-${each.key}\""
        );
        if map != "alarms" {
            names.extend(entries(local(body, map)).into_keys());
        }
    }
    for alarm in body.blocks().filter(|b| {
        b.identifier() == "resource"
            && b.labels()[0].as_str() == "aws_cloudwatch_metric_alarm"
            && !b.body().attributes().any(|a| a.key() == "for_each")
    }) {
        let name = text(attr(alarm.body(), "alarm_name"));
        let name = name
            .trim_matches('"')
            .strip_prefix("${var.name}-")
            .unwrap_or_else(|| panic!("{name} is not <name>-<alarm>"));
        names.insert(name.to_string());
    }
    names
}

/// On-call paged at night finds, for every alarm Terraform creates, a
/// section of the runbook saying what it means, what to look at (a
/// `trigger-ops` command or a metric) and what to do; and no section for
/// an alarm that does not exist.
#[test]
fn every_alarm_has_its_runbook_section() {
    let names = alarm_names(&root());
    assert_eq!(names.len(), 12, "{names:?}");
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operating.md"))
            .unwrap();
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in runbook.lines() {
        if line.starts_with('#') {
            current = line
                .strip_prefix("### Alarm `")
                .and_then(|rest| rest.strip_suffix('`'))
                .map(str::to_string);
            if let Some(name) = &current {
                sections.insert(name.clone(), String::new());
            }
        } else if let Some(name) = &current {
            let section = sections.get_mut(name).unwrap();
            section.push_str(line);
            section.push('\n');
        }
    }
    for name in &names {
        let section = sections
            .get(name)
            .unwrap_or_else(|| panic!("docs/operating.md has no section \"### Alarm `{name}`\""));
        for part in ["**Means**", "**Look at**", "**Do**"] {
            assert!(section.contains(part), "{name}: no {part}");
        }
        let look_at = section
            .split("**Look at**")
            .nth(1)
            .and_then(|rest| rest.split("**Do**").next())
            .unwrap();
        let names_a_metric = look_at.contains('`');
        assert!(
            look_at.contains("trigger-ops") || names_a_metric,
            "{name}: what to look at names no trigger-ops command or metric"
        );
    }
    let documented: BTreeSet<String> = sections.into_keys().collect();
    assert_eq!(
        documented, names,
        "runbook sections of alarms that do not exist"
    );
    // Named elsewhere in the runbook, an alarm is one that exists.
    for mention in runbook.split("alarm `").skip(1) {
        let name = mention.split('`').next().unwrap();
        assert!(
            names.contains(name),
            "docs/operating.md names an alarm {name:?} that does not exist"
        );
    }
}

#[test]
fn variables_are_documented_and_outputs_feed_trigger_ops() {
    let body = root();
    let variables: Vec<&Block> = body
        .blocks()
        .filter(|b| b.identifier() == "variable")
        .collect();
    for v in &variables {
        let name = v.labels()[0].as_str();
        for needed in ["description", "type"] {
            assert!(
                v.body().attributes().any(|a| a.key() == needed),
                "{name}: {needed}"
            );
        }
        assert!(
            !name.contains("secret"),
            "secrets are generated, never variables: {name}"
        );
    }
    let names: BTreeSet<&str> = variables.iter().map(|v| v.labels()[0].as_str()).collect();
    for expected in [
        "pipelines",
        "alert_emails",
        "quota_limit",
        "quota_window",
        "global_quota_limit",
        "global_quota_window",
        "api_throttle_rate_limit",
        "api_throttle_burst_limit",
        "trigger_throttle_rate_limit",
        "trigger_throttle_burst_limit",
        "status_throttle_rate_limit",
        "status_throttle_burst_limit",
        "enable_waf",
        "waf_trigger_rate_limit",
        "refusal_memory",
        "alarm_accepted_per_5m",
        "alarm_refused_per_5m",
        "architecture",
        "log_retention_days",
        "notify_states",
        "max_attempts",
    ] {
        assert!(names.contains(expected), "{expected}");
    }
    // The defaults live in the settings module (the root passes null);
    // tests/terraform_plan.rs plans them and starts the functions on them.
    let settings = settings();
    assert_eq!(
        variable_default(&settings, "quota_limit"),
        hcl::Value::from(3)
    );
    assert_eq!(
        variable_default(&settings, "network_quota_limits"),
        hcl::Value::Null,
        "derived from quota_limit, as the functions derive it"
    );
    assert_eq!(
        variable_default(&settings, "quota_window"),
        hcl::Value::from("7d")
    );
    assert_eq!(
        variable_default(&settings, "enable_waf"),
        hcl::Value::from(true),
        "the WAF is on unless turned off"
    );
    assert_eq!(
        variable_default(&settings, "reserve_concurrency"),
        hcl::Value::from(false),
        "a new account (a concurrency quota of 10) can apply the default plan"
    );
    let outputs: BTreeSet<&str> = body
        .blocks()
        .filter(|b| b.identifier() == "output")
        .map(|b| b.labels()[0].as_str())
        .collect();
    for expected in [
        "trigger_url",
        "status_url_pattern",
        ops::targets::OUTPUT_QUEUE_URL,
        ops::targets::OUTPUT_DLQ_URL,
        ops::targets::OUTPUT_TABLE_NAME,
        ops::targets::OUTPUT_EVENTS_DLQ_URL,
        ops::targets::OUTPUT_NOTIFIER_FUNCTION,
        "topic_arn",
    ] {
        assert!(outputs.contains(expected), "{expected}");
    }
    let example =
        std::fs::read_to_string(terraform_dir().join("terraform.tfvars.example")).unwrap();
    assert!(!example.to_lowercase().contains("client_key_secret ="));
    let _: Body = hcl::parse(&example).expect("the example tfvars parse");
}

#[test]
fn every_checkov_skip_carries_a_reason() {
    let mut skips = 0;
    let mut dirs = vec![terraform_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "tf") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Some(skip) = line.trim().strip_prefix("#checkov:skip=") else {
                    continue;
                };
                skips += 1;
                let (id, reason) = skip.split_once(':').unwrap_or((skip, ""));
                assert!(id.starts_with("CKV"), "{}: {line}", path.display());
                assert!(
                    reason.trim().len() >= 20,
                    "{}: no reason: {line}",
                    path.display()
                );
            }
        }
    }
    assert!(skips > 0);
}

#[test]
fn the_dashboard_draws_every_metric_the_functions_publish() {
    use shared::rules::metrics::PUBLISHED;
    let dashboard = std::fs::read_to_string(terraform_dir().join("dashboard.tf")).unwrap();
    for published in PUBLISHED {
        assert!(
            dashboard.contains(&format!("\"{}\"", published.metric)),
            "{} is not on the dashboard",
            published.metric
        );
        if let Some((dimension, values)) = published.dimension {
            assert!(
                dashboard.contains(&format!("\"{dimension}\"")),
                "{dimension}"
            );
            for value in values {
                assert!(
                    dashboard.contains(&format!("\"{value}\"")),
                    "{} by {dimension} {value} is not on the dashboard",
                    published.metric
                );
            }
        }
    }
    // PUBLISHED is every metric the functions count: each `metrics::NAME`
    // their code uses is one of it.
    let constants = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/src/rules/metrics.rs"),
    )
    .unwrap();
    for function in ["ingress", "worker", "notifier"] {
        let source = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../functions/{function}/src/lib.rs")),
        )
        .unwrap();
        for used in source.split("metrics::").skip(1) {
            let name: String = used
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            if name.is_empty() {
                continue;
            }
            let value = constants
                .lines()
                .find_map(|line| {
                    line.trim()
                        .strip_prefix(&format!("pub const {name}: &str = \""))
                        .and_then(|rest| rest.strip_suffix("\";"))
                })
                .unwrap_or_else(|| panic!("metrics::{name} is not a metric name"));
            assert!(
                PUBLISHED
                    .iter()
                    .any(|p| p.metric == value && p.function == function),
                "{function} counts {value}, which PUBLISHED does not list"
            );
        }
    }
    // The dimensions' values as the functions count them, exactly.
    let body = root();
    let strings = |name: &str| -> Vec<String> {
        let Expression::Array(values) = local(&body, name) else {
            panic!("local.{name} is a list");
        };
        values
            .iter()
            .map(|v| text(v).trim_matches('"').to_string())
            .collect()
    };
    assert_eq!(
        strings("refusal_scopes"),
        shared::rules::metrics::REJECTED_SCOPES
    );
    assert_eq!(strings("lanes"), shared::rules::metrics::LANES);
    let outputs = std::fs::read_to_string(terraform_dir().join("outputs.tf")).unwrap();
    assert!(outputs.contains("output \"dashboard_url\""));
}

#[test]
fn the_api_routes_exactly_what_the_ingress_answers_and_may_invoke_it_for_each() {
    let body = root();
    let mut routed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, route) in entries(local(&body, "api_routes")) {
        let route = entries(route);
        let (path, method) = (
            text(route["path"]).trim_matches('"').to_string(),
            text(route["method"]).trim_matches('"').to_string(),
        );
        assert_eq!(key, format!("{method} {path}"));
        routed.entry(path).or_default().push(method);
    }
    let answered: BTreeMap<String, Vec<String>> = shared::rules::http::trigger_api::ROUTES
        .iter()
        .map(|(path, methods)| {
            let mut methods: Vec<String> = methods.split(", ").map(str::to_string).collect();
            methods.sort();
            (path.to_string(), methods)
        })
        .collect();
    for methods in routed.values_mut() {
        methods.sort();
    }
    assert_eq!(routed, answered);
    // Each route's path has its resource, and every route reaches the ingress.
    let resources = entries(local(&body, "api_resources"));
    assert_eq!(
        resources.keys().collect::<BTreeSet<_>>(),
        answered.keys().collect::<BTreeSet<_>>()
    );
    let integration = block(&body, "resource", &["aws_api_gateway_integration", "route"]).body();
    assert_eq!(
        text(attr(integration, "for_each")),
        "aws_api_gateway_method.route"
    );
    assert_eq!(text(attr(integration, "type")), "\"AWS_PROXY\"");
    assert_eq!(
        text(attr(integration, "uri")),
        "aws_lambda_function.function[\"ingress\"].invoke_arn"
    );
    // The invoke permissions come from the same routes.
    let permission = block(&body, "resource", &["aws_lambda_permission", "api"]).body();
    assert!(text(attr(permission, "for_each")).contains("values(local.api_routes)"));
    // API Gateway's own answers, one resource per response type the
    // contract names (their bodies and headers: tests/terraform_plan.rs).
    let gateway = block(
        &body,
        "resource",
        &["aws_api_gateway_gateway_response", "edge"],
    )
    .body();
    assert_eq!(
        text(attr(gateway, "for_each")),
        "module.settings.edge.gateway"
    );
    let answers: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(terraform_dir().join("modules/settings/edge-answers.json"))
            .unwrap(),
    )
    .unwrap();
    let types: BTreeSet<&str> = answers["gateway"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for needed in [
        "THROTTLED",
        "QUOTA_EXCEEDED",
        "WAF_FILTERED",
        "MISSING_AUTHENTICATION_TOKEN",
        "DEFAULT_4XX",
        "DEFAULT_5XX",
    ] {
        assert!(types.contains(needed), "{needed}");
    }
}

#[test]
fn the_deployment_writes_the_secrets_fingerprint_as_trigger_ops_computes_it() {
    use shared::aws::table::items::SECRET_FINGERPRINT_PK;
    use shared::rules::client_key::FINGERPRINT_LABEL;
    let body = root();
    let item = block(
        &body,
        "resource",
        &["aws_dynamodb_table_item", "secret_fingerprint"],
    );
    let item = text(attr(item.body(), "item"));
    assert!(item.contains(SECRET_FINGERPRINT_PK), "{item}");
    // Terraform's sha256() of the label and the secrets the ingress gets
    // (the previous one during a rotation's overlap).
    for secret in [
        "local.client_key_secret",
        "local.client_key_secret_previous",
    ] {
        let hashed = format!("sha256(\"{FINGERPRINT_LABEL}${{{secret}}}\")");
        assert!(
            item.replace(' ', "").contains(&hashed.replace(' ', "")),
            "{item}\n{hashed}"
        );
    }
    let environment = text_of_functions_environment(&settings());
    assert!(
        environment.contains("CLIENT_KEY_SECRET=var.resources.client_key_secret"),
        "{environment}"
    );
    let call = block(&body, "module", &["settings"]).body();
    assert_eq!(
        text(entries(attr(call, "resources"))["client_key_secret"]),
        "local.client_key_secret"
    );
}

/// The functions' environment map, as `NAME=expression` lines.
fn text_of_functions_environment(body: &Body) -> String {
    let environment = local(body, "environment");
    let mut lines = Vec::new();
    for (_, function) in entries(environment) {
        for (name, value) in entries(function) {
            lines.push(format!("{name}={}", text(value)));
        }
    }
    lines.join("\n")
}

/// The statements of a policy document, with their `condition` blocks as
/// `(test, variable, values as text)`.
fn conditions(statement: &Block) -> Vec<(String, String, String)> {
    statement
        .body()
        .blocks()
        .filter(|b| b.identifier() == "condition")
        .map(|c| {
            let field = |name| text(attr(c.body(), name)).trim_matches('"').to_string();
            (
                field("test"),
                field("variable"),
                text(attr(c.body(), "values")),
            )
        })
        .collect()
}

#[test]
fn only_the_ingress_and_named_readers_can_decrypt_its_environment() {
    let body = root();
    let key = block(&body, "data", &["aws_iam_policy_document", "key"]);
    let deny = key
        .body()
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .find(|s| {
            s.body()
                .attributes()
                .any(|a| a.key() == "effect" && text(a.expr()) == "\"Deny\"")
        })
        .expect("a Deny statement in the key policy");
    assert_eq!(text(attr(deny.body(), "actions")), "[\"kms:Decrypt\"]");
    let conditions = conditions(deny);
    // Only the ingress's environment: Lambda's encryption context names it.
    assert!(conditions.contains(&(
        "StringEquals".into(),
        "kms:EncryptionContext:LambdaFunctionName".into(),
        "[\"${var.name}-ingress\"]".into()
    )));
    // Everyone but the ingress's role and the named readers.
    assert!(
        conditions.contains(&(
            "ArnNotEquals".into(),
            "aws:PrincipalArn".into(),
            "concat([aws_iam_role.function[\"ingress\"].arn], var.ingress_environment_readers)"
                .into()
        )),
        "{conditions:?}"
    );
    // The ingress's function is the one named, and its environment is
    // encrypted with this key.
    assert_eq!(
        text(attr(
            block(&body, "resource", &["aws_lambda_function", "function"]).body(),
            "function_name"
        )),
        "\"${var.name}-${each.key}\""
    );
    assert_eq!(
        text(attr(
            block(&body, "resource", &["aws_lambda_function", "function"]).body(),
            "kms_key_arn"
        )),
        "aws_kms_key.main.arn"
    );
    // No Allow statement grants Decrypt to a principal that could bypass
    // it: a Deny always wins, so it is enough that the Deny exists and has
    // no exemption beyond those two.
    assert_eq!(conditions.len(), 3, "{conditions:?}");
}

#[test]
fn every_trust_policy_names_the_account_it_trusts() {
    let example = module(&terraform_dir().join("modules/example-pipeline"));
    for body in [root(), example] {
        let trusts = body
            .blocks()
            .filter(|b| b.identifier() == "data")
            .flat_map(|d| d.body().blocks().filter(|b| b.identifier() == "statement"))
            .filter(|s| {
                s.body()
                    .attributes()
                    .any(|a| a.key() == "actions" && text(a.expr()).contains("sts:AssumeRole"))
            })
            .collect::<Vec<_>>();
        assert!(!trusts.is_empty());
        for trust in trusts {
            let conditions = conditions(trust);
            assert!(
                conditions
                    .iter()
                    .any(|(test, variable, _)| test == "StringEquals"
                        && variable == "aws:SourceAccount"),
                "{trust:?}"
            );
        }
    }
}
