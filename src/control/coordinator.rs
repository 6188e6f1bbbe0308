//! The coordinator: serves the Coordinator and State gRPC services and drives the scheduler
//! from their calls and from a timer. It also commits the job: when every reduce task has
//! committed, it writes `_SUCCESS`, and only then tells the workers to exit.
//!
//! Each event goes to the scheduler under its lock (`Coordinator::event`); what the event
//! asks of the world comes back as [`Effect`]s. Committed tasks are queued to the journal
//! while the lock is held, so in the order the scheduler accepted them and before the call is
//! answered; the job commit (closing the journal, checking the part files, removing
//! `_temporary`, writing `_SUCCESS`: file system or object store I/O) and the end of the job are
//! carried out once the lock is released, so no call waits on that I/O for the lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::control::journal::{Done, Journal, Recovered};
use crate::control::scheduler::{
    Assignment, Effect, Failure, JobState, MapOutputList, Scheduler, SchedulerConfig, TickOutcome,
};
use crate::data::input::Split;
use crate::error::{Error, Result};
use crate::exec::fault::Faults;
use crate::layout::{SUCCESS, TEMPORARY};
use crate::net::rpc::pb;
use crate::types::{AttemptId, MapOutputLocation, Millis, Phase};

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
    /// How often workers heartbeat.
    pub heartbeat_interval: Duration,
    /// Timeouts, retries, backups and bad records: the scheduler's rules.
    pub tolerance: crate::settings::FaultTolerance,
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

/// Where a registered worker serves its map outputs, and its process.
#[derive(Debug, Clone)]
struct Endpoint {
    shuffle_url: String,
    host: String,
    /// Its process id, if it said (0 on the wire: it did not).
    pid: Option<u32>,
}

/// The coordinator of one job. Cheap to clone; clones share the job.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

