//! The command line of `trigger-local` (and of its alias `trigger-ops local`).

use clap::{Args, Parser};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "trigger-local",
    version,
    about = "Run the whole system on this machine against AWS engines on loopback (scripts/dev starts them)",
    after_help = "\
Needs AWS_ENDPOINT_URL (moto) and AWS_ENDPOINT_URL_DYNAMODB (DynamoDB Local;
moto when unset) pointing at engines on loopback; it refuses anything else. Creates the table, queues, topic, rule and demo pipelines named
from --prefix (a restart finds them again), serves the HTTP API, runs the
worker and the notifier as the Lambdas run, and plays CodePipeline's state
changes. The functions' settings come from the environment as in docs/reference/configuration.md
(QUOTA_LIMIT, MAX_ATTEMPTS, NOTIFY_STATES, PIPELINES, ...).

Examples:
  scripts/dev
  trigger-local --port 3000 --outputs target/local/outputs.json
  trigger-local --fault codepipeline-unreachable   # rehearse the DLQ
  trigger-local --metrics                          # the EMF lines, live"
)]
pub struct Cli {
    #[command(flatten)]
    pub args: LocalArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Loopback port of the HTTP API.
    #[arg(long, env = "PORT", default_value_t = 3000)]
    pub port: u16,
    /// Prefix of every resource's name.
    #[arg(long, default_value = "pipeline-trigger-local")]
    pub prefix: String,
    /// CodePipeline names whose runs fail, comma separated [default: demo-broken when PIPELINES is not set].
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub failing: Option<Vec<String>>,
    /// How long a run takes from STARTED to its outcome.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub run_time: Duration,
    /// Inject a fault to rehearse with.
    #[arg(long, value_enum)]
    pub fault: Option<crate::stack::Fault>,
    /// Write the resources as `terraform output -json` does, for `--terraform-outputs`.
    #[arg(long, value_name = "FILE")]
    pub outputs: Option<PathBuf>,
    /// Serve the API and the page under /NAME/, as a REST API stage does (prod).
    #[arg(long, value_name = "NAME", value_parser = parse_stage)]
    pub stage: Option<String>,
    /// Print each metric line (Embedded Metric Format) the functions would
    /// publish, as it happens; a summary is printed on Ctrl-C either way.
    #[arg(long)]
    pub metrics: bool,
    /// Also start a run of the first pipeline every DURATION as a push to
    /// its source would (not the worker): e-mailed at once as not a public
    /// trigger's, beside the public triggers.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub push_every: Option<Duration>,
    /// API Gateway's route throttles and the WAF's per-address rate rules,
    /// with Terraform's numbers (on), or none (off); the edge's answers in
    /// the product's voice (404, 405, 413, 502) stay either way.
    #[arg(long, value_enum, default_value_t = EdgeSwitch::On)]
    pub edge: EdgeSwitch,
}

/// Whether the local gateway throttles and rate-limits as deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EdgeSwitch {
    On,
    Off,
}

impl EdgeSwitch {
    pub fn limits(self) -> crate::edge::Limits {
        match self {
            Self::On => crate::edge::Limits::terraform_defaults(),
            Self::Off => crate::edge::Limits::off(),
        }
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration like 3s, 500ms or 1m)"))
}

/// A stage name as API Gateway allows: 1 to 128 of A-Z a-z 0-9 - _.
fn parse_stage(text: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(text.to_string())
    } else {
        Err("expected a stage name: 1 to 128 of A-Z a-z 0-9 - _".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn local_flags_parse() {
        let cli = Cli::try_parse_from([
            "trigger-local",
            "--port",
            "3001",
            "--failing",
            "a,b",
            "--run-time",
            "500ms",
            "--fault",
            "codepipeline-unreachable",
            "--edge",
            "off",
        ])
        .unwrap();
        {
            let args = cli.args;
            assert_eq!(args.edge, EdgeSwitch::Off);
            assert_eq!(args.port, 3001);
            assert_eq!(args.failing, Some(vec!["a".to_string(), "b".to_string()]));
            assert_eq!(args.run_time, Duration::from_millis(500));
            assert_eq!(
                args.fault,
                Some(crate::stack::Fault::CodepipelineUnreachable)
            );
        }
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            vec!["--port", "70000"],
            vec!["--run-time", "soon"],
            vec!["--fault", "meteor"],
            vec!["--stage", "a/b"],
            vec!["--edge", "maybe"],
        ] {
            let args = std::iter::once("trigger-local").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
