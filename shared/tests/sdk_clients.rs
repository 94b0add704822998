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
