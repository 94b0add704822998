//! One command line, run: the targets resolved, the clients built, the
//! command dispatched to its module, its answer rendered.

use crate::cli::{Cli, ClientsCommand, Command, DlqCommand, EventsCommand, TriggersCommand};
use crate::dlq::{Filter, Queues, ReplayOptions};
use crate::error::OpsError;
use crate::targets::Need;
use crate::{
    account, cli, clients, events, keys, networks, pipelines, report, secret, targets, triggers,
};
use aws_config::SdkConfig;
use shared::aws::table::Table;
use shared::aws::CallCounter;
use shared::clock::SystemClock;
use shared::config::Env;
use std::io::IsTerminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What a command printed and whether it fully succeeded.
#[derive(Debug)]
pub struct Ran {
    pub output: String,
    pub success: bool,
}

/// What the process provides: SDK settings, the environment, the Ctrl-C flag.
pub struct Context<'a> {
    pub sdk: &'a SdkConfig,
    pub env: &'a Env,
    pub stop: Arc<AtomicBool>,
    /// Counts the AWS calls the command makes (what its IAM must allow).
    pub calls: CallCounter,
}

impl Ran {
    /// A command that fully succeeded.
    fn done(output: String) -> Result<Self, OpsError> {
        Ok(Self {
            output,
            success: true,
        })
    }
}

/// Runs one command line: its targets resolved (and said on stderr when
/// it changes something), then the command.
pub async fn run(cli: &Cli, ctx: &Context<'_>) -> Result<Ran, OpsError> {
    let (targets, local) = resolve(cli, ctx)?;
    let table = || -> Result<Table, OpsError> {
        Ok(Table::new(
            shared::aws::dynamodb(ctx.sdk, &ctx.calls),
            targets.need(Need::Table)?,
        ))
    };
    let queues = || Queues::new(shared::aws::sqs(ctx.sdk, &ctx.calls), Arc::new(SystemClock));
    let now = shared::clock::Clock::now_ms(&SystemClock);
    match &cli.command {
        Command::Dlq(command) => run_dlq(command, cli.json, &queues(), &targets, ctx).await,
        Command::Events(command) => run_events(command, cli.json, &queues(), &targets, ctx).await,
        Command::Local { args } => Err(run_local(args)),
        Command::Account { reserve, plan } => {
            run_account(*reserve, plan.as_deref(), cli.json, ctx).await
        }
        Command::Clients(args) => {
            let table = table()?;
            let secrets = client_secrets(args, local.as_ref(), &table, ctx).await?;
            run_clients(&args.command, cli.json, &table, &secrets, ctx).await
        }
        Command::Secret(command) => run_secret(command, cli.json, &table()?, ctx).await,
        Command::Keys(command) => Ran::done(keys::run(command, cli.json, &table()?, now).await?),
        Command::Networks(command) => {
            let limits = ctx.env.network_limits(&ctx.env.quota()?)?;
            Ran::done(networks::run(command, cli.json, &table()?, &limits, now).await?)
        }
        Command::Pipelines(command) => run_pipelines(command, cli.json, &table()?, &targets).await,
        Command::Triggers(command) => run_triggers(command, cli.json, &table()?).await,
    }
}

/// The targets: from the environment and `--terraform-outputs` (or
/// `--local`), checked before any AWS call. A command that changes
/// something says what it acts on first, and refuses before anything when
/// a target is missing or disputed.
fn resolve(
    cli: &Cli,
    ctx: &Context<'_>,
) -> Result<(targets::Targets, Option<targets::LocalAccess>), OpsError> {
    let outputs = match targets::outputs_path(&cli.targets)? {
        Some(path) => Some((targets::read_outputs(&path)?, path.display().to_string())),
        None => None,
    };
    let outputs = outputs.as_ref().map(|(value, path)| targets::Outputs {
        value,
        path: path.as_str(),
    });
    let local = match &outputs {
        Some(outputs) => targets::LocalAccess::from_outputs(outputs.value)?,
        None => None,
    };
    if ctx.sdk.region().is_none() && !matches!(cli.command, Command::Local { .. }) {
        return Err(OpsError::MissingSetting(
            "an AWS region: set AWS_REGION (and credentials) for a deployed stack, \
             or pass --local for the one scripts/dev runs",
        ));
    }
    let targets = targets::resolve(&cli.targets, ctx.env, outputs)?;
    for need in targets::writes(&cli.command) {
        eprintln!("acting on the {}", targets.describe(need)?);
    }
    Ok((targets, local))
}

