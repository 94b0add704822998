//! `trigger-ops events replay` with a notifier that fails every event (a
//! poison event: its table is gone, say). The events DLQ is moto's; the
//! notifier's `Invoke`, which no engine here runs, is replayed through the
//! real Lambda client with aws-smithy-mocks. The replay tries each event
//! once, ends, leaves nothing invisible and says what the DLQ holds.

use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::Blob;
use ops::dlq::Queues;
use ops::events::Notifier;
use shared::aws::queue::Deliveries;
use shared::clock::SystemClock;
use shared::rules::pipeline_event::state_change_event;
use shared::rules::status::PipelineState;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use testkit::Stack;

#[tokio::test]
async fn a_replay_of_events_the_notifier_always_fails_tries_each_once_and_ends() {
    let stack = Stack::new().await;
    let url = stack.queue("events-dlq").await;
    for i in 0..3 {
        let event = state_change_event(
            &format!("ev-{i}"),
            testkit::REGION,
            "123456789012",
            "app",
            &format!("ex-{i}"),
            PipelineState::Succeeded,
            "2026-12-07T10:00:00Z",
        );
        stack.send_raw(&url, &event.to_string()).await;
    }
    let failing = mock!(aws_sdk_lambda::Client::invoke).then_output(|| {
        InvokeOutput::builder()
            .status_code(200)
            .function_error("Unhandled")
            .payload(Blob::new(
                r#"{"errorType":"TableUnavailable","errorMessage":"ResourceNotFoundException"}"#,
            ))
            .build()
    });
    let notifier = Notifier {
        lambda: mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&failing]),
        function: "notifier".into(),
    };
    let queues = Queues::new(stack.sqs.clone(), Arc::new(SystemClock));
    let deliveries = Deliveries::new(stack.sqs.clone());
    for round in 1..=2 {
        let summary = queues
            .replay_events(&url, Some(&notifier), None, &AtomicBool::new(false))
            .await
            .unwrap();
        assert_eq!(
            (summary.replayed, summary.failed, summary.left),
            (0, 3, Some(3)),
            "round {round}: {summary:?}"
        );
        assert!(summary
            .failures
            .iter()
            .all(|f| f.contains("TableUnavailable") && f.contains("it stays on the DLQ")));
        assert_eq!(failing.num_calls(), 3 * round, "each event tried once");
        let counts = deliveries.counts(&url).await.unwrap();
        assert_eq!((counts.visible, counts.in_flight), (3, 0), "{counts:?}");
        let text = ops::report::events_replay_text(&summary);
        assert!(
            text.contains("replayed 0 events to the notifier; 3 failed and stay on the DLQ")
                && text.contains("the DLQ holds 3 now"),
            "{text}"
        );
    }
    // Stopped (Ctrl-C or SIGTERM) before it began: nothing tried, nothing held.
    let stopped = queues
        .replay_events(&url, Some(&notifier), None, &AtomicBool::new(true))
        .await
        .unwrap();
    assert!(stopped.stopped_early);
    assert_eq!(failing.num_calls(), 6);
    let counts = deliveries.counts(&url).await.unwrap();
    assert_eq!((counts.visible, counts.in_flight), (3, 0), "{counts:?}");
}
