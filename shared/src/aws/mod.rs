//! The AWS adapters, one per service or concern, each a thin layer over an
//! official SDK client and tested against the real engines (DynamoDB Local
//! for DynamoDB, moto for the rest; faults replayed with aws-smithy-mocks):
//!
//! - [`table`]: DynamoDB, the one table, one file per aggregate (admission,
//!   triggers, runs, stages, ledger, claims, blocks) and its keys.
//! - [`queue`]: SQS: the work queue and its dead-letter queue.
//! - [`topic`]: SNS: on-call e-mail.
//! - [`pipeline`]: CodePipeline: starting runs, reading their history.
//! - [`lanes`]: waking the next run of a lane (worker and notifier).
//! - `function_config` (feature `operators`): a deployed function's
//!   configuration, for the operators' tool.
//!
//! Creating resources on an emulator, the CodePipeline front and the IAM
//! grants checked against the Terraform live with the tests
//! (`tools/testkit`), not here: the Lambdas link only the product.
//!
//! This module itself is the one way to build clients: SDK settings from the
//! environment (`AWS_ENDPOINT_URL` and friends point at an emulator; a
//! Lambda reads nothing else, [`lambda_sdk_config`]), tight
//! timeouts so a dead dependency becomes a fast 503, standard retries, and a
//! [`CallCounter`] on every client so each invocation can say how many AWS
//! calls it made.

#[cfg(feature = "operators")]
pub mod function_config;
pub mod https;
pub mod lanes;
pub mod pipeline;
pub mod queue;
pub mod table;
pub mod topic;

use crate::config::{ConfigError, Env};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

/// Attempts per call, the first included (throttling and 5xx are retried).
pub const MAX_SDK_ATTEMPTS: u32 = 3;

/// Tight timeouts, so a dead dependency becomes a fast 503.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_secs(3))
        .operation_timeout(Duration::from_secs(8))
        .build()
}

fn retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_SDK_ATTEMPTS)
}

/// SDK settings shared by every client; `load().await` reads the environment
/// and the profile files as the SDK's default chain does: the operators'
/// tool, the local stack and the tests. The Lambdas use [`lambda_sdk_config`].
pub fn config_loader() -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https::https_client())
        .timeout_config(timeouts())
        .retry_config(retries())
}

/// A Lambda function's SDK settings, from its environment alone: the region
/// and the role's credentials as the Lambda runtime sets them, and endpoints
/// from `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL` (an emulator), with
/// the same HTTPS client, timeouts and retries as [`config_loader`].
///
/// The SDK's default chain finds the same values in a function (the
/// environment comes first in each of its chains), but first reads the
/// profile files and builds the IMDS, ECS, SSO and web-identity providers
/// a function never uses, on every cold start
/// (docs/performance.md). Credentials are read once: Lambda's do not
/// change during an execution environment's life.
pub fn lambda_sdk_config(env: &Env) -> Result<SdkConfig, ConfigError> {
    let set = |name: &'static str| env.get(name).filter(|value| !value.trim().is_empty());
    let required = |name: &'static str| set(name).ok_or(ConfigError::Missing { name });
    let region = set("AWS_REGION")
        .or_else(|| set("AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::Missing { name: "AWS_REGION" })?;
    let mut credentials = Credentials::builder()
        .access_key_id(required("AWS_ACCESS_KEY_ID")?)
        .secret_access_key(required("AWS_SECRET_ACCESS_KEY")?)
        .provider_name("Lambda environment");
    credentials.set_session_token(set("AWS_SESSION_TOKEN").map(|t| t.trim().to_string()));
    credentials.set_account_id(set("AWS_ACCOUNT_ID").map(|id| id.trim().into()));
    Ok(SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .credentials_provider(SharedCredentialsProvider::new(credentials.build()))
        .http_client(https::https_client())
        .timeout_config(timeouts())
        .retry_config(retries())
        .service_config(EnvEndpoints::from_env(env))
        .build())
}

/// Endpoints from the environment only: `AWS_ENDPOINT_URL_<SERVICE>` (the
/// service id in upper case, spaces as `_`), then `AWS_ENDPOINT_URL`, as the
/// SDK reads them without a profile.
#[derive(Debug, Clone, Default)]
struct EnvEndpoints {
    urls: BTreeMap<String, String>,
}

impl EnvEndpoints {
    fn from_env(env: &Env) -> Self {
        Self {
            urls: env
                .names_starting_with(ENDPOINT_SETTING)
                .filter_map(|name| Some((name.to_string(), env.get(name)?.to_string())))
                .filter(|(_, url)| !url.is_empty())
                .collect(),
        }
    }
}

impl LoadServiceConfig for EnvEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != ENDPOINT_SETTING {
            return None;
        }
        let service = key.service_id().to_uppercase().replace(' ', "_");
        self.urls
            .get(&format!("{ENDPOINT_SETTING}_{service}"))
            .or_else(|| self.urls.get(ENDPOINT_SETTING))
            .cloned()
    }
}

