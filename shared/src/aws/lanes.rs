//! What the worker and the notifier both do with a CodePipeline's lane
//! once it is free: send its first waiting run's opener message again, so
//! the run starts now rather than at the lane's next poll.

use crate::aws::queue::Deliveries;
use crate::aws::table::Table;
use crate::rules::runs::{Lane, RunRecord};
use tracing::{info, warn};

/// Wakes the first waiting run of `lane`, if any. Best effort: when it
/// cannot, the lane's poll does within `RUN_POLL_INTERVAL`.
pub async fn wake_next(table: &Table, deliveries: &Deliveries, lane: &Lane) {
    let Some(head) = lane.next_to_wake() else {
        return;
    };
    let woken = match table.runs().get(head).await {
        Ok(Some(RunRecord {
            wake: Some(wake), ..
        })) => deliveries.wake(&wake).await.map_err(|e| e.to_string()),
        Ok(_) => Err("the run has no opener message to send".to_string()),
        Err(e) => Err(e.to_string()),
    };
    match woken {
        Ok(()) => {
            info!(decision = "wake", run_id = %head, "the lane is free: its first waiting run is woken")
        }
        Err(e) => {
            warn!(run_id = %head, error = %e, "could not wake the first waiting run; the lane's poll will")
        }
    }
}
