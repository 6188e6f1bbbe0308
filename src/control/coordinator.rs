//! The coordinator: serves the Coordinator and State gRPC services and drives the scheduler
//! from their calls and from a timer. It also commits the job: when every reduce task has
//! committed, it writes `_SUCCESS`, and only then tells the workers to exit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::control::journal::{Done, Journal, Recovered};
use crate::control::scheduler::{Assignment, Failure, JobState, Scheduler, SchedulerConfig, TickOutcome};
use crate::data::input::Split;
use crate::error::{Error, Result};
use crate::exec::fault::Faults;
use crate::layout::{SUCCESS, TEMPORARY};
use crate::net::rpc::pb;
use crate::net::shuffle::Location;
use crate::types::{AttemptId, Millis, Phase, TaskId};

/// How long GetTask holds a call open when there is no task yet: a new task is handed out as
/// soon as it exists, without polling.
const LONG_POLL: Duration = Duration::from_millis(1000);
/// How often the scheduler's timers are checked.
const TICK: Duration = Duration::from_millis(100);

/// What the coordinator needs to run a job.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Registry name of the job.
    pub job_name: String,
    /// Arguments passed to every worker.
    pub job_args: Vec<String>,
    /// The input splits, one map task each.
    pub splits: Vec<Split>,
    /// Number of reduce tasks.
    pub reduce_tasks: u32,
    /// Where part files are committed.
    pub output_dir: PathBuf,
    /// A worker silent for longer than this is dead.
    pub worker_timeout: Duration,
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// Failed attempts after which a task fails the job.
    pub max_attempts: u32,
    /// An attempt without progress for this long is abandoned.
    pub task_timeout: Duration,
    /// Whether to run backup attempts of slow tasks.
    pub speculative: bool,
    /// Whether records that crash attempts are skipped.
    pub skip_bad_records: bool,
    /// Faults to inject into attempts.
    pub faults: Faults,
    /// Initial entries of the state store.
    pub state: Vec<(String, Vec<u8>)>,
    /// How input files are read.
    pub input_format: crate::data::input::InputFormat,
    /// Memory and merge settings of the tasks.
    pub settings: crate::exec::task::TaskSettings,
    /// The token every call must carry.
    pub token: crate::net::rpc::Token,
    /// TLS of the Coordinator and State services.
    pub tls: Option<crate::net::rpc::Tls>,
    /// Whether a lost worker's map outputs are re-executed at once (workers on other hosts).
    pub rerun_maps_of_lost_workers: bool,
}

/// Where a registered worker serves its map outputs.
#[derive(Debug, Clone)]
struct Endpoint {
    shuffle_url: String,
    host: String,
}

/// The coordinator of one job. Cheap to clone; clones share the job.
#[derive(Clone)]
pub struct Coordinator {
    shared: Arc<Shared>,
}

struct Shared {
    config: CoordinatorConfig,
    scheduler: Mutex<Scheduler>,
    /// Woken whenever the scheduler's state changed, for long-polling GetTask calls.
    changed: Notify,
    state: Mutex<HashMap<String, Vec<u8>>>,
    started: Instant,
    /// Wall-clock time at which the job started, in ms since the Unix epoch.
    started_unix_ms: u64,
    /// Set once when the job has ended (succeeded or failed).
    ended: watch::Sender<bool>,
    /// Time at which the job committed, for the summary.
    committed_at: Mutex<Option<Millis>>,
    /// Each worker's Shuffle service.
    endpoints: Mutex<HashMap<u64, Endpoint>>,
    /// Workers that were told the job is over.
    told_to_exit: Mutex<std::collections::HashSet<u64>>,
    /// Where committed tasks are recorded, for `--resume`.
    journal: Option<Arc<Journal>>,
    /// The map outputs of the last reduce assignment, as recorded and as sent: every reduce
    /// task gets the same shared list from the scheduler (until a map reruns), and converting
    /// 10,000 of them for each one was most of a reduce assignment's cost.
    reduce_inputs: Mutex<(Arc<[String]>, Vec<pb::MapOutput>)>,
}

impl Coordinator {
    /// A coordinator for a job; nothing runs until [`Coordinator::serve`].
    pub fn new(config: CoordinatorConfig) -> Coordinator {
        Coordinator::with_journal(config, None, Recovered::default())
    }

