//! No raw client address in the table, the queue or the logs. Alone in its
//! test binary: log capture is per thread, and tracing's callsite cache is
//! process-wide, so other tests' threads must not race it.

mod common;

use common::*;
use testkit::capture_logs;

#[tokio::test(flavor = "current_thread")]
async fn no_raw_ip_in_table_queue_or_logs() {
    let (logs, _guard) = capture_logs();
    let h = harness(&[("QUOTA_LIMIT", "1")]).await;
    let ips = [CLIENT_IP, "2001:db8:77:1::42"];
    assert_eq!(h.post(None, ips[0]).await.status, 202);
    assert_eq!(h.post(None, ips[0]).await.status, 429);
    assert_eq!(
        h.send(http_api_event("POST", "/trigger", None, ips[1]))
            .await
            .status,
        202
    );
    assert_eq!(h.post(Some("bad"), ips[0]).await.status, 400);
    let items = format!("{:?}", h.stack.scan_items().await);
    let messages: Vec<String> = h
        .stack
        .drain(&h.stack.queues.queue_url)
        .await
        .iter()
        .map(|m| format!("{m:?}"))
        .collect();
    let log_text = logs.text();
    assert!(log_text.contains("\"decision\":\"accepted\""), "{log_text}");
    assert!(log_text.contains("\"decision\":\"rejected\""));
    for line in logs.lines() {
        assert!(line.is_object());
    }
    for ip in ips.iter().chain(&["2001:db8:77:1"]) {
        assert!(!items.contains(ip), "table holds {ip}");
        assert!(!messages.iter().any(|m| m.contains(ip)), "queue holds {ip}");
        assert!(!log_text.contains(ip), "logs hold {ip}");
    }
    assert_eq!(messages.len(), 2);
}
