//! Configuration from the environment: read once at start, every variable
//! validated, every error naming the variable (docs/reference/configuration.md).
//!
//! [`VARIABLES`] is the one list of what each function reads; Terraform is
//! checked against it.

use crate::rules::cors::CorsPolicy;
use crate::rules::pipelines::PipelineSettings;
use crate::rules::pipelines::Pipelines;
use crate::rules::quota::{GlobalPolicy, NetworkLimits, QuotaPolicy};
use crate::rules::status::PipelineState;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {name} is required but not set")]
    Missing { name: &'static str },
    #[error("configuration: {name} is malformed: {reason}")]
    Malformed { name: &'static str, reason: String },
}

/// The deployed functions, for [`VARIABLES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Ingress,
    Worker,
    Notifier,
    Ops,
}

/// One environment variable of the contract.
#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    pub used_by: &'static [Function],
    /// `None`: required.
    pub default: Option<&'static str>,
}

use Function::{Ingress, Notifier, Ops, Worker};

/// Every variable the binaries read, exactly as docs/reference/configuration.md lists them.
pub const VARIABLES: &[Variable] = &[
    Variable {
        name: "TABLE_NAME",
        used_by: &[Ingress, Worker, Notifier, Ops],
        default: None,
    },
    Variable {
        name: "QUEUE_URL",
        used_by: &[Ingress, Ops],
        default: None,
    },
    Variable {
        name: "DLQ_URL",
        used_by: &[Worker, Ops],
        default: None,
    },
    Variable {
        name: "PIPELINES",
        used_by: &[Ingress, Worker],
        default: None,
    },
    Variable {
        name: "QUOTA_LIMIT",
        used_by: &[Ingress, Ops],
        default: Some("3"),
    },
    Variable {
        name: "QUOTA_WINDOW",
        used_by: &[Ingress, Ops],
        default: Some("7d"),
    },
    Variable {
        name: "NETWORK_QUOTA_LIMITS",
        used_by: &[Ingress, Ops],
        default: Some(crate::rules::quota::DEFAULT_NETWORK_LIMITS),
    },
    Variable {
        name: "GLOBAL_QUOTA_LIMIT",
        used_by: &[Ingress],
        default: Some("0"),
    },
    Variable {
        name: "GLOBAL_QUOTA_WINDOW",
        used_by: &[Ingress],
        default: Some("1d"),
    },
    Variable {
        name: "CLIENT_KEY_SECRET",
        used_by: &[Ingress, Ops],
        default: None,
    },
    Variable {
        name: "CLIENT_KEY_SECRET_PREVIOUS",
        used_by: &[Ingress, Ops],
        default: Some(""),
    },
    Variable {
        name: "CLIENT_KEY_PREVIOUS_UNTIL",
        used_by: &[Ingress, Ops],
        default: Some(""),
    },
    Variable {
        name: "MAX_ATTEMPTS",
        used_by: &[Worker],
        default: Some("5"),
    },
    Variable {
        name: "RUN_POLL_INTERVAL",
        used_by: &[Worker],
        default: Some("20s"),
    },
    Variable {
        name: "RUN_CHECK_AFTER",
        used_by: &[Worker],
        default: Some("15m"),
    },
    Variable {
        name: "TOPIC_ARN",
        used_by: &[Notifier],
        default: None,
    },
    Variable {
        name: "NOTIFY_STATES",
        used_by: &[Notifier],
        default: Some("SUCCEEDED,FAILED,STOPPED"),
    },
    Variable {
        name: "LEDGER_RETENTION",
        used_by: &[Ingress, Worker, Notifier],
        default: Some("30d"),
    },
    Variable {
        name: "METRICS_NAMESPACE",
        used_by: &[Ingress, Worker, Notifier],
        default: Some("PipelineTrigger"),
    },
    Variable {
        name: "PIPELINE_SETTINGS",
        used_by: &[Ingress, Worker],
        default: Some("{}"),
    },
    Variable {
        name: "CORS_ALLOWED_ORIGINS",
        used_by: &[Ingress],
        default: Some(""),
    },
    Variable {
        name: "WORKER_ROLE_ARN",
        used_by: &[Notifier],
        default: Some(""),
    },
    Variable {
        name: "REFUSAL_MEMORY",
        used_by: &[Ingress],
        default: Some("60s"),
    },
];