/// What the clones of a [`Coordinator`] share.
struct Inner {
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
    /// The map outputs of the last reduce assignment, as the scheduler gave them and as sent:
    /// every reduce task gets the same shared list from the scheduler (until a map reruns), and
    /// converting 10,000 of them for each one was most of a reduce assignment's cost.
    reduce_inputs: Mutex<(MapOutputList, pb::ReduceTask)>,
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
            tolerance: config.tolerance.clone(),
            rerun_maps_of_lost_workers: config.rerun_maps_of_lost_workers,
            // Each incarnation hands out its own range of ids.
            first_worker_id: (recovered.incarnation << 32) + 1,
        });
        for (task, done) in recovered.done {
            if !scheduler.restore(task, done.attempt, done.map_output, done.counters) {
                tracing::warn!(%task, "the journal names a task this job does not have, or no map output; ignored");
            }
        }
        let state = config.state.iter().cloned().chain(recovered.state).collect();
        let (ended, _) = watch::channel(false);
        let inner = Inner {
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
            reduce_inputs: Mutex::new((Arc::from([]), pb::ReduceTask::default())),
        };
        let coordinator = Coordinator { inner: Arc::new(inner) };
        // A job with no reduce work left (no input, R = 0, or every task restored) commits at once.
        coordinator.event(|_, _| ());
        coordinator
    }

    /// Milliseconds since the job started.
    pub fn now(&self) -> Millis {
        self.inner.started.elapsed().as_millis() as Millis
    }

    /// Locks the scheduler. Never held across an await.
    pub fn scheduler(&self) -> MutexGuard<'_, Scheduler> {
        // A panic while holding the lock is a bug in the scheduler; the job cannot go on.
        self.inner.scheduler.lock().expect("scheduler lock poisoned")
    }

    /// Wall-clock time at which the job started, in ms since the Unix epoch.
    pub fn started_unix_ms(&self) -> u64 {
        self.inner.started_unix_ms
    }

    /// The job's configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.inner.config
    }

    /// When the job committed, if it has.
    pub fn committed_at(&self) -> Option<Millis> {
        *self.inner.committed_at.lock().expect("lock poisoned")
    }

    /// A receiver that turns true when the job has ended.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.inner.ended.subscribe()
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
        let told = self.inner.told_to_exit.lock().expect("lock poisoned");
        self.scheduler().workers().iter().all(|(id, w)| !w.alive || told.contains(id))
    }

    fn told_to_exit(&self, worker: u64) {
        self.inner.told_to_exit.lock().expect("lock poisoned").insert(worker);
    }

    /// True once the job has succeeded or failed.
    pub fn has_ended(&self) -> bool {
        *self.inner.ended.borrow()
    }

    /// Stops the job: workers are told to exit at their next call. Ignored while the job
    /// commits: its outcome ends the job.
    pub fn abort(&self, reason: &str) {
        self.event(|s, _| s.abort(reason.to_string()));
    }

    /// The worker process `pid` exited: its running attempts are lost at once, without
    /// waiting for the worker timeout, and every map output of it that is no longer on disk (a
    /// worker that exits removes its directory) runs again at once, rather than one by one
    /// as reducers fail to read them.
    pub fn worker_exited_pid(&self, pid: u32) {
        // Workers say their pid when they register; the supervisor's workers all run on this host.
        let ids: Vec<u64> = {
            let endpoints = self.inner.endpoints.lock().expect("lock poisoned");
            endpoints.iter().filter(|(_, e)| e.pid == Some(pid)).map(|(&id, _)| id).collect()
        };
        let outputs = self.event(|s, now| {
            for &id in &ids {
                if s.workers().get(&id).is_some_and(|w| w.alive) {
                    s.worker_lost(id, now);
                }
            }
            ids.iter().flat_map(|&id| s.map_outputs_of(id)).collect::<Vec<_>>()
        });
        let gone: Vec<(u32, u32)> = outputs
            .into_iter()
            .filter(|output| !Path::new(&output.path).is_file())
            .map(|output| (output.map_task, output.attempt))
            .collect();
        if !gone.is_empty() {
            tracing::warn!(pid, maps = gone.len(), "the exited worker's map outputs are gone: rerunning them");
            self.event(|s, _| s.map_outputs_gone(&gone));
        }
    }

    /// One GetTask of `worker` that does not wait: its next attempt, or `None` when it has
    /// nothing to run now or the job is over (`mr cluster` then offers the slot another job's
    /// task).
    pub fn try_assign(&self, worker: u64) -> Result<Option<pb::Task>, Status> {
        Ok(match self.assign(worker)? {
            Next::Task(task) => Some(task),
            Next::Wait | Next::Exit => None,
        })
    }

    /// Asks the scheduler for `worker`'s next attempt.
    fn assign(&self, worker: u64) -> Result<Next, Status> {
        let (assignment, effects) = self.locked(|s, now| s.knows(worker).then(|| s.request_task(worker, now)));
        let Some(assignment) = assignment else { return Err(unknown_worker(worker)) };
        self.carry_out(effects, matches!(assignment, Assignment::Run { .. }));
        Ok(match assignment {
            Assignment::Run { attempt, map_outputs, skip_records } => {
                tracing::debug!(worker, %attempt, "assigned");
                Next::Task(task_message(&self.inner, attempt, map_outputs, skip_records))
            }
            Assignment::Exit => {
                self.told_to_exit(worker);
                Next::Exit
            }
            Assignment::Wait => Next::Wait,
        })
    }

    /// Runs the scheduler's timers: declares silent workers dead and abandons attempts without
    /// progress.
    pub fn tick(&self) -> TickOutcome {
        let (tick, effects) = self.locked(|s, now| s.tick(now));
        for w in &tick.dead_workers {
            tracing::warn!(worker = w, "worker missed its heartbeats: declared dead, its tasks rerun");
        }
        for attempt in &tick.abandoned {
            tracing::warn!(%attempt, "attempt made no progress within the task timeout: abandoned");
        }
        self.carry_out(effects, tick != TickOutcome::default());
        tick
    }

    /// Feeds the scheduler an event (`f`, given it and the time), then carries out what the
    /// event asks and wakes the long-polling GetTask calls.
    fn event<T>(&self, f: impl FnOnce(&mut Scheduler, Millis) -> T) -> T {
        let (value, effects) = self.locked(f);
        self.carry_out(effects, true);
        value
    }

    /// [`Coordinator::event`] for a call from `worker`, which is `NotFound` if this coordinator
    /// did not register it; wakes the long-polling GetTask calls if `wake`.
    fn worker_event<T>(
        &self,
        worker: u64,
        wake: bool,
        f: impl FnOnce(&mut Scheduler, Millis) -> T,
    ) -> Result<T, Status> {
        let (value, effects) = self.locked(|s, now| s.knows(worker).then(|| f(s, now)));
        self.carry_out(effects, wake);
        value.ok_or_else(|| unknown_worker(worker))
    }

    /// Feeds the scheduler an event under its lock, and queues the tasks it committed to the
    /// journal before the lock is released: in the order the scheduler accepted them, and
    /// before the call that reported them is answered. Returns the effects left to carry out.
    fn locked<T>(&self, f: impl FnOnce(&mut Scheduler, Millis) -> T) -> (T, Vec<Effect>) {
        let mut s = self.scheduler();
        let value = f(&mut s, self.now());
        let mut rest = Vec::new();
        for effect in s.take_effects() {
            match (effect, &self.inner.journal) {
                (Effect::TaskCommitted { task, attempt, map_output, counters }, Some(journal)) => {
                    let map_output = map_output.map(Arc::unwrap_or_clone);
                    journal.record_done(task, Done { task: None, attempt, map_output, counters });
                }
                (Effect::TaskCommitted { .. }, None) => {}
                (effect, _) => rest.push(effect),
            }
        }
        (value, rest)
    }

    /// Carries out, without the scheduler's lock, what an event asked: the job commit (whose
    /// outcome is one more event) and the end of the job; then wakes the long-polling GetTask
    /// calls if `wake`.
    fn carry_out(&self, effects: Vec<Effect>, wake: bool) {
        for effect in effects {
            match effect {
                // Journaled under the lock.
                Effect::TaskCommitted { .. } => {}
                Effect::CommitJob { part_bytes } => {
                    let outcome = self.commit_job(&part_bytes);
                    let (committed, effects) = self.locked(|s, now| match outcome {
                        Ok(()) => {
                            s.job_committed();
                            (*s.state() == JobState::Succeeded).then_some(now)
                        }
                        Err(e) => {
                            s.job_commit_failed(format!("cannot commit the job: {e}"));
                            None
                        }
                    });
                    if committed.is_some() {
                        *self.inner.committed_at.lock().expect("lock poisoned") = committed;
                    }
                    self.carry_out(effects, false);
                }
                Effect::JobEnded => {
                    self.inner.ended.send_replace(true);
                }
            }
        }
        if wake {
            self.inner.changed.notify_waiters();
        }
    }

    /// The job commit: closes the journal (it lives in the directory the commit removes, and
    /// closing it waits until every record queued is written), checks that every part file has
    /// the size its attempt reported (`part_bytes`, by partition), removes `_temporary` and
    /// writes `_SUCCESS`.
    fn commit_job(&self, part_bytes: &[u64]) -> Result<()> {
        if let Some(journal) = &self.inner.journal {
            journal.close();
        }
        let output_dir = &self.inner.config.output_dir;
        let config = &self.inner.config;
        check_parts(output_dir, part_bytes, config.reduce_tasks == 0, config.settings.output_compression)?;
        commit_output(output_dir)
    }

    /// Serves the gRPC services on `listener` (with TLS when the job has it) and runs the
    /// scheduler's timers until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let mut server = crate::net::rpc::server(self.inner.config.tls.as_ref())?;
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
                    c.tick();
                }
            })
        };
        let token = &self.inner.config.token;
        let coordinator = pb::coordinator_server::CoordinatorServer::new(self.clone())
            .max_decoding_message_size(crate::net::rpc::MAX_MESSAGE_BYTES);
        let coordinator = crate::net::rpc::check_token(coordinator, token.clone());
        let state = pb::state_server::StateServer::new(self.clone())
            .max_decoding_message_size(crate::net::rpc::MAX_MESSAGE_BYTES);
        let state = crate::net::rpc::check_token(state, token.clone());
        let result = server
            .add_service(coordinator)
            .add_service(state)
            .serve_with_incoming_shutdown(crate::net::rpc::incoming(listener), shutdown.cancelled_owned())
            .await;
        ticker.abort();
        result.map_err(|e| Error::Job(format!("coordinator server failed: {e}")))
    }
}

