//! The one client builder: each client has its own retry budget, so one
//! client failing against a dead endpoint never takes the retries of another
//! (the SDK's default is one budget per service for the whole process).

use shared::aws::{CallCounter, Endpoints};

async fn list_tables(client: &aws_sdk_dynamodb::Client) -> bool {
    client.list_tables().limit(1).send().await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_spent_its_retries_leaves_the_others_theirs() {
    let dead = testkit::sdk_config_with(Endpoints {
        dynamodb: testkit::dead_endpoint(),
        others: testkit::moto_endpoint().to_string(),
        services: Vec::new(),
    })
    .await;
    let dead = shared::aws::dynamodb(&dead, &CallCounter::default());
    // 120 failing calls want 240 retries at 5 units each: more than the
    // 500 units of a budget, so this client runs out.
    let failed = futures::future::join_all((0..120).map(|_| list_tables(&dead))).await;
    assert!(failed.iter().all(|ok| !ok));

    // Another client whose every first answer is lost needs a retry per call.
    let proxy = testkit::LossyProxy::start(testkit::dynamodb_endpoint()).await;
    let lossy = testkit::sdk_config_with(Endpoints {
        dynamodb: proxy.endpoint.clone(),
        others: testkit::moto_endpoint().to_string(),
        services: Vec::new(),
    })
    .await;
    let lossy = shared::aws::dynamodb(&lossy, &CallCounter::default());
    assert!(list_tables(&lossy).await, "the retry was refused");
    assert_eq!(proxy.lost(), 1);
}

// ---- A Lambda's settings: its environment only ([`lambda_sdk_config`]) ----

use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_types::os_shim_internal::{Env as SdkEnv, Fs};
use aws_types::SdkConfig;
use proptest::prelude::*;
use shared::aws::{endpoint_of, lambda_sdk_config};
use shared::config::{ConfigError, Env};
use std::time::Duration;

const SERVICES: [&str; 5] = ["DynamoDB", "SQS", "SNS", "CodePipeline", "Lambda"];

fn lambda_env(extra: &[(&str, &str)]) -> Env {
    let mut pairs = vec![
        ("AWS_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_SESSION_TOKEN", ""),
    ];
    pairs.extend_from_slice(extra);
    Env::from_pairs(pairs)
}

/// What the SDK's whole default chain makes of the same variables, with no
/// profile files and no instance metadata.
async fn default_chain(pairs: &[(String, String)]) -> SdkConfig {
    let mut vars: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    vars.push(("AWS_EC2_METADATA_DISABLED", "true"));
    shared::aws::config_loader()
        .env(SdkEnv::from_slice(&vars))
        .fs(Fs::from_slice(&[]))
        .load()
        .await
}

/// Access key, secret, session token and account of the credentials a
/// configuration provides, or `None` when it provides none.
async fn credentials_of(
    sdk: &SdkConfig,
) -> Option<(String, String, Option<String>, Option<String>)> {
    let provided = sdk
        .credentials_provider()?
        .provide_credentials()
        .await
        .ok()?;
    Some((
        provided.access_key_id().to_string(),
        provided.secret_access_key().to_string(),
        provided.session_token().map(str::to_string),
        provided.account_id().map(|id| id.as_str().to_string()),
    ))
}

fn endpoint_url() -> impl Strategy<Value = Option<String>> {
    prop::option::of((1024u16..65535).prop_map(|port| format!("http://127.0.0.1:{port}")))
}

/// Set nine times in ten, to one of `values`.
fn optional(values: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop::option::weighted(0.9, prop::sample::select(values).prop_map(str::to_string))
}

prop_compose! {
    /// Variables as a function, a laptop or a broken deployment may have them.
    fn environments()(
        region in prop::option::of(prop::sample::select(&["eu-west-1", "us-east-1"][..])),
        default_region in prop::option::of(prop::sample::select(&["eu-central-1", "us-west-2"][..])),
        key in optional(&["AKIAEXAMPLE", "ASIAEXAMPLE", "AKIA2", " ", ""]),
        secret in optional(&["secret/with+chars", "s3cr3t", "x", " ", ""]),
        token in optional(&["IQoJb3JpZ2luX2Vj", "", "  "]),
        account in optional(&["123456789012", ""]),
        global in endpoint_url(),
        per_service in prop::collection::vec(endpoint_url(), SERVICES.len()),
    ) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        let mut put = |name: String, value: Option<String>| {
            if let Some(value) = value {
                vars.push((name, value));
            }
        };
        put("AWS_REGION".into(), region.map(str::to_string));
        put("AWS_DEFAULT_REGION".into(), default_region.map(str::to_string));
        put("AWS_ACCESS_KEY_ID".into(), key);
        put("AWS_SECRET_ACCESS_KEY".into(), secret);
        put("AWS_SESSION_TOKEN".into(), token);
        put("AWS_ACCOUNT_ID".into(), account);
        put("AWS_ENDPOINT_URL".into(), global);
        for (service, url) in SERVICES.iter().zip(per_service) {
            put(format!("AWS_ENDPOINT_URL_{}", service.to_uppercase()), url);
        }
        vars
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the variables, a Lambda's lean settings and the SDK's whole
    /// default chain agree: the same region, credentials, endpoint of every
    /// service, timeouts and retries; where the lean settings refuse to
    /// start, the default chain has no region or no credentials either.
    #[test]
    fn a_lambdas_settings_are_what_the_default_chain_makes_of_its_environment(vars in environments()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let env = Env::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let default = default_chain(&vars).await;
            match lambda_sdk_config(&env) {
                Err(ConfigError::Missing { name: "AWS_REGION" }) => {
                    assert_eq!(default.region(), None, "{vars:?}");
                }
                Err(ConfigError::Missing { name }) => {
                    assert!(name == "AWS_ACCESS_KEY_ID" || name == "AWS_SECRET_ACCESS_KEY", "{name}");
                    assert_eq!(credentials_of(&default).await, None, "{vars:?}");
                }
                Err(other) => panic!("{other}"),
                Ok(lean) => {
                    assert_eq!(lean.region(), default.region(), "{vars:?}");
                    let credentials = credentials_of(&lean).await;
                    assert!(credentials.is_some());
                    assert_eq!(credentials, credentials_of(&default).await, "{vars:?}");
                    for service in SERVICES {
                        assert_eq!(endpoint_of(&lean, service), endpoint_of(&default, service), "{service} {vars:?}");
                    }
                    assert_eq!(lean.timeout_config(), default.timeout_config());
                    assert_eq!(lean.retry_config(), default.retry_config());
                    assert_eq!(lean.behavior_version(), default.behavior_version());
                }
            }
        });
    }
}

