//! What each function's IAM role allows: the SDK calls its code makes, mapped
//! to IAM actions on the resource they touch, plus what Lambda itself does
//! with the role. `tests/permissions.rs` checks the calls against what the
//! handlers really make; `tests/terraform.rs` checks `terraform/iam.tf`
//! against this list. One list, so the role can be neither short nor wide.

use shared::config::Function::{self, Ingress, Notifier, Ops, Worker};
use std::collections::{BTreeMap, BTreeSet};

/// What a grant is on; the name is the policy statement's `sid` in Terraform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Table,
    WorkQueue,
    WorkDlq,
    EventsDlq,
    Topic,
    Pipelines,
    /// The table's indexes the ledger is read by (operators).
    LedgerIndexes,
    /// The ledger's day index alone (the worker's settler).
    DayIndex,
    /// The deployed ingress function (operators read its CLIENT_KEY_SECRET).
    IngressFunction,
    /// The deployed notifier (operators hand it dead events again).
    NotifierFunction,
}

impl Resource {
    pub fn sid(self) -> &'static str {
        match self {
            Self::Table => "Table",
            Self::WorkQueue => "WorkQueue",
            Self::WorkDlq => "WorkDlq",
            Self::EventsDlq => "EventsDlq",
            Self::Topic => "Topic",
            Self::Pipelines => "Pipelines",
            Self::LedgerIndexes => "LedgerIndexes",
            Self::DayIndex => "DayIndex",
            Self::IngressFunction => "IngressFunction",
            Self::NotifierFunction => "NotifierFunction",
        }
    }
}

pub struct Grant {
    pub function: Function,
    /// The SDK call (`Service.Operation`, as [`shared::aws::CallCounter`]
    /// names it), or `None` for what Lambda does with the role.
    pub call: Option<&'static str>,
    pub actions: &'static [&'static str],
    pub resource: Resource,
}

const fn call(
    function: Function,
    call: &'static str,
    actions: &'static [&'static str],
    resource: Resource,
) -> Grant {
    Grant {
        function,
        call: Some(call),
        actions,
        resource,
    }
}

const fn platform(
    function: Function,
    actions: &'static [&'static str],
    resource: Resource,
) -> Grant {
    Grant {
        function,
        call: None,
        actions,
        resource,
    }
}

use Resource::{
    DayIndex, EventsDlq, IngressFunction, LedgerIndexes, NotifierFunction, Pipelines, Table, Topic,
    WorkDlq, WorkQueue,
};

/// A transaction is authorized per item action: admission and refund update,
/// put and delete, and admission checks the operators' blocks.
const TRANSACT_INGRESS: &[&str] = &[
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
];
/// `record_started` and the runs (join, open, take the lane, record the
/// start): update and put.
const TRANSACT_WORKER: &[&str] = &["dynamodb:UpdateItem", "dynamodb:PutItem"];

