//! The deployment's settings evaluated by Terraform itself: the real
//! `terraform` binary plans `terraform/modules/settings` (no provider, no
//! resource, so `plan` evaluates every variable, validation, local and
//! precondition offline), and every function starts on what it renders.
//!
//! - The examples the docs and the README give plan, and the functions
//!   start on them.
//! - A matrix of edge and hostile values: each value Terraform accepts
//!   starts every function; each value the functions refuse is refused by
//!   Terraform first, with a message naming the variable.
//! - Patterns, defaults and numbers drawn at random (fixed seeds) go
//!   through one plan: whatever Terraform accepts, the functions accept.
//! - Every function call in `terraform/` is a function Terraform has.
//! - The root module's own validations, on `variables.tf` alone.
//!
//! Without a `terraform` on PATH each test says so and passes, as
//! `scripts/test` does for `terraform fmt`; it is installed in CI.

use serde_json::{json, Map, Value};
use shared::config::{Env, IngressConfig, NotifierConfig, WorkerConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform")
}

fn settings_dir() -> PathBuf {
    terraform_dir().join("modules/settings")
}

/// The `terraform` binary, or `None` (the test then says it was skipped).
fn terraform(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("terraform"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        eprintln!("{test}: terraform is not installed: not evaluated (tests/terraform.rs still reads the HCL)");
    }
    found
}

/// A directory of its own for one Terraform run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pipeline-trigger-plan-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `terraform` in `dir`, offline and without the user's configuration;
/// its data directory is the scratch one, so the source tree stays clean.
fn command(bin: &Path, dir: &Path, scratch: &Scratch) -> Command {
    let mut command = Command::new(bin);
    command
        .arg(format!("-chdir={}", dir.display()))
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env("TF_DATA_DIR", scratch.0.join(".terraform"))
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1");
    command
}

/// What a plan came to.
#[derive(Debug)]
enum Planned {
    /// The module's outputs, by name.
    Accepted(Map<String, Value>),
    /// Every error Terraform gave, summary and detail, as one text.
    Refused(String),
}

/// Plans the module in `dir` with these variable files (JSON or HCL).
fn plan_files(bin: &Path, dir: &Path, var_files: &[PathBuf], scratch: &Scratch) -> Planned {
    let plan = scratch.0.join("plan");
    let mut run = command(bin, dir, scratch);
    run.args(["plan", "-input=false", "-no-color", "-json", "-lock=false"])
        .arg(format!("-out={}", plan.display()));
    for file in var_files {
        run.arg(format!("-var-file={}", file.display()));
    }
    let output = run.output().expect("run terraform plan");
    if !output.status.success() {
        let mut errors = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(message) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let diagnostic = &message["diagnostic"];
            if message["type"] == "diagnostic" && diagnostic["severity"] == "error" {
                errors.push(format!(
                    "{}: {}",
                    diagnostic["summary"].as_str().unwrap_or(""),
                    diagnostic["detail"].as_str().unwrap_or("")
                ));
            }
        }
        assert!(
            !errors.is_empty(),
            "terraform plan failed without a diagnostic: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Planned::Refused(errors.join("\n"));
    }
    let shown = command(bin, dir, scratch)
        .args(["show", "-json", "-no-color"])
        .arg(&plan)
        .output()
        .expect("run terraform show");
    assert!(shown.status.success(), "{shown:?}");
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    let outputs = shown["planned_values"]["outputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    Planned::Accepted(
        outputs
            .into_iter()
            .map(|(name, output)| (name, output["value"].clone()))
            .collect(),
    )
}

/// What the root module passes as `resources`: plausible values of what
/// it creates.
fn resources() -> Value {
    json!({
        "table_name": "pipeline-trigger",
        "queue_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/pipeline-trigger-work",
        "dlq_url": "https://sqs.eu-west-1.amazonaws.com/123456789012/pipeline-trigger-work-dlq",
        "topic_arn": "arn:aws:sns:eu-west-1:123456789012:pipeline-trigger-alerts",
        "worker_role_arn": "arn:aws:iam::123456789012:role/pipeline-trigger-worker",
        "client_key_secret": "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKL",
        "client_key_secret_previous": "LKJIHGFEDCBAzyxwvutsrqponmlkjihgfedcba9876543210",
    })
}

/// Plans the settings module with `variables` (`resources` added unless
/// given) and any further variable files.
fn plan(bin: &Path, variables: &Value, extra_files: &[(&str, String)]) -> Planned {
    let scratch = Scratch::new();
    let mut variables = variables.clone();
    if variables.get("resources").is_none() {
        variables["resources"] = resources();
    }
    let mut files: Vec<PathBuf> = extra_files
        .iter()
        .map(|(name, text)| scratch.file(name, text))
        .collect();
    files.push(scratch.file("case.tfvars.json", &variables.to_string()));
    plan_files(bin, &settings_dir(), &files, &scratch)
}

/// The environment each function gets, from the plan's outputs.
fn environments(outputs: &Map<String, Value>) -> BTreeMap<String, BTreeMap<String, String>> {
    serde_json::from_value(outputs["environment"].clone()).expect("environment maps of strings")
}

/// Starts each function's configuration as its `main` does: the loader of
/// its variables, then the SDK settings from what Lambda adds.
fn start_every_function(
    env: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(IngressConfig, WorkerConfig), String> {
    let lambda = [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "token"),
    ];
    let env_of = |function: &str| {
        let mut pairs: Vec<(&str, &str)> = env[function]
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.extend(lambda);
        Env::from_pairs(pairs)
    };
    let ingress = env_of("ingress");
    let worker = env_of("worker");
    let notifier = env_of("notifier");
    let ingress_config = IngressConfig::from_env(&ingress).map_err(|e| format!("ingress: {e}"))?;
    let worker_config = WorkerConfig::from_env(&worker).map_err(|e| format!("worker: {e}"))?;
    NotifierConfig::from_env(&notifier).map_err(|e| format!("notifier: {e}"))?;
    for (name, env) in [
        ("ingress", &ingress),
        ("worker", &worker),
        ("notifier", &notifier),
    ] {
        shared::aws::lambda_sdk_config(env).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok((ingress_config, worker_config))
}

/// What a case expects.
enum Expect {
    /// Terraform plans it and every function starts.
    Starts,
    /// Terraform refuses it; its errors hold each of these (the variable
    /// named, and what is wrong).
    Refused(&'static [&'static str]),
}

/// A case: a name, the variables beside `pipelines = {app = "app-pipeline"}`.
struct Case {
    name: String,
    variables: Value,
    expect: Expect,
}

fn case(name: impl Into<String>, variables: Value, expect: Expect) -> Case {
    let mut with_pipelines = json!({"pipelines": {"app": "app-pipeline"}});
    for (key, value) in variables.as_object().expect("an object of variables") {
        with_pipelines[key] = value.clone();
    }
    Case {
        name: name.into(),
        variables: with_pipelines,
        expect,
    }
}

/// `app`'s settings.
fn app(setting: Value) -> Value {
    json!({"pipeline_settings": {"app": setting}})
}

/// `app` with one input.
fn input(declaration: Value) -> Value {
    app(json!({"inputs": {"x": declaration}}))
}

