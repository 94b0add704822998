//! The notifier against moto: real SNS publishes read back through an SQS
//! queue subscribed to the topic, the claim and the trigger records in a real
//! table; CodePipeline's failure details (moto lacks `ListActionExecutions`)
//! replayed through the real client with aws-smithy-mocks.

mod emails;
mod failures;
mod harness;
mod outcomes;
mod runs;
mod stages;
