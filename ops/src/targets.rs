//! Which queues and table the tool works on: a flag always wins; else the
//! environment (`QUEUE_URL`, `DLQ_URL`, `TABLE_NAME`, …) or the JSON of
//! `terraform output -json` (`--terraform-outputs`, `--local`). When both
//! of those name a target and disagree, a command that needs it refuses and
//! names both: a stale variable never silently wins over a file given on
//! the command line. Each target remembers where it came from, so a
//! command that changes something says what it acts on first.

use crate::cli::{
    ClientsArgs, ClientsCommand, Command, DlqCommand, EventsCommand, KeysCommand, NetworksCommand,
    PipelinesCommand, TargetArgs,
};
use crate::error::OpsError;
use shared::config::{ConfigError, Env};

/// The names Terraform's outputs use.
pub const OUTPUT_QUEUE_URL: &str = "queue_url";
pub const OUTPUT_DLQ_URL: &str = "dlq_url";
pub const OUTPUT_TABLE_NAME: &str = "table_name";
pub const OUTPUT_EVENTS_DLQ_URL: &str = "events_dlq_url";
pub const OUTPUT_NOTIFIER_FUNCTION: &str = "notifier_function_name";

/// A `terraform output -json` file larger than this is not one.
const MAX_OUTPUTS_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub queue_url: Option<String>,
    pub dlq_url: Option<String>,
    pub table_name: Option<String>,
    pub events_dlq_url: Option<String>,
    pub notifier_function: Option<String>,
    /// Public name => CodePipeline name (the output `pipelines`).
    pub pipelines: std::collections::BTreeMap<String, String>,
    /// Where each resolved target came from (a flag, a variable, the
    /// outputs file), by its variable's name.
    pub sources: std::collections::BTreeMap<&'static str, String>,
    /// Targets the environment and the outputs file disagree on, with no
    /// flag to decide: why a command that needs one refuses.
    pub conflicts: std::collections::BTreeMap<&'static str, String>,
}

fn is_url(text: &str) -> bool {
    (text.starts_with("https://") || text.starts_with("http://"))
        && text.len() > "http://".len()
        && !text.chars().any(char::is_whitespace)
}