/// The names a function reads, in contract order.
pub fn variables_of(function: Function) -> Vec<&'static str> {
    VARIABLES
        .iter()
        .filter(|v| v.used_by.contains(&function))
        .map(|v| v.name)
        .collect()
}

/// Where values come from: the process environment, or a map in tests.
#[derive(Debug, Clone)]
pub struct Env {
    values: HashMap<String, String>,
}

impl Env {
    /// A snapshot of the process environment.
    pub fn from_process() -> Self {
        Self {
            values: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The same values with `name` set to `value` (the local stack sets the
    /// names of the resources it made).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.values.insert(name.to_string(), value.into());
        self
    }

    /// The value set for `name`, if any (no default).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The names set that start with `prefix` (`AWS_ENDPOINT_URL` and its
    /// per-service forms).
    pub fn names_starting_with<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        self.values
            .keys()
            .map(String::as_str)
            .filter(move |name| name.starts_with(prefix))
    }

    fn default_of(name: &'static str) -> Option<&'static str> {
        VARIABLES
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.default)
    }

    /// The value, or the contract's default; an empty value counts as unset.
    fn raw(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.values.get(name).map(|v| v.trim()) {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Self::default_of(name)
                .map(str::to_string)
                .ok_or(ConfigError::Missing { name }),
        }
    }

    pub fn string(&self, name: &'static str) -> Result<String, ConfigError> {
        self.raw(name)
    }

    pub fn url(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.raw(name)?;
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value)
        } else {
            Err(malformed(name, "expected an http(s) URL"))
        }
    }

    pub fn duration(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let value = self.raw(name)?;
        let parsed = humantime::parse_duration(&value).map_err(|e| {
            malformed(
                name,
                format!("{e} (expected a duration like 7d, 36h or 90s)"),
            )
        })?;
        if parsed < Duration::from_secs(1) {
            return Err(malformed(name, "must be at least 1s"));
        }
        Ok(parsed)
    }

    pub fn number(&self, name: &'static str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let value = self.raw(name)?;
        let parsed: u64 = value
            .parse()
            .map_err(|_| malformed(name, format!("{value:?} is not a whole number")))?;
        if !(min..=max).contains(&parsed) {
            return Err(malformed(name, format!("must be between {min} and {max}")));
        }
        Ok(parsed)
    }

    /// Pipeline states, as `NOTIFY_STATES` lists them.
    pub fn states(&self, name: &'static str) -> Result<Vec<PipelineState>, ConfigError> {
        parse_states(&self.raw(name)?).map_err(|reason| malformed(name, reason))
    }

    pub fn pipelines(&self) -> Result<Pipelines, ConfigError> {
        Pipelines::parse(&self.raw("PIPELINES")?).map_err(|reason| malformed("PIPELINES", reason))
    }

    /// `PIPELINE_SETTINGS`, each key one of `pipelines`' public names.
    pub fn pipeline_settings(
        &self,
        pipelines: &Pipelines,
    ) -> Result<PipelineSettings, ConfigError> {
        PipelineSettings::parse(&self.raw("PIPELINE_SETTINGS")?, pipelines)
            .map_err(|reason| malformed("PIPELINE_SETTINGS", reason))
    }
}

fn malformed(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Malformed {
        name,
        reason: reason.into(),
    }
}

/// What the ingress reads.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub table_name: String,
    pub queue_url: String,
    pub pipelines: Pipelines,
    pub settings: PipelineSettings,
    pub quota: QuotaPolicy,
    /// The network levels over `QUOTA_WINDOW` (`NETWORK_QUOTA_LIMITS`).
    pub networks: NetworkLimits,
    pub global_quota: Option<GlobalPolicy>,
    pub client_key_secret: Vec<u8>,
    /// The secret before the last rotation, honoured until its overlap
    /// ends (`CLIENT_KEY_SECRET_PREVIOUS`, `CLIENT_KEY_PREVIOUS_UNTIL`).
    pub previous_secret: Option<PreviousSecret>,
    pub ledger_retention: Duration,
    pub metrics_namespace: String,
    /// Which other sites' pages may call the API (`CORS_ALLOWED_ORIGINS`).
    pub cors: CorsPolicy,
    /// How long a warm instance answers a refused client from memory
    /// (`REFUSAL_MEMORY`, 0 to 60 s; default 60 s).
    pub refusal_memory: Duration,
}

