//! Operators block a network, it expires, a reset frees one client.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_blocks_a_network_then_it_expires_and_a_reset_frees_one_client() {
    const SECRET: &str = "e2e-client-key-secret-0123456789";
    // A warm instance answers a refused client from memory for
    // REFUSAL_MEMORY: 1 s here, so an unblock shows within a second.
    let harness = Harness::start(
        &[("CLIENT_KEY_SECRET", SECRET), ("REFUSAL_MEMORY", "1s")],
        None,
    )
    .await;
    let inside = client_from(Ipv4Addr::new(127, 0, 3, 21));
    let neighbour = client_from(Ipv4Addr::new(127, 0, 3, 22));
    let outside = client_from(Ipv4Addr::new(127, 0, 4, 21));
    assert_eq!(post(&inside, &harness, "").await.status, 202);
    assert_eq!(post(&outside, &harness, "").await.status, 202);
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(
        (shown["used"].as_u64(), shown["remaining"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(shown["blocks"], Value::Array(vec![]));

    // The /24 is blocked for a few seconds: both of its clients get 403
    // with Retry-After, the reason stays with the operators, nothing is charged.
    let blocked = ops_json(
        &harness,
        SECRET,
        &[
            "clients",
            "block",
            "127.0.3.0/24",
            "--for",
            "4s",
            "--reason",
            "scripted flood, ticket 4711",
        ],
    )
    .await
    .unwrap();
    assert_eq!(blocked["blocked"], true);
    for client in [&inside, &neighbour] {
        let refused = post(client, &harness, "").await;
        assert_eq!(refused.status, 403, "{:?}", refused.body);
        assert_eq!(refused.body["type"], "urn:pipeline-trigger:problem:blocked");
        assert!(
            !refused.body.to_string().contains("4711"),
            "{:?}",
            refused.body
        );
        let retry: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=4).contains(&retry), "{retry}");
    }
    assert_eq!(
        post(&outside, &harness, "").await.status,
        202,
        "another network is not blocked"
    );
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 1, "a 403 costs nothing");
    assert_eq!(shown["blocks"][0]["scope"], "network");
    assert_eq!(shown["blocks"][0]["reason"], "scripted flood, ticket 4711");

    // The block ends by itself.
    let refusals = std::sync::atomic::AtomicUsize::new(2);
    eventually("the block to end", || async {
        let answer = post(&inside, &harness, "").await;
        if answer.status == 403 {
            refusals.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        (answer.status != 403).then_some(answer.status)
    })
    .await;
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 2);

    // Reset frees exactly that client.
    let reset = ops_json(
        &harness,
        SECRET,
        &["clients", "reset", "127.0.3.21", "--yes"],
    )
    .await
    .unwrap();
    assert_eq!(reset["had_slots"], true);
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.3.21"])
        .await
        .unwrap();
    assert_eq!(shown["used"], 0);
    let other = ops_json(&harness, SECRET, &["clients", "show", "127.0.4.21"])
        .await
        .unwrap();
    assert_eq!(other["used"], 2, "the other client keeps its charges");

    // An address block, lifted by hand.
    ops_json(
        &harness,
        SECRET,
        &[
            "clients",
            "block",
            "127.0.4.21",
            "--for",
            "1h",
            "--reason",
            "x",
        ],
    )
    .await
    .unwrap();
    assert_eq!(post(&outside, &harness, "").await.status, 403);
    assert_eq!(
        post(&neighbour, &harness, "").await.status,
        202,
        "only that address"
    );
    let lifted = ops_json(&harness, SECRET, &["clients", "unblock", "127.0.4.21"])
        .await
        .unwrap();
    assert_eq!(lifted["unblocked"], true);
    // The refusal memory (1 s) lets the 403 stand a moment at most.
    let refused_from_memory = std::sync::atomic::AtomicUsize::new(0);
    eventually("the unblock to reach the ingress", || async {
        let status = post(&outside, &harness, "").await.status;
        if status == 403 {
            refused_from_memory.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        (status == 202).then_some(())
    })
    .await;
    let blocked_lines = harness
        .metrics()
        .into_iter()
        .filter(|m| m["Rejected"] == 1 && m["Scope"] == "blocked")
        .count();
    assert_eq!(
        blocked_lines,
        refusals.into_inner() + 1 + refused_from_memory.into_inner(),
        "one Rejected{{Scope=blocked}} per 403"
    );

    // Bad targets are refused before anything is touched (exit 2).
    for args in [
        vec![
            "clients",
            "block",
            "127.0.0.0/15",
            "--for",
            "1h",
            "--reason",
            "x",
        ],
        vec!["clients", "show", "127.0.3.0/24"],
        vec!["clients", "reset", "127.0.3.21"],
    ] {
        let err = ops_json(&harness, SECRET, &args).await.unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
    }
    harness.stack.stop().await;
}

