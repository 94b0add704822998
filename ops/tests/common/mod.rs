//! The operators' tool as an operator runs it: the real binary, configured
//! by environment, against the test's stack.
#![allow(dead_code)]

use serde_json::Value;
use std::process::Command;
use testkit::Stack;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} / {}", self.stdout, self.stderr))
    }
}

/// Runs the binary the way an operator does, configured by environment.
pub fn ops_with(stack: &Stack, env: &[(&str, &str)], args: &[&str]) -> Run {
    let output = ops_command(stack, env, args)
        .output()
        .expect("run trigger-ops");
    Run::from(output)
}

/// The command line [`ops_with`] runs, for a test that signals it.
pub fn ops_command(stack: &Stack, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trigger-ops"));
    command
        .env_clear()
        .envs(testkit::engine_env())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", testkit::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("QUEUE_URL", &stack.queues.queue_url)
        .env("DLQ_URL", &stack.queues.dlq_url)
        .env("TABLE_NAME", &stack.table_name)
        .envs(env.iter().copied())
        .args(args);
    command
}

pub fn ops(stack: &Stack, args: &[&str]) -> Run {
    ops_with(stack, &[], args)
}
