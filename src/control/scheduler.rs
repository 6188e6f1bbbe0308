//! The scheduler: a pure state machine that decides which attempt runs where.
//!
//! It does no I/O and reads no clock: the coordinator feeds it events (a worker registered,
//! asked for a task, heartbeated, asked to commit, reported an outcome, time passed) with the
//! current time in milliseconds, and acts on what it returns. What an event asks of the world
//! (journal a committed task, commit the job, tell the workers the job ended) it leaves as
//! [`Effect`]s, which the coordinator takes with [`Scheduler::take_effects`] under its lock
//! and carries out after releasing it, as raft-rs's `RawNode` hands its effects back through
//! `ready()`. Every rule of the Google
//! MapReduce paper that `mr` follows lives here and is unit-tested without processes or sleeps:
//!
//! - Maps run first; reduces are handed out once every map task is done.
//! - Every execution of a task is an attempt with its own number; reports name their attempt,
//!   and a report for an attempt that is no longer running is stale and ignored.
//! - A reduce attempt may move its output into place only when granted the commit, and exactly
//!   one attempt per task is granted it. A map attempt commits by being the first to complete.
//!   The other attempts of a committed task are discarded, and their workers told to cancel.
//! - A worker silent for longer than the worker timeout is dead: its running attempts are lost
//!   and their tasks go back to idle. A lost attempt does not count as a failure of its task.
//!   Map outputs live on the worker that wrote them: with `rerun_maps_of_lost_workers` (the
//!   paper's rule, on for `mr coordinator`), a dead worker's completed maps are re-executed at
//!   once; without it (`mr run`, where every worker shares the host) they stay readable. Either
//!   way, a map output that a reducer cannot read is re-executed (and counts as a failure of
//!   that map task).
//! - An attempt that reports no progress for the task timeout is abandoned: a failure.
//! - Near the end of a phase (no idle task left), an idle worker gets a backup (speculative)
//!   attempt of the task expected to finish last, if a fresh attempt would likely finish
//!   first: one whose recent rate of progress (input records and bytes, against those of the
//!   phase's committed attempts) leaves more time than those attempts took on average, or, with no
//!   progress reported, one that has run much longer than they took (as LATE, Zaharia et al.,
//!   OSDI 2008, estimates time left from progress rates).
//! - A task whose attempts failed `max_attempts` times fails the job. With bad-record skipping
//!   on, a record on which two attempts failed is skipped by the next ones, and such failures
//!   do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::settings::FaultTolerance;
use crate::types::{AttemptId, MapOutputLocation, Millis, Phase, TaskCounters, TaskId, WorkerId};

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Number of map tasks (one per split).
    pub map_tasks: u32,
    /// Number of reduce tasks (one per partition).
    pub reduce_tasks: u32,
    /// Timeouts (a silent worker is dead, an attempt without progress is abandoned), failed
    /// attempts that fail the job, backup attempts near the end of a phase, and whether
    /// records that crash attempts are skipped by later attempts. `max_restarts` and
    /// `verify_inputs` are not the scheduler's.
    pub tolerance: FaultTolerance,
    /// Whether a lost worker's committed map outputs are re-executed at once (the paper's
    /// rule: they lived on its machine). Off when every reducer can read them from a shared
    /// host; a reducer that cannot read an output reports it either way.
    pub rerun_maps_of_lost_workers: bool,
    /// Id of the first worker to register. A resumed coordinator starts past every id that
    /// the coordinators before it handed out, so a worker they registered is not mistaken for
    /// one of its own.
    pub first_worker_id: WorkerId,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            map_tasks: 0,
            reduce_tasks: 0,
            tolerance: FaultTolerance::default(),
            rerun_maps_of_lost_workers: false,
            first_worker_id: 1,
        }
    }
}

/// A running attempt is speculated on only after running this long...
const SPECULATION_MIN_MS: Millis = 1_000;
/// ...and, if it has reported no progress, this many times longer than the phase's committed
/// attempts took on average.
const SPECULATION_FACTOR: u64 = 2;
/// A phase is close to its end when at most 1 in this many of its tasks is still running: from
/// then on every running task expected to take over `SPECULATION_MIN_MS` more is worth a backup
/// (the paper's rule), since idle workers have nothing else to do.
const CLOSE_TO_THE_END: usize = 20;
/// The weight of the newest heartbeat in an attempt's moving rate of progress.
const RATE_WEIGHT: f64 = 0.3;
/// Failures on one record after which it is skipped (with bad-record skipping on).
const SKIP_AFTER: u32 = 2;

/// The committed map outputs a reduce attempt reads, in map task order: one list shared by
/// every reduce attempt, of the locations the map tasks' states hold.
pub type MapOutputList = Arc<[Arc<MapOutputLocation>]>;

/// What a worker should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Run this attempt.
    Run {
        /// The attempt to run.
        attempt: AttemptId,
        /// Reduce only: the committed map outputs, in map task order. Every reduce attempt
        /// gets the same shared list until a map output changes, so that handing out R
        /// reduce tasks costs O(M + R), not O(R × M); each location is the one the task's
        /// state holds, shared, not a copy.
        map_outputs: MapOutputList,
        /// Map only: the numbers (in the split) of the records to skip.
        skip_records: Vec<u64>,
    },
    /// Nothing to do now; ask again later.
    Wait,
    /// The job is over; exit.
    Exit,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still running.
    Running,
    /// Committed: its output is the task's output.
    Committed,
    /// Reported an error, or made no progress for the task timeout.
    Failed(String),
    /// Its worker died, or its input was lost.
    Lost,
    /// Another attempt of its task committed first.
    Discarded,
}

/// The history of one attempt, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    /// Which attempt.
    pub id: AttemptId,
    /// The worker that ran it.
    pub worker: WorkerId,
    /// True for a backup attempt of a slow task.
    pub speculative: bool,
    /// When it was assigned.
    pub start_ms: Millis,
    /// When it ended, if it has.
    pub end_ms: Option<Millis>,
    /// How it ended.
    pub outcome: Outcome,
}

/// A failed attempt's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failure {
    /// The error.
    pub error: String,
    /// Map: the number (in the split) of the record being processed.
    pub bad_record: Option<u64>,
    /// Reduce: the map task whose output could not be read.
    pub lost_map_task: Option<u32>,
    /// The attempt of that map task whose output was lost.
    pub lost_map_attempt: u32,
    /// True when that output was unreachable (its worker gone) rather than corrupt: then the
    /// map task's rerun does not count as its failure.
    pub lost_map_unreachable: bool,
}

/// Why the job failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// The task that failed too often, if a task is to blame.
    pub task: Option<TaskId>,
    /// Its failed attempts.
    pub attempts: u32,
    /// The last error reported.
    pub last_error: String,
}

/// The state of the whole job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Tasks are running or waiting.
    Running,
    /// Every reduce task has committed; the job commit (`_SUCCESS`) is under way (the
    /// [`Effect::CommitJob`] the scheduler gave), and only its outcome ends this state.
    TasksDone,
    /// The job committed.
    Succeeded,
    /// A task failed too many times, or the job was stopped.
    Failed(JobFailure),
}

/// The scheduler's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// False for a worker this job does not know: it should exit.
    pub known: bool,
    /// Attempts the worker should stop.
    pub cancel: Vec<AttemptId>,
}

/// What a timer tick changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickOutcome {
    /// Workers declared dead.
    pub dead_workers: Vec<WorkerId>,
    /// Attempts abandoned for lack of progress.
    pub abandoned: Vec<AttemptId>,
}

/// What an event asks of the world, for the owner of the scheduler to carry out: taken, in the
/// order they arose, with [`Scheduler::take_effects`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A task committed (`complete` accepted its attempt): the coordinator journals it, for
    /// `--resume`. A map task that runs again after its output was lost commits again.
    TaskCommitted {
        /// The task.
        task: TaskId,
        /// Its committed attempt.
        attempt: u32,
        /// A map task's output; `None` for a reduce task (its output is its part file).
        map_output: Option<Arc<MapOutputLocation>>,
        /// The attempt's counters.
        counters: TaskCounters,
    },
    /// Every task is done: commit the job (check that each part file has the size its attempt
    /// reported, write `_SUCCESS`), then call [`Scheduler::job_committed`] or
    /// [`Scheduler::job_commit_failed`]. Given once per job, when it enters `TasksDone`.
    CommitJob {
        /// The bytes each reduce task's committed attempt wrote, by partition.
        part_bytes: Vec<u64>,
    },
    /// The job ended, committed or failed: workers are told to exit.
    JobEnded,
}