/// The client-key secrets `clients` keys addresses with: the ingress's
/// (read from its function, or the local stack's), checked against the
/// fingerprint the deployment wrote; during a rotation's overlap the
/// previous one too, as the ingress keys each client under both.
async fn client_secrets(
    args: &cli::ClientsArgs,
    local: Option<&targets::LocalAccess>,
    table: &Table,
    ctx: &Context<'_>,
) -> Result<Vec<Vec<u8>>, OpsError> {
    let (secret, previous) = match &args.secret_from_function {
        None => match (local, ctx.env.get("CLIENT_KEY_SECRET")) {
            (Some(local), None) => (local.client_key_secret.clone().into_bytes(), None),
            _ => (ctx.env.client_key_secret()?, ctx.env.previous_secret()?),
        },
        Some(function) => {
            let lambda = shared::aws::lambda(ctx.sdk, &ctx.calls);
            shared::aws::function_config::client_key_secrets_of(&lambda, function)
                .await
                .map_err(OpsError::Store)?
        }
    };
    check_secret(table, &secret).await?;
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let mut secrets = vec![secret];
    secrets.extend(shared::config::PreviousSecret::at(previous.as_ref(), now).map(<[u8]>::to_vec));
    Ok(secrets)
}

/// `trigger-ops dlq stats | peek | replay | purge`.
async fn run_dlq(
    command: &DlqCommand,
    json: bool,
    queues: &Queues,
    targets: &targets::Targets,
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    match command {
        DlqCommand::Stats => {
            let (work_url, dlq_url) = (targets.need(Need::Queue)?, targets.need(Need::Dlq)?);
            let work = queues.counts("work queue", work_url).await?;
            let dlq = queues.counts("DLQ", dlq_url).await?;
            let oldest = queues.oldest_age(dlq_url).await?;
            Ran::done(if json {
                report::stats_json(&work, &dlq, oldest)
            } else {
                report::stats_text(&work, &dlq, oldest)
            })
        }
        DlqCommand::Peek { max } => {
            let dlq_url = targets.need(Need::Dlq)?;
            queues.check("DLQ", dlq_url).await?;
            let messages = queues.peek(dlq_url, *max as usize).await?;
            Ran::done(if json {
                report::messages_json(&messages)
            } else {
                report::messages_text(&messages)
            })
        }
        DlqCommand::Replay(args) => run_replay(args, json, queues, targets, ctx).await,
        DlqCommand::Purge { yes, older_than } => {
            let dlq_url = targets.need(Need::Dlq)?;
            if !yes {
                return Err(OpsError::Refused(
                    "purge deletes DLQ messages for good: add --yes to do it (nothing was deleted)"
                        .into(),
                ));
            }
            queues.check("DLQ", dlq_url).await?;
            let (deleted, kept) = queues.purge(dlq_url, *older_than).await?;
            Ran::done(report::answer(
                json,
                serde_json::json!({"deleted": deleted, "kept": kept}),
                || format!("deleted {deleted}, kept {kept}\n"),
            ))
        }
    }
}

