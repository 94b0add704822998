//! The e-mail on-call gets for a pipeline outcome: a subject that fits SNS's
//! rules whatever the input, and a short, aligned plain-text body with the
//! reason for a failure first.

use crate::rules::pipeline_event::PipelineEvent;
use crate::rules::status::PipelineState;
use crate::rules::text::printable;
use crate::rules::time_format::rfc3339;
use crate::rules::trigger::TriggerRecord;
use std::fmt::Write;
use std::time::Duration;

/// SNS refuses an e-mail subject of more than 100 characters.
pub const MAX_SUBJECT: usize = 100;
/// The longest piece of CodePipeline-supplied text shown (error messages can be long).
const MAX_TEXT: usize = 600;
/// Failed actions listed, at most.
const MAX_ACTIONS: usize = 5;
const LABEL_WIDTH: usize = 14;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub body: String,
}

/// One action that failed in the execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedAction {
    pub stage: String,
    pub action: String,
    /// `ErrorDetails.code`, e.g. `JobFailed`.
    pub code: Option<String>,
    /// `ErrorDetails.message`, else the action's execution summary.
    pub message: Option<String>,
    /// Link to the action's own run (CodeBuild build, ...), when it has one.
    pub url: Option<String>,
}

/// Why an execution failed, as far as CodePipeline could tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureDetails {
    /// The execution's `statusSummary`.
    pub summary: Option<String>,
    pub actions: Vec<FailedAction>,
    /// Lookups that failed (the e-mail says so instead of guessing).
    pub unavailable: Vec<String>,
}

/// The CodePipeline console page of one execution, in the event's region.
pub fn console_url(region: &str, pipeline: &str, execution_id: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline}/executions/{execution_id}/timeline?region={region}"
    )
}

/// Printable ASCII only: anything else becomes `?` (SNS subjects are ASCII
/// without line breaks).
fn ascii(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// One line of at most `max` characters: control characters and runs of
/// ASCII whitespace become one space; any other character that is not
/// plainly visible (a no-break space, a Hangul filler, a bidi control) is
/// shown as its escape, never obeyed or merged.
fn one_line(text: &str, max: usize) -> String {
    let spaced = text
        .split(|c: char| c.is_ascii_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    // Bidi controls and zero-width characters are shown, never obeyed.
    let cleaned = printable(&spaced).into_owned();
    if cleaned.chars().count() <= max {
        cleaned
    } else {
        let mut cut: String = cleaned.chars().take(max.saturating_sub(3)).collect();
        cut.push_str("...");
        cut
    }
}

pub fn subject(state: PipelineState, pipeline: &str, execution_id: &str) -> String {
    let prefix = format!("[{}] ", state.as_str());
    let short_id: String = ascii(execution_id).chars().take(8).collect();
    let suffix = format!(" - execution {short_id}");
    let budget = MAX_SUBJECT - prefix.len() - suffix.len();
    let name = ascii(&one_line(pipeline, usize::MAX));
    let name = if name.len() <= budget {
        name
    } else {
        format!("{}...", &name[..budget - 3])
    };
    format!("{prefix}{name}{suffix}")
}

struct Body(String);

impl Body {
    fn line(&mut self, label: &str, value: &str) {
        let _ = writeln!(self.0, "{label:<LABEL_WIDTH$} {value}");
    }

    fn blank(&mut self) {
        self.0.push('\n');
    }
}

fn headline(state: PipelineState) -> &'static str {
    match state {
        PipelineState::Succeeded => "succeeded",
        PipelineState::Failed => "FAILED",
        PipelineState::Stopped => "was stopped",
        PipelineState::Stopping => "is stopping",
        PipelineState::Superseded => "was superseded by a newer execution",
        PipelineState::Canceled => "was canceled",
        PipelineState::Started => "started",
        PipelineState::Resumed => "resumed",
    }
}

fn write_failure(body: &mut Body, failure: &FailureDetails) {
    for action in failure.actions.iter().take(MAX_ACTIONS) {
        body.line("Failed stage", &one_line(&action.stage, 100));
        body.line("Failed action", &one_line(&action.action, 100));
        let error = match (&action.code, &action.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => "no error message given".into(),
        };
        body.line("Error", &one_line(&error, MAX_TEXT));
        if let Some(url) = action.url.as_deref().filter(|u| is_https_url(u)) {
            body.line("Details", url);
        }
    }
    if failure.actions.len() > MAX_ACTIONS {
        body.line(
            "",
            &format!(
                "and {} more failed actions",
                failure.actions.len() - MAX_ACTIONS
            ),
        );
    }
    if let Some(summary) = &failure.summary {
        body.line("Summary", &one_line(summary, MAX_TEXT));
    }
    if failure.actions.is_empty() && failure.summary.is_none() && failure.unavailable.is_empty() {
        body.line("Reason", "CodePipeline gave no reason");
    }
    for problem in &failure.unavailable {
        body.line(
            "Reason",
            &format!("unavailable ({})", one_line(problem, MAX_TEXT)),
        );
    }
    body.blank();
}

fn is_https_url(text: &str) -> bool {
    text.starts_with("https://") && text.len() <= 2048 && text.chars().all(|c| c.is_ascii_graphic())
}

/// Who asked for an execution: the public trigger that started it (with
/// coalescing, the first of its run) and how many triggers it served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub first: TriggerRecord,
    pub triggers: u64,
    /// How long the run waited for its pipeline: from its first trigger to
    /// its start (known once the start is recorded).
    pub waited: Option<Duration>,
}

