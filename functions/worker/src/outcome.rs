//! What became of a message: how a valid one was handled, and what SQS is
//! told (done, or deliver again). `conclude.rs` turns the one into the
//! other.

use shared::rules::runs::RunLane;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done with: started, already started, skipped or dead-lettered.
    Done,
    /// Report as a batch item failure: SQS delivers it again.
    Retry,
}

/// How a valid message was handled.
pub(crate) enum Handled {
    Started {
        execution_id: String,
        /// Its run's CodePipeline, when the run queued for it.
        lane: Option<String>,
        /// Which lane its run waited in (the metrics count per lane).
        by: RunLane,
    },
    AlreadyStarted {
        execution_id: String,
        lane: Option<String>,
    },
    NoRecord,
    /// It joined a pending run another trigger opened.
    Joined {
        run_id: String,
    },
    /// Its run waits in its CodePipeline's queue: it costs nothing while it
    /// waits; the end of the run before it wakes it.
    Waiting {
        lane: String,
        position: Option<usize>,
    },
    /// Its pipeline's queue was full: refused, charged nothing.
    Refused {
        retry_after_s: u64,
        /// The trigger's lane: an anonymous lane refusing for minutes on
        /// end is a flood (the alarm `anonymous-lane-full`).
        by: RunLane,
    },
    /// Its client was told 503 (the ingress could not settle the
    /// admission): what it took is given back, nothing runs.
    GivenBack,
    /// Its run was flushed by an operator: refused, nothing given back.
    Flushed,
    /// A copy (a lane's poll or wake) of a trigger already in the DLQ: not
    /// tried again, so the DLQ holds it once. A replay sets the record back
    /// to `queued` before it moves the message.
    InTheDlq {
        lane: String,
    },
}
