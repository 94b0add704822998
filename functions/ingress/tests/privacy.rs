//! No raw client address and no trigger key in the table, the queue, the
//! logs or an answer. Alone in its test binary: log capture is per thread,
//! and tracing's callsite cache is process-wide, so other tests' threads
//! must not race it.

mod common;

use common::*;
use testkit::capture_logs;

#[tokio::test(flavor = "current_thread")]
async fn no_raw_ip_and_no_key_in_table_queue_logs_or_answers() {
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
    // Keyed: accepted, refused for another pipeline, and a typo of it.
    let key = h
        .stack
        .create_key(
            "secretive",
            &["app"],
            shared::rules::keys::DEFAULT_KEY_QUOTA,
        )
        .await;
    // Its last character changed (to one it is not: a random key may end
    // in the letter a fixed typo would write).
    let swap = if key.ends_with('x') { 'y' } else { 'x' };
    let typo = format!("{}{swap}", &key[..key.len() - 1]);
    let keyed = |body: Option<&str>, key: &str| testkit::keyed_event("/trigger", body, ips[0], key);
    let mut answers = vec![
        h.send(keyed(None, &key)).await,
        h.send(keyed(Some(r#"{"pipeline": "docs"}"#), &key)).await,
        h.send(keyed(None, &typo)).await,
    ];
    assert_eq!(
        answers.iter().map(|a| a.status).collect::<Vec<_>>(),
        [202, 401, 401]
    );
    let id = answers[0].body["trigger_id"].as_str().unwrap().to_string();
    answers.push(h.get(&id).await);
    let secrets = [&key[4..], &typo[4..]];
    for (n, reply) in answers.iter().enumerate() {
        let text = format!("{} {}", reply.headers, reply.body);
        for secret in secrets {
            assert!(!text.contains(secret), "answer {n}: {text}");
        }
    }
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
    // The key's name is logged, its hash is stored, the key never.
    assert!(log_text.contains("\"key\":\"secretive\""), "{log_text}");
    assert!(log_text.contains("invalid-key"), "{log_text}");
    assert!(items.contains(&shared::rules::keys::key_hash(&key)));
    for secret in secrets {
        assert!(!items.contains(secret), "table holds the key");
        assert!(
            !messages.iter().any(|m| m.contains(secret)),
            "queue holds the key"
        );
        assert!(!log_text.contains(secret), "logs hold the key");
    }
    assert!(log_text.contains("\"decision\":\"rejected\""));
    for line in logs.lines() {
        assert!(line.is_object());
    }
    for ip in ips.iter().chain(&["2001:db8:77:1"]) {
        assert!(!items.contains(ip), "table holds {ip}");
        assert!(!messages.iter().any(|m| m.contains(ip)), "queue holds {ip}");
        assert!(!log_text.contains(ip), "logs hold {ip}");
    }
    assert_eq!(messages.len(), 3);
}
