//! Lambda, for operators: a deployed function's configuration, so
//! `trigger-ops clients` keys addresses with the very secret the ingress uses
//! without anyone copying it around.

use crate::aws::describe;

/// The client-key secrets of the deployed function `function` (name or
/// ARN), as its loader reads them: `CLIENT_KEY_SECRET`, and during a
/// rotation's overlap the previous one.
pub async fn client_key_secrets_of(
    client: &aws_sdk_lambda::Client,
    function: &str,
) -> Result<(Vec<u8>, Option<crate::config::PreviousSecret>), String> {
    let output = client
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot read the configuration of {function}: {}",
                describe(&e)
            )
        })?;
    let variables = output
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    if !variables.contains_key("CLIENT_KEY_SECRET") {
        return Err(format!(
            "{function} has no CLIENT_KEY_SECRET in its environment"
        ));
    }
    let env =
        crate::config::Env::from_pairs(variables.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let read = |e: crate::config::ConfigError| format!("{function}: {e}");
    Ok((
        env.client_key_secret().map_err(read)?,
        env.previous_secret().map_err(read)?,
    ))
}

/// What the account has of Lambda concurrency (`GetAccountSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountConcurrency {
    /// The account's concurrency quota in this region.
    pub limit: i64,
    /// What no function has reserved.
    pub unreserved: i64,
}

/// The account's concurrency quota and what is unreserved of it.
pub async fn account_concurrency(
    client: &aws_sdk_lambda::Client,
) -> Result<AccountConcurrency, String> {
    let output = client.get_account_settings().send().await.map_err(|e| {
        format!(
            "cannot read the account's Lambda settings: {}",
            describe(&e)
        )
    })?;
    let limit = output
        .account_limit()
        .ok_or("the account's Lambda settings have no limits")?;
    Ok(AccountConcurrency {
        limit: i64::from(limit.concurrent_executions()),
        unreserved: i64::from(limit.unreserved_concurrent_executions().unwrap_or_default()),
    })
}
