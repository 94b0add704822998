//! The EventBridge events the notifier takes from `aws.codepipeline`:
//! `CodePipeline Pipeline Execution State Change` (records and e-mails) and
//! `CodePipeline Stage Execution State Change` (a run's stages). Parsing is
//! strict about the fields it uses, because they end up in an e-mail
//! subject, a URL, a public page and table keys.

use super::pipelines::is_valid_pipeline_name;

use super::stages::is_valid_stage_name;
use super::time_format::parse_rfc3339;
use crate::clock::EpochMillis;
use crate::rules::status::PipelineState;
use serde_json::Value;

pub const EVENT_SOURCE: &str = "aws.codepipeline";
pub const EVENT_DETAIL_TYPE: &str = "CodePipeline Pipeline Execution State Change";
pub const STAGE_DETAIL_TYPE: &str = "CodePipeline Stage Execution State Change";

/// One state change, with every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineEvent {
    /// EventBridge's event id: the same on a redelivery.
    pub event_id: String,
    pub region: String,
    pub pipeline: String,
    pub execution_id: String,
    pub state: PipelineState,
    /// When the state changed (the event's `time`).
    pub time: Option<EpochMillis>,
    /// When the execution started (`detail.start-time`, where CodePipeline sends it).
    pub start_time: Option<EpochMillis>,
    /// Who started it (`detail.execution-trigger`), when the event says.
    pub trigger: Option<ExecutionTrigger>,
}

/// One stage's state change, with every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageEvent {
    pub event_id: String,
    pub pipeline: String,
    pub execution_id: String,
    /// The stage's name (CodePipeline's pattern, at most 100 characters).
    pub stage: String,
    /// The stage's state (CodePipeline names them as it does executions').
    pub state: PipelineState,
    /// When the state changed (the event's `time`).
    pub time: Option<EpochMillis>,
    /// Who started the execution (`detail.execution-trigger`), when the event says.
    pub trigger: Option<ExecutionTrigger>,
}

/// What an event, of an execution or of one of its stages, says about the
/// execution: what the notifier finds its owner by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting<'a> {
    pub event_id: &'a str,
    pub execution_id: &'a str,
    /// When the state changed (the event's `time`).
    pub time: Option<EpochMillis>,
    pub trigger: Option<&'a ExecutionTrigger>,
}

impl<'a> Sighting<'a> {
    fn of(
        event_id: &'a str,
        execution_id: &'a str,
        time: Option<EpochMillis>,
        trigger: &'a Option<ExecutionTrigger>,
    ) -> Self {
        let trigger = trigger.as_ref();
        Self {
            event_id,
            execution_id,
            time,
            trigger,
        }
    }
}

impl PipelineEvent {
    pub fn sighting(&self) -> Sighting<'_> {
        Sighting::of(&self.event_id, &self.execution_id, self.time, &self.trigger)
    }
}

impl StageEvent {
    pub fn sighting(&self) -> Sighting<'_> {
        Sighting::of(&self.event_id, &self.execution_id, self.time, &self.trigger)
    }
}

/// Who started an execution, as its event says (`detail.execution-trigger`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionTrigger {
    /// `StartPipelineExecution`, `WebhookV2`, `CloudWatchEvent`, …
    pub trigger_type: String,
    /// For `StartPipelineExecution`, the caller's ARN
    /// (`arn:aws:sts::…:assumed-role/<role>/<session>`).
    pub trigger_detail: String,
}

/// Whose execution an event is, as far as it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starter {
    /// Started through `StartPipelineExecution` by the worker's role (by
    /// anyone, when that role is not configured): maybe a public trigger's.
    Worker,
    /// A push, the console, a schedule, another caller: not a public trigger's.
    Other,
    /// The event does not say (older events).
    Unknown,
}