/// Runs every case, two at a time (a plan is one process), and gathers
/// what went otherwise than expected.
fn run_cases(bin: &Path, cases: Vec<Case>) {
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let failure = match (plan(bin, &case.variables, &[]), &case.expect) {
                    (Planned::Accepted(outputs), Expect::Starts) => {
                        start_every_function(&environments(&outputs)).err()
                    }
                    (Planned::Accepted(outputs), Expect::Refused(_)) => Some(format!(
                        "Terraform accepted it; the functions: {:?}",
                        start_every_function(&environments(&outputs)).err()
                    )),
                    (Planned::Refused(errors), Expect::Starts) => {
                        Some(format!("Terraform refused it: {errors}"))
                    }
                    (Planned::Refused(errors), Expect::Refused(needles)) => needles
                        .iter()
                        .find(|needle| !errors.contains(*needle))
                        .map(|needle| format!("the errors do not say {needle:?}: {errors}")),
                };
                if let Some(failure) = failure {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {failure}", case.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// An HCL expression (as `terraform.tfvars` or a description writes one)
/// as JSON.
fn hcl_to_json(expression: &str) -> Value {
    let body: hcl::Body =
        hcl::parse(&format!("x = {expression}")).unwrap_or_else(|e| panic!("{expression}: {e}"));
    let value: Value = hcl::from_body(body).unwrap();
    value["x"].clone()
}

/// The root module's description of `pipeline_settings` gives an example.
fn described_example() -> Value {
    let variables = std::fs::read_to_string(terraform_dir().join("variables.tf")).unwrap();
    let body: hcl::Body = hcl::parse(&variables).unwrap();
    let block = body
        .blocks()
        .find(|b| b.identifier() == "variable" && b.labels()[0].as_str() == "pipeline_settings")
        .unwrap();
    let description = block
        .body()
        .attributes()
        .find(|a| a.key() == "description")
        .map(|a| match a.expr() {
            hcl::Expression::String(s) => s.clone(),
            other => panic!("{other}"),
        })
        .unwrap();
    let example = description
        .split_once("Example: ")
        .and_then(|(_, rest)| rest.rsplit_once(" Default:"))
        .map(|(example, _)| example)
        .expect("the description gives an example");
    hcl_to_json(example)
}

/// The fenced blocks of one kind (```json, ```hcl) in a Markdown file.
fn fenced(path: &Path, kind: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim() == format!("```{kind}") => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The markdown files of the repository a person reads.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    for dir in [root.join("docs"), root.join("docs/reference")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_documented_examples_plan_and_every_function_starts_on_them() {
    let Some(bin) = terraform("the_documented_examples_plan") else {
        return;
    };
    // The example in the variable's own description.
    let example = described_example();
    let mut cases = vec![case(
        "the pipeline_settings description's example",
        json!({"pipeline_settings": example.clone()}),
        Expect::Starts,
    )];
    // Each PIPELINE_SETTINGS example of the configuration reference.
    let reference = terraform_dir().join("../docs/reference/configuration.md");
    let blocks = fenced(&reference, "json");
    assert!(
        !blocks.is_empty(),
        "no ```json example in {}",
        reference.display()
    );
    for (i, block) in blocks.iter().enumerate() {
        let settings: Value = serde_json::from_str(block).unwrap();
        let pipelines: Map<String, Value> = settings
            .as_object()
            .unwrap()
            .keys()
            .map(|public| (public.clone(), json!(format!("{public}-pipeline"))))
            .collect();
        cases.push(case(
            format!("configuration.md example {i}"),
            json!({"pipelines": pipelines, "pipeline_settings": settings}),
            Expect::Starts,
        ));
    }
    run_cases(&bin, cases);
    // terraform.tfvars.example and every ```hcl block of the docs, as
    // Terraform reads a tfvars file (variables of the root module only, such
    // as region or name, are warnings here, not errors).
    let mut tfvars = vec![(
        "terraform.tfvars.example".to_string(),
        std::fs::read_to_string(terraform_dir().join("terraform.tfvars.example")).unwrap(),
    )];
    for document in documents() {
        for (i, block) in fenced(&document, "hcl").into_iter().enumerate() {
            tfvars.push((format!("{} block {i}", document.display()), block));
        }
    }
    assert!(tfvars.len() >= 2, "docs/deploy.md shows a tfvars example");
    for (name, text) in tfvars {
        let planned = plan(&bin, &json!({}), &[("example.tfvars", text)]);
        match planned {
            Planned::Accepted(outputs) => {
                if let Err(e) = start_every_function(&environments(&outputs)) {
                    panic!("{name}: a function would not start: {e}");
                }
            }
            Planned::Refused(errors) => panic!("{name}: Terraform refused it: {errors}"),
        }
    }
}

#[test]
fn what_terraform_renders_is_what_the_functions_read() {
    let Some(bin) = terraform("what_terraform_renders") else {
        return;
    };
    let planned = plan(
        &bin,
        &json!({
            "pipelines": {"app": "app-pipeline", "docs": "docs", "app2": "app-pipeline"},
            "default_pipeline": "docs",
            "quota_limit": 7,
            "pipeline_settings": {"app": {
                "description": "Caf\u{0065}\u{0301}",
                "max_pending": 10, "reserved_pending": 2, "coalesce": null,
                "inputs": {
                    "env": {"type": "choice", "options": ["a", "b"], "default": "a", "hint": null},
                    "n": {"type": "number", "min": 0.5, "max": 1e3, "default": 2.0},
                }
            }},
            "example_pipeline": {"name": "pt-example", "settings": example_pipeline_settings()},
        }),
        &[],
    );
    let Planned::Accepted(outputs) = planned else {
        panic!("{planned:?}")
    };
    let env = environments(&outputs);
    let (ingress, worker) = start_every_function(&env).unwrap();
    // The default first, aliases kept, the example pipeline allowed.
    assert_eq!(
        env["ingress"]["PIPELINES"],
        "docs,app=app-pipeline,app2=app-pipeline,example=pt-example"
    );
    assert_eq!(ingress.pipelines.default_pipeline().public, "docs");
    assert_eq!(
        outputs["codepipeline_names"],
        json!(["app-pipeline", "docs", "pt-example"])
    );
    // Network levels derived from quota_limit exactly as the functions
    // derive them when the variable is unset.
    let unset = Env::from_pairs(
        env["ingress"]
            .iter()
            .filter(|(k, _)| k.as_str() != "NETWORK_QUOTA_LIMITS")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let derived = IngressConfig::from_env(&unset).unwrap().networks;
    assert_eq!(ingress.networks, derived);
    assert_eq!(
        env["ingress"]["NETWORK_QUOTA_LIMITS"],
        "ipv6/56=14,ipv6/48=28"
    );
    // Settings as given, nulls left out, text in NFC (Terraform's strings
    // always are).
    let app = worker.settings.of("app");
    assert_eq!(app.description.as_deref(), Some("Caf\u{e9}"));
    assert_eq!((app.max_pending, app.reserved_pending), (10, 2));
    assert!(app.coalesce);
    assert_eq!(app.inputs.iter().count(), 2);
    assert!(worker.settings.of("example").inputs.iter().count() > 0);
    // Same settings for the ingress and the worker.
    assert_eq!(
        env["ingress"]["PIPELINE_SETTINGS"],
        env["worker"]["PIPELINE_SETTINGS"]
    );
    // Reserved concurrency is opt-in.
    assert_eq!(outputs["reserved_concurrency_total"], json!(0));
    let Planned::Accepted(reserving) = plan(
        &bin,
        &json!({"pipelines": {"app": "app"}, "reserve_concurrency": true}),
        &[],
    ) else {
        panic!("reserve_concurrency plans")
    };
    assert_eq!(reserving["reserved_concurrency_total"], json!(27));
}

/// The example pipeline's settings as its module outputs them.
fn example_pipeline_settings() -> Value {
    let dir = terraform_dir().join("modules/example-pipeline");
    let text = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    let body: hcl::Body = hcl::parse(&text).unwrap();
    let inputs = body
        .blocks()
        .filter(|b| b.identifier() == "locals")
        .flat_map(|b| b.body().attributes())
        .find(|a| a.key() == "inputs")
        .expect("the example pipeline declares its inputs")
        .expr()
        .to_string();
    json!({"description": "Demo pipeline: S3 source, CodeBuild", "inputs": hcl_to_json(&inputs)})
}

#[test]
fn edge_and_ordinary_values_terraform_accepts_start_every_function() {
    let Some(bin) = terraform("edge_and_ordinary_values") else {
        return;
    };
    let starts = |name: &str, variables: Value| case(name, variables, Expect::Starts);
    run_cases(
        &bin,
        vec![
            starts("the defaults", json!({})),
            starts(
                "max_pending 10, 2 reserved, no coalescing",
                app(json!({"max_pending": 10, "reserved_pending": 2, "coalesce": false})),
            ),
            starts(
                "max_pending 1, none reserved",
                app(json!({"max_pending": 1, "reserved_pending": 0})),
            ),
            starts(
                "max_pending 1 alone (reserved_pending defaults to what fits)",
                app(json!({"max_pending": 1})),
            ),
            starts("quota_limit 7", json!({"quota_limit": 7})),
            starts(
                "quota_limit 100",
                json!({"quota_limit": 100, "quota_window": "36h"}),
            ),
            starts("network levels off", json!({"network_quota_limits": "off"})),
            starts("network levels empty", json!({"network_quota_limits": ""})),
            starts(
                "network levels spelled loosely",
                json!({"network_quota_limits": " IPv4/24=20 , ipv6/48=12,ipv6/32=100,ipv4/16=30 "}),
            ),
            starts(
                "network levels with blanks around / and =",
                json!({"network_quota_limits": "ipv6 / 48 = 12,ipv4\t/24=20"}),
            ),
            starts(
                "network groups beside four levels",
                json!({"network_quota_limits": "ipv6/56=6,ipv6/48=12,ipv4/24=10,ipv4/16=20,group:aws=30,group:gcp-2 = 040"}),
            ),
            starts(
                "eight network groups",
                json!({"network_quota_limits": "group:a=3,group:b=3,group:c=3,group:d=3,group:e=3,group:f=3,group:g=3,group:h=3"}),
            ),
            starts(
                "aliases of one CodePipeline",
                json!({"pipelines": {"app": "x", "app2": "x"}}),
            ),
            starts(
                "the example pipeline alone",
                json!({"pipelines": {}, "example_pipeline": {"name": "pt-example", "settings": example_pipeline_settings()}}),
            ),
            starts("any origin", json!({"cors_allowed_origins": ["*"]})),
            starts(
                "two origins",
                json!({"cors_allowed_origins": ["https://a.example", "http://localhost:8080"]}),
            ),
            starts(
                "every state e-mails",
                json!({"notify_states": ["STARTED", "RESUMED", "STOPPING", "STOPPED", "SUCCEEDED", "FAILED", "SUPERSEDED", "CANCELED"]}),
            ),
            starts(
                "the longest poll",
                json!({"run_poll_interval": "15m", "run_check_after": "1h"}),
            ),
            starts("900 seconds of poll", json!({"run_poll_interval": "900s"})),
            starts("no refusal memory", json!({"refusal_memory": "0s"})),
            starts("a rotated secret", json!({"client_key_generation": 3})),
            starts(
                "a rotation's overlap",
                json!({"client_key_generation": 1, "client_key_previous_until": "2026-12-14T18:00:00Z"}),
            ),
            starts(
                "a global budget",
                json!({"global_quota_limit": 1000, "global_quota_window": "1h"}),
            ),
            starts(
                "text in another normal form",
                app(json!({"description": "Cafe\u{0301}"})),
            ),
            starts(
                "nulls mean not set",
                app(
                    json!({"description": null, "max_pending": null, "inputs": {"b": {"type": "boolean", "default": null, "hint": null}}}),
                ),
            ),
            starts(
                "numbers with fractions",
                input(json!({"type": "number", "min": -0.5, "max": 1.5, "default": 0.5})),
            ),
            starts(
                "a whole-number input",
                input(
                    json!({"type": "number", "integer": true, "min": 1, "max": 10, "default": 3}),
                ),
            ),
            starts(
                "a string input with a hint",
                input(
                    json!({"type": "string", "pattern": "[a-z0-9][a-z0-9._/-]{0,62}", "max_length": 63, "default": "main", "hint": "a branch name"}),
                ),
            ),
            starts(
                "a pattern with escapes",
                input(
                    json!({"type": "string", "pattern": "\\\\[a-z]\\{2\\}\\x{41}\\.[[:alpha:]]{1,3}", "default": "\\a{2}A.xy"}),
                ),
            ),
            starts(
                "a non-ASCII default without flags",
                input(json!({"type": "string", "pattern": "[a-zé]+", "default": "café"})),
            ),
            starts(
                "50 inputs",
                app(
                    json!({"inputs": (0..50).map(|i| (format!("i{i}"), json!({"type": "boolean"}))).collect::<Map<String, Value>>()}),
                ),
            ),
            starts(
                "the longest description",
                app(json!({"description": "é".repeat(500)})),
            ),
            starts(
                "concurrency reserved",
                json!({"reserve_concurrency": true, "ingress_reserved_concurrency": 50, "worker_max_concurrency": 4}),
            ),
            starts(
                "the tightest WAF",
                json!({"waf_window_seconds": 60, "waf_rate_limit": 10, "waf_trigger_rate_limit": 10}),
            ),
        ],
    );
}

#[test]
fn values_the_functions_refuse_terraform_refuses_first_naming_the_variable() {
    let Some(bin) = terraform("values_the_functions_refuse") else {
        return;
    };
    let refused = |name: &str, variables: Value, needles: &'static [&'static str]| {
        case(name, variables, Expect::Refused(needles))
    };
    let long = |n: usize| "a".repeat(n);
    run_cases(
        &bin,
        vec![
            // The allowlist.
            refused("no pipeline", json!({"pipelines": {}}), &["pipelines: none set"]),
            refused("a public name with a space", json!({"pipelines": {"my app": "x"}}), &["pipelines: public names"]),
            refused("a pipeline name of 101 characters", json!({"pipelines": {"app": long(101)}}), &["pipelines: public names"]),
            refused("an unknown default", json!({"default_pipeline": "nope"}), &["default_pipeline: \"nope\""]),
            refused("example twice", json!({"pipelines": {"example": "x"}, "example_pipeline": {"name": "e", "settings": {}}}), &["pipelines: \"example\""]),
            // pipeline_settings, as a whole and per pipeline.
            refused("settings not a map", json!({"pipeline_settings": "app"}), &["pipeline_settings: must be a map"]),
            refused("settings of an unknown pipeline", json!({"pipeline_settings": {"nope": {}}}), &["pipeline_settings: \"nope\" is not a public name"]),
            refused("a setting that is a string", app(json!("x")), &["pipeline_settings.app must be an object"]),
            refused("a misspelt field", app(json!({"colesce": true})), &["pipeline_settings.app: unknown field \"colesce\""]),
            refused("coalesce as text", app(json!({"coalesce": "yes"})), &["pipeline_settings.app.coalesce"]),
            refused("max_pending 0", app(json!({"max_pending": 0})), &["pipeline_settings.app.max_pending"]),
            refused("max_pending 101", app(json!({"max_pending": 101})), &["pipeline_settings.app.max_pending"]),
            refused("max_pending 2.5", app(json!({"max_pending": 2.5})), &["pipeline_settings.app.max_pending"]),
            refused("max_pending as text", app(json!({"max_pending": "3"})), &["pipeline_settings.app.max_pending"]),
            refused("reserved_pending = max_pending", app(json!({"reserved_pending": 3})), &["pipeline_settings.app.reserved_pending"]),
            refused("reserved_pending 1 of 1", app(json!({"max_pending": 1, "reserved_pending": 1})), &["pipeline_settings.app.reserved_pending"]),
            refused("reserved_pending -1", app(json!({"reserved_pending": -1})), &["pipeline_settings.app.reserved_pending"]),
            refused("reserved_pending 0.5", app(json!({"reserved_pending": 0.5})), &["pipeline_settings.app.reserved_pending"]),
            refused("a description of 501 characters", app(json!({"description": long(501)})), &["pipeline_settings.app.description"]),
            refused("a description with a bidi control", app(json!({"description": "a\u{202e}b"})), &["pipeline_settings.app.description must not contain"]),
            refused("a description that is a number", app(json!({"description": 5})), &["pipeline_settings.app.description"]),
            refused("inputs as text", app(json!({"inputs": "x"})), &["pipeline_settings.app.inputs must be an object"]),
            refused("51 inputs", app(json!({"inputs": (0..51).map(|i| (format!("i{i}"), json!({"type": "boolean"}))).collect::<Map<String, Value>>()})), &["pipeline_settings.app.inputs: 51 inputs declared; at most 50"]),
            // Each input.
            refused("an input name with a space", app(json!({"inputs": {"x y": {"type": "boolean"}}})), &["input \"x y\" is not a valid name"]),
            refused("an input name of 129 characters", app(json!({"inputs": {long(129): {"type": "boolean"}}})), &["is not a valid name"]),
            refused("an input that is text", input(json!("boolean")), &["pipeline_settings.app.inputs.x must be an object with a type"]),
            refused("an input without a type", input(json!({"default": true})), &["pipeline_settings.app.inputs.x needs a type"]),
            refused("an unknown type", input(json!({"type": "date"})), &["pipeline_settings.app.inputs.x: unknown type \"date\""]),
            refused("a field of another type", input(json!({"type": "boolean", "pattern": "x"})), &["unknown field \"pattern\" for a boolean"]),
            refused("a choice without options", input(json!({"type": "choice"})), &["pipeline_settings.app.inputs.x: a choice needs \"options\""]),
            refused("a choice of no options", input(json!({"type": "choice", "options": []})), &["a choice needs \"options\""]),
            refused("options that are numbers", input(json!({"type": "choice", "options": [1, 2]})), &["a choice needs \"options\""]),
            refused("options as text", input(json!({"type": "choice", "options": "abc"})), &["a choice needs \"options\""]),
            refused("101 options", input(json!({"type": "choice", "options": (0..101).map(|i| i.to_string()).collect::<Vec<_>>()})), &["a choice needs \"options\""]),
            refused("an option of 1001 characters", input(json!({"type": "choice", "options": [long(1001)]})), &["an option is longer than 1000 characters"]),
            refused("a default not among the options", input(json!({"type": "choice", "options": ["a"], "default": "b"})), &["pipeline_settings.app.inputs.x: its default must be one of the options"]),
            refused("a default that is a number among text options", input(json!({"type": "choice", "options": ["1"], "default": 1})), &["its default must be one of the options"]),
            refused("a boolean default as text", input(json!({"type": "boolean", "default": "true"})), &["its default must be true or false"]),
            refused("min as text", input(json!({"type": "number", "min": "1"})), &["pipeline_settings.app.inputs.x.min must be a number"]),
            refused("min above max", input(json!({"type": "number", "min": 5, "max": 1})), &["\"min\" is greater than \"max\""]),
            refused("integer as text", input(json!({"type": "number", "integer": "yes"})), &["pipeline_settings.app.inputs.x.integer"]),
            refused("a default out of bounds", input(json!({"type": "number", "max": 10, "default": 11})), &["its default must be a number within its bounds"]),
            refused("a fractional default of a whole number", input(json!({"type": "number", "integer": true, "default": 2.5})), &["its default must be a number within its bounds, whole"]),
            refused("a number default as text", input(json!({"type": "number", "default": "3"})), &["its default must be a number"]),
            refused("a string without a pattern", input(json!({"type": "string"})), &["a string input needs a \"pattern\""]),
            refused("a pattern that is a number", input(json!({"type": "string", "pattern": 5})), &["pipeline_settings.app.inputs.x.pattern"]),
            refused("a pattern of 1001 characters", input(json!({"type": "string", "pattern": long(1001)})), &["pipeline_settings.app.inputs.x.pattern"]),
            refused("a pattern that does not compile", input(json!({"type": "string", "pattern": "[a-z"})), &["pipeline_settings.app.inputs.x.pattern"]),
            refused("a Unicode class", input(json!({"type": "string", "pattern": "\\p{L}+"})), &["no \\p"]),
            refused("a short Unicode class", input(json!({"type": "string", "pattern": "\\pN"})), &["no \\p"]),
            refused("a quoted literal", input(json!({"type": "string", "pattern": "\\Qa.b\\E"})), &["\\Q"]),
            refused("an octal escape", input(json!({"type": "string", "pattern": "\\101"})), &["octal"]),
            refused("a brace that repeats nothing", input(json!({"type": "string", "pattern": "a{,2}"})), &["a { must start a repetition"]),
            refused("a class intersection", input(json!({"type": "string", "pattern": "[a-z&&b]"})), &["no && or ~~"]),
            refused("a nested class", input(json!({"type": "string", "pattern": "[(a[b]]"})), &["a [ inside a class"]),
            refused("empty flags", input(json!({"type": "string", "pattern": "(?)a"})), &["no empty flags"]),
            refused("a surrogate", input(json!({"type": "string", "pattern": "\\x{D800}"})), &["no surrogate"]),
            refused("a group named by a digit", input(json!({"type": "string", "pattern": "(?P<1>a)"})), &["group names"]),
            refused("a group named twice", input(json!({"type": "string", "pattern": "(?P<n>a)(?P<n>b)"})), &["group names"]),
            refused("max_length 0", input(json!({"type": "string", "pattern": "a*", "max_length": 0})), &["pipeline_settings.app.inputs.x.max_length"]),
            refused("max_length 1001", input(json!({"type": "string", "pattern": "a*", "max_length": 1001})), &["pipeline_settings.app.inputs.x.max_length"]),
            refused("max_length 2.5", input(json!({"type": "string", "pattern": "a*", "max_length": 2.5})), &["pipeline_settings.app.inputs.x.max_length"]),
            refused("a default that does not match", input(json!({"type": "string", "pattern": "[a-z]+", "default": "ABC"})), &["pipeline_settings.app.inputs.x: its default must be a string"]),
            refused("a default longer than max_length", input(json!({"type": "string", "pattern": "a*", "max_length": 2, "default": "aaa"})), &["its default must be a string of at most 2 characters"]),
            refused("a default of combining marks longer than it looks", input(json!({"type": "string", "pattern": ".*", "max_length": 2, "default": "q\u{0308}\u{0301}"})), &["its default must be a string of at most 2 characters"]),
            refused("a default with a zero-width space", input(json!({"type": "string", "pattern": ".*", "default": "a\u{200b}b"})), &["its default must be a string"]),
            refused("a long s for s under (?i)", input(json!({"type": "string", "pattern": "(?i)s", "default": "\u{17f}"})), &["its default must be a string"]),
            refused("a hint of 501 characters", input(json!({"type": "boolean", "hint": long(501)})), &["pipeline_settings.app.inputs.x.hint"]),
            refused("a hint with a line break", input(json!({"type": "boolean", "hint": "a\nb"})), &["pipeline_settings.app.inputs.x.hint"]),
            // The quota.
            refused("quota_limit 0", json!({"quota_limit": 0}), &["quota_limit must be a whole number from 1 to 100"]),
            refused("quota_limit 101", json!({"quota_limit": 101}), &["quota_limit must be"]),
            refused("quota_limit 2.5", json!({"quota_limit": 2.5}), &["quota_limit must be"]),
            refused("quota_window in fortnights", json!({"quota_window": "7 fortnights"}), &["quota_window must be"]),
            refused("quota_window in milliseconds", json!({"quota_window": "10ms"}), &["quota_window must be"]),
            refused("quota_window of nothing", json!({"quota_window": "0s"}), &["quota_window must be"]),
            refused("quota_window without a unit", json!({"quota_window": "7"}), &["quota_window must be"]),
            refused("a network level below quota_limit", json!({"quota_limit": 7, "network_quota_limits": "ipv6/56=6,ipv6/48=12"}), &["network_quota_limits: \"ipv6/56=6\": the limit must be between quota_limit (7) and 100"]),
            refused("a network as narrow as a client", json!({"network_quota_limits": "ipv6/64=12"}), &["network_quota_limits: \"ipv6/64=12\" is not a level"]),
            refused("an IPv4 /7", json!({"network_quota_limits": "ipv4/7=12"}), &["network_quota_limits: \"ipv4/7=12\""]),
            refused("five levels", json!({"network_quota_limits": "ipv6/56=6,ipv6/48=12,ipv6/40=20,ipv6/32=30,ipv4/24=10"}), &["network_quota_limits: at most 4 levels"]),
            refused("a level twice", json!({"network_quota_limits": "ipv6/48=12,IPv6/48=20"}), &["network_quota_limits: a level is listed twice"]),
            refused("a level above 100", json!({"network_quota_limits": "ipv6/48=101"}), &["network_quota_limits: \"ipv6/48=101\": the limit must be between"]),
            refused("garbage levels", json!({"network_quota_limits": "lots"}), &["network_quota_limits: \"lots\""]),
            refused("a trailing comma", json!({"network_quota_limits": "ipv6/48=12,"}), &["network_quota_limits: \"\""]),
            refused("a group in capitals", json!({"network_quota_limits": "group:AWS=30"}), &["network_quota_limits: \"group:AWS=30\""]),
            refused("GROUP in capitals", json!({"network_quota_limits": "GROUP:aws=30"}), &["network_quota_limits: \"GROUP:aws=30\""]),
            refused("a group with no name", json!({"network_quota_limits": "group:=30"}), &["network_quota_limits: \"group:=30\""]),
            refused("a group name too long", json!({"network_quota_limits": format!("group:{}=30", "a".repeat(33))}), &["network_quota_limits:"]),
            refused("a group name with a blank", json!({"network_quota_limits": "group: aws=30"}), &["network_quota_limits: \"group: aws=30\""]),
            refused("a group twice", json!({"network_quota_limits": "group:aws=30,group:aws=40"}), &["network_quota_limits: a group is listed twice"]),
            refused("nine groups", json!({"network_quota_limits": "group:a=3,group:b=3,group:c=3,group:d=3,group:e=3,group:f=3,group:g=3,group:h=3,group:i=3"}), &["network_quota_limits: at most 8 groups"]),
            refused("a group below quota_limit", json!({"network_quota_limits": "group:aws=2"}), &["network_quota_limits: \"group:aws=2\": the limit must be between quota_limit (3) and 100"]),
            refused("a group above 100", json!({"network_quota_limits": "group:aws=101"}), &["the limit must be between"]),
            refused("a limit of four digits", json!({"network_quota_limits": "ipv6/48=0012"}), &["network_quota_limits: \"ipv6/48=0012\""]),
            refused("a signed prefix", json!({"network_quota_limits": "ipv6/+48=12"}), &["network_quota_limits: \"ipv6/+48=12\""]),
            refused("a wide blank inside a level", json!({"network_quota_limits": "ipv6\u{3000}/48=12"}), &["network_quota_limits:"]),
            refused("a negative global budget", json!({"global_quota_limit": -1}), &["global_quota_limit must be"]),
            refused("a fractional global budget", json!({"global_quota_limit": 2.5}), &["global_quota_limit must be"]),
            refused("a global window in words", json!({"global_quota_window": "1 day"}), &["global_quota_window must be"]),
            refused("a ledger kept forever", json!({"ledger_retention": "forever"}), &["ledger_retention must be"]),
            refused("a ledger kept no time", json!({"ledger_retention": "0d"}), &["ledger_retention must be"]),
            // The rest the functions read.
            refused("a namespace of AWS's", json!({"metrics_namespace": "AWS/Lambda"}), &["metrics_namespace must be"]),
            refused("a namespace starting with :", json!({"metrics_namespace": ":x"}), &["metrics_namespace must be"]),
            refused("a namespace with a space", json!({"metrics_namespace": "a b"}), &["metrics_namespace must be"]),
            refused("a namespace of 256 characters", json!({"metrics_namespace": long(256)}), &["metrics_namespace must be"]),
            refused("a poll of 16 minutes", json!({"run_poll_interval": "16m"}), &["run_poll_interval must be"]),
            refused("a poll of 901 seconds", json!({"run_poll_interval": "901s"}), &["run_poll_interval must be"]),
            refused("a poll of nothing", json!({"run_poll_interval": "0s"}), &["run_poll_interval must be"]),
            refused("a check after soon", json!({"run_check_after": "soon"}), &["run_check_after must be"]),
            refused("a check after nothing", json!({"run_check_after": "0m"}), &["run_check_after must be"]),
            refused("max_attempts 0", json!({"max_attempts": 0}), &["max_attempts must be"]),
            refused("max_attempts 101", json!({"max_attempts": 101}), &["max_attempts must be"]),
            refused("no state e-mails", json!({"notify_states": []}), &["notify_states must be"]),
            refused("an unknown state", json!({"notify_states": ["EXPLODED"]}), &["notify_states must be"]),
            refused("a state twice", json!({"notify_states": ["FAILED", "FAILED"]}), &["notify_states must be"]),
            refused("a refusal memory of 61 s", json!({"refusal_memory": "61s"}), &["refusal_memory must be"]),
            refused("an overlap that is not a time", json!({"client_key_generation": 1, "client_key_previous_until": "next week"}), &["client_key_previous_until must be empty or an RFC 3339 time"]),
            refused("an overlap without a rotation", json!({"client_key_previous_until": "2026-12-14T18:00:00Z"}), &["client_key_previous_until needs a rotation"]),
            refused("a generation below 0", json!({"client_key_generation": -1}), &["client_key_generation must be a whole number"]),
            refused("a generation of 1.5", json!({"client_key_generation": 1.5}), &["client_key_generation must be a whole number"]),
            refused("a negative refusal memory", json!({"refusal_memory": "-1s"}), &["refusal_memory must be"]),
            refused("an origin with a slash", json!({"cors_allowed_origins": ["https://docs.example.com/"]}), &["cors_allowed_origins"]),
            refused("any origin among others", json!({"cors_allowed_origins": ["*", "https://a.example"]}), &["cors_allowed_origins"]),
            refused("an origin starting with a dot", json!({"cors_allowed_origins": ["https://.example"]}), &["cors_allowed_origins"]),
            refused("an origin starting with a dash", json!({"cors_allowed_origins": ["https://-a.example"]}), &["cors_allowed_origins"]),
            refused("an origin in upper case", json!({"cors_allowed_origins": ["https://A.example"]}), &["cors_allowed_origins"]),
            refused("51 origins", json!({"cors_allowed_origins": (0..51).map(|i| format!("https://o{i}.example")).collect::<Vec<_>>()}), &["cors_allowed_origins: at most 50"]),
            // The edge and the concurrency.
            refused("no trigger throttle", json!({"trigger_throttle_rate_limit": 0}), &["trigger_throttle_rate_limit must be"]),
            refused("a burst of nothing", json!({"trigger_throttle_burst_limit": 0}), &["trigger_throttle_burst_limit must be"]),
            refused("a fractional burst", json!({"api_throttle_burst_limit": 2.5}), &["api_throttle_burst_limit must be"]),
            refused("a WAF window AWS does not offer", json!({"waf_window_seconds": 100}), &["waf_window_seconds must be 60, 120, 300 or 600"]),
            refused("a WAF limit under its minimum", json!({"waf_trigger_rate_limit": 5}), &["waf_trigger_rate_limit must be"]),
            refused("one worker at most", json!({"worker_max_concurrency": 1}), &["worker_max_concurrency must be"]),
            refused("no ingress concurrency", json!({"ingress_reserved_concurrency": 0}), &["ingress_reserved_concurrency must be"]),
        ],
    );
    // A number beyond a double: Terraform holds it, JSON parsers do not.
    let beyond = plan(
        &bin,
        &json!({"pipelines": {"app": "app"}}),
        &[(
            "big.tfvars",
            "pipeline_settings = { app = { inputs = { x = { type = \"number\", min = 2e308 } } } }"
                .into(),
        )],
    );
    match beyond {
        Planned::Refused(errors) => assert!(
            errors.contains("pipeline_settings.app.inputs.x.min must be a number"),
            "{errors}"
        ),
        accepted => panic!("a minimum of 2e308 was accepted: {accepted:?}"),
    }
}

/// Random input declarations, built from the pieces where Terraform's
/// regular expressions (RE2) and the functions' (`regex-lite`) differ, and
/// numbers at JSON's and a double's edges.
mod draw {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::{json, Value};

    const PATTERN_PIECES: &[&str] = &[
        "a",
        "b",
        "z",
        "0",
        "9",
        "é",
        "ſ",
        "K",
        ".",
        "*",
        "+",
        "?",
        "|",
        "(",
        ")",
        "[",
        "]",
        "^",
        "$",
        "{",
        "}",
        ",",
        "-",
        "&&",
        "~~",
        "--",
        ":",
        "<",
        ">",
        "'",
        "=",
        "!",
        "\\",
        "\\\\",
        "\\d",
        "\\w",
        "\\s",
        "\\b",
        "\\B",
        "\\A",
        "\\z",
        "\\Q",
        "\\E",
        "\\p",
        "\\P",
        "\\x",
        "\\u",
        "\\U",
        "\\0",
        "\\1",
        "\\7",
        "\\8",
        "\\n",
        "\\t",
        "\\v",
        "\\a",
        "\\f",
        "\\e",
        "\\.",
        "\\{",
        "\\}",
        "\\[",
        "\\-",
        "\\ ",
        "\\#",
        "\\C",
        "\\pL",
        "\\p{L}",
        "(?i)",
        "(?-i)",
        "(?i:",
        "(?:",
        "(?P<n>",
        "(?<n>",
        "(?P<1>",
        "(?)",
        "(?x)",
        "(?s)",
        "(?m)",
        "(?U)",
        "[:alpha:]",
        "[[:alpha:]]",
        "[[:^digit:]]",
        "{2}",
        "{1,3}",
        "{2,}",
        "{,2}",
        "{0}",
        "x{D800}",
        "{41}",
        "{110000}",
        "1",
        "2",
        " ",
    ];
    const TEXT_PIECES: &[&str] = &[
        "a",
        "b",
        "s",
        "k",
        "K",
        "0",
        "1",
        "é",
        "e\u{301}",
        "q\u{308}",
        "ſ",
        "\u{212a}",
        "\u{17f}",
        " ",
        ".",
        "-",
        "/",
        "{",
        "}",
        "\\",
        "\u{200b}",
        "\u{202e}",
        "\t",
        "\u{3164}",
        "\u{1F600}",
        "ab",
        "main",
        "ééé",
    ];
    const NUMBERS: &[f64] = &[
        0.0,
        1.0,
        -1.0,
        0.5,
        2.5,
        3.0,
        10.0,
        1e15,
        1e16,
        1e308,
        -1e308,
        1.7976931348623157e308,
        5e-324,
        1e-7,
        0.1,
        123456789.125,
    ];

    fn pattern(rng: &mut StdRng) -> String {
        (0..rng.random_range(1..=8))
            .map(|_| PATTERN_PIECES[rng.random_range(0..PATTERN_PIECES.len())])
            .collect()
    }

    fn text(rng: &mut StdRng) -> String {
        (0..rng.random_range(0..=5))
            .map(|_| TEXT_PIECES[rng.random_range(0..TEXT_PIECES.len())])
            .collect()
    }

    fn number(rng: &mut StdRng) -> Value {
        json!(NUMBERS[rng.random_range(0..NUMBERS.len())])
    }

    /// One input declaration.
    pub fn declaration(rng: &mut StdRng) -> Value {
        match rng.random_range(0..10) {
            0..=5 => {
                let mut d = json!({"type": "string", "pattern": pattern(rng)});
                if rng.random_bool(0.3) {
                    d["max_length"] = json!(rng.random_range(1..=6));
                }
                if rng.random_bool(0.6) {
                    d["default"] = json!(text(rng));
                }
                d
            }
            6..=8 => {
                let mut d = json!({"type": "number"});
                for field in ["min", "max", "default"] {
                    if rng.random_bool(0.5) {
                        d[field] = number(rng);
                    }
                }
                if rng.random_bool(0.5) {
                    d["integer"] = json!(rng.random_bool(0.5));
                }
                d
            }
            _ => {
                let options: Vec<String> =
                    (0..rng.random_range(1..=3)).map(|_| text(rng)).collect();
                let default = if rng.random_bool(0.5) {
                    options[0].clone()
                } else {
                    text(rng)
                };
                json!({"type": "choice", "options": options, "default": default})
            }
        }
    }

    pub fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }
}

#[test]
fn whatever_terraform_accepts_of_random_inputs_the_functions_accept() {
    let Some(bin) = terraform("whatever_terraform_accepts_of_random_inputs") else {
        return;
    };
    const PIPELINES: usize = 20;
    const PER_PIPELINE: usize = 50;
    // PLAN_SEEDS=1-200 draws more (docs/testing.md); CI draws three.
    let seeds: Vec<u64> = match std::env::var("PLAN_SEEDS") {
        Ok(range) => {
            let (first, last) = range.split_once('-').expect("PLAN_SEEDS=first-last");
            (first.parse().unwrap()..=last.parse().unwrap()).collect()
        }
        Err(_) => vec![1, 2, 3],
    };
    for seed in seeds {
        let mut rng = draw::rng(seed);
        let mut settings = Map::new();
        let mut pipelines = Map::new();
        for p in 0..PIPELINES {
            let inputs: Map<String, Value> = (0..PER_PIPELINE)
                .map(|i| (format!("i{i}"), draw::declaration(&mut rng)))
                .collect();
            settings.insert(format!("p{p}"), json!({"inputs": inputs}));
            pipelines.insert(format!("p{p}"), json!(format!("p{p}")));
        }
        // First plan: which inputs Terraform refuses.
        let all = json!({"pipelines": pipelines, "pipeline_settings": settings});
        let refused: std::collections::BTreeSet<String> = match plan(&bin, &all, &[]) {
            Planned::Accepted(_) => Default::default(),
            Planned::Refused(errors) => errors
                .split("\n- ")
                .filter_map(|line| {
                    let at = line.strip_prefix("pipeline_settings.")?;
                    let mut parts = at.splitn(4, ['.', ':', ' ']);
                    let (p, inputs, i) = (parts.next()?, parts.next()?, parts.next()?);
                    (inputs == "inputs").then(|| format!("{p}.{i}"))
                })
                .collect(),
        };
        let total = PIPELINES * PER_PIPELINE;
        assert!(
            refused.len() > total / 10 && refused.len() < total * 9 / 10,
            "seed {seed}: {} of {total} refused: the draw should give both",
            refused.len()
        );
        // Second plan: only what Terraform accepted; it must plan, and
        // each declaration it renders must be one the functions read.
        let mut kept = Map::new();
        for (p, setting) in &settings {
            let inputs: Map<String, Value> = setting["inputs"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(i, _)| !refused.contains(&format!("{p}.{i}")))
                .map(|(i, d)| (i.clone(), d.clone()))
                .collect();
            kept.insert(p.clone(), json!({"inputs": inputs}));
        }
        let accepted = json!({"pipelines": pipelines, "pipeline_settings": kept});
        let Planned::Accepted(outputs) = plan(&bin, &accepted, &[]) else {
            panic!("seed {seed}: what Terraform accepted one by one, it refused together");
        };
        let rendered: Value =
            serde_json::from_str(&environments(&outputs)["ingress"]["PIPELINE_SETTINGS"]).unwrap();
        let mut violations = Vec::new();
        for (p, setting) in rendered.as_object().unwrap() {
            for (i, declaration) in setting["inputs"].as_object().unwrap() {
                if let Err(e) = shared::rules::inputs::Inputs::parse(&json!({i: declaration})) {
                    let given = &settings[p]["inputs"][i];
                    violations.push(format!("{p}.{i}: {given} (rendered {declaration}): {e}"));
                }
            }
        }
        assert!(
            violations.is_empty(),
            "seed {seed}: Terraform accepted what the functions refuse:\n{}",
            violations.join("\n")
        );
    }
}

/// Every function an expression calls, inside string templates too.
fn calls(expression: &hcl::Expression, found: &mut BTreeSet<String>) {
    use hcl::expr::{Operation, TraversalOperator};
    use hcl::template::{Directive, Element};
    use hcl::Expression as E;
    fn template(t: &hcl::Template, found: &mut BTreeSet<String>) {
        for element in t.elements() {
            match element {
                Element::Literal(_) => {}
                Element::Interpolation(i) => calls(&i.expr, found),
                Element::Directive(d) => match d.as_ref() {
                    Directive::If(d) => {
                        calls(&d.cond_expr, found);
                        template(&d.true_template, found);
                        if let Some(f) = &d.false_template {
                            template(f, found);
                        }
                    }
                    Directive::For(d) => {
                        calls(&d.collection_expr, found);
                        template(&d.template, found);
                    }
                },
            }
        }
    }
    match expression {
        E::FuncCall(call) => {
            let mut name: Vec<String> = call.name.namespace.iter().map(|n| n.to_string()).collect();
            name.push(call.name.name.to_string());
            found.insert(name.join("::"));
            call.args.iter().for_each(|a| calls(a, found));
        }
        E::Array(items) => items.iter().for_each(|i| calls(i, found)),
        E::Object(object) => {
            for (key, value) in object {
                if let hcl::ObjectKey::Expression(key) = key {
                    calls(key, found);
                }
                calls(value, found);
            }
        }
        E::TemplateExpr(t) => {
            let parsed = hcl::Template::from_expr(t).expect("a template that parses");
            template(&parsed, found);
        }
        E::Traversal(t) => {
            calls(&t.expr, found);
            for op in &t.operators {
                if let TraversalOperator::Index(i) = op {
                    calls(i, found);
                }
            }
        }
        E::Parenthesis(e) => calls(e, found),
        E::Conditional(c) => {
            calls(&c.cond_expr, found);
            calls(&c.true_expr, found);
            calls(&c.false_expr, found);
        }
        E::Operation(op) => match op.as_ref() {
            Operation::Unary(u) => calls(&u.expr, found),
            Operation::Binary(b) => {
                calls(&b.lhs_expr, found);
                calls(&b.rhs_expr, found);
            }
        },
        E::ForExpr(f) => {
            calls(&f.collection_expr, found);
            if let Some(k) = &f.key_expr {
                calls(k, found);
            }
            calls(&f.value_expr, found);
            if let Some(c) = &f.cond_expr {
                calls(c, found);
            }
        }
        _ => {}
    }
}

fn body_calls(body: &hcl::Body, found: &mut BTreeSet<String>) {
    for attribute in body.attributes() {
        calls(attribute.expr(), found);
    }
    for block in body.blocks() {
        body_calls(block.body(), found);
    }
}

#[test]
fn every_function_called_in_terraform_is_one_terraform_has() {
    let Some(bin) = terraform("every_function_called_in_terraform") else {
        return;
    };
    let scratch = Scratch::new();
    let output = command(&bin, &scratch.0, &scratch)
        .args(["metadata", "functions", "-json"])
        .output()
        .expect("run terraform metadata functions");
    assert!(output.status.success(), "{output:?}");
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let known: BTreeSet<String> = metadata["function_signatures"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(known.contains("setsubtract") && !known.contains("setdiff"));
    let mut dirs = vec![terraform_dir()];
    let mut files = 0;
    let mut unknown = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "tf") {
                files += 1;
                let body: hcl::Body = hcl::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let mut found = BTreeSet::new();
                body_calls(&body, &mut found);
                for name in found {
                    // Type constraints read as calls: list(string), optional(…).
                    let is_type = ["list", "map", "set", "object", "tuple", "optional"]
                        .contains(&name.as_str());
                    if !known.contains(&name) && !is_type {
                        unknown.push(format!("{}: {name}", path.display()));
                    }
                }
            }
        }
    }
    assert!(files > 15, "read {files} files");
    assert!(
        unknown.is_empty(),
        "Terraform has no such function:\n{}",
        unknown.join("\n")
    );
}

/// The root module's own variables (those that are not settings: the
/// region, the name, the log retention, …) validated by Terraform, on
/// `variables.tf` alone, which needs no provider.
#[test]
fn the_root_modules_own_variables_are_checked_by_terraform() {
    let Some(bin) = terraform("the_root_modules_own_variables") else {
        return;
    };
    let plan_root = |variables: Value| {
        let scratch = Scratch::new();
        std::fs::copy(
            terraform_dir().join("variables.tf"),
            scratch.0.join("variables.tf"),
        )
        .unwrap();
        let file = scratch.file("case.tfvars.json", &variables.to_string());
        plan_files(&bin, &scratch.0, &[file], &scratch)
    };
    assert!(matches!(plan_root(json!({})), Planned::Accepted(_)));
    for (variables, needle) in [
        (json!({"name": "Pipeline_Trigger"}), "name must be"),
        (json!({"region": "mars"}), "region must look like"),
        (
            json!({"log_retention_days": 13}),
            "log_retention_days must be",
        ),
        (json!({"alert_emails": ["on-call"]}), "alert_emails must be"),
        (json!({"architecture": "mips"}), "architecture must be"),
        (
            json!({"worker_timeout_seconds": 5}),
            "worker_timeout_seconds must be",
        ),
        (json!({"stage_name": "pro-d"}), "stage_name must be"),
        (
            json!({"ingress_environment_readers": ["arn:aws:iam::123456789012:user/x"]}),
            "ingress_environment_readers must be",
        ),
    ] {
        match plan_root(variables.clone()) {
            Planned::Refused(errors) => assert!(errors.contains(needle), "{variables}: {errors}"),
            accepted => panic!("{variables}: accepted: {accepted:?}"),
        }
    }
}

/// The local stack's gateway (tools/local/src/edge.rs) gives the answers
/// Terraform deploys, header for header, and plays the same numbers.
#[test]
fn the_local_gateway_gives_the_answers_and_numbers_terraform_deploys() {
    let Some(bin) = terraform("the_local_gateway_gives_the_answers") else {
        return;
    };
    use local_stack::edge::{Answers, Limits, Throttle};
    use shared::rules::cors::CorsPolicy;
    for origins in [
        vec![],
        vec!["*"],
        vec!["https://a.example"],
        vec!["https://a.example", "https://b.example:8443"],
    ] {
        let Planned::Accepted(outputs) = plan(
            &bin,
            &json!({"pipelines": {"app": "app"}, "cors_allowed_origins": origins, "waf_window_seconds": 120}),
            &[],
        ) else {
            panic!("{origins:?} plans")
        };
        let answers = Answers::new(CorsPolicy::parse(&origins.join(",")).unwrap(), 120);
        let deployed = outputs["edge"]["answers"].as_object().unwrap();
        let slugs: BTreeSet<String> = deployed.keys().cloned().collect();
        assert_eq!(slugs, answers.slugs().into_iter().collect(), "{origins:?}");
        for (slug, answer) in deployed {
            let (status, headers, body) = answers.rendered(slug);
            let context = format!("{origins:?} {slug}");
            assert_eq!(
                answer["status"].as_u64().map(|s| s as u16),
                status,
                "{context}"
            );
            let deployed_headers: BTreeMap<String, String> =
                serde_json::from_value(answer["headers"].clone()).unwrap();
            assert_eq!(deployed_headers, headers.into_iter().collect(), "{context}");
            let deployed_body: Value =
                serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            assert_eq!(deployed_body, body, "{context}");
        }
        // Which response type and WAF rule gives which answer.
        for kind in outputs["edge"]["gateway"].as_object().unwrap().keys() {
            assert_eq!(
                answers.slug_of(kind),
                outputs["edge"]["gateway"][kind],
                "{kind}"
            );
        }
        assert_eq!(answers.slug_of("rate"), outputs["edge"]["waf"]["rate"]);
    }
    let Planned::Accepted(defaults) = plan(&bin, &json!({"pipelines": {"app": "app"}}), &[]) else {
        panic!("the defaults plan")
    };
    let limits = Limits::terraform_defaults();
    let throttles = limits.throttles.clone().unwrap();
    let deployed = defaults["route_throttles"].as_object().unwrap();
    assert_eq!(
        deployed.keys().collect::<BTreeSet<_>>(),
        throttles
            .iter()
            .map(|(path, _)| path)
            .collect::<BTreeSet<_>>()
    );
    for (path, Throttle { rate, burst }) in &throttles {
        assert_eq!(deployed[path]["rate"].as_f64(), Some(*rate), "{path}");
        assert_eq!(deployed[path]["burst"].as_f64(), Some(*burst), "{path}");
    }
    let waf = limits.waf.unwrap();
    assert_eq!(
        defaults["waf"],
        json!({"enabled": true, "window_seconds": waf.window.as_secs(), "rate_limit": waf.rate_limit, "trigger_limit": waf.trigger_limit})
    );
}

/// Random `network_quota_limits` texts, from the pieces a level is made
/// of (and the near misses): Terraform refuses exactly those the ingress
/// refuses. PLAN_SEEDS draws more.
#[test]
fn terraform_and_the_functions_agree_on_random_network_levels() {
    let Some(bin) = terraform("terraform_and_the_functions_agree_on_random_network_levels") else {
        return;
    };
    use rand::{Rng, SeedableRng};
    const PIECES: &[&str] = &[
        "ipv4", "ipv6", "IPv6", "ipv5", "group:", "GROUP:", "aws", "gcp-2", "a", "-x", "/", "=",
        ",", " ", "\t", "\u{3000}", "+", "0", "8", "16", "24", "31", "32", "48", "56", "63", "64",
        "3", "12", "030", "100", "101", "0012", "off",
    ];
    const PER_SEED: usize = 40;
    let seeds: Vec<u64> = match std::env::var("PLAN_SEEDS") {
        Ok(range) => {
            let (first, last) = range.split_once('-').expect("PLAN_SEEDS=first-last");
            (first.parse().unwrap()..=last.parse().unwrap()).collect()
        }
        Err(_) => vec![1, 2, 3],
    };
    let mut texts = Vec::new();
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..PER_SEED {
            // Mostly well-formed items, some pieces shuffled in.
            let items = rng.random_range(1..=4);
            let text: Vec<String> = (0..items)
                .map(|_| {
                    if rng.random_bool(0.85) {
                        let pick = |rng: &mut rand::rngs::StdRng, from: &[&str]| {
                            from[rng.random_range(0..from.len())].to_string()
                        };
                        match rng.random_range(0..3) {
                            0 => format!(
                                "{}/{}={}",
                                pick(&mut rng, &["ipv4", "ipv6", "IPv4"]),
                                pick(&mut rng, &["8", "24", "31", "32", "48", "63", "64", "7"]),
                                pick(&mut rng, &["3", "12", "100", "101", "2"]),
                            ),
                            _ => format!(
                                "group:{}={}",
                                pick(&mut rng, &["aws", "gcp-2", "a", "aws"]),
                                pick(&mut rng, &["3", "30", "100", "101", "2", "030"]),
                            ),
                        }
                    } else {
                        (0..rng.random_range(1..=6))
                            .map(|_| PIECES[rng.random_range(0..PIECES.len())])
                            .collect()
                    }
                })
                .collect();
            texts.push(text.join(","));
        }
    }
    let verdicts: Vec<(String, bool)> = std::thread::scope(|scope| {
        let chunks: Vec<_> = texts
            .chunks(texts.len().div_ceil(2))
            .map(|chunk| {
                let bin = &bin;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|text| {
                            let planned = plan(
                                bin,
                                &json!({"network_quota_limits": text, "pipelines": {"app": "app"}}),
                                &[],
                            );
                            (text.clone(), matches!(planned, Planned::Accepted(_)))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        chunks
            .into_iter()
            .flat_map(|c| c.join().expect("a planning thread"))
            .collect()
    });
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    for (text, terraform_accepts) in &verdicts {
        let functions_accept = shared::rules::quota::NetworkLimits::parse(text, 3, 100).is_ok();
        accepted += usize::from(*terraform_accepts);
        if *terraform_accepts != functions_accept {
            disagreements.push(format!(
                "{text:?}: Terraform {}, the ingress {}",
                if *terraform_accepts {
                    "accepts"
                } else {
                    "refuses"
                },
                if functions_accept {
                    "accepts"
                } else {
                    "refuses"
                }
            ));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(
        accepted > verdicts.len() / 10 && accepted < verdicts.len() * 9 / 10,
        "{accepted} of {} accepted: the draw should give both",
        verdicts.len()
    );
}
