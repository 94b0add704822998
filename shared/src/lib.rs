//! The pipeline-trigger domain and its AWS adapters, in three rooms:
//!
//! - [`rules`]: the decisions, pure (no I/O, no SDK types, no async).
//! - [`aws`]: one adapter per AWS service or concern over the official SDK
//!   clients, and the one client builder; tested against the real engines
//!   (DynamoDB Local, moto).
//! - [`lambda`]: the Runtime API plumbing: init errors, logging, the event
//!   shapes AWS sends.
//!
//! Beside them: [`config`] (the one configuration loader) and [`clock`]
//! (where "now" comes from).

pub mod aws;
pub mod clock;
pub mod config;
pub mod lambda;
pub mod rules;