pub const GRANTS: &[Grant] = &[
    call(
        Ingress,
        "DynamoDB.TransactWriteItems",
        TRANSACT_INGRESS,
        Table,
    ),
    // The status of a trigger: the trigger and its run (and its lane) by key.
    call(
        Ingress,
        "DynamoDB.BatchGetItem",
        &["dynamodb:BatchGetItem"],
        Table,
    ),
    // An admission whose answers were all lost is settled (a conditional
    // put), and its quota read back.
    call(Ingress, "DynamoDB.PutItem", &["dynamodb:PutItem"], Table),
    call(Ingress, "DynamoDB.GetItem", &["dynamodb:GetItem"], Table),
    call(Ingress, "SQS.SendMessage", &["sqs:SendMessage"], WorkQueue),
    call(Worker, "DynamoDB.GetItem", &["dynamodb:GetItem"], Table),
    call(
        Worker,
        "DynamoDB.TransactWriteItems",
        TRANSACT_WORKER,
        Table,
    ),
    call(
        Worker,
        "DynamoDB.UpdateItem",
        &["dynamodb:UpdateItem"],
        Table,
    ),
    call(
        Worker,
        "SQS.ChangeMessageVisibility",
        &["sqs:ChangeMessageVisibility"],
        WorkQueue,
    ),
    call(
        Worker,
        "SQS.DeleteMessage",
        &["sqs:DeleteMessage"],
        WorkQueue,
    ),
    call(Worker, "SQS.SendMessage", &["sqs:SendMessage"], WorkDlq),
    // The settler finds records the last double fault left queued.
    call(Worker, "DynamoDB.Query", &["dynamodb:Query"], DayIndex),
    // The lane's poll sends its message again, delayed; a freed lane wakes
    // its first waiting run.
    call(Worker, "SQS.SendMessage", &["sqs:SendMessage"], WorkQueue),
    call(
        Worker,
        "CodePipeline.StartPipelineExecution",
        &["codepipeline:StartPipelineExecution"],
        Pipelines,
    ),
    // Is a lane holder not heard of for `RUN_CHECK_AFTER` still running?
    call(
        Worker,
        "CodePipeline.GetPipelineExecution",
        &["codepipeline:GetPipelineExecution"],
        Pipelines,
    ),
    // Did a lane holder's start go through though it was never recorded?
    call(
        Worker,
        "CodePipeline.ListPipelineExecutions",
        &["codepipeline:ListPipelineExecutions"],
        Pipelines,
    ),
    // The event source mapping polls the work queue with the worker's role.
    platform(
        Worker,
        &[
            "sqs:ReceiveMessage",
            "sqs:GetQueueAttributes",
            "sqs:DeleteMessage",
        ],
        WorkQueue,
    ),
    call(Notifier, "DynamoDB.GetItem", &["dynamodb:GetItem"], Table),
    call(
        Notifier,
        "DynamoDB.UpdateItem",
        &["dynamodb:UpdateItem"],
        Table,
    ),
    call(Notifier, "DynamoDB.PutItem", &["dynamodb:PutItem"], Table),
    call(
        Notifier,
        "DynamoDB.DeleteItem",
        &["dynamodb:DeleteItem"],
        Table,
    ),
    call(Notifier, "SNS.Publish", &["sns:Publish"], Topic),
    call(
        Notifier,
        "CodePipeline.ListActionExecutions",
        &["codepipeline:ListActionExecutions"],
        Pipelines,
    ),
    call(
        Notifier,
        "CodePipeline.GetPipelineExecution",
        &["codepipeline:GetPipelineExecution"],
        Pipelines,
    ),
    // A run that ended wakes the first waiting one: its opener's message again.
    call(Notifier, "SQS.SendMessage", &["sqs:SendMessage"], WorkQueue),
    // Lambda sends a failed asynchronous invocation to the events DLQ with the notifier's role.
    platform(Notifier, &["sqs:SendMessage"], EventsDlq),
    // trigger-ops (the operators' policy): the DLQ commands...
    call(
        Ops,
        "SQS.GetQueueAttributes",
        &["sqs:GetQueueAttributes"],
        WorkQueue,
    ),
    call(
        Ops,
        "SQS.GetQueueAttributes",
        &["sqs:GetQueueAttributes"],
        WorkDlq,
    ),
    call(Ops, "SQS.ReceiveMessage", &["sqs:ReceiveMessage"], WorkDlq),
    call(
        Ops,
        "SQS.ChangeMessageVisibilityBatch",
        &["sqs:ChangeMessageVisibility"],
        WorkDlq,
    ),
    call(Ops, "SQS.SendMessageBatch", &["sqs:SendMessage"], WorkQueue),
    call(
        Ops,
        "SQS.DeleteMessageBatch",
        &["sqs:DeleteMessage"],
        WorkDlq,
    ),
    call(Ops, "DynamoDB.UpdateItem", &["dynamodb:UpdateItem"], Table),
    // ... the events commands: the notifier's DLQ, and the notifier itself ...
    call(
        Ops,
        "SQS.GetQueueAttributes",
        &["sqs:GetQueueAttributes"],
        EventsDlq,
    ),
    call(
        Ops,
        "SQS.ReceiveMessage",
        &["sqs:ReceiveMessage"],
        EventsDlq,
    ),
    call(
        Ops,
        "SQS.ChangeMessageVisibilityBatch",
        &["sqs:ChangeMessageVisibility"],
        EventsDlq,
    ),
    call(
        Ops,
        "SQS.DeleteMessageBatch",
        &["sqs:DeleteMessage"],
        EventsDlq,
    ),
    call(
        Ops,
        "Lambda.Invoke",
        &["lambda:InvokeFunction"],
        NotifierFunction,
    ),
    // ... clients (look up, reset, block, unblock) and triggers (show).
    call(Ops, "DynamoDB.GetItem", &["dynamodb:GetItem"], Table),
    call(Ops, "DynamoDB.DeleteItem", &["dynamodb:DeleteItem"], Table),
    // A network group's pieces (`networks import`).
    call(Ops, "DynamoDB.PutItem", &["dynamodb:PutItem"], Table),
    // A block is the anchor prefixes it covers, written all or none; a
    // trigger key's items are made, rotated and revoked together.
    call(
        Ops,
        "DynamoDB.TransactWriteItems",
        &["dynamodb:PutItem", "dynamodb:UpdateItem"],
        Table,
    ),
    // `keys list`: every key's uses.
    call(
        Ops,
        "DynamoDB.BatchGetItem",
        &["dynamodb:BatchGetItem"],
        Table,
    ),
    call(Ops, "DynamoDB.Query", &["dynamodb:Query"], LedgerIndexes),
    // `secret rotate`: when the last block in force ends (blocks have no
    // index; a rotation is rare).
    call(Ops, "DynamoDB.Scan", &["dynamodb:Scan"], Table),
    // ... and the secret, read from the deployed ingress when asked to.
    call(
        Ops,
        "Lambda.GetFunctionConfiguration",
        &["lambda:GetFunctionConfiguration"],
        IngressFunction,
    ),
];

