//! The runs adapter on DynamoDB Local (whose transactions are isolated, as
//! DynamoDB's are): concurrent joins make one pending run that counts every
//! trigger, a join racing the run's start either joins before it or opens
//! the next run, one run at a time holds a pipeline's lane, and state
//! changes only move a run forward.

use shared::aws::table::admission::Admission;
use shared::aws::table::runs::{Joined, Take};
use shared::aws::table::Table;
use shared::rules::client_key::client_key;
use shared::rules::inputs::{InputValue, InputValues};
use shared::rules::quota::QuotaPolicy;
use shared::rules::status::RunStatus;
use shared::rules::status::TriggerStatus;
use shared::rules::trigger::{new_trigger_id, TriggerRecord};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::{unique, Stack};

const NOW: u64 = 1_795_000_000_000;
const EXPIRES: u64 = NOW / 1000 + 86_400;

/// `count` accepted triggers of one public pipeline (each its own client),
/// written through admission as the ingress writes them.
async fn admitted(
    table: &Table,
    target: &str,
    inputs: &InputValues,
    count: usize,
) -> Vec<TriggerRecord> {
    let policy = QuotaPolicy {
        limit: 3,
        window: Duration::from_secs(3600),
    };
    static NEXT_CLIENT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let mut records = Vec::new();
    for i in 0..count {
        let client = NEXT_CLIENT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let record = TriggerRecord {
            trigger_id: new_trigger_id(),
            pipeline: "app".into(),
            target: target.into(),
            status: TriggerStatus::Queued,
            requested_at: NOW + i as u64,
            updated_at: NOW + i as u64,
            client_key: client_key(
                b"0123456789abcdef",
                &std::net::Ipv4Addr::from(0x0A09_0000 | client).to_string(),
            )
            .unwrap(),
            networks: Vec::new(),
            previous_keys: Vec::new(),
            global_window: None,
            inputs: inputs.clone(),
            run_id: None,
            key: None,
            execution_id: None,
            error_code: None,
            error_message: None,
            expires_at: EXPIRES,
            stages: Vec::new(),
            refusal: None,
        };
        let admission =
            testkit::table::admit_for_client(table, &record.client_key, policy, &record)
                .await
                .unwrap();
        assert!(matches!(admission, Admission::Accepted { .. }));
        records.push(record);
    }
    records
}

async fn join_all(table: &Table, records: &[TriggerRecord]) -> Vec<Joined> {
    let tasks: Vec<_> = records
        .iter()
        .cloned()
        .map(|record| {
            let table = table.clone();
            tokio::spawn(async move {
                let opening = shared::aws::table::runs::Opening::up_to(100);
                testkit::table::join_run(&table, &record, &opening, NOW, EXPIRES).await
            })
        })
        .collect();
    let mut joined = Vec::new();
    for task in tasks {
        joined.push(task.await.unwrap());
    }
    joined
}