/// Who started an execution: `trigger` from its event, `worker_role` the
/// worker's role ARN (`WORKER_ROLE_ARN`; `None`: any
/// `StartPipelineExecution` may be the worker's).
pub fn starter(trigger: Option<&ExecutionTrigger>, worker_role: Option<&str>) -> Starter {
    let Some(trigger) = trigger else {
        return Starter::Unknown;
    };
    if trigger.trigger_type != "StartPipelineExecution" {
        return Starter::Other;
    }
    match worker_role {
        None => Starter::Worker,
        Some(role) if same_role(&trigger.trigger_detail, role) => Starter::Worker,
        Some(_) => Starter::Other,
    }
}

/// `arn:<partition>:iam::<account>:role/<path>/<name>` split into
/// (partition, account, name).
fn role_parts(role_arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, partition, service, _, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    (arn == "arn" && service == "iam" && !name.is_empty()).then_some((partition, account, name))
}

/// Whether `caller` (a `StartPipelineExecution` caller's ARN) is `role_arn`
/// or a session of it (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
pub fn same_role(caller: &str, role_arn: &str) -> bool {
    if caller == role_arn {
        return true;
    }
    let Some((partition, account, name)) = role_parts(role_arn) else {
        return false;
    };
    caller
        .strip_prefix(&format!(
            "arn:{partition}:sts::{account}:assumed-role/{name}/"
        ))
        .is_some_and(|session| !session.is_empty() && !session.contains('/'))
}

/// The ARN a session of `role_arn` calls as (what CodePipeline names in
/// `trigger-detail`): the emulation's stand-in for STS.
pub fn assumed_role_arn(role_arn: &str, session: &str) -> Option<String> {
    let (partition, account, name) = role_parts(role_arn)?;
    Some(format!(
        "arn:{partition}:sts::{account}:assumed-role/{name}/{session}"
    ))
}

/// Either kind of state change the rule delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodePipelineEvent {
    Execution(PipelineEvent),
    Stage(StageEvent),
}

/// Why an invocation is not a state change to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventProblem {
    /// Some other event (other source or detail type): not for this function.
    #[error("not a CodePipeline execution state change: {0}")]
    NotOurs(String),
    /// A state change this code does not know (a state added later).
    #[error("unknown pipeline state {0:?}")]
    UnknownState(String),
    /// Claims to be ours but a field is missing or unsafe.
    #[error("malformed event: {0}")]
    Malformed(String),
}

/// The longest event id accepted (EventBridge ids are UUIDs).
const MAX_EVENT_ID: usize = 128;
/// The longest execution id accepted (CodePipeline's are UUIDs).
const MAX_EXECUTION_ID: usize = 128;

fn field<'a>(value: &'a Value, name: &str) -> Option<&'a str> {
    value.get(name).and_then(Value::as_str)
}