/// The IAM actions a function's role allows, per resource.
pub fn allowed(function: Function) -> BTreeMap<Resource, BTreeSet<&'static str>> {
    let mut allowed: BTreeMap<Resource, BTreeSet<&'static str>> = BTreeMap::new();
    for grant in GRANTS.iter().filter(|g| g.function == function) {
        allowed
            .entry(grant.resource)
            .or_default()
            .extend(grant.actions.iter().copied());
    }
    allowed
}

/// Which items of the table a function's role may name, by the prefix of
/// their partition key (`dynamodb:LeadingKeys`, see
/// [`shared::aws::table::items`]): one Terraform statement each, `sid`
/// `Table` for reads and `TableWrites` for writes. Actions not listed for a
/// function are not granted on the table at all.
pub struct KeyGrant {
    pub function: Function,
    pub sid: &'static str,
    pub actions: &'static [&'static str],
    pub prefixes: &'static [&'static str],
}

const WRITES: &[&str] = &[
    "dynamodb:DeleteItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
];

pub const KEY_GRANTS: &[KeyGrant] = &[
    // Admission: quota (client, networks, the global budget, a trigger
    // key's) and the trigger record; a refund deletes the record. Reads:
    // the quota read back, the operators' blocks and a trigger key still
    // good (condition checks), a presented key by its hash, the network
    // groups, a trigger's status with its run and lane.
    KeyGrant {
        function: Ingress,
        sid: "TableWrites",
        actions: WRITES,
        prefixes: &["client#", "network#", "global#", "keyquota#", "trigger#"],
    },
    KeyGrant {
        function: Ingress,
        sid: "Table",
        actions: &[
            "dynamodb:BatchGetItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:GetItem",
        ],
        prefixes: &[
            "client#",
            "network#",
            "global#",
            "keyquota#",
            "apikey#",
            "netgroup#",
            "trigger#",
            "run#",
            "lane#",
            "block#",
        ],
    },
    // Runs, lanes, pending sets, the execution index and the triggers'
    // starts; a refusal behind a full queue gives the quota slots back.
    KeyGrant {
        function: Worker,
        sid: "TableWrites",
        actions: &["dynamodb:PutItem", "dynamodb:UpdateItem"],
        prefixes: &[
            "client#",
            "network#",
            "global#",
            "keyquota#",
            "trigger#",
            "run#",
            "lane#",
            "pending#",
            "execution#",
        ],
    },
    KeyGrant {
        function: Worker,
        sid: "Table",
        actions: &["dynamodb:GetItem"],
        prefixes: &["trigger#", "run#", "lane#", "pending#", "execution#"],
    },
    // Outcomes and stages of triggers and runs, the lane freed, the e-mail
    // claims.
    KeyGrant {
        function: Notifier,
        sid: "TableWrites",
        actions: WRITES,
        prefixes: &["trigger#", "run#", "lane#", "event#"],
    },
    KeyGrant {
        function: Notifier,
        sid: "Table",
        actions: &["dynamodb:GetItem"],
        prefixes: &["trigger#", "run#", "lane#", "execution#", "event#"],
    },
];

