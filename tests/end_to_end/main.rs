//! End to end: the local stack (`trigger-ops local`) on the emulator, driven
//! over HTTP like a user drives it. Each trigger is followed through every
//! hop: POST → queue → worker → pipeline → EventBridge rule → notifier → e-mail.
//!
//! Each test runs its own stack with its own resource prefix and pipelines,
//! and sends from its own loopback address, so tests share one emulator
//! without seeing each other's triggers.

mod coalescing;
mod edge;
mod harness;
mod hops;
mod hostile;
mod inputs;
mod lanes;
mod operators;
mod page;
mod quota;
mod recovery;
