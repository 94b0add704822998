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

#[cfg(test)]
mod tests {
    use super::*;

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
}
