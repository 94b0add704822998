//! What the tool prints: aligned tables for people, JSON for scripts (pure).

use crate::clients::{ClientView, TopView};
use crate::dlq::{DlqMessage, QueueCounts, ReplaySummary};
use std::time::Duration;

/// Longest error message shown in a table cell (JSON has it whole).
const MAX_CELL: usize = 60;

fn cell(text: &str, max: usize) -> String {
    // Line breaks and tabs as spaces (a cell is one line); anything else
    // invisible escaped (`\u{202E}`), so a cell reads as it is.
    let spaced: String = text
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let flat = shared::rules::text::printable(&spaced).into_owned();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max - 3).collect();
        cut.push_str("...");
        cut
    }
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            widths[i] = widths[i].max(value.chars().count());
        }
    }
    let line = |values: Vec<String>| {
        let last = values.len() - 1;
        let mut out = String::new();
        for (i, value) in values.into_iter().enumerate() {
            if i == last {
                out.push_str(&value);
            } else {
                let pad = widths[i] - value.chars().count();
                out.push_str(&value);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

pub fn age(seconds: Option<u64>) -> String {
    match seconds {
        Some(s) => humantime::format_duration(Duration::from_secs(s)).to_string(),
        None => "-".into(),
    }
}

pub fn stats_text(work: &QueueCounts, dlq: &QueueCounts, oldest_age: Option<u64>) -> String {
    let row = |name: &str, c: &QueueCounts| {
        vec![
            name.to_string(),
            c.visible.to_string(),
            c.in_flight.to_string(),
            c.delayed.to_string(),
        ]
    };
    let mut out = table(
        &["QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED"],
        &[row("work", work), row("dlq", dlq)],
    );
    out.push_str(&format!("oldest DLQ message: {}\n", age(oldest_age)));
    out
}

pub fn stats_json(work: &QueueCounts, dlq: &QueueCounts, oldest_age: Option<u64>) -> String {
    serde_json::json!({
        "work_queue": work,
        "dlq": dlq,
        "dlq_oldest_age_seconds": oldest_age,
    })
    .to_string()
}

fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

pub fn messages_text(messages: &[DlqMessage]) -> String {
    if messages.is_empty() {
        return "no messages\n".into();
    }
    let rows: Vec<Vec<String>> = messages
        .iter()
        .map(|m| {
            vec![
                or_dash(&m.trigger_id),
                cell(&or_dash(&m.pipeline), 40),
                cell(&or_dash(&m.error_code), 30),
                m.receive_count.to_string(),
                or_dash(&m.first_sent_at),
                age(m.age_seconds),
                cell(&or_dash(&m.error_message), MAX_CELL),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "TRIGGER",
            "PIPELINE",
            "ERROR CODE",
            "RECEIVES",
            "FIRST SENT",
            "AGE",
            "ERROR MESSAGE",
        ],
        &rows,
    );
    let unreadable: Vec<&DlqMessage> = messages
        .iter()
        .filter(|m| m.body_preview.is_some())
        .collect();
    if !unreadable.is_empty() {
        out.push_str("\nbodies that are not work messages (escaped):\n");
        for m in unreadable {
            out.push_str(&format!(
                "  {}  {}\n",
                m.message_id,
                m.body_preview.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

pub fn messages_json(messages: &[DlqMessage]) -> String {
    serde_json::json!({ "messages": messages }).to_string()
}

pub fn replay_text(summary: &ReplaySummary) -> String {
    let mut out = String::new();
    if summary.dry_run {
        out.push_str("dry run: nothing moved; these would move:\n");
        out.push_str(&messages_text(&summary.messages));
        out.push_str(&format!(
            "would move {}, skipped by filter {}\n",
            summary.messages.len(),
            summary.skipped_by_filter
        ));
        return out;
    }
    if summary.stopped_early {
        out.push_str("stopped (Ctrl-C or SIGTERM) after the batch in flight\n");
    }
    for failure in &summary.failures {
        out.push_str(&format!("failure: {failure}\n"));
    }
    out.push_str(&format!(
        "moved {}, skipped by filter {}, failed {}",
        summary.moved, summary.skipped_by_filter, summary.failed
    ));
    if summary.came_back > 0 {
        out.push_str(&format!(
            ", came back {} (given up again while this replay ran: left for the next one)",
            summary.came_back
        ));
    }
    if summary.records_not_updated > 0 {
        out.push_str(&format!(
            " ({} left in the DLQ: their trigger records could not be set back to queued)",
            summary.records_not_updated
        ));
    }
    out.push('\n');
    out.push_str(&left_line(summary.left));
    out
}

/// The last line of a replay: what the queue still holds, honestly.
fn left_line(left: Option<u64>) -> String {
    match left {
        Some(n) => format!("the DLQ holds {n} now\n"),
        None => "the DLQ could not be counted afterwards (see `dlq stats`)\n".to_string(),
    }
}

/// A command's answer: `value` as JSON with `--json`, else `text` of it.
pub fn render<T: serde::Serialize>(json: bool, value: &T, text: impl Fn(&T) -> String) -> String {
    if json {
        serde_json::to_string(value).unwrap_or_default()
    } else {
        text(value)
    }
}

/// A command's answer of several values: `object` (made with
/// `serde_json::json!`) with `--json`, else the `text` people read.
pub fn answer(json: bool, object: serde_json::Value, text: impl FnOnce() -> String) -> String {
    if json {
        object.to_string()
    } else {
        text()
    }
}

/// `clients show` for people.
pub fn client_text(view: &ClientView) -> String {
    let window = humantime::format_duration(Duration::from_secs(view.window_seconds));
    let mut rows = vec![
        vec![
            "client".to_string(),
            format!("{} (key {})", view.client, view.client_key),
        ],
        vec![
            "quota".to_string(),
            format!(
                "{} of {} used in {window}, {} left",
                view.used, view.limit, view.remaining
            ),
        ],
    ];
    if !view.taken_at.is_empty() {
        rows.push(vec!["taken at".into(), view.taken_at.join(", ")]);
    }
    if let Some(at) = &view.next_frees_at {
        rows.push(vec!["next frees".into(), at.clone()]);
    }
    for network in &view.networks {
        let mut line = format!(
            "{} (key {}): {} of {} used, {} left",
            network.network, network.key, network.used, network.limit, network.remaining
        );
        if let Some(at) = &network.next_frees_at {
            line.push_str(&format!("; next frees {at}"));
        }
        rows.push(vec![format!("network {}", network.level), line]);
    }
    if view.blocks.is_empty() {
        rows.push(vec!["blocked".into(), "no".into()]);
    }
    for block in &view.blocks {
        rows.push(vec![
            "blocked".into(),
            format!(
                "{} {} until {} (since {}): {}",
                block.scope,
                block.covers,
                block.until,
                block.blocked_at,
                cell(&block.reason, MAX_CELL)
            ),
        ]);
    }
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!("{:<11} {}\n", row[0], row[1]));
    }
    out
}

/// The lane a trigger came in: `anonymous`, or `key:<name>`.
fn lane_text(view: &shared::rules::trigger::TriggerView) -> String {
    match &view.key {
        Some(name) => format!("key:{}", cell(name, 64)),
        None => view.lane.as_str().to_string(),
    }
}

/// `triggers list` for people.
pub fn triggers_text(listed: &[crate::triggers::Listed]) -> String {
    if listed.is_empty() {
        return "no triggers\n".into();
    }
    let rows: Vec<Vec<String>> = listed
        .iter()
        .map(|l| {
            vec![
                l.view.trigger_id.clone(),
                l.view.requested_at.clone(),
                cell(&l.view.pipeline, 30),
                l.view.status.as_str().to_string(),
                if l.view.coalesced { "joined" } else { "" }.to_string(),
                or_dash(&l.view.execution_id),
                lane_text(&l.view),
                l.client_key.clone(),
            ]
        })
        .collect();
    table(
        &[
            "TRIGGER",
            "REQUESTED",
            "PIPELINE",
            "STATUS",
            "RUN",
            "EXECUTION",
            "LANE",
            "CLIENT",
        ],
        &rows,
    )
}

/// `triggers show` for people.
pub fn trigger_text(shown: &crate::triggers::Shown) -> String {
    let t = &shown.trigger;
    let mut out = format!(
        "trigger     {}\npipeline    {} ({})\nstatus      {}\nrequested   {}\nupdated     {}\nlane        {}\nclient key  {}\n",
        t.view.trigger_id,
        t.view.pipeline,
        t.target,
        t.view.status.as_str(),
        t.view.requested_at,
        t.view.updated_at,
        lane_text(&t.view),
        t.client_key
    );
    if let Some(inputs) = t.view.inputs.as_object().filter(|i| !i.is_empty()) {
        for (name, value) in inputs {
            out.push_str(&format!(
                "input       {} = {}\n",
                cell(name, 40),
                cell(&value.to_string(), MAX_CELL)
            ));
        }
    }
    if let Some(code) = &shown.error_code {
        out.push_str(&format!(
            "error       {code}: {}\n",
            cell(shown.error_message.as_deref().unwrap_or(""), MAX_CELL)
        ));
    }
    match &shown.run {
        None => out.push_str("run         none (not coalesced)\n"),
        Some(run) => out.push_str(&format!(
            "run         {} ({}, {} trigger(s), opened {}){}\nexecution   {}\n",
            run.run_id,
            run.status.as_str(),
            run.triggers,
            run.opened_at,
            if t.view.coalesced {
                ", joined"
            } else {
                ", opened by this trigger"
            },
            run.execution_id.as_deref().unwrap_or("-")
        )),
    }
    if t.view.stages.is_empty() {
        out.push_str("stages      none reported yet\n");
    }
    for stage in &t.view.stages {
        out.push_str(&format!(
            "stage       {} {} ({})\n",
            cell(&stage.name, 40),
            stage.state,
            stage.updated_at
        ));
    }
    if !shown.coalesced_with.is_empty() {
        out.push_str("\ncoalesced with:\n");
        out.push_str(&triggers_text(&shown.coalesced_with));
    }
    out
}

/// `clients top`: one row per key, the busiest first.
pub fn top_text(top: &[TopView]) -> String {
    if top.is_empty() {
        return "no trigger in that window\n".into();
    }
    let rows: Vec<Vec<String>> = top
        .iter()
        .map(|t| {
            vec![
                t.level.clone(),
                t.key.clone(),
                t.triggers.to_string(),
                t.refused.to_string(),
                t.clients.to_string(),
                t.first_at.clone(),
                t.last_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            "LEVEL", "KEY", "TRIGGERS", "REFUSED", "CLIENTS", "FIRST", "LAST",
        ],
        &rows,
    )
}

/// `events stats`.
pub fn events_stats_text(counts: &QueueCounts, oldest_age: Option<u64>) -> String {
    let mut out = table(
        &["QUEUE", "VISIBLE", "IN FLIGHT", "DELAYED"],
        &[vec![
            "events dlq".into(),
            counts.visible.to_string(),
            counts.in_flight.to_string(),
            counts.delayed.to_string(),
        ]],
    );
    out.push_str(&format!("oldest event: {}\n", age(oldest_age)));
    out
}

/// `events peek`: one row per event, oldest first.
pub fn events_text(events: &[crate::events::DeadEvent]) -> String {
    if events.is_empty() {
        return "no events\n".into();
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                or_dash(&e.pipeline),
                or_dash(&e.execution_id),
                or_dash(&e.state),
                e.receive_count.to_string(),
                or_dash(&e.first_sent_at),
                age(e.age_seconds),
                cell(e.reason.as_deref().unwrap_or("-"), MAX_CELL),
            ]
        })
        .collect();
    table(
        &[
            "PIPELINE",
            "EXECUTION",
            "STATE",
            "RECEIVES",
            "FIRST SENT",
            "AGE",
            "WHY",
        ],
        &rows,
    )
}

/// `events replay`: what was handed to the notifier, and what failed.
pub fn events_replay_text(summary: &crate::events::EventsReplay) -> String {
    let mut out = String::new();
    if summary.dry_run {
        out.push_str("dry run: nothing replayed; these would be:\n");
        out.push_str(&events_text(&summary.events));
    } else {
        out.push_str(&format!(
            "replayed {} events to the notifier; {} failed and stay on the DLQ\n",
            summary.replayed, summary.failed
        ));
    }
    if summary.unreadable > 0 {
        out.push_str(&format!(
            "{} messages are not pipeline events: they stay (see `events peek`)\n",
            summary.unreadable
        ));
    }
    for failure in &summary.failures {
        out.push_str(&format!("  {failure}\n"));
    }
    if summary.stopped_early {
        out.push_str("stopped early (Ctrl-C or SIGTERM)\n");
    }
    if !summary.dry_run {
        out.push_str(&left_line(summary.left));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> DlqMessage {
        DlqMessage {
            message_id: "m-1".into(),
            trigger_id: Some("01KAKXR9VJ4N6P8Q2R3S4T5V6W".into()),
            pipeline: Some("app-pipeline".into()),
            error_code: Some("Throttling".into()),
            error_message: Some(format!("Rate exceeded\n{}", "x".repeat(200))),
            receive_count: 2,
            first_sent_at: Some("2026-11-21T10:00:00.000Z".into()),
            age_seconds: Some(3_725),
            body_preview: None,
            sent_ms: Some(0),
        }
    }

    #[test]
    fn an_unreadable_body_is_previewed_escaped_and_bounded() {
        let hostile = format!("{{\"x\": \"\u{1b}[2J\r\nBcc: x\\y\u{e9}{}", "z".repeat(500));
        let preview = crate::dlq::body_preview(&hostile);
        assert!(
            preview.starts_with(r#"{"x": "\u{1b}[2J\r\nBcc: x\\y\u{e9}zz"#),
            "{preview}"
        );
        let total = hostile.chars().count();
        assert!(
            preview.ends_with(&format!("... ({total} characters)")),
            "{preview}"
        );
        assert!(preview.chars().all(|c| c.is_ascii_graphic() || c == ' '));
        let mut m = message();
        m.trigger_id = None;
        m.body_preview = Some(preview.clone());
        let text = messages_text(&[m.clone()]);
        assert!(text.contains(&format!("\n  m-1  {preview}\n")), "{text}");
        let value: serde_json::Value = serde_json::from_str(&messages_json(&[m])).unwrap();
        assert_eq!(value["messages"][0]["body_preview"], preview.as_str());
        let readable: serde_json::Value =
            serde_json::from_str(&messages_json(&[message()])).unwrap();
        assert!(readable["messages"][0].get("body_preview").is_none());
    }

    #[test]
    fn peek_table_snapshot() {
        let text = messages_text(&[message()]);
        let expected = format!(
            "TRIGGER                     PIPELINE      ERROR CODE  RECEIVES  FIRST SENT                AGE       ERROR MESSAGE\n\
             01KAKXR9VJ4N6P8Q2R3S4T5V6W  app-pipeline  Throttling  2         2026-11-21T10:00:00.000Z  1h 2m 5s  Rate exceeded {}...\n",
            "x".repeat(43)
        );
        assert_eq!(text, expected);
        assert_eq!(messages_text(&[]), "no messages\n");
    }

    #[test]
    fn json_keeps_everything_but_internals() {
        let value: serde_json::Value = serde_json::from_str(&messages_json(&[message()])).unwrap();
        let m = &value["messages"][0];
        assert_eq!(m["error_message"].as_str().unwrap().len(), 214);
        assert_eq!(m["age_seconds"], 3_725);
        assert!(m.get("sent_ms").is_none());
    }

    #[test]
    fn summaries_say_what_happened() {
        let summary = ReplaySummary {
            moved: 3,
            skipped_by_filter: 2,
            failed: 1,
            failures: vec!["sending to the work queue failed: QueueDoesNotExist".into()],
            ..ReplaySummary::default()
        };
        assert_eq!(
            replay_text(&summary),
            "failure: sending to the work queue failed: QueueDoesNotExist\nmoved 3, skipped by filter 2, failed 1\nthe DLQ could not be counted afterwards (see `dlq stats`)\n"
        );
        let dry = ReplaySummary {
            dry_run: true,
            messages: vec![message()],
            ..ReplaySummary::default()
        };
        let text = replay_text(&dry);
        assert!(text.starts_with("dry run: nothing moved"));
        assert!(text.ends_with("would move 1, skipped by filter 0\n"));
    }
}
