//! The command line, as docs/reference/operators-tool.md describes it.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "trigger-ops",
    version,
    about = "Operate pipeline-trigger: the dead-letter queues, the trigger ledger, clients; run the whole system locally",
    after_help = "\
Queue URLs and the table come from the flags, else QUEUE_URL / DLQ_URL / TABLE_NAME,
else --terraform-outputs (the JSON of `terraform output -json`).
AWS credentials and region come from the usual AWS settings. --local works on
the stack scripts/dev runs, with nothing exported.

Examples:
  trigger-ops dlq stats
  trigger-ops --local triggers list --since 10m
  trigger-ops --terraform-outputs outputs.json dlq peek --max 20
  trigger-ops dlq replay --dry-run --error-code PipelineNotFound
  trigger-ops dlq replay --max 50 --rate 2
  trigger-ops dlq purge --yes --older-than 7d
  trigger-ops local --port 3000   # runs trigger-local"
)]
pub struct Cli {
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Default, Args)]
pub struct TargetArgs {
    /// The work queue's URL [default: $QUEUE_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub queue_url: Option<String>,
    /// The dead-letter queue's URL [default: $DLQ_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub dlq_url: Option<String>,
    /// The DynamoDB table [default: $TABLE_NAME].
    #[arg(long, global = true, value_name = "NAME")]
    pub table_name: Option<String>,
    /// The notifier's dead-letter queue's URL [default: $EVENTS_DLQ_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub events_dlq_url: Option<String>,
    /// The notifier function `events replay` invokes [default: $NOTIFIER_FUNCTION].
    #[arg(long, global = true, value_name = "NAME")]
    pub function: Option<String>,
    /// Read the names above from `terraform output -json` saved to FILE.
    #[arg(long, global = true, value_name = "FILE")]
    pub terraform_outputs: Option<PathBuf>,
    /// Work on the stack scripts/dev runs: endpoints, region, credentials,
    /// every resource and the client-key secret from target/local/outputs.json
    /// (run from the repository root).
    #[arg(long, global = true)]
    pub local: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The dead-letter queue of the work queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The notifier's dead-letter queue: pipeline events it could not handle.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The trigger ledger: recent triggers, and one trigger with its run.
    #[command(
        subcommand,
        after_help = "\
Examples:
  trigger-ops triggers list --since 6h --status failed
  trigger-ops triggers list --pipeline app --json
  trigger-ops triggers show 01KAKXR9VJ4N6P8Q2R3S4T5V6W"
    )]
    Triggers(TriggersCommand),
    /// A client's quota and blocks: look up, free, block, unblock (keyed as the ingress keys it).
    #[command(after_help = "\
ADDRESS is keyed with CLIENT_KEY_SECRET: from the environment, or with
--secret-from-function from the deployed ingress itself. QUOTA_LIMIT and
QUOTA_WINDOW default as the ingress's do.

Examples:
  trigger-ops clients show 203.0.113.7
  trigger-ops clients reset 203.0.113.7 --yes
  trigger-ops clients block 203.0.113.0/24 --for 7d --reason \"scripted flood, ticket 4711\"
  trigger-ops clients unblock 203.0.113.0/24
  trigger-ops clients --secret-from-function pipeline-trigger-ingress show 203.0.113.7")]
    Clients(ClientsArgs),
    /// Trigger keys, the keyed lane: make one (shown once), list, revoke, rotate.
    #[command(
        subcommand,
        after_help = "\
Only a key's SHA-256 is kept: a key is shown once, when made or rotated.
Examples:
  trigger-ops keys create ci-deploy --pipeline app --quota 50/1d
  trigger-ops keys list
  trigger-ops keys rotate ci-deploy --overlap 1d
  trigger-ops keys revoke ci-deploy"
    )]
    Keys(KeysCommand),
    /// Network groups: named address ranges (a cloud's published ranges) that share one quota.
    #[command(
        subcommand,
        after_help = "\
A group is a quota level once NETWORK_QUOTA_LIMITS names it (group:NAME=N, the
same window as every level): every address in it shares N. The ingress picks
up an import or a removal within a minute.

