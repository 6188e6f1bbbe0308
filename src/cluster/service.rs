//! The cluster service's state and the life of its jobs: submitted (planned by `mr submit`,
//! which refuses a bad request before it reaches the cluster; the cluster checks that it knows
//! the job and takes its output directory, or refuses it before it is queued), queued, started
//! (a `control::coordinator` of its own, in this process, with its journal), offered to the
//! slots in the order of the queue's fair shares, ended (its summary and final status page kept
//! in the store, `_job.json` written, its output kept or removed), and restored from the store
//! after a restart. The gRPC services are in `rpc.rs`,
//! the web pages in `web.rs`.
//!
//! Locks: the cluster's `State` lock is taken before a job's scheduler lock, never after, and
//! is never held across an `.await` or planning, journal or output I/O; the store's writes are
//! made with it held, so records reach the store in the order their changes happened.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tonic::Status;

use crate::cluster::queue::{Effect, JobId, JobState, Queue, QueueConfig};
use crate::cluster::store::{JobRecord, Progress, Store};
use crate::cluster::submission::Submission;
use crate::control::coordinator::{Coordinator, CoordinatorConfig};
use crate::control::journal::{Journal, Recovered};
use crate::control::plan::{OutputDir, Plan};
use crate::control::scheduler::{JobState as TaskState, Outcome};
use crate::error::{Error, Result};
use crate::job::Registry;
use crate::net::rpc::{Tls, Token, pb};
use crate::report::summary::{PhaseSummary, Summary};
use crate::types::{Millis, Phase};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Where the store is.
    pub state_dir: PathBuf,
    /// The token of every call.
    pub token: Token,
    /// TLS of every service and of the slots' Shuffle services.
    pub tls: Option<Tls>,
    /// Most jobs running at once; `None`: no limit.
    pub max_running: Option<usize>,
    /// A slot that has not called for this long is forgotten (each job's scheduler declares
    /// it dead by its own `--worker-timeout`).
    pub slot_timeout: Duration,
}

/// A worker's slot, as the service knows it.
#[derive(Debug, Clone)]
pub struct SlotInfo {
    /// Its name (host and process).
    pub name: String,
    /// The host it advertises.
    pub host: String,
    /// When it last called.
    pub last_seen: Instant,
    /// Its worker id in each job it joined.
    pub joined: HashMap<JobId, u64>,
    /// The job of the attempt it runs, if any.
    pub running: Option<JobId>,
}

/// A job that runs: its coordinator and plan.
pub(crate) struct RunningJob {
    pub(crate) coordinator: Coordinator,
    pub(crate) plan: Plan,
    pub(crate) journal: Option<Arc<Journal>>,
}

/// What the lock guards.
pub(crate) struct State {
    pub(crate) queue: Queue,
    pub(crate) records: BTreeMap<JobId, JobRecord>,
    /// Grows at every change of a job's record (for WatchJob).
    pub(crate) version: u64,
    pub(crate) versions: HashMap<JobId, u64>,
    /// Jobs planned when submitted, not yet started.
    pending: HashMap<JobId, Plan>,
    pub(crate) running: BTreeMap<JobId, RunningJob>,
    pub(crate) slots: BTreeMap<u64, SlotInfo>,
    next_slot: u64,
}

/// The cluster service. Cheap to clone; clones share it.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClusterConfig,
    registry: Arc<Registry>,
    store: Store,
    state: Mutex<State>,
    /// Woken when a job's state or tasks change: slots and watchers waiting for work.
    pub(crate) changed: Notify,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

impl Cluster {
    /// Opens the store in the state directory and restores its jobs: the history as it was,
    /// queued jobs queued, running jobs started again from their journals.
    pub async fn open(config: ClusterConfig, registry: Arc<Registry>) -> Result<Cluster> {
        let store = Store::open(&config.state_dir)?;
        let records = store.all()?;
        let queue = Queue::new(QueueConfig { max_running: config.max_running });
        let state = State {
            queue,
            records: BTreeMap::new(),
            version: 0,
            versions: HashMap::new(),
            pending: HashMap::new(),
            running: BTreeMap::new(),
            slots: BTreeMap::new(),
            // Slot ids of this incarnation differ from those of the last one.
            next_slot: unix_ms() << 8,
        };
        let inner = Inner { config, registry, store, state: Mutex::new(state), changed: Notify::new() };
        let cluster = Cluster { inner: Arc::new(inner) };
        let effects = {
            let mut s = cluster.state();
            for r in records {
                s.queue.restore(r.id, r.state, r.submitted_ms, r.started_ms, r.ended_ms);
                s.records.insert(r.id, r);
            }
            s.queue.start_ready(unix_ms());
            s.queue.take_effects()
        };
        cluster.carry_out(effects).await;
        Ok(cluster)
    }