/// The client-key secret before a rotation, and until when it still counts:
/// a client is charged and refused under both secrets' keys until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: Vec<u8>,
    pub until: crate::clock::EpochMillis,
}

impl PreviousSecret {
    /// The previous secret, while its overlap lasts at `now`.
    pub fn at(previous: Option<&Self>, now: crate::clock::EpochMillis) -> Option<&[u8]> {
        previous
            .filter(|p| now < p.until)
            .map(|p| p.secret.as_slice())
    }
}

/// The largest `QUOTA_LIMIT`: each acceptance in the window is one attribute
/// of the client's item.
pub const MAX_QUOTA_LIMIT: u64 = 100;

impl Env {
    /// `METRICS_NAMESPACE`: a CloudWatch namespace.
    pub fn metrics_namespace(&self) -> Result<String, ConfigError> {
        let namespace = self.string("METRICS_NAMESPACE")?;
        if !crate::rules::metrics::is_valid_namespace(&namespace) {
            return Err(malformed(
                "METRICS_NAMESPACE",
                "must be 1 to 255 of A-Z a-z 0-9 . - _ / # :, not starting with AWS/ or :",
            ));
        }
        Ok(namespace)
    }

    /// `CLIENT_KEY_SECRET`: at least 16 bytes.
    pub fn client_key_secret(&self) -> Result<Vec<u8>, ConfigError> {
        let secret = self.string("CLIENT_KEY_SECRET")?;
        if secret.len() < 16 {
            return Err(malformed(
                "CLIENT_KEY_SECRET",
                format!("must be at least 16 bytes, got {}", secret.len()),
            ));
        }
        Ok(secret.into_bytes())
    }

    /// `CLIENT_KEY_SECRET_PREVIOUS` and `CLIENT_KEY_PREVIOUS_UNTIL` (RFC
    /// 3339): both or neither; the previous secret at least 16 bytes and not
    /// the current one.
    pub fn previous_secret(&self) -> Result<Option<PreviousSecret>, ConfigError> {
        let secret = self.raw("CLIENT_KEY_SECRET_PREVIOUS")?;
        let until = self.raw("CLIENT_KEY_PREVIOUS_UNTIL")?;
        match (secret.is_empty(), until.trim().is_empty()) {
            (true, true) => return Ok(None),
            (false, true) => {
                return Err(malformed(
                    "CLIENT_KEY_PREVIOUS_UNTIL",
                    "must be set with CLIENT_KEY_SECRET_PREVIOUS: until when the previous secret counts (RFC 3339)",
                ))
            }
            (true, false) => {
                return Err(malformed(
                    "CLIENT_KEY_SECRET_PREVIOUS",
                    "must be set with CLIENT_KEY_PREVIOUS_UNTIL",
                ))
            }
            (false, false) => {}
        }
        if secret.len() < 16 {
            return Err(malformed(
                "CLIENT_KEY_SECRET_PREVIOUS",
                format!("must be at least 16 bytes, got {}", secret.len()),
            ));
        }
        if secret.as_bytes() == self.client_key_secret()?.as_slice() {
            return Err(malformed(
                "CLIENT_KEY_SECRET_PREVIOUS",
                "is CLIENT_KEY_SECRET itself: a rotation needs a new secret",
            ));
        }
        let until = crate::rules::time_format::parse_rfc3339(until.trim()).ok_or_else(|| {
            malformed(
                "CLIENT_KEY_PREVIOUS_UNTIL",
                "must be an RFC 3339 time, like 2026-12-14T00:00:00Z",
            )
        })?;
        Ok(Some(PreviousSecret {
            secret: secret.into_bytes(),
            until,
        }))
    }

    /// `QUOTA_LIMIT` per `QUOTA_WINDOW`.
    pub fn quota(&self) -> Result<QuotaPolicy, ConfigError> {
        Ok(QuotaPolicy {
            limit: self.number("QUOTA_LIMIT", 1, MAX_QUOTA_LIMIT)? as usize,
            window: self.duration("QUOTA_WINDOW")?,
        })
    }

