//! The pipeline-trigger domain and its AWS adapters.
//!
//! Pure rules (no I/O, unit-tested): [`config`], [`client_key`], [`quota`],
//! [`http`], [`message`], [`trigger`].
//! Adapters over the official SDK clients (tested against the moto emulator):
//! [`aws`] (the one client builder), [`table`] (DynamoDB), [`queue`] (SQS).
//! Process plumbing: [`logging`], [`lambda`], [`clock`].

pub mod aws;
pub mod client_key;
pub mod clock;
pub mod config;
pub mod email;
pub mod event_claim;
pub mod http;
pub mod lambda;
pub mod lambda_events;
pub mod logging;
pub mod message;
pub mod permissions;
pub mod pipeline;
pub mod pipeline_event;
#[cfg(feature = "provision")]
pub mod provision;
pub mod queue;
pub mod quota;
pub mod retry;
pub mod table;
pub mod time_format;
pub mod topic;
pub mod trigger;