Examples:
  curl -sO https://ip-ranges.amazonaws.com/ip-ranges.json
  trigger-ops networks import aws ip-ranges.json
  trigger-ops networks import gcp cloud.json
  trigger-ops networks import oracle public_ip_ranges.json
  trigger-ops networks import partners partners.txt     # one CIDR a line
  trigger-ops networks list
  trigger-ops networks remove partners"
    )]
    Networks(NetworksCommand),
    /// A pipeline's lane: what runs, what waits (per lane), the last hour; clear a flood.
    #[command(
        subcommand,
        after_help = "\
NAME is a public name (app) or a CodePipeline name. Public names come from
--terraform-outputs (output pipelines), else from the last hour's triggers.

Examples:
  trigger-ops pipelines show app
  trigger-ops pipelines flush app --yes                # the anonymous runs waiting
  trigger-ops pipelines flush app --yes --lane all     # the keyed ones too"
    )]
    Pipelines(PipelinesCommand),
    /// The client-key secret: its rotation (what to give Terraform, in the right order) and status.
    #[command(
        subcommand,
        after_help = "\
A rotation keeps the previous secret for an overlap: each client is charged and
refused under both secrets' keys until then, so nobody gets a fresh quota and no
block lifts. The overlap is at least QUOTA_WINDOW and outlasts every block in
force; no rotation starts while one runs (docs/operating.md).

Examples:
  trigger-ops secret rotate                 # prints the two Terraform variables
  trigger-ops secret rotate --overlap 14d
  trigger-ops secret status --secret-from-function pipeline-trigger-ingress"
    )]
    Secret(SecretCommand),
    /// The account's Lambda concurrency, and whether a deployment's reservations fit (scripts/deploy asks before it applies).
    #[command(after_help = "\
AWS keeps at least 100 units of concurrency unreserved in every account; a new
account often has a quota of 10 or 50, so it can reserve none. Exit status 1
when the reservation does not fit.