    /// `NETWORK_QUOTA_LIMITS`, each level at least `quota`'s limit. Unset,
    /// an IPv6 /56 shares twice the client's limit and a /48 four times it
    /// (`ipv6/56=6,ipv6/48=12` at the default 3), so raising `QUOTA_LIMIT`
    /// alone keeps a valid configuration; empty or `off`: none.
    pub fn network_limits(&self, quota: &QuotaPolicy) -> Result<NetworkLimits, ConfigError> {
        let text = match self.values.get("NETWORK_QUOTA_LIMITS") {
            Some(value) => value.clone(),
            None => {
                let times = |n: usize| (quota.limit * n).min(MAX_QUOTA_LIMIT as usize);
                format!("ipv6/56={},ipv6/48={}", times(2), times(4))
            }
        };
        NetworkLimits::parse(&text, quota.limit, MAX_QUOTA_LIMIT as usize)
            .map_err(|reason| malformed("NETWORK_QUOTA_LIMITS", reason))
    }
}

impl IngressConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let secret = env.client_key_secret()?;
        let global_limit = env.number("GLOBAL_QUOTA_LIMIT", 0, 1_000_000_000)?;
        let global_window = env.duration("GLOBAL_QUOTA_WINDOW")?;
        let pipelines = env.pipelines()?;
        let quota = env.quota()?;
        Ok(Self {
            table_name: env.string("TABLE_NAME")?,
            queue_url: env.url("QUEUE_URL")?,
            settings: env.pipeline_settings(&pipelines)?,
            pipelines,
            networks: env.network_limits(&quota)?,
            quota,
            global_quota: (global_limit > 0).then_some(GlobalPolicy {
                limit: global_limit,
                window: global_window,
            }),
            client_key_secret: secret,
            previous_secret: env.previous_secret()?,
            ledger_retention: env.duration("LEDGER_RETENTION")?,
            metrics_namespace: env.metrics_namespace()?,
            cors: CorsPolicy::parse(&env.raw("CORS_ALLOWED_ORIGINS")?)
                .map_err(|reason| malformed("CORS_ALLOWED_ORIGINS", reason))?,
            refusal_memory: {
                let text = env.raw("REFUSAL_MEMORY")?;
                match humantime::parse_duration(&text) {
                    Ok(d) if d <= Duration::from_secs(60) => d,
                    _ => {
                        return Err(malformed(
                            "REFUSAL_MEMORY",
                            "must be a duration from 0s (off) to 60s",
                        ))
                    }
                }
            },
        })
    }
}

/// The most `MAX_ATTEMPTS` may be.
pub const MAX_ATTEMPTS_LIMIT: u64 = 100;

/// What the worker reads.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub table_name: String,
    pub dlq_url: String,
    pub pipelines: Pipelines,
    pub settings: PipelineSettings,
    pub max_attempts: u32,
    pub ledger_retention: Duration,
    /// How often a pending run looks whether its pipeline's lane is free
    /// (at most SQS's 15-minute message delay).
    pub run_poll_interval: Duration,
    /// How long a run may hold its lane without news before the worker asks
    /// CodePipeline whether its execution still runs.
    pub run_check_after: Duration,
    pub metrics_namespace: String,
}

/// The longest message delay SQS allows.
pub const MAX_RUN_POLL_INTERVAL: Duration = Duration::from_secs(900);

impl WorkerConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let pipelines = env.pipelines()?;
        Ok(Self {
            table_name: env.string("TABLE_NAME")?,
            dlq_url: env.url("DLQ_URL")?,
            settings: env.pipeline_settings(&pipelines)?,
            pipelines,
            max_attempts: env.number("MAX_ATTEMPTS", 1, MAX_ATTEMPTS_LIMIT)? as u32,
            ledger_retention: env.duration("LEDGER_RETENTION")?,
            run_poll_interval: match env.duration("RUN_POLL_INTERVAL")? {
                d if d > MAX_RUN_POLL_INTERVAL => {
                    return Err(malformed(
                        "RUN_POLL_INTERVAL",
                        "must be at most 15m (the longest SQS message delay)",
                    ))
                }
                d => d,
            },
            run_check_after: env.duration("RUN_CHECK_AFTER")?,
            metrics_namespace: env.metrics_namespace()?,
        })
    }
}

/// What the notifier reads.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    pub table_name: String,
    pub topic_arn: String,
    pub notify_states: Vec<PipelineState>,
    pub ledger_retention: Duration,
    pub metrics_namespace: String,
    /// The worker's role (`WORKER_ROLE_ARN`): an execution not started by
    /// it is not a public trigger's. `None`: any `StartPipelineExecution` may be.
    pub worker_role_arn: Option<String>,
}

