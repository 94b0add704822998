//! The decisions, pure: no I/O, no SDK types, no async. Each is a plain
//! function of its inputs with unit and property tests beside it; the
//! adapters (`aws/`) and the handlers call them.
//!
//! - [`client_key`]: a client address to its keyed, non-reversible key;
//!   [`keys`]: trigger keys, the keyed lane.
//! - [`quota`]: the rolling-window quota and the global budget;
//!   [`refusals`]: a warm instance's memory of whom it just refused.
//! - [`http`]: API Gateway events in, routes, bodies, every response out;
//!   [`cors`]: who may call from a browser; [`page`]: the public page.
//! - [`trigger`]: the trigger record and its ids; [`message`]: the work queue message.
//! - [`pipelines`]: the allowlist, pipeline names, execution states.
//! - [`inputs`]: each pipeline's settings and typed inputs; request values checked.
//! - [`pipeline_event`]: the EventBridge state change the notifier reads.
//! - [`runs`]: triggers coalesced into runs; a CodePipeline's lane.
//! - [`stages`]: a run's stages, forward only, in the order they started.
//! - [`retry`]: transient or permanent, and how long to wait;
//!   [`settle`]: which records the last double fault left in limbo.
//! - [`metrics`]: Embedded Metric Format lines.
//! - [`email`]: the on-call e-mail; [`time_format`]: RFC 3339 and seconds.
//! - [`text`]: what a value may hold; text shown with nothing invisible.
//!
//! `shared/tests/layout.rs` (run by `scripts/test`) keeps these files pure:
//! no SDK, async runtime or Runtime API item, no import from the adapters,
//! the plumbing or the configuration.

pub mod client_key;
pub mod cors;
pub mod email;
pub mod http;
pub mod inputs;
pub mod keys;
pub mod message;
pub mod metrics;
pub mod network_groups;
pub mod page;
pub mod pipeline_event;
pub mod pipelines;
pub mod quota;
pub mod refusals;
pub mod retry;
pub mod runs;
pub mod settle;
pub mod stages;
pub mod status;
pub mod text;
pub mod time_format;
pub mod trigger;