/// `clients top` names the busiest keys; a key from it, or any prefix from
/// /16 (IPv4), blocks exactly what it covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_top_names_the_busiest_keys_and_wider_blocks_stop_what_they_cover() {
    const SECRET: &str = "e2e-client-key-secret-top-456789";
    let harness = Harness::start(
        &[("CLIENT_KEY_SECRET", SECRET), ("REFUSAL_MEMORY", "1s")],
        None,
    )
    .await;
    let busy = client_from(Ipv4Addr::new(127, 0, 5, 1));
    let calm = client_from(Ipv4Addr::new(127, 0, 5, 2));
    for client in [&busy, &busy, &calm] {
        assert_eq!(post(client, &harness, "").await.status, 202);
    }
    let top = ops_json(&harness, SECRET, &["clients", "top", "--since", "1h"])
        .await
        .unwrap();
    let top = top["top"].as_array().unwrap().clone();
    assert_eq!(top.len(), 2, "{top:?}");
    assert_eq!(
        (top[0]["level"].as_str(), top[0]["triggers"].as_u64()),
        (Some("client"), Some(2))
    );
    assert_eq!(top[1]["triggers"], 1);
    let text = ops_output(&harness, SECRET, &["clients", "top"])
        .await
        .unwrap();
    assert!(
        text.contains("TRIGGERS") && text.contains(top[0]["key"].as_str().unwrap()),
        "{text}"
    );
    assert!(!text.contains("127.0.5."), "no address is shown: {text}");

    // Blocking the busiest key stops that client only.
    let key = top[0]["key"].as_str().unwrap();
    ops_json(
        &harness,
        SECRET,
        &["clients", "block", key, "--for", "1h", "--reason", "top"],
    )
    .await
    .unwrap();
    assert_eq!(post(&busy, &harness, "").await.status, 403);
    assert_eq!(post(&calm, &harness, "").await.status, 202);

    // A /22 (stored as the four /24s it covers) stops 127.0.16.0 to
    // 127.0.19.255, and nothing beyond.
    ops_json(
        &harness,
        SECRET,
        &[
            "clients",
            "block",
            "127.0.16.0/22",
            "--for",
            "1h",
            "--reason",
            "range",
        ],
    )
    .await
    .unwrap();
    for (last, expected) in [
        ((16, 1), 403),
        ((19, 200), 403),
        ((20, 1), 202),
        ((15, 9), 202),
    ] {
        let client = client_from(Ipv4Addr::new(127, 0, last.0, last.1));
        let status = post(&client, &harness, "").await.status;
        assert_eq!(status, expected, "127.0.{}.{}", last.0, last.1);
    }
    let shown = ops_json(&harness, SECRET, &["clients", "show", "127.0.19.200"])
        .await
        .unwrap();
    assert_eq!(shown["blocks"][0]["scope"], "network");
    assert_eq!(shown["blocks"][0]["covers"], "127.0.19.0/24", "{shown}");
    harness.stack.stop().await;
}
