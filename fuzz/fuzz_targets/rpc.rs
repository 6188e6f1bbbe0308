//! Arbitrary sequences of Coordinator and State calls, made directly on the gRPC handlers of
//! a coordinator of a small job (3 map tasks, 2 reduce tasks): unknown workers, out-of-range
//! tasks, bogus attempts, huge strings, reports for tasks never assigned. No call may panic;
//! an error is `InvalidArgument`, `FailedPrecondition` or `NotFound`; an invalid call is
//! `InvalidArgument`, and a valid one from a worker id never handed out (a worker of an
//! earlier coordinator) `NotFound`; after every call the scheduler's invariants hold (progress
//! within the task counts and equal to the tasks done, one committed attempt per done task,
//! success only when every task is done).
#![no_main]

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mr::control::coordinator::{Coordinator, CoordinatorConfig};
use mr::net::rpc::pb;
use mr::net::rpc::pb::coordinator_server::Coordinator as _;
use mr::net::rpc::pb::state_server::State as _;
use mr::control::scheduler::{JobState, Outcome, TaskStatus};
use mr::types::Phase;
use tonic::{Code, Request};

const MAPS: u32 = 3;
const REDUCES: u32 = 2;

#[derive(Debug, Arbitrary)]
struct Input {
    speculative: bool,
    skip_bad_records: bool,
    rerun_maps_of_lost_workers: bool,
    calls: Vec<Call>,
}

#[derive(Debug, Arbitrary)]
enum Call {
    Register {
        name: String,
        shuffle_url: String,
        host: String,
    },
    GetTask {
        worker: Worker,
    },
    Heartbeat {
        worker: Worker,
        running: Option<Task>,
        records: u64,
        bytes: u64,
    },
    Commit {
        worker: Worker,
        task: Option<Task>,
    },
    Complete {
        worker: Worker,
        task: Option<Task>,
        output: String,
        counters: Option<Counters>,
    },
    Fail {
        worker: Worker,
        task: Option<Task>,
        error: String,
        bad_record: Option<u64>,
        lost_map_task: Option<Index>,
        lost_map_attempt: Index,
        lost_map_unreachable: bool,
    },
    /// The scheduler's timer, this many ms after the job's clock.
    Tick {
        ms: u32,
    },
    WorkerExited {
        pid: u32,
    },
    GetState {
        keys: Vec<String>,
    },
    SetState {
        entries: Vec<(String, Vec<u8>)>,
    },
}

/// Mostly one of the first few worker ids (0 is never given out), sometimes any.
#[derive(Debug, Arbitrary)]
enum Worker {
    Small(u8),
    Any(u64),
}

impl Worker {
    fn id(&self) -> u64 {
        match *self {
            Worker::Small(n) => u64::from(n % 5),
            Worker::Any(n) => n,
        }
    }
}

/// Mostly a valid task index or attempt, sometimes any.
#[derive(Debug, Arbitrary)]
enum Index {
    Small(u8),
    Any(u32),
}

