//! Each handler, run through its main paths against moto with a call counter
//! of its own, makes exactly the SDK calls `testkit::permissions` grants it:
//! no call its role would refuse, no grant nothing uses.

use serde_json::{json, Value};
use shared::aws::queue::WorkQueue;
use shared::aws::table::runs::Opening;
use shared::aws::table::Table;
use shared::aws::{self, CallCounter};
use shared::clock::{Clock, ManualClock, SystemClock};
use shared::config::{Env, Function, IngressConfig, NotifierConfig, WorkerConfig};
use shared::rules::pipeline_event::state_change_event;
use shared::rules::status::PipelineState;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use testkit::keys::{recording, KeyLog};
use testkit::permissions::{calls_of, key_allowed};
use testkit::{dead_endpoint, rest_event, sdk_config_at, unique, Stack, REGION};

const CLIENT_IP: &str = "192.0.2.10";

fn observed(calls: &CallCounter) -> BTreeSet<String> {
    calls.snapshot().into_keys().collect()
}

/// Every item the function's calls named is one its role may touch
/// (`dynamodb:LeadingKeys`, as Terraform writes it: tests/terraform.rs ties
/// the two), and the `forbidden` ones are refused.
fn assert_keys_within_grants(function: Function, keys: &KeyLog, forbidden: &[(&str, &str)]) {
    let recorded = keys.snapshot();
    assert!(!recorded.is_empty(), "{function:?}: no table call recorded");
    // A query names an index's partition (a day, a run), not a `pk`: its
    // grant is the index statement itself (checked by the calls above).
    for (action, pk) in recorded
        .iter()
        .filter(|(action, _)| action != "dynamodb:Query")
    {
        assert!(
            key_allowed(function, action, pk),
            "{function:?} may not {action} {pk}"
        );
    }
    for (action, pk) in forbidden {
        assert!(
            !key_allowed(function, action, pk),
            "{function:?} must not {action} {pk}"
        );
    }
}

fn granted(function: Function) -> BTreeSet<String> {
    calls_of(function).into_iter().map(str::to_string).collect()
}

