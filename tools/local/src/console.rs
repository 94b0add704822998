//! What the local stack shows a person: one line per hop of each trigger,
//! and each e-mail on-call would get, framed so it reads like one.

use shared::rules::time_format::rfc3339;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Where the lines go: stdout for `trigger-ops local`, a buffer in tests.
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

/// Width of the component column.
const WHO_WIDTH: usize = 9;

impl Console {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
        }
    }

    pub fn stdout() -> Self {
        Self::new(Box::new(std::io::stdout()))
    }

    fn write(&self, text: &str) {
        // Nothing invisible reaches the terminal: a value's bidi control or
        // escape sequence is shown as `\u{…}`, never obeyed.
        let text = shared::rules::text::printable_lines(text);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout must not stop the stack.
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    /// A line of the banner or a notice.
    pub fn say(&self, text: &str) {
        self.write(&format!("{text}\n"));
    }

    /// `10:04:12.123  01JD…  worker    started execution …`: one hop of one trigger.
    pub fn hop(&self, now_ms: u64, trigger_id: Option<&str>, who: &str, what: &str) {
        self.write(&hop_line(now_ms, trigger_id, who, what));
    }

    /// An e-mail as on-call reads it.
    pub fn email(&self, subject: &str, body: &str) {
        self.write(&email_text(subject, body));
    }
}

/// One hop line: time of day (UTC), trigger id (or `-`), who, what.
pub fn hop_line(now_ms: u64, trigger_id: Option<&str>, who: &str, what: &str) -> String {
    let stamp = rfc3339(now_ms);
    let time = stamp.get(11..23).unwrap_or(&stamp);
    let trigger = trigger_id.unwrap_or("-");
    format!("{time}  {trigger:<26}  {who:<WHO_WIDTH$} {what}\n")
}

/// The e-mail framed: subject first, then the body as sent.
pub fn email_text(subject: &str, body: &str) -> String {
    let rule = "-".repeat(72);
    let mut text = format!("\n+{rule}\n| e-mail to on-call\n| Subject: {subject}\n|\n");
    for line in body.lines() {
        text.push_str("| ");
        text.push_str(line);
        text.push('\n');
    }
    text.push_str(&format!("+{rule}\n\n"));
    text
}

/// How many of each metric (and dimension value) a run of the local stack
/// published: the summary `trigger-ops local` prints when it stops.
pub fn metrics_summary(lines: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<(String, String, String), u64> =
        std::collections::BTreeMap::new();
    for line in lines {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let directive = &value["_aws"]["CloudWatchMetrics"][0];
        let dimensions: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str())
                    .filter(|n| *n != "Function")
                    .map(|n| format!("{n}={}", value[n].as_str().unwrap_or("?")))
                    .collect()
            })
            .unwrap_or_default();
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            let name = metric["Name"].as_str().unwrap_or("?").to_string();
            let function = value["Function"].as_str().unwrap_or("?").to_string();
            *counts
                .entry((function, name.clone(), dimensions.join(",")))
                .or_default() += value[&name].as_u64().unwrap_or(0);
        }
    }
    if counts.is_empty() {
        return "no metrics published\n".into();
    }
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|((function, name, dims), n)| {
            vec![
                function,
                name,
                if dims.is_empty() {
                    "-".to_string()
                } else {
                    dims
                },
                n.to_string(),
            ]
        })
        .collect();
    ops::report::table(&["FUNCTION", "METRIC", "DIMENSION", "COUNT"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A buffer the console writes to, read back as text.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn nothing_invisible_reaches_the_terminal() {
        let buffer = Buffer::default();
        let console = Console::new(Box::new(buffer.clone()));
        console.hop(
            0,
            None,
            "pipeline",
            "variables: branch=txt.\u{202E}exe\u{1b}[2J",
        );
        console.email("subject", "Input branch  a\u{200B}b\nline two");
        let shown = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(
            shown.contains("branch=txt.\\u{202E}exe\\u{1B}[2J\n"),
            "{shown}"
        );
        assert!(
            shown.contains("| Input branch  a\\u{200B}b\n| line two\n"),
            "{shown}"
        );
        assert!(
            !shown.contains('\u{202E}') && !shown.contains('\u{1b}') && !shown.contains('\u{200B}')
        );
    }

    #[test]
    fn hop_lines_have_time_trigger_who_and_what() {
        let line = hop_line(
            1_795_000_000_123,
            Some("01JD6Y6W9S3F2Q8K7T4V5X0ABC"),
            "worker",
            "started",
        );
        assert_eq!(
            line,
            "11:06:40.123  01JD6Y6W9S3F2Q8K7T4V5X0ABC  worker    started\n"
        );
        assert!(hop_line(0, None, "gateway", "x").contains("  -  "));
    }

    #[test]
    fn emails_show_subject_then_every_body_line() {
        let text = email_text("[FAILED] app", "Pipeline: app\n\nStage: Build");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"| Subject: [FAILED] app"));
        assert!(lines.contains(&"| Pipeline: app"));
        assert!(lines.contains(&"| Stage: Build"));
        let subject = lines.iter().position(|l| l.contains("Subject")).unwrap();
        let body = lines.iter().position(|l| l.contains("Pipeline:")).unwrap();
        assert!(subject < body);
    }
    #[test]
    fn the_metrics_summary_counts_each_metric_and_dimension() {
        use shared::rules::metrics::{emf_count, ACCEPTED, REJECTED};
        let lines = vec![
            emf_count("ns", "ingress", ACCEPTED, None, 1),
            emf_count("ns", "ingress", ACCEPTED, None, 2),
            emf_count("ns", "ingress", REJECTED, Some(("Scope", "client")), 3),
            "not a metric line".to_string(),
        ];
        assert_eq!(
            metrics_summary(&lines),
            "FUNCTION  METRIC    DIMENSION     COUNT\n\
             ingress   Accepted  -             2\n\
             ingress   Rejected  Scope=client  1\n"
        );
        assert_eq!(metrics_summary(&[]), "no metrics published\n");
    }
}
