//! `trigger-ops account`'s one AWS call, `GetAccountSettings`, which no
//! emulator here answers (moto has no Lambda account settings): replayed
//! through the real SDK client with aws-smithy-mocks.

use aws_sdk_lambda::operation::get_account_settings::GetAccountSettingsOutput;
use aws_sdk_lambda::types::AccountLimit;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ops::account::{fit, MIN_UNRESERVED};
use shared::aws::function_config::{account_concurrency, AccountConcurrency};

#[tokio::test]
async fn a_new_accounts_settings_refuse_a_reservation_and_a_raised_one_fits_it() {
    let new_account = mock!(aws_sdk_lambda::Client::get_account_settings).then_output(|| {
        GetAccountSettingsOutput::builder()
            .account_limit(
                AccountLimit::builder()
                    .concurrent_executions(10)
                    .unreserved_concurrent_executions(10)
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&new_account]);
    let account = account_concurrency(&client).await.unwrap();
    assert_eq!(
        account,
        AccountConcurrency {
            limit: 10,
            unreserved: 10
        }
    );
    assert!(!fit(account, 27).fits);
    assert!(fit(account, 0).fits);
    let raised = mock!(aws_sdk_lambda::Client::get_account_settings).then_output(|| {
        GetAccountSettingsOutput::builder()
            .account_limit(
                AccountLimit::builder()
                    .concurrent_executions(1000)
                    .unreserved_concurrent_executions(950)
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&raised]);
    let account = account_concurrency(&client).await.unwrap();
    assert_eq!(account.unreserved, 950);
    assert!(fit(account, 27).fits);
    assert!(!fit(account, 950 - MIN_UNRESERVED + 1).fits);
}

#[tokio::test]
async fn a_refused_call_says_why() {
    let denied = mock!(aws_sdk_lambda::Client::get_account_settings)
        .sequence()
        .http_status(
            403,
            Some(r#"{"Type":"User","message":"not authorized to perform lambda:GetAccountSettings"}"#.into()),
        )
        .build();
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&denied]);
    let err = account_concurrency(&client).await.unwrap_err();
    assert!(
        err.starts_with("cannot read the account's Lambda settings"),
        "{err}"
    );
}
