//! Which partition keys a DynamoDB client's requests name, per IAM action:
//! what `dynamodb:LeadingKeys` is evaluated on. A transaction's items are
//! authorized one by one (an update as `dynamodb:UpdateItem`, a condition
//! check as `dynamodb:ConditionCheckItem`), and so are they recorded.

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::GetItemInput;
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::QueryInput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// `(IAM action, partition key)` pairs a client's requests named, in the
/// order they were named.
#[derive(Debug, Clone, Default)]
pub struct KeyLog(Arc<Mutex<Vec<(String, String)>>>);

impl KeyLog {
    /// Every pair named, once each.
    pub fn snapshot(&self) -> BTreeSet<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// How many requests named so far (an index into [`KeyLog::since`]).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pairs named since `start` (a [`KeyLog::len`]), in order.
    pub fn since(&self, start: usize) -> Vec<(String, String)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())[start..].to_vec()
    }

    fn add(&self, action: &str, key: Option<&HashMap<String, AttributeValue>>) {
        let pk = key
            .and_then(|k| k.get("pk"))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| "<no pk>".to_string());
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((format!("dynamodb:{action}"), pk));
    }
}

impl Intercept for KeyLog {
    fn name(&self) -> &'static str {
        "KeyLog"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        if let Some(i) = input.downcast_ref::<GetItemInput>() {
            self.add("GetItem", i.key());
        } else if let Some(i) = input.downcast_ref::<PutItemInput>() {
            self.add("PutItem", i.item());
        } else if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            self.add("UpdateItem", i.key());
        } else if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
            self.add("DeleteItem", i.key());
        } else if let Some(i) = input.downcast_ref::<BatchGetItemInput>() {
            for keys in i.request_items().into_iter().flat_map(|m| m.values()) {
                for key in keys.keys() {
                    self.add("BatchGetItem", Some(key));
                }
            }
        } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            for item in i.transact_items() {
                if let Some(put) = item.put() {
                    self.add("PutItem", Some(put.item()));
                }
                if let Some(update) = item.update() {
                    self.add("UpdateItem", Some(update.key()));
                }
                if let Some(delete) = item.delete() {
                    self.add("DeleteItem", Some(delete.key()));
                }
                if let Some(check) = item.condition_check() {
                    self.add("ConditionCheckItem", Some(check.key()));
                }
            }
        } else if input.downcast_ref::<QueryInput>().is_some() {
            // The ledger's indexes: keyed by day and run, not by `pk`.
            self.add("Query", None);
        } else {
            self.add("<other>", None);
        }
        Ok(())
    }
}

/// `client` with every request's keys recorded in `log`.
pub fn recording(client: aws_sdk_dynamodb::Client, log: &KeyLog) -> aws_sdk_dynamodb::Client {
    let config = client
        .config()
        .to_builder()
        .interceptor(log.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}
