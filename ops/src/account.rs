//! `trigger-ops account`: what the account has of Lambda concurrency, and
//! whether a deployment's reservations fit in it. `scripts/deploy` asks
//! before it applies, with the plan Terraform made (`--plan`): a new
//! account often has a quota of 10 or 50, and AWS keeps 100 unreserved, so
//! a plan that reserves any fails there half-applied.

use serde_json::Value;
use shared::aws::function_config::AccountConcurrency;

/// What AWS keeps unreserved in every account.
pub const MIN_UNRESERVED: i64 = 100;

/// Whether `reserve` more fits in the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    pub account: AccountConcurrency,
    pub reserve: i64,
    /// What would stay unreserved.
    pub left: i64,
    pub fits: bool,
}

/// Reserving `reserve` more (a negative number gives some back).
pub fn fit(account: AccountConcurrency, reserve: i64) -> Fit {
    let left = account.unreserved - reserve;
    Fit {
        account,
        reserve,
        left,
        fits: reserve <= 0 || left >= MIN_UNRESERVED,
    }
}

/// How much more concurrency a plan (`terraform show -json PLAN`) reserves
/// than is reserved now: the change of every Lambda function's
/// `reserved_concurrent_executions` (unset and -1 are none).
pub fn reserve_of_plan(plan: &Value) -> Result<i64, String> {
    let changes = plan["resource_changes"]
        .as_array()
        .ok_or("not a plan: no resource_changes (give `terraform show -json PLAN`)")?;
    let reserved = |state: &Value| -> i64 {
        state["reserved_concurrent_executions"]
            .as_i64()
            .filter(|n| *n > 0)
            .unwrap_or(0)
    };
    Ok(changes
        .iter()
        .filter(|c| c["type"] == "aws_lambda_function" && c["mode"] == "managed")
        .map(|c| {
            let change = &c["change"];
            let deleted = change["actions"]
                .as_array()
                .is_some_and(|a| a.len() == 1 && a[0] == "delete");
            let after = if deleted {
                0
            } else {
                reserved(&change["after"])
            };
            after - reserved(&change["before"])
        })
        .sum())
}

pub fn fit_text(fit: &Fit) -> String {
    let account = format!(
        "account concurrency: {} in all, {} unreserved; AWS keeps at least {MIN_UNRESERVED} unreserved\n",
        fit.account.limit, fit.account.unreserved
    );
    let verdict = if fit.reserve <= 0 {
        "the plan reserves nothing more: it fits\n".to_string()
    } else if fit.fits {
        format!(
            "reserving {} more leaves {} unreserved: it fits\n",
            fit.reserve, fit.left
        )
    } else {
        format!(
            "refused: reserving {} more would leave {} unreserved; raise the account's quota (Service Quotas, AWS Lambda, \"Concurrent executions\") or set reserve_concurrency = false\n",
            fit.reserve, fit.left
        )
    };
    account + &verdict
}

pub fn fit_json(fit: &Fit) -> String {
    serde_json::json!({
        "limit": fit.account.limit,
        "unreserved": fit.account.unreserved,
        "minimum_unreserved": MIN_UNRESERVED,
        "reserve": fit.reserve,
        "left": fit.left,
        "fits": fit.fits,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NEW_ACCOUNT: AccountConcurrency = AccountConcurrency {
        limit: 10,
        unreserved: 10,
    };

    #[test]
    fn a_new_account_fits_nothing_reserved_and_refuses_any_reservation() {
        assert!(fit(NEW_ACCOUNT, 0).fits);
        let refused = fit(NEW_ACCOUNT, 27);
        assert!(!refused.fits);
        assert_eq!(refused.left, -17);
        assert!(fit_text(&refused).starts_with("account concurrency: 10 in all, 10 unreserved"));
        assert!(fit_text(&refused).contains("refused: reserving 27 more would leave -17"));
        let raised = AccountConcurrency {
            limit: 1000,
            unreserved: 1000,
        };
        assert!(fit(raised, 27).fits);
        assert!(fit(raised, 900).fits);
        assert!(!fit(raised, 901).fits);
        // Giving some back always fits.
        assert!(fit(NEW_ACCOUNT, -5).fits);
    }

    fn function(key: &str, actions: &[&str], before: Value, after: Value) -> Value {
        json!({
            "address": format!("aws_lambda_function.function[\"{key}\"]"),
            "mode": "managed", "type": "aws_lambda_function",
            "change": {"actions": actions, "before": before, "after": after}
        })
    }

    #[test]
    fn the_plan_says_how_much_more_it_reserves() {
        let first = json!({"resource_changes": [
            function("ingress", &["create"], Value::Null, json!({"reserved_concurrent_executions": 20})),
            function("worker", &["create"], Value::Null, json!({"reserved_concurrent_executions": 2})),
            function("notifier", &["create"], Value::Null, json!({"reserved_concurrent_executions": 5})),
            {"mode": "managed", "type": "aws_sqs_queue", "change": {"actions": ["create"], "before": null, "after": {}}},
        ]});
        assert_eq!(reserve_of_plan(&first), Ok(27));
        let unreserved = json!({"resource_changes": [
            function("ingress", &["create"], Value::Null, json!({"reserved_concurrent_executions": -1})),
            function("worker", &["create"], Value::Null, json!({})),
        ]});
        assert_eq!(reserve_of_plan(&unreserved), Ok(0));
        // Raising one, keeping another, removing the third.
        let again = json!({"resource_changes": [
            function("ingress", &["update"], json!({"reserved_concurrent_executions": 20}), json!({"reserved_concurrent_executions": 50})),
            function("worker", &["no-op"], json!({"reserved_concurrent_executions": 2}), json!({"reserved_concurrent_executions": 2})),
            function("notifier", &["delete"], json!({"reserved_concurrent_executions": 5}), Value::Null),
        ]});
        assert_eq!(reserve_of_plan(&again), Ok(25));
        assert!(reserve_of_plan(&json!({"format_version": "1.2"})).is_err());
    }
}