impl Origin {
    /// An execution one trigger asked for.
    pub fn single(trigger: TriggerRecord) -> Self {
        Self {
            first: trigger,
            triggers: 1,
            waited: None,
        }
    }
}

/// The e-mail for one state change; `origin` when public triggers started
/// the execution, `failure` for `FAILED`.
pub fn render(
    event: &PipelineEvent,
    origin: Option<&Origin>,
    failure: Option<&FailureDetails>,
) -> Email {
    let mut body = Body(String::new());
    let _ = writeln!(
        body.0,
        "Pipeline {} {}.",
        event.pipeline,
        headline(event.state)
    );
    body.blank();
    if let Some(failure) = failure {
        write_failure(&mut body, failure);
    }
    body.line("Pipeline", &event.pipeline);
    body.line("State", event.state.as_str());
    body.line("Execution", &event.execution_id);
    if let Some(start) = event.start_time {
        body.line("Started", &rfc3339(start));
    }
    if let Some(time) = event.time {
        body.line("Time", &rfc3339(time));
    }
    if let (Some(start), Some(time)) = (event.start_time, event.time) {
        if time >= start {
            let seconds = Duration::from_secs((time - start) / 1000);
            body.line("Duration", &humantime::format_duration(seconds).to_string());
        }
    }
    body.line(
        "Console",
        &console_url(&event.region, &event.pipeline, &event.execution_id),
    );
    body.blank();
    match origin {
        Some(origin) => write_origin(&mut body, origin),
        None => body.line("Started by", "not a public trigger"),
    }
    Email {
        subject: subject(event.state, &event.pipeline, &event.execution_id),
        body: body.0,
    }
}