fn is_token(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
pub fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && text.len() <= 32
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// Parses an execution state change (a stage change is not one).
pub fn parse_event(event: &Value) -> Result<PipelineEvent, EventProblem> {
    match parse_codepipeline_event(event)? {
        CodePipelineEvent::Execution(execution) => Ok(execution),
        CodePipelineEvent::Stage(_) => Err(EventProblem::NotOurs(format!(
            "{EVENT_SOURCE} / {STAGE_DETAIL_TYPE}"
        ))),
    }
}

/// Parses an invocation's payload: an execution or a stage state change.
pub fn parse_codepipeline_event(event: &Value) -> Result<CodePipelineEvent, EventProblem> {
    if !event.is_object() {
        return Err(EventProblem::Malformed(
            "the event is not a JSON object".into(),
        ));
    }
    let source = field(event, "source").unwrap_or_default();
    let detail_type = field(event, "detail-type").unwrap_or_default();
    let is_stage = detail_type == STAGE_DETAIL_TYPE;
    if source != EVENT_SOURCE || !(detail_type == EVENT_DETAIL_TYPE || is_stage) {
        let shown: String = format!("{source} / {detail_type}")
            .chars()
            .take(120)
            .collect();
        return Err(EventProblem::NotOurs(shown));
    }
    let malformed = |what: &str| EventProblem::Malformed(what.to_string());
    let event_id = field(event, "id")
        .filter(|id| is_token(id, MAX_EVENT_ID))
        .ok_or_else(|| malformed("\"id\" is missing or not an event id"))?;
    let region = field(event, "region")
        .filter(|r| is_region(r))
        .ok_or_else(|| malformed("\"region\" is missing or not a region"))?;
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or_else(|| malformed("\"detail\" is missing or not an object"))?;
    let pipeline = field(detail, "pipeline")
        .filter(|p| is_valid_pipeline_name(p))
        .ok_or_else(|| malformed("\"detail.pipeline\" is missing or not a pipeline name"))?;
    let execution_id = field(detail, "execution-id")
        .filter(|e| is_token(e, MAX_EXECUTION_ID))
        .ok_or_else(|| malformed("\"detail.execution-id\" is missing or not an execution id"))?;
    let state_text =
        field(detail, "state").ok_or_else(|| malformed("\"detail.state\" is missing"))?;
    let state = PipelineState::parse(state_text).ok_or_else(|| {
        EventProblem::UnknownState(state_text.chars().take(40).collect::<String>())
    })?;
    let time = field(event, "time").and_then(parse_rfc3339);
    let trigger = execution_trigger(detail);
    if is_stage {
        let stage = field(detail, "stage")
            .filter(|s| is_valid_stage_name(s))
            .ok_or_else(|| malformed("\"detail.stage\" is missing or not a stage name"))?;
        return Ok(CodePipelineEvent::Stage(StageEvent {
            event_id: event_id.to_string(),
            pipeline: pipeline.to_string(),
            execution_id: execution_id.to_string(),
            stage: stage.to_string(),
            state,
            time,
            trigger,
        }));
    }
    Ok(CodePipelineEvent::Execution(PipelineEvent {
        event_id: event_id.to_string(),
        region: region.to_string(),
        pipeline: pipeline.to_string(),
        execution_id: execution_id.to_string(),
        state,
        time,
        start_time: field(detail, "start-time").and_then(parse_rfc3339),
        trigger,
    }))
}

/// The longest `trigger-type` / `trigger-detail` kept (CodePipeline's limit
/// on the detail is 1024).
const MAX_TRIGGER_FIELD: usize = 1024;

/// `detail.execution-trigger`, when it is there and well formed.
fn execution_trigger(detail: &Value) -> Option<ExecutionTrigger> {
    let trigger = detail.get("execution-trigger")?;
    let trigger_type = field(trigger, "trigger-type").filter(|t| is_token(t, 64))?;
    let trigger_detail = field(trigger, "trigger-detail").unwrap_or_default();
    (trigger_detail.len() <= MAX_TRIGGER_FIELD).then(|| ExecutionTrigger {
        trigger_type: trigger_type.to_string(),
        trigger_detail: trigger_detail.to_string(),
    })
}

/// The event EventBridge delivers for a state change (what CodePipeline emits;
/// the local stack publishes it and tests build it).
pub fn state_change_event(
    event_id: &str,
    region: &str,
    account: &str,
    pipeline: &str,
    execution_id: &str,
    state: PipelineState,
    time: &str,
) -> Value {
    serde_json::json!({
        "version": "0",
        "id": event_id,
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": account,
        "time": time,
        "region": region,
        "resources": [pipeline_arn(region, account, pipeline)],
        "detail": state_change_detail(pipeline, execution_id, state, None),
    })
}

pub fn pipeline_arn(region: &str, account: &str, pipeline: &str) -> String {
    format!("arn:aws:codepipeline:{region}:{account}:{pipeline}")
}

/// The `detail` of a state change event.
pub fn state_change_detail(
    pipeline: &str,
    execution_id: &str,
    state: PipelineState,
    start_time: Option<&str>,
) -> Value {
    let mut detail = serde_json::json!({
        "pipeline": pipeline,
        "execution-id": execution_id,
        "state": state.as_str(),
        "version": 1.0,
    });
    if let Some(start_time) = start_time {
        detail["start-time"] = start_time.into();
    }
    detail
}

/// The event EventBridge delivers for a stage's state change.
pub fn stage_change_event(
    event_id: &str,
    region: &str,
    account: &str,
    detail: Value,
    time: &str,
) -> Value {
    let pipeline = detail["pipeline"].as_str().unwrap_or_default().to_string();
    serde_json::json!({
        "version": "0",
        "id": event_id,
        "detail-type": STAGE_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": account,
        "time": time,
        "region": region,
        "resources": [pipeline_arn(region, account, &pipeline)],
        "detail": detail,
    })
}

/// The `detail` of a stage's state change event.
pub fn stage_change_detail(
    pipeline: &str,
    execution_id: &str,
    stage: &str,
    state: PipelineState,
) -> Value {
    serde_json::json!({
        "pipeline": pipeline,
        "execution-id": execution_id,
        "stage": stage,
        "state": state.as_str(),
        "version": 1.0,
    })
}

/// The EventBridge rule's pattern: this source, execution and stage state
/// changes, the allowlisted pipelines, every state (each reaches the
/// records; `NOTIFY_STATES` only decides e-mails). Terraform's
/// `aws_cloudwatch_event_rule.pipeline_state`, the local stack's rule.
pub fn rule_pattern(pipelines: &[&str]) -> Value {
    serde_json::json!({
        "source": [EVENT_SOURCE],
        "detail-type": [EVENT_DETAIL_TYPE, STAGE_DETAIL_TYPE],
        "detail": {"pipeline": pipelines},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::status::TriggerStatus;

    fn event(state: &str) -> Value {
        let mut e = state_change_event(
            "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "eu-west-1",
            "123456789012",
            "enterprise-app-pipeline",
            "1a2b3c4d-1111-2222-3333-444455556666",
            PipelineState::Failed,
            "2026-11-21T10:04:12Z",
        );
        e["detail"]["state"] = state.into();
        e["detail"]["start-time"] = "2026-11-21T10:00:00.000Z".into();
        e
    }

    #[test]
    fn the_rule_pattern_names_source_type_and_pipelines_and_every_state() {
        let pattern = rule_pattern(&["app"]);
        assert_eq!(
            pattern,
            serde_json::json!({
                "source": ["aws.codepipeline"],
                "detail-type": [
                    "CodePipeline Pipeline Execution State Change",
                    "CodePipeline Stage Execution State Change"
                ],
                "detail": {"pipeline": ["app"]},
            })
        );
    }

    #[test]
    fn parses_a_state_change() {
        let parsed = parse_event(&event("FAILED")).unwrap();
        assert_eq!(parsed.pipeline, "enterprise-app-pipeline");
        assert_eq!(parsed.region, "eu-west-1");
        assert_eq!(parsed.state, PipelineState::Failed);
        assert_eq!(parsed.execution_id, "1a2b3c4d-1111-2222-3333-444455556666");
        assert_eq!(parsed.time, parse_rfc3339("2026-11-21T10:04:12Z"));
        assert_eq!(parsed.start_time.unwrap() + 252_000, parsed.time.unwrap());
    }

    #[test]
    fn every_state_round_trips_and_maps_to_a_trigger_status() {
        for state in PipelineState::ALL {
            assert_eq!(PipelineState::parse(state.as_str()), Some(state));
            assert_eq!(parse_event(&event(state.as_str())).unwrap().state, state);
        }
        assert_eq!(PipelineState::Started.trigger_status(), None);
        assert_eq!(
            PipelineState::Superseded.trigger_status(),
            Some(TriggerStatus::Superseded)
        );
        assert_eq!(
            PipelineState::Failed.trigger_status(),
            Some(TriggerStatus::Failed)
        );
    }

    fn stage(state: &str) -> Value {
        let mut e = stage_change_event(
            "7b7e8feb-b491-4cf7-a9f1-bf3703467718",
            "eu-west-1",
            "123456789012",
            stage_change_detail(
                "enterprise-app-pipeline",
                "1a2b3c4d-1111-2222-3333-444455556666",
                "Build",
                PipelineState::Started,
            ),
            "2026-11-21T10:01:00Z",
        );
        e["detail"]["state"] = state.into();
        e
    }

    #[test]
    fn parses_a_stage_change() {
        let parsed = parse_codepipeline_event(&stage("SUCCEEDED")).unwrap();
        assert_eq!(
            parsed,
            CodePipelineEvent::Stage(StageEvent {
                event_id: "7b7e8feb-b491-4cf7-a9f1-bf3703467718".into(),
                pipeline: "enterprise-app-pipeline".into(),
                execution_id: "1a2b3c4d-1111-2222-3333-444455556666".into(),
                stage: "Build".into(),
                state: PipelineState::Succeeded,
                time: parse_rfc3339("2026-11-21T10:01:00Z"),
                trigger: None,
            })
        );
        // An execution change is the other kind; each parser keeps to its own.
        assert!(matches!(
            parse_codepipeline_event(&event("FAILED")),
            Ok(CodePipelineEvent::Execution(_))
        ));
        assert!(matches!(
            parse_event(&stage("SUCCEEDED")),
            Err(EventProblem::NotOurs(_))
        ));
        assert_eq!(
            parse_codepipeline_event(&stage("PAUSED")),
            Err(EventProblem::UnknownState("PAUSED".into()))
        );
    }

    #[test]
    fn hostile_stage_names_are_refused() {
        for bad in [
            Value::Null,
            "".into(),
            "<img src=x onerror=alert(1)>".into(),
            "Build\nSubject: spoof".into(),
            "s".repeat(101).into(),
            7.into(),
        ] {
            let mut e = stage("STARTED");
            e["detail"]["stage"] = bad.clone();
            assert!(
                matches!(
                    parse_codepipeline_event(&e),
                    Err(EventProblem::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_events_are_not_ours() {
        let mut e = event("FAILED");
        e["detail-type"] = "CodePipeline Action Execution State Change".into();
        assert!(matches!(parse_event(&e), Err(EventProblem::NotOurs(_))));
        let mut e = event("FAILED");
        e["source"] = "aws.s3".into();
        assert!(matches!(parse_event(&e), Err(EventProblem::NotOurs(_))));
        assert!(matches!(
            parse_event(&serde_json::json!({"Records": []})),
            Err(EventProblem::NotOurs(_))
        ));
    }

    #[test]
    fn unknown_states_are_told_apart() {
        assert_eq!(
            parse_event(&event("PAUSED")),
            Err(EventProblem::UnknownState("PAUSED".into()))
        );
        // Case matters: CodePipeline sends upper case.
        assert!(parse_event(&event("failed")).is_err());
    }

    #[test]
    fn malformed_and_hostile_fields_are_refused() {
        let cases: Vec<(&str, Value)> = vec![
            ("/id", Value::Null),
            ("/id", "x".repeat(129).into()),
            ("/id", "a\r\nBcc: someone".into()),
            ("/region", "eu-west-1/../../evil".into()),
            ("/region", "EU-WEST-1".into()),
            ("/region", "".into()),
            ("/detail", "not an object".into()),
            ("/detail/pipeline", "a b".into()),
            ("/detail/pipeline", "name\nSubject: spoof".into()),
            ("/detail/pipeline", "p".repeat(101).into()),
            ("/detail/pipeline", 7.into()),
            ("/detail/execution-id", "../x".into()),
            ("/detail/execution-id", "e".repeat(129).into()),
            ("/detail/state", Value::Null),
        ];
        for (pointer, value) in cases {
            let mut e = event("FAILED");
            *e.pointer_mut(pointer).unwrap() = value.clone();
            assert!(
                matches!(parse_event(&e), Err(EventProblem::Malformed(_))),
                "{pointer} = {value}"
            );
        }
        for not_object in [Value::Null, "text".into(), serde_json::json!([1, 2])] {
            assert!(matches!(
                parse_event(&not_object),
                Err(EventProblem::Malformed(_))
            ));
        }
    }

    #[test]
    fn unparseable_times_are_unknown_not_fatal() {
        let mut e = event("SUCCEEDED");
        e["time"] = "yesterday".into();
        e["detail"]["start-time"] = 5.into();
        let parsed = parse_event(&e).unwrap();
        assert_eq!((parsed.time, parsed.start_time), (None, None));
    }

    #[test]
    fn regions_are_recognised() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "us-east",
            "us--1",
            "us-east-1a",
            "x",
            "us-east-1 ",
            "us-east-",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn who_started_an_execution_is_read_from_its_event() {
        let role = "arn:aws:iam::123456789012:role/service/pipeline-trigger-worker";
        let trigger = |t: &str, d: &str| ExecutionTrigger {
            trigger_type: t.into(),
            trigger_detail: d.into(),
        };
        let worker = trigger(
            "StartPipelineExecution",
            "arn:aws:sts::123456789012:assumed-role/pipeline-trigger-worker/pipeline-trigger-worker",
        );
        assert_eq!(starter(Some(&worker), Some(role)), Starter::Worker);
        assert_eq!(starter(Some(&worker), None), Starter::Worker);
        let console = trigger(
            "StartPipelineExecution",
            "arn:aws:sts::123456789012:assumed-role/Admin/alice",
        );
        assert_eq!(starter(Some(&console), Some(role)), Starter::Other);
        assert_eq!(
            starter(Some(&console), None),
            Starter::Worker,
            "any start may be the worker's"
        );
        let other_account = trigger(
            "StartPipelineExecution",
            "arn:aws:sts::999999999999:assumed-role/pipeline-trigger-worker/x",
        );
        assert_eq!(starter(Some(&other_account), Some(role)), Starter::Other);
        for push in [
            "WebhookV2",
            "CloudWatchEvent",
            "PollForSourceChanges",
            "CreatePipeline",
        ] {
            assert_eq!(
                starter(Some(&trigger(push, "arn:aws:codepipeline:x")), Some(role)),
                Starter::Other
            );
        }
        assert_eq!(starter(None, Some(role)), Starter::Unknown);
        assert_eq!(
            assumed_role_arn(role, "s").as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/pipeline-trigger-worker/s")
        );
        assert!(same_role(role, role));
        assert!(!same_role(
            "arn:aws:sts::123456789012:assumed-role/pipeline-trigger-worker-2/s",
            role
        ));
        assert_eq!(assumed_role_arn("not an arn", "s"), None);
    }

    #[test]
    fn the_execution_trigger_is_parsed_when_well_formed() {
        let mut event = state_change_event(
            "e-1",
            "eu-west-1",
            "123456789012",
            "app",
            "x-1",
            PipelineState::Started,
            "2026-11-21T10:00:00Z",
        );
        event["detail"]["execution-trigger"] = serde_json::json!({
            "trigger-type": "StartPipelineExecution",
            "trigger-detail": "arn:aws:sts::123456789012:assumed-role/w/w"});
        let parsed = parse_event(&event).unwrap();
        assert_eq!(
            parsed.trigger.unwrap().trigger_type,
            "StartPipelineExecution"
        );
        for bad in [
            serde_json::json!("x"),
            serde_json::json!({"trigger-type": "a b"}),
            serde_json::json!({"trigger-type": "X", "trigger-detail": "d".repeat(2000)}),
        ] {
            event["detail"]["execution-trigger"] = bad;
            assert_eq!(parse_event(&event).unwrap().trigger, None);
        }
    }
}