/// May `function`'s role do `action` (`dynamodb:UpdateItem`, ...) on the
/// item keyed `pk`, by [`KEY_GRANTS`]?
pub fn key_allowed(function: Function, action: &str, pk: &str) -> bool {
    KEY_GRANTS.iter().any(|g| {
        g.function == function
            && g.actions.contains(&action)
            && g.prefixes.iter().any(|p| pk.starts_with(p))
    })
}

/// The SDK calls a function's code makes.
pub fn calls_of(function: Function) -> BTreeSet<&'static str> {
    GRANTS
        .iter()
        .filter(|g| g.function == function)
        .filter_map(|g| g.call)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_an_iam_action_of_the_calls_service() {
        for grant in GRANTS {
            for action in grant.actions {
                let (service, name) = action.split_once(':').expect("service:Action");
                assert!(!name.is_empty() && name.chars().next().unwrap().is_ascii_uppercase());
                if let Some(call) = grant.call {
                    let call_service = call.split_once('.').unwrap().0.to_ascii_lowercase();
                    assert_eq!(service, call_service, "{call} -> {action}");
                }
            }
        }
        assert_eq!(
            allowed(Function::Ingress)[&Resource::Table],
            BTreeSet::from([
                "dynamodb:BatchGetItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem"
            ])
        );
        assert!(calls_of(Function::Ops).contains("DynamoDB.Query"));
        // Key grants cover exactly the table actions each function has.
        for function in [Function::Ingress, Function::Worker, Function::Notifier] {
            let keyed: BTreeSet<&str> = KEY_GRANTS
                .iter()
                .filter(|g| g.function == function)
                .flat_map(|g| g.actions.iter().copied())
                .collect();
            assert_eq!(keyed, allowed(function)[&Resource::Table], "{function:?}");
        }
        assert!(key_allowed(
            Function::Ingress,
            "dynamodb:UpdateItem",
            "client#ab"
        ));
        assert!(!key_allowed(
            Function::Ingress,
            "dynamodb:UpdateItem",
            "run#R"
        ));
        assert!(!key_allowed(
            Function::Ingress,
            "dynamodb:UpdateItem",
            "block#ab"
        ));
        assert!(key_allowed(
            Function::Ingress,
            "dynamodb:ConditionCheckItem",
            "block#ab"
        ));
        assert_eq!(
            allowed(Function::Ops)[&Resource::LedgerIndexes],
            BTreeSet::from(["dynamodb:Query"])
        );
    }
}