/// Where the calls go when not to AWS itself: DynamoDB to one engine
/// (DynamoDB Local), every other service to another (moto). The same as
/// setting `AWS_ENDPOINT_URL_DYNAMODB` and `AWS_ENDPOINT_URL`, for SDK
/// settings built in code (tests, the local stack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub dynamodb: String,
    pub others: String,
    /// Services elsewhere than `others`, by service id (`"CodePipeline"`:
    /// a front that plays it as AWS does; `"Lambda"`: the local stack's
    /// `Invoke`), like `AWS_ENDPOINT_URL_<SERVICE>`.
    pub services: Vec<(String, String)>,
}

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.env() != ENDPOINT_SETTING {
            return None;
        }
        if key.service_id() == DYNAMODB_SERVICE_ID {
            return Some(self.dynamodb.clone());
        }
        Some(
            self.services
                .iter()
                .find(|(service, _)| service == key.service_id())
                .map_or_else(|| self.others.clone(), |(_, url)| url.clone()),
        )
    }
}

/// CodePipeline's service id, as the SDK names it in per-service settings.
pub const CODEPIPELINE_SERVICE_ID: &str = "CodePipeline";
/// Lambda's service id.
pub const LAMBDA_SERVICE_ID: &str = "Lambda";

const ENDPOINT_SETTING: &str = "AWS_ENDPOINT_URL";
/// DynamoDB's service id, as the SDK names it in per-service settings.
pub const DYNAMODB_SERVICE_ID: &str = "DynamoDB";

/// `sdk` with every service's endpoint taken from `endpoints`.
pub fn with_endpoints(sdk: &SdkConfig, endpoints: Endpoints) -> SdkConfig {
    sdk.to_builder().service_config(endpoints).build()
}

/// The endpoint a client of `service_id` (`"DynamoDB"`, `"SQS"`, …) built
/// from `sdk` calls, resolved as the SDK's own client builders resolve it:
/// an endpoint set in code wins, then the service's own setting
/// (`AWS_ENDPOINT_URL_<SERVICE>`), then the global one. `None`: AWS itself.
pub fn endpoint_of(sdk: &SdkConfig, service_id: &str) -> Option<String> {
    if sdk.get_origin("endpoint_url").is_client_config() {
        return sdk.endpoint_url().map(str::to_string);
    }
    let key = ServiceConfigKey::builder()
        .service_id(service_id)
        .env(ENDPOINT_SETTING)
        .profile("endpoint_url")
        .build()
        .ok()?;
    sdk.service_config()
        .and_then(|config| config.load_config(key))
        .or_else(|| sdk.endpoint_url().map(str::to_string))
}

