//! The chaos run: the whole local stack driven by many triggers while
//! faults happen together ([`crate::faults`]), then every accepted trigger
//! held to the system's promise (docs/testing.md, "The chaos run").
//!
//! - [`run`]: the driver, and [`invariants`]: the checks over everything it
//!   recorded.

pub mod invariants;
pub mod run;

/// The run's pipelines, each a CodePipeline of the run's own
/// (`<prefix>-app`, …): `app` coalesces (three `ref`s), `solo` does not,
/// `broken` fails in Build.
pub const PUBLIC: [&str; 3] = ["app", "solo", "broken"];
