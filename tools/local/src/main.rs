//! `trigger-local`: the whole system on this machine (see `trigger-local --help`).

use clap::Parser;
use local_stack::cli::{Cli, LocalArgs};
use local_stack::{console::Console, LocalOptions, LocalStack, DEFAULT_FAILING};
use shared::config::Env;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::signal::unix::SignalKind;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Cli::parse().args;
    // The functions' decision logs, on stderr (RUST_LOG filters them).
    let _ = tracing::subscriber::set_global_default(shared::lambda::logging::json_subscriber(
        std::io::stderr,
    ));
    let stop = match stop_on_signals() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("error: cannot listen for SIGTERM: {e}");
            return ExitCode::from(1);
        }
    };
    let sdk = shared::aws::config_loader().load().await;
    let env = Env::from_process();
    let stack = match local_stack::start(&sdk, &env, &options(&args, &env), Console::stdout()).await
    {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    run_until_stopped(&stack, &args, &stop).await;
    let lines = stack
        .metrics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    stack.stop().await;
    println!(
        "local stack stopped; the metrics it would have published:\n{}",
        local_stack::console::metrics_summary(&lines)
    );
    ExitCode::SUCCESS
}

/// Ctrl-C (SIGINT) or SIGTERM sets the flag: finish what is in flight,
/// stop every part and free every port; a second signal stops at once.
fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut terminate = tokio::signal::unix::signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let name = tokio::select! {
                r = tokio::signal::ctrl_c() => match r { Ok(()) => "Ctrl-C", Err(_) => return },
                _ = terminate.recv() => "SIGTERM",
            };
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("second {name}: stopping now");
                std::process::exit(130);
            }
            eprintln!("{name}: finishing what is in flight, then stopping (again to stop now)");
        }
    });
    Ok(stop)
}

/// The stack's options from the command line (the default failing
/// pipeline only when `PIPELINES` names none).
fn options(args: &LocalArgs, env: &Env) -> LocalOptions {
    let failing = match &args.failing {
        Some(failing) => failing.clone(),
        None if env.get("PIPELINES").is_some() => Vec::new(),
        None => vec![DEFAULT_FAILING.to_string()],
    };
    LocalOptions {
        port: args.port,
        prefix: args.prefix.clone(),
        failing,
        run_time: args.run_time,
        fault: args.fault,
        outputs: args.outputs.clone(),
        stage: args.stage.clone(),
        chaos: None,
        edge: args.edge.limits(),
    }
}

/// Until a signal: pushes a run every `--push-every`, and prints the
/// metric lines as they come with `--metrics`.
async fn run_until_stopped(stack: &LocalStack, args: &LocalArgs, stop: &AtomicBool) {
    let mut shown = 0;
    let mut next_push = args
        .push_every
        .map(|every| std::time::Instant::now() + every);
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let (Some(at), Some(every)) = (next_push, args.push_every) {
            if std::time::Instant::now() >= at {
                next_push = Some(at + every);
                let pipeline = stack
                    .resources
                    .pipelines
                    .first()
                    .cloned()
                    .unwrap_or_default();
                if let Err(e) = stack.push(&pipeline).await {
                    eprintln!("could not start a pushed run: {e}");
                }
            }
        }
        if args.metrics {
            let lines = stack.metrics.lock().unwrap_or_else(|p| p.into_inner());
            for line in &lines[shown..] {
                println!("metric    {line}");
            }
            shown = lines.len();
        }
    }
}
