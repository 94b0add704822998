//! Embedded Metric Format lines, checked against the specification's
//! required fields (`testkit::check_emf`).

use serde_json::json;
use shared::rules::metrics::{emf_count, is_valid_namespace, REJECTED, RUNS_STARTED};
use testkit::check_emf;

#[test]
fn a_count_is_a_valid_emf_line_with_its_dimensions() {
    let line = emf_count(
        "PipelineTrigger",
        "ingress",
        REJECTED,
        Some(("Scope", "blocked")),
        1_795_000_000_123,
    );
    let root = check_emf(&line).unwrap();
    assert_eq!(root["Rejected"], 1);
    assert_eq!(root["Scope"], "blocked");
    assert_eq!(root["_aws"]["Timestamp"], 1_795_000_000_123u64);
    assert_eq!(
        root["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function", "Scope"]])
    );
    assert!(!line.contains('\n'), "one line");
    let plain = check_emf(&emf_count("ns", "worker", RUNS_STARTED, None, 1)).unwrap();
    assert_eq!(
        plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        json!([["Function"]])
    );
}

#[test]
fn the_checker_refuses_what_cloudwatch_refuses() {
    for bad in [
        "not json",
        r#"{"Accepted": 1}"#,
        r#"{"_aws": {"Timestamp": "now", "CloudWatchMetrics": []}}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["Function"]], "Metrics": [{"Name": "A", "Unit": "Count"}]}]}, "A": 1}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [[]], "Metrics": [{"Name": "A", "Unit": "Count"}]}]}, "Function": "f", "A": 1}"#,
        r#"{"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["Function"]], "Metrics": [{"Name": "A", "Unit": "Count"}]}]}, "Function": "f", "A": "1"}"#,
    ] {
        assert!(check_emf(bad).is_err(), "{bad}");
    }
}

#[test]
fn namespaces_follow_cloudwatch_rules() {
    assert!(is_valid_namespace("PipelineTrigger"));
    assert!(is_valid_namespace("team/pipeline-trigger.prod"));
    for bad in [
        "",
        ":x",
        "has space",
        &"n".repeat(256),
        "AWS/Lambda",
        "caf\u{e9}",
    ] {
        assert!(!is_valid_namespace(bad), "{bad}");
    }
}