/// One setting from the environment; unset is `None`, a bad value an error.
fn from_env(env: &Env, name: &'static str, url: bool) -> Result<Option<String>, ConfigError> {
    let value = if url { env.url(name) } else { env.string(name) };
    match value {
        Ok(value) => Ok(Some(value)),
        Err(ConfigError::Missing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The string `value` of output `name`, if the outputs have it.
fn output(outputs: &serde_json::Value, name: &str) -> Option<String> {
    outputs
        .get(name)?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

/// Reads a `terraform output -json` file.
pub fn read_outputs(path: &std::path::Path) -> Result<serde_json::Value, OpsError> {
    let bad = |reason: String| OpsError::TerraformOutputs {
        path: path.display().to_string(),
        reason,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| bad(e.to_string()))?
        .len();
    if size > MAX_OUTPUTS_BYTES {
        return Err(bad(format!(
            "{size} bytes is too large for terraform outputs"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad(
            "expected the JSON object of `terraform output -json`".into()
        ));
    }
    Ok(value)
}

/// The terraform outputs a command line gave, and the file they came from.
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    pub value: &'a serde_json::Value,
    pub path: &'a str,
}

/// Where one target may be given: its flag, its environment variable,
/// its Terraform output; and whether it is a queue URL.
struct Source<'a> {
    flag: &'a Option<String>,
    flag_name: &'static str,
    name: &'static str,
    output: &'static str,
    url: bool,
}

/// What was found for one target.
enum Found {
    /// The value and where it came from.
    Given(String, String),
    /// The environment and the outputs file disagree, and no flag chose.
    Disputed(String),
    None,
}

/// One target: a flag wins; else the environment, unless the outputs file
/// says otherwise (disputed: nothing is touched); else the outputs file.
fn find(source: &Source<'_>, env: &Env, outputs: Option<Outputs<'_>>) -> Result<Found, OpsError> {
    let Source {
        flag,
        flag_name,
        name,
        output: output_name,
        url,
    } = *source;
    let from_outputs = outputs.and_then(|o| Some((output(o.value, output_name)?, o.path)));
    let found = match (flag, from_env(env, name, url)?, from_outputs) {
        (Some(value), _, _) => Found::Given(value.trim().to_string(), flag_name.to_string()),
        (None, Some(set), Some((given, path))) if set != given => Found::Disputed(format!(
            "{name} says {set:?} but the terraform outputs {path} say {given:?} \
             ({output_name}): pass {flag_name} to choose, or unset {name} \
             (nothing was touched)"
        )),
        (None, Some(set), _) => Found::Given(set, name.to_string()),
        (None, None, Some((given, path))) => {
            Found::Given(given, format!("the terraform outputs {path}"))
        }
        (None, None, None) => Found::None,
    };
    match found {
        Found::Given(value, _) if url && !is_url(&value) => Err(OpsError::BadSetting {
            what: flag_name,
            reason: format!("{value:?} is not an http(s) queue URL"),
        }),
        Found::Given(value, _) if value.is_empty() => Err(OpsError::BadSetting {
            what: flag_name,
            reason: "is empty".into(),
        }),
        found => Ok(found),
    }
}

/// Resolves every target; what a command needs is checked by [`Targets::need`].
pub fn resolve(
    args: &TargetArgs,
    env: &Env,
    outputs: Option<Outputs<'_>>,
) -> Result<Targets, OpsError> {
    let mut sources = std::collections::BTreeMap::new();
    let mut conflicts = std::collections::BTreeMap::new();
    let mut pick = |flag: &Option<String>,
                    flag_name: &'static str,
                    name: &'static str,
                    output: &'static str,
                    url: bool|
     -> Result<Option<String>, OpsError> {
        let source = Source {
            flag,
            flag_name,
            name,
            output,
            url,
        };
        Ok(match find(&source, env, outputs)? {
            Found::Given(value, from) => {
                sources.insert(name, from);
                Some(value)
            }
            Found::Disputed(why) => {
                conflicts.insert(name, why);
                None
            }
            Found::None => None,
        })
    };
    let queue_url = pick(
        &args.queue_url,
        "--queue-url",
        "QUEUE_URL",
        OUTPUT_QUEUE_URL,
        true,
    )?;
    let dlq_url = pick(&args.dlq_url, "--dlq-url", "DLQ_URL", OUTPUT_DLQ_URL, true)?;
    let table_name = pick(
        &args.table_name,
        "--table-name",
        "TABLE_NAME",
        OUTPUT_TABLE_NAME,
        false,
    )?;
    let events_dlq_url = pick(
        &args.events_dlq_url,
        "--events-dlq-url",
        "EVENTS_DLQ_URL",
        OUTPUT_EVENTS_DLQ_URL,
        true,
    )?;
    let notifier_function = pick(
        &args.function,
        "--function",
        "NOTIFIER_FUNCTION",
        OUTPUT_NOTIFIER_FUNCTION,
        false,
    )?;
    Ok(Targets {
        queue_url,
        dlq_url,
        table_name,
        events_dlq_url,
        notifier_function,
        sources,
        conflicts,
        pipelines: outputs
            .map(|o| o.value)
            .and_then(|o| o.get("pipelines")?.get("value")?.as_object().cloned())
            .map(|map| {
                map.into_iter()
                    .filter_map(|(public, name)| Some((public, name.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// What this command line changes, if it changes anything: the targets
/// it prints before it acts (a dry run or a listing changes nothing).
pub fn writes(command: &Command) -> Vec<Need> {
    match command {
        Command::Dlq(DlqCommand::Replay(args)) if !args.dry_run => {
            vec![Need::Dlq, Need::Queue, Need::Table]
        }
        Command::Dlq(DlqCommand::Purge { .. }) => vec![Need::Dlq],
        Command::Events(EventsCommand::Replay { dry_run: false, .. }) => {
            vec![Need::EventsDlq, Need::Notifier]
        }
        Command::Events(EventsCommand::Purge { .. }) => vec![Need::EventsDlq],
        Command::Clients(ClientsArgs {
            command:
                ClientsCommand::Reset { .. }
                | ClientsCommand::Block { .. }
                | ClientsCommand::Unblock { .. },
            ..
        })
        | Command::Keys(
            KeysCommand::Create { .. } | KeysCommand::Revoke { .. } | KeysCommand::Rotate { .. },
        )
        | Command::Networks(NetworksCommand::Import { .. } | NetworksCommand::Remove { .. })
        | Command::Pipelines(PipelinesCommand::Flush { .. }) => vec![Need::Table],
        _ => Vec::new(),
    }
}

/// Which target a command needs.
#[derive(Debug, Clone, Copy)]
pub enum Need {
    Queue,
    Dlq,
    Table,
    EventsDlq,
    Notifier,
}

impl Need {
    /// The variable that names this target, and what it is called.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Need::Queue => ("QUEUE_URL", "work queue"),
            Need::Dlq => ("DLQ_URL", "DLQ"),
            Need::Table => ("TABLE_NAME", "table"),
            Need::EventsDlq => ("EVENTS_DLQ_URL", "events DLQ"),
            Need::Notifier => ("NOTIFIER_FUNCTION", "notifier function"),
        }
    }
}

impl Targets {
    /// "table pipeline-trigger (from --table-name)": what a command that
    /// changes something prints before it acts.
    pub fn describe(&self, need: Need) -> Result<String, OpsError> {
        let value = self.need(need)?;
        let (name, what) = need.names();
        let source = self.sources.get(name).map(String::as_str).unwrap_or("?");
        Ok(format!("{what} {value} (from {source})"))
    }

    pub fn need(&self, need: Need) -> Result<&str, OpsError> {
        if let Some(conflict) = self.conflicts.get(need.names().0) {
            return Err(OpsError::Refused(conflict.clone()));
        }
        let (value, what) = match need {
            Need::Queue => (
                &self.queue_url,
                "the work queue URL: --queue-url, QUEUE_URL or the terraform output queue_url",
            ),
            Need::Dlq => (
                &self.dlq_url,
                "the DLQ URL: --dlq-url, DLQ_URL or the terraform output dlq_url",
            ),
            Need::Table => (
                &self.table_name,
                "the table: --table-name, TABLE_NAME or the terraform output table_name",
            ),
            Need::EventsDlq => (
                &self.events_dlq_url,
                "the events DLQ URL: --events-dlq-url, EVENTS_DLQ_URL or the terraform output events_dlq_url",
            ),
            Need::Notifier => (
                &self.notifier_function,
                "the notifier function: --function, NOTIFIER_FUNCTION or the terraform output notifier_function_name",
            ),
        };
        value.as_deref().ok_or(OpsError::MissingSetting(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs() -> serde_json::Value {
        json!({
            "queue_url": {"value": "https://sqs.eu-west-1.amazonaws.com/1/work", "type": "string", "sensitive": false},
            "dlq_url": {"value": "https://sqs.eu-west-1.amazonaws.com/1/work-dlq", "type": "string", "sensitive": false},
            "table_name": {"value": "pipeline-trigger", "type": "string", "sensitive": false},
        })
    }

    #[test]
    fn flags_win_and_environment_and_outputs_must_agree() {
        let args = TargetArgs {
            dlq_url: Some("http://flag/dlq".into()),
            ..TargetArgs::default()
        };
        let env = Env::from_pairs([("DLQ_URL", "http://env/dlq"), ("QUEUE_URL", "http://env/q")]);
        let outputs = outputs();
        let given = Outputs {
            value: &outputs,
            path: "out.json",
        };
        let targets = resolve(&args, &env, Some(given)).unwrap();
        assert_eq!(targets.need(Need::Dlq).unwrap(), "http://flag/dlq");
        assert_eq!(
            targets.describe(Need::Dlq).unwrap(),
            "DLQ http://flag/dlq (from --dlq-url)"
        );
        assert_eq!(
            targets.describe(Need::Table).unwrap(),
            "table pipeline-trigger (from the terraform outputs out.json)"
        );
        // The environment and the file disagree, no flag decides: refused,
        // naming both, for the command that needs it.
        let err = targets.need(Need::Queue).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("QUEUE_URL says \"http://env/q\"")
                && text.contains("out.json")
                && text.contains("https://sqs.eu-west-1.amazonaws.com/1/work")
                && text.contains("--queue-url"),
            "{text}"
        );
        // They agree: no conflict; the variable is named as the source.
        let env = Env::from_pairs([("TABLE_NAME", "pipeline-trigger")]);
        let targets = resolve(&TargetArgs::default(), &env, Some(given)).unwrap();
        assert_eq!(
            targets.describe(Need::Table).unwrap(),
            "table pipeline-trigger (from TABLE_NAME)"
        );
        // Without a file, the environment as before.
        let env = Env::from_pairs([("QUEUE_URL", "http://env/q")]);
        let targets = resolve(&TargetArgs::default(), &env, None).unwrap();
        assert_eq!(targets.need(Need::Queue).unwrap(), "http://env/q");
    }

    #[test]
    fn missing_and_wrong_urls_are_named() {
        let targets = resolve(&TargetArgs::default(), &Env::from_pairs([]), None).unwrap();
        let err = targets.need(Need::Dlq).unwrap_err().to_string();
        assert!(
            err.contains("--dlq-url") && err.contains("DLQ_URL"),
            "{err}"
        );
        let args = TargetArgs {
            queue_url: Some("work-queue".into()),
            ..TargetArgs::default()
        };
        let err = resolve(&args, &Env::from_pairs([]), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--queue-url") && err.contains("work-queue"),
            "{err}"
        );
        let err = resolve(
            &TargetArgs::default(),
            &Env::from_pairs([("DLQ_URL", "sqs:dlq")]),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("DLQ_URL"), "{err}");
    }

    #[test]
    fn bad_outputs_files_are_refused_clearly() {
        let dir = std::env::temp_dir().join(format!("ops-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.json");
        assert!(read_outputs(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.json"));
        let garbage = dir.join("garbage.json");
        std::fs::write(&garbage, "queue_url = x").unwrap();
        assert!(read_outputs(&garbage)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let list = dir.join("list.json");
        std::fs::write(&list, "[1]").unwrap();
        assert!(read_outputs(&list).is_err());
        let good = dir.join("good.json");
        std::fs::write(&good, outputs().to_string()).unwrap();
        let read = read_outputs(&good).unwrap();
        let targets = resolve(
            &TargetArgs::default(),
            &Env::from_pairs([]),
            Some(Outputs {
                value: &read,
                path: "good.json",
            }),
        )
        .unwrap();
        assert_eq!(
            targets.need(Need::Queue).unwrap(),
            "https://sqs.eu-west-1.amazonaws.com/1/work"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Where `scripts/dev` writes the local stack's outputs, from the
/// repository root: what `trigger-ops --local` reads.
pub const LOCAL_OUTPUTS: &str = "target/local/outputs.json";
/// The output the local stack adds to Terraform's: how to reach it.
pub const OUTPUT_LOCAL: &str = "local";

/// How to reach the local stack's engines, and its client-key secret: the
/// `local` output of its outputs file. With it, every command works on the
/// local stack with nothing exported.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalAccess {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Where DynamoDB calls go.
    pub dynamodb_endpoint: String,
    /// Where every other service's calls go, unless named in `services`.
    pub endpoint: String,
    /// Services elsewhere, by the SDK's service id (`"Lambda"`, ...).
    pub services: std::collections::BTreeMap<String, String>,
    /// The ingress's `CLIENT_KEY_SECRET` (for `clients`).
    pub client_key_secret: String,
}

impl LocalAccess {
    /// The `local` output, if the outputs have one (Terraform's never do).
    pub fn from_outputs(outputs: &serde_json::Value) -> Result<Option<Self>, OpsError> {
        let Some(value) = outputs.get(OUTPUT_LOCAL).and_then(|o| o.get("value")) else {
            return Ok(None);
        };
        serde_json::from_value(value.clone())
            .map(Some)
            .map_err(|e| OpsError::BadSetting {
                what: "the local stack's outputs",
                reason: format!("its `local` output is not readable ({e}): restart scripts/dev"),
            })
    }

    /// SDK settings that reach the local stack's engines, through the
    /// project's one client builder.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        use aws_sdk_sqs::config::{Credentials, Region};
        let sdk = shared::aws::config_loader()
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                self.access_key_id.clone(),
                self.secret_access_key.clone(),
                None,
                None,
                "local-stack-outputs",
            ))
            .load()
            .await;
        shared::aws::with_endpoints(
            &sdk,
            shared::aws::Endpoints {
                dynamodb: self.dynamodb_endpoint.clone(),
                others: self.endpoint.clone(),
                services: self
                    .services
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            },
        )
    }
}

/// The outputs file the command line names: `--terraform-outputs FILE`, or
/// with `--local` the local stack's; `None` without either.
pub fn outputs_path(args: &TargetArgs) -> Result<Option<std::path::PathBuf>, OpsError> {
    match (&args.terraform_outputs, args.local) {
        (Some(_), true) => Err(OpsError::BadSetting {
            what: "--local",
            reason: "reads target/local/outputs.json: give it or --terraform-outputs, not both"
                .into(),
        }),
        (Some(path), false) => Ok(Some(path.clone())),
        (None, true) => {
            let path = std::path::PathBuf::from(LOCAL_OUTPUTS);
            if !path.exists() {
                return Err(OpsError::BadSetting {
                    what: "--local",
                    reason: format!(
                        "no {LOCAL_OUTPUTS} here: run the command from the repository root, \
                         while scripts/dev runs"
                    ),
                });
            }
            Ok(Some(path))
        }
        (None, false) => Ok(None),
    }
}