    /// A coordinator that records committed tasks in `journal`, continuing from what an
    /// earlier coordinator of the same job recorded (`recovered`, empty for a new job).
    pub fn with_journal(config: CoordinatorConfig, journal: Option<Arc<Journal>>, recovered: Recovered) -> Coordinator {
        let mut scheduler = Scheduler::new(SchedulerConfig {
            map_tasks: config.splits.len() as u32,
            reduce_tasks: config.reduce_tasks,
            worker_timeout: config.worker_timeout.as_millis() as Millis,
            task_timeout: config.task_timeout.as_millis() as Millis,
            max_attempts: config.max_attempts,
            speculative: config.speculative,
            skip_bad_records: config.skip_bad_records,
            rerun_maps_of_lost_workers: config.rerun_maps_of_lost_workers,
            // Each incarnation hands out its own range of ids.
            first_worker_id: (recovered.incarnation << 32) + 1,
        });
        for (task, done) in recovered.done {
            if !scheduler.restore(task, done.attempt, done.output, done.counters) {
                tracing::warn!(%task, "the journal names a task this job does not have; ignored");
            }
        }
        let state = config.state.iter().cloned().chain(recovered.state).collect();
        let (ended, _) = watch::channel(false);
        let shared = Shared {
            config,
            scheduler: Mutex::new(scheduler),
            changed: Notify::new(),
            state: Mutex::new(state),
            started: Instant::now(),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            ended,
            committed_at: Mutex::new(None),
            endpoints: Mutex::new(HashMap::new()),
            told_to_exit: Mutex::new(std::collections::HashSet::new()),
            journal,
            reduce_inputs: Mutex::new((Arc::from([]), Vec::new())),
        };
        let coordinator = Coordinator { shared: Arc::new(shared) };
        // A job with no reduce work left (no input, R = 0) commits at once.
        coordinator.after_event(&mut coordinator.scheduler());
        coordinator
    }

    /// Milliseconds since the job started.
    pub fn now(&self) -> Millis {
        self.shared.started.elapsed().as_millis() as Millis
    }