/// Who started it: the trigger (or the first of those coalesced), when,
/// how long it waited, its client by key prefix, its trigger key by name,
/// and its inputs, one line each.
fn write_origin(body: &mut Body, origin: &Origin) {
    let Origin {
        first: trigger,
        triggers,
        waited,
    } = origin;
    if *triggers > 1 {
        body.line("Triggers", &format!("{triggers}, coalesced into this run"));
        body.line("First trigger", &trigger.trigger_id);
    } else {
        body.line("Trigger", &trigger.trigger_id);
    }
    body.line("Requested at", &rfc3339(trigger.requested_at));
    if let Some(waited) = waited {
        let seconds = Duration::from_secs(waited.as_secs());
        body.line(
            "Waited",
            &format!(
                "{} for the pipeline before it started",
                humantime::format_duration(seconds)
            ),
        );
    }
    body.line("Client key", &format!("{}...", trigger.client_key.prefix()));
    // A trigger key by its name (never the key): who on-call can ask.
    if let Some(name) = &trigger.key {
        body.line("Trigger key", name);
    }
    body.line("Public name", &trigger.pipeline);
    if !trigger.inputs.is_empty() {
        body.blank();
        // One line each, control characters and line breaks removed:
        // a value can never add a line or a header of its own.
        for (name, value) in &trigger.inputs {
            body.line(
                &format!("Input {}", one_line(name, 40)),
                &one_line(&value.variable_value(), MAX_TEXT),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::client_key::ClientKey;
    use crate::rules::inputs::InputValue;
    use crate::rules::status::TriggerStatus;
    use crate::rules::time_format::parse_rfc3339;

    fn event(state: PipelineState) -> PipelineEvent {
        PipelineEvent {
            event_id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718".into(),
            region: "eu-west-1".into(),
            pipeline: "enterprise-app-pipeline".into(),
            execution_id: "1a2b3c4d-1111-2222-3333-444455556666".into(),
            state,
            time: parse_rfc3339("2026-11-21T10:04:12Z"),
            start_time: parse_rfc3339("2026-11-21T10:00:00Z"),
            trigger: None,
        }
    }

    fn trigger() -> TriggerRecord {
        TriggerRecord {
            trigger_id: "01KAKXR9VJ4N6P8Q2R3S4T5V6W".into(),
            pipeline: "app".into(),
            target: "enterprise-app-pipeline".into(),
            status: TriggerStatus::Started,
            requested_at: parse_rfc3339("2026-11-21T09:59:58.250Z").unwrap(),
            updated_at: parse_rfc3339("2026-11-21T09:59:59Z").unwrap(),
            client_key: ClientKey::from_stored(&"ab12".repeat(16)).unwrap(),
            networks: Vec::new(),
            previous_keys: Vec::new(),
            global_window: None,
            inputs: Default::default(),
            execution_id: Some("1a2b3c4d-1111-2222-3333-444455556666".into()),
            error_code: None,
            error_message: None,
            run_id: None,
            key: None,
            expires_at: 1_800_000_000,
            stages: Vec::new(),
            refusal: None,
        }
    }

    const CONSOLE: &str = "https://eu-west-1.console.aws.amazon.com/codesuite/codepipeline/pipelines/enterprise-app-pipeline/executions/1a2b3c4d-1111-2222-3333-444455556666/timeline?region=eu-west-1";

    #[test]
    fn inputs_are_listed_one_line_each_without_control_characters() {
        let mut trigger = trigger();
        trigger.inputs.insert(
            "branch".into(),
            InputValue::Text("main\r\nBcc: attacker@example.com\u{7}".into()),
        );
        trigger
            .inputs
            .insert("dry_run".into(), InputValue::Bool(true));
        trigger
            .inputs
            .insert("replicas".into(), InputValue::Number(3.into()));
        let email = render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(trigger)),
            None,
        );
        let lines: Vec<&str> = email
            .body
            .lines()
            .filter(|l| l.starts_with("Input "))
            .collect();
        assert_eq!(lines.len(), 3, "{}", email.body);
        assert!(lines[0].starts_with("Input branch"), "{lines:?}");
        assert!(
            lines[0].ends_with("main Bcc: attacker@example.com"),
            "{lines:?}"
        );
        assert!(lines[1].starts_with("Input dry_run") && lines[1].ends_with(" true"));
        assert!(lines[2].starts_with("Input replicas") && lines[2].ends_with(" 3"));
        assert!(!email.body.contains('\r') && !email.body.contains('\u{7}'));
    }

    proptest::proptest! {
        /// Whatever a stored value holds, the body shows every character:
        /// no control, bidi or zero-width character is sent, only its escape.
        #[test]
        fn no_value_puts_an_invisible_character_in_the_body(value in "\\PC{0,20}[\u{0}-\u{1F}\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}\u{FEFF}\u{3164}\u{FFA0}\u{FE0F}\u{34F}\u{2800}\u{A0}\u{3000}]{1,3}\\PC{0,20}") {
            let mut trigger = trigger();
            trigger.inputs.insert("branch".into(), InputValue::Text(value));
            let email = render(&event(PipelineState::Failed), Some(&Origin::single(trigger)), None);
            let body_lines: String = email.body.lines().collect::<Vec<_>>().join("");
            proptest::prop_assert!(crate::rules::text::unreadable(&body_lines)
                .is_none_or(|why| why == crate::rules::text::Unreadable::NotComposed),
                "{:?}", email.body);
            proptest::prop_assert!(!email.subject.chars().any(char::is_control));
        }
    }

    /// Values stored before look-alikes were refused reach on-call as
    /// escapes, never as blanks that read like a space or like nothing.
    #[test]
    fn look_alike_blanks_in_a_value_are_shown_as_escapes() {
        let mut trigger = trigger();
        trigger.inputs.insert(
            "branch".into(),
            InputValue::Text("a\u{3164}b\u{FFA0}c\u{FE0F}d\u{34F}e\u{2800}f\u{A0}g".into()),
        );
        let email = render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(trigger)),
            None,
        );
        assert!(
            email
                .body
                .contains(r"a\u{3164}b\u{FFA0}c\u{FE0F}d\u{34F}e\u{2800}f\u{A0}g"),
            "{}",
            email.body
        );
        assert!(email.body.is_ascii(), "{}", email.body);
    }

    #[test]
    fn a_keyed_trigger_is_named_by_its_key_name() {
        let mut keyed = trigger();
        keyed.key = Some("ci-main".into());
        let email = render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(keyed)),
            None,
        );
        assert!(
            email.body.contains(
                "Client key     ab12ab12ab12...\nTrigger key    ci-main\nPublic name    app\n"
            ),
            "{}",
            email.body
        );
        assert!(!render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(trigger())),
            None
        )
        .body
        .contains("Trigger key"));
    }

    #[test]
    fn succeeded_snapshot() {
        let email = render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(trigger())),
            None,
        );
        assert_eq!(
            email.subject,
            "[SUCCEEDED] enterprise-app-pipeline - execution 1a2b3c4d"
        );
        assert_eq!(
            email.body,
            format!(
                "Pipeline enterprise-app-pipeline succeeded.\n\n{}",
                facts_of("SUCCEEDED")
            )
        );
    }

    /// What an e-mail about `trigger()`'s run lists after its lead: the
    /// execution's facts, then the trigger.
    fn facts_of(state: &str) -> String {
        format!(
            "\
Pipeline       enterprise-app-pipeline
State          {state}
Execution      1a2b3c4d-1111-2222-3333-444455556666
Started        2026-11-21T10:00:00.000Z
Time           2026-11-21T10:04:12.000Z
Duration       4m 12s
Console        {CONSOLE}

Trigger        01KAKXR9VJ4N6P8Q2R3S4T5V6W
Requested at   2026-11-21T09:59:58.250Z
Client key     ab12ab12ab12...
Public name    app
"
        )
    }

    #[test]
    fn a_coalesced_run_says_how_many_triggers_it_served_and_names_the_first() {
        let origin = Origin {
            first: trigger(),
            triggers: 40,
            waited: Some(Duration::from_millis(754_300)),
        };
        let email = render(&event(PipelineState::Succeeded), Some(&origin), None);
        let tail = email.body.split(CONSOLE).nth(1).unwrap();
        assert!(
            tail.starts_with(
                "\n\nTriggers       40, coalesced into this run\nFirst trigger  01KAKXR9VJ4N6P8Q2R3S4T5V6W\nRequested at   2026-11-21T09:59:58.250Z\nWaited         12m 34s for the pipeline before it started\n"
            ),
            "{tail}"
        );
        let single = render(
            &event(PipelineState::Succeeded),
            Some(&Origin::single(trigger())),
            None,
        );
        assert!(!single.body.contains("coalesced"));
    }

    #[test]
    fn failed_snapshot_leads_with_the_reason() {
        let failure = FailureDetails {
            summary: Some("An action in this pipeline failed".into()),
            actions: vec![FailedAction {
                stage: "Build".into(),
                action: "CodeBuild".into(),
                code: Some("JobFailed".into()),
                message: Some("Build failed:\n  exit status 1\r\n".into()),
                url: Some("https://console.aws.amazon.com/codebuild/home#/builds/b-1".into()),
            }],
            unavailable: vec![],
        };
        let email = render(
            &event(PipelineState::Failed),
            Some(&Origin::single(trigger())),
            Some(&failure),
        );
        assert_eq!(
            email.subject,
            "[FAILED] enterprise-app-pipeline - execution 1a2b3c4d"
        );
        assert_eq!(
            email.body,
            format!(
                "\
Pipeline enterprise-app-pipeline FAILED.

Failed stage   Build
Failed action  CodeBuild
Error          JobFailed: Build failed: exit status 1
Details        https://console.aws.amazon.com/codebuild/home#/builds/b-1
Summary        An action in this pipeline failed

{}",
                facts_of("FAILED")
            )
        );
    }

    #[test]
    fn stopped_snapshot_without_a_trigger_or_times() {
        let mut e = event(PipelineState::Stopped);
        e.start_time = None;
        let email = render(&e, None, None);
        assert_eq!(
            email.subject,
            "[STOPPED] enterprise-app-pipeline - execution 1a2b3c4d"
        );
        assert_eq!(
            email.body,
            format!(
                "\
Pipeline enterprise-app-pipeline was stopped.

Pipeline       enterprise-app-pipeline
State          STOPPED
Execution      1a2b3c4d-1111-2222-3333-444455556666
Time           2026-11-21T10:04:12.000Z
Console        {CONSOLE}

Started by     not a public trigger
"
            )
        );
    }

    #[test]
    fn superseded_snapshot() {
        let email = render(&event(PipelineState::Superseded), None, None);
        assert_eq!(
            email.subject,
            "[SUPERSEDED] enterprise-app-pipeline - execution 1a2b3c4d"
        );
        assert!(email.body.starts_with(
            "Pipeline enterprise-app-pipeline was superseded by a newer execution.\n\n"
        ));
    }

    #[test]
    fn a_failed_lookup_is_said_not_guessed() {
        let failure = FailureDetails {
            unavailable: vec!["ListActionExecutions: ThrottlingException: Rate exceeded".into()],
            ..FailureDetails::default()
        };
        let email = render(&event(PipelineState::Failed), None, Some(&failure));
        assert!(email.body.contains(
            "\nReason         unavailable (ListActionExecutions: ThrottlingException: Rate exceeded)\n"
        ));
        let none = render(
            &event(PipelineState::Failed),
            None,
            Some(&FailureDetails::default()),
        );
        assert!(none
            .body
            .contains("\nReason         CodePipeline gave no reason\n"));
    }

    #[test]
    fn subjects_stay_within_the_limit_whatever_the_name() {
        for len in [1, 50, 75, 76, 77, 99, 100, 300] {
            let name = "p".repeat(len);
            for state in PipelineState::ALL {
                let s = subject(state, &name, "1a2b3c4d-1111");
                assert!(s.len() <= MAX_SUBJECT, "{len} {state:?}: {}", s.len());
                assert!(s.starts_with(&format!("[{}] ", state.as_str())));
                assert!(s.ends_with(" - execution 1a2b3c4d"));
                assert!(s.is_ascii() && !s.contains(['\n', '\r']));
            }
        }
        let long = subject(PipelineState::Superseded, &"p".repeat(100), "e");
        assert_eq!(long.len(), MAX_SUBJECT);
        assert!(long.contains("ppp..."));
    }

    #[test]
    fn hostile_text_cannot_break_the_subject_or_body_layout() {
        let s = subject(PipelineState::Failed, "naïve\r\nBcc: x", "ü\n1");
        assert!(s.is_ascii() && !s.contains(['\n', '\r']), "{s}");
        let failure = FailureDetails {
            summary: Some("x".repeat(5000)),
            actions: (0..8)
                .map(|i| FailedAction {
                    stage: format!("S{i}\nState          SUCCEEDED"),
                    action: "A".into(),
                    code: None,
                    message: None,
                    url: Some("javascript:alert(1)".into()),
                })
                .collect(),
            unavailable: vec![],
        };
        let email = render(&event(PipelineState::Failed), None, Some(&failure));
        assert_eq!(email.body.matches("\nState ").count(), 1);
        assert_eq!(email.body.matches("Failed stage").count(), MAX_ACTIONS);
        assert!(email.body.contains("and 3 more failed actions"));
        assert!(!email.body.contains("javascript:"));
        assert!(email.body.lines().all(|l| l.chars().count() <= 700));
    }
}