impl Index {
    fn get(&self) -> u32 {
        match *self {
            Index::Small(n) => u32::from(n % 4),
            Index::Any(n) => n,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Task {
    is_map: bool,
    index: Index,
    attempt: Index,
}

impl Task {
    fn pb(&self) -> pb::TaskRef {
        pb::TaskRef { is_map: self.is_map, task_id: self.index.get(), attempt: self.attempt.get() }
    }
}

#[derive(Debug, Arbitrary)]
struct Counters {
    fields: [u64; 9],
    user: Vec<(String, String, u64)>,
}

impl Counters {
    fn pb(&self) -> pb::Counters {
        let f = self.fields;
        pb::Counters {
            input_records: f[0],
            input_bytes: f[1],
            output_records: f[2],
            output_bytes: f[3],
            groups: f[4],
            skipped_records: f[5],
            combine_input_records: f[6],
            combine_output_records: f[7],
            spilled_records: f[8],
            user: self
                .user
                .iter()
                .map(|(g, n, a)| pb::UserCounter { group: g.clone(), name: n.clone(), amount: *a })
                .collect(),
        }
    }
}

struct Env {
    _dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
    runtime: tokio::runtime::Runtime,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let input = dir.path().join("in.txt");
        let output = dir.path().join("out");
        std::fs::create_dir(&output).expect("create the output dir");
        // Paused time: a GetTask long poll with nothing to hand out returns at once.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        Env { _dir: dir, input, output, runtime }
    })
}

fn config(env: &Env, input: &Input) -> CoordinatorConfig {
    CoordinatorConfig {
        job_name: "wordcount".into(),
        job_args: Vec::new(),
        splits: (0..MAPS as u64).map(|i| mr::data::input::Split::single(env.input.clone(), i * 10, i * 10 + 10)).collect(),
        reduce_tasks: REDUCES,
        output_dir: env.output.clone(),
        worker_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(100),
        max_attempts: 3,
        task_timeout: Duration::from_secs(60),
        speculative: input.speculative,
        skip_bad_records: input.skip_bad_records,
        faults: Default::default(),
        state: vec![("preset".into(), b"1".to_vec())],
        input_format: Default::default(),
        settings: mr::exec::task::TaskSettings {
            partitions: REDUCES,
            sort_buffer: 1 << 20,
            merge_fan_in: 8,
            max_record_bytes: 1 << 20,
        },
        token: mr::net::rpc::Token::new("").expect("no token"),
        tls: None,
        rerun_maps_of_lost_workers: input.rerun_maps_of_lost_workers,
    }
}

/// Whether a task reference names a task beyond the job's.
fn out_of_range(task: &Task) -> bool {
    task.index.get() >= if task.is_map { MAPS } else { REDUCES }
}

/// Whether the coordinator must reject the call as invalid, whatever the job's state.
fn invalid(call: &Call) -> bool {
    match call {
        Call::Heartbeat { running: Some(task), .. } => out_of_range(task),
        Call::Commit { task, .. } => task.as_ref().is_none_or(|t| t.is_map || out_of_range(t)),
        Call::Complete { task, .. } => task.as_ref().is_none_or(out_of_range),
        Call::Fail { task, bad_record, lost_map_task, .. } => task.as_ref().is_none_or(|t| {
            out_of_range(t)
                || (t.is_map && lost_map_task.is_some())
                || (!t.is_map && bad_record.is_some())
                || lost_map_task.as_ref().is_some_and(|m| m.get() >= MAPS)
        }),
        _ => false,
    }
}

/// The worker a call comes from, if it names one.
fn caller(call: &Call) -> Option<u64> {
    match call {
        Call::GetTask { worker }
        | Call::Heartbeat { worker, .. }
        | Call::Commit { worker, .. }
        | Call::Complete { worker, .. }
        | Call::Fail { worker, .. } => Some(worker.id()),
        _ => None,
    }
}

/// An error must be the caller's fault, said so; an invalid call must be an error; a valid
/// call from a worker id never handed out (a worker of an earlier coordinator) is `NotFound`.
fn check_status<T>(call: &Call, registered: &HashSet<u64>, result: Result<T, tonic::Status>) -> Option<T> {
    let code = result.as_ref().err().map(tonic::Status::code);
    if invalid(call) {
        assert_eq!(code, Some(Code::InvalidArgument), "{call:?} accepted");
    } else if caller(call).is_some_and(|id| !registered.contains(&id)) {
        assert_eq!(code, Some(Code::NotFound), "{call:?} from a worker never registered");
    }
    match result {
        Ok(reply) => Some(reply),
        Err(status) => {
            assert!(
                matches!(status.code(), Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound),
                "{call:?} answered {status:?}"
            );
            assert!(!status.message().is_empty(), "{call:?} answered an error without a message");
            None
        }
    }
}

async fn run(c: &Coordinator, registered: &mut HashSet<u64>, call: &Call) {
    match call {
        Call::Register { name, shuffle_url, host } => {
            let request =
                pb::RegisterWorkerRequest { name: name.clone(), shuffle_url: shuffle_url.clone(), host: host.clone(), pid: 0 };
            if let Some(reply) = check_status(call, registered, c.register_worker(Request::new(request)).await) {
                let reply = reply.into_inner();
                assert_ne!(reply.worker_id, 0);
                assert!(registered.insert(reply.worker_id), "worker id {} handed out twice", reply.worker_id);
                assert_eq!(reply.job.map(|j| j.reduce_tasks), Some(REDUCES));
            }
        }
        Call::GetTask { worker } => {
            let request = pb::GetTaskRequest { worker_id: worker.id() };
            let reply = check_status(call, registered, c.get_task(Request::new(request)).await);
            if let Some(pb::get_task_reply::Reply::Task(task)) = reply.and_then(|r| r.into_inner().reply) {
                match task.kind {
                    Some(pb::task::Kind::Map(m)) => {
                        assert!(task.task_id < MAPS, "map task {} assigned", task.task_id);
                        assert!(m.split.is_some());
                    }
                    Some(pb::task::Kind::Reduce(r)) => {
                        assert!(task.task_id < REDUCES, "reduce task {} assigned", task.task_id);
                        assert_eq!(r.partition, task.task_id);
                        assert_eq!(r.map_outputs.len(), MAPS as usize, "a reduce needs every map output");
                    }
                    None => panic!("a task without a kind"),
                }
            }
        }
        Call::Heartbeat { worker, running, records, bytes } => {
            let request = pb::HeartbeatRequest {
                worker_id: worker.id(),
                running: running.as_ref().map(Task::pb),
                records: *records,
                bytes: *bytes,
            };
            check_status(call, registered, c.heartbeat(Request::new(request)).await);
        }
        Call::Commit { worker, task } => {
            let request = pb::CommitTaskRequest { worker_id: worker.id(), task: task.as_ref().map(Task::pb) };
            check_status(call, registered, c.commit_task(Request::new(request)).await);
        }
        Call::Complete { worker, task, output, counters } => {
            let request = pb::ReportCompletionRequest {
                worker_id: worker.id(),
                task: task.as_ref().map(Task::pb),
                output: output.clone(),
                counters: counters.as_ref().map(Counters::pb),
            };
            check_status(call, registered, c.report_completion(Request::new(request)).await);
        }
        Call::Fail { worker, task, error, bad_record, lost_map_task, lost_map_attempt, lost_map_unreachable } => {
            let request = pb::ReportFailureRequest {
                worker_id: worker.id(),
                task: task.as_ref().map(Task::pb),
                error: error.clone(),
                bad_record: *bad_record,
                lost_map_task: lost_map_task.as_ref().map(Index::get),
                lost_map_attempt: lost_map_attempt.get(),
                lost_map_unreachable: *lost_map_unreachable,
            };
            check_status(call, registered, c.report_failure(Request::new(request)).await);
        }
        Call::Tick { ms } => {
            let now = c.now() + u64::from(*ms);
            c.scheduler().tick(now);
        }
        Call::WorkerExited { pid } => c.worker_exited_pid(*pid),
        Call::GetState { keys } => {
            let request = pb::GetStateRequest { keys: keys.clone() };
            if let Some(reply) = check_status(call, registered, c.get_state(Request::new(request)).await) {
                assert_eq!(reply.into_inner().values.len(), keys.len());
            }
        }
        Call::SetState { entries } => {
            let entries = entries.iter().map(|(k, v)| pb::StateEntry { key: k.clone(), value: v.clone() }).collect();
            check_status(call, registered, c.set_state(Request::new(pb::SetStateRequest { entries })).await);
        }
    }
}

fn check_invariants(c: &Coordinator) {
    let s = c.scheduler();
    let mut all_done = true;
    for phase in [Phase::Map, Phase::Reduce] {
        let (done, total) = s.progress(phase);
        let statuses = s.task_statuses(phase);
        assert_eq!(total as usize, statuses.len());
        assert!(done <= total, "{phase:?}: {done} of {total} tasks done");
        let done_tasks: Vec<bool> = statuses.iter().map(|(status, _)| *status == TaskStatus::Done).collect();
        assert_eq!(done as usize, done_tasks.iter().filter(|&&d| d).count(), "{phase:?} progress");
        all_done &= done == total;
        // Exactly one committed attempt per done task; running attempts only on running tasks.
        for (index, &is_done) in done_tasks.iter().enumerate() {
            let of_task =
                || s.attempts().iter().filter(|a| a.id.task.phase == phase && a.id.task.index as usize == index);
            let committed = of_task().filter(|a| a.outcome == Outcome::Committed).count();
            assert_eq!(committed, usize::from(is_done), "{phase:?} task {index}: {committed} committed attempts");
            if of_task().any(|a| a.outcome == Outcome::Running) {
                assert_eq!(statuses[index].0, TaskStatus::Running, "{phase:?} task {index}");
            }
        }
        let _ = s.counters(phase);
    }
    match s.state() {
        JobState::Succeeded | JobState::TasksDone => assert!(all_done, "job {:?} with tasks not done", s.state()),
        JobState::Running | JobState::Failed(_) => {}
    }
    let succeeded = *s.state() == JobState::Succeeded;
    drop(s);
    assert_eq!(succeeded, c.committed_at().is_some(), "succeeded without a commit, or the reverse");
}

fuzz_target!(|input: Input| {
    let env = env();
    let _ = std::fs::remove_file(env.output.join("_SUCCESS"));
    let coordinator = Coordinator::new(config(env, &input));
    env.runtime.block_on(async {
        let mut registered = HashSet::new();
        for call in &input.calls {
            run(&coordinator, &mut registered, call).await;
            check_invariants(&coordinator);
        }
    });
});
