//! The HTTP API, without I/O, in three rooms: [`event`] (API Gateway's
//! events in), [`response`] (every response out, errors as problem+json
//! through one mapping) and [`trigger_api`] (routes, the trigger body, the
//! catalog, the 202). docs/reference/http-api.md is the reference.

pub mod event;
pub mod response;
pub mod trigger_api;
