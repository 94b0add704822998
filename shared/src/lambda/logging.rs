//! Logs: JSON lines through `tracing`, one per decision, with its identifiers
//! (trigger id, client key, message id), never a raw IP address.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The JSON subscriber every binary uses, writing to `writer`.
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = level_filter(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// What `RUST_LOG` lets through: a level (`warn`), or levels by target
/// (`worker=debug,info`); `info` when it is unset, blank or does not parse.
/// (A target filter, not `EnvFilter`: no span or field filters, and no
/// regular expression engine to build and relocate at every cold start.)
fn level_filter(rust_log: Option<&str>) -> Targets {
    // An empty directive would mean "every target, every level".
    let directives = rust_log
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    if directives.is_empty() {
        return Targets::new().with_default(tracing::Level::INFO);
    }
    directives
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO))
}

/// Installs the JSON subscriber on stdout for the whole process.
pub fn init() {
    // A second call (tests, local stack) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(json_subscriber(std::io::stdout));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_sets_the_level_by_target_and_info_is_the_default() {
        for fallback in [
            None,
            Some(""),
            Some(" , "),
            Some("worker=loudest"),
            Some("a=b=c"),
        ] {
            let filter = level_filter(fallback);
            assert!(filter.would_enable("worker", &Level::INFO), "{fallback:?}");
            assert!(
                !filter.would_enable("worker", &Level::DEBUG),
                "{fallback:?}"
            );
        }
        let warn = level_filter(Some("warn"));
        assert!(warn.would_enable("shared::aws", &Level::WARN));
        assert!(!warn.would_enable("shared::aws", &Level::INFO));
        let by_target = level_filter(Some("worker=debug, error"));
        assert!(by_target.would_enable("worker::run", &Level::DEBUG));
        assert!(!by_target.would_enable("worker::run", &Level::TRACE));
        assert!(by_target.would_enable("shared", &Level::ERROR));
        assert!(!by_target.would_enable("shared", &Level::WARN));
    }
}