#[derive(Debug)]
enum TaskState {
    Idle,
    Running(Vec<Running>),
    Done {
        /// Where a map task's output is; `None` for a reduce task.
        map_output: Option<Arc<MapOutputLocation>>,
        /// The committed attempt, its worker, and its index in `Scheduler::attempts` (none
        /// for a task restored from the journal of an earlier coordinator).
        attempt: u32,
        worker: WorkerId,
        attempt_index: Option<usize>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Running {
    attempt: u32,
    worker: WorkerId,
    /// Index of its record in `Scheduler::attempts`.
    attempt_index: usize,
    start_ms: Millis,
    last_progress_ms: Millis,
    /// Its progress: input records and bytes, summed as the heartbeats report them.
    progress: u64,
    /// Progress per ms, from its heartbeats: the first rate measured once it reports progress,
    /// then a moving average weighted `RATE_WEIGHT` to the newest; and when it was measured.
    rate: f64,
    rated_ms: Millis,
    commit_granted: bool,
}

#[derive(Debug)]
struct Task {
    state: TaskState,
    next_attempt: u32,
    failures: u32,
    last_error: String,
    counters: TaskCounters,
    /// Record number (in the split) -> attempts that failed on it.
    bad_records: BTreeMap<u64, u32>,
    /// The last status message one of its current attempts reported.
    status: String,
}

impl Task {
    fn new() -> Task {
        Task {
            state: TaskState::Idle,
            next_attempt: 0,
            failures: 0,
            last_error: String::new(),
            counters: TaskCounters::default(),
            bad_records: BTreeMap::new(),
            status: String::new(),
        }
    }

    fn running(&self) -> &[Running] {
        match &self.state {
            TaskState::Running(list) => list,
            _ => &[],
        }
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for a worker.
    Idle,
    /// At least one attempt is running.
    Running,
    /// An attempt committed.
    Done,
}

/// What the scheduler knows of a worker.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerInfo {
    /// Its self-given name (host and pid).
    pub name: String,
    /// When it was last heard from.
    pub last_seen_ms: Millis,
    /// False once declared dead.
    pub alive: bool,
}

/// The scheduler. See the module documentation for its rules.
#[derive(Debug)]
pub struct Scheduler {
    config: SchedulerConfig,
    maps: Vec<Task>,
    reduces: Vec<Task>,
    maps_done: u32,
    reduces_done: u32,
    workers: BTreeMap<WorkerId, WorkerInfo>,
    attempts: Vec<AttemptRecord>,
    state: JobState,
    /// Per phase (`Phase as usize`), indexes that keep every call O(log tasks) rather than a
    /// scan of all tasks and attempts: with 10,000 tasks and 64 workers, scans per GetTask
    /// were the coordinator's largest cost.
    index: [PhaseIndex; 2],
    /// The list of committed map outputs handed to reduce attempts, built at the first reduce
    /// assignment after a map output changed (`None` until then).
    reduce_inputs: Option<MapOutputList>,
    /// What the events since the last [`Scheduler::take_effects`] ask of the world.
    effects: Vec<Effect>,
}

/// What the scheduler keeps per phase to find tasks without scanning them all.
#[derive(Debug, Default)]
struct PhaseIndex {
    /// Every idle task, lowest first (the order tasks are handed out in). It may also hold
    /// tasks that are no longer idle: those are skipped and dropped when met.
    idle: BTreeSet<u32>,
    /// The tasks with at least one running attempt.
    running: BTreeSet<u32>,
    /// Sum of the durations and of the progress (input records and bytes) of the committed
    /// attempts, and their number: what speculation compares a running attempt with.
    committed_ms: Millis,
    committed_progress: u64,
    committed: u64,
}

/// The progress a finished attempt had reported, from its counters: a map's input records and
/// bytes; a reduce's input records and its input bytes twice, once fetched and once merged.
fn final_progress(phase: Phase, counters: &TaskCounters) -> u64 {
    let bytes = match phase {
        Phase::Map => counters.input_bytes,
        Phase::Reduce => counters.input_bytes.saturating_mul(2),
    };
    counters.input_records.saturating_add(bytes)
}

/// An attempt's time left, in ms, if it goes on at `rate` (progress per ms): it has made
/// `progress` of the `expected` (which it may exceed: then it is nearly done). `None` without
/// progress to go by.
fn time_left(progress: u64, expected: u64, rate: f64) -> Option<Millis> {
    if progress == 0 || expected == 0 || rate <= 0.0 {
        return None;
    }
    Some((expected.saturating_sub(progress) as f64 / rate).min(Millis::MAX as f64 / 2.0) as Millis)
}

impl Scheduler {
    /// A scheduler for a job with the given shape.
    pub fn new(config: SchedulerConfig) -> Scheduler {
        let maps = (0..config.map_tasks).map(|_| Task::new()).collect();
        let reduces = (0..config.reduce_tasks).map(|_| Task::new()).collect();
        let index = [config.map_tasks, config.reduce_tasks]
            .map(|n| PhaseIndex { idle: (0..n).collect(), ..PhaseIndex::default() });
        let mut s = Scheduler {
            config,
            maps,
            reduces,
            maps_done: 0,
            reduces_done: 0,
            workers: BTreeMap::new(),
            attempts: Vec::new(),
            state: JobState::Running,
            index,
            reduce_inputs: None,
            effects: Vec::new(),
        };
        s.check_done();
        s
    }

    /// The job's state.
    pub fn state(&self) -> &JobState {
        &self.state
    }

    /// What the events so far ask of the world, in the order they arose; the list is emptied.
    /// The coordinator takes them under its lock after every event, journals the committed
    /// tasks there, and carries out the rest once the lock is released.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Moves the job to a final state, once, and asks for the workers to be told.
    fn end(&mut self, state: JobState) {
        debug_assert!(matches!(state, JobState::Succeeded | JobState::Failed(_)));
        if !matches!(self.state, JobState::Succeeded | JobState::Failed(_)) {
            self.state = state;
            self.effects.push(Effect::JobEnded);
        }
    }

    /// Every attempt so far, in the order they were assigned.
    pub fn attempts(&self) -> &[AttemptRecord] {
        &self.attempts
    }

    /// The workers that ever registered.
    pub fn workers(&self) -> &BTreeMap<WorkerId, WorkerInfo> {
        &self.workers
    }

    /// (done, total) tasks of a phase.
    pub fn progress(&self, phase: Phase) -> (u32, u32) {
        match phase {
            Phase::Map => (self.maps_done, self.config.map_tasks),
            Phase::Reduce => (self.reduces_done, self.config.reduce_tasks),
        }
    }

    /// Where each task of a phase stands, and how many records its running attempts have
    /// processed (the furthest of them), in task order.
    pub fn task_statuses(&self, phase: Phase) -> Vec<(TaskStatus, u64)> {
        self.tasks(phase)
            .iter()
            .map(|t| match &t.state {
                TaskState::Idle => (TaskStatus::Idle, 0),
                TaskState::Running(list) => (TaskStatus::Running, list.iter().map(|r| r.progress).max().unwrap_or(0)),
                TaskState::Done { .. } => (TaskStatus::Done, t.counters.input_records),
            })
            .collect()
    }

    /// Each task's last status message (empty if none), in task order.
    pub fn status_messages(&self, phase: Phase) -> Vec<&str> {
        self.tasks(phase).iter().map(|t| t.status.as_str()).collect()
    }

    /// A running attempt reports its status message; ignored from an attempt that is not
    /// running on `worker`.
    pub fn set_status(&mut self, worker: WorkerId, id: AttemptId, status: String) {
        if self.running(id, worker).is_some()
            && let Some(task) = self.task_mut(id.task)
        {
            task.status = status;
        }
    }

    /// Sum of the counters of the committed attempts of a phase.
    pub fn counters(&self, phase: Phase) -> TaskCounters {
        let mut total = TaskCounters::default();
        for t in self.tasks(phase) {
            if matches!(t.state, TaskState::Done { .. }) {
                total += &t.counters;
            }
        }
        total
    }

    /// The counters of a task's committed attempt; `None` while it has none.
    pub fn committed_counters(&self, task: TaskId) -> Option<&TaskCounters> {
        let t = self.tasks(task.phase).get(task.index as usize)?;
        matches!(t.state, TaskState::Done { .. }).then_some(&t.counters)
    }

    fn tasks(&self, phase: Phase) -> &[Task] {
        match phase {
            Phase::Map => &self.maps,
            Phase::Reduce => &self.reduces,
        }
    }

    fn task_mut(&mut self, id: TaskId) -> Option<&mut Task> {
        match id.phase {
            Phase::Map => self.maps.get_mut(id.index as usize),
            Phase::Reduce => self.reduces.get_mut(id.index as usize),
        }
    }

    /// A worker joins. Returns its id.
    pub fn register(&mut self, name: String, now: Millis) -> WorkerId {
        let id = self.workers.keys().next_back().map_or(self.config.first_worker_id, |last| last + 1);
        self.workers.insert(id, WorkerInfo { name, last_seen_ms: now, alive: true });
        id
    }

    /// Marks a task as committed by an earlier coordinator of this job (read from its
    /// journal), before any worker registers: it will not run again unless its output is lost.
    /// Returns false for a task this job does not have, one already done, or a map task without
    /// its output's location (but in a map-only job, whose map tasks' output is a part file).
    pub fn restore(
        &mut self,
        task: TaskId,
        attempt: u32,
        map_output: Option<MapOutputLocation>,
        counters: TaskCounters,
    ) -> bool {
        // A map task's output is its map output file, except in a map-only job, where its
        // output is its part file in OUT.
        if task.phase == Phase::Map && map_output.is_none() && self.config.reduce_tasks > 0 {
            return false;
        }
        let Some(t) = self.task_mut(task) else { return false };
        if !matches!(t.state, TaskState::Idle) {
            return false;
        }
        t.state = TaskState::Done { map_output: map_output.map(Arc::new), attempt, worker: 0, attempt_index: None };
        t.next_attempt = t.next_attempt.max(attempt.saturating_add(1));
        t.counters = counters;
        if task.phase == Phase::Map {
            self.reduce_inputs = None;
        }
        self.index[task.phase as usize].idle.remove(&task.index);
        match task.phase {
            Phase::Map => self.maps_done += 1,
            Phase::Reduce => self.reduces_done += 1,
        }
        self.check_done();
        true
    }

    /// True if `worker` registered with this coordinator.
    pub fn knows(&self, worker: WorkerId) -> bool {
        self.workers.contains_key(&worker)
    }

    /// Marks a worker as heard from. Returns false for a worker this job does not know.
    fn seen(&mut self, worker: WorkerId, now: Millis) -> bool {
        match self.workers.get_mut(&worker) {
            Some(w) => {
                w.last_seen_ms = now;
                w.alive = true;
                true
            }
            None => false,
        }
    }

    /// A worker asks for work.
    pub fn request_task(&mut self, worker: WorkerId, now: Millis) -> Assignment {
        if !self.seen(worker, now) {
            return Assignment::Exit;
        }
        match self.state {
            JobState::Running => {}
            JobState::TasksDone => return Assignment::Wait,
            JobState::Succeeded | JobState::Failed(_) => return Assignment::Exit,
        }
        let phase = if self.maps_done < self.config.map_tasks { Phase::Map } else { Phase::Reduce };
        let (index, speculative) = match self.first_idle(phase) {
            Some(index) => (index, false),
            None => match self.speculation_candidate(phase, worker, now) {
                Some(index) => (index, true),
                None => return Assignment::Wait,
            },
        };
        let id = TaskId { phase, index: index as u32 };
        let ix = &mut self.index[phase as usize];
        ix.idle.remove(&id.index);
        ix.running.insert(id.index);
        let attempt_index = self.attempts.len();
        let task = self.task_mut(id).expect("index found above");
        let attempt = task.next_attempt;
        task.next_attempt += 1;
        let running = Running {
            attempt,
            worker,
            attempt_index,
            start_ms: now,
            last_progress_ms: now,
            progress: 0,
            rate: 0.0,
            rated_ms: now,
            commit_granted: false,
        };
        match &mut task.state {
            TaskState::Running(list) => list.push(running),
            state => *state = TaskState::Running(vec![running]),
        }
        let skip_records =
            task.bad_records.iter().filter(|&(_, &n)| n >= SKIP_AFTER).map(|(&number, _)| number).collect();
        let attempt = AttemptId { task: id, attempt };
        self.attempts.push(AttemptRecord {
            id: attempt,
            worker,
            speculative,
            start_ms: now,
            end_ms: None,
            outcome: Outcome::Running,
        });
        let map_outputs = match phase {
            Phase::Map => Arc::from([]),
            Phase::Reduce => self.reduce_inputs(),
        };
        Assignment::Run { attempt, map_outputs, skip_records }
    }

    /// The committed map outputs, in map task order: the shared list, rebuilt only if a map
    /// output changed since it was built. Called only when every map task is done.
    fn reduce_inputs(&mut self) -> MapOutputList {
        let maps = &self.maps;
        self.reduce_inputs
            .get_or_insert_with(|| {
                maps.iter()
                    .map(|t| match &t.state {
                        TaskState::Done { map_output: Some(output), .. } => output.clone(),
                        _ => unreachable!("reduces start only when every map is done, with its output"),
                    })
                    .collect()
            })
            .clone()
    }

    /// The task of `phase` most worth a backup attempt on `worker`, if any: of the tasks with
    /// one attempt running, not on this worker, the one with the most time left, if that is
    /// more than a fresh attempt is expected to take (the mean of the phase's committed
    /// attempts). Time left is estimated from the attempt's recent rate of progress, its
    /// progress so far against the mean progress of the committed attempts; an attempt that has reported none
    /// is a candidate once it has run `SPECULATION_FACTOR` times the mean.
    fn speculation_candidate(&self, phase: Phase, worker: WorkerId, now: Millis) -> Option<usize> {
        if !self.config.tolerance.speculative {
            return None;
        }
        let ix = &self.index[phase as usize];
        if ix.committed == 0 {
            return None;
        }
        let mean = ix.committed_ms / ix.committed;
        let expected = ix.committed_progress / ix.committed;
        let no_progress_after = (mean * SPECULATION_FACTOR).max(SPECULATION_MIN_MS);
        let tasks = self.tasks(phase);
        let close = ix.running.len() * CLOSE_TO_THE_END <= tasks.len();
        ix.running
            .iter()
            .map(|&i| i as usize)
            .filter_map(|i| match tasks[i].running() {
                [only] if only.worker != worker && now - only.start_ms > SPECULATION_MIN_MS => {
                    let ran = now - only.start_ms;
                    // At its recent rate, as of its last report, less the time since.
                    let estimate = time_left(only.progress, expected, only.rate)
                        .map(|left| left.saturating_sub(now - only.rated_ms));
                    let slow = ran > no_progress_after;
                    let left = estimate.unwrap_or(ran).max(if slow { ran } else { 0 });
                    let worth =
                        slow || estimate.is_some_and(|left| left > mean) || (close && left > SPECULATION_MIN_MS);
                    worth.then_some((left, i))
                }
                _ => None,
            })
            .max()
            .map(|(_, i)| i)
    }

    /// The lowest idle task of `phase`, dropping entries of tasks that left idle.
    fn first_idle(&mut self, phase: Phase) -> Option<usize> {
        let tasks = match phase {
            Phase::Map => &self.maps,
            Phase::Reduce => &self.reduces,
        };
        let idle = &mut self.index[phase as usize].idle;
        while let Some(&i) = idle.first() {
            if matches!(tasks[i as usize].state, TaskState::Idle) {
                return Some(i as usize);
            }
            idle.pop_first();
        }
        None
    }

    /// The running tasks of a phase, in task order.
    fn running_tasks(&self, phase: Phase) -> impl Iterator<Item = (TaskId, &[Running])> {
        let tasks = self.tasks(phase);
        self.index[phase as usize]
            .running
            .iter()
            .map(move |&index| (TaskId { phase, index }, tasks[index as usize].running()))
    }

    /// A worker says it is alive, and how far its running attempt has got: its input records
    /// and bytes so far, summed (the measure of progress for the task timeout and for
    /// speculation, which compares it with the committed attempts' `input_records +
    /// input_bytes`).
    pub fn heartbeat(&mut self, worker: WorkerId, running: Option<(AttemptId, u64)>, now: Millis) -> HeartbeatReply {
        if !self.seen(worker, now) {
            return HeartbeatReply { known: false, cancel: Vec::new() };
        }
        let mut cancel = Vec::new();
        if let Some((id, progress)) = running {
            let task = self.task_mut(id.task);
            let current = match task.map(|t| &mut t.state) {
                Some(TaskState::Running(list)) => {
                    list.iter_mut().find(|r| r.attempt == id.attempt && r.worker == worker)
                }
                _ => None,
            };
            match current {
                Some(r) => {
                    if now > r.rated_ms {
                        let rate = progress.saturating_sub(r.progress) as f64 / (now - r.rated_ms) as f64;
                        r.rate = if r.progress == 0 { rate } else { RATE_WEIGHT * rate + (1.0 - RATE_WEIGHT) * r.rate };
                        r.rated_ms = now;
                    }
                    if progress > r.progress {
                        r.progress = progress;
                        r.last_progress_ms = now;
                    }
                }
                None => cancel.push(id),
            }
        }
        HeartbeatReply { known: true, cancel }
    }

    fn running(&self, id: AttemptId, worker: WorkerId) -> Option<Running> {
        self.tasks(id.task.phase)
            .get(id.task.index as usize)?
            .running()
            .iter()
            .find(|r| r.attempt == id.attempt && r.worker == worker)
            .copied()
    }

    /// A reduce attempt asks to move its output into place. Granted to exactly one attempt
    /// of each task.
    pub fn request_commit(&mut self, worker: WorkerId, id: AttemptId, now: Millis) -> bool {
        self.seen(worker, now);
        if self.state != JobState::Running || self.running(id, worker).is_none() {
            return false;
        }
        let Some(Task { state: TaskState::Running(list), .. }) = self.task_mut(id.task) else { return false };
        if list.iter().any(|r| r.commit_granted && r.attempt != id.attempt) {
            return false;
        }
        for r in list.iter_mut() {
            r.commit_granted |= r.attempt == id.attempt;
        }
        true
    }

    /// An attempt finished; a map attempt's output is at `map_output` (a reduce attempt's is its
    /// part file, in place). Returns true if this attempt is now the task's committed attempt,
    /// and gives [`Effect::TaskCommitted`]; false for a stale or duplicate report, whose output
    /// the caller discards, or a map attempt without its output's location.
    pub fn complete(
        &mut self,
        worker: WorkerId,
        id: AttemptId,
        map_output: Option<MapOutputLocation>,
        counters: TaskCounters,
        now: Millis,
    ) -> bool {
        self.seen(worker, now);
        let Some(running) = self.running(id, worker) else { return false };
        // A reduce attempt, or a map attempt of a map-only job, writes into the output: it needs
        // the grant. Any other map attempt needs its output's location.
        let allowed = match id.task.phase {
            Phase::Map if self.config.reduce_tasks == 0 => running.commit_granted,
            Phase::Map => map_output.is_some(),
            Phase::Reduce => running.commit_granted,
        };
        if self.state != JobState::Running || !allowed {
            return false;
        }
        let map_output = map_output.map(Arc::new);
        let task = self.task_mut(id.task).expect("running attempt has a task");
        let done = TaskState::Done {
            map_output: map_output.clone(),
            attempt: id.attempt,
            worker,
            attempt_index: Some(running.attempt_index),
        };
        let TaskState::Running(list) = std::mem::replace(&mut task.state, done) else {
            unreachable!("checked by running()")
        };
        let counters_progress = final_progress(id.task.phase, &counters);
        task.counters = counters.clone();
        self.effects.push(Effect::TaskCommitted { task: id.task, attempt: id.attempt, map_output, counters });
        let ix = &mut self.index[id.task.phase as usize];
        ix.running.remove(&id.task.index);
        ix.committed_ms += now - running.start_ms;
        ix.committed_progress += counters_progress;
        ix.committed += 1;
        for r in list {
            let record = &mut self.attempts[r.attempt_index];
            record.end_ms = Some(now);
            record.outcome = if r.attempt == id.attempt { Outcome::Committed } else { Outcome::Discarded };
        }
        match id.task.phase {
            Phase::Map => {
                self.maps_done += 1;
                self.reduce_inputs = None;
            }
            Phase::Reduce => self.reduces_done += 1,
        }
        self.check_done();
        true
    }

    /// Enters `TasksDone` once every task is done, asking for the job commit.
    fn check_done(&mut self) {
        if self.state == JobState::Running
            && self.maps_done == self.config.map_tasks
            && self.reduces_done == self.config.reduce_tasks
        {
            self.state = JobState::TasksDone;
            // The part files: the reduce tasks', or a map-only job's map tasks'.
            let parts = if self.config.reduce_tasks == 0 { &self.maps } else { &self.reduces };
            let part_bytes = parts.iter().map(|t| t.counters.output_bytes).collect();
            self.effects.push(Effect::CommitJob { part_bytes });
        }
    }

    /// An attempt failed. After `max_attempts` counted failures the job fails.
    pub fn fail(&mut self, worker: WorkerId, id: AttemptId, failure: Failure, now: Millis) {
        self.seen(worker, now);
        let Some(running) = self.running(id, worker) else { return };
        if let Some(map) = failure.lost_map_task {
            // The reducer is not to blame: its input was. Re-execute the map task.
            self.end_attempt(id.task, running, Outcome::Lost, now);
            self.map_output_lost(map, failure.lost_map_attempt, !failure.lost_map_unreachable, failure.error);
            return;
        }
        self.end_attempt(id.task, running, Outcome::Failed(failure.error.clone()), now);
        let skip = self.config.tolerance.skip_bad_records;
        let task = self.task_mut(id.task).expect("running attempt has a task");
        match failure.bad_record {
            Some(number) if skip => *task.bad_records.entry(number).or_default() += 1,
            _ => task.failures += 1,
        }
        task.last_error = failure.error;
        let (failures, last_error) = (task.failures, task.last_error.clone());
        self.check_failures(id.task, failures, last_error);
    }

    fn check_failures(&mut self, task: TaskId, attempts: u32, last_error: String) {
        if attempts >= self.config.tolerance.max_attempts && self.state == JobState::Running {
            self.end(JobState::Failed(JobFailure { task: Some(task), attempts, last_error }));
        }
    }

    /// Attempt `attempt` of map task `map` committed an output that cannot be read: the map
    /// task runs again. A report about an older attempt's output is stale and ignored. A
    /// corrupt output counts as a failure of the map task; an unreachable one does not.
    fn map_output_lost(&mut self, map: u32, attempt: u32, counts: bool, error: String) {
        let id = TaskId { phase: Phase::Map, index: map };
        let Some(task) = self.task_mut(id) else { return };
        let TaskState::Done { attempt: committed, attempt_index, .. } = task.state else { return };
        if committed != attempt {
            return;
        }
        task.state = TaskState::Idle;
        let progress = final_progress(Phase::Map, &task.counters);
        if counts {
            task.failures += 1;
            task.last_error = error;
        }
        let (failures, last_error) = (task.failures, task.last_error.clone());
        self.maps_done -= 1;
        self.reduce_inputs = None;
        self.index[Phase::Map as usize].idle.insert(map);
        if let Some(index) = attempt_index {
            let lost = &mut self.attempts[index];
            lost.outcome = Outcome::Lost;
            let took = lost.end_ms.unwrap_or(lost.start_ms) - lost.start_ms;
            let ix = &mut self.index[Phase::Map as usize];
            ix.committed_ms -= took;
            ix.committed_progress -= progress;
            ix.committed -= 1;
        }
        self.check_failures(id, failures, last_error);
    }

    /// Removes a running attempt; its task goes back to idle if no other attempt runs.
    fn end_attempt(&mut self, id: TaskId, running: Running, outcome: Outcome, now: Millis) {
        let record = &mut self.attempts[running.attempt_index];
        record.end_ms = Some(now);
        record.outcome = outcome;
        let task = self.task_mut(id).expect("running attempt has a task");
        if let TaskState::Running(list) = &mut task.state {
            list.retain(|r| r.attempt != running.attempt);
            if list.is_empty() {
                task.state = TaskState::Idle;
                let ix = &mut self.index[id.phase as usize];
                ix.running.remove(&id.index);
                ix.idle.insert(id.index);
            }
        }
    }

    /// Time passed: workers silent for longer than the worker timeout are declared dead and
    /// their attempts lost; attempts without progress for the task timeout are abandoned.
    pub fn tick(&mut self, now: Millis) -> TickOutcome {
        let timeout = self.config.tolerance.worker_timeout.as_millis() as Millis;
        let dead_workers: Vec<WorkerId> = self
            .workers
            .iter()
            .filter(|(_, w)| w.alive && now.saturating_sub(w.last_seen_ms) > timeout)
            .map(|(&id, _)| id)
            .collect();
        for &worker in &dead_workers {
            self.worker_lost(worker, now);
        }
        let task_timeout = self.config.tolerance.task_timeout.as_millis() as Millis;
        let mut hung = Vec::new();
        for phase in [Phase::Map, Phase::Reduce] {
            for (task, running) in self.running_tasks(phase) {
                for r in running {
                    if now.saturating_sub(r.last_progress_ms) > task_timeout {
                        hung.push((task, *r));
                    }
                }
            }
        }
        let mut abandoned = Vec::new();
        for (task, r) in hung {
            let id = AttemptId { task, attempt: r.attempt };
            let error = format!("no progress for {:.1} s (task timeout)", task_timeout as f64 / 1000.0);
            self.fail(r.worker, id, Failure { error, ..Failure::default() }, now);
            abandoned.push(id);
        }
        TickOutcome { dead_workers, abandoned }
    }

    /// A worker is gone (declared dead, or its process exited): its running attempts are lost.
    pub fn worker_lost(&mut self, worker: WorkerId, now: Millis) {
        if let Some(w) = self.workers.get_mut(&worker) {
            w.alive = false;
        }
        let mut lost = Vec::new();
        for phase in [Phase::Map, Phase::Reduce] {
            for (task, running) in self.running_tasks(phase) {
                for r in running.iter().filter(|r| r.worker == worker) {
                    lost.push((task, *r));
                }
            }
        }
        for (task, running) in lost {
            self.end_attempt(task, running, Outcome::Lost, now);
        }
        if self.config.rerun_maps_of_lost_workers {
            let outputs: Vec<(u32, u32)> =
                self.map_outputs_of(worker).into_iter().map(|o| (o.map_task, o.attempt)).collect();
            self.map_outputs_gone(&outputs);
        }
    }

    /// The committed map outputs that `worker` wrote, while the job runs and a reduce task is
    /// left to read them; empty otherwise.
    pub fn map_outputs_of(&self, worker: WorkerId) -> Vec<Arc<MapOutputLocation>> {
        if self.state != JobState::Running || self.reduces_done >= self.config.reduce_tasks {
            return Vec::new();
        }
        self.maps
            .iter()
            .filter_map(|t| match &t.state {
                TaskState::Done { worker: w, map_output: Some(output), .. } if *w == worker => Some(output.clone()),
                _ => None,
            })
            .collect()
    }

    /// Map outputs that are gone (the worker that held them exited, or its host is lost), as
    /// (map task, attempt): each of these tasks goes back to idle at once, without counting a
    /// failure, rather than when a reducer fails to read it. An output that is no longer its
    /// task's committed one is ignored.
    pub fn map_outputs_gone(&mut self, outputs: &[(u32, u32)]) {
        if self.state != JobState::Running || self.reduces_done >= self.config.reduce_tasks {
            return;
        }
        for &(map, attempt) in outputs {
            self.map_output_lost(map, attempt, false, String::new());
        }
    }

    /// The job commit that [`Effect::CommitJob`] asked for is done: the job succeeded.
    pub fn job_committed(&mut self) {
        if self.state == JobState::TasksDone {
            self.end(JobState::Succeeded);
        }
    }

    /// The job commit that [`Effect::CommitJob`] asked for failed: the job fails with `reason`.
    pub fn job_commit_failed(&mut self, reason: String) {
        if self.state == JobState::TasksDone {
            self.end(JobState::Failed(JobFailure { task: None, attempts: 0, last_error: reason }));
        }
    }

    /// The job is stopped from outside (e.g. Ctrl-C); workers are told to exit. Ignored while
    /// the job commit runs (`TasksDone`): its outcome ends the job.
    pub fn abort(&mut self, reason: String) {
        if self.state == JobState::Running {
            self.end(JobState::Failed(JobFailure { task: None, attempts: 0, last_error: reason }));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn scheduler(maps: u32, reduces: u32) -> Scheduler {
        Scheduler::new(SchedulerConfig {
            map_tasks: maps,
            reduce_tasks: reduces,
            tolerance: FaultTolerance { max_attempts: 3, speculative: false, ..FaultTolerance::default() },
            ..SchedulerConfig::default()
        })
    }

    /// The paths of the map outputs an assignment lists.
    fn run(a: Assignment) -> (AttemptId, Vec<String>) {
        match a {
            Assignment::Run { attempt, map_outputs, .. } => {
                (attempt, map_outputs.iter().map(|o| o.path.clone()).collect())
            }
            other => panic!("expected a task, got {other:?}"),
        }
    }

    /// A map output's location at `path`.
    fn location(map_task: u32, attempt: u32, path: &str) -> MapOutputLocation {
        MapOutputLocation { map_task, attempt, host: "h".into(), path: path.into(), shuffle_url: "http://h:1".into() }
    }

    /// What a completion of attempt `id` reports: a map attempt's output at `out-TASK`.
    fn output(id: AttemptId) -> Option<MapOutputLocation> {
        (id.task.phase == Phase::Map).then(|| location(id.task.index, id.attempt, &format!("out-{}", id.task.index)))
    }

    fn finish(s: &mut Scheduler, w: WorkerId, id: AttemptId, now: Millis) -> bool {
        if id.task.phase == Phase::Reduce {
            assert!(s.request_commit(w, id, now));
        }
        s.complete(w, id, output(id), TaskCounters::default(), now)
    }

    #[test]
    fn map_only_maps_commit_through_the_grant_once() {
        let mut s = Scheduler::new(SchedulerConfig { map_tasks: 1, reduce_tasks: 0, ..SchedulerConfig::default() });
        let (a, b) = (s.register("a".into(), 0), s.register("b".into(), 0));
        let (first, _) = run(s.request_task(a, 0));
        assert_eq!(first.task.phase, Phase::Map);
        // Its output is a part file: no completion without the grant.
        assert!(!s.complete(a, first, None, TaskCounters::default(), 1));
        assert!(s.request_commit(a, first, 2));
        assert!(s.complete(a, first, None, TaskCounters::default(), 3));
        assert_eq!(*s.state(), JobState::TasksDone);
        assert!(matches!(s.request_task(b, 4), Assignment::Wait), "no reduce task to run");
    }

    #[test]
    fn restored_tasks_do_not_run_again() {
        let mut s = Scheduler::new(SchedulerConfig {
            map_tasks: 3,
            reduce_tasks: 1,
            first_worker_id: 1 << 32,
            ..SchedulerConfig::default()
        });
        let map = |index| TaskId { phase: Phase::Map, index };
        assert!(s.restore(map(0), 2, Some(location(0, 2, "out-0")), TaskCounters::default()));
        assert!(s.restore(map(2), 0, Some(location(2, 0, "out-2")), TaskCounters::default()));
        assert!(!s.restore(map(2), 0, Some(location(2, 0, "again")), TaskCounters::default()), "already done");
        assert!(!s.restore(map(3), 0, Some(location(3, 0, "none")), TaskCounters::default()), "no such task");
        assert!(!s.restore(map(1), 0, None, TaskCounters::default()), "a map task without its output");
        let mut map_only =
            Scheduler::new(SchedulerConfig { map_tasks: 2, reduce_tasks: 0, ..SchedulerConfig::default() });
        assert!(map_only.restore(map(1), 0, None, TaskCounters::default()), "a map-only job's part file is its output");
        assert_eq!(map_only.progress(Phase::Map), (1, 2));
        assert_eq!(s.progress(Phase::Map), (2, 3));
        let w = s.register("w".into(), 0);
        assert_eq!(w, 1 << 32, "ids start past the earlier coordinators'");
        assert!(!s.knows(1));
        let (m1, _) = run(s.request_task(w, 0));
        assert_eq!(m1.task, map(1));
        assert!(finish(&mut s, w, m1, 1));
        let (r0, outputs) = run(s.request_task(w, 2));
        assert_eq!(r0.task.phase, Phase::Reduce);
        assert_eq!(outputs, ["out-0", "out-1", "out-2"]);
        // A restored map whose output is lost runs again, with a new attempt number.
        let lost = Failure { lost_map_task: Some(0), lost_map_attempt: 2, ..Failure::default() };
        s.fail(w, r0, lost, 3);
        let (again, _) = run(s.request_task(w, 4));
        assert_eq!((again.task, again.attempt), (map(0), 3));
        assert!(finish(&mut s, w, again, 5));
        let (r0, _) = run(s.request_task(w, 6));
        assert!(finish(&mut s, w, r0, 7));
        assert_eq!(*s.state(), JobState::TasksDone);
    }

    #[test]
    fn a_job_restored_whole_is_done_at_once() {
        let mut s = scheduler(1, 1);
        assert!(s.restore(
            TaskId { phase: Phase::Map, index: 0 },
            0,
            Some(location(0, 0, "m")),
            TaskCounters::default()
        ));
        assert_eq!(*s.state(), JobState::Running);
        let counters = TaskCounters { output_bytes: 7, ..TaskCounters::default() };
        assert!(s.restore(TaskId { phase: Phase::Reduce, index: 0 }, 0, None, counters));
        assert_eq!(*s.state(), JobState::TasksDone);
        // Restored tasks were journaled already: only the job commit is asked for.
        assert_eq!(s.take_effects(), [Effect::CommitJob { part_bytes: vec![7] }]);
    }

    #[test]
    fn maps_then_reduces_then_exit() {
        let mut s = scheduler(2, 1);
        let w = s.register("w".into(), 0);
        let (m0, _) = run(s.request_task(w, 0));
        let (m1, _) = run(s.request_task(w, 0));
        assert_eq!((m0.task.index, m1.task.index), (0, 1));
        // No reduce before every map is done.
        assert_eq!(s.request_task(w, 1), Assignment::Wait);
        assert!(finish(&mut s, w, m0, 2));
        assert_eq!(s.request_task(w, 2), Assignment::Wait);
        assert!(finish(&mut s, w, m1, 3));
        let (r0, outputs) = run(s.request_task(w, 4));
        assert_eq!(r0.task.phase, Phase::Reduce);
        assert_eq!(outputs, ["out-0", "out-1"]);
        assert!(finish(&mut s, w, r0, 5));
        assert_eq!(s.state(), &JobState::TasksDone);
        // Until the job commit, workers wait rather than exit.
        assert_eq!(s.request_task(w, 6), Assignment::Wait);
        s.job_committed();
        assert_eq!(s.request_task(w, 7), Assignment::Exit);
        assert_eq!(s.attempts().len(), 3);
        assert!(s.attempts().iter().all(|a| a.outcome == Outcome::Committed));
    }

    #[test]
    fn dead_worker_loses_its_attempt_and_stale_reports_are_ignored() {
        let mut s = scheduler(1, 1);
        let a = s.register("a".into(), 0);
        let b = s.register("b".into(), 0);
        let (first, _) = run(s.request_task(a, 0));
        s.heartbeat(b, None, 10_000);
        assert_eq!(s.tick(10_001).dead_workers, vec![a]);
        let (second, _) = run(s.request_task(b, 10_001));
        assert_eq!(second.task, first.task);
        assert_ne!(second.attempt, first.attempt);
        // The dead worker's late report is stale.
        assert!(!s.complete(a, first, output(first), TaskCounters::default(), 10_002));
        assert!(finish(&mut s, b, second, 10_003));
        // A duplicate report of the committed attempt is ignored too.
        assert!(!finish_again(&mut s, b, second));
        assert_eq!(s.attempts()[0].outcome, Outcome::Lost);
    }

    fn finish_again(s: &mut Scheduler, w: WorkerId, id: AttemptId) -> bool {
        s.complete(w, id, output(id), TaskCounters::default(), 20_000)
    }

    #[test]
    fn one_commit_per_reduce_task() {
        let mut s = scheduler(0, 1);
        let a = s.register("a".into(), 0);
        let b = s.register("b".into(), 0);
        let (first, _) = run(s.request_task(a, 0));
        // Worker a is declared dead, b reruns the task, then a comes back.
        s.heartbeat(b, None, 20_000);
        s.tick(20_000);
        let (second, _) = run(s.request_task(b, 20_000));
        assert!(!s.request_commit(a, first, 20_001), "a lost attempt cannot commit");
        assert!(s.request_commit(b, second, 20_002));
        assert!(s.request_commit(b, second, 20_003), "granting is idempotent for the winner");
        // Completion without a grant is refused.
        assert!(!s.complete(a, first, None, TaskCounters::default(), 20_004));
        assert!(s.complete(b, second, None, TaskCounters::default(), 20_005));
    }

    #[test]
    fn failures_retry_then_fail_the_job() {
        let mut s = scheduler(1, 1);
        let w = s.register("w".into(), 0);
        for i in 0..3 {
            let (id, _) = run(s.request_task(w, i));
            assert_eq!(id.attempt, i as u32);
            s.fail(w, id, Failure { error: format!("boom {i}"), ..Failure::default() }, i);
        }
        match s.state() {
            JobState::Failed(f) => {
                assert_eq!(f.task, Some(TaskId { phase: Phase::Map, index: 0 }));
                assert_eq!(f.attempts, 3);
                assert_eq!(f.last_error, "boom 2");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.request_task(w, 5), Assignment::Exit);
    }

    #[test]
    fn empty_job_is_done_at_once() {
        let s = scheduler(0, 0);
        assert_eq!(s.state(), &JobState::TasksDone);
    }

    #[test]
    fn unknown_worker_is_told_to_exit() {
        let mut s = scheduler(1, 1);
        assert_eq!(s.request_task(42, 0), Assignment::Exit);
    }

    fn with(config: SchedulerConfig) -> Scheduler {
        Scheduler::new(config)
    }

    /// Registers workers a and b, and has each run map 0 and map 1 (at 0) and commit it (at
    /// 1): returns a, b and their maps' attempts.
    fn two_workers_one_map_each(s: &mut Scheduler) -> (WorkerId, WorkerId, AttemptId, AttemptId) {
        let a = s.register("a".into(), 0);
        let b = s.register("b".into(), 0);
        let (m0, _) = run(s.request_task(a, 0));
        let (m1, _) = run(s.request_task(b, 0));
        assert!(finish(s, a, m0, 1));
        assert!(finish(s, b, m1, 1));
        (a, b, m0, m1)
    }

    #[test]
    fn backup_attempt_for_a_straggler_first_commit_wins() {
        let mut s = with(SchedulerConfig { map_tasks: 2, reduce_tasks: 1, ..SchedulerConfig::default() });
        let fast = s.register("fast".into(), 0);
        let slow = s.register("slow".into(), 0);
        let (m0, _) = run(s.request_task(slow, 0));
        let (m1, _) = run(s.request_task(fast, 0));
        assert!(finish(&mut s, fast, m1, 100));
        // Too early for a backup: the straggler has not run long enough.
        assert_eq!(s.request_task(fast, 500), Assignment::Wait);
        s.heartbeat(slow, Some((m0, 1)), 1_500);
        let (backup, _) = run(s.request_task(fast, 1_500));
        assert_eq!(backup.task, m0.task);
        assert!(s.attempts().last().unwrap().speculative);
        // At most one backup per task, and never on the straggler's own worker.
        assert_eq!(s.request_task(slow, 1_600), Assignment::Wait);
        assert!(finish(&mut s, fast, backup, 1_700));
        // The original is now told to cancel, and its late report is refused.
        assert_eq!(s.heartbeat(slow, Some((m0, 2)), 1_800).cancel, vec![m0]);
        assert!(!s.complete(slow, m0, output(m0), TaskCounters::default(), 1_900));
        assert_eq!(s.attempts()[0].outcome, Outcome::Discarded);
    }

    /// Completes a map attempt that processed 1,000 records.
    fn finish_thousand(s: &mut Scheduler, w: WorkerId, id: AttemptId, now: Millis) {
        let counters = TaskCounters { input_records: 1_000, ..TaskCounters::default() };
        assert!(s.complete(w, id, output(id), counters, now));
    }

    #[test]
    fn a_backup_goes_to_the_attempt_whose_rate_leaves_the_most_time() {
        // Four maps; two commit after 10 s with 1,000 records each: a fresh attempt is expected
        // to take 10 s and process 1,000.
        let mut s = with(SchedulerConfig { map_tasks: 4, reduce_tasks: 1, ..SchedulerConfig::default() });
        let w: Vec<WorkerId> = (0..4).map(|i| s.register(format!("w{i}"), 0)).collect();
        let m: Vec<AttemptId> = w.iter().map(|&w| run(s.request_task(w, 0)).0).collect();
        finish_thousand(&mut s, w[1], m[1], 10_000);
        finish_thousand(&mut s, w[2], m[2], 10_000);
        // m0 has done 200 in 10 s (40 s left at its rate); m3 900 in 9 s (1 s left). Neither has
        // run twice the mean, the rule for attempts that report nothing.
        s.heartbeat(w[0], Some((m[0], 200)), 10_000);
        s.heartbeat(w[3], Some((m[3], 900)), 9_000);
        let (backup, _) = run(s.request_task(w[1], 10_500));
        assert_eq!(backup.task, m[0].task);
        assert!(s.attempts().last().unwrap().speculative);
        // m3 will be done before a fresh attempt would: no backup for it.
        assert_eq!(s.request_task(w[2], 10_500), Assignment::Wait);
        // It stalls: each heartbeat without progress lowers its rate, until a fresh attempt is
        // the better bet, before it has run twice the mean.
        for now in (10_000..=15_000).step_by(1_000) {
            s.heartbeat(w[3], Some((m[3], 900)), now);
            assert_eq!(s.request_task(w[2], now), Assignment::Wait);
        }
        s.heartbeat(w[3], Some((m[3], 900)), 16_000);
        let (backup, _) = run(s.request_task(w[2], 16_000));
        assert_eq!(backup.task, m[3].task);
    }

    #[test]
    fn close_to_the_end_every_attempt_with_time_left_gets_a_backup() {
        // Twenty maps; nineteen commit after 10 s. The last one's rate leaves it 6.7 s, less
        // than a fresh attempt's 10 s, but the phase is close to its end (1 task in 20 runs):
        // idle workers back it up, as the paper does.
        for (done, backup) in [(600, true), (990, false)] {
            let mut s = with(SchedulerConfig { map_tasks: 20, reduce_tasks: 1, ..SchedulerConfig::default() });
            let w: Vec<WorkerId> = (0..20).map(|i| s.register(format!("w{i}"), 0)).collect();
            let m: Vec<AttemptId> = w.iter().map(|&w| run(s.request_task(w, 0)).0).collect();
            for i in 1..20 {
                finish_thousand(&mut s, w[i], m[i], 10_000);
            }
            s.heartbeat(w[0], Some((m[0], done)), 10_000);
            match s.request_task(w[1], 10_000) {
                Assignment::Run { attempt, .. } => assert!(backup && attempt.task == m[0].task, "{done}"),
                // 990 of 1,000: 101 ms left, not worth a backup.
                other => assert!(!backup && other == Assignment::Wait, "{done}: {other:?}"),
            }
        }
    }

    #[test]
    fn no_backup_when_speculation_is_off() {
        let mut s = scheduler(2, 1);
        let a = s.register("a".into(), 0);
        let b = s.register("b".into(), 0);
        let (_m0, _) = run(s.request_task(a, 0));
        let (m1, _) = run(s.request_task(b, 0));
        assert!(finish(&mut s, b, m1, 10));
        assert_eq!(s.request_task(b, 9_000), Assignment::Wait);
    }

    #[test]
    fn attempt_without_progress_is_abandoned_as_a_failure() {
        let mut s = with(SchedulerConfig {
            map_tasks: 1,
            reduce_tasks: 1,
            tolerance: FaultTolerance { task_timeout: Duration::from_secs(1), ..FaultTolerance::default() },
            ..Default::default()
        });
        let w = s.register("w".into(), 0);
        let (m0, _) = run(s.request_task(w, 0));
        s.heartbeat(w, Some((m0, 10)), 900);
        assert!(s.tick(1_500).abandoned.is_empty(), "progress at 900 ms keeps it alive");
        s.heartbeat(w, Some((m0, 10)), 1_800);
        assert_eq!(s.tick(1_901).abandoned, vec![m0]);
        assert!(matches!(s.attempts()[0].outcome, Outcome::Failed(_)));
        let (again, _) = run(s.request_task(w, 2_000));
        assert_eq!((again.task, again.attempt), (m0.task, 1));
        assert_eq!(s.heartbeat(w, Some((m0, 11)), 2_001).cancel, vec![m0]);
    }

    #[test]
    fn bad_record_is_skipped_after_two_failures() {
        let mut s = with(SchedulerConfig {
            map_tasks: 1,
            reduce_tasks: 1,
            tolerance: FaultTolerance { max_attempts: 2, skip_bad_records: true, ..FaultTolerance::default() },
            ..Default::default()
        });
        let w = s.register("w".into(), 0);
        for i in 0..2 {
            let Assignment::Run { attempt, skip_records, .. } = s.request_task(w, i) else { panic!() };
            assert!(skip_records.is_empty());
            s.fail(w, attempt, Failure { error: "panic".into(), bad_record: Some(42), ..Default::default() }, i);
        }
        assert_eq!(s.state(), &JobState::Running, "failures on a skippable record do not count");
        let Assignment::Run { skip_records, .. } = s.request_task(w, 5) else { panic!() };
        assert_eq!(skip_records, [42]);
    }

    #[test]
    fn unreadable_map_output_reruns_the_map() {
        let mut s = scheduler(2, 1);
        let w = s.register("w".into(), 0);
        let (m0, _) = run(s.request_task(w, 0));
        let (m1, _) = run(s.request_task(w, 0));
        assert!(finish(&mut s, w, m0, 1));
        assert!(finish(&mut s, w, m1, 1));
        let (r0, _) = run(s.request_task(w, 2));
        let failure = Failure { error: "corrupt".into(), lost_map_task: Some(1), ..Default::default() };
        s.fail(w, r0, failure, 3);
        assert_eq!(s.attempts()[2].outcome, Outcome::Lost);
        let (again, _) = run(s.request_task(w, 4));
        assert_eq!((again.task, again.attempt), (m1.task, 1), "map 1 runs again before any reduce");
        assert!(finish(&mut s, w, again, 5));
        let (r0b, outputs) = run(s.request_task(w, 6));
        assert_eq!(r0b.task, r0.task);
        assert_eq!(outputs, ["out-0", "out-1"]);
    }

    #[test]
    fn a_stale_lost_output_report_is_ignored_and_unreachable_outputs_do_not_count() {
        let mut s = with(SchedulerConfig {
            map_tasks: 1,
            reduce_tasks: 2,
            tolerance: FaultTolerance { max_attempts: 1, ..FaultTolerance::default() },
            ..Default::default()
        });
        let w = s.register("w".into(), 0);
        let (m0, _) = run(s.request_task(w, 0));
        assert!(finish(&mut s, w, m0, 1));
        let (r0, _) = run(s.request_task(w, 2));
        let (r1, _) = run(s.request_task(w, 2));
        let lost = |r| Failure {
            error: "unreachable".into(),
            lost_map_task: Some(0),
            lost_map_attempt: r,
            lost_map_unreachable: true,
            ..Default::default()
        };
        s.fail(w, r0, lost(0), 3);
        assert_eq!(s.state(), &JobState::Running, "an unreachable output is not the map's failure");
        let (m0b, _) = run(s.request_task(w, 4));
        assert_eq!((m0b.task, m0b.attempt), (m0.task, 1));
        assert!(finish(&mut s, w, m0b, 5));
        // r1 read attempt 0's output too; its late report must not throw away attempt 1's.
        s.fail(w, r1, lost(0), 6);
        let (again, outputs) = run(s.request_task(w, 7));
        assert_eq!(again.task.phase, Phase::Reduce, "map 0 stays done");
        assert_eq!(outputs, ["out-0"]);
    }

    /// The task `request_task` would pick, found as it was before the indexes: a scan of every
    /// task for an idle one, then of every attempt and task for a backup (`true`).
    /// The committed attempts of a phase, by a full scan: each one's duration, and the progress
    /// its task's counters account for.
    fn scanned_commits(s: &Scheduler, phase: Phase) -> Vec<(Millis, u64)> {
        s.attempts()
            .iter()
            .filter(|a| a.id.task.phase == phase && a.outcome == Outcome::Committed)
            .map(|a| {
                let counters = &s.tasks(phase)[a.id.task.index as usize].counters;
                (a.end_ms.unwrap_or(a.start_ms) - a.start_ms, final_progress(phase, counters))
            })
            .collect()
    }

    fn scanned_choice(s: &Scheduler, worker: WorkerId, now: Millis) -> Option<(TaskId, bool)> {
        if s.state != JobState::Running || !s.workers.contains_key(&worker) {
            return None;
        }
        let phase = if s.maps_done < s.config.map_tasks { Phase::Map } else { Phase::Reduce };
        let id = |i: usize| TaskId { phase, index: i as u32 };
        if let Some(i) = s.tasks(phase).iter().position(|t| matches!(t.state, TaskState::Idle)) {
            return Some((id(i), false));
        }
        if !s.config.tolerance.speculative {
            return None;
        }
        let commits = scanned_commits(s, phase);
        if commits.is_empty() {
            return None;
        }
        let mean = commits.iter().map(|c| c.0).sum::<Millis>() / commits.len() as Millis;
        let expected = commits.iter().map(|c| c.1).sum::<u64>() / commits.len() as u64;
        let running = s.tasks(phase).iter().filter(|t| !t.running().is_empty()).count();
        let close = running * CLOSE_TO_THE_END <= s.tasks(phase).len();
        s.tasks(phase)
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match t.running() {
                [only] if only.worker != worker && now - only.start_ms > SPECULATION_MIN_MS => {
                    let ran = now - only.start_ms;
                    let estimate = time_left(only.progress, expected, only.rate)
                        .map(|left| left.saturating_sub(now - only.rated_ms));
                    let slow = ran > (mean * SPECULATION_FACTOR).max(SPECULATION_MIN_MS);
                    let left = estimate.unwrap_or(ran).max(if slow { ran } else { 0 });
                    let worth = slow || estimate.is_some_and(|l| l > mean) || (close && left > SPECULATION_MIN_MS);
                    worth.then_some((left, i))
                }
                _ => None,
            })
            .max()
            .map(|(_, i)| (id(i), true))
    }

    #[test]
    fn indexes_pick_what_a_full_scan_picks() {
        // A small deterministic generator: the sequence is the same on every run.
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut assignments, mut backups) = (0, 0);
        for job in 0..200 {
            let mut s = with(SchedulerConfig {
                map_tasks: 1 + next(12) as u32,
                reduce_tasks: 1 + next(4) as u32,
                tolerance: FaultTolerance {
                    task_timeout: Duration::from_secs(3),
                    max_attempts: 1_000,
                    ..FaultTolerance::default()
                },
                rerun_maps_of_lost_workers: job % 2 == 0,
                ..SchedulerConfig::default()
            });
            let workers: Vec<WorkerId> = (0..4).map(|i| s.register(format!("w{i}"), 0)).collect();
            let mut now = 0;
            for _ in 0..300 {
                now += next(700);
                let w = workers[next(4) as usize];
                let running: Vec<(WorkerId, AttemptId)> =
                    s.attempts().iter().filter(|a| a.outcome == Outcome::Running).map(|a| (a.worker, a.id)).collect();
                let pick = (!running.is_empty()).then(|| running[next(running.len() as u64) as usize]);
                match (next(8), pick) {
                    (0..=2, _) => {
                        let expected = scanned_choice(&s, w, now);
                        let got = match s.request_task(w, now) {
                            Assignment::Run { attempt, .. } => {
                                assignments += 1;
                                let backup = s.attempts().last().is_some_and(|a| a.speculative);
                                backups += usize::from(backup);
                                Some((attempt.task, backup))
                            }
                            _ => None,
                        };
                        assert_eq!(got, expected, "job {job} at {now} ms");
                    }
                    (3..=4, Some((w, id))) => {
                        if id.task.phase == Phase::Reduce {
                            s.request_commit(w, id, now);
                        }
                        let counters = TaskCounters {
                            input_records: next(100),
                            input_bytes: next(10_000),
                            ..TaskCounters::default()
                        };
                        s.complete(w, id, output(id), counters, now);
                    }
                    (5, Some((w, id))) => {
                        let lost_map_task = (id.task.phase == Phase::Reduce && next(2) == 0).then(|| next(12) as u32);
                        let lost_map_attempt = lost_map_task.map_or(0, |m| {
                            s.attempts()
                                .iter()
                                .find(|a| {
                                    a.id.task == TaskId { phase: Phase::Map, index: m }
                                        && a.outcome == Outcome::Committed
                                })
                                .map_or(0, |a| a.id.attempt)
                        });
                        let failure =
                            Failure { error: "x".into(), lost_map_task, lost_map_attempt, ..Failure::default() };
                        s.fail(w, id, failure, now);
                    }
                    (6, _) => s.worker_lost(w, now),
                    _ => {
                        // The worker's running attempt, if any, with some progress.
                        let running = s
                            .attempts()
                            .iter()
                            .find(|a| a.worker == w && a.outcome == Outcome::Running)
                            .map(|a| (a.id, next(12_000)));
                        s.heartbeat(w, running, now);
                        s.tick(now);
                    }
                }
                for phase in [Phase::Map, Phase::Reduce] {
                    let ix = &s.index[phase as usize];
                    let running: Vec<u32> = (0..s.tasks(phase).len() as u32)
                        .filter(|&i| !s.tasks(phase)[i as usize].running().is_empty())
                        .collect();
                    assert_eq!(ix.running.iter().copied().collect::<Vec<_>>(), running);
                    let commits = scanned_commits(&s, phase);
                    let ms: Millis = commits.iter().map(|c| c.0).sum();
                    let progress: u64 = commits.iter().map(|c| c.1).sum();
                    assert_eq!(
                        (ix.committed_ms, ix.committed_progress, ix.committed),
                        (ms, progress, commits.len() as u64)
                    );
                }
            }
        }
        assert!(assignments > 5_000 && backups > 100, "too few tasks ({assignments}) or backups ({backups}) assigned");
    }

    #[test]
    fn a_lost_worker_s_map_outputs_rerun_when_they_lived_on_it() {
        let config = |rerun| SchedulerConfig {
            map_tasks: 2,
            reduce_tasks: 1,
            rerun_maps_of_lost_workers: rerun,
            ..Default::default()
        };
        for rerun in [false, true] {
            let mut s = with(config(rerun));
            let (a, b, m0, _) = two_workers_one_map_each(&mut s);
            s.worker_lost(a, 2);
            let next = run(s.request_task(b, 3)).0;
            if rerun {
                assert_eq!((next.task, next.attempt), (m0.task, 1), "a's map output went with it");
                assert_eq!(s.attempts()[0].outcome, Outcome::Lost);
                assert_eq!(s.progress(Phase::Map), (1, 2));
            } else {
                assert_eq!(next.task.phase, Phase::Reduce, "outputs on a shared host stay readable");
            }
        }
    }

    #[test]
    fn every_gone_map_output_of_a_worker_reruns_at_once() {
        let mut s = with(SchedulerConfig { map_tasks: 3, reduce_tasks: 1, ..Default::default() });
        let (a, b, _, _) = two_workers_one_map_each(&mut s);
        let (m2, _) = run(s.request_task(a, 1));
        assert!(finish(&mut s, a, m2, 2));
        // a's process exited: both of its outputs are listed, and both go back to idle together.
        s.worker_lost(a, 3);
        let outputs = s.map_outputs_of(a);
        assert_eq!(outputs.iter().map(|o| (o.map_task, o.attempt)).collect::<Vec<_>>(), [(0, 0), (2, 0)]);
        s.map_outputs_gone(&[(0, 0), (2, 0)]);
        assert_eq!(s.progress(Phase::Map), (1, 3));
        let c = s.register("c".into(), 4);
        let first = run(s.request_task(b, 4)).0;
        let second = run(s.request_task(c, 4)).0;
        assert_eq!([first.task.index, second.task.index], [0, 2]);
        // A stale report (an older attempt's output) changes nothing.
        s.map_outputs_gone(&[(1, 7)]);
        assert_eq!(s.progress(Phase::Map), (1, 3));
    }

    #[test]
    fn commits_give_effects_in_order_and_the_job_commit_once() {
        let mut s = scheduler(2, 2);
        let w = s.register("w".into(), 0);
        assert_eq!(s.take_effects(), [], "registering asks nothing of the world");
        let (m0, _) = run(s.request_task(w, 0));
        let (m1, _) = run(s.request_task(w, 0));
        let counters = TaskCounters { input_records: 3, ..TaskCounters::default() };
        assert!(s.complete(w, m1, output(m1), counters.clone(), 1));
        assert!(s.complete(w, m0, output(m0), TaskCounters::default(), 2));
        assert!(!s.complete(w, m0, output(m0), TaskCounters::default(), 3), "a duplicate");
        let committed = |id: AttemptId, counters: TaskCounters| Effect::TaskCommitted {
            task: id.task,
            attempt: id.attempt,
            map_output: output(id).map(Arc::new),
            counters,
        };
        assert_eq!(s.take_effects(), [committed(m1, counters), committed(m0, TaskCounters::default())]);
        assert_eq!(s.take_effects(), [], "taking empties the list");
        let (r0, _) = run(s.request_task(w, 4));
        let (r1, _) = run(s.request_task(w, 4));
        let bytes = |n| TaskCounters { output_bytes: n, ..TaskCounters::default() };
        assert!(s.request_commit(w, r1, 5));
        assert!(s.complete(w, r1, None, bytes(11), 5));
        assert_eq!(s.take_effects(), [committed(r1, bytes(11))]);
        assert!(s.request_commit(w, r0, 6));
        assert!(s.complete(w, r0, None, bytes(10), 6));
        // The last commit asks for the job commit, with each part file's reported size.
        assert_eq!(s.take_effects(), [committed(r0, bytes(10)), Effect::CommitJob { part_bytes: vec![10, 11] }]);
        // While it runs, an abort is ignored and workers wait: only its outcome ends the job.
        s.abort("interrupted".into());
        assert_eq!(s.state(), &JobState::TasksDone);
        assert_eq!(s.request_task(w, 7), Assignment::Wait);
        assert_eq!(s.take_effects(), []);
        s.job_committed();
        assert_eq!(s.state(), &JobState::Succeeded);
        assert_eq!(s.take_effects(), [Effect::JobEnded]);
        s.job_committed();
        s.abort("late".into());
        assert_eq!(s.take_effects(), [], "the job ends once");
        assert_eq!(s.state(), &JobState::Succeeded);
    }

    #[test]
    fn a_failed_job_commit_fails_the_job() {
        let mut s = scheduler(0, 0);
        assert_eq!(s.take_effects(), [Effect::CommitJob { part_bytes: vec![] }], "an empty job commits at once");
        s.job_commit_failed("part file missing".into());
        assert!(matches!(s.state(), JobState::Failed(f) if f.last_error == "part file missing"));
        assert_eq!(s.take_effects(), [Effect::JobEnded]);
        s.job_committed();
        assert!(matches!(s.state(), JobState::Failed(_)), "a failed job does not commit");
        assert_eq!(s.take_effects(), []);
    }

    #[test]
    fn a_failing_task_or_an_abort_ends_the_job_once() {
        let mut s = scheduler(1, 1);
        let w = s.register("w".into(), 0);
        for now in 0..3 {
            let (m0, _) = run(s.request_task(w, now));
            s.fail(w, m0, Failure { error: "boom".into(), ..Failure::default() }, now);
        }
        assert!(matches!(s.state(), JobState::Failed(f) if f.attempts == 3));
        assert_eq!(s.take_effects(), [Effect::JobEnded]);
        s.abort("interrupted".into());
        assert_eq!(s.take_effects(), []);

        let mut s = scheduler(1, 1);
        s.abort("interrupted".into());
        assert_eq!(s.take_effects(), [Effect::JobEnded]);
        let w = s.register("w".into(), 0);
        assert_eq!(s.request_task(w, 1), Assignment::Exit);
    }

    #[test]
    fn a_map_completion_without_its_location_is_refused() {
        let mut s = scheduler(1, 1);
        let w = s.register("w".into(), 0);
        let (m0, _) = run(s.request_task(w, 0));
        assert!(!s.complete(w, m0, None, TaskCounters::default(), 1));
        assert_eq!(s.take_effects(), []);
        assert!(s.complete(w, m0, output(m0), TaskCounters::default(), 2));
    }
}
