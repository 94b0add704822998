//! The bench binaries start and explain themselves (they are run by
//! scripts/bench, not by the tests; this also builds them with the tests).

use std::process::Command;

#[test]
fn each_bench_binary_explains_itself() {
    for (binary, words) in [
        (env!("CARGO_BIN_EXE_flood"), "--scenario"),
        (env!("CARGO_BIN_EXE_lockout"), "--attacker"),
        (env!("CARGO_BIN_EXE_lambda-bench"), "--binaries"),
    ] {
        let output = Command::new(binary).arg("--help").output().expect("runs");
        assert!(output.status.success(), "{binary}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains(words), "{binary}: {text}");
    }
}