    /// Locks the state. Never held across an await.
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().expect("cluster lock poisoned")
    }

    /// A job's record changed: it gets a new version, it is written to the store (synced to
    /// disk if `durable`), and watchers wake.
    fn touched(&self, s: &mut State, id: JobId, durable: bool) {
        if let Some(record) = s.records.get(&id)
            && let Err(e) = self.inner.store.put(record, durable)
        {
            tracing::error!("{e}");
        }
        self.bump(s, id);
    }

    /// A job's record changed in the store: it gets a new version, and watchers wake.
    fn bump(&self, s: &mut State, id: JobId) {
        s.version += 1;
        let version = s.version;
        s.versions.insert(id, version);
        self.inner.changed.notify_waiters();
    }

    /// Queues a job as `mr submit` planned it, once the cluster knows the job and has taken its
    /// output directory (refusing it otherwise, with nothing queued). Returns its id.
    pub async fn submit(&self, submission: Submission, message: pb::JobPlan) -> Result<JobId> {
        let registry = &self.inner.registry;
        registry.get(&submission.job)?;
        registry.parse(&submission.job, &submission.job_args)?;
        let encoded = prost::Message::encode_to_vec(&message);
        let draft = submission.draft(message);
        let (output, inputs, overwrite) = (submission.output.clone(), submission.inputs.clone(), submission.overwrite);
        let output = tokio::task::spawn_blocking(move || OutputDir::prepare(&output, &inputs, overwrite))
            .await
            .map_err(|e| Error::Job(format!("taking the output directory panicked: {e}")))??;
        let plan = draft.into_plan(output);
        let secret = Token::random()?.1;
        let now = unix_ms();
        let record = JobRecord {
            id: 0,
            submission,
            state: JobState::Queued,
            submitted_ms: now,
            started_ms: None,
            ended_ms: None,
            progress: progress_of_plan(&plan),
            error: None,
            summary_json: None,
            summary_text: None,
            view: None,
            secret,
        };
        let (id, effects) = {
            let mut s = self.state();
            let id = self.inner.store.add(record.clone(), &encoded)?;
            s.records.insert(id, JobRecord { id, ..record });
            s.pending.insert(id, plan);
            s.queue.submit(id, now);
            self.bump(&mut s, id);
            (id, s.queue.take_effects())
        };
        tracing::info!(job = id, "submitted");
        self.carry_out(effects).await;
        Ok(id)
    }

    /// Kills a job. Returns whether it was queued or running (so killed now), and its state
    /// after the kill; `None` for an unknown job.
    pub async fn kill(&self, id: JobId) -> Option<(bool, JobState)> {
        let (known, killed, effects) = {
            let mut s = self.state();
            let known = s.records.contains_key(&id);
            let killed = s.queue.kill(id, unix_ms());
            (known, killed, s.queue.take_effects())
        };
        self.carry_out(effects).await;
        known.then(|| (killed, self.state().records.get(&id).map_or(JobState::Killed, |r| r.state)))
    }

    /// Carries out what the queue asked: starts, aborts, and the end of queued jobs.
    fn carry_out(&self, effects: Vec<Effect>) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            for effect in effects {
                match effect {
                    Effect::Start { id, resume } => self.start(id, resume).await,
                    Effect::Abort(id) => {
                        let coordinator = self.state().running.get(&id).map(|j| j.coordinator.clone());
                        if let Some(coordinator) = coordinator {
                            coordinator.abort("killed (mr kill)");
                        }
                    }
                    Effect::Ended(id, state) => {
                        let plan = {
                            let mut s = self.state();
                            if let Some(r) = s.records.get_mut(&id) {
                                r.state = state;
                                r.ended_ms = Some(unix_ms());
                                if state == JobState::Killed && r.error.is_none() {
                                    r.error = Some("killed (mr kill) while queued".into());
                                }
                            }
                            self.touched(&mut s, id, true);
                            s.pending.remove(&id)
                        };
                        // Dropping the plan removes what it made of the output.
                        drop(plan);
                    }
                }
            }
        })
    }

    /// Starts a job: its plan (made at submission, or again after a restart), its journal
    /// and its coordinator; a job that cannot start fails.
    async fn start(&self, id: JobId, resume: bool) {
        let (pending, submission) = {
            let mut s = self.state();
            let Some(record) = s.records.get(&id) else { return };
            let submission = record.submission.clone();
            (s.pending.remove(&id), submission)
        };
        let cluster = self.clone();
        let name = submission.job.clone();
        let started = tokio::task::spawn_blocking(move || cluster.prepare(id, &submission, pending, resume)).await;
        let started = started.unwrap_or_else(|e| Err(Error::Job(format!("starting the job panicked: {e}"))));
        match started {
            Ok((plan, journal, recovered)) => {
                let config = self.coordinator_config(&name, &plan, id);
                let coordinator = Coordinator::with_journal(config, journal.clone(), recovered);
                {
                    let mut s = self.state();
                    let progress = progress_of(&coordinator, plan.input_bytes);
                    if let Some(r) = s.records.get_mut(&id) {
                        r.state = JobState::Running;
                        r.started_ms.get_or_insert(unix_ms());
                        r.progress = progress;
                    }
                    s.running.insert(id, RunningJob { coordinator: coordinator.clone(), plan, journal });
                    self.touched(&mut s, id, true);
                }
                tracing::info!(job = id, resume, "started");
                let cluster = self.clone();
                tokio::spawn(async move {
                    let mut ended = coordinator.ended();
                    let _ = ended.wait_for(|ended| *ended).await;
                    cluster.finish(id).await;
                });
            }
            Err(e) => {
                tracing::warn!(job = id, error = %e, "the job cannot start");
                let effects = {
                    let mut s = self.state();
                    if let Some(r) = s.records.get_mut(&id) {
                        r.error = Some(e.to_string());
                    }
                    s.queue.job_ended(id, JobState::Failed, unix_ms());
                    s.queue.take_effects()
                };
                self.carry_out(effects).await;
            }
        }
    }

    /// The plan and journal of a starting job (blocking I/O): the plan taken at submission,
    /// or (after a restart) the one in the store with its output directory taken again; with
    /// `resume`, the journal of the run the restart interrupted.
    fn prepare(
        &self,
        id: JobId,
        submission: &Submission,
        pending: Option<Plan>,
        resume: bool,
    ) -> Result<(Plan, Option<Arc<Journal>>, Recovered)> {
        let mut plan = match pending {
            Some(plan) => plan,
            None => self.stored_plan(id, submission, resume)?,
        };
        if crate::data::storage::is_url(plan.output.path()) {
            return Ok((plan, None, Recovered::default()));
        }
        let path = crate::control::journal::path_for(plan.output.path());
        let identity = crate::launch::run::identity(&submission.job, &plan)?;
        let dir = &self.inner.config.state_dir;
        if !resume {
            let journal = Journal::create(&path, &identity, dir, dir, plan.output.created())?;
            return Ok((plan, Some(Arc::new(journal)), Recovered::default()));
        }
        let (journal, recovered) = Journal::resume(&path, &identity)?;
        plan.output.set_created(recovered.output_created);
        Ok((plan, Some(Arc::new(journal)), recovered))
    }

    /// A job's plan as the store keeps it, its output directory taken again (to continue the
    /// run its journal holds, with `resume`).
    fn stored_plan(&self, id: JobId, submission: &Submission, resume: bool) -> Result<Plan> {
        let bytes = self.inner.store.plan(id)?.ok_or_else(|| {
            Error::Job(format!("job {id} has no plan in the store {}", self.inner.store.path().display()))
        })?;
        let message: pb::JobPlan = prost::Message::decode(bytes.as_slice())
            .map_err(|e| Error::Job(format!("job {id}'s plan in the store is not readable: {e}")))?;
        let (output, inputs) = (&submission.output, &submission.inputs);
        let output = if resume {
            OutputDir::resume(output, inputs)?
        } else {
            OutputDir::prepare(output, inputs, submission.overwrite)?
        };
        Ok(submission.draft(message).into_plan(output))
    }

    fn coordinator_config(&self, name: &str, plan: &Plan, id: JobId) -> CoordinatorConfig {
        let submission = self.state().records.get(&id).map(|r| r.submission.clone());
        let (tolerance, faults) = submission.map(|s| (s.tolerance(), s.faults)).unwrap_or_default();
        CoordinatorConfig {
            job_name: name.to_string(),
            job_args: plan.job_args.clone(),
            splits: plan.splits.clone(),
            reduce_tasks: plan.reduce_tasks,
            output_dir: plan.output.path().to_path_buf(),
            heartbeat_interval: heartbeat_interval(&tolerance),
            tolerance,
            faults,
            state: plan.prepared.state.clone(),
            input_format: plan.input_format,
            settings: plan.settings,
            token: self.inner.config.token.clone(),
            tls: self.inner.config.tls.clone(),
            rerun_maps_of_lost_workers: true,
        }
    }

    /// A job's coordinator has ended the job: once no slot runs an attempt of it (they learn
    /// of its end at their next heartbeat), its output is kept (committed) or removed, its
    /// summary and final page are recorded, and the next queued job starts.
    async fn finish(&self, id: JobId) {
        let deadline = Instant::now() + self.inner.config.slot_timeout;
        loop {
            let notified = self.inner.changed.notified();
            let busy = self.state().slots.values().any(|slot| slot.running == Some(id));
            if !busy || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        let Some(job) = self.state().running.remove(&id) else { return };
        if let Some(journal) = &job.journal {
            journal.close();
        }
        let Some(submission) = self.state().records.get(&id).map(|r| r.submission.clone()) else { return };
        let summary = summary(&submission.job, &job);
        let view = serde_json::to_value(crate::report::status::snapshot(&job.coordinator)).ok();
        let progress = progress_of(&job.coordinator, job.plan.input_bytes);
        let outcome = if summary.succeeded { JobState::Succeeded } else { JobState::Failed };
        if summary.succeeded {
            write_history(&submission, &summary, view.as_ref(), job.plan.output.path()).await;
            job.plan.output.keep();
        } else {
            // Dropping the plan removes what the job wrote.
            drop(job.plan);
        }
        let effects = {
            let mut s = self.state();
            if let Some(r) = s.records.get_mut(&id) {
                // As `mr run --json` prints it.
                r.summary_json = serde_json::to_string_pretty(&summary).ok();
                r.summary_text = Some(summary.to_string());
                r.view = view;
                r.progress = progress;
                if r.error.is_none() {
                    r.error = summary.error.clone();
                }
            }
            s.queue.job_ended(id, outcome, unix_ms());
            let effects = s.queue.take_effects();
            // The queue's Ended effect records the final state.
            effects
        };
        tracing::info!(job = id, succeeded = summary.succeeded, "ended");
        self.carry_out(effects).await;
    }

    /// Stops the service: what running and queued jobs made of their outputs is left for the
    /// next start, which resumes them; their journals are closed.
    pub fn stop(&self) {
        let mut s = self.state();
        for job in s.running.values_mut() {
            job.plan.output.leave_alone();
            if let Some(journal) = &job.journal {
                journal.close();
            }
        }
        for plan in s.pending.values_mut() {
            plan.output.leave_alone();
        }
    }

    /// Every 100 ms: each running job's timers, its progress recorded (not synced to disk: a
    /// restarted job's progress comes from its journal), silent slots forgotten.
    pub(crate) fn tick(&self) {
        let coordinators: Vec<(JobId, Coordinator, u64)> =
            self.state().running.iter().map(|(&id, j)| (id, j.coordinator.clone(), j.plan.input_bytes)).collect();
        for (_, coordinator, _) in &coordinators {
            coordinator.tick();
        }
        let mut s = self.state();
        for (id, coordinator, input_bytes) in &coordinators {
            let progress = progress_of(coordinator, *input_bytes);
            if s.records.get(id).is_some_and(|r| r.progress != progress) {
                if let Some(r) = s.records.get_mut(id) {
                    r.progress = progress;
                }
                self.touched(&mut s, *id, false);
            }
        }
        let timeout = self.inner.config.slot_timeout;
        let before = s.slots.len();
        s.slots.retain(|_, slot| slot.last_seen.elapsed() < timeout);
        if s.slots.len() != before {
            self.inner.changed.notify_waiters();
        }
    }

    /// Registers a slot; returns its id.
    pub(crate) fn register_slot(&self, name: String, host: String) -> u64 {
        let mut s = self.state();
        s.next_slot += 1;
        let id = s.next_slot;
        let slot = SlotInfo { name, host, last_seen: Instant::now(), joined: HashMap::new(), running: None };
        s.slots.insert(id, slot);
        id
    }

    /// The jobs to offer a free slot, in the order of the queue's fair shares, each with its
    /// coordinator, the slot's worker id in it (if it joined) and whether it wants more slots.
    pub(crate) fn offers(&self, slot: u64) -> Result<Vec<Offer>, Status> {
        let mut s = self.state();
        let joined = {
            let info = s.slots.get_mut(&slot).ok_or_else(|| unknown_slot(slot))?;
            info.last_seen = Instant::now();
            // The slot is free: an ended job that waits for its slots to let go learns it now.
            if info.running.take().is_some() {
                self.inner.changed.notify_waiters();
            }
            info.joined.clone()
        };
        let loads: Vec<(JobId, u32, u32)> =
            s.running.iter().map(|(&id, j)| (id, running_attempts(&j.coordinator), demand(&j.coordinator))).collect();
        for &(id, running, demand) in &loads {
            s.queue.set_load(id, running, demand);
        }
        let slots = s.slots.len() as u32;
        let order = s.queue.offer_order(slots);
        let wants: HashMap<JobId, bool> = loads.iter().map(|&(id, running, demand)| (id, running < demand)).collect();
        Ok(order
            .into_iter()
            .filter_map(|id| {
                let job = s.running.get(&id)?;
                Some(Offer {
                    id,
                    coordinator: job.coordinator.clone(),
                    worker: joined.get(&id).copied(),
                    wants: wants.get(&id).copied().unwrap_or(false),
                })
            })
            .collect())
    }

    /// The secret of a job's Shuffle services.
    pub(crate) fn secret(&self, id: JobId) -> Option<String> {
        self.state().records.get(&id).map(|r| r.secret.clone())
    }

    /// The coordinator of a running job.
    pub(crate) fn coordinator(&self, id: JobId) -> Result<Coordinator, Status> {
        self.state()
            .running
            .get(&id)
            .map(|j| j.coordinator.clone())
            .ok_or_else(|| Status::failed_precondition(format!("job {id} is not running")))
    }
}

