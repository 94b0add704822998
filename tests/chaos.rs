//! The chaos run's short form (about a minute): the whole local stack on
//! DynamoDB Local and moto, many triggers while faults happen together,
//! then every invariant (local_stack::chaos::invariants). The seeds are
//! those that once found a fault, and a fresh one (`CHAOS_SEED` runs one
//! alone); a failure names the seed and the invariant, to reproduce with
//! `CHAOS_SEED=N` or `scripts/chaos --seed N`.

use local_stack::chaos::run::{run, ChaosConfig};

/// Seeds that found a fault once, run every time (docs/testing.md):
/// 1795990597584785675 ended with a client charged for a trigger it was
/// answered 503 for (an SQS answer lost while the table was down);
/// 1796657374804590403 left a free lane with two runs waiting and no
/// message to start them (the lane's poll dropped with a duplicate).
const FOUND: &[u64] = &[1_795_990_597_584_785_675, 1_796_657_374_804_590_403];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_accepted_trigger_ends_exactly_once_whatever_fails() {
    // `CHAOS_SEED=N` runs that seed alone; else the seeds above and a
    // fresh one.
    let seeds: Vec<u64> = match std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let fresh = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            FOUND.iter().copied().chain([fresh]).collect()
        }
    };
    let sdk = testkit::sdk_config().await;
    for seed in seeds {
        let report = run(&sdk, &ChaosConfig::short(seed))
            .await
            .expect("the chaos run runs");
        println!("{}", report.text());
        assert!(
            report.held(),
            "seed {seed} broke an invariant (reproduce: CHAOS_SEED={seed}):\n{}",
            report.text()
        );
    }
}
