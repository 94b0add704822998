//! A bad configuration stops the notifier's start with one message naming
//! the variable (the Runtime API report itself is tested with the ingress,
//! which shares `shared::lambda::fail_init`).

use std::process::Command;

fn start(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_notifier"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run the notifier binary");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn missing_and_malformed_variables_are_named() {
    let (code, stderr) = start(&[("TABLE_NAME", "t")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("TOPIC_ARN is required"), "{stderr}");
    let (code, stderr) = start(&[
        ("TABLE_NAME", "t"),
        ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:on-call"),
        ("NOTIFY_STATES", "SUCCEEDED,EXPLODED"),
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("NOTIFY_STATES is malformed"), "{stderr}");
    assert!(stderr.contains("EXPLODED"), "{stderr}");
}