impl NotifierConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let topic_arn = env.string("TOPIC_ARN")?;
        let parts: Vec<&str> = topic_arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
            return Err(malformed(
                "TOPIC_ARN",
                "expected an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
            ));
        }
        Ok(Self {
            table_name: env.string("TABLE_NAME")?,
            topic_arn,
            notify_states: env.states("NOTIFY_STATES")?,
            ledger_retention: env.duration("LEDGER_RETENTION")?,
            metrics_namespace: env.metrics_namespace()?,
            worker_role_arn: match env.raw("WORKER_ROLE_ARN")?.as_str() {
                "" => None,
                role if crate::rules::pipeline_event::assumed_role_arn(role, "s").is_some() => {
                    Some(role.to_string())
                }
                _ => {
                    return Err(malformed(
                        "WORKER_ROLE_ARN",
                        "expected an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                    ))
                }
            },
        })
    }
}

/// `SUCCEEDED,FAILED,STOPPED`: known states, at least one, no repeats.
fn parse_states(text: &str) -> Result<Vec<PipelineState>, String> {
    let mut states = Vec::new();
    for part in text.split(',').map(str::trim) {
        let state = PipelineState::parse(&part.to_ascii_uppercase()).ok_or_else(|| {
            let known: Vec<&str> = PipelineState::ALL.iter().map(|s| s.as_str()).collect();
            format!(
                "{part:?} is not a pipeline state (known: {})",
                known.join(", ")
            )
        })?;
        if states.contains(&state) {
            return Err(format!("{part} is listed twice"));
        }
        states.push(state);
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef";

    fn ingress_env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = vec![
            ("TABLE_NAME", "t"),
            ("QUEUE_URL", "http://127.0.0.1:1/q"),
            ("PIPELINES", "app"),
            ("CLIENT_KEY_SECRET", SECRET),
        ];
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = IngressConfig::from_env(&ingress_env(&[])).unwrap();
        assert_eq!(config.quota.limit, 3);
        assert_eq!(config.quota.window, Duration::from_secs(7 * 86_400));
        assert!(config.global_quota.is_none());
        assert_eq!(config.ledger_retention, Duration::from_secs(30 * 86_400));
        let networks: Vec<String> = config.networks.iter().map(|l| l.name()).collect();
        assert_eq!(networks, ["ipv6/56", "ipv6/48"]);
        let off =
            IngressConfig::from_env(&ingress_env(&[("NETWORK_QUOTA_LIMITS", "off")])).unwrap();
        assert!(off.networks.is_empty());
        let empty = IngressConfig::from_env(&ingress_env(&[("NETWORK_QUOTA_LIMITS", "")])).unwrap();
        assert!(empty.networks.is_empty());
        // Unset, the default follows the client's limit.
        let ten = IngressConfig::from_env(&ingress_env(&[("QUOTA_LIMIT", "10")])).unwrap();
        let limits: Vec<usize> = ten.networks.iter().map(|l| l.limit).collect();
        assert_eq!(limits, [20, 40]);
        let hundred = IngressConfig::from_env(&ingress_env(&[("QUOTA_LIMIT", "100")])).unwrap();
        assert!(hundred.networks.iter().all(|l| l.limit == 100));
    }

    #[test]
    fn missing_required_variable_is_named() {
        let env = Env::from_pairs([("TABLE_NAME", "t")]);
        let err = IngressConfig::from_env(&env).unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing {
                name: "CLIENT_KEY_SECRET"
            }
        );
        assert!(err.to_string().contains("CLIENT_KEY_SECRET"));
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let err = IngressConfig::from_env(&ingress_env(&[("TABLE_NAME", "  ")])).unwrap_err();
        assert_eq!(err, ConfigError::Missing { name: "TABLE_NAME" });
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("QUOTA_LIMIT", "three"),
            ("QUOTA_LIMIT", "0"),
            ("QUOTA_LIMIT", "101"),
            ("QUOTA_WINDOW", "7 fortnights"),
            ("QUOTA_WINDOW", "10ms"),
            ("GLOBAL_QUOTA_LIMIT", "-1"),
            ("CLIENT_KEY_SECRET", "short"),
            ("QUEUE_URL", "sqs/queue"),
            ("PIPELINES", "a,,b"),
            ("PIPELINES", "a b"),
            ("PIPELINES", "x=a,x=b"),
            ("LEDGER_RETENTION", "forever"),
            ("CORS_ALLOWED_ORIGINS", "https://docs.example.com/"),
            ("CORS_ALLOWED_ORIGINS", "*,https://docs.example.com"),
            ("NETWORK_QUOTA_LIMITS", "ipv6/48=2"),
            ("NETWORK_QUOTA_LIMITS", "ipv6/64=12"),
        ] {
            let err = IngressConfig::from_env(&ingress_env(&[(name, value)])).unwrap_err();
            match &err {
                ConfigError::Malformed { name: named, .. } => assert_eq!(*named, name, "{value}"),
                other => panic!("{name}={value}: expected Malformed, got {other:?}"),
            }
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn global_quota_is_on_when_limit_is_positive() {
        let env = ingress_env(&[("GLOBAL_QUOTA_LIMIT", "100"), ("GLOBAL_QUOTA_WINDOW", "1h")]);
        let global = IngressConfig::from_env(&env).unwrap().global_quota.unwrap();
        assert_eq!(global.limit, 100);
        assert_eq!(global.window, Duration::from_secs(3600));
    }

    #[test]
    fn worker_config_reads_its_variables() {
        let env = Env::from_pairs([
            ("TABLE_NAME", "t"),
            ("DLQ_URL", "http://127.0.0.1:1/dlq"),
            ("PIPELINES", "a=b"),
        ]);
        let config = WorkerConfig::from_env(&env).unwrap();
        assert_eq!(config.max_attempts, 5);
        assert_eq!(config.pipelines.by_name("b").unwrap().public, "a");
        assert_eq!(config.run_poll_interval, Duration::from_secs(20));
        assert_eq!(config.run_check_after, Duration::from_secs(900));
        for (name, value) in [
            ("RUN_POLL_INTERVAL", "16m"),
            ("RUN_POLL_INTERVAL", "0s"),
            ("RUN_CHECK_AFTER", "soon"),
        ] {
            let env = Env::from_pairs([
                ("TABLE_NAME", "t"),
                ("DLQ_URL", "http://x"),
                ("PIPELINES", "a"),
                (name, value),
            ]);
            match WorkerConfig::from_env(&env) {
                Err(ConfigError::Malformed { name: named, .. }) => assert_eq!(named, name),
                other => panic!("{name}={value}: {other:?}"),
            }
        }
        let env = Env::from_pairs([
            ("TABLE_NAME", "t"),
            ("DLQ_URL", "http://x"),
            ("PIPELINES", "a"),
            ("MAX_ATTEMPTS", "0"),
        ]);
        assert!(matches!(
            WorkerConfig::from_env(&env),
            Err(ConfigError::Malformed {
                name: "MAX_ATTEMPTS",
                ..
            })
        ));
        let env = Env::from_pairs([("TABLE_NAME", "t"), ("PIPELINES", "a")]);
        assert_eq!(
            WorkerConfig::from_env(&env).unwrap_err(),
            ConfigError::Missing { name: "DLQ_URL" }
        );
    }

    /// A rotation's overlap: both variables or neither, a previous secret
    /// that is one (and not the current), an end that is a time; the
    /// previous secret counts only before its end.
    #[test]
    fn the_previous_secret_comes_with_its_end_and_counts_until_then() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut all = vec![("CLIENT_KEY_SECRET", SECRET)];
            all.extend_from_slice(pairs);
            Env::from_pairs(all).previous_secret()
        };
        assert_eq!(with(&[]), Ok(None));
        let until = "2026-12-14T18:00:00Z";
        let previous = with(&[
            ("CLIENT_KEY_SECRET_PREVIOUS", "the-old-secret-0123456789"),
            ("CLIENT_KEY_PREVIOUS_UNTIL", until),
        ])
        .unwrap()
        .unwrap();
        let end = crate::rules::time_format::parse_rfc3339(until).unwrap();
        assert_eq!(previous.until, end);
        assert!(PreviousSecret::at(Some(&previous), end - 1).is_some());
        assert!(PreviousSecret::at(Some(&previous), end).is_none());
        let refused = |pairs: &[(&'static str, &'static str)], name: &str| {
            let err = with(pairs).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        };
        refused(
            &[("CLIENT_KEY_SECRET_PREVIOUS", "the-old-secret-0123456789")],
            "CLIENT_KEY_PREVIOUS_UNTIL",
        );
        refused(
            &[("CLIENT_KEY_PREVIOUS_UNTIL", until)],
            "CLIENT_KEY_SECRET_PREVIOUS",
        );
        refused(
            &[
                ("CLIENT_KEY_SECRET_PREVIOUS", "short"),
                ("CLIENT_KEY_PREVIOUS_UNTIL", until),
            ],
            "at least 16 bytes",
        );
        refused(
            &[
                ("CLIENT_KEY_SECRET_PREVIOUS", SECRET),
                ("CLIENT_KEY_PREVIOUS_UNTIL", until),
            ],
            "a rotation needs a new secret",
        );
        refused(
            &[
                ("CLIENT_KEY_SECRET_PREVIOUS", "the-old-secret-0123456789"),
                ("CLIENT_KEY_PREVIOUS_UNTIL", "next week"),
            ],
            "RFC 3339",
        );
    }

    #[test]
    fn variables_per_function_match_the_contract() {
        assert_eq!(
            variables_of(Function::Ingress),
            [
                "TABLE_NAME",
                "QUEUE_URL",
                "PIPELINES",
                "QUOTA_LIMIT",
                "QUOTA_WINDOW",
                "NETWORK_QUOTA_LIMITS",
                "GLOBAL_QUOTA_LIMIT",
                "GLOBAL_QUOTA_WINDOW",
                "CLIENT_KEY_SECRET",
                "CLIENT_KEY_SECRET_PREVIOUS",
                "CLIENT_KEY_PREVIOUS_UNTIL",
                "LEDGER_RETENTION",
                "METRICS_NAMESPACE",
                "PIPELINE_SETTINGS",
                "CORS_ALLOWED_ORIGINS",
                "REFUSAL_MEMORY"
            ]
        );
        assert_eq!(
            variables_of(Function::Worker),
            [
                "TABLE_NAME",
                "DLQ_URL",
                "PIPELINES",
                "MAX_ATTEMPTS",
                "RUN_POLL_INTERVAL",
                "RUN_CHECK_AFTER",
                "LEDGER_RETENTION",
                "METRICS_NAMESPACE",
                "PIPELINE_SETTINGS"
            ]
        );
    }

    #[test]
    fn notifier_config_reads_its_variables() {
        let arn = "arn:aws:sns:us-east-1:123456789012:on-call";
        let env = Env::from_pairs([("TABLE_NAME", "t"), ("TOPIC_ARN", arn)]);
        let config = NotifierConfig::from_env(&env).unwrap();
        assert_eq!(config.topic_arn, arn);
        assert_eq!(
            config.notify_states,
            [
                PipelineState::Succeeded,
                PipelineState::Failed,
                PipelineState::Stopped
            ]
        );
        let env = Env::from_pairs([
            ("TABLE_NAME", "t"),
            ("TOPIC_ARN", arn),
            ("NOTIFY_STATES", " failed , SUPERSEDED"),
        ]);
        assert_eq!(
            NotifierConfig::from_env(&env).unwrap().notify_states,
            [PipelineState::Failed, PipelineState::Superseded]
        );
        for (name, value) in [
            ("TOPIC_ARN", "on-call"),
            ("TOPIC_ARN", "arn:aws:sqs:us-east-1:123456789012:q"),
            ("TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:"),
            ("NOTIFY_STATES", "SUCCEEDED,EXPLODED"),
            ("NOTIFY_STATES", "FAILED,,SUCCEEDED"),
            ("NOTIFY_STATES", "FAILED,FAILED"),
        ] {
            let mut pairs = vec![("TABLE_NAME", "t"), ("TOPIC_ARN", arn)];
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value));
            let err = NotifierConfig::from_env(&Env::from_pairs(pairs)).unwrap_err();
            assert!(
                matches!(err, ConfigError::Malformed { name: n, .. } if n == name),
                "{name}={value}: {err}"
            );
        }
        assert_eq!(
            NotifierConfig::from_env(&Env::from_pairs([("TABLE_NAME", "t")])).unwrap_err(),
            ConfigError::Missing { name: "TOPIC_ARN" }
        );
        assert_eq!(
            variables_of(Function::Notifier),
            [
                "TABLE_NAME",
                "TOPIC_ARN",
                "NOTIFY_STATES",
                "LEDGER_RETENTION",
                "METRICS_NAMESPACE",
                "WORKER_ROLE_ARN"
            ]
        );
    }
}
