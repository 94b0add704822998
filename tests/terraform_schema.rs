//! Every `resource` and `data` block under `terraform/` (modules too),
//! checked against the providers' own published schema, since no provider
//! can be downloaded here to run `terraform validate`.
//!
//! The schema comes from the jsii assemblies of the prebuilt CDK Terrain
//! provider packages (`scripts/requirements-schema.txt`), turned into compact
//! JSON by `scripts/provider_schema.py`; `scripts/test` writes it to
//! `target/provider-schema/schema.json` (or set `PROVIDER_SCHEMA`). Checked:
//! unknown resource and data source types, unknown arguments and nested
//! blocks, an argument written as a block, missing required arguments and
//! blocks, at every depth, inside `dynamic` blocks too.

use hcl::{Block, Body};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
struct Schema {
    providers: BTreeMap<String, String>,
    resources: BTreeMap<String, String>,
    data_sources: BTreeMap<String, String>,
    schemas: BTreeMap<String, BlockSchema>,
}

#[derive(Debug, Deserialize)]
struct BlockSchema {
    /// Argument name → required.
    arguments: BTreeMap<String, bool>,
    blocks: BTreeMap<String, NestedBlock>,
}

#[derive(Debug, Deserialize)]
struct NestedBlock {
    required: bool,
    /// `None`: typed `any` by the bindings (too deep to describe, such as
    /// WAF rule statements); its contents are not checked.
    schema: Option<String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = std::env::var("PROVIDER_SCHEMA")
            .map(PathBuf::from)
            .unwrap_or_else(|_| workspace_root().join("target/provider-schema/schema.json"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no provider schema at {} ({e}): scripts/test writes it (or set PROVIDER_SCHEMA)",
                path.display()
            )
        });
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

/// Which top-level block a body belongs to: the meta-arguments differ.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Resource,
    DataSource,
    Nested,
}

const META_ARGUMENTS: [&str; 4] = ["count", "for_each", "depends_on", "provider"];

/// Every way `body` departs from `schema`, each naming where (`at`).
fn check_body(
    schema: &Schema,
    block_schema: &BlockSchema,
    body: &Body,
    level: Level,
    at: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut present: Vec<String> = Vec::new();
    for attribute in body.attributes() {
        let key = attribute.key();
        present.push(key.to_string());
        let known = block_schema.arguments.contains_key(key)
            // A nested type may be written as an attribute (`x = { … }`).
            || block_schema.blocks.contains_key(key)
            || (level != Level::Nested && META_ARGUMENTS.contains(&key));
        if !known {
            errors.push(format!("{at}: unknown argument {key:?}"));
        }
    }
    for block in body.blocks() {
        let name = block.identifier();
        match (name, level) {
            ("lifecycle", Level::Resource | Level::DataSource) => continue,
            ("provisioner" | "connection", Level::Resource) => continue,
            _ => {}
        }
        if name == "dynamic" {
            errors.extend(check_dynamic(schema, block_schema, block, at, &mut present));
            continue;
        }
        present.push(name.to_string());
        errors.extend(check_nested(schema, block_schema, name, block.body(), at));
    }
    for (name, required) in &block_schema.arguments {
        if *required && !present.contains(name) {
            errors.push(format!("{at}: missing required argument {name:?}"));
        }
    }
    for (name, nested) in &block_schema.blocks {
        if nested.required && !present.contains(name) {
            errors.push(format!("{at}: missing required block {name:?}"));
        }
    }
    errors
}

/// A nested block `name { body }` inside a block of `parent`.
fn check_nested(
    schema: &Schema,
    parent: &BlockSchema,
    name: &str,
    body: &Body,
    at: &str,
) -> Vec<String> {
    match parent.blocks.get(name) {
        Some(NestedBlock {
            schema: Some(id), ..
        }) => check_body(
            schema,
            &schema.schemas[id],
            body,
            Level::Nested,
            &format!("{at}.{name}"),
        ),
        Some(NestedBlock { schema: None, .. }) => Vec::new(),
        None if parent.arguments.contains_key(name) => vec![format!(
            "{at}: {name:?} is an argument: write `{name} = …`, not a block"
        )],
        None => vec![format!("{at}: unknown block {name:?}")],
    }
}

/// `dynamic "name" { for_each = …, content { … } }`.
fn check_dynamic(
    schema: &Schema,
    parent: &BlockSchema,
    block: &Block,
    at: &str,
    present: &mut Vec<String>,
) -> Vec<String> {
    let Some(name) = block.labels().first().map(|l| l.as_str()) else {
        return vec![format!("{at}: a dynamic block without a name")];
    };
    let at_dynamic = format!("{at}.dynamic.{name}");
    present.push(name.to_string());
    let mut errors = Vec::new();
    if !block.body().attributes().any(|a| a.key() == "for_each") {
        errors.push(format!("{at_dynamic}: missing for_each"));
    }
    for attribute in block.body().attributes() {
        if !["for_each", "iterator", "labels"].contains(&attribute.key()) {
            errors.push(format!(
                "{at_dynamic}: unknown argument {:?} of a dynamic block",
                attribute.key()
            ));
        }
    }
    let contents: Vec<&Block> = block
        .body()
        .blocks()
        .filter(|b| b.identifier() == "content")
        .collect();
    if contents.len() != 1 {
        errors.push(format!("{at_dynamic}: needs exactly one content block"));
    }
    for content in contents {
        errors.extend(check_nested(schema, parent, name, content.body(), at));
    }
    errors
}

