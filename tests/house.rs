//! The house: every room fits on a screen. No function of the product, the
//! operators' tool, the local stack or the benchmarks runs past
//! [`LIMIT`] lines (tests excepted); a longer one is an orchestration to
//! cut into steps, or a decision to move into `shared/src/rules/`
//! (README, "Layout").
//!
//! The tree is read as Rust (syn): a function is measured from its `fn` to
//! its closing brace; `#[cfg(test)]` modules and `#[test]` functions are
//! left out, and so are `tests/` folders.

use proc_macro2::Span;
use std::path::{Path, PathBuf};
use syn::visit::{self, Visit};
use syn::{Attribute, Block, ImplItemFn, ItemFn, ItemMod, Signature, TraitItemFn};

/// A screen.
const LIMIT: usize = 80;

/// The folders whose code is measured, from the workspace root.
const ROOTS: [&str; 4] = ["shared", "functions", "ops", "tools"];

/// A function too long: where, its name, its lines.
#[derive(Debug, PartialEq, Eq)]
struct Long {
    at: String,
    name: String,
    lines: usize,
}

struct Measure<'a> {
    file: &'a str,
    every: Vec<Long>,
}

/// Test code by its attributes: `#[test]`, `#[tokio::test]`, `#[cfg(test)]`.
fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        path.segments.last().is_some_and(|s| s.ident == "test")
            || (path.is_ident("cfg")
                && attr
                    .parse_args::<syn::Ident>()
                    .is_ok_and(|ident| ident == "test"))
    })
}

fn line(span: Span) -> usize {
    span.start().line
}

impl Measure<'_> {
    fn measure(&mut self, attrs: &[Attribute], sig: &Signature, block: &Block) {
        if is_test(attrs) {
            return;
        }
        let first = line(sig.fn_token.span);
        let last = block.brace_token.span.close().end().line;
        self.every.push(Long {
            at: format!("{}:{first}", self.file),
            name: sig.ident.to_string(),
            lines: last + 1 - first,
        });
    }
}

impl<'ast> Visit<'ast> for Measure<'_> {
    fn visit_item_mod(&mut self, item: &'ast ItemMod) {
        if !is_test(&item.attrs) {
            visit::visit_item_mod(self, item);
        }
    }

    fn visit_item_fn(&mut self, item: &'ast ItemFn) {
        self.measure(&item.attrs, &item.sig, &item.block);
        if !is_test(&item.attrs) {
            visit::visit_item_fn(self, item);
        }
    }

    fn visit_impl_item_fn(&mut self, item: &'ast ImplItemFn) {
        self.measure(&item.attrs, &item.sig, &item.block);
        if !is_test(&item.attrs) {
            visit::visit_impl_item_fn(self, item);
        }
    }

    fn visit_trait_item_fn(&mut self, item: &'ast TraitItemFn) {
        if let Some(block) = &item.default {
            self.measure(&item.attrs, &item.sig, block);
        }
        visit::visit_trait_item_fn(self, item);
    }
}

/// Every function of one source text, with its length in lines.
fn functions(file: &str, text: &str) -> Vec<Long> {
    let parsed = syn::parse_file(text).unwrap_or_else(|e| panic!("{file}: not Rust: {e}"));
    let mut measure = Measure {
        file,
        every: Vec::new(),
    };
    measure.visit_file(&parsed);
    measure.every
}

/// Every `.rs` file below `dir`, but in `tests/` and `target/` folders.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "tests" | "target" | "node_modules") {
                sources(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_function_runs_past_a_screen() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut files = Vec::new();
    for dir in ROOTS {
        sources(&root.join(dir), &mut files);
    }
    files.sort();
    assert!(
        files.len() > 100,
        "the tree was not found: {} files",
        files.len()
    );
    let mut every = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        every.extend(functions(&shown, &text));
    }
    assert!(
        every.len() > 500,
        "too few functions found: {}",
        every.len()
    );
    every.sort_by(|a, b| b.lines.cmp(&a.lines).then(a.at.cmp(&b.at)));
    let longest: Vec<String> = every
        .iter()
        .take(5)
        .map(|f| format!("{:>4} {} {}", f.lines, f.at, f.name))
        .collect();
    println!(
        "{} functions; the longest:\n{}",
        every.len(),
        longest.join("\n")
    );
    let long: Vec<&Long> = every.iter().filter(|f| f.lines > LIMIT).collect();
    assert!(
        long.is_empty(),
        "functions past {LIMIT} lines (cut them into steps):\n{}",
        long.iter()
            .map(|f| format!("{:>4} {} {}", f.lines, f.at, f.name))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_measure_counts_from_fn_to_the_closing_brace_and_leaves_tests_out() {
    let body = "    let x = 1;\n".repeat(LIMIT - 1);
    let text = format!(
        "/// Long.\npub async fn long() {{\n{body}}}\n\
         fn short() -> u8 {{\n    1\n}}\n\
         impl A {{\n    fn method(&self) {{\n{body}    }}\n}}\n\
         #[cfg(test)]\nmod tests {{\n    fn helper() {{\n{body}    }}\n}}\n\
         #[tokio::test]\nasync fn a_test() {{\n{body}}}\n"
    );
    let found = functions("f.rs", &text);
    let named: Vec<(&str, usize)> = found.iter().map(|f| (f.name.as_str(), f.lines)).collect();
    assert_eq!(
        named,
        [("long", LIMIT + 1), ("short", 3), ("method", LIMIT + 1)]
    );
    assert_eq!(found[0].at, "f.rs:2");
}