#[tokio::test]
async fn the_ingress_makes_exactly_its_granted_calls() {
    let stack = Stack::new().await;
    let calls = CallCounter::default();
    let keys = KeyLog::default();
    let config = IngressConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", stack.table_name.as_str()),
        ("QUEUE_URL", stack.queues.queue_url.as_str()),
        ("PIPELINES", "app"),
        ("CLIENT_KEY_SECRET", "permissions-test-secret-0123"),
        ("NETWORK_QUOTA_LIMITS", "group:perm=10"),
    ]))
    .unwrap();
    // A network group the client's address is in: read by the ingress.
    Table::new(stack.dynamodb.clone(), &stack.table_name)
        .network_groups()
        .import(
            "perm",
            &shared::rules::network_groups::parse_ranges(b"192.0.2.0/24\n").unwrap(),
            "test",
            shared::clock::Clock::now_ms(&SystemClock),
        )
        .await
        .unwrap();
    let ingress = ingress::Ingress::new(
        config.clone(),
        Table::new(
            recording(aws::dynamodb(&stack.sdk, &calls), &keys),
            &stack.table_name,
        ),
        WorkQueue::new(aws::sqs(&stack.sdk, &calls), &stack.queues.queue_url),
        Arc::new(SystemClock),
        calls.clone(),
    );
    let accepted = ingress
        .handle(rest_event("POST", "/trigger", None, CLIENT_IP))
        .await
        .unwrap();
    assert_eq!(accepted["statusCode"], 202);
    let body: Value = serde_json::from_str(accepted["body"].as_str().unwrap()).unwrap();
    let id = body["trigger_id"].as_str().unwrap();
    let status = ingress
        .handle(rest_event(
            "GET",
            &format!("/triggers/{id}"),
            None,
            CLIENT_IP,
        ))
        .await
        .unwrap();
    assert_eq!(status["statusCode"], 200);
    // A keyed trigger: the key looked up by its hash, checked still good in
    // the admission, its own quota taken.
    let key = stack
        .create_key("perm-key", &[], shared::rules::keys::DEFAULT_KEY_QUOTA)
        .await;
    let keyed = ingress
        .handle(testkit::keyed_event("/trigger", None, CLIENT_IP, &key))
        .await
        .unwrap();
    assert_eq!(keyed["statusCode"], 202, "{keyed}");
    // The refund path: the queue is unreachable.
    let dead_queue = ingress::Ingress::new(
        config.clone(),
        Table::new(
            recording(aws::dynamodb(&stack.sdk, &calls), &keys),
            &stack.table_name,
        ),
        WorkQueue::new(
            aws::sqs(&sdk_config_at(&dead_endpoint()).await, &calls),
            &stack.queues.queue_url,
        ),
        Arc::new(SystemClock),
        calls.clone(),
    );
    let refused = dead_queue
        .handle(rest_event("POST", "/trigger", None, CLIENT_IP))
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 503);
    let refused = dead_queue
        .handle(testkit::keyed_event("/trigger", None, CLIENT_IP, &key))
        .await
        .unwrap();
    assert_eq!(refused["statusCode"], 503);
    // The settle path: every answer to the admission is lost.
    let proxy = testkit::LossyProxy::losing_every_answer_to(
        testkit::dynamodb_endpoint(),
        "TransactWriteItems",
    )
    .await;
    let lossy = testkit::sdk_config_with(shared::aws::Endpoints {
        dynamodb: proxy.endpoint.clone(),
        others: testkit::moto_endpoint().to_string(),
        services: Vec::new(),
    })
    .await;
    let settling = ingress::Ingress::new(
        config,
        Table::new(
            recording(aws::dynamodb(&lossy, &calls), &keys),
            &stack.table_name,
        ),
        WorkQueue::new(aws::sqs(&stack.sdk, &calls), &stack.queues.queue_url),
        Arc::new(SystemClock),
        calls.clone(),
    );
    let settled = settling
        .handle(rest_event("POST", "/trigger", None, "203.0.113.201"))
        .await
        .unwrap();
    assert_eq!(settled["statusCode"], 202);
    assert_eq!(observed(&calls), granted(Function::Ingress));
    assert_keys_within_grants(
        Function::Ingress,
        &keys,
        &[
            ("dynamodb:UpdateItem", "run#R"),
            ("dynamodb:PutItem", "block#K"),
            ("dynamodb:UpdateItem", "lane#P"),
            ("dynamodb:UpdateItem", "apikey#H"),
            ("dynamodb:PutItem", "keyname#N"),
        ],
    );
}