/// A worker's next step, as GetTask answers it.
enum Next {
    Task(pb::Task),
    Wait,
    Exit,
}

/// Longest status message kept per task.
const MAX_STATUS_CHARS: usize = 512;

/// Checks, before the job commits, that every reduce task's (map-only: map task's) part file is in the output with
/// the size its committed attempt reported (`part_bytes`, by partition): an attempt that
/// was granted the commit and reported completion without moving its file into place (or a
/// file removed or cut since) fails the job instead of committing it incomplete.
fn check_parts(
    output_dir: &Path,
    part_bytes: &[u64],
    map_only: bool,
    compression: crate::data::compression::OutputCompression,
) -> Result<()> {
    for (partition, &bytes) in part_bytes.iter().enumerate() {
        let name = if map_only {
            crate::exec::maponly::part_name(partition as u32, compression)
        } else {
            crate::exec::task::part_name(partition as u32, compression)
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
        let phase = if map_only { Phase::Map } else { Phase::Reduce };
        let task = crate::types::TaskId { phase, index: partition as u32 };
        return Err(Error::Job(format!(
            "part file '{}' {problem}, but {task}'s committed attempt reported {bytes} bytes written: \
             the output is incomplete, so the job is not committed",
            part.display()
        )));
    }
    Ok(())
}

/// Writes `_SUCCESS` and removes the reduce attempts' temporary directory.
fn commit_output(output_dir: &Path) -> Result<()> {
    if crate::data::storage::is_url(output_dir) {
        return crate::data::storage::write(&crate::data::storage::join(output_dir, SUCCESS), Vec::new());
    }
    let tmp = output_dir.join(TEMPORARY);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(Error::io("cannot remove", &tmp))?;
    }
    crate::data::storage::write(&output_dir.join(SUCCESS), Vec::new())
}

