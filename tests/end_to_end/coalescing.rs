//! Many clients at once cost runs, not executions each.

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_clients_at_once_cost_at_most_two_runs_and_every_trigger_succeeds() {
    const CLIENTS: u8 = 40;
    // Each run takes several seconds: the 40 triggers arrive while the first runs.
    let harness = Harness::start_named(&unique("e2e"), &[], None, Duration::from_secs(4)).await;
    let inbox = harness.inbox().await;
    let posts = (0..CLIENTS).map(|n| {
        let client = client_from(Ipv4Addr::new(127, 0, 1, 10 + n));
        let url = harness.url("/trigger");
        async move {
            let response = send(&client, "POST", &url, "").await;
            (client, response)
        }
    });
    let answers = futures::future::join_all(posts).await;
    let mut triggers = Vec::new();
    for (client, response) in answers {
        assert_eq!(response.status, 202, "{:?}", response.body);
        // Each client is charged once for its trigger, coalesced or not.
        assert_eq!(
            response.body["quota"]["remaining"], 2,
            "{:?}",
            response.body
        );
        triggers.push((
            client,
            response.body["trigger_id"].as_str().unwrap().to_string(),
        ));
    }
    let mut executions = std::collections::BTreeSet::new();
    let mut coalesced = 0;
    for (client, id) in &triggers {
        let status = harness.status_becomes(client, id, "succeeded").await;
        executions.insert(
            status["execution_id"]
                .as_str()
                .expect("an execution")
                .to_string(),
        );
        coalesced += usize::from(status["coalesced"] == true);
    }
    harness.settled().await;
    let started = harness.executions(&harness.app).await;
    assert!(started <= 2, "{started} executions for 40 triggers");
    assert_eq!(executions.len(), started, "every trigger names one of them");
    assert_eq!(
        coalesced,
        triggers.len() - started,
        "all but each run's opener joined"
    );
    // One e-mail per run, each saying how many triggers it served.
    let emails = eventually("an e-mail per run", || async {
        let emails = harness.emails(&inbox).await;
        (emails.len() >= started).then_some(emails)
    })
    .await;
    let served: usize = emails
        .iter()
        .map(|(_, body)| {
            body.lines()
                .find_map(|l| l.strip_prefix("Triggers"))
                .and_then(|rest| rest.trim().split(',').next())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(1)
        })
        .sum();
    assert_eq!(served, triggers.len(), "{emails:#?}");
    // The ledger, for operators: newest first, by status, each trigger with
    // its run and the triggers coalesced with it.
    let listed = ops_json(
        &harness,
        "-",
        &["triggers", "list", "--since", "1h", "--limit", "1000"],
    )
    .await
    .unwrap();
    let listed = listed["triggers"].as_array().unwrap().clone();
    assert_eq!(listed.len(), triggers.len());
    let times: Vec<&str> = listed
        .iter()
        .map(|t| t["requested_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );
    let succeeded = ops_json(
        &harness,
        "-",
        &[
            "triggers",
            "list",
            "--since",
            "1h",
            "--status",
            "succeeded",
            "--limit",
            "1000",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        succeeded["triggers"].as_array().unwrap().len(),
        triggers.len()
    );
    let none = ops_json(&harness, "-", &["triggers", "list", "--pipeline", "nope"])
        .await
        .unwrap();
    assert_eq!(none["triggers"], Value::Array(vec![]));
    let joined = listed
        .iter()
        .find(|t| t["coalesced"] == true)
        .expect("a joined trigger");
    let shown = ops_json(
        &harness,
        "-",
        &["triggers", "show", joined["trigger_id"].as_str().unwrap()],
    )
    .await
    .unwrap();
    let run_size = shown["run"]["triggers"].as_u64().unwrap() as usize;
    assert!(run_size > 1, "{shown}");
    assert_eq!(
        shown["coalesced_with"].as_array().unwrap().len(),
        run_size - 1,
        "{shown}"
    );
    assert_eq!(shown["run"]["execution_id"], joined["execution_id"]);

    // A charge stays a charge: the next trigger of a client has 1 left.
    let again = send(&triggers[0].0, "POST", &harness.url("/trigger"), "").await;
    assert_eq!(again.body["quota"]["remaining"], 1, "{:?}", again.body);
    let printed = harness.printed();
    assert!(
        printed.contains("joined the pending run of trigger"),
        "{printed}"
    );
    harness.stack.stop().await;
}

/// Triggers with distinct inputs cannot share a run; the bounded queue
/// holds instead. Twenty people, each with their own `ref`, at once, while
/// runs take 30 s: one run starts, `max_pending` (3) wait, in places 1 to 3,
/// and every other trigger is refused, charged nothing. A latecomer is
/// refused at once, charged nothing; joining a waiting run still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_inputs_fills_the_queue_and_the_rest_is_refused_free() {
    const CLIENTS: u8 = 20;
    const SETTINGS: &str = r#"{"app": {"max_pending": 3, "inputs": {
        "ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}"}}}}"#;
    let harness = Harness::start_named(
        &unique("e2e-flood"),
        &[("PIPELINE_SETTINGS", SETTINGS)],
        None,
        // Far longer than the flood takes to be decided, even on a busy machine.
        Duration::from_secs(30),
    )
    .await;
    let body = |r: &str| format!(r#"{{"pipeline": "app", "inputs": {{"ref": "{r}"}}}}"#);
    let posts = (0..CLIENTS).map(|n| {
        let client = client_from(Ipv4Addr::new(127, 0, 2, 10 + n));
        let body = body(&format!("ref-{n}"));
        let harness = &harness;
        async move {
            let id = accepted(&client, harness, &body).await;
            (client, id, n)
        }
    });
    let triggers = futures::future::join_all(posts).await;

    // Until the first run has started, the head of the line is about to
    // take the lane: a busy machine may show it in place 1 a while.
    eventually("the first run to start", || async {
        (harness.executions(&harness.app).await == 1).then_some(())
    })
    .await;

    // Each trigger is decided: it started the run, waits in line, or is refused.
    let mut places = Vec::new();
    let mut started = 0;
    let mut refused = Vec::new();
    let mut waiting = None;
    for (client, id, n) in &triggers {
        let url = harness.url(&format!("/triggers/{id}"));
        let status = eventually("the trigger to be decided", || async {
            let r = send(client, "GET", &url, "").await;
            let decided = r.body["status"] == "started"
                || r.body["status"] == "refused"
                || r.body["queue"]["position"].is_u64();
            decided.then_some(r.body)
        })
        .await;
        match status["status"].as_str() {
            Some("started") => started += 1,
            Some("refused") => {
                assert_eq!(status["reason"], "queue_full", "{status}");
                assert!(status["retry_after_seconds"].is_u64(), "{status}");
                refused.push(client);
            }
            _ => {
                places.push(status["queue"]["position"].as_u64().unwrap());
                waiting = Some(body(&format!("ref-{n}")));
            }
        }
    }
    places.sort_unstable();
    // Of the three pending slots, one is reserved for keyed triggers
    // (`reserved_pending` defaults to 1): the flood gets two.
    assert_eq!((started, places.as_slice()), (1, &[1, 2][..]));
    assert_eq!(refused.len(), usize::from(CLIENTS) - 3);
    assert_eq!(
        harness.executions(&harness.app).await,
        1,
        "one run at a time"
    );

    // A latecomer with yet another input set: refused at once, charged nothing.
    let late = client_from(Ipv4Addr::new(127, 0, 2, 200));
    let id = accepted(&late, &harness, &body("late")).await;
    let status = harness.status_becomes(&late, &id, "refused").await;
    assert_eq!(status["reason"], "queue_full");
    // Joining a waiting run is still possible, and each refusal was given
    // back: the latecomer and a refused flood client are charged once now.
    let waiting = waiting.expect("a waiting run");
    for client in [&late, refused[0]] {
        let id = accepted(client, &harness, &waiting).await;
        let status = send(client, "GET", &harness.url(&format!("/triggers/{id}")), "").await;
        assert_eq!(status.body["status"], "queued", "{:?}", status.body);
        let again = accepted_body(client, &harness, &body("late")).await;
        // Two charges in all (this join, this post): the refusal cost nothing.
        assert_eq!(again["quota"]["remaining"], 1, "{again}");
    }
    let printed = harness.printed();
    assert!(printed.contains("refused"), "{printed}");
    harness.stack.stop().await;
}

/// The `202`'s body; a `503` (nothing spent) is sent again.
async fn accepted_body(
    client: &Client<HttpConnector, Full<Bytes>>,
    harness: &Harness,
    body: &str,
) -> Value {
    for _ in 0..5 {
        let r = post(client, harness, body).await;
        if r.status == 503 {
            continue;
        }
        assert_eq!(r.status, 202, "{:?}", r.body);
        return r.body;
    }
    panic!("the stack kept answering 503")
}

/// A trigger's id once accepted.
async fn accepted(
    client: &Client<HttpConnector, Full<Bytes>>,
    harness: &Harness,
    body: &str,
) -> String {
    let answer = accepted_body(client, harness, body).await;
    answer["trigger_id"].as_str().unwrap().to_string()
}
