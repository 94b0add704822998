//! The layout of `shared/src` is part of the design: `rules/` holds the pure
//! decisions, and stays pure. Every file there is read as text and must
//! name no SDK, Runtime API or async-runtime item, and import nothing from
//! the adapters, the plumbing or the configuration (which import the rules:
//! an import the other way would be a circle).

use std::path::{Path, PathBuf};

/// What a pure rule never names.
const FORBIDDEN: [&str; 7] = [
    "aws_sdk_",
    "aws_smithy_",
    "aws_config",
    "tokio",
    "lambda_runtime",
    "crate::aws",
    "crate::lambda",
];

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/rules")
}

/// Every `.rs` file under `dir`, subfolders included (`rules/http/…`), so a
/// room moved into a folder is never silently left unchecked.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The forbidden names a source text uses, with their line numbers.
/// Comments count too: a rule's documentation should not send a reader to
/// an adapter either.
fn impurities(text: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        for name in FORBIDDEN {
            if line.contains(name) {
                found.push((number + 1, name));
            }
        }
        if line.contains("crate::config") {
            found.push((number + 1, "crate::config"));
        }
    }
    found
}

#[test]
fn every_rule_is_pure() {
    let files = rust_files(&rules_dir());
    assert!(files.len() >= 10, "rules/ holds {files:?}");
    let nested = rules_dir().join("http").join("trigger_api.rs");
    assert!(
        files.contains(&nested),
        "the files of rules/http/ are read too: {files:?}"
    );
    let mut errors = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a rules file");
        for (line, name) in impurities(&text) {
            errors.push(format!("{}:{line}: names {name}", file.display()));
        }
    }
    assert!(
        errors.is_empty(),
        "rules/ must stay pure (no I/O, no SDK types, no async):\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_is_for() {
    assert_eq!(
        impurities("use aws_sdk_dynamodb::types::AttributeValue;\nfn f() {}\n"),
        [(1, "aws_sdk_")]
    );
    assert_eq!(
        impurities("fn f() {}\nasync fn g() { tokio::time::sleep(d).await }\n"),
        [(2, "tokio")]
    );
    assert_eq!(
        impurities("use crate::config::Env;"),
        [(1, "crate::config")]
    );
    assert!(
        impurities("use super::quota::QuotaPolicy;\nuse crate::clock::EpochMillis;").is_empty()
    );
}

#[test]
fn files_in_subfolders_are_found() {
    let dir = std::env::temp_dir().join(format!("layout-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("inner")).expect("a temporary folder");
    std::fs::write(dir.join("a.rs"), "").expect("a file");
    std::fs::write(dir.join("inner").join("b.rs"), "use tokio::x;").expect("a file");
    std::fs::write(dir.join("notes.md"), "").expect("a file");
    let found = rust_files(&dir);
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert_eq!(found, [dir.join("a.rs"), dir.join("inner").join("b.rs")]);
}