#[test]
fn a_lambda_without_a_region_or_a_key_does_not_start_and_says_which() {
    let missing = |unset: &str| {
        let mut env = lambda_env(&[]);
        env = env.with(unset, "");
        lambda_sdk_config(&env).err()
    };
    assert_eq!(
        missing("AWS_REGION"),
        Some(ConfigError::Missing { name: "AWS_REGION" })
    );
    assert_eq!(
        missing("AWS_ACCESS_KEY_ID"),
        Some(ConfigError::Missing {
            name: "AWS_ACCESS_KEY_ID"
        })
    );
    assert_eq!(
        missing("AWS_SECRET_ACCESS_KEY"),
        Some(ConfigError::Missing {
            name: "AWS_SECRET_ACCESS_KEY"
        })
    );
    // The older name of the region is enough, as for the SDK.
    let env = lambda_env(&[("AWS_DEFAULT_REGION", "us-east-2")]).with("AWS_REGION", "");
    let sdk = lambda_sdk_config(&env).expect("AWS_DEFAULT_REGION");
    assert_eq!(sdk.region().map(|r| r.as_ref()), Some("us-east-2"));
}

#[tokio::test]
async fn a_lambdas_clients_reach_the_engines_its_environment_names() {
    let env = lambda_env(&[
        ("AWS_ENDPOINT_URL_DYNAMODB", testkit::dynamodb_endpoint()),
        ("AWS_ENDPOINT_URL", testkit::moto_endpoint()),
    ]);
    let sdk = lambda_sdk_config(&env).expect("settings");
    let calls = CallCounter::default();
    let dynamodb = shared::aws::dynamodb(&sdk, &calls);
    dynamodb
        .list_tables()
        .limit(1)
        .send()
        .await
        .expect("DynamoDB Local answers");
    let sqs = shared::aws::sqs(&sdk, &calls);
    sqs.list_queues().send().await.expect("moto answers");
    assert_eq!(calls.count("DynamoDB"), 1);
    assert_eq!(calls.count("SQS"), 1);
}

#[tokio::test]
async fn a_lambdas_calls_time_out_on_an_endpoint_that_never_answers() {
    // Connections are taken (the kernel's backlog) and never answered.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    let sdk = lambda_sdk_config(&lambda_env(&[("AWS_ENDPOINT_URL", &endpoint)])).expect("settings");
    let dynamodb = shared::aws::dynamodb(&sdk, &CallCounter::default());
    let outcome = dynamodb
        .list_tables()
        .customize()
        .config_override(
            aws_sdk_dynamodb::config::Builder::default().timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_millis(200))
                    .operation_timeout(Duration::from_millis(700))
                    .build(),
            ),
        )
        .send()
        .await;
    match outcome {
        Err(SdkError::TimeoutError(_)) => {}
        other => panic!("not a timeout: {other:?}"),
    }
}

// ---- Clients built on first use ([`shared::aws::Lazy`]) ----

#[tokio::test]
async fn a_lazy_client_is_built_on_first_use_once_for_all_its_clones() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let built = Arc::new(AtomicUsize::new(0));
    let sdk = testkit::sdk_config().await;
    let calls = CallCounter::default();
    let lazy = {
        let (built, sdk, calls) = (Arc::clone(&built), sdk.clone(), calls.clone());
        shared::aws::Lazy::new(move || {
            built.fetch_add(1, Ordering::SeqCst);
            shared::aws::sqs(&sdk, &calls)
        })
    };
    let clone = lazy.clone();
    let queue = shared::aws::queue::WorkQueue::new(clone, "http://unused");
    assert_eq!(built.load(Ordering::SeqCst), 0, "built before any use");
    lazy.list_queues().send().await.expect("moto answers");
    let again = lazy.clone();
    again.list_queues().send().await.expect("moto answers");
    assert_eq!(built.load(Ordering::SeqCst), 1);
    assert_eq!(
        calls.count("SQS"),
        2,
        "calls go through the client's counter"
    );
    drop(queue);

    // The builder the functions' mains use: its calls are counted too.
    let lazily = shared::aws::lazily(&sdk, &calls, shared::aws::sqs);
    assert_eq!(calls.count("SQS"), 2);
    lazily.list_queues().send().await.expect("moto answers");
    assert_eq!(calls.count("SQS"), 3);
}