    /// Locks the scheduler. Never held across an await.
    pub fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        // A panic while holding the lock is a bug in the scheduler; the job cannot go on.
        self.shared.scheduler.lock().expect("scheduler lock poisoned")
    }

    /// Wall-clock time at which the job started, in ms since the Unix epoch.
    pub fn started_unix_ms(&self) -> u64 {
        self.shared.started_unix_ms
    }

    /// The job's configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.shared.config
    }

    /// When the job committed, if it has.
    pub fn committed_at(&self) -> Option<Millis> {
        *self.shared.committed_at.lock().expect("lock poisoned")
    }

    /// A receiver that turns true when the job has ended.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.shared.ended.subscribe()
    }

    /// Number of attempts committed so far.
    pub fn committed_attempts(&self) -> usize {
        self.scheduler()
            .attempts()
            .iter()
            .filter(|a| a.outcome == crate::control::scheduler::Outcome::Committed)
            .count()
    }

    /// True once every live worker has been told that the job is over.
    pub fn workers_told_to_exit(&self) -> bool {
        let told = self.shared.told_to_exit.lock().expect("lock poisoned");
        self.scheduler().workers().iter().all(|(id, w)| !w.alive || told.contains(id))
    }

    fn told_to_exit(&self, worker: u64) {
        self.shared.told_to_exit.lock().expect("lock poisoned").insert(worker);
    }

    /// True once the job has succeeded or failed.
    pub fn has_ended(&self) -> bool {
        *self.shared.ended.borrow()
    }

    /// Stops the job: workers are told to exit at their next call.
    pub fn abort(&self, reason: &str) {
        let mut s = self.scheduler();
        s.abort(reason.to_string());
        self.after_event(&mut s);
    }

    /// The worker process `pid` exited: its running attempts are lost at once, without
    /// waiting for the worker timeout, and every map output of it that is no longer on disk (a
    /// worker that exits removes its directory) runs again at once, rather than one by one
    /// as reducers fail to read them.
    pub fn worker_exited_pid(&self, pid: u32) {
        // Workers register as "HOST pid N"; the supervisor's workers all run on this host.
        let name = crate::layout::process_name(pid);
        let suffix = format!(" {name}");
        let outputs = {
            let mut s = self.scheduler();
            let now = self.now();
            let ids: Vec<(u64, bool)> = s
                .workers()
                .iter()
                .filter(|(_, w)| w.name == name || w.name.ends_with(&suffix))
                .map(|(&id, w)| (id, w.alive))
                .collect();
            for &(id, alive) in &ids {
                if alive {
                    s.worker_lost(id, now);
                }
            }
            self.after_event(&mut s);
            ids.iter().flat_map(|&(id, _)| s.map_outputs_of(id)).collect::<Vec<_>>()
        };
        let gone: Vec<(u32, u32)> = outputs
            .into_iter()
            .filter(|(_, _, output)| {
                serde_json::from_str::<Location>(output).is_ok_and(|l| !Path::new(&l.path).is_file())
            })
            .map(|(map, attempt, _)| (map, attempt))
            .collect();
        if !gone.is_empty() {
            tracing::warn!(pid, maps = gone.len(), "the exited worker's map outputs are gone: rerunning them");
            let mut s = self.scheduler();
            s.map_outputs_gone(&gone);
            self.after_event(&mut s);
        }
    }

    /// Commits the job when its tasks are done, wakes waiting calls, and signals the end.
    fn after_event(&self, s: &mut Scheduler) {
        if *s.state() == JobState::TasksDone {
            // The journal lives in the directory that the commit removes.
            if let Some(journal) = &self.shared.journal {
                journal.close();
            }
            let output_dir = &self.shared.config.output_dir;
            // The part files: the reduce tasks', or a map-only job's map tasks'.
            let (phase, tasks) = match self.shared.config.reduce_tasks {
                0 => (Phase::Map, self.shared.config.splits.len() as u32),
                r => (Phase::Reduce, r),
            };
            let reported: Vec<(TaskId, u64)> = (0..tasks)
                .map(|index| {
                    let task = TaskId { phase, index };
                    (task, s.committed_counters(task).map_or(0, |c| c.output_bytes))
                })
                .collect();
            let compression = self.shared.config.settings.output_compression;
            match check_parts(output_dir, &reported, compression).and_then(|()| commit_job(output_dir)) {
                Ok(()) => {
                    s.job_committed();
                    *self.shared.committed_at.lock().expect("lock poisoned") = Some(self.now());
                }
                Err(e) => s.abort(format!("cannot commit the job: {e}")),
            }
        }
        if matches!(s.state(), JobState::Succeeded | JobState::Failed(_)) {
            self.shared.ended.send_replace(true);
        }
        self.shared.changed.notify_waiters();
    }

    /// Serves the gRPC services on `listener` (with TLS when the job has it) and runs the
    /// scheduler's timers until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let mut server = crate::net::rpc::server(self.shared.config.tls.as_ref())?;
        let ticker = {
            let c = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(TICK);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = interval.tick() => {}
                    }
                    let mut s = c.scheduler();
                    let tick = s.tick(c.now());
                    for w in &tick.dead_workers {
                        tracing::warn!(worker = w, "worker missed its heartbeats: declared dead, its tasks rerun");
                    }
                    for attempt in &tick.abandoned {
                        tracing::warn!(%attempt, "attempt made no progress within the task timeout: abandoned");
                    }
                    if tick != TickOutcome::default() {
                        c.after_event(&mut s);
                    }
                }
            })
        };
        let token = &self.shared.config.token;
        let coordinator = pb::coordinator_server::CoordinatorServer::new(self.clone())
            .max_decoding_message_size(crate::net::rpc::MAX_MESSAGE_BYTES);
        let coordinator = crate::net::rpc::check_token(coordinator, token.clone());
        let state = pb::state_server::StateServer::new(self.clone())
            .max_decoding_message_size(crate::net::rpc::MAX_MESSAGE_BYTES);
        let state = crate::net::rpc::check_token(state, token.clone());
        let result = server
            .add_service(coordinator)
            .add_service(state)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            )
            .await;
        ticker.abort();
        result.map_err(|e| Error::Job(format!("coordinator server failed: {e}")))
    }
}

/// Longest status message kept per task.
const MAX_STATUS_CHARS: usize = 512;

