//! Operators block a network, it expires, a reset frees one client.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_blocks_a_network_then_it_expires_and_a_reset_frees_one_client() {
    const SECRET: &str = "e2e-client-key-secret-0123456789";
    let harness = Harness::start(&[("CLIENT_KEY_SECRET", SECRET)], None).await;
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
    assert_eq!(post(&outside, &harness, "").await.status, 202);
    let blocked_lines = harness
        .metrics()
        .into_iter()
        .filter(|m| m["Rejected"] == 1 && m["Scope"] == "blocked")
        .count();
    assert_eq!(
        blocked_lines,
        refusals.into_inner() + 1,
        "one Rejected{{Scope=blocked}} per 403"
    );

    // Bad targets are refused before anything is touched (exit 2).
    for args in [
        vec![
            "clients",
            "block",
            "127.0.3.0/16",
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
