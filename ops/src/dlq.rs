//! The dead-letter queue operations over SQS: counting, looking without
//! consuming, moving back to the work queue, deleting.
//!
//! Looking means receiving: every message looked at is held invisible while
//! the command runs (so it is seen once) and released at the end, whatever
//! the command did with the others. A crash leaves it invisible only until
//! its hold lapses.

use crate::error::OpsError;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use serde::Serialize;
pub use shared::aws::queue::QueueCounts;
use shared::aws::queue::{Deliveries, QueueError, Receive, BATCH};
use shared::clock::Clock;
use shared::rules::message::WorkMessage;
use shared::rules::time_format::rfc3339;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `peek` and `stats` hold what they look at.
pub(crate) const LOOK_HOLD_S: i32 = 30;
/// How long `replay` and `purge` hold messages they pass over.
pub(crate) const WORK_HOLD_S: i32 = 900;
/// At most this many messages are scanned for the oldest age by `stats`.
pub const STATS_SCAN: usize = 1000;

/// One DLQ message, as operators read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DlqMessage {
    pub message_id: String,
    pub trigger_id: Option<String>,
    pub pipeline: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// SQS's receive count, this look included.
    pub receive_count: u64,
    pub first_sent_at: Option<String>,
    pub age_seconds: Option<u64>,
    /// For a body that is not a work message: its start, escaped (only
    /// printable ASCII stays as it is), at most [`PREVIEW_CHARS`] characters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    #[serde(skip)]
    pub sent_ms: Option<u64>,
}

/// Characters of an unreadable body shown by `peek`.
pub const PREVIEW_CHARS: usize = 120;

/// A bounded, escaped preview of a body: safe to print on any terminal and
/// in any table, whatever the body holds.
pub fn body_preview(body: &str) -> String {
    let mut preview: String = body
        .chars()
        .take(PREVIEW_CHARS)
        .flat_map(|c| {
            let printable = c.is_ascii_graphic() || c == ' ';
            let escaped: Vec<char> = if printable && c != '\\' {
                vec![c]
            } else {
                c.escape_default().collect()
            };
            escaped
        })
        .collect();
    let total = body.chars().count();
    if total > PREVIEW_CHARS {
        preview.push_str(&format!("... ({total} characters)"));
    }
    preview
}

impl DlqMessage {
    /// Reads what an operator needs from a received message (pure).
    pub fn from_sqs(message: &Message, now_ms: u64) -> Self {
        let attribute = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let text_attribute = |name: &str| {
            message
                .message_attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.string_value())
                .map(str::to_string)
        };
        let body = message.body().unwrap_or_default();
        let work = WorkMessage::parse(body).ok();
        let sent_ms = attribute(MessageSystemAttributeName::SentTimestamp);
        Self {
            message_id: message.message_id().unwrap_or_default().to_string(),
            trigger_id: work.as_ref().map(|w| w.trigger_id.clone()),
            pipeline: work.as_ref().map(|w| w.pipeline.clone()),
            error_code: text_attribute("error_code"),
            error_message: text_attribute("error_message"),
            receive_count: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                .unwrap_or(0),
            first_sent_at: sent_ms.map(rfc3339),
            age_seconds: sent_ms.map(|sent| now_ms.saturating_sub(sent) / 1000),
            body_preview: work.is_none().then(|| body_preview(body)),
            sent_ms,
        }
    }
}

/// Which messages a replay moves.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub error_code: Option<String>,
    pub pipeline: Option<String>,
}

impl Filter {
    pub fn matches(&self, message: &DlqMessage) -> bool {
        let code_ok = self
            .error_code
            .as_ref()
            .is_none_or(|code| message.error_code.as_ref() == Some(code));
        let pipeline_ok = self
            .pipeline
            .as_ref()
            .is_none_or(|p| message.pipeline.as_ref() == Some(p));
        code_ok && pipeline_ok
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    pub dry_run: bool,
    pub moved: u64,
    pub skipped_by_filter: u64,
    pub failed: u64,
    /// Messages left in the DLQ because their trigger record could not be
    /// put back to `queued` (the table was unreachable).
    pub records_not_updated: u64,
    /// Copies moved by this replay that the worker gave up again while it
    /// ran: left where they are, so a message that always fails is moved
    /// once per replay, never in a loop.
    pub came_back: u64,
    /// What the DLQ holds once the replay ended (visible and in flight);
    /// `None` when it could not be counted.
    pub left: Option<u64>,
    pub stopped_early: bool,
    /// Dry run: what would move. Otherwise: what moved.
    pub messages: Vec<DlqMessage>,
    pub failures: Vec<String>,
}

/// The message attribute that names the replay call that moved a copy.
pub const REPLAYED_BY: &str = "replayed_by";

/// The replay call that moved this message, if one did.
fn replayed_by(message: &Message) -> Option<&str> {
    message
        .message_attributes()?
        .get(REPLAYED_BY)?
        .string_value()
}

/// A replay call's id: random, so two calls (even at one instant, from two
/// terminals) never take each other's copies for their own.
fn replay_call_id(now_ms: u64) -> String {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => format!("{now_ms}-{}", std::process::id()),
    }
}