/// `trigger-ops dlq replay`: both queues checked before anything moves, a
/// progress bar when a terminal shows it.
async fn run_replay(
    args: &cli::ReplayArgs,
    json: bool,
    queues: &Queues,
    targets: &targets::Targets,
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    let (work_url, dlq_url) = (targets.need(Need::Queue)?, targets.need(Need::Dlq)?);
    let table = if args.dry_run {
        None
    } else {
        Some(Table::new(
            shared::aws::dynamodb(ctx.sdk, &ctx.calls),
            targets.need(Need::Table)?,
        ))
    };
    queues.check("DLQ", dlq_url).await?;
    if !args.dry_run {
        // A wrong work queue fails here, before anything is received.
        queues.check("work queue", work_url).await?;
    }
    // The bar's length costs a call: only when a terminal shows it.
    let bar = if std::io::stderr().is_terminal() {
        let length = match args.max {
            Some(max) => max,
            None => queues.counts("DLQ", dlq_url).await?.visible,
        };
        indicatif::ProgressBar::new(length)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let options = ReplayOptions {
        filter: Filter {
            error_code: args.error_code.clone(),
            pipeline: args.pipeline.clone(),
        },
        max: args.max,
        rate: args.rate,
        dry_run: args.dry_run,
    };
    let summary = queues
        .replay(
            dlq_url,
            work_url,
            table.as_ref(),
            &options,
            &ctx.stop,
            &|done| bar.set_position(done),
        )
        .await?;
    bar.finish_and_clear();
    let success = summary.failed == 0 && summary.failures.is_empty();
    Ok(Ran {
        output: report::render(json, &summary, report::replay_text),
        success,
    })
}

/// `trigger-ops account`: the account's concurrency, and whether `reserve`
/// more (or what `plan` changes) fits.
async fn run_account(
    reserve: Option<i64>,
    plan: Option<&std::path::Path>,
    json: bool,
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    let reserve = match plan {
        None => reserve.unwrap_or(0),
        Some(path) => {
            let bad = |reason: String| OpsError::BadSetting {
                what: "--plan",
                reason: format!("{}: {reason}", path.display()),
            };
            let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
            let plan = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
            account::reserve_of_plan(&plan).map_err(bad)?
        }
    };
    let lambda = shared::aws::lambda(ctx.sdk, &ctx.calls);
    let concurrency = shared::aws::function_config::account_concurrency(&lambda)
        .await
        .map_err(OpsError::Store)?;
    let fit = account::fit(concurrency, reserve);
    Ok(Ran {
        output: if json {
            account::fit_json(&fit)
        } else {
            account::fit_text(&fit)
        },
        success: fit.fits,
    })
}

async fn run_pipelines(
    command: &cli::PipelinesCommand,
    json: bool,
    table: &Table,
    targets: &targets::Targets,
) -> Result<Ran, OpsError> {
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let name = match command {
        cli::PipelinesCommand::Show { name } | cli::PipelinesCommand::Flush { name, .. } => name,
    };
    let recent = pipelines::last_hour(table, now).await?;
    let (codepipeline, publics) = pipelines::resolve(name, &targets.pipelines, &recent)
        .ok_or_else(|| {
            OpsError::NotFound(format!(
                "no pipeline {name:?}: not a public name of --terraform-outputs' pipelines{}, and no trigger of it in the last hour (give its CodePipeline name)",
                if targets.pipelines.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", targets.pipelines.keys().cloned().collect::<Vec<_>>().join(", "))
                }
            ))
        })?;
    let output = match command {
        cli::PipelinesCommand::Show { .. } => {
            let shown = pipelines::show(table, &codepipeline, publics, &recent, now).await?;
            report::render(json, &shown, pipelines::show_text)
        }
        cli::PipelinesCommand::Flush { yes, lane, .. } => {
            if !yes {
                return Err(OpsError::Refused(format!(
                    "flush ends the waiting runs of {codepipeline} on table {} as refused, with no quota given back: add --yes to do it (nothing was changed)",
                    table.name()
                )));
            }
            let flushed = pipelines::flush(table, &codepipeline, *lane, now).await?;
            report::render(json, &flushed, pipelines::flushed_text)
        }
    };
    Ran::done(output)
}

async fn run_triggers(
    command: &TriggersCommand,
    json: bool,
    table: &Table,
) -> Result<Ran, OpsError> {
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let output = match command {
        TriggersCommand::List {
            since,
            pipeline,
            status,
            limit,
        } => {
            let status = match status {
                None => None,
                Some(s) => Some(shared::rules::status::TriggerStatus::parse(s).ok_or_else(
                    || OpsError::BadSetting {
                        what: "--status",
                        reason: format!(
                            "{s:?} is not one of queued, started, succeeded, failed, stopped, superseded, dead_lettered"
                        ),
                    },
                )?),
            };
            let filter = triggers::ListFilter {
                since: *since,
                pipeline: pipeline.clone(),
                status,
                limit: *limit as usize,
            };
            let listed = triggers::list(table, &filter, now).await?;
            report::answer(json, serde_json::json!({ "triggers": listed }), || {
                report::triggers_text(&listed)
            })
        }
        TriggersCommand::Show { id } => {
            let shown = triggers::show(table, id, now).await?;
            report::render(json, &shown, report::trigger_text)
        }
    };
    Ran::done(output)
}