/// A running job offered to a free slot.
pub(crate) struct Offer {
    pub(crate) id: JobId,
    pub(crate) coordinator: Coordinator,
    /// The slot's worker id in the job, if it joined it.
    pub(crate) worker: Option<u64>,
    /// The job wants more slots than it has.
    pub(crate) wants: bool,
}

/// The answer to a slot the service does not know (it restarted, or forgot a silent slot).
pub(crate) fn unknown_slot(slot: u64) -> Status {
    Status::not_found(format!("slot {slot} is not registered with this cluster: register again"))
}

/// How often workers heartbeat: a tenth of the worker timeout, within 50 ms..1 s.
fn heartbeat_interval(tolerance: &crate::settings::FaultTolerance) -> Duration {
    (tolerance.worker_timeout / 10).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Attempts of the job that run now.
fn running_attempts(coordinator: &Coordinator) -> u32 {
    coordinator.scheduler().attempts().iter().filter(|a| a.outcome == Outcome::Running).count() as u32
}

/// Slots the job could use now: the tasks of its current phase that have not committed.
fn demand(coordinator: &Coordinator) -> u32 {
    let s = coordinator.scheduler();
    if *s.state() != TaskState::Running {
        return 0;
    }
    let (maps_done, maps) = s.progress(Phase::Map);
    let (reduces_done, reduces) = s.progress(Phase::Reduce);
    if maps_done < maps { maps - maps_done } else { reduces - reduces_done }
}

/// A running job's progress; `input_bytes` is the plan's.
fn progress_of(coordinator: &Coordinator, input_bytes: u64) -> Progress {
    let now = crate::report::progress::snapshot(coordinator);
    Progress {
        map_done: now.map_done,
        map_total: now.maps,
        reduce_done: now.reduce_done,
        reduce_total: now.reduces,
        input_bytes,
        map_bytes: now.map_bytes,
        reduce_total_bytes: now.reduce_total,
        reduce_bytes: now.reduce_bytes,
    }
}

fn progress_of_plan(plan: &Plan) -> Progress {
    Progress {
        map_total: plan.splits.len() as u32,
        reduce_total: plan.reduce_tasks,
        input_bytes: plan.input_bytes,
        ..Progress::default()
    }
}

/// Writes a committed job's `_job.json` as `mr run` does: `mr submit`'s command line and the
/// settings it resolved, the summary and the status page's last view. A history that cannot be
/// written is worth a warning, not a failed job: its output is complete.
async fn write_history(submission: &Submission, summary: &Summary, view: Option<&serde_json::Value>, output: &Path) {
    let history = serde_json::json!({
        "command": submission.command,
        "config": submission.config,
        "summary": summary,
        "status": view,
    });
    let output = output.to_path_buf();
    let written = tokio::task::spawn_blocking(move || crate::report::history::write(&output, &history)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the job committed, but its _job.json cannot be written"),
        Err(e) => tracing::warn!(error = %e, "the job committed, but writing its _job.json panicked"),
    }
}

/// The job's summary, as `mr run` prints it.
fn summary(name: &str, job: &RunningJob) -> Summary {
    let c = &job.coordinator;
    let s = c.scheduler();
    let error = match s.state() {
        TaskState::Succeeded => None,
        TaskState::Failed(f) => Some(match f.task {
            Some(task) => Error::TaskFailed {
                task: crate::launch::run::describe_task(&job.plan, task),
                attempts: f.attempts,
                last_error: f.last_error.clone(),
            }
            .to_string(),
            None => f.last_error.clone(),
        }),
        other => Some(format!("the job ended in state {other:?}")),
    };
    let plan = &job.plan;
    Summary {
        job: name.to_string(),
        mode: "cluster",
        succeeded: error.is_none(),
        error,
        output: plan.output.path().display().to_string(),
        map: PhaseSummary::from_attempts(Phase::Map, plan.splits.len() as u32, s.counters(Phase::Map), s.attempts()),
        reduce: PhaseSummary::from_attempts(Phase::Reduce, plan.reduce_tasks, s.counters(Phase::Reduce), s.attempts()),
        wall_ms: c.now(),
        committed_ms: c.committed_at(),
        workers: Vec::new(),
        speculative_attempts: s.attempts().iter().filter(|a| a.speculative).count() as u32,
        attempts: s.attempts().to_vec(),
        interrupted: false,
        notes: plan.notes.clone(),
        view: None,
    }
}

/// A job's record as the Cluster service answers it.
pub(crate) fn job_info(record: &JobRecord, version: u64) -> pb::JobInfo {
    let p = record.progress;
    pb::JobInfo {
        job_id: record.id,
        job: record.submission.job.clone(),
        state: record.state.name().to_string(),
        map_done: p.map_done,
        map_total: p.map_total,
        reduce_done: p.reduce_done,
        reduce_total: p.reduce_total,
        submitted_ms: record.submitted_ms,
        started_ms: record.started_ms.unwrap_or(0),
        ended_ms: record.ended_ms.unwrap_or(0),
        output: crate::net::convert::path_bytes(&record.submission.output),
        error: record.error.clone().unwrap_or_default(),
        summary_json: record.summary_json.clone().unwrap_or_default(),
        summary_text: record.summary_text.clone().unwrap_or_default(),
        version,
        input_bytes: p.input_bytes,
        map_bytes: p.map_bytes,
        reduce_total_bytes: p.reduce_total_bytes,
        reduce_bytes: p.reduce_bytes,
    }
}
