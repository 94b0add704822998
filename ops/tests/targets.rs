//! Every command that changes something, run as an operator runs it (the
//! binary, its environment): a flag beats a stale variable, the target is
//! printed before anything is done, and when a variable and the outputs
//! file given on the command line disagree, the command refuses, names
//! both, and touches nothing.

mod common;

use common::{ops_with, Run};
use shared::aws::table::Table;
use testkit::{unique, Stack};

/// The other stack a stale environment points at.
const STALE_TABLE: &str = "other-stack-table";
/// A block that ends by itself, of an address no test sends from.
const BLOCK: [&str; 7] = [
    "clients",
    "block",
    "203.0.113.9",
    "--for",
    "1h",
    "--reason",
    "test",
];

fn sample(name: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/network-groups")
        .join(name)
        .display()
        .to_string()
}

/// Every writing command, with what it needs to get past its own checks.
fn writing_commands(events_dlq: &str) -> Vec<Vec<String>> {
    let cidrs = sample("cidrs.txt");
    [
        vec!["dlq", "replay", "--max", "1"],
        vec!["dlq", "purge", "--yes"],
        vec![
            "events",
            "replay",
            "--max",
            "1",
            "--events-dlq-url",
            events_dlq,
            "--function",
            "notifier",
        ],
        vec!["events", "purge", "--yes", "--events-dlq-url", events_dlq],
        BLOCK.to_vec(),
        vec!["clients", "unblock", "203.0.113.9"],
        vec!["clients", "reset", "203.0.113.9", "--yes"],
        vec!["keys", "create", "ci"],
        vec!["keys", "rotate", "ci"],
        vec!["keys", "revoke", "ci"],
        vec!["networks", "import", "hosting", cidrs.as_str()],
        vec!["networks", "remove", "hosting"],
        vec!["pipelines", "flush", "some-pipeline", "--yes"],
    ]
    .into_iter()
    .map(|line| line.into_iter().map(str::to_string).collect())
    .collect()
}

fn run(stack: &Stack, env: &[(&str, &str)], line: &[String]) -> Run {
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    let mut env = env.to_vec();
    env.push(("CLIENT_KEY_SECRET", "0123456789abcdef0123456789abcdef"));
    ops_with(stack, &env, &args)
}

#[tokio::test]
async fn a_flag_beats_a_stale_variable_and_the_target_is_printed_first() {
    let stack = Stack::new().await;
    let events_dlq = stack.queue("events-dlq").await;
    let stale = [("TABLE_NAME", STALE_TABLE)];
    for line in writing_commands(&events_dlq) {
        let mut flagged = vec!["--table-name".to_string(), stack.table_name.clone()];
        flagged.extend(line.iter().cloned());
        let ran = run(&stack, &stale, &flagged);
        let shown = line.join(" ");
        assert_ne!(ran.code, 2, "{shown}: {}", ran.stderr);
        let first = ran.stderr.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("acting on the "),
            "{shown}: {}",
            ran.stderr
        );
        assert!(!ran.stderr.contains(STALE_TABLE), "{shown}: {}", ran.stderr);
        if line[0] != "dlq" && line[0] != "events" {
            assert!(
                ran.stderr.contains(&format!(
                    "acting on the table {} (from --table-name)",
                    stack.table_name
                )),
                "{shown}: {}",
                ran.stderr
            );
        }
    }
    // What they did happened in the flag's table: the key and the group
    // exist there (created, then revoked or removed; the key is listed).
    let keys = Table::new(stack.dynamodb.clone(), &stack.table_name)
        .keys()
        .list()
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
}

#[tokio::test]
async fn a_variable_and_the_outputs_file_that_disagree_are_refused_naming_both() {
    let stack = Stack::new().await;
    let dir = std::env::temp_dir().join(unique("ops-targets"));
    std::fs::create_dir_all(&dir).unwrap();
    let outputs = dir.join("outputs.json");
    let events_dlq = format!("{}-events", stack.queues.dlq_url);
    std::fs::write(
        &outputs,
        serde_json::json!({
            "table_name": {"value": stack.table_name, "type": "string", "sensitive": false},
            "queue_url": {"value": stack.queues.queue_url, "type": "string", "sensitive": false},
            "dlq_url": {"value": stack.queues.dlq_url, "type": "string", "sensitive": false},
            "events_dlq_url": {"value": events_dlq, "type": "string", "sensitive": false},
            "notifier_function_name": {"value": "notifier", "type": "string", "sensitive": false},
        })
        .to_string(),
    )
    .unwrap();
    let file = outputs.display().to_string();
    let stale_url = "http://127.0.0.1:9/123456789012/other-stack";
    let stale = [
        ("TABLE_NAME", STALE_TABLE),
        ("DLQ_URL", stale_url),
        ("QUEUE_URL", stale_url),
        ("EVENTS_DLQ_URL", stale_url),
    ];
    for line in writing_commands(&events_dlq) {
        // The events commands name their queue by flag above; here the
        // file and the variable decide, so the flag goes.
        let line: Vec<String> = match line.iter().position(|a| a == "--events-dlq-url") {
            Some(at) => [&line[..at], &line[at + 2..]].concat(),
            None => line,
        };
        let mut given = vec!["--terraform-outputs".to_string(), file.clone()];
        given.extend(line.iter().cloned());
        let ran = run(&stack, &stale, &given);
        let shown = line.join(" ");
        assert_eq!(ran.code, 2, "{shown}: {} {}", ran.stdout, ran.stderr);
        assert!(!ran.stderr.contains("acting on"), "{shown}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("nothing was touched") && ran.stderr.contains(&file),
            "{shown}: {}",
            ran.stderr
        );
        assert!(
            ran.stderr.contains(STALE_TABLE) || ran.stderr.contains(stale_url),
            "{shown}: {}",
            ran.stderr
        );
    }
    // Nothing reached the file's table.
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    assert!(table.keys().list().await.unwrap().is_empty());
    // With the variables unset, the file decides, and says so.
    let ran = Run::from(
        common::ops_command(
            &stack,
            &[("CLIENT_KEY_SECRET", "0123456789abcdef0123456789abcdef")],
            &[&["--terraform-outputs", file.as_str()][..], &BLOCK[..]].concat(),
        )
        .env_remove("TABLE_NAME")
        .output()
        .expect("run trigger-ops"),
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "acting on the table {} (from the terraform outputs {file})",
            stack.table_name
        )),
        "{}",
        ran.stderr
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