/// Checks, before the job commits, that every reduce task's part file is in the output with
/// the size its committed attempt reported (`reported`: partition, bytes): an attempt that
/// was granted the commit and reported completion without moving its file into place (or a
/// file removed or cut since) fails the job instead of committing it incomplete.
fn check_parts(
    output_dir: &Path,
    reported: &[(TaskId, u64)],
    compression: crate::data::compression::OutputCompression,
) -> Result<()> {
    for &(task, bytes) in reported {
        let name = match task.phase {
            Phase::Map => crate::exec::maponly::part_name(task.index, compression),
            Phase::Reduce => crate::exec::task::part_name(task.index, compression),
        };
        let part = crate::data::storage::join(output_dir, &name);
        let size = if crate::data::storage::is_url(&part) {
            crate::data::storage::Object::parse(&part.to_string_lossy())?.size().ok()
        } else {
            std::fs::metadata(&part).ok().filter(|m| m.is_file()).map(|m| m.len())
        };
        let problem = match size {
            None => "is missing".to_string(),
            Some(size) if size != bytes => format!("is {size} bytes"),
            Some(_) => continue,
        };
        return Err(Error::Job(format!(
            "part file '{}' {problem}, but {task}'s committed attempt reported {bytes} bytes written: \
             the output is incomplete, so the job is not committed",
            part.display()
        )));
    }
    Ok(())
}

/// Writes `_SUCCESS` and removes the reduce attempts' temporary directory.
fn commit_job(output_dir: &Path) -> Result<()> {
    if crate::data::storage::is_url(output_dir) {
        return crate::data::storage::write(&crate::data::storage::join(output_dir, SUCCESS), Vec::new());
    }
    let tmp = output_dir.join(TEMPORARY);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io("cannot remove", &tmp))?;
    }
    crate::data::storage::write(&output_dir.join(SUCCESS), Vec::new())
}

fn task_message(
    shared: &Shared,
    attempt: AttemptId,
    map_outputs: Arc<[String]>,
    skip_records: Vec<u64>,
) -> Result<pb::Task, Status> {
    let config = &shared.config;
    let kind = match attempt.task.phase {
        Phase::Map => {
            let split = &config.splits[attempt.task.index as usize];
            pb::task::Kind::Map(pb::MapTask { split: Some(split.into()), skip_records })
        }
        Phase::Reduce => {
            let mut cache = shared.reduce_inputs.lock().expect("lock poisoned");
            // The same shared list as last time (the cache holds it, so its address is not
            // reused): no need to compare M strings.
            if !Arc::ptr_eq(&cache.0, &map_outputs) {
                let converted = map_outputs
                    .iter()
                    .map(|o| serde_json::from_str::<Location>(o).map(pb::MapOutput::from))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Status::internal(format!("a recorded map output location is unreadable: {e}")))?;
                *cache = (map_outputs, converted);
            }
            let map_outputs = cache.1.clone();
            pb::task::Kind::Reduce(pb::ReduceTask { partition: attempt.task.index, map_outputs })
        }
    };
    Ok(pb::Task { task_id: attempt.task.index, attempt: attempt.attempt, kind: Some(kind) })
}

/// The answer to a call from a worker that did not register with this coordinator: one
/// registered with an earlier coordinator of the job, which restarted. It registers again.
fn unknown_worker(worker: u64) -> Status {
    Status::not_found(format!("worker {worker} is not registered with this coordinator: register again"))
}

fn task_ref(config: &CoordinatorConfig, r: Option<pb::TaskRef>) -> Result<AttemptId, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("task is required"))?;
    attempt_id(config, r, "task")
}

/// The attempt `field` names. A task index beyond the job's tasks is the caller's error, not a
/// stale report.
fn attempt_id(config: &CoordinatorConfig, r: pb::TaskRef, field: &str) -> Result<AttemptId, Status> {
    let id = AttemptId::from(r);
    let (tasks, phase) = match id.task.phase {
        Phase::Map => (config.splits.len() as u64, "map"),
        Phase::Reduce => (u64::from(config.reduce_tasks), "reduce"),
    };
    if u64::from(id.task.index) >= tasks {
        return Err(Status::invalid_argument(format!(
            "{field}.task_id {} is out of range: the job has {tasks} {phase} tasks",
            id.task.index
        )));
    }
    Ok(id)
}

