//! `trigger-ops`: the operators' tool, room by room.
//!
//! - [`cli`]: the command line; [`dispatch`]: one command line, run
//!   ([`run`]); [`targets`]: which table and queues it acts on;
//!   [`error`]: what goes wrong; [`report`]: what it prints.
//! - One module per command group: [`dlq`] (and its queue work, which
//!   [`events`] shares), [`triggers`], [`clients`], [`keys`], [`networks`],
//!   [`pipelines`], [`secret`], [`account`]; `local` hands over to
//!   `trigger-local`.

pub mod account;
pub mod cli;
pub mod clients;
pub mod dispatch;
pub mod dlq;
pub mod error;
pub mod events;
pub mod keys;
pub mod networks;
pub mod pipelines;
pub mod report;
pub mod secret;
pub mod targets;
pub mod triggers;

pub use dispatch::{run, Context, Ran};
pub use error::OpsError;