/// Counts the AWS operations made through the clients it is attached to
/// (one per call, whatever the SDK's retries did underneath), per
/// `Service.Operation`. Memory stays bounded: one counter per operation name.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Calls so far per `Service.Operation`.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }

    pub fn total(&self) -> u64 {
        self.lock().values().sum()
    }

    /// Calls to one service (`"DynamoDB"`, `"SQS"`, ...).
    pub fn count(&self, service: &str) -> u64 {
        let prefix = format!("{service}.");
        self.lock()
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// The calls made since `earlier` was taken, per `Service.Operation`.
    pub fn since(&self, earlier: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .map(|(name, n)| (name.clone(), n - earlier.get(name).copied().unwrap_or(0)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    // Operation metadata is in the bag from serialization on (not yet at
    // `read_before_execution` for client-level interceptors); this hook runs
    // once per operation, before any retry.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let call = match cfg.load::<Metadata>() {
            Some(m) => format!("{}.{}", m.service(), m.name()),
            None => "unknown.unknown".to_string(),
        };
        *self.lock().entry(call).or_insert(0) += 1;
        Ok(())
    }
}

/// The one way a client is built: `$krate`'s client over the shared
/// settings `$sdk`, counting its calls on `$calls`, with a retry budget of
/// its own (the SDK's token bucket, with its default size and costs). By
/// default the SDK shares one budget per service across the whole process.
/// A Lambda builds one client per service, so there it is the same thing;
/// but the tests and the local stack run many clients in one process, and
/// one of them retrying a dead endpoint must not spend the retries another
/// one needs. An `endpoint` (`Option<&str>`) sends its calls elsewhere than
/// the settings say.
#[macro_export]
macro_rules! sdk_client {
    ($krate:ident, $sdk:expr, $calls:expr $(, endpoint = $endpoint:expr)?) => {{
        #[allow(unused_mut)]
        let mut config = $krate::config::Builder::from($sdk)
            .interceptor($calls.clone())
            .retry_partition(
                $krate::config::retry::RetryPartition::custom(stringify!($krate)).build(),
            );
        $(
            if let Some(endpoint) = $endpoint {
                config = config.endpoint_url(endpoint);
            }
        )?
        $krate::Client::from_conf(config.build())
    }};
}

pub fn dynamodb(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_dynamodb::Client {
    sdk_client!(aws_sdk_dynamodb, sdk, calls)
}

pub fn sqs(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_sqs::Client {
    sdk_client!(aws_sdk_sqs, sdk, calls)
}

pub fn codepipeline(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_codepipeline::Client {
    sdk_client!(aws_sdk_codepipeline, sdk, calls)
}

/// A CodePipeline client sending its calls to `endpoint` instead of where
/// the settings say (`AWS_ENDPOINT_URL` included): the local stack's
/// stand-ins and fault injection.
pub fn codepipeline_at(
    sdk: &SdkConfig,
    calls: &CallCounter,
    endpoint: Option<&str>,
) -> aws_sdk_codepipeline::Client {
    sdk_client!(aws_sdk_codepipeline, sdk, calls, endpoint = endpoint)
}

pub fn sns(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_sns::Client {
    sdk_client!(aws_sdk_sns, sdk, calls)
}

/// Lambda, for operators: the deployed ingress's configuration.
#[cfg(feature = "operators")]
pub fn lambda(sdk: &SdkConfig, calls: &CallCounter) -> aws_sdk_lambda::Client {
    sdk_client!(aws_sdk_lambda, sdk, calls)
}

/// A client built when first used, then kept: what [`std::sync::LazyLock`]
/// is for a static, per instance. A Lambda builds its DynamoDB client at
/// init (every invocation uses it) and the others this way, so an
/// invocation that never sends a message, an e-mail or a start never pays
/// for building their clients (≈ 0.1–0.4 ms a client at init, the first
/// client of each SDK crate parsing that crate's copy of AWS's partition
/// table; docs/performance.md). Adapters take
/// `impl Into<Lazy<C>>`, so a client built already (tests, the tool) is
/// handed in as before. `Deref` builds it on first use.
#[derive(Clone)]
pub struct Lazy<C>(Arc<LazyLock<C, Box<dyn FnOnce() -> C + Send>>>);

impl<C> Lazy<C> {
    pub fn new(build: impl FnOnce() -> C + Send + 'static) -> Self {
        Self(Arc::new(LazyLock::new(Box::new(build))))
    }
}

impl<C: Send + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self::new(move || client)
    }
}

impl<C> std::ops::Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> std::fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lazy")
    }
}

/// A client of `build` (one of the builders above) over `sdk`, built when
/// first used.
pub fn lazily<C: 'static>(
    sdk: &SdkConfig,
    calls: &CallCounter,
    build: fn(&SdkConfig, &CallCounter) -> C,
) -> Lazy<C> {
    let (sdk, calls) = (sdk.clone(), calls.clone());
    Lazy::new(move || build(&sdk, &calls))
}

/// How [`describe`] names a call that could not reach the service at all.
pub const CONNECTION_FAILED: &str = "connection failed";

/// Error codes with which a service refuses a call before carrying out any
/// of it: the resource does not exist, the caller may not call it, the
/// request is invalid or unsigned. (A throttle or a 5xx is no such answer:
/// it ends the SDK's retries, and an earlier attempt may have been carried
/// out.)
const DEFINITE_REFUSALS: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "ValidationException",
    "SerializationException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
];

/// Did the service refuse the call without carrying any of it out? Also
/// when the request could not even be built. (A connection that failed is
/// [`CONNECTION_FAILED`], told apart by the callers that care; any other
/// transport failure may have happened after the request went out.)
pub fn is_definite_refusal<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .is_some_and(|code| DEFINITE_REFUSALS.contains(&code)),
        SdkError::ConstructionFailure(_) => true,
        _ => false,
    }
}

/// A short, log-safe description of an SDK error: its code and message, or
/// the transport failure.
pub fn describe<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => format!(
            "{}: {}",
            service.err().code().unwrap_or("ServiceError"),
            service.err().message().unwrap_or("no message")
        ),
        SdkError::TimeoutError(_) => "timeout".to_string(),
        SdkError::DispatchFailure(d) if d.is_io() => CONNECTION_FAILED.to_string(),
        SdkError::DispatchFailure(d) if d.is_timeout() => "timeout".to_string(),
        // No credentials, no region, a bad endpoint: the cause, in words.
        SdkError::DispatchFailure(_) => format!(
            "the request could not be sent: {}",
            aws_smithy_types::error::display::DisplayErrorContext(err)
        ),
        SdkError::ResponseError(_) => "unreadable response".to_string(),
        SdkError::ConstructionFailure(_) => "request could not be built".to_string(),
        _ => "unknown SDK error".to_string(),
    }
}