/// Checks the fields of a failure report that only one phase may set: a map attempt that
/// claimed a lost map output, or a reduce attempt a bad record, would be retried forever
/// without counting as a failure.
fn check_failure(config: &CoordinatorConfig, attempt: AttemptId, r: &pb::ReportFailureRequest) -> Result<(), Status> {
    match (attempt.task.phase, r.lost_map_task, r.bad_record) {
        (Phase::Map, Some(_), _) => Err(Status::invalid_argument(
            "lost_map_task is set by a map attempt: only reduce attempts read map outputs",
        )),
        (Phase::Reduce, _, Some(_)) => {
            Err(Status::invalid_argument("bad_record is set by a reduce attempt: only map attempts skip records"))
        }
        (_, Some(map), _) if map as usize >= config.splits.len() => Err(Status::invalid_argument(format!(
            "lost_map_task {map} is out of range: the job has {} map tasks",
            config.splits.len()
        ))),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for Coordinator {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        let r = request.into_inner();
        let name = if r.host.is_empty() { r.name } else { format!("{} {}", r.host, r.name) };
        let worker_id = {
            let mut s = self.scheduler();
            let id = s.register(name.clone(), self.now());
            self.after_event(&mut s);
            id
        };
        let endpoint = Endpoint { shuffle_url: r.shuffle_url, host: r.host };
        self.shared.endpoints.lock().expect("lock poisoned").insert(worker_id, endpoint);
        tracing::debug!(worker = worker_id, name, "worker registered");
        let c = &self.shared.config;
        Ok(Response::new(pb::RegisterWorkerReply {
            worker_id,
            job: Some(pb::JobSpec {
                job_name: c.job_name.clone(),
                job_args: c.job_args.clone(),
                reduce_tasks: c.reduce_tasks,
                output_dir: crate::net::convert::path_bytes(&c.output_dir),
                faults: Some(c.faults.into()),
                input_format: c.input_format.name().to_string(),
                sort_buffer_bytes: c.settings.sort_buffer,
                merge_fan_in: c.settings.merge_fan_in as u32,
                max_record_bytes: c.settings.max_record_bytes,
                output_compression: c.settings.output_compression.name().to_string(),
            }),
            heartbeat_interval_ms: c.heartbeat_interval.as_millis() as u64,
        }))
    }

    async fn get_task(&self, request: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskReply>, Status> {
        let worker = request.into_inner().worker_id;
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let assignment = {
                let mut s = self.scheduler();
                if !s.knows(worker) {
                    return Err(unknown_worker(worker));
                }
                let a = s.request_task(worker, self.now());
                if matches!(a, Assignment::Run { .. }) {
                    self.after_event(&mut s);
                }
                a
            };
            let reply = match assignment {
                Assignment::Run { attempt, map_outputs, skip_records } => {
                    tracing::debug!(worker, %attempt, "assigned");
                    let task = task_message(&self.shared, attempt, map_outputs, skip_records)?;
                    pb::get_task_reply::Reply::Task(task)
                }
                Assignment::Exit => {
                    self.told_to_exit(worker);
                    pb::get_task_reply::Reply::Exit(true)
                }
                Assignment::Wait => {
                    if tokio::time::timeout_at(deadline, changed).await.is_ok() {
                        continue;
                    }
                    pb::get_task_reply::Reply::WaitMs(0)
                }
            };
            return Ok(Response::new(pb::GetTaskReply { reply: Some(reply) }));
        }
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatReply>, Status> {
        let r = request.into_inner();
        // Records read and bytes fetched both show progress.
        let running = r.running.map(|t| attempt_id(&self.shared.config, t, "running")).transpose()?;
        let running = running.map(|id| (id, r.records.saturating_add(r.bytes)));
        let mut s = self.scheduler();
        let reply = s.heartbeat(r.worker_id, running, self.now());
        if !reply.known {
            return Err(unknown_worker(r.worker_id));
        }
        if let Some((id, _)) = running
            && !r.status.is_empty()
        {
            s.set_status(r.worker_id, id, r.status.chars().take(MAX_STATUS_CHARS).collect());
        }
        let exit = matches!(s.state(), JobState::Succeeded | JobState::Failed(_));
        drop(s);
        if exit {
            self.told_to_exit(r.worker_id);
        }
        let cancel = reply.cancel.into_iter().map(pb::TaskRef::from).collect();
        Ok(Response::new(pb::HeartbeatReply { exit, cancel }))
    }

    async fn commit_task(
        &self,
        request: Request<pb::CommitTaskRequest>,
    ) -> Result<Response<pb::CommitTaskReply>, Status> {
        let r = request.into_inner();
        let attempt = task_ref(&self.shared.config, r.task)?;
        if attempt.task.phase == Phase::Map && self.shared.config.reduce_tasks > 0 {
            return Err(Status::invalid_argument("task is a map attempt: map attempts commit by completing"));
        }
        let mut s = self.scheduler();
        if !s.knows(r.worker_id) {
            return Err(unknown_worker(r.worker_id));
        }
        let granted = s.request_commit(r.worker_id, attempt, self.now());
        Ok(Response::new(pb::CommitTaskReply { granted }))
    }

    async fn report_completion(
        &self,
        request: Request<pb::ReportCompletionRequest>,
    ) -> Result<Response<pb::ReportCompletionReply>, Status> {
        let r = request.into_inner();
        let attempt = task_ref(&self.shared.config, r.task)?;
        let counters: crate::types::TaskCounters = r.counters.unwrap_or_default().into();
        let output = match attempt.task.phase {
            Phase::Map => {
                let endpoint = self.shared.endpoints.lock().expect("lock poisoned").get(&r.worker_id).cloned();
                let Some(endpoint) = endpoint else { return Err(unknown_worker(r.worker_id)) };
                let location = Location {
                    map_task: attempt.task.index,
                    attempt: attempt.attempt,
                    host: endpoint.host,
                    path: r.output,
                    shuffle_url: endpoint.shuffle_url,
                };
                serde_json::to_string(&location).map_err(|e| Status::internal(e.to_string()))?
            }
            Phase::Reduce => r.output,
        };
        let mut s = self.scheduler();
        if !s.knows(r.worker_id) {
            return Err(unknown_worker(r.worker_id));
        }
        let record = self.shared.journal.as_ref().map(|_| Done {
            task: None,
            attempt: attempt.attempt,
            output: output.clone(),
            counters: counters.clone(),
        });
        let accepted = s.complete(r.worker_id, attempt, output, counters, self.now());
        tracing::debug!(worker = r.worker_id, %attempt, accepted, "attempt completed");
        // Recorded before the job can commit (which closes the journal).
        if let (true, Some(journal), Some(record)) = (accepted, &self.shared.journal, record) {
            journal.record_done(attempt.task, record);
        }
        self.after_event(&mut s);
        Ok(Response::new(pb::ReportCompletionReply { accepted }))
    }

    async fn report_failure(
        &self,
        request: Request<pb::ReportFailureRequest>,
    ) -> Result<Response<pb::ReportFailureReply>, Status> {
        let r = request.into_inner();
        let attempt = task_ref(&self.shared.config, r.task)?;
        check_failure(&self.shared.config, attempt, &r)?;
        tracing::warn!(worker = r.worker_id, %attempt, error = r.error, "attempt failed");
        let failure = Failure {
            error: r.error,
            bad_record: r.bad_record,
            lost_map_task: r.lost_map_task,
            lost_map_attempt: r.lost_map_attempt,
            lost_map_unreachable: r.lost_map_unreachable,
        };
        let mut s = self.scheduler();
        if !s.knows(r.worker_id) {
            return Err(unknown_worker(r.worker_id));
        }
        s.fail(r.worker_id, attempt, failure, self.now());
        self.after_event(&mut s);
        Ok(Response::new(pb::ReportFailureReply {}))
    }
}

#[tonic::async_trait]
impl pb::state_server::State for Coordinator {
    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Result<Response<pb::GetStateReply>, Status> {
        let keys = request.into_inner().keys;
        let store = self.shared.state.lock().expect("state lock poisoned");
        let values = keys
            .iter()
            .map(|k| match store.get(k) {
                Some(v) => pb::StateValue { found: true, value: v.clone() },
                None => pb::StateValue { found: false, value: Vec::new() },
            })
            .collect();
        Ok(Response::new(pb::GetStateReply { values }))
    }

    async fn set_state(&self, request: Request<pb::SetStateRequest>) -> Result<Response<pb::SetStateReply>, Status> {
        let entries = request.into_inner().entries;
        let mut store = self.shared.state.lock().expect("state lock poisoned");
        if let Some(journal) = &self.shared.journal {
            journal.record_state(entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect());
        }
        for e in entries {
            store.insert(e.key, e.value);
        }
        Ok(Response::new(pb::SetStateReply {}))
    }
}