async fn run_events(
    command: &EventsCommand,
    json: bool,
    queues: &Queues,
    targets: &targets::Targets,
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    let url = targets.need(Need::EventsDlq)?;
    events::check(queues, url).await?;
    let (output, success) = match command {
        EventsCommand::Stats => {
            let counts = queues.counts("events DLQ", url).await?;
            let oldest = queues.oldest_event_age(url).await?;
            let output = report::answer(
                json,
                serde_json::json!({"events_dlq": counts, "oldest_age_seconds": oldest}),
                || report::events_stats_text(&counts, oldest),
            );
            (output, true)
        }
        EventsCommand::Peek { max } => {
            let events = queues.peek_events(url, *max as usize).await?;
            let output = report::answer(json, serde_json::json!({ "events": events }), || {
                report::events_text(&events)
            });
            (output, true)
        }
        EventsCommand::Replay { max, dry_run } => {
            let notifier = if *dry_run {
                None
            } else {
                Some(events::Notifier {
                    lambda: shared::aws::lambda(ctx.sdk, &ctx.calls),
                    function: targets.need(Need::Notifier)?.to_string(),
                })
            };
            let summary = queues
                .replay_events(url, notifier.as_ref(), *max, &ctx.stop)
                .await?;
            let success = summary.failed == 0;
            let output = report::render(json, &summary, report::events_replay_text);
            (output, success)
        }
        EventsCommand::Purge { yes } => {
            if !yes {
                return Err(OpsError::Refused(
                    "purge deletes every event of the notifier's DLQ: add --yes to do it (nothing was deleted)"
                        .into(),
                ));
            }
            let (deleted, _) = queues.purge(url, None).await?;
            let output = report::answer(json, serde_json::json!({ "deleted": deleted }), || {
                format!("deleted {deleted} events\n")
            });
            (output, true)
        }
    };
    Ok(Ran { output, success })
}

/// `trigger-ops secret rotate | status`.
async fn run_secret(
    command: &cli::SecretCommand,
    json: bool,
    table: &Table,
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let state = table
        .secret()
        .state()
        .await
        .map_err(|e| OpsError::Store(e.to_string()))?;
    let output = match command {
        cli::SecretCommand::Rotate { overlap } => {
            let window = ctx.env.quota()?.window;
            let last_block_ends = table
                .blocks()
                .last_ends(now)
                .await
                .map_err(|e| OpsError::Store(e.to_string()))?;
            let rotation = secret::plan_rotation(&state, now, window, last_block_ends, *overlap)
                .map_err(OpsError::Refused)?;
            report::render(json, &rotation, secret::rotation_text)
        }
        cli::SecretCommand::Status {
            secret_from_function,
        } => {
            let secret = match secret_from_function {
                Some(function) => {
                    let lambda = shared::aws::lambda(ctx.sdk, &ctx.calls);
                    let (secret, _) =
                        shared::aws::function_config::client_key_secrets_of(&lambda, function)
                            .await
                            .map_err(OpsError::Store)?;
                    Some(secret)
                }
                None => ctx.env.client_key_secret().ok(),
            };
            let status = secret::status(&state, secret.as_deref(), now);
            report::render(json, &status, secret::status_text)
        }
    };
    Ran::done(output)
}

/// `trigger-ops clients …`: each under every secret the ingress keys
/// with (two during a rotation's overlap; the first is the current one).
async fn run_clients(
    command: &ClientsCommand,
    json: bool,
    table: &Table,
    secrets: &[Vec<u8>],
    ctx: &Context<'_>,
) -> Result<Ran, OpsError> {
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let secret = secrets.first().map(Vec::as_slice).unwrap_or_default();
    let output = match command {
        ClientsCommand::Show { address } => {
            let quota = ctx.env.quota()?;
            let networks = ctx.env.network_limits(&quota)?;
            let mut view = clients::show(table, secret, &quota, &networks, address, now).await?;
            for previous in &secrets[1..] {
                let before =
                    clients::show(table, previous, &quota, &networks, address, now).await?;
                view = clients::fuller(view, before);
            }
            report::render(json, &view, report::client_text)
        }
        ClientsCommand::Reset { address, yes } => {
            reset_client(address, *yes, json, table, secrets, ctx).await?
        }
        ClientsCommand::Top { since, limit } => {
            let top = clients::top(table, *since, *limit, now).await?;
            report::answer(json, serde_json::json!({"top": top}), || {
                report::top_text(&top)
            })
        }
        ClientsCommand::Block {
            target,
            duration,
            reason,
        } => {
            let until = clients::block(table, secret, target, *duration, reason, now).await?;
            let until = shared::rules::time_format::rfc3339(until);
            report::answer(
                json,
                serde_json::json!({"blocked": true, "until": until}),
                || format!("blocked until {until}: 403 blocked, no quota taken\n"),
            )
        }
        ClientsCommand::Unblock { target } => {
            let mut lifted = false;
            for secret in secrets {
                lifted |= clients::unblock(table, secret, target, now).await?;
            }
            report::answer(
                json,
                serde_json::json!({"unblocked": lifted}),
                || match lifted {
                    true => "block lifted\n".into(),
                    false => "no block was in force\n".into(),
                },
            )
        }
    };
    Ran::done(output)
}

