//! `trigger-ops networks import|list|remove` against DynamoDB Local: each
//! published shape (tests/data/network-groups) read and stored, what is
//! stored read back as the ingress reads it, and bad files refused before
//! anything is written.

mod common;

use common::{ops, ops_with};
use shared::aws::table::Table;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use testkit::Stack;

fn sample(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/network-groups")
        .join(name)
        .display()
        .to_string()
}

async fn matcher_of(stack: &Stack, names: &[&str]) -> shared::rules::network_groups::Matcher {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let loaded = Table::new(stack.dynamodb.clone(), &stack.table_name)
        .network_groups()
        .load(&names, &BTreeMap::new())
        .await
        .unwrap();
    shared::rules::network_groups::Matcher::new(&loaded.changed)
}

#[tokio::test]
async fn each_published_shape_is_imported_and_read_back_as_the_ingress_reads_it() {
    let stack = Stack::new().await;
    for (group, file, networks, v4, v6) in [
        ("aws", "aws-ip-ranges.json", 10, 6, 2),
        ("gcp", "google-cloud.json", 5, 3, 2),
        ("oracle", "oracle-public_ip_ranges.json", 4, 3, 0),
        ("hosting", "cidrs.txt", 5, 3, 1),
    ] {
        let run = ops_with(
            &stack,
            &[("NETWORK_QUOTA_LIMITS", "group:aws=30")],
            &["--json", "networks", "import", group, &sample(file)],
        );
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let imported = run.json();
        assert_eq!(imported["table"], stack.table_name.as_str());
        assert_eq!(imported["group"]["networks"], networks, "{file}");
        assert_eq!(imported["group"]["v4"], v4, "{file}");
        assert_eq!(imported["group"]["v6"], v6, "{file}");
        assert_eq!(imported["group"]["source"], file);
        assert_eq!(
            imported["level"],
            if group == "aws" {
                serde_json::json!(30)
            } else {
                serde_json::Value::Null
            }
        );
    }
    let matcher = matcher_of(&stack, &["aws", "gcp", "oracle", "hosting"]).await;
    for (address, groups) in [
        ("3.5.141.7", vec!["aws"]),
        ("35.167.255.255", vec!["aws"]),
        ("2600:1f14:8::1", vec!["aws"]),
        ("34.35.1.1", vec!["gcp"]),
        ("2600:1901:8100::9", vec!["gcp"]),
        ("129.146.11.1", vec!["oracle"]),
        ("203.0.113.200", vec!["hosting"]),
        ("192.0.2.77", vec!["hosting"]),
        ("192.0.2.78", vec![]),
        ("2001:db8:4fff::1", vec!["hosting"]),
        ("8.8.8.8", vec![]),
    ] {
        let address: IpAddr = address.parse().unwrap();
        assert_eq!(matcher.groups_of(address), groups, "{address}");
    }
    let text = ops(&stack, &["networks", "list"]).stdout;
    assert!(text.starts_with("GROUP "), "{text}");
    assert_eq!(text.lines().count(), 5, "{text}");
    let listed = ops_with(
        &stack,
        &[("NETWORK_QUOTA_LIMITS", "group:gcp=10")],
        &["--json", "networks", "list"],
    )
    .json();
    let names: Vec<&str> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aws", "gcp", "hosting", "oracle"]);
    assert_eq!(listed["groups"][1]["level"], 10);
    assert_eq!(listed["groups"][1]["format"], "google-cloud");
}

#[tokio::test]
async fn a_new_import_replaces_the_group_whole_and_remove_ends_it() {
    let stack = Stack::new().await;
    let dir = std::env::temp_dir().join(testkit::unique("groups"));
    std::fs::create_dir_all(&dir).unwrap();
    let first = dir.join("first.txt");
    std::fs::write(&first, "198.51.100.0/24\n").unwrap();
    let second = dir.join("second.txt");
    std::fs::write(&second, "203.0.113.0/24\n").unwrap();
    let run = ops(
        &stack,
        &["networks", "import", "hosting", first.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!(
            "network group hosting on table {}",
            stack.table_name
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("no level yet"), "{}", run.stdout);
    let run = ops(
        &stack,
        &["networks", "import", "hosting", second.to_str().unwrap()],
    );
    assert!(
        run.stdout.contains("it replaces the import of"),
        "{}",
        run.stdout
    );
    let matcher = matcher_of(&stack, &["hosting"]).await;
    assert!(matcher
        .groups_of("198.51.100.1".parse().unwrap())
        .is_empty());
    assert_eq!(
        matcher.groups_of("203.0.113.1".parse().unwrap()),
        ["hosting"]
    );
    // The first version's pieces are gone: one piece item and the index.
    let items = stack.scan_items().await;
    let pieces = items
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("netgroup#hosting#"))
        .count();
    assert_eq!(pieces, 1);
    let removed = ops(&stack, &["networks", "remove", "hosting"]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(removed.stdout.starts_with("removed network group hosting"));
    assert!(matcher_of(&stack, &["hosting"]).await.is_empty());
    assert_eq!(
        stack
            .scan_items()
            .await
            .iter()
            .filter(|i| i["pk"].as_s().unwrap() != "netgroup#")
            .count(),
        0,
        "nothing of it is left"
    );
    let again = ops(&stack, &["networks", "remove", "hosting"]);
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("no network group named hosting"));
}

#[tokio::test]
async fn bad_files_and_names_are_refused_before_anything_is_written() {
    let stack = Stack::new().await;
    let dir = std::env::temp_dir().join(testkit::unique("bad-groups"));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let everyone = write("everyone.txt", b"198.51.100.0/24\n0.0.0.0/0\n");
    let garbage = write("garbage.bin", &[0xff, 0xfe, 0x00, 0x01]);
    let empty = write("empty.txt", b"# nothing here\n");
    let shape = write("shape.json", br#"{"prefixes": [{"ip_prefix": 24}]}"#);
    let huge = write("huge.txt", &vec![b'#'; 33 * 1024 * 1024]);
    for (args, says) in [
        (
            vec!["networks", "import", "ok", everyone.as_str()],
            "line 2",
        ),
        (
            vec!["networks", "import", "ok", garbage.as_str()],
            "not UTF-8",
        ),
        (
            vec!["networks", "import", "ok", empty.as_str()],
            "no network",
        ),
        (
            vec!["networks", "import", "ok", shape.as_str()],
            "ip_prefix",
        ),
        (
            vec!["networks", "import", "ok", huge.as_str()],
            "more than a group file may have",
        ),
        (
            vec!["networks", "import", "ok", "/nonexistent/ranges.json"],
            "No such file",
        ),
        (
            vec!["networks", "import", "Bad Name", empty.as_str()],
            "not a group name",
        ),
        (vec!["networks", "remove", "../x"], "not a group name"),
    ] {
        let run = ops(&stack, &args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    assert!(stack.scan_items().await.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