#[tokio::test]
async fn the_worker_makes_exactly_its_granted_calls() {
    let stack = Stack::new().await;
    let calls = CallCounter::default();
    let keys = KeyLog::default();
    let pipeline = stack.pipeline("perm").await;
    let quiet = stack.pipeline("permq").await;
    let ghost = unique("ghost");
    let allowlist = format!("{pipeline},{quiet},{ghost}");
    let config = WorkerConfig::from_env(&Env::from_pairs([
        ("TABLE_NAME", stack.table_name.as_str()),
        ("DLQ_URL", stack.queues.dlq_url.as_str()),
        ("PIPELINES", allowlist.as_str()),
        ("RUN_POLL_INTERVAL", "1s"),
    ]))
    .unwrap();
    let clock = Arc::new(ManualClock::new(SystemClock.now_ms()));
    let worker = |codepipeline| {
        Arc::new(worker::Worker::new(
            config.clone(),
            recording(aws::dynamodb(&stack.sdk, &calls), &keys),
            aws::sqs(&stack.sdk, &calls),
            codepipeline,
            clock.clone(),
        ))
    };
    // Started, and dead-lettered (the pipeline does not exist).
    stack.enqueue_trigger(&pipeline).await;
    stack.enqueue_trigger(&ghost).await;
    let live = worker(aws::codepipeline(&stack.sdk, &calls));
    let response = live.handle(stack.receive_event(60).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    // A run waits while the first holds the pipeline (its message is sent
    // again, delayed), then, past RUN_CHECK_AFTER, CodePipeline is asked.
    stack.enqueue_trigger(&pipeline).await;
    let response = live.handle(stack.receive_event(60).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    clock.advance(Duration::from_secs(2 * 3600));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let response = live.handle(stack.receive_event(60).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    // Retried later (CodePipeline unreachable when asked about the holder).
    stack.enqueue_trigger(&pipeline).await;
    clock.advance(Duration::from_secs(2 * 3600));
    let unreachable = worker(aws::codepipeline(
        &sdk_config_at(&dead_endpoint()).await,
        &calls,
    ));
    let response = unreachable
        .handle(stack.receive_event(60).await)
        .await
        .unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    // A holder whose start was never recorded: CodePipeline lists its
    // executions (the clock is hours past the take).
    let first = stack.enqueue_trigger(&quiet).await;
    stack.drain(&stack.queues.queue_url).await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let now = SystemClock.now_ms();
    let record = table.triggers().get(&first, now).await.unwrap().unwrap();
    testkit::table::join_run(
        &table,
        &record,
        &Opening::up_to(100),
        now,
        now / 1000 + 3600,
    )
    .await;
    let run = table.runs().get(&first).await.unwrap().unwrap();
    table.runs().take_lane(&run, now).await.unwrap();
    stack.enqueue_trigger(&quiet).await;
    let response = live.handle(stack.receive_event(60).await).await.unwrap();
    assert!(response.batch_item_failures.is_empty());
    // The settler's schedule: the day index read, a message sent again.
    let settled = live
        .invoke(json!({"settle": {"queue_url": stack.queues.queue_url, "after_seconds": 0}}))
        .await
        .unwrap();
    assert!(settled["settled"]["found"].as_u64().is_some(), "{settled}");
    assert_eq!(observed(&calls), granted(Function::Worker));
    assert_keys_within_grants(
        Function::Worker,
        &keys,
        &[
            ("dynamodb:PutItem", "block#K"),
            ("dynamodb:UpdateItem", "event#E"),
            ("dynamodb:DeleteItem", "trigger#T"),
        ],
    );
}

#[tokio::test]
async fn the_notifier_makes_exactly_its_granted_calls() {
    let stack = Stack::new().await;
    let calls = CallCounter::default();
    let keys = KeyLog::default();
    let (topic, _inbox) = stack.topic_with_inbox().await;
    let pipeline = stack.pipeline("perm").await;
    let trigger_id = stack.enqueue_trigger(&pipeline).await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let execution = unique("exec");
    let now = shared::clock::Clock::now_ms(&SystemClock);
    table
        .triggers()
        .record_started(&trigger_id, &execution, now, now / 1000 + 600)
        .await
        .unwrap();
    let notifier = |topic: &str| {
        notifier::Notifier::new(
            NotifierConfig::from_env(&Env::from_pairs([
                ("TABLE_NAME", stack.table_name.as_str()),
                ("TOPIC_ARN", topic),
            ]))
            .unwrap(),
            recording(aws::dynamodb(&stack.sdk, &calls), &keys),
            aws::sns(&stack.sdk, &calls),
            aws::codepipeline(&stack.sdk, &calls),
            aws::sqs(&stack.sdk, &calls),
            Arc::new(SystemClock),
        )
    };
    let event = state_change_event(
        &unique("event"),
        testkit::REGION,
        "123456789012",
        &pipeline,
        &execution,
        PipelineState::Failed,
        "2026-11-21T10:00:00Z",
    );
    // A run that ends wakes the one waiting for its pipeline.
    let opening = shared::aws::table::runs::Opening {
        wake: Some(shared::rules::runs::Wake {
            queue_url: stack.queues.queue_url.clone(),
            message: "{}".into(),
            attributes: Vec::new(),
        }),
        ..shared::aws::table::runs::Opening::up_to(3)
    };
    let mut runs = Vec::new();
    for n in 0..2 {
        let id = stack
            .enqueue_trigger_with_inputs(&pipeline, serde_json::json!({ "n": n }))
            .await;
        let record = table.triggers().get(&id, now).await.unwrap().unwrap();
        testkit::table::join_run(&table, &record, &opening, now, now / 1000 + 600).await;
        runs.push(table.runs().get(&id).await.unwrap().unwrap());
    }
    let first_execution = unique("exec");
    table.runs().take_lane(&runs[0], now).await.unwrap();
    table
        .runs()
        .record_started(&runs[0], &first_execution, now, now / 1000 + 600)
        .await
        .unwrap();
    let ended = state_change_event(
        &unique("event"),
        testkit::REGION,
        "123456789012",
        &pipeline,
        &first_execution,
        PipelineState::Succeeded,
        "2026-11-21T10:00:00Z",
    );
    notifier(&topic).handle(ended).await.unwrap();
    // A failed publish releases its claim.
    let missing = format!(
        "arn:aws:sns:{}:123456789012:{}",
        testkit::REGION,
        unique("gone")
    );
    assert!(notifier(&missing).handle(event.clone()).await.is_err());
    assert!(matches!(
        notifier(&topic).handle(event).await.unwrap(),
        notifier::Outcome::Notified { .. }
    ));
    assert_eq!(observed(&calls), granted(Function::Notifier));
    assert_keys_within_grants(
        Function::Notifier,
        &keys,
        &[
            ("dynamodb:UpdateItem", "client#K"),
            ("dynamodb:PutItem", "block#K"),
            ("dynamodb:UpdateItem", "global#1"),
        ],
    );
}

#[tokio::test]
async fn the_operators_tool_makes_exactly_its_granted_calls() {
    let stack = Stack::new().await;
    let calls = CallCounter::default();
    // A trigger in a run, whose message an operator finds on the DLQ.
    let trigger_id = stack.enqueue_trigger("perm-pipeline").await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let now = shared::clock::Clock::now_ms(&SystemClock);
    let record = testkit::table::stored(&table, &trigger_id, now).await;
    let opening = shared::aws::table::runs::Opening::up_to(100);
    testkit::table::join_run(&table, &record, &opening, now, now / 1000 + 600).await;
    for message in stack.drain(&stack.queues.queue_url).await {
        let body = message.body().expect("a body");
        stack.send_raw(&stack.queues.dlq_url, body).await;
    }
    table
        .triggers()
        .record_dead_lettered(&trigger_id, "Test", "for the operators", now)
        .await
        .unwrap();
    let env = Env::from_pairs([("CLIENT_KEY_SECRET", "permissions-test-secret-0123")]);
    // What the deployment writes beside the secret (`secret rotate` plans
    // from it).
    table
        .secret()
        .put_fingerprint(&shared::rules::client_key::secret_fingerprint(
            b"permissions-test-secret-0123",
        ))
        .await
        .unwrap();
    // The deployed ingress, whose secret `--secret-from-function` reads.
    let function = unique("ingress");
    testkit::provision::create_function(
        &stack.iam,
        &aws::lambda(&stack.sdk, &CallCounter::default()),
        &function,
        &[("CLIENT_KEY_SECRET", "permissions-test-secret-0123")],
    )
    .await
    .unwrap();
    // The notifier's DLQ with an event Lambda gave up on, and a stand-in
    // for Lambda's Invoke that accepts it (the notifier is not deployed here).
    let events_dlq = testkit::provision::create_queues(&stack.sqs, &unique("events"), 3)
        .await
        .unwrap()
        .dlq_url;
    let dead = json!({
        "requestContext": {"condition": "RetriesExhausted"},
        "requestPayload": state_change_event("ev-perm", REGION, "123456789012", "perm-pipeline",
            "exec-perm", PipelineState::Succeeded, "2026-11-21T10:00:00Z"),
        "responsePayload": {"errorMessage": "table away"},
    });
    for _ in 0..2 {
        stack.send_raw(&events_dlq, &dead.to_string()).await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let invoke = format!("http://{}", listener.local_addr().unwrap());
    // Invoke is answered here; Lambda's other calls go on to moto.
    let moto = testkit::moto_endpoint().to_string();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<hyper::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    testkit::serve_http(
        listener,
        move |request: hyper::Request<hyper::body::Incoming>| {
            let (moto, client) = (moto.clone(), client.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if parts.uri.path().ends_with("/invocations") {
                    return Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from_static(b"{}")),
                    ));
                }
                Ok(testkit::relay(&client, &moto, &parts, body)
                    .await
                    .unwrap_or_else(|| hyper::Response::new(http_body_util::Full::default())))
            }
        },
    );
    let mut endpoints = testkit::engines();
    endpoints
        .services
        .push((aws::LAMBDA_SERVICE_ID.to_string(), invoke));
    let with_invoke = aws::with_endpoints(&stack.sdk, endpoints);
    let targets = [
        "--table-name",
        stack.table_name.as_str(),
        "--queue-url",
        stack.queues.queue_url.as_str(),
        "--dlq-url",
        stack.queues.dlq_url.as_str(),
        "--events-dlq-url",
        events_dlq.as_str(),
        "--function",
        "perm-notifier",
    ];
    let cidrs = format!(
        "{}/data/network-groups/cidrs.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    for command in [
        vec!["dlq", "stats"],
        vec!["dlq", "peek"],
        vec!["dlq", "replay"],
        vec!["dlq", "purge", "--yes"],
        vec!["events", "stats"],
        vec!["events", "peek"],
        vec!["events", "replay", "--max", "1"],
        vec!["events", "purge", "--yes"],
        vec!["triggers", "list"],
        vec!["triggers", "show", trigger_id.as_str()],
        vec!["clients", "show", "192.0.2.7"],
        vec![
            "clients",
            "block",
            "192.0.2.0/24",
            "--for",
            "1h",
            "--reason",
            "test",
        ],
        vec!["clients", "unblock", "192.0.2.0/24"],
        vec!["clients", "reset", "192.0.2.7", "--yes"],
        vec!["keys", "create", "perm-ops-key", "--pipeline", "app"],
        vec!["keys", "list"],
        vec!["keys", "rotate", "perm-ops-key"],
        vec!["keys", "revoke", "perm-ops-key"],
        vec!["networks", "import", "perm-ops", &cidrs],
        vec!["networks", "list"],
        vec!["networks", "remove", "perm-ops"],
        vec!["pipelines", "show", "app"],
        vec!["pipelines", "flush", "app", "--yes", "--lane", "all"],
        vec!["secret", "rotate"],
        vec![
            "secret",
            "status",
            "--secret-from-function",
            function.as_str(),
        ],
        vec![
            "clients",
            "--secret-from-function",
            function.as_str(),
            "show",
            "192.0.2.7",
        ],
    ] {
        let mut line = vec!["trigger-ops"];
        line.extend_from_slice(&targets);
        line.extend_from_slice(&command);
        let cli = <ops::cli::Cli as clap::Parser>::try_parse_from(&line).unwrap();
        let ran = ops::run(
            &cli,
            &ops::Context {
                sdk: &with_invoke,
                env: &env,
                stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                calls: calls.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        assert!(ran.success, "{command:?}: {}", ran.output);
    }
    assert_eq!(observed(&calls), granted(Function::Ops));
}

#[tokio::test]
async fn the_secret_read_from_the_deployed_ingress_keys_addresses_as_the_environment_does() {
    let stack = Stack::new().await;
    let function = unique("ingress");
    testkit::provision::create_function(
        &stack.iam,
        &aws::lambda(&stack.sdk, &CallCounter::default()),
        &function,
        &[("CLIENT_KEY_SECRET", "deployed-secret-0123456789")],
    )
    .await
    .unwrap();
    let show = |args: Vec<&str>, secret: &str| {
        let mut line = vec![
            "trigger-ops",
            "--table-name",
            stack.table_name.as_str(),
            "--json",
            "clients",
        ];
        line.extend(args);
        let cli = <ops::cli::Cli as clap::Parser>::try_parse_from(&line).unwrap();
        let env = Env::from_pairs([("CLIENT_KEY_SECRET", secret)]);
        let sdk = stack.sdk.clone();
        async move {
            ops::run(
                &cli,
                &ops::Context {
                    sdk: &sdk,
                    env: &env,
                    stop: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                    calls: CallCounter::default(),
                },
            )
            .await
            .map(|ran| serde_json::from_str::<Value>(&ran.output).unwrap())
        }
    };
    let from_env = show(vec!["show", "192.0.2.7"], "deployed-secret-0123456789")
        .await
        .unwrap();
    let deployed = show(
        vec![
            "--secret-from-function",
            function.as_str(),
            "show",
            "192.0.2.7",
        ],
        "some-other-secret-0123456789",
    )
    .await
    .unwrap();
    assert_eq!(from_env["client_key"], deployed["client_key"]);
    let missing = show(
        vec![
            "--secret-from-function",
            "no-such-function",
            "show",
            "192.0.2.7",
        ],
        "x",
    )
    .await
    .unwrap_err();
    assert_eq!(missing.exit_code(), 1);
    assert!(
        missing.to_string().contains("no-such-function"),
        "{missing}"
    );
}
