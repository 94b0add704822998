//! `trigger-chaos`: the chaos run (docs/testing.md, "The chaos run") against
//! the engines `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_DYNAMODB` point at
//! on loopback (`scripts/chaos` starts them). Exits 1 if an invariant was
//! violated.

use clap::Parser;
use local_stack::chaos::run::{run, ChaosConfig};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    about = "Many triggers through the whole local stack while faults happen together; then every invariant checked"
)]
struct Args {
    /// Reproduces a run [default: a fresh one, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// Triggers sent.
    #[arg(long, default_value_t = 200)]
    triggers: u32,
    /// Client addresses they come from.
    #[arg(long, default_value_t = 80)]
    clients: u32,
    /// Also write the report as JSON-ish text here.
    #[arg(long)]
    out: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The functions' decision logs, on stderr (RUST_LOG filters them).
    let _ = tracing::subscriber::set_global_default(shared::lambda::logging::json_subscriber(
        std::io::stderr,
    ));
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut config = ChaosConfig::short(seed);
    config.triggers = args.triggers;
    config.clients = args.clients.max(1);
    let sdk = shared::aws::config_loader().load().await;
    eprintln!(
        "chaos run, seed {seed}: {} triggers from {} addresses",
        config.triggers, config.clients
    );
    match run(&sdk, &config).await {
        Ok(report) => {
            let text = report.text();
            println!("{text}");
            if let Some(path) = &args.out {
                let _ = std::fs::write(path, &text);
            }
            // 0 when every invariant held, 1 when one did not.
            ExitCode::from(u8::from(!report.held()))
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