/// The run each trigger's record names.
async fn runs_of(table: &Table, records: &[TriggerRecord]) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for record in records {
        let stored = testkit::table::stored(table, &record.trigger_id, NOW).await;
        *runs
            .entry(stored.run_id.expect("every trigger has a run"))
            .or_default() += 1;
    }
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_concurrent_triggers_of_one_set_make_one_pending_run_that_counts_them_all() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let records = admitted(&table, &unique("p"), &InputValues::new(), 40).await;
    let joined = join_all(&table, &records).await;
    let opened: Vec<&Joined> = joined
        .iter()
        .filter(|j| matches!(j, Joined::Opened(_)))
        .collect();
    assert_eq!(opened.len(), 1, "{joined:?}");
    let Joined::Opened(run_id) = opened[0] else {
        unreachable!()
    };
    assert!(joined
        .iter()
        .all(|j| matches!(j, Joined::Opened(r) | Joined::Joined(r) if r == run_id)));
    let run = table.runs().get(run_id).await.unwrap().unwrap();
    assert_eq!(run.triggers, 40);
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(
        runs_of(&table, &records).await,
        BTreeMap::from([(run_id.clone(), 40)])
    );
    // Joining again (a redelivery) changes nothing.
    let again = join_all(&table, &records[..5]).await;
    assert!(again
        .iter()
        .all(|j| matches!(j, Joined::Opened(r) | Joined::Joined(r) if r == run_id)));
    assert_eq!(
        table.runs().get(run_id).await.unwrap().unwrap().triggers,
        40
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_join_racing_the_start_joins_before_it_or_opens_the_next_run() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let target = unique("p");
    let records = admitted(&table, &target, &InputValues::new(), 31).await;
    let first = join_all(&table, &records[..1]).await;
    let Joined::Opened(run_id) = &first[0] else {
        panic!("{first:?}")
    };
    let run = table.runs().get(run_id).await.unwrap().unwrap();
    // The run takes its lane (leaves `pending`) while 30 triggers join.
    let taking = {
        let table = table.clone();
        let run = run.clone();
        tokio::spawn(async move { table.runs().take_lane(&run, NOW).await.unwrap() })
    };
    let joined = join_all(&table, &records[1..]).await;
    assert_eq!(taking.await.unwrap(), Take::Taken);
    // Every trigger is in exactly one run, and each run counts exactly its
    // members: none joined the first run after it left `pending`.
    let runs = runs_of(&table, &records).await;
    assert!(runs.len() <= 2, "{runs:?}");
    assert_eq!(runs.values().sum::<usize>(), 31);
    for (id, members) in &runs {
        let stored = table.runs().get(id).await.unwrap().unwrap();
        assert_eq!(stored.triggers as usize, *members, "{id}");
        let expected = if id == run_id {
            RunStatus::Starting
        } else {
            RunStatus::Pending
        };
        assert_eq!(stored.status, expected);
    }
    assert_eq!(joined.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_run_at_a_time_holds_a_pipeline_and_only_the_holder_frees_it() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let target = unique("p");
    let set = |env: &str| InputValues::from([("env".to_string(), InputValue::Text(env.into()))]);
    let mut runs = Vec::new();
    for env in ["a", "b", "c", "d"] {
        let records = admitted(&table, &target, &set(env), 1).await;
        let Joined::Opened(id) = join_all(&table, &records).await.remove(0) else {
            panic!()
        };
        runs.push(table.runs().get(&id).await.unwrap().unwrap());
    }
    let tasks: Vec<_> = runs
        .iter()
        .cloned()
        .map(|run| {
            let table = table.clone();
            tokio::spawn(async move { table.runs().take_lane(&run, NOW).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let winners: Vec<usize> = (0..4).filter(|i| outcomes[*i] == Take::Taken).collect();
    // One run holds the pipeline: the one opened first.
    assert_eq!(winners, [0], "{outcomes:?}");
    let holder = &runs[0];
    for outcome in &outcomes[1..] {
        assert!(matches!(outcome, Take::Busy(_)), "{outcomes:?}");
    }
    // Taking it again is the holder's right (a retried start), not another's.
    assert_eq!(
        table.runs().take_lane(holder, NOW + 1).await.unwrap(),
        Take::Taken
    );
    assert!(table
        .runs()
        .free_lane(&target, &runs[1].run_id, NOW, None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        table
            .runs()
            .get_lane(&target)
            .await
            .unwrap()
            .run_id
            .as_deref(),
        Some(holder.run_id.as_str())
    );
    let freed = table
        .runs()
        .free_lane(&target, &holder.run_id, NOW, Some(60_000))
        .await
        .unwrap()
        .expect("the holder frees it");
    assert_eq!(freed.next_to_wake(), Some(runs[1].run_id.as_str()));
    assert_eq!(freed.durations, [60_000]);
    // First come, first served: the third waits for the second.
    assert!(matches!(
        table.runs().take_lane(&runs[2], NOW).await.unwrap(),
        Take::Busy(_)
    ));
    assert_eq!(
        table.runs().take_lane(&runs[1], NOW).await.unwrap(),
        Take::Taken
    );
}

#[tokio::test]
async fn state_changes_only_move_a_run_forward() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let target = unique("p");
    let records = admitted(&table, &target, &InputValues::new(), 1).await;
    let Joined::Opened(id) = join_all(&table, &records).await.remove(0) else {
        panic!()
    };
    let run = table.runs().get(&id).await.unwrap().unwrap();
    assert_eq!(
        table.runs().take_lane(&run, NOW).await.unwrap(),
        Take::Taken
    );
    assert!(table
        .runs()
        .record_started(&run, "exec-1", NOW, EXPIRES)
        .await
        .unwrap());
    let status = |s| RunStatus::Execution(s);
    let succeeded = table
        .runs()
        .record_outcome(
            &id,
            "exec-1",
            status(TriggerStatus::Succeeded),
            NOW + 20,
            NOW + 21,
        )
        .await
        .unwrap();
    assert!(
        matches!(succeeded, Some((ref r, true)) if r.status == status(TriggerStatus::Succeeded))
    );
    // A late STARTED, and the same SUCCEEDED again: kept as it is.
    for (state, at) in [
        (TriggerStatus::Started, NOW + 10),
        (TriggerStatus::Succeeded, NOW + 20),
    ] {
        let late = table
            .runs()
            .record_outcome(&id, "exec-1", status(state), at, NOW + 30)
            .await
            .unwrap();
        assert!(
            matches!(late, Some((ref r, false)) if r.status == status(TriggerStatus::Succeeded))
        );
    }
    // Another execution's event does not touch this run.
    let other = table
        .runs()
        .record_outcome(
            &id,
            "exec-2",
            status(TriggerStatus::Failed),
            NOW + 40,
            NOW + 41,
        )
        .await
        .unwrap();
    assert_eq!(other, None);
    // A redelivered start after the outcome does not regress it either.
    assert!(!table
        .runs()
        .record_started(&run, "exec-1", NOW + 50, EXPIRES)
        .await
        .unwrap());
    let stored = table.runs().get(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, status(TriggerStatus::Succeeded));
    assert_eq!(stored.execution_id.as_deref(), Some("exec-1"));
    // The execution index names the run (the notifier's way in).
    let owner = table
        .triggers()
        .execution_owner("exec-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.run_id.as_deref(), Some(id.as_str()));
    assert_eq!(owner.trigger_id, id);
    let view = table.triggers().view(&id, NOW).await.unwrap().unwrap();
    assert_eq!(view.status, TriggerStatus::Succeeded);
    assert!(!view.coalesced);
}

/// A run read as pending and started before it is queued again (a poll
/// racing the start) never comes back into the queue: it would hold a place
/// there for ever. A run still pending is queued again, once.
#[tokio::test]
async fn a_run_started_since_it_was_read_is_never_queued_again() {
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let records = started_run(&table, 1, "exec-raced").await;
    let run_id = run_id_of(&table, &records[0].trigger_id).await;
    let mut stale = table.runs().get(&run_id).await.unwrap().unwrap();
    stale.status = RunStatus::Pending;
    let lane = table.runs().requeue(&stale).await.unwrap();
    assert!(!lane.has_waiting(), "{lane:?}");
    // A pending run of another pipeline is queued, and only once.
    let pending = admitted(&table, &unique("p"), &InputValues::new(), 1).await;
    let Joined::Opened(id) = join_all(&table, &pending).await.remove(0) else {
        panic!()
    };
    let run = table.runs().get(&id).await.unwrap().unwrap();
    let out = table.runs().leave_queue(&run).await.unwrap();
    assert!(out.place(&id).is_none(), "{out:?}");
    let after = table.runs().requeue(&run).await.unwrap();
    assert!(after.place(&id).is_some(), "{after:?}");
    let again = table.runs().requeue(&run).await.unwrap();
    assert_eq!(again.waiting.len(), after.waiting.len(), "{again:?}");
}

/// The run a trigger joined or opened, as its record names it.
async fn run_id_of(table: &Table, trigger_id: &str) -> String {
    let record = testkit::table::stored(table, trigger_id, NOW).await;
    record.run_id.expect("a run")
}

/// A started run of `count` triggers (the opener and `count - 1` joiners).
async fn started_run(table: &Table, count: usize, execution_id: &str) -> Vec<TriggerRecord> {
    let records = admitted(table, &unique("p"), &InputValues::new(), count).await;
    let joined = join_all(table, &records).await;
    assert_eq!(runs_of(table, &records).await.len(), 1, "{joined:?}");
    let id = records[0].trigger_id.clone();
    let run_id = run_id_of(table, &id).await;
    let run = table.runs().get(&run_id).await.unwrap().unwrap();
    assert_eq!(
        table.runs().take_lane(&run, NOW).await.unwrap(),
        Take::Taken
    );
    assert!(table
        .runs()
        .record_started(&run, execution_id, NOW, EXPIRES)
        .await
        .unwrap());
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stages_land_concurrently_in_start_order_and_never_regress() {
    use shared::aws::table::stages::StageRecorded;
    use shared::rules::status::PipelineState::{self, *};
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let execution = unique("exec");
    let records = started_run(&table, 3, &execution).await;
    let run_id = run_id_of(&table, &records[0].trigger_id).await;
    let owner = shared::aws::table::triggers::ExecutionOwner {
        trigger_id: run_id.clone(),
        run_id: Some(run_id.clone()),
    };
    // Every change of three stages at once, each delivered twice, in an
    // order unlike the pipeline's: the last change of each stage wins and
    // each stage starts at its first.
    let changes: Vec<(&str, PipelineState, u64)> = vec![
        ("Deploy", Succeeded, 600),
        ("Build", Failed, 400),
        ("Source", Started, 100),
        ("Deploy", Started, 500),
        ("Build", Started, 300),
        ("Source", Succeeded, 200),
        ("Build", Resumed, 450),
    ];
    let tasks: Vec<_> = changes
        .iter()
        .chain(changes.iter())
        .map(|&(stage, state, at)| {
            let (table, owner, execution) = (table.clone(), owner.clone(), execution.clone());
            tokio::spawn(async move {
                // On a busy machine an attempt may time out: the event's
                // delivery then fails and comes again, as Lambda retries it.
                let mut last = None;
                for _ in 0..5 {
                    match table
                        .stages()
                        .record(&owner, &execution, stage, state, NOW + at, NOW + 1_000)
                        .await
                    {
                        Ok(recorded) => return recorded,
                        Err(e) => last = Some(e),
                    }
                }
                panic!("five deliveries failed: {last:?}")
            })
        })
        .collect();
    let mut recorded = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), StageRecorded::Recorded(_)) {
            recorded += 1;
        }
    }
    // At most one write per distinct change (a repeat never writes).
    assert!((3..=changes.len()).contains(&recorded), "{recorded}");
    for record in &records {
        let view = table
            .triggers()
            .view(&record.trigger_id, NOW + 2_000)
            .await
            .unwrap()
            .unwrap();
        let stages: Vec<(&str, &str)> = view
            .stages
            .iter()
            .map(|s| (s.name.as_str(), s.state))
            .collect();
        assert_eq!(
            stages,
            [
                ("Source", "SUCCEEDED"),
                ("Build", "RESUMED"),
                ("Deploy", "SUCCEEDED")
            ],
            "{}",
            record.trigger_id
        );
        assert_eq!(
            view.stages[2].updated_at,
            shared::rules::time_format::rfc3339(NOW + 600)
        );
    }
    // A late change is kept out; another execution's change touches nothing.
    let late = table
        .stages()
        .record(
            &owner,
            &execution,
            "Deploy",
            Started,
            NOW + 550,
            NOW + 3_000,
        )
        .await
        .unwrap();
    assert!(matches!(late, StageRecorded::Kept(ref s) if s.state == Succeeded));
    let nope = shared::aws::table::triggers::ExecutionOwner {
        trigger_id: "nope".into(),
        run_id: Some("nope".into()),
    };
    for (item, execution) in [(&owner, "another-exec"), (&nope, execution.as_str())] {
        let stray = table
            .stages()
            .record(item, execution, "Deploy", Failed, NOW + 900, NOW + 3_000)
            .await
            .unwrap();
        assert_eq!(stray, StageRecorded::NotFound, "{item:?} {execution}");
    }
    let run = table.runs().get(&run_id).await.unwrap().unwrap();
    assert_eq!(run.stages.len(), 3);
    assert!(run
        .stages
        .iter()
        .all(|s| s.name != "Deploy" || s.state == Succeeded));
}

#[tokio::test]
async fn within_one_second_an_end_is_newer_than_a_start() {
    use shared::aws::table::triggers::OutcomeRecord;
    let stack = Stack::new().await;
    let table = Table::new(stack.dynamodb.clone(), &stack.table_name);
    let execution = unique("exec");
    let records = started_run(&table, 1, &execution).await;
    let id = &records[0].trigger_id;
    let status = |s| RunStatus::Execution(s);
    // EventBridge times have whole seconds: STARTED and FAILED at the same one.
    let second = NOW / 1000 * 1000;
    let started = table
        .runs()
        .record_outcome(id, &execution, status(TriggerStatus::Started), second, NOW)
        .await
        .unwrap();
    assert!(matches!(started, Some((_, true))), "{started:?}");
    for _ in 0..2 {
        let failed = table
            .runs()
            .record_outcome(id, &execution, status(TriggerStatus::Failed), second, NOW)
            .await
            .unwrap();
        assert!(
            matches!(failed, Some((ref r, _)) if r.status == status(TriggerStatus::Failed)),
            "{failed:?}"
        );
    }
    // The repeat and a late STARTED of the same second are kept out.
    let again = table
        .runs()
        .record_outcome(id, &execution, status(TriggerStatus::Failed), second, NOW)
        .await
        .unwrap();
    assert!(matches!(again, Some((_, false))), "{again:?}");
    let late = table
        .runs()
        .record_outcome(id, &execution, status(TriggerStatus::Started), second, NOW)
        .await
        .unwrap();
    assert!(
        matches!(late, Some((ref r, false)) if r.status == status(TriggerStatus::Failed)),
        "{late:?}"
    );

    // The same for a trigger without coalescing: RESUMED then FAILED.
    let single = admitted(&table, &unique("p"), &InputValues::new(), 1).await;
    let single = &single[0].trigger_id;
    let single_execution = unique("exec");
    table
        .triggers()
        .record_started(single, &single_execution, NOW, EXPIRES)
        .await
        .unwrap();
    for (state, want) in [
        (TriggerStatus::Started, TriggerStatus::Started),
        (TriggerStatus::Failed, TriggerStatus::Failed),
        (TriggerStatus::Started, TriggerStatus::Failed),
    ] {
        let recorded = table
            .triggers()
            .record_outcome(single, &single_execution, state, second, NOW)
            .await
            .unwrap();
        let status = match recorded {
            OutcomeRecord::Recorded(r) | OutcomeRecord::Stale(r) => r.status,
            OutcomeRecord::NotFound => panic!("the trigger is there"),
        };
        assert_eq!(status, want, "after {state:?}");
    }
}
