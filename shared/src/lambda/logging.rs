//! Logs: JSON lines through `tracing`, one per decision, with its identifiers
//! (trigger id, client key, message id), never a raw IP address.

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The JSON subscriber every binary uses, writing to `writer`, filtered by
/// `RUST_LOG` ([`level_filter`]).
pub fn json_subscriber<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    filtered(
        writer,
        level_filter(std::env::var("RUST_LOG").ok().as_deref()),
    )
}

fn filtered<W>(writer: W, filter: Targets) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        // The builder's own cap is `info`: `filter` alone decides.
        .with_max_level(LevelFilter::TRACE)
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
    Some(directives)
        .filter(|directives| !directives.is_empty())
        .and_then(|directives| directives.parse().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
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

    /// The subscriber writes what the filter lets through and nothing else:
    /// `debug` asked for is `debug` written (the fmt builder's own `info`
    /// cap does not apply).
    #[test]
    fn the_subscriber_writes_exactly_what_the_filter_lets_through() {
        #[derive(Clone, Default)]
        struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for (rust_log, written) in [
            (None, vec!["info", "warn"]),
            (Some("debug"), vec!["debug", "info", "warn"]),
            (Some("warn"), vec!["warn"]),
        ] {
            let lines = Lines::default();
            let sink = lines.clone();
            let subscriber = filtered(move || sink.clone(), level_filter(rust_log));
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(said = "trace");
                tracing::debug!(said = "debug");
                tracing::info!(said = "info");
                tracing::warn!(said = "warn");
            });
            let text = String::from_utf8(lines.0.lock().map(|b| b.clone()).unwrap_or_default())
                .unwrap_or_default();
            let said: Vec<String> = text
                .lines()
                .map(|line| {
                    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                    v["said"].as_str().unwrap_or_default().to_string()
                })
                .collect();
            assert_eq!(said, written, "RUST_LOG={rust_log:?}: {text}");
        }
    }
}
