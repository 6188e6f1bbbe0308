//! What the fuzz targets in fuzz/ found, pinned: each test names its target and the bug. The
//! coordinator's handlers are called directly, as the `rpc` target calls them. (The map output
//! format's cases are unit tests in src/mapout.rs.)

use mr::control::coordinator::{Coordinator, CoordinatorConfig};
use mr::net::rpc::pb;
use mr::net::rpc::pb::coordinator_server::Coordinator as _;
use tonic::{Code, Request};

use crate::harness::*;

/// A job of two map tasks and one reduce task that nobody runs but the test.
fn coordinator(dir: &Dir) -> Coordinator {
    let input = dir.write("in.txt", "a\nb\n");
    let split = |start| mr::data::input::Split::single(input.clone(), start, start + 2);
    std::fs::create_dir(dir.path("out")).unwrap();
    Coordinator::new(CoordinatorConfig {
        splits: vec![split(0), split(2)],
        max_attempts: 2,
        speculative: false,
        skip_bad_records: true,
        ..coordinator_config(dir, Vec::new())
    })
}

async fn register(c: &Coordinator) -> u64 {
    let request =
        pb::RegisterWorkerRequest { name: "w".into(), shuffle_url: "http://w".into(), host: "h".into(), pid: 0 };
    c.register_worker(Request::new(request)).await.unwrap().into_inner().worker_id
}

/// The next task for `worker`, as a reference.
async fn next_task(c: &Coordinator, worker: u64) -> pb::TaskRef {
    let reply = c.get_task(Request::new(pb::GetTaskRequest { worker_id: worker })).await.unwrap().into_inner();
    let Some(pb::get_task_reply::Reply::Task(task)) = reply.reply else { panic!("no task: {reply:?}") };
    let is_map = matches!(task.kind, Some(pb::task::Kind::Map(_)));
    pb::TaskRef { is_map, task_id: task.task_id, attempt: task.attempt }
}

async fn complete(c: &Coordinator, worker: u64, task: pb::TaskRef, counters: pb::Counters) -> bool {
    let request = pb::ReportCompletionRequest {
        worker_id: worker,
        task: Some(task),
        output: "map.out".into(),
        counters: Some(counters),
    };
    c.report_completion(Request::new(request)).await.unwrap().into_inner().accepted
}

/// Found by the `rpc` target: a completion report whose counters repeat a user counter with
/// amounts that overflow u64 panicked (overflow checks) while the scheduler was locked, and
/// wrapped around in release builds; so did the sum of the committed attempts' counters.
#[tokio::test]
async fn counters_a_worker_reports_saturate() {
    let dir = Dir::new();
    let c = coordinator(&dir);
    let worker = register(&c).await;
    let huge = |amount| pb::UserCounter { group: "g".into(), name: "n".into(), amount };
    for _ in 0..2 {
        let task = next_task(&c, worker).await;
        let counters =
            pb::Counters { input_records: u64::MAX, user: vec![huge(u64::MAX), huge(7)], ..Default::default() };
        assert!(complete(&c, worker, task, counters).await);
    }
    let total = c.scheduler().counters(mr::types::Phase::Map);
    assert_eq!(total.input_records, u64::MAX);
    assert_eq!(total.user["g"]["n"], u64::MAX);
}

fn assert_invalid<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err("an invalid request was accepted");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(field), "the message does not name {field}: {}", status.message());
}

