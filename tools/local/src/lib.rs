//! The local stack (`trigger-local`, also `trigger-ops local`): the whole
//! system on this machine, against AWS engines on loopback. The three functions run as libraries, the same
//! handler code as the Lambdas; this module plays the parts AWS plays around
//! them:
//!
//! - [`gateway`]: API Gateway (HTTP → REST API event → ingress), and
//!   [`edge`]: what it and the WAF answer themselves;
//! - [`event_source`]: the event source mapping (work queue → worker);
//! - [`pipeline_runs`]: CodePipeline's state changes and history;
//! - [`rule_target`]: the EventBridge rule's target (→ notifier);
//! - [`inbox`]: on-call reading the e-mails.
//!
//! [`stack`] starts it all ([`start`]); [`resources`] creates what
//! Terraform creates; [`stopping`] is the stop signal and the queue loop
//! every part shares; [`error`] says what went wrong; [`console`] prints.
//! [`chaos`] drives the whole stack under the [`faults`] it injects.

pub mod api_client;
pub mod chaos;
pub mod cli;
pub mod console;
pub mod edge;
pub mod error;
pub mod event_source;
pub mod faults;
pub mod gateway;
pub mod http_server;
pub mod inbox;
pub mod lambda_api;
pub mod outage;
pub mod pipeline_runs;
pub mod resources;
pub mod rule_target;
pub mod settler;
pub mod stack;
pub mod stopping;

pub use error::LocalError;
pub use stack::{
    start, start_bench, Fault, FunctionCalls, LocalOptions, LocalStack, DEFAULT_FAILING,
    DEFAULT_PIPELINES, DEFAULT_PIPELINE_SETTINGS, LOCAL_WORKER_ROLE_ARN,
};
pub use stopping::Stopping;