/// The task message of an assigned attempt.
fn task_message(inner: &Inner, attempt: AttemptId, map_outputs: MapOutputList, skip_records: Vec<u64>) -> pb::Task {
    let kind = match attempt.task.phase {
        Phase::Map => {
            let split = &inner.config.splits[attempt.task.index as usize];
            pb::task::Kind::Map(pb::MapTask { split: Some(split.into()), skip_records })
        }
        Phase::Reduce => {
            let mut cache = inner.reduce_inputs.lock().expect("lock poisoned");
            // The same shared list as last time (the cache holds it, so its address is not
            // reused): no need to compare M locations.
            if !Arc::ptr_eq(&cache.0, &map_outputs) {
                let converted = crate::net::convert::reduce_task(0, &map_outputs);
                *cache = (map_outputs, converted);
            }
            pb::task::Kind::Reduce(pb::ReduceTask { partition: attempt.task.index, ..cache.1.clone() })
        }
    };
    pb::Task { task_id: attempt.task.index, attempt: attempt.attempt, kind: Some(kind) }
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
        let endpoint = Endpoint { shuffle_url: r.shuffle_url, host: r.host, pid: (r.pid != 0).then_some(r.pid) };
        // Known by its endpoint (its pid) as soon as the scheduler knows it.
        let worker_id = self.event(|s, now| {
            let id = s.register(name.clone(), now);
            self.inner.endpoints.lock().expect("lock poisoned").insert(id, endpoint);
            id
        });
        tracing::debug!(worker = worker_id, name, "worker registered");
        let c = &self.inner.config;
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
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let reply = match self.assign(worker)? {
                Next::Task(task) => pb::get_task_reply::Reply::Task(task),
                Next::Exit => pb::get_task_reply::Reply::Exit(true),
                Next::Wait => {
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
        let running = r.running.map(|t| attempt_id(&self.inner.config, t, "running")).transpose()?;
        let running = running.map(|id| (id, r.records.saturating_add(r.bytes)));
        let ((reply, exit), effects) = self.locked(|s, now| {
            let reply = s.heartbeat(r.worker_id, running, now);
            if let Some((id, _)) = running
                && reply.known
                && !r.status.is_empty()
            {
                s.set_status(r.worker_id, id, r.status.chars().take(MAX_STATUS_CHARS).collect());
            }
            (reply, matches!(s.state(), JobState::Succeeded | JobState::Failed(_)))
        });
        self.carry_out(effects, false);
        if !reply.known {
            return Err(unknown_worker(r.worker_id));
        }
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
        let attempt = task_ref(&self.inner.config, r.task)?;
        if attempt.task.phase == Phase::Map && self.inner.config.reduce_tasks > 0 {
            return Err(Status::invalid_argument("task is a map attempt: map attempts commit by completing"));
        }
        let granted = self.worker_event(r.worker_id, false, |s, now| s.request_commit(r.worker_id, attempt, now))?;
        Ok(Response::new(pb::CommitTaskReply { granted }))
    }

    async fn report_completion(
        &self,
        request: Request<pb::ReportCompletionRequest>,
    ) -> Result<Response<pb::ReportCompletionReply>, Status> {
        let r = request.into_inner();
        let attempt = task_ref(&self.inner.config, r.task)?;
        let counters: crate::types::TaskCounters = r.counters.unwrap_or_default().into();
        // A reduce attempt's output is its part file, in place: only a map output's location is kept.
        let map_output = match attempt.task.phase {
            // A map-only job's map attempt writes a part file, in place, as a reduce attempt does.
            Phase::Map if self.inner.config.reduce_tasks == 0 => None,
            Phase::Map => {
                let endpoint = self.inner.endpoints.lock().expect("lock poisoned").get(&r.worker_id).cloned();
                let Some(endpoint) = endpoint else { return Err(unknown_worker(r.worker_id)) };
                Some(MapOutputLocation {
                    map_task: attempt.task.index,
                    attempt: attempt.attempt,
                    host: endpoint.host,
                    path: r.output,
                    shuffle_url: endpoint.shuffle_url,
                })
            }
            Phase::Reduce => None,
        };
        // Journaled, if accepted, before the answer, and before the job commit this may start.
        let accepted =
            self.worker_event(r.worker_id, true, |s, now| s.complete(r.worker_id, attempt, map_output, counters, now))?;
        tracing::debug!(worker = r.worker_id, %attempt, accepted, "attempt completed");
        Ok(Response::new(pb::ReportCompletionReply { accepted }))
    }

    async fn report_failure(
        &self,
        request: Request<pb::ReportFailureRequest>,
    ) -> Result<Response<pb::ReportFailureReply>, Status> {
        let r = request.into_inner();
        let attempt = task_ref(&self.inner.config, r.task)?;
        check_failure(&self.inner.config, attempt, &r)?;
        tracing::warn!(worker = r.worker_id, %attempt, error = r.error, "attempt failed");
        let failure = Failure {
            error: r.error,
            bad_record: r.bad_record,
            lost_map_task: r.lost_map_task,
            lost_map_attempt: r.lost_map_attempt,
            lost_map_unreachable: r.lost_map_unreachable,
        };
        self.worker_event(r.worker_id, true, |s, now| s.fail(r.worker_id, attempt, failure, now))?;
        Ok(Response::new(pb::ReportFailureReply {}))
    }
}

#[tonic::async_trait]
impl pb::state_server::State for Coordinator {
    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Result<Response<pb::GetStateReply>, Status> {
        let keys = request.into_inner().keys;
        let store = self.inner.state.lock().expect("state lock poisoned");
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
        let mut store = self.inner.state.lock().expect("state lock poisoned");
        if let Some(journal) = &self.inner.journal {
            journal.record_state(entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect());
        }
        for e in entries {
            store.insert(e.key, e.value);
        }
        Ok(Response::new(pb::SetStateReply {}))
    }
}