/// `clients reset ADDRESS --yes`: the client's quota freed under every
/// secret.
async fn reset_client(
    address: &str,
    yes: bool,
    json: bool,
    table: &Table,
    secrets: &[Vec<u8>],
    ctx: &Context<'_>,
) -> Result<String, OpsError> {
    if !yes {
        return Err(OpsError::Refused(
            "reset frees the client's whole quota: add --yes to do it (nothing was changed)".into(),
        ));
    }
    let quota = ctx.env.quota()?;
    let networks = ctx.env.network_limits(&quota)?;
    let secret = secrets.first().map(Vec::as_slice).unwrap_or_default();
    let mut reset = clients::reset(table, secret, &quota, &networks, address).await?;
    for previous in &secrets[1..] {
        let before = clients::reset(table, previous, &quota, &networks, address).await?;
        reset.had_slots |= before.had_slots;
    }
    let what = match reset.level.as_str() {
        "client" => format!("client {}", reset.target),
        level => format!("network {} ({level})", reset.target),
    };
    Ok(report::answer(
        json,
        serde_json::json!({"reset": true, "had_slots": reset.had_slots,
                           "level": reset.level, "target": reset.target}),
        || match reset.had_slots {
            true => format!("reset the quota of {what}: it is free again\n"),
            false => format!("{what} had no quota taken; nothing to free\n"),
        },
    ))
}

/// Refuses a client-key secret that is not the ingress's: every key it
/// made would be one nobody has (a client shown with its whole quota, a
/// block that blocks nobody). A table without a fingerprint (written by
/// the deployment) cannot tell: said on stderr, and the command goes on.
async fn check_secret(table: &Table, secret: &[u8]) -> Result<(), OpsError> {
    let ours = shared::rules::client_key::secret_fingerprint(secret);
    let state = table.secret().state().await;
    match state.map(|s| (s.fingerprint, s.previous_fingerprint)) {
        Ok((Some(theirs), _)) if theirs == ours => Ok(()),
        Ok((Some(_), Some(previous))) if previous == ours => Err(OpsError::Refused(
            "this CLIENT_KEY_SECRET is the ingress's previous one (rotated away): keys made \
             with it alone miss the current quotas. Use --secret-from-function <ingress \
             function>, which reads both"
                .into(),
        )),
        Ok((Some(_), _)) => Err(OpsError::Refused(
            "this CLIENT_KEY_SECRET is not the ingress's (its fingerprint differs from the one \
             the deployment wrote to the table): every address would be keyed wrongly, so \
             nothing was read or changed. Use --secret-from-function <ingress function> \
             (or --local for the stack scripts/dev runs)"
                .into(),
        )),
        Ok((None, _)) => {
            eprintln!(
                "warning: the table holds no fingerprint of the ingress's secret, so this one \
                 cannot be checked (apply the Terraform again to write it)"
            );
            Ok(())
        }
        Err(e) => Err(OpsError::Store(e.to_string())),
    }
}

/// `trigger-ops local ARGS…`: becomes `trigger-local ARGS…` (the binary next
/// to this one), in this same process, so signals reach it directly. Returns
/// only when that fails.
fn run_local(args: &[String]) -> OpsError {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("trigger-local")))
        .filter(|path| path.exists());
    let Some(binary) = beside else {
        return OpsError::Local(
            "trigger-local is not next to trigger-ops: build it (cargo build -p local-stack) or run scripts/dev".into(),
        );
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new(&binary).args(args).exec();
    OpsError::Local(format!("cannot run {}: {err}", binary.display()))
}