Examples:
  trigger-ops account
  trigger-ops account --reserve 27
  terraform show -json tfplan > plan.json && trigger-ops account --plan plan.json")]
    Account {
        /// Would reserving this much more concurrency fit?
        #[arg(
            long,
            value_name = "N",
            conflicts_with = "plan",
            allow_negative_numbers = true
        )]
        reserve: Option<i64>,
        /// Would this plan's reservations fit? (`terraform show -json PLAN` saved to FILE)
        #[arg(long, value_name = "FILE")]
        plan: Option<PathBuf>,
    },
    /// Run the whole system on this machine: `trigger-local` (next to this binary) with these arguments.
    #[command(
        disable_help_flag = true,
        after_help = "Everything after `local` goes to trigger-local; `trigger-ops local --help` shows its options."
    )]
    Local {
        /// The arguments of trigger-local.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworksCommand {
    /// Make (or replace) the group NAME from FILE: AWS ip-ranges.json, Google cloud.json,
    /// Oracle public_ip_ranges.json, or one network a line.
    Import {
        /// 1 to 32 of a-z 0-9 -, starting with a letter or digit.
        name: String,
        file: PathBuf,
    },
    /// Every group: its networks, ranges, where it came from, when, and its level.
    List,
    /// Remove the group NAME: its addresses no longer share its quota.
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// The run in progress, the pending runs with their lanes and ages, the last
    /// hour's acceptances and refusals, the busiest network keys.
    Show {
        /// A public name or a CodePipeline name.
        name: String,
    },
    /// End every pending run of a lane as refused (flushed): never started, no
    /// quota given back. Only with --yes.
    Flush {
        name: String,
        /// Flush for good (without it nothing changes).
        #[arg(long)]
        yes: bool,
        /// Which pending runs: the anonymous lane's, or all (keyed ones too).
        #[arg(long, value_enum, default_value_t = FlushLane::Anonymous)]
        lane: FlushLane,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FlushLane {
    Anonymous,
    All,
}

#[derive(Debug, Subcommand)]
pub enum TriggersCommand {
    /// Triggers requested since a time, newest first.
    List {
        /// How far back (90m, 6h, 7d).
        #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_duration)]
        since: Duration,
        /// Only this pipeline (its public name or its CodePipeline name).
        #[arg(long, value_name = "P")]
        pipeline: Option<String>,
        /// Only this status (queued, started, succeeded, failed, stopped, superseded, dead_lettered).
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One trigger: its record, its run, and the triggers coalesced with it.
    Show {
        /// The trigger id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// What to set for a rotation: client_key_generation one up, and until when the previous secret counts.
    Rotate {
        /// How long the previous secret counts (at least QUOTA_WINDOW, the default).
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        overlap: Option<std::time::Duration>,
    },
    /// The generation, whether an overlap runs, and whether a given secret is the ingress's.
    Status {
        /// Check the CLIENT_KEY_SECRET of this deployed ingress function.
        #[arg(long, value_name = "FUNCTION")]
        secret_from_function: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ClientsArgs {
    /// Take CLIENT_KEY_SECRET from this deployed ingress function's
    /// configuration (Terraform output ingress_function_name) instead of the environment.
    #[arg(long, global = true, value_name = "FUNCTION")]
    pub secret_from_function: Option<String>,
    #[command(subcommand)]
    pub command: ClientsCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key for NAME (a person, a CI job); it is printed once.
    Create {
        /// 1 to 64 of a-z 0-9 . _ -, starting with a letter or digit.
        name: String,
        /// A public pipeline it may trigger (again for more); none given: every one.
        #[arg(long = "pipeline", value_name = "P")]
        pipelines: Vec<String>,
        /// Its own quota: N per DURATION [default: 20/1d].
        #[arg(long, value_name = "N/DURATION", value_parser = shared::rules::keys::parse_key_quota)]
        quota: Option<shared::rules::quota::QuotaPolicy>,
    },
    /// Every key: name, pipelines, quota, created, last used, uses (never the key).
    List,
    /// Refuse a key from now on (a warm ingress within REFUSAL_MEMORY for its 401; the
    /// admission at once).
    Revoke { name: String },
    /// A new key for NAME, printed once; the old one keeps working for the overlap. The
    /// quota stays.
    Rotate {
        name: String,
        /// How long the old key keeps working [default: 1d].
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        overlap: Option<Duration>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// The client's quota (slots taken, what is left, when the next frees) and any block.
    Show {
        /// An IPv4 or IPv6 address.
        address: String,
    },
    /// Free a quota (only with --yes): an ADDRESS's own, or a network's (a PREFIX that is a
    /// level of NETWORK_QUOTA_LIMITS, like 2001:db8:1::/48).
    Reset {
        #[arg(value_name = "ADDRESS|PREFIX")]
        address: String,
        /// Really free it.
        #[arg(long)]
        yes: bool,
    },
    /// The busiest client and network keys: accepted triggers by key, most first.
    #[command(
        after_help = "Example:\n  trigger-ops clients top --since 1h\n  trigger-ops clients block <KEY> --for 1d --reason \"flood\""
    )]
    Top {
        /// How far back (1h, 1d).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        since: Duration,
        /// How many keys to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Block an address, a prefix (IPv4 /16 to /32, IPv6 /32 to /64) or a client or network
    /// key for a while: 403 `blocked`, no quota taken.
    Block {
        /// An address, a prefix like 203.0.112.0/20 or 2001:db8::/32, or a key from `clients top`.
        target: String,
        /// How long (1h, 7d; at most 365d); the block ends by itself.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
        duration: Duration,
        /// Why, for the other operators (never shown to the client).
        #[arg(long)]
        reason: String,
    },
    /// Lift a block before it ends.
    Unblock { target: String },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Visible, in-flight and delayed counts, and the oldest event's age.
    Stats,
    /// Show the events without consuming them: pipeline, execution, state and why each failed.
    #[command(after_help = "Example:\n  trigger-ops events peek --max 20")]
    Peek {
        /// How many events to show.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max: u32,
    },
    /// Hand each event to the notifier again; delete it only once the notifier accepted it.
    #[command(after_help = "\
The notifier keeps one e-mail per event: an event whose e-mail went out is a
duplicate, not a second e-mail. Ctrl-C finishes the event in flight and stops.
Exits non-zero if any event failed.

Examples:
  trigger-ops events replay --dry-run
  trigger-ops events replay --max 50")]
    Replay {
        /// At most this many events.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        max: Option<u64>,
        /// List what would be replayed; replay nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete every event (only with --yes).
    Purge {
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Visible, in-flight and delayed counts of both queues, and the oldest DLQ message's age.
    #[command(after_help = "Example:\n  trigger-ops dlq stats --json")]
    Stats,
    /// Show the DLQ's messages without consuming them.
    #[command(after_help = "\
Each message is received with a short visibility timeout and released at once,
so it stays on the DLQ (its receive count goes up by one).

Example:
  trigger-ops dlq peek --max 20")]
    Peek {
        /// How many messages to show.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        max: u32,
    },
    /// Move messages back to the work queue: sent first, deleted from the DLQ only once the work queue has them.
    #[command(after_help = "\
Bodies and attributes are unchanged; each trigger record goes back to `queued`.
Ctrl-C finishes the batch in flight and stops. Exits non-zero if any message failed.

Examples:
  trigger-ops dlq replay --dry-run
  trigger-ops dlq replay --max 100 --rate 5 --error-code Throttling
  trigger-ops dlq replay --pipeline enterprise-app-pipeline")]
    Replay(ReplayArgs),
    /// Delete messages from the DLQ for good (only with --yes).
    #[command(after_help = "\
Examples:
  trigger-ops dlq purge --yes
  trigger-ops dlq purge --yes --older-than 14d")]
    Purge {
        /// Really delete.
        #[arg(long)]
        yes: bool,
        /// Only messages first sent longer ago than this (7d, 36h, 90m).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Move at most this many messages.
    #[arg(long)]
    pub max: Option<u64>,
    /// Messages per second, at most.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 10.0, value_parser = parse_rate)]
    pub rate: f64,
    /// List what would move; move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Only messages whose error_code is CODE.
    #[arg(long, value_name = "CODE")]
    pub error_code: Option<String>,
    /// Only messages for this CodePipeline name.
    #[arg(long, value_name = "NAME")]
    pub pipeline: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (expected a duration like 7d, 36h or 90m)"))
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1000.0 => Ok(rate),
        _ => Err("expected a number of messages per second above 0 and at most 1000".into()),
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
    fn local_passes_every_argument_on() {
        // Its own flags, `--help` among them, are trigger-local's to read.
        let given = [
            "--port",
            "3001",
            "--fault",
            "codepipeline-unreachable",
            "--help",
        ];
        let cli = Cli::try_parse_from(["trigger-ops", "local"].into_iter().chain(given)).unwrap();
        match cli.command {
            Command::Local { args } => assert_eq!(args, given),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_parse_and_bad_values_are_refused() {
        let cli = Cli::try_parse_from([
            "trigger-ops",
            "dlq",
            "replay",
            "--max",
            "5",
            "--rate",
            "0.5",
            "--dry-run",
            "--json",
            "--dlq-url",
            "http://x/q",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.targets.dlq_url.as_deref(), Some("http://x/q"));
        match cli.command {
            Command::Dlq(DlqCommand::Replay(args)) => {
                assert_eq!((args.max, args.rate, args.dry_run), (Some(5), 0.5, true))
            }
            other => panic!("{other:?}"),
        }
        for bad in [
            vec!["dlq", "replay", "--rate", "0"],
            vec!["dlq", "replay", "--rate", "fast"],
            vec!["dlq", "replay", "--max", "-1"],
            vec!["dlq", "peek", "--max", "0"],
            vec!["dlq", "purge", "--older-than", "a while"],
            vec!["dlq", "explode"],
        ] {
            let args = std::iter::once("trigger-ops").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