pub(crate) fn queue_error<'a>(
    which: &'static str,
    url: &'a str,
) -> impl FnOnce(QueueError) -> OpsError + 'a {
    move |QueueError::Unavailable(reason)| OpsError::Queue {
        which,
        url: url.to_string(),
        reason,
    }
}

/// The messages of a batch not seen before in this run, and those seen
/// before (back after their hold lapsed), remembering the new ones.
pub(crate) fn split_new(
    batch: Vec<Message>,
    seen: &mut HashSet<String>,
) -> (Vec<Message>, Vec<Message>) {
    batch
        .into_iter()
        .partition(|m| seen.insert(m.message_id().unwrap_or_default().to_string()))
}

/// What a replay moves, how many and how fast.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub filter: Filter,
    /// At most this many; `None`: all.
    pub max: Option<u64>,
    /// Messages per second, at most.
    pub rate: f64,
    /// List what would move; move nothing.
    pub dry_run: bool,
}

/// The two queues, over one SQS client; ages and record times from `clock`.
pub struct Queues {
    pub(crate) deliveries: Deliveries,
    pub(crate) clock: Arc<dyn Clock>,
}

/// Paces a replay at `rate` messages per second.
struct Pace {
    rate: f64,
    started: Instant,
}

impl Pace {
    async fn wait(&self, done: u64) {
        let due = Duration::from_secs_f64(done as f64 / self.rate);
        if let Some(rest) = due.checked_sub(self.started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
}

impl Queues {
    pub fn new(sqs: aws_sdk_sqs::Client, clock: Arc<dyn Clock>) -> Self {
        Self {
            deliveries: Deliveries::new(sqs),
            clock,
        }
    }

    /// Fails clearly when the queue does not exist or cannot be reached.
    pub async fn check(&self, which: &'static str, url: &str) -> Result<(), OpsError> {
        self.deliveries
            .check(url)
            .await
            .map_err(queue_error(which, url))
    }

    pub async fn counts(&self, which: &'static str, url: &str) -> Result<QueueCounts, OpsError> {
        self.deliveries
            .counts(url)
            .await
            .map_err(queue_error(which, url))
    }

    /// Up to `max` (≤ 10) messages, held for `hold` seconds. Long-polls one
    /// second so an empty answer means an empty queue, not a sampled one.
    pub(crate) async fn receive(
        &self,
        url: &str,
        max: usize,
        hold: i32,
    ) -> Result<Vec<Message>, OpsError> {
        let how = Receive {
            max,
            wait_s: 1,
            hold_s: Some(hold),
        };
        self.deliveries
            .receive(url, how)
            .await
            .map_err(queue_error("DLQ", url))
    }

    /// Receives until `max` distinct messages are seen or the queue has no
    /// more, holding each for `hold` seconds; the caller releases them.
    pub(crate) async fn scan(
        &self,
        url: &str,
        max: usize,
        hold: i32,
    ) -> Result<Vec<Message>, OpsError> {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        while all.len() < max {
            let (fresh, _) = split_new(self.receive(url, max - all.len(), hold).await?, &mut seen);
            if fresh.is_empty() {
                break;
            }
            all.extend(fresh);
        }
        Ok(all)
    }

    /// Up to `max` messages of a queue, each read by `read` (given the
    /// time now), none consumed: held briefly, then released.
    pub(crate) async fn look<T>(
        &self,
        url: &str,
        max: usize,
        read: impl Fn(&Message, u64) -> T,
    ) -> Result<Vec<T>, OpsError> {
        let now_ms = self.clock.now_ms();
        let messages = self.scan(url, max, LOOK_HOLD_S).await?;
        self.deliveries.release(url, &messages).await;
        Ok(messages.iter().map(|m| read(m, now_ms)).collect())
    }

    /// The DLQ's messages, oldest first, none consumed.
    pub async fn peek(&self, dlq_url: &str, max: usize) -> Result<Vec<DlqMessage>, OpsError> {
        let mut shown = self.look(dlq_url, max, DlqMessage::from_sqs).await?;
        shown.sort_by_key(|m| m.sent_ms.unwrap_or(u64::MAX));
        Ok(shown)
    }

    /// Age in seconds of the oldest of the first [`STATS_SCAN`] DLQ messages
    /// (SQS keeps no such figure; CloudWatch's metric lags by minutes).
    pub async fn oldest_age(&self, dlq_url: &str) -> Result<Option<u64>, OpsError> {
        let messages = self.peek(dlq_url, STATS_SCAN).await?;
        Ok(messages.iter().filter_map(|m| m.age_seconds).max())
    }

    /// Moves matching DLQ messages to the work queue as `options` say;
    /// stops after the batch in flight when `stop` is set. `on_batch` is told
    /// how many moved (or would move) after each batch.
    pub async fn replay(
        &self,
        dlq_url: &str,
        queue_url: &str,
        table: Option<&shared::aws::table::Table>,
        options: &ReplayOptions,
        stop: &AtomicBool,
        on_batch: &dyn Fn(u64),
    ) -> Result<ReplaySummary, OpsError> {
        let ReplayOptions { filter, rate, .. } = options;
        let dry_run = options.dry_run;
        let mut summary = ReplaySummary {
            dry_run,
            ..ReplaySummary::default()
        };
        let limit = self.replay_limit("DLQ", dlq_url, options.max).await?;
        let pace = Pace {
            rate: *rate,
            started: Instant::now(),
        };
        let mut seen = HashSet::new();
        // Each copy this call moves carries its id; the worker keeps a
        // message's attributes when it gives it up again, so what comes back
        // during this call is known for certain (a second copy the DLQ held
        // from before has no such mark, and moves like any other).
        let call = replay_call_id(self.clock.now_ms());
        let mut held: Vec<Message> = Vec::new();
        let per_batch = (rate.ceil() as usize).clamp(1, BATCH);
        loop {
            let done = if dry_run {
                summary.messages.len() as u64
            } else {
                summary.moved
            };
            if stop.load(Ordering::SeqCst) {
                summary.stopped_early = true;
                break;
            }
            if done >= limit {
                break;
            }
            pace.wait(done).await;
            let want = per_batch.min(usize::try_from(limit - done).unwrap_or(BATCH));
            let (fresh, back) =
                split_new(self.receive(dlq_url, want, WORK_HOLD_S).await?, &mut seen);
            // Back after their hold lapsed: held again, counted once.
            held.extend(back);
            if fresh.is_empty() {
                break;
            }
            let matching = self.to_move(fresh, filter, &call, &mut summary, &mut held);
            if dry_run {
                for (message, shown) in matching {
                    summary.messages.push(shown);
                    held.push(message);
                }
                on_batch(summary.messages.len() as u64);
                continue;
            }
            let ready = self
                .set_back(table, matching, &mut summary, &mut held)
                .await;
            if ready.is_empty() {
                continue;
            }
            let moved = self
                .move_batch(dlq_url, queue_url, &ready, &call, &mut summary, &mut held)
                .await;
            for shown in moved {
                summary.moved += 1;
                summary.messages.push(shown);
            }
            on_batch(summary.moved);
        }
        self.finish(dlq_url, &held, &mut summary).await;
        Ok(summary)
    }

    /// The held messages visible again at once, and what the DLQ holds now.
    async fn finish(&self, dlq_url: &str, held: &[Message], summary: &mut ReplaySummary) {
        let unreleased = self.deliveries.release(dlq_url, held).await;
        if unreleased > 0 {
            summary.failures.push(format!(
                "{unreleased} skipped messages stay invisible for up to {WORK_HOLD_S} s"
            ));
        }
        summary.left = self.left(dlq_url).await;
    }

    /// Without `--max`: at most what the DLQ held when the replay began,
    /// so messages given up again meanwhile wait for the next replay.
    pub(crate) async fn replay_limit(
        &self,
        what: &'static str,
        url: &str,
        max: Option<u64>,
    ) -> Result<u64, OpsError> {
        Ok(match max {
            Some(max) => max,
            None => {
                let at_start = self.counts(what, url).await?;
                at_start.visible + at_start.in_flight
            }
        })
    }

    /// Of a batch received, what moves: those the filter matches, but not
    /// a copy this call moved that was given up again while it runs (a new
    /// message id), left for the next replay. The others are held.
    fn to_move(
        &self,
        fresh: Vec<Message>,
        filter: &Filter,
        call: &str,
        summary: &mut ReplaySummary,
        held: &mut Vec<Message>,
    ) -> Vec<(Message, DlqMessage)> {
        let mut matching = Vec::new();
        for message in fresh {
            let shown = DlqMessage::from_sqs(&message, self.clock.now_ms());
            if !filter.matches(&shown) {
                summary.skipped_by_filter += 1;
                held.push(message);
            } else if replayed_by(&message) == Some(call) {
                summary.came_back += 1;
                held.push(message);
            } else {
                matching.push((message, shown));
            }
        }
        matching
    }

    /// The record goes back to `queued` before its message moves: the
    /// worker drops a copy of a trigger whose record still says
    /// `dead_lettered` (it is one already in the DLQ). A record that cannot
    /// be set back keeps its message in the DLQ (held).
    async fn set_back(
        &self,
        table: Option<&shared::aws::table::Table>,
        matching: Vec<(Message, DlqMessage)>,
        summary: &mut ReplaySummary,
        held: &mut Vec<Message>,
    ) -> Vec<(Message, DlqMessage)> {
        let mut ready = Vec::new();
        for (message, shown) in matching {
            if let (Some(table), Some(trigger_id)) = (table, shown.trigger_id.as_deref()) {
                if table
                    .triggers()
                    .record_requeued(trigger_id, self.clock.now_ms())
                    .await
                    .is_err()
                {
                    summary.records_not_updated += 1;
                    held.push(message);
                    continue;
                }
            }
            ready.push((message, shown));
        }
        ready
    }

    /// What a queue holds, visible and in flight; `None` if it cannot be
    /// counted (the summary then says so rather than guess).
    pub(crate) async fn left(&self, url: &str) -> Option<u64> {
        let counts = self.deliveries.counts(url).await.ok()?;
        Some(counts.visible + counts.in_flight)
    }

    /// Sends a batch to the work queue and deletes from the DLQ exactly the
    /// messages the work queue accepted. Returns those.
    async fn move_batch(
        &self,
        dlq_url: &str,
        queue_url: &str,
        batch: &[(Message, DlqMessage)],
        call: &str,
        summary: &mut ReplaySummary,
        held: &mut Vec<Message>,
    ) -> Vec<DlqMessage> {
        let messages: Vec<&Message> = batch.iter().map(|(m, _)| m).collect();
        let copied = self
            .deliveries
            .copy_batch(queue_url, &messages, (REPLAYED_BY, call))
            .await;
        let accepted: Vec<usize> = match copied {
            Ok((accepted, refused)) => {
                for (i, reason) in refused {
                    summary.failures.push(format!(
                        "work queue refused message {}: {reason}",
                        batch
                            .get(i)
                            .map(|(_, s)| s.message_id.as_str())
                            .unwrap_or("?"),
                    ));
                }
                accepted
            }
            Err(QueueError::Unavailable(reason)) => {
                summary
                    .failures
                    .push(format!("sending to the work queue failed: {reason}"));
                Vec::new()
            }
        };
        let (to_delete, not_sent): (Vec<_>, Vec<_>) =
            (0..batch.len()).partition(|i| accepted.contains(i));
        summary.failed += not_sent.len() as u64;
        held.extend(not_sent.iter().map(|&i| batch[i].0.clone()));
        if to_delete.is_empty() {
            return Vec::new();
        }
        let messages: Vec<&Message> = to_delete.iter().map(|&i| &batch[i].0).collect();
        let deleted = match self.deliveries.delete_batch(dlq_url, &messages).await {
            Ok(ids) => ids,
            Err(QueueError::Unavailable(reason)) => {
                summary.failures.push(format!(
                    "copied to the work queue but not deleted from the DLQ ({reason}): the worker's ledger makes the duplicate harmless"
                ));
                Vec::new()
            }
        };
        to_delete
            .iter()
            .map(|&i| &batch[i].1)
            .filter(|shown| deleted.contains(&shown.message_id))
            .cloned()
            .collect()
    }

    /// Deletes DLQ messages (first sent longer than `older_than` ago, when
    /// given). Returns (deleted, kept).
    pub async fn purge(
        &self,
        dlq_url: &str,
        older_than: Option<Duration>,
    ) -> Result<(u64, u64), OpsError> {
        let now_ms = self.clock.now_ms();
        let cutoff_ms = older_than.map(|d| now_ms.saturating_sub(d.as_millis() as u64));
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        let (mut deleted, mut kept) = (0u64, 0u64);
        loop {
            let (fresh, _) = split_new(self.receive(dlq_url, BATCH, WORK_HOLD_S).await?, &mut seen);
            if fresh.is_empty() {
                break;
            }
            let (old, young): (Vec<Message>, Vec<Message>) = fresh.into_iter().partition(|m| {
                let sent = DlqMessage::from_sqs(m, now_ms).sent_ms;
                match cutoff_ms {
                    None => true,
                    Some(cutoff) => sent.is_some_and(|s| s < cutoff),
                }
            });
            kept += young.len() as u64;
            held.extend(young);
            if !old.is_empty() {
                let refs: Vec<&Message> = old.iter().collect();
                let ids = self
                    .deliveries
                    .delete_batch(dlq_url, &refs)
                    .await
                    .map_err(queue_error("DLQ", dlq_url))?;
                deleted += ids.len() as u64;
            }
        }
        self.deliveries.release(dlq_url, &held).await;
        Ok((deleted, kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::types::MessageAttributeValue;

    fn message(body: &str, code: Option<&str>) -> Message {
        let mut m = Message::builder()
            .message_id("m-1")
            .body(body)
            .attributes(MessageSystemAttributeName::SentTimestamp, "1795000000000")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "3");
        if let Some(code) = code {
            m = m.message_attributes(
                "error_code",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(code)
                    .build()
                    .unwrap(),
            );
        }
        m.build()
    }

    const BODY: &str = r#"{"version":1,"trigger_id":"01KAKXR9VJ4N6P8Q2R3S4T5V6W","pipeline":"app-pipeline","requested_at":"2026-11-21T10:00:00.000Z","client_key":"ab"}"#;

    #[test]
    fn reads_a_dead_lettered_message() {
        let shown = DlqMessage::from_sqs(&message(BODY, Some("Throttling")), 1_795_000_090_500);
        assert_eq!(
            shown.trigger_id.as_deref(),
            Some("01KAKXR9VJ4N6P8Q2R3S4T5V6W")
        );
        assert_eq!(shown.pipeline.as_deref(), Some("app-pipeline"));
        assert_eq!(shown.error_code.as_deref(), Some("Throttling"));
        assert_eq!(shown.receive_count, 3);
        assert_eq!(shown.age_seconds, Some(90));
        assert_eq!(
            shown.first_sent_at.as_deref(),
            Some("2026-11-18T11:06:40.000Z")
        );
    }

    #[test]
    fn garbage_bodies_are_shown_not_fatal() {
        let shown = DlqMessage::from_sqs(&message("\u{0}not json", None), 0);
        assert_eq!(
            (shown.trigger_id, shown.pipeline, shown.error_code),
            (None, None, None)
        );
        assert_eq!(shown.message_id, "m-1");
    }

    #[test]
    fn filters_match_code_and_pipeline() {
        let shown = DlqMessage::from_sqs(&message(BODY, Some("Throttling")), 0);
        let filter = |code: Option<&str>, pipeline: Option<&str>| Filter {
            error_code: code.map(str::to_string),
            pipeline: pipeline.map(str::to_string),
        };
        assert!(filter(None, None).matches(&shown));
        assert!(filter(Some("Throttling"), Some("app-pipeline")).matches(&shown));
        assert!(!filter(Some("PipelineNotFound"), None).matches(&shown));
        assert!(!filter(None, Some("other")).matches(&shown));
        let garbage = DlqMessage::from_sqs(&message("x", None), 0);
        assert!(!filter(None, Some("app-pipeline")).matches(&garbage));
        assert!(filter(None, None).matches(&garbage));
    }
}
