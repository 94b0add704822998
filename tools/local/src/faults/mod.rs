//! The faults the chaos run does to the local stack ([`crate::chaos`]):
//!
//! - [`proxy`]: the functions' AWS calls go through fault-injecting
//!   proxies (lost answers, 500s, throttling, an outage of DynamoDB).
//! - [`Chaos`]: what the stack's own parts do to the functions: the worker
//!   and the notifier killed mid-invocation (the batch or event comes back,
//!   as after a crash), EventBridge events delivered twice, or held back
//!   and delivered later (out of order).

pub mod proxy;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Where the functions' calls go under chaos, and what the stack's parts
/// do to the functions.
#[derive(Debug)]
pub struct Chaos {
    /// DynamoDB's endpoint for the functions (a [`proxy::ChaosProxy`]).
    pub dynamodb: String,
    /// Every other service's (SQS, SNS).
    pub others: String,
    /// CodePipeline's, in front of the stack's CodePipeline front.
    pub codepipeline: String,
    /// Chance that an invocation is killed part way.
    pub crash: f64,
    /// Chance that an EventBridge event is delivered twice at once.
    pub duplicate_event: f64,
    /// Chance that an event is held back and comes later.
    pub delay_event: f64,
    rng: Mutex<StdRng>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

/// What happens to one EventBridge event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFate {
    Deliver,
    /// Handed to the notifier twice at once.
    Twice,
    /// Not now: it comes back this many seconds later.
    Later(u64),
}

impl Chaos {
    pub fn new(
        dynamodb: String,
        others: String,
        codepipeline: String,
        (crash, duplicate_event, delay_event): (f64, f64, f64),
        seed: u64,
    ) -> Self {
        Self {
            dynamodb,
            others,
            codepipeline,
            crash,
            duplicate_event,
            delay_event,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: Mutex::new(BTreeMap::new()),
        }
    }

    fn roll(&self) -> f64 {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).random()
    }

    pub(crate) fn count(&self, what: &'static str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(what)
            .or_insert(0) += 1;
    }

    /// When to kill this invocation of `who`, if it is to be killed: some
    /// time into it, so it dies part way through its calls.
    pub fn kill_after(&self, who: &'static str) -> Option<Duration> {
        if self.roll() >= self.crash {
            return None;
        }
        let _ = who;
        Some(Duration::from_millis(1 + (self.roll() * 40.0) as u64))
    }

    /// What becomes of the next EventBridge event.
    pub fn event_fate(&self) -> EventFate {
        let roll = self.roll();
        if roll < self.duplicate_event {
            self.count("EventBridge: event delivered twice");
            EventFate::Twice
        } else if roll < self.duplicate_event + self.delay_event {
            self.count("EventBridge: event held back (reordered)");
            EventFate::Later(1 + (self.roll() * 4.0) as u64)
        } else {
            EventFate::Deliver
        }
    }

    /// What was done so far, by kind.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Runs `invocation`, or kills it part way when `chaos` says so: `None`
/// then, as a crashed Lambda answers nothing.
pub async fn invoke<F: std::future::Future>(
    chaos: Option<&Chaos>,
    who: &'static str,
    invocation: F,
) -> Option<F::Output> {
    let Some(chaos) = chaos else {
        return Some(invocation.await);
    };
    match chaos.kill_after(who) {
        Some(after) => {
            let finished = tokio::time::timeout(after, invocation).await.ok();
            if finished.is_none() {
                chaos.count(who);
            }
            finished
        }
        None => Some(invocation.await),
    }
}
