//! Which failures are worth retrying, and how long to wait: pure rules.

use std::time::Duration;

/// What to do with a message whose processing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Throttling, 5xx, timeouts, connection errors: try again later.
    Transient,
    /// A bad message, an unknown pipeline, a validation error: never retry.
    Permanent,
}

/// A failure with the reason the DLQ and the ledger record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    pub kind: FailureKind,
    /// Short machine-readable code, e.g. `PipelineNotFound`, `Throttling`.
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn transient(code: &str, message: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// Service error codes of `StartPipelineExecution` that no retry can fix.
const PERMANENT_CODES: &[&str] = &[
    "PipelineNotFoundException",
    "ValidationException",
    "InvalidParameterException",
    "AccessDeniedException",
    "UnrecognizedClientException",
];

/// Classifies an AWS service error by its code; unknown codes are transient
/// (retried, then dead-lettered after `MAX_ATTEMPTS`), which loses nothing.
pub fn classify_service_error(code: Option<&str>) -> FailureKind {
    match code {
        Some(code) if PERMANENT_CODES.contains(&code) => FailureKind::Permanent,
        _ => FailureKind::Transient,
    }
}

/// The `-Exception` suffix dropped: `PipelineNotFoundException` → `PipelineNotFound`.
pub fn short_code(code: &str) -> &str {
    code.strip_suffix("Exception").unwrap_or(code)
}

/// First retry delay; it doubles with each delivery.
pub const BASE_DELAY: Duration = Duration::from_secs(30);
/// Longest retry delay.
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);

/// How long a message stays invisible after its `receive_count`-th failed
/// delivery: 30 s, 60 s, 120 s, … capped at 15 minutes.
pub fn retry_delay(receive_count: u32) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_then_cap() {
        let secs: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900, 900]);
        assert_eq!(retry_delay(0).as_secs(), 30);
        assert_eq!(retry_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn service_errors_are_classified() {
        assert_eq!(
            classify_service_error(Some("PipelineNotFoundException")),
            FailureKind::Permanent
        );
        assert_eq!(
            classify_service_error(Some("ValidationException")),
            FailureKind::Permanent
        );
        assert_eq!(
            classify_service_error(Some("ThrottlingException")),
            FailureKind::Transient
        );
        assert_eq!(
            classify_service_error(Some("ConcurrentPipelineExecutionsLimitExceededException")),
            FailureKind::Transient
        );
        assert_eq!(
            classify_service_error(Some("SomethingNew")),
            FailureKind::Transient
        );
        assert_eq!(classify_service_error(None), FailureKind::Transient);
    }

    #[test]
    fn short_codes() {
        assert_eq!(short_code("PipelineNotFoundException"), "PipelineNotFound");
        assert_eq!(short_code("Throttling"), "Throttling");
    }
}
