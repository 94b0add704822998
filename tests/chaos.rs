//! The chaos run's short form (about a minute): the whole local stack on
//! DynamoDB Local and moto, many triggers while faults happen together,
//! then every invariant (local_stack::chaos::invariants). The seed is
//! `CHAOS_SEED`, else a fresh one; the report names it, to reproduce a
//! failure with `scripts/chaos --seed N`.

use local_stack::chaos::run::{run, ChaosConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_trigger_ends_exactly_once_whatever_fails() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let sdk = testkit::sdk_config().await;
    let report = run(&sdk, &ChaosConfig::short(seed))
        .await
        .expect("the chaos run runs");
    println!("{}", report.text());
    assert!(report.held(), "{}", report.text());
}
