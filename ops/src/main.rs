//! `trigger-ops`: see `trigger-ops --help`.

use clap::Parser;
use ops::cli::Cli;
use ops::{run, Context};
use shared::config::Env;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signals(stop.clone());
    // The local stack's outputs say how to reach it; else the usual settings.
    let local = match ops::targets::outputs_path(&cli.targets)
        .and_then(|path| path.map(|p| ops::targets::read_outputs(&p)).transpose())
        .and_then(|outputs| match outputs {
            Some(outputs) => ops::targets::LocalAccess::from_outputs(&outputs),
            None => Ok(None),
        }) {
        Ok(local) => local,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let sdk = match &local {
        Some(local) => local.sdk_config().await,
        None => shared::aws::config_loader().load().await,
    };
    let env = Env::from_process();
    let ctx = Context {
        sdk: &sdk,
        env: &env,
        stop,
        calls: shared::aws::CallCounter::default(),
    };
    match run(&cli, &ctx).await {
        Ok(ran) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(ran.output.as_bytes());
            if !ran.output.ends_with('\n') {
                let _ = stdout.write_all(b"\n");
            }
            if ran.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Ctrl-C and SIGTERM (a terminal, `timeout`, a CI job's cancel) ask a long
/// command to finish the batch in flight and release what it holds; a
/// second signal stops at once.
fn stop_on_signals(stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            let name = tokio::select! {
                r = tokio::signal::ctrl_c() => match r { Ok(()) => "Ctrl-C", Err(_) => return },
                Some(()) = async { match term.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => "SIGTERM",
            };
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second {name}: stopping now");
                std::process::exit(130);
            }
            eprintln!("{name}: finishing the batch in flight, releasing what is held, then stopping (again to stop now)");
        }
    });
}