/// Every departure from the schema of the `resource` and `data` blocks of
/// one file's text (`file` names it in the messages).
fn check_file(schema: &Schema, file: &str, text: &str) -> Vec<String> {
    let body: Body = match hcl::parse(text) {
        Ok(body) => body,
        Err(e) => return vec![format!("{file}: does not parse: {e}")],
    };
    let mut errors = Vec::new();
    for block in body.blocks() {
        let (table, level, kind) = match block.identifier() {
            "resource" => (&schema.resources, Level::Resource, "resource"),
            "data" => (&schema.data_sources, Level::DataSource, "data"),
            _ => continue,
        };
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        let [tf_type, name] = labels[..] else {
            errors.push(format!("{file}: a {kind} block needs a type and a name"));
            continue;
        };
        let at = format!("{file}: {kind}.{tf_type}.{name}");
        match table.get(tf_type) {
            Some(id) => errors.extend(check_body(
                schema,
                &schema.schemas[id],
                block.body(),
                level,
                &at,
            )),
            None => errors.push(format!("{at}: unknown {kind} type {tf_type:?}")),
        }
    }
    errors
}

/// The `.tf` files of the root module and every module under it.
fn terraform_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() && !name.starts_with('.') {
                walk(&path, files);
            } else if name.ends_with(".tf") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace_root().join("terraform"), &mut files);
    files.sort();
    files
}

#[test]
fn every_resource_and_data_block_matches_the_provider_schema() {
    let schema = schema();
    let files = terraform_files();
    assert!(
        files.len() >= 10,
        "expected the whole tree, found {files:?}"
    );
    let mut errors = Vec::new();
    let mut checked = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read a .tf file");
        let relative = path.strip_prefix(workspace_root()).unwrap_or(path);
        checked += text.matches("resource \"").count() + text.matches("data \"").count();
        errors.extend(check_file(schema, &relative.display().to_string(), &text));
    }
    assert!(checked > 50, "only {checked} blocks found");
    assert!(
        errors.is_empty(),
        "terraform/ departs from the provider schema ({:?}):\n{}",
        schema.providers,
        errors.join("\n")
    );
}

fn errors_of(text: &str) -> Vec<String> {
    check_file(schema(), "test.tf", text)
}

#[test]
fn the_schema_is_the_aws_and_random_providers() {
    let schema = schema();
    assert!(
        schema.providers["aws"].starts_with("6."),
        "{:?}",
        schema.providers
    );
    assert!(schema.providers.contains_key("random"));
    assert!(schema.resources.len() > 1000);
    assert!(schema.data_sources.contains_key("aws_iam_policy_document"));
}

#[test]
fn a_misspelled_argument_fails() {
    let errors = errors_of(
        r#"resource "aws_sqs_queue" "q" {
             name                       = "q"
             visibility_timeout_secs    = 30
           }"#,
    );
    assert_eq!(
        errors,
        ["test.tf: resource.aws_sqs_queue.q: unknown argument \"visibility_timeout_secs\""]
    );
}

#[test]
fn a_missing_required_argument_fails() {
    let errors = errors_of(
        r#"resource "aws_lambda_function" "f" {
             function_name = "f"
           }"#,
    );
    assert_eq!(
        errors,
        ["test.tf: resource.aws_lambda_function.f: missing required argument \"role\""]
    );
}

#[test]
fn an_unknown_type_fails() {
    assert_eq!(
        errors_of(r#"resource "aws_sqs_queu" "q" {}"#),
        ["test.tf: resource.aws_sqs_queu.q: unknown resource type \"aws_sqs_queu\""]
    );
    assert_eq!(
        errors_of(r#"data "aws_caller_identities" "me" {}"#),
        ["test.tf: data.aws_caller_identities.me: unknown data type \"aws_caller_identities\""]
    );
}

#[test]
fn nested_blocks_are_checked_at_every_depth() {
    let errors = errors_of(
        r#"resource "aws_lambda_function" "f" {
             function_name = "f"
             role          = "arn"
             environment {
               variable = { A = "b" }
             }
             tags { a = "b" }
             vpc_configuration {}
           }"#,
    );
    assert_eq!(
        errors,
        [
            "test.tf: resource.aws_lambda_function.f.environment: unknown argument \"variable\"",
            "test.tf: resource.aws_lambda_function.f: \"tags\" is an argument: write `tags = …`, not a block",
            "test.tf: resource.aws_lambda_function.f: unknown block \"vpc_configuration\"",
        ]
    );
}

#[test]
fn dynamic_blocks_are_checked_like_the_blocks_they_make() {
    let errors = errors_of(
        r#"data "aws_iam_policy_document" "p" {
             dynamic "statement" {
               for_each = var.x
               content {
                 actions   = ["s3:GetObject"]
                 resource  = ["*"]
               }
             }
             dynamic "statements" {
               for_each = var.x
               content {}
             }
           }"#,
    );
    assert_eq!(
        errors,
        [
            "test.tf: data.aws_iam_policy_document.p.statement: unknown argument \"resource\"",
            "test.tf: data.aws_iam_policy_document.p: unknown block \"statements\"",
        ]
    );
}

#[test]
fn meta_arguments_and_lifecycle_are_allowed_where_terraform_allows_them() {
    assert!(errors_of(
        r#"resource "aws_sqs_queue" "q" {
             count      = 2
             depends_on = [aws_sqs_queue.other]
             provider   = aws.east
             lifecycle { prevent_destroy = true }
           }
           data "aws_region" "r" {
             for_each = toset(["a"])
             lifecycle {
               postcondition {
                 condition     = true
                 error_message = "x"
               }
             }
           }"#
    )
    .is_empty());
    assert_eq!(
        errors_of(
            r#"resource "aws_sqs_queue" "q" {
                 redrive_policy = "x"
                 sqs_managed_sse_enabled = true
                 timeouts { count = 1 }
               }"#
        )
        .len(),
        1,
        "meta-arguments are not arguments of nested blocks"
    );
}