/// Requests that the coordinator answered as if they were stale, or acted on: task indexes
/// beyond the job's tasks, CommitTask for a map attempt, and failure fields of the other phase.
/// A map attempt reporting a lost map output, or a reduce attempt a bad record (with skipping
/// on), failed without counting as a failure: retried forever, the job never failed.
#[tokio::test]
async fn invalid_requests_are_rejected_naming_the_field() {
    let dir = Dir::new();
    let c = coordinator(&dir);
    let worker = register(&c).await;
    let map = next_task(&c, worker).await;
    let beyond = pb::TaskRef { is_map: true, task_id: 2, attempt: 0 };
    let reduce = pb::TaskRef { is_map: false, task_id: 0, attempt: 0 };

    let heartbeat = pb::HeartbeatRequest { worker_id: worker, running: Some(beyond), records: 1, bytes: 0 };
    assert_invalid(c.heartbeat(Request::new(heartbeat)).await, "running.task_id");
    let commit = |task| pb::CommitTaskRequest { worker_id: worker, task: Some(task) };
    assert_invalid(c.commit_task(Request::new(commit(pb::TaskRef { task_id: 1, ..reduce }))).await, "task.task_id");
    assert_invalid(c.commit_task(Request::new(commit(map))).await, "map attempt");
    let completion = pb::ReportCompletionRequest { worker_id: worker, task: Some(beyond), ..Default::default() };
    assert_invalid(c.report_completion(Request::new(completion)).await, "task.task_id");

    let failure = |task, bad_record, lost_map_task| pb::ReportFailureRequest {
        worker_id: worker,
        task: Some(task),
        error: "boom".into(),
        bad_record,
        lost_map_task,
        ..Default::default()
    };
    let fail = |r| c.report_failure(Request::new(r));
    assert_invalid(fail(failure(beyond, None, None)).await, "task.task_id");
    assert_invalid(fail(failure(map, None, Some(1))).await, "lost_map_task");
    assert_invalid(fail(failure(reduce, Some(0), None)).await, "bad_record");
    assert_invalid(fail(failure(reduce, None, Some(2))).await, "lost_map_task");

    // None of them touched the job: the map attempt still runs, and a real failure counts.
    assert_eq!(c.scheduler().task_statuses(mr::types::Phase::Map)[0].0, mr::control::scheduler::TaskStatus::Running);
    fail(failure(map, None, None)).await.unwrap();
    let again = next_task(&c, worker).await;
    assert_eq!((again.task_id, again.attempt), (0, 1));
}

/// Found by the `rpc` target once it asserted `NotFound` for every call from a worker id the
/// coordinator never handed out: a map completion from such a worker (one of an earlier
/// coordinator of the job) answered `FailedPrecondition`, so that worker was not told to
/// register again; every other call answered `NotFound`.
#[tokio::test]
async fn every_call_from_a_worker_never_registered_is_not_found() {
    let dir = Dir::new();
    let c = coordinator(&dir);
    let worker = register(&c).await;
    let stranger = worker + 1000;
    let map = pb::TaskRef { is_map: true, task_id: 0, attempt: 0 };
    let reduce = pb::TaskRef { is_map: false, task_id: 0, attempt: 0 };
    let not_found = |status: tonic::Status| {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains("register again"), "{}", status.message());
    };
    not_found(c.get_task(Request::new(pb::GetTaskRequest { worker_id: stranger })).await.unwrap_err());
    let heartbeat = pb::HeartbeatRequest { worker_id: stranger, running: Some(map), records: 1, bytes: 0 };
    not_found(c.heartbeat(Request::new(heartbeat)).await.unwrap_err());
    let commit = pb::CommitTaskRequest { worker_id: stranger, task: Some(reduce) };
    not_found(c.commit_task(Request::new(commit)).await.unwrap_err());
    for task in [map, reduce] {
        let completion =
            pb::ReportCompletionRequest { worker_id: stranger, task: Some(task), output: "out".into(), counters: None };
        not_found(c.report_completion(Request::new(completion)).await.unwrap_err());
        let failure = pb::ReportFailureRequest {
            worker_id: stranger,
            task: Some(task),
            error: "boom".into(),
            ..Default::default()
        };
        not_found(c.report_failure(Request::new(failure)).await.unwrap_err());
    }
    // The registered worker still gets the first map task.
    let task = next_task(&c, worker).await;
    assert_eq!((task.is_map, task.task_id, task.attempt), (true, 0, 0));
}
