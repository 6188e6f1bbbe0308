//! `mr simulate`: a deterministic discrete-event simulation of a cluster that drives the real
//! [`Scheduler`] (the same code the coordinator runs, not a copy) with simulated time.
//!
//! The model (docs/SIMULATION.md has its parameters and what it leaves out):
//! - N machines in racks of a two-level network: each machine has a disk (read and write
//!   share one rate), a NIC (one rate in, one out) and a CPU; each rack an uplink and a
//!   downlink; the root one shared rate. One worker process per machine runs one attempt at
//!   a time, as an `mr worker` does.
//! - Data moves as fluid flows, advanced every `step_ms`: each flow uses some resources (a
//!   coefficient per resource: bytes on it per byte of the flow), each resource's capacity is
//!   split evenly over the coefficients using it, and a flow runs at the smallest share it
//!   gets (or its CPU rate, if lower).
//! - A map attempt reads its split from the nearest live replica (its own disk, its rack, or
//!   across the root), maps it at the job's CPU cost, then sorts and writes its output to its
//!   own disk. A reduce attempt fetches its partition of every map output over the network,
//!   in map task order, into its disk, then merges, reduces and writes its output: one copy
//!   on its disk, each other replica to a machine in another rack. It then asks to commit.
//! - Workers register, heartbeat (`heartbeat_ms`, with their attempt's progress as a worker
//!   counts it: input records and bytes), long-poll for tasks (woken when the
//!   scheduler's state changed, at most once a step, else every second), report completions
//!   and failures, and obey cancellations, as `worker/` does; the coordinator's 100 ms tick
//!   is the scheduler's `tick` at every step, and the job commit it asks for
//!   ([`Effect::CommitJob`]) succeeds at once.
//! - Faults: worker processes that die at given times (their map outputs go with them) and
//!   may be restarted; slowed machines (disk and CPU divided by a factor); heartbeats lost at
//!   random; network partitions of a machine (its calls and its map outputs unreachable; past
//!   the worker's lost-timeout it exits, and a new one starts when the partition heals). A
//!   reduce that reaches an unreachable map output stalls for the fetch retries, then reports
//!   it lost.
//!
//! Everything random comes from the scenario's seed, and events at one instant are handled
//! in a fixed order, so a seed gives the same trace byte for byte.

pub mod check;
pub mod plot;
pub mod presets;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::control::scheduler::{Assignment, Effect, Failure, JobState, MapOutputList, Scheduler, SchedulerConfig};
use crate::settings::FaultTolerance;
use crate::types::{AttemptId, MapOutputLocation, Millis, Phase, TaskCounters, WorkerId};

const MB: f64 = 1_000_000.0;

/// The machines and the network.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// Number of machines, one worker process each.
    pub machines: u32,
    /// Number of racks; machine `m` is in rack `m % racks`.
    pub racks: u32,
    /// Disk rate of a machine, MB/s, reads and writes together.
    pub disk_mb_s: f64,
    /// NIC rate of a machine, MB/s each way.
    pub nic_mb_s: f64,
    /// Rate of a rack's link to the root, MB/s each way.
    pub rack_uplink_mb_s: f64,
    /// Rate through the root switch, MB/s in all.
    pub root_mb_s: f64,
}

/// The job: its size and its per-byte costs.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Name, for reports.
    pub name: String,
    /// Input bytes, split evenly over the map tasks.
    pub input_bytes: u64,
    /// M.
    pub map_tasks: u32,
    /// R.
    pub reduce_tasks: u32,
    /// Map output bytes per input byte.
    pub map_output_ratio: f64,
    /// Output bytes per shuffled byte.
    pub output_ratio: f64,
    /// CPU of map (reading and mapping), ns per input byte.
    pub map_ns_per_byte: f64,
    /// CPU of the map's sort and write, ns per map output byte.
    pub sort_ns_per_byte: f64,
    /// CPU of the reduce's merge, reduce and write, ns per shuffled byte.
    pub reduce_ns_per_byte: f64,
    /// Copies of each input split, on distinct random machines.
    pub input_replicas: u32,
    /// Copies of the output written (the first on the reducer's disk).
    pub output_replicas: u32,
    /// Bytes per record (heartbeats report records).
    pub record_bytes: u64,
}

/// A worker process killed at a time.
#[derive(Debug, Clone, Serialize)]
pub struct Death {
    /// When, ms.
    pub at_ms: Millis,
    /// Which machine's worker.
    pub machine: u32,
    /// A new worker starts on the machine this long after, if ever.
    pub restart_after_ms: Option<Millis>,
}

/// A machine cut off from the network for a while.
#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    /// Which machine.
    pub machine: u32,
    /// From, ms.
    pub from_ms: Millis,
    /// Until, ms.
    pub until_ms: Millis,
}

/// Faults and stragglers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    /// Worker processes that die.
    pub deaths: Vec<Death>,
    /// Fraction of machines slowed (chosen by the seed).
    pub slow_fraction: f64,
    /// Their disk and CPU rates are divided by this.
    pub slow_factor: f64,
    /// Probability that a heartbeat is lost on its way.
    pub heartbeat_loss: f64,
    /// Network partitions.
    pub partitions: Vec<Partition>,
}

/// The coordinator's and workers' settings.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Backup attempts on (`--speculative`).
    pub speculative: bool,
    /// `--worker-timeout`, ms.
    pub worker_timeout_ms: Millis,
    /// `--task-timeout`, ms.
    pub task_timeout_ms: Millis,
    /// Heartbeat interval, ms (the worker timeout / 10, at most 1 s).
    pub heartbeat_ms: Millis,
    /// `--max-attempts`.
    pub max_attempts: u32,
    /// A lost worker's map outputs are re-executed at once (`mr coordinator`).
    pub rerun_maps_of_lost_workers: bool,
    /// How long a reduce retries an unreachable map output before reporting it lost, ms.
    pub fetch_retry_ms: Millis,
    /// A worker that cannot reach the coordinator for this long exits (`--lost-timeout`), ms.
    pub lost_timeout_ms: Millis,
}

impl Default for Policy {
    fn default() -> Policy {
        // mr's defaults.
        let t = FaultTolerance::default();
        Policy {
            speculative: t.speculative,
            worker_timeout_ms: t.worker_timeout.as_millis() as Millis,
            task_timeout_ms: t.task_timeout.as_millis() as Millis,
            heartbeat_ms: 1_000,
            max_attempts: t.max_attempts,
            rerun_maps_of_lost_workers: true,
            // 4 tries, 250 ms apart doubling (shuffle.rs).
            fetch_retry_ms: 3_750,
            lost_timeout_ms: 5_000,
        }
    }
}

/// One simulation.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// The cluster.
    pub cluster: Cluster,
    /// The job.
    pub workload: Workload,
    /// The faults.
    pub faults: Faults,
    /// The settings.
    pub policy: Policy,
    /// Seed of everything random.
    pub seed: u64,
    /// Time step of the flows, and the coordinator's tick, ms.
    pub step_ms: Millis,
    /// The simulation stops here if the job has not ended, ms.
    pub time_limit_ms: Millis,
    /// Width of the timeline's bins, ms.
    pub bin_ms: Millis,
}

/// How the simulated job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// Committed at this time, ms.
    Succeeded(Millis),
    /// The scheduler failed the job.
    Failed(String),
    /// Still running at the time limit.
    TimedOut,
}

/// Time spent in one kind of scheduler call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    /// Calls.
    pub calls: u64,
    /// Total time, ns.
    pub total_ns: u64,
    /// Longest call, ns.
    pub max_ns: u64,
}

impl CallStats {
    fn add(&mut self, d: Duration) {
        let ns = d.as_nanos() as u64;
        self.calls += 1;
        self.total_ns += ns;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Mean time per call, µs.
    pub fn mean_us(&self) -> f64 {
        if self.calls == 0 { 0.0 } else { self.total_ns as f64 / self.calls as f64 / 1_000.0 }
    }
}

/// Real time spent in the scheduler, per kind of call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SchedulerTime {
    /// `register`.
    pub register: CallStats,
    /// `request_task` that handed out a task.
    pub assign: CallStats,
    /// `request_task` that answered wait.
    pub wait: CallStats,
    /// `heartbeat`.
    pub heartbeat: CallStats,
    /// `request_commit`.
    pub commit: CallStats,
    /// `complete`.
    pub complete: CallStats,
    /// `fail`.
    pub fail: CallStats,
    /// `tick`.
    pub tick: CallStats,
}

impl SchedulerTime {
    /// Every call.
    pub fn total(&self) -> CallStats {
        let all = [
            &self.register,
            &self.assign,
            &self.wait,
            &self.heartbeat,
            &self.commit,
            &self.complete,
            &self.fail,
            &self.tick,
        ];
        let mut t = CallStats::default();
        for c in all {
            t.calls += c.calls;
            t.total_ns += c.total_ns;
            t.max_ns = t.max_ns.max(c.max_ns);
        }
        t
    }
}

/// Data rates over time: bytes per bin.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// Width of a bin, ms.
    pub bin_ms: Millis,
    /// Input read by map attempts (less the input of map outputs lost, when they are lost).
    pub input: Vec<f64>,
    /// Map output moved to reduce attempts.
    pub shuffle: Vec<f64>,
    /// Output written by reduce attempts (one replica counted).
    pub output: Vec<f64>,
}

impl Timeline {
    fn add(&mut self, series: usize, t: Millis, bytes: f64) {
        let bin = (t / self.bin_ms) as usize;
        for v in [&mut self.input, &mut self.shuffle, &mut self.output] {
            if v.len() <= bin {
                v.resize(bin + 1, 0.0);
            }
        }
        [&mut self.input, &mut self.shuffle, &mut self.output][series][bin] += bytes;
    }

    /// The peak rate of a series, MB/s.
    pub fn peak_mb_s(series: &[f64], bin_ms: Millis) -> f64 {
        series.iter().copied().fold(0.0, f64::max) / MB * 1_000.0 / bin_ms as f64
    }
}

/// What a simulation found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the job ended.
    pub end: End,
    /// Simulated time at the end, ms.
    pub sim_ms: Millis,
    /// Attempts started, backups among them, and attempts lost.
    pub attempts: usize,
    /// Backup attempts.
    pub backups: usize,
    /// Attempts lost (their worker died, or their input).
    pub lost: usize,
    /// The data rates.
    pub timeline: Timeline,
    /// Real time spent in scheduler calls.
    pub scheduler_time: SchedulerTime,
    /// Bytes of the reduce task message of the last list of map outputs assigned: the
    /// `ReduceTask` a GetTask reply carries (`net::convert::reduce_task`), as encoded.
    pub reduce_told_bytes: u64,
    /// Invariants broken (see [`check`]).
    pub violations: Vec<String>,
    /// Lines in the event trace.
    pub trace_lines: u64,
    /// xxh3 of the event trace.
    pub trace_digest: u64,
    /// Real time the simulation took, s.
    pub wall_s: f64,
}

/// A flow's use of a resource: bytes on it per byte of the flow.
type Use = (u32, f64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageKind {
    MapRead,
    MapWrite,
    Shuffle,
    Merge,
}

#[derive(Debug)]
struct Active {
    attempt: AttemptId,
    stage: StageKind,
    /// Bytes of this stage done and in all.
    done: f64,
    total: f64,
    /// Bytes of earlier stages, for the heartbeat's progress.
    before: f64,
    uses: Vec<Use>,
    /// CPU limit of this stage, bytes/s.
    cpu: f64,
    /// Reduce: the map outputs it was told, those of them unreachable (as of `bad_epoch`),
    /// and how many it has read.
    inputs: Option<Arc<ReduceInputs>>,
    bad: Arc<Vec<u32>>,
    bad_epoch: u64,
    fetched: usize,
    stalled_since: Option<Millis>,
}

/// The map outputs a reduce attempt was told, as the simulation resolves them.
#[derive(Debug)]
struct ReduceInputs {
    /// Per entry: (map task, attempt, the worker process holding it, when it committed).
    entries: Vec<(u32, u32, usize, Millis)>,
}

#[derive(Debug)]
struct Proc {
    machine: u32,
    id: WorkerId,
    /// False once the process died.
    alive: bool,
    task: Option<Active>,
    waiting: bool,
    next_poll: Millis,
    /// Times at which the scheduler declared it dead.
    declared_dead: Vec<Millis>,
    /// When its calls started failing (partitioned).
    unreachable_since: Option<Millis>,
    /// It exited because it could not reach the coordinator.
    gave_up: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A worker process starts on the machine.
    Start(u32),
    /// A worker process heartbeats.
    Heartbeat(usize),
    /// A machine's worker process dies; restart after (ms, u64::MAX for never).
    Kill(u32, Millis),
    /// A partition starts (machine, index in the fault list).
    Cut(u32, usize),
    /// A partition ends.
    Heal(u32, usize),
}

struct Sim<'a> {
    sc: &'a Scenario,
    s: Scheduler,
    now: Millis,
    events: BinaryHeap<Reverse<(Millis, u64, Event)>>,
    seq: u64,
    rng: ChaCha8Rng,
    procs: Vec<Proc>,
    /// Per machine: its current process, whether partitioned, its speed factor (1 = normal).
    machine_proc: Vec<Option<usize>>,
    partitioned: Vec<bool>,
    slow: Vec<f64>,
    /// Per resource: capacity, bytes/s.
    capacity: Vec<f64>,
    load: Vec<f64>,
    /// Map outputs accepted by the scheduler: (task, attempt) -> (process, commit time).
    outputs: HashMap<(u32, u32), (usize, Millis)>,
    /// Per map task: the process of its committed output, as far as the simulation knows
    /// (for the input timeline's negative part).
    committed_map: Vec<Option<usize>>,
    /// Per map task: the replica its latest attempt read (`u32::MAX` before the first).
    read_from: Vec<u32>,
    /// Bumped whenever a process dies or a machine is cut off or healed.
    epoch: u64,
    /// The resolved list of the last reduce assignment, and the list it came from.
    last_inputs: Option<(MapOutputList, Arc<ReduceInputs>)>,
    /// Per list in use: the positions of its unreachable entries, as of an epoch.
    bad_cache: Vec<(Arc<ReduceInputs>, u64, Arc<Vec<u32>>)>,
    /// Declarations of dead workers when the last list was checked.
    checked_declarations: usize,
    declarations: usize,
    changed: bool,
    timeline: Timeline,
    times: SchedulerTime,
    violations: Vec<String>,
    reduce_told_bytes: u64,
    /// Reduce tasks whose completion the scheduler accepted, per task.
    reduce_commits: Vec<u32>,
    trace: Option<&'a mut Vec<u8>>,
    hasher: xxhash_rust::xxh3::Xxh3,
    trace_lines: u64,
    line: String,
}

/// Runs a scenario. With `trace`, every event is appended to it as a line of text.
pub fn run(sc: &Scenario, trace: Option<&mut Vec<u8>>) -> Report {
    run_keeping(sc, trace).0
}

/// [`run`], returning the scheduler as the job left it too.
pub fn run_keeping(sc: &Scenario, trace: Option<&mut Vec<u8>>) -> (Report, Scheduler) {
    let started = Instant::now();
    let mut sim = Sim::new(sc, trace);
    sim.schedule_starts_and_faults();
    let end = sim.main_loop();
    let report = sim.report(end, started);
    (report, sim.s)
}

/// Each resource's capacity, bytes/s: disks, NICs in, NICs out, rack uplinks and downlinks,
/// the root; and each machine's slowdown (1 = normal), for the slowed machines that `rng`
/// picks (the first of a seeded shuffle), whose disks are slowed too.
fn capacities(sc: &Scenario, rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<f64>) {
    let c = &sc.cluster;
    let n = c.machines as usize;
    let racks = c.racks.max(1) as usize;
    let mut capacity = Vec::with_capacity(3 * n + 2 * racks + 1);
    capacity.extend(std::iter::repeat_n(c.disk_mb_s * MB, n));
    capacity.extend(std::iter::repeat_n(c.nic_mb_s * MB, 2 * n));
    capacity.extend(std::iter::repeat_n(c.rack_uplink_mb_s * MB, 2 * racks));
    capacity.push(c.root_mb_s * MB);
    let mut order: Vec<u32> = (0..c.machines).collect();
    for i in (1..order.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        order.swap(i, j);
    }
    let slowed = (sc.faults.slow_fraction * f64::from(c.machines)).round() as usize;
    let mut slow = vec![1.0; n];
    for &m in order.iter().take(slowed) {
        slow[m as usize] = sc.faults.slow_factor.max(1.0);
        capacity[m as usize] /= sc.faults.slow_factor.max(1.0);
    }
    (capacity, slow)
}

impl<'a> Sim<'a> {
    /// The simulation of a scenario, before anything happened.
    fn new(sc: &'a Scenario, trace: Option<&'a mut Vec<u8>>) -> Sim<'a> {
        let w = &sc.workload;
        let n = sc.cluster.machines as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
        let (capacity, slow) = capacities(sc, &mut rng);
        let s = Scheduler::new(SchedulerConfig {
            map_tasks: w.map_tasks,
            reduce_tasks: w.reduce_tasks,
            tolerance: FaultTolerance {
                worker_timeout: Duration::from_millis(sc.policy.worker_timeout_ms),
                task_timeout: Duration::from_millis(sc.policy.task_timeout_ms),
                max_attempts: sc.policy.max_attempts,
                speculative: sc.policy.speculative,
                ..FaultTolerance::default()
            },
            rerun_maps_of_lost_workers: sc.policy.rerun_maps_of_lost_workers,
            first_worker_id: 1,
        });
        Sim {
            sc,
            s,
            now: 0,
            events: BinaryHeap::new(),
            seq: 0,
            rng,
            procs: Vec::new(),
            machine_proc: vec![None; n],
            partitioned: vec![false; n],
            slow,
            load: vec![0.0; capacity.len()],
            capacity,
            outputs: HashMap::new(),
            committed_map: vec![None; w.map_tasks as usize],
            read_from: vec![u32::MAX; w.map_tasks as usize],
            epoch: 0,
            last_inputs: None,
            bad_cache: Vec::new(),
            checked_declarations: 0,
            declarations: 0,
            changed: false,
            timeline: Timeline { bin_ms: sc.bin_ms.max(1), ..Timeline::default() },
            times: SchedulerTime::default(),
            violations: Vec::new(),
            reduce_told_bytes: 0,
            reduce_commits: vec![0; w.reduce_tasks as usize],
            trace,
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            trace_lines: 0,
            line: String::new(),
        }
    }

    /// Workers start within the first second, in a seeded order; the scenario's deaths and
    /// partitions happen when it says.
    fn schedule_starts_and_faults(&mut self) {
        for m in 0..self.sc.cluster.machines {
            let at = below(&mut self.rng, 1_000);
            self.push(at, Event::Start(m));
        }
        let faults = &self.sc.faults;
        for d in &faults.deaths {
            self.push(d.at_ms, Event::Kill(d.machine, d.restart_after_ms.unwrap_or(Millis::MAX)));
        }
        for (i, p) in faults.partitions.iter().enumerate() {
            self.push(p.from_ms, Event::Cut(p.machine, i));
            self.push(p.until_ms.max(p.from_ms + 1), Event::Heal(p.machine, i));
        }
    }

    /// What the simulation found, once it ended with `end`.
    fn report(&mut self, end: End, started: Instant) -> Report {
        let attempts = self.s.attempts();
        Report {
            end,
            sim_ms: self.now,
            attempts: attempts.len(),
            backups: attempts.iter().filter(|a| a.speculative).count(),
            lost: attempts.iter().filter(|a| a.outcome == crate::control::scheduler::Outcome::Lost).count(),
            violations: std::mem::take(&mut self.violations),
            scheduler_time: std::mem::take(&mut self.times),
            timeline: std::mem::take(&mut self.timeline),
            reduce_told_bytes: self.reduce_told_bytes,
            trace_lines: self.trace_lines,
            trace_digest: self.hasher.digest(),
            wall_s: started.elapsed().as_secs_f64(),
        }
    }
}

/// A uniform integer below `n`.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n.max(1))) >> 64) as u64
}

/// A uniform float in [0, 1).
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Sim<'_> {
    fn n(&self) -> u32 {
        self.sc.cluster.machines
    }
    fn racks(&self) -> u32 {
        self.sc.cluster.racks.max(1)
    }
    fn rack(&self, m: u32) -> u32 {
        m % self.racks()
    }
    fn disk(&self, m: u32) -> u32 {
        m
    }
    fn nic_in(&self, m: u32) -> u32 {
        self.n() + m
    }
    fn nic_out(&self, m: u32) -> u32 {
        2 * self.n() + m
    }
    fn rack_up(&self, r: u32) -> u32 {
        3 * self.n() + r
    }
    fn rack_down(&self, r: u32) -> u32 {
        3 * self.n() + self.racks() + r
    }
    fn root(&self) -> u32 {
        3 * self.n() + 2 * self.racks()
    }

    fn push(&mut self, at: Millis, e: Event) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, e)));
    }

    fn trace(&mut self, f: impl FnOnce(&mut String)) {
        self.line.clear();
        let _ = write!(self.line, "{:>9} ", self.now);
        f(&mut self.line);
        self.line.push('\n');
        self.hasher.update(self.line.as_bytes());
        self.trace_lines += 1;
        if let Some(t) = self.trace.as_deref_mut() {
            t.extend_from_slice(self.line.as_bytes());
        }
    }

    fn main_loop(&mut self) -> End {
        let step = self.sc.step_ms.max(1);
        let mut t = 0;
        loop {
            while let Some(&Reverse((at, _, e))) = self.events.peek() {
                if at > t {
                    break;
                }
                self.events.pop();
                self.now = at;
                self.event(e);
                if let Some(end) = self.ended() {
                    return end;
                }
            }
            self.now = t;
            self.step(step);
            if let Some(end) = self.ended() {
                return end;
            }
            if t >= self.sc.time_limit_ms {
                self.trace(|l| l.push_str("time limit"));
                return End::TimedOut;
            }
            t += step;
        }
    }

    /// Carries out what the scheduler asked (the job commit, which succeeds at once; the
    /// journal and the end of the job have no part here), and says whether the job ended.
    fn ended(&mut self) -> Option<End> {
        for effect in self.s.take_effects() {
            if let Effect::CommitJob { .. } = effect {
                self.s.job_committed();
                self.trace(|l| l.push_str("job committed"));
            }
        }
        match self.s.state().clone() {
            // TasksDone lasts only until the commit above.
            JobState::Running | JobState::TasksDone => None,
            JobState::Succeeded => Some(End::Succeeded(self.now)),
            JobState::Failed(f) => {
                let why = format!("{:?} after {} attempts: {}", f.task, f.attempts, f.last_error);
                self.trace(|l| {
                    let _ = write!(l, "job failed: {why}");
                });
                Some(End::Failed(why))
            }
        }
    }

    /// Whether the map outputs of process `p` can be read. Without the re-execution of lost
    /// workers' outputs, mr assumes they live on a host every reducer reads (`mr run`), so
    /// they stay readable when their worker dies.
    fn readable(&self, p: usize) -> bool {
        !self.sc.policy.rerun_maps_of_lost_workers || self.reachable(p)
    }

    fn reachable(&self, p: usize) -> bool {
        let proc = &self.procs[p];
        proc.alive && !self.partitioned[proc.machine as usize]
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Start(m) => self.start(m),
            Event::Heartbeat(p) => self.heartbeat(p),
            Event::Kill(m, restart) => {
                self.trace(|l| {
                    let _ = write!(l, "kill machine {m}");
                });
                if let Some(p) = self.machine_proc[m as usize] {
                    self.die(p);
                }
                if restart != Millis::MAX {
                    self.push(self.now + restart, Event::Start(m));
                }
            }
            Event::Cut(m, i) => {
                self.trace(|l| {
                    let _ = write!(l, "partition {i}: machine {m} cut off");
                });
                self.partitioned[m as usize] = true;
                self.epoch += 1;
                if let Some(p) = self.machine_proc[m as usize] {
                    self.procs[p].unreachable_since = Some(self.now);
                }
            }
            Event::Heal(m, i) => {
                self.trace(|l| {
                    let _ = write!(l, "partition {i}: machine {m} back");
                });
                // Overlapping partitions of one machine: it is back when the last ends.
                let still = self.sc.faults.partitions.iter().enumerate().any(|(j, q)| {
                    j != i && q.machine == m && q.from_ms <= self.now && self.now < q.until_ms.max(q.from_ms + 1)
                });
                if still {
                    return;
                }
                self.partitioned[m as usize] = false;
                self.epoch += 1;
                match self.machine_proc[m as usize] {
                    Some(p) if self.procs[p].alive => self.procs[p].unreachable_since = None,
                    // Its worker gave up while cut off: the machine starts a new one.
                    Some(p) if self.procs[p].gave_up => self.start(m),
                    _ => {}
                }
            }
        }
    }

    /// A new worker process on machine `m` registers.
    fn start(&mut self, m: u32) {
        if self.machine_proc[m as usize].is_some_and(|p| self.procs[p].alive) {
            return;
        }
        let t = Instant::now();
        let id = self.s.register(format!("machine-{m}"), self.now);
        self.times.register.add(t.elapsed());
        let p = self.procs.len();
        self.procs.push(Proc {
            machine: m,
            id,
            alive: true,
            task: None,
            waiting: false,
            next_poll: self.now,
            declared_dead: Vec::new(),
            unreachable_since: self.partitioned[m as usize].then_some(self.now),
            gave_up: false,
        });
        self.machine_proc[m as usize] = Some(p);
        self.trace(|l| {
            let _ = write!(l, "machine {m}: worker {id} registered");
        });
        let hb = self.sc.policy.heartbeat_ms.max(1);
        let first = self.now + 1 + below(&mut self.rng, hb);
        self.push(first, Event::Heartbeat(p));
        self.ask(p);
    }

    /// A worker process dies: its attempt stops and its map outputs are gone.
    fn die(&mut self, p: usize) {
        let proc = &mut self.procs[p];
        if !proc.alive {
            return;
        }
        proc.alive = false;
        proc.task = None;
        proc.waiting = false;
        self.epoch += 1;
        let (id, m) = (proc.id, proc.machine);
        self.trace(|l| {
            let _ = write!(l, "machine {m}: worker {id} died");
        });
    }

    fn heartbeat(&mut self, p: usize) {
        if !self.procs[p].alive {
            return;
        }
        let next = self.now + self.sc.policy.heartbeat_ms.max(1);
        self.push(next, Event::Heartbeat(p));
        if !self.reachable(p) {
            self.give_up_if_lost(p);
            return;
        }
        if self.sc.faults.heartbeat_loss > 0.0 && unit(&mut self.rng) < self.sc.faults.heartbeat_loss {
            let id = self.procs[p].id;
            self.trace(|l| {
                let _ = write!(l, "worker {id}: heartbeat lost");
            });
            return;
        }
        let id = self.procs[p].id;
        // Progress as the coordinator takes it from a heartbeat: records and bytes.
        let running = self.procs[p].task.as_ref().map(|a| {
            let (records, bytes) = self.progress(a);
            (a.attempt, records + bytes)
        });
        let t = Instant::now();
        let reply = self.s.heartbeat(id, running, self.now);
        self.times.heartbeat.add(t.elapsed());
        if let Some((attempt, _)) = running
            && reply.cancel.contains(&attempt)
        {
            self.trace(|l| {
                let _ = write!(l, "worker {id}: cancel {attempt}");
            });
            self.procs[p].task = None;
            self.ask(p);
        }
    }

    fn record_bytes(&self) -> f64 {
        self.sc.workload.record_bytes.max(1) as f64
    }

    /// A cut-off worker whose calls have failed for the lost-timeout exits.
    fn give_up_if_lost(&mut self, p: usize) {
        if let Some(since) = self.procs[p].unreachable_since
            && self.now.saturating_sub(since) >= self.sc.policy.lost_timeout_ms
        {
            let id = self.procs[p].id;
            self.trace(|l| {
                let _ = write!(l, "worker {id}: cannot reach the coordinator, exits");
            });
            self.die(p);
            self.procs[p].gave_up = true;
        }
    }

    /// The worker asks for a task (GetTask).
    fn ask(&mut self, p: usize) {
        if !self.procs[p].alive || self.procs[p].task.is_some() {
            return;
        }
        if !self.reachable(p) {
            self.procs[p].waiting = true;
            self.give_up_if_lost(p);
            return;
        }
        let id = self.procs[p].id;
        let t = Instant::now();
        let a = self.s.request_task(id, self.now);
        let took = t.elapsed();
        match a {
            Assignment::Run { attempt, map_outputs, .. } => {
                self.times.assign.add(took);
                self.changed = true;
                self.procs[p].waiting = false;
                let backup = self.s.attempts().last().is_some_and(|a| a.speculative);
                self.trace(|l| {
                    let _ = write!(l, "worker {id}: run {attempt}{}", if backup { " (backup)" } else { "" });
                });
                self.begin(p, attempt, map_outputs);
            }
            Assignment::Wait => {
                self.times.wait.add(took);
                self.procs[p].waiting = true;
                self.procs[p].next_poll = self.now + 1_000;
            }
            Assignment::Exit => {
                self.procs[p].waiting = false;
            }
        }
    }

    /// The split's replicas: distinct machines from a hash of the seed and the split.
    fn replicas(&self, split: u32) -> Vec<u32> {
        let n = u64::from(self.n());
        let k = u64::from(self.sc.workload.input_replicas.max(1)).min(n);
        let mut out: Vec<u32> = Vec::with_capacity(k as usize);
        let mut i = 0u64;
        while (out.len() as u64) < k {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(
                &[split.to_le_bytes(), (i as u32).to_le_bytes()].concat(),
                self.sc.seed,
            );
            let m = (h % n) as u32;
            if !out.contains(&m) {
                out.push(m);
            }
            i += 1;
        }
        out
    }

    /// Network uses of `bytes` moving from machine `a` to machine `b`, per byte.
    fn path(&self, a: u32, b: u32, coef: f64, uses: &mut Vec<Use>) {
        if a == b {
            return;
        }
        uses.push((self.nic_out(a), coef));
        uses.push((self.nic_in(b), coef));
        let (ra, rb) = (self.rack(a), self.rack(b));
        if ra != rb {
            uses.push((self.rack_up(ra), coef));
            uses.push((self.root(), coef));
            uses.push((self.rack_down(rb), coef));
        }
    }

    fn cpu_rate(&self, m: u32, ns_per_byte: f64) -> f64 {
        if ns_per_byte <= 0.0 { f64::INFINITY } else { 1e9 / ns_per_byte / self.slow[m as usize] }
    }

    fn begin(&mut self, p: usize, attempt: AttemptId, map_outputs: MapOutputList) {
        let m = self.procs[p].machine;
        let w = &self.sc.workload;
        let active = match attempt.task.phase {
            Phase::Map => {
                let bytes = w.input_bytes as f64 / f64::from(w.map_tasks.max(1));
                let (uses, cpu) = self.map_read(m, attempt.task.index, attempt.attempt);
                self.read_from[attempt.task.index as usize] = uses[0].0;
                Active {
                    attempt,
                    stage: StageKind::MapRead,
                    done: 0.0,
                    total: bytes,
                    before: 0.0,
                    uses,
                    cpu,
                    inputs: None,
                    bad: Arc::new(Vec::new()),
                    bad_epoch: 0,
                    fetched: 0,
                    stalled_since: None,
                }
            }
            Phase::Reduce => {
                let inputs = self.resolve(&map_outputs, attempt);
                let bytes = self.shuffle_bytes();
                let racks = f64::from(self.racks());
                let cross = if racks > 1.0 { 1.0 - 1.0 / racks } else { 0.0 };
                let remote = 1.0 - 1.0 / f64::from(self.n()).max(1.0);
                let uses = vec![
                    (self.nic_in(m), remote),
                    (self.rack_down(self.rack(m)), cross),
                    (self.root(), cross),
                    (self.disk(m), 1.0),
                ];
                Active {
                    attempt,
                    stage: StageKind::Shuffle,
                    done: 0.0,
                    total: bytes,
                    before: 0.0,
                    uses,
                    cpu: f64::INFINITY,
                    inputs: Some(inputs),
                    bad: Arc::new(Vec::new()),
                    bad_epoch: u64::MAX,
                    fetched: 0,
                    stalled_since: None,
                }
            }
        };
        self.procs[p].task = Some(active);
    }

    fn shuffle_bytes(&self) -> f64 {
        let w = &self.sc.workload;
        w.input_bytes as f64 * w.map_output_ratio / f64::from(w.reduce_tasks.max(1))
    }

    fn map_read(&self, m: u32, split: u32, attempt: u32) -> (Vec<Use>, f64) {
        let replicas = self.replicas(split);
        let live = |r: &u32| self.machine_proc[*r as usize].is_some_and(|p| self.procs[p].alive);
        // The nearest live replica, not the one the task's attempt before read if another is
        // live (a backup or a rerun does not wait on the disk that held up the attempt it
        // replaces); among equally near ones, attempt n takes the n-th.
        let k = replicas.len();
        let before = self.read_from[split as usize];
        let rotated = (0..k).map(|i| replicas[(i + attempt as usize) % k]);
        let nearest = |avoid: u32| {
            let ok = |r: &u32| *r != avoid && (*r == m || live(r));
            rotated
                .clone()
                .filter(ok)
                .find(|&r| r == m)
                .or_else(|| rotated.clone().filter(ok).find(|&r| self.rack(r) == self.rack(m)))
                .or_else(|| rotated.clone().find(ok))
        };
        let src = nearest(before).or_else(|| nearest(u32::MAX)).unwrap_or(replicas[0]);
        let mut uses = vec![(self.disk(src), 1.0)];
        self.path(src, m, 1.0, &mut uses);
        (uses, self.cpu_rate(m, self.sc.workload.map_ns_per_byte))
    }

    /// Resolves the list a reduce attempt was told, and checks it: with the re-execution of
    /// lost workers' outputs on, no entry may be an output of a worker that the scheduler had
    /// declared dead after the output committed.
    fn resolve(&mut self, list: &MapOutputList, attempt: AttemptId) -> Arc<ReduceInputs> {
        let fresh = match &self.last_inputs {
            Some((l, r)) if Arc::ptr_eq(l, list) => Some(r.clone()),
            _ => None,
        };
        let resolved = match fresh {
            Some(r) => r,
            None => {
                let message = crate::net::convert::reduce_task(attempt.task.index, list);
                self.reduce_told_bytes = prost::Message::encoded_len(&message) as u64;
                let mut entries = Vec::with_capacity(list.len());
                for (i, l) in list.iter().enumerate() {
                    let entry =
                        self.outputs.get(&(l.map_task, l.attempt)).map(|&(p, at)| (l.map_task, l.attempt, p, at));
                    match entry {
                        Some(e) if e.0 == i as u32 => entries.push(e),
                        _ => {
                            self.violations.push(format!(
                                "{attempt} was told entry {i} = {l:?}, which is no map output that committed"
                            ));
                            entries.push((i as u32, 0, usize::MAX, 0));
                        }
                    }
                }
                let r = Arc::new(ReduceInputs { entries });
                self.last_inputs = Some((list.clone(), r.clone()));
                self.checked_declarations = 0;
                r
            }
        };
        if self.sc.policy.rerun_maps_of_lost_workers && self.checked_declarations < self.declarations {
            for &(task, att, p, at) in &resolved.entries {
                if p == usize::MAX {
                    continue;
                }
                if let Some(&dead) = self.procs[p].declared_dead.iter().find(|&&d| d >= at) {
                    self.violations.push(format!(
                        "{attempt} at {} ms was told map task {task} attempt {att}, whose worker {} was declared dead at {dead} ms",
                        self.now, self.procs[p].id
                    ));
                    break;
                }
            }
            self.checked_declarations = self.declarations;
        }
        resolved
    }

    /// Advances every flow by one step, then lets the coordinator tick and waiting workers
    /// ask again.
    fn step(&mut self, dt: Millis) {
        self.refresh_unreachable();
        self.load.iter_mut().for_each(|l| *l = 0.0);
        for proc in &self.procs {
            if let Some(a) = &proc.task
                && proc.alive
                && a.stalled_since.is_none()
            {
                for &(r, c) in &a.uses {
                    self.load[r as usize] += c;
                }
            }
        }
        let secs = dt as f64 / 1_000.0;
        let mut finished = Vec::new();
        let mut failed = Vec::new();
        for p in 0..self.procs.len() {
            let Some((done, lost)) = self.advance(p, secs) else { continue };
            if let Some((task, attempt)) = lost {
                failed.push((p, task, attempt));
            }
            if done {
                finished.push(p);
            }
        }
        for (p, task, attempt) in failed {
            self.fetch_failed(p, task, attempt);
        }
        for p in finished {
            self.next_stage(p);
        }
        self.tick();
        // Waiting workers ask again: woken by a change, or at the end of their long poll.
        let changed = std::mem::take(&mut self.changed);
        for p in 0..self.procs.len() {
            let proc = &self.procs[p];
            if proc.alive && proc.waiting && proc.task.is_none() && (changed || self.now >= proc.next_poll) {
                self.ask(p);
            }
        }
    }

    /// Refreshes the unreachable entries of the reduce lists in use, once per list and epoch.
    fn refresh_unreachable(&mut self) {
        let epoch = self.epoch;
        for p in 0..self.procs.len() {
            let inputs = match &self.procs[p].task {
                Some(Active { inputs: Some(i), bad_epoch, .. }) if *bad_epoch != epoch => i.clone(),
                _ => continue,
            };
            let bad = self.unreachable(&inputs);
            let a = self.procs[p].task.as_mut().expect("checked");
            a.bad = bad;
            a.bad_epoch = epoch;
        }
    }

    /// The rate of process `p`'s flow, bytes/s: the smallest share of a resource it uses, or
    /// its CPU rate; none for a flow that needs the network of a cut-off machine.
    fn rate(&self, p: usize, a: &Active) -> f64 {
        let mut rate = a.cpu;
        for &(r, c) in &a.uses {
            if c > 0.0 {
                rate = rate.min(self.capacity[r as usize] / self.load[r as usize]);
            }
        }
        let networked = a.uses.iter().any(|&(r, _)| r as usize >= self.slow.len());
        if self.partitioned[self.procs[p].machine as usize] && networked {
            rate = 0.0;
        }
        if !rate.is_finite() {
            rate = a.total.max(1.0) * 1e3;
        }
        rate
    }

    /// Advances process `p`'s flow by `secs`: whether its stage is done, and the map output
    /// (task, attempt) it gave up fetching, if it did. `None` without an attempt.
    fn advance(&mut self, p: usize, secs: f64) -> Option<(bool, Option<(u32, u32)>)> {
        let rate = self.rate(p, self.procs[p].task.as_ref()?);
        let (now, retry_ms) = (self.now, self.sc.policy.fetch_retry_ms);
        let a = self.procs[p].task.as_mut()?;
        let mut target = (a.done + rate * secs).min(a.total);
        let mut lost = None;
        if a.stage == StageKind::Shuffle {
            (target, lost) = shuffle_to(a, target, now, retry_ms);
        }
        let moved = target - a.done;
        a.done = target;
        let series = match a.stage {
            StageKind::MapRead => Some((0, moved)),
            StageKind::Shuffle => Some((1, moved)),
            StageKind::Merge => Some((2, moved * self.sc.workload.output_ratio)),
            StageKind::MapWrite => None,
        };
        let done = a.done >= a.total;
        if let Some((s, b)) = series
            && b > 0.0
        {
            self.timeline.add(s, now, b);
        }
        Some((done, lost))
    }

    /// The coordinator's tick.
    fn tick(&mut self) {
        let t = Instant::now();
        let tick = self.s.tick(self.now);
        self.times.tick.add(t.elapsed());
        if !tick.dead_workers.is_empty() || !tick.abandoned.is_empty() {
            self.changed = true;
        }
        for w in tick.dead_workers {
            self.declared_dead(w);
        }
        for a in tick.abandoned {
            self.trace(|l| {
                let _ = write!(l, "{a} abandoned (task timeout)");
            });
        }
    }

    /// The positions of the unreachable entries of a list, now: computed once per list and
    /// epoch, shared by every reduce attempt that was told that list.
    fn unreachable(&mut self, inputs: &Arc<ReduceInputs>) -> Arc<Vec<u32>> {
        self.bad_cache.retain(|(i, _, _)| Arc::strong_count(i) > 1);
        if let Some((_, e, bad)) = self.bad_cache.iter().find(|(i, _, _)| Arc::ptr_eq(i, inputs))
            && *e == self.epoch
        {
            return bad.clone();
        }
        let bad: Arc<Vec<u32>> = Arc::new(
            inputs
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.2 == usize::MAX || !self.readable(e.2))
                .map(|(i, _)| i as u32)
                .collect(),
        );
        self.bad_cache.retain(|(i, _, _)| !Arc::ptr_eq(i, inputs));
        self.bad_cache.push((inputs.clone(), self.epoch, bad.clone()));
        bad
    }

    /// The scheduler declared worker `w` dead.
    fn declared_dead(&mut self, w: WorkerId) {
        let Some(p) = self.procs.iter().position(|x| x.id == w) else { return };
        self.procs[p].declared_dead.push(self.now);
        self.declarations += 1;
        self.trace(|l| {
            let _ = write!(l, "worker {w} declared dead");
        });
        if self.sc.policy.rerun_maps_of_lost_workers && self.s.progress(Phase::Reduce).0 < self.sc.workload.reduce_tasks
        {
            let split = self.sc.workload.input_bytes as f64 / f64::from(self.sc.workload.map_tasks.max(1));
            let lost = self.committed_map.iter().filter(|c| **c == Some(p)).count();
            for c in self.committed_map.iter_mut().filter(|c| **c == Some(p)) {
                *c = None;
            }
            self.timeline.add(0, self.now, -(lost as f64) * split);
        }
    }

    fn fetch_failed(&mut self, p: usize, task: u32, attempt: u32) {
        let Some(a) = self.procs[p].task.take() else { return };
        let id = self.procs[p].id;
        self.trace(|l| {
            let _ = write!(l, "worker {id}: {} cannot fetch map task {task} attempt {attempt}", a.attempt);
        });
        if !self.reachable(p) {
            self.procs[p].waiting = true;
            return;
        }
        let failure = Failure {
            error: format!("map output {task}.{attempt} unreachable"),
            lost_map_task: Some(task),
            lost_map_attempt: attempt,
            lost_map_unreachable: true,
            ..Failure::default()
        };
        let maps_done = self.s.progress(Phase::Map).0;
        let t = Instant::now();
        self.s.fail(id, a.attempt, failure, self.now);
        self.times.fail.add(t.elapsed());
        if self.s.progress(Phase::Map).0 < maps_done && self.committed_map[task as usize].is_some() {
            self.committed_map[task as usize] = None;
            let split = self.sc.workload.input_bytes as f64 / f64::from(self.sc.workload.map_tasks.max(1));
            self.timeline.add(0, self.now, -split);
        }
        self.changed = true;
        self.ask(p);
    }

    fn next_stage(&mut self, p: usize) {
        let m = self.procs[p].machine;
        let Some(mut a) = self.procs[p].task.take() else { return };
        a.before += a.total;
        a.done = 0.0;
        a.stalled_since = None;
        let w = &self.sc.workload;
        match a.stage {
            StageKind::MapRead => {
                a.stage = StageKind::MapWrite;
                a.total *= w.map_output_ratio;
                a.uses = vec![(self.disk(m), 1.0)];
                a.cpu = self.cpu_rate(m, w.sort_ns_per_byte);
                self.procs[p].task = Some(a);
            }
            StageKind::Shuffle => {
                a.stage = StageKind::Merge;
                a.inputs = None;
                let out = w.output_ratio;
                let mut uses = vec![(self.disk(m), 1.0 + out)];
                for k in 1..w.output_replicas.max(1) {
                    // Another replica, in another rack when there is one.
                    let racks = self.racks();
                    let n = self.n();
                    let mut d = below(&mut self.rng, u64::from(n)) as u32;
                    if racks > 1 && self.rack(d) == self.rack(m) {
                        d = (d + 1 + (k % (racks - 1))) % n;
                    }
                    self.path(m, d, out, &mut uses);
                    uses.push((self.disk(d), out));
                }
                a.uses = uses;
                a.cpu = self.cpu_rate(m, w.reduce_ns_per_byte);
                self.procs[p].task = Some(a);
            }
            StageKind::MapWrite => self.finish_map(p, a),
            StageKind::Merge => self.finish_reduce(p, a),
        }
    }

    /// Where process `p` writes the output of `attempt`, as a worker would report it.
    fn location(&self, p: usize, attempt: AttemptId) -> MapOutputLocation {
        let m = self.procs[p].machine;
        let host = format!("10.{}.{}.{}", self.rack(m), m / 250 % 250, m % 250 + 1);
        MapOutputLocation {
            map_task: attempt.task.index,
            attempt: attempt.attempt,
            path: format!(
                "/var/tmp/mr-work-{:06x}/mr-worker-{:06x}/map-{:05}-{}.out",
                self.sc.seed & 0xff_ffff,
                self.procs[p].id & 0xff_ffff,
                attempt.task.index,
                attempt.attempt
            ),
            shuffle_url: format!("http://{host}:{}", 40_000 + self.procs[p].id % 20_000),
            host,
        }
    }

    /// The counters of a finished attempt (`next_stage` has added its last stage to `before`):
    /// its input is what came before that stage.
    fn counters(&self, a: &Active) -> TaskCounters {
        let input = a.before - a.total;
        let input_records = (input / self.record_bytes()) as u64;
        TaskCounters { input_records, input_bytes: input as u64, ..TaskCounters::default() }
    }

    /// An attempt's progress as a worker reports it, input records and bytes: a map's as it
    /// reads its split, then (all of them and) the bytes of map output it writes; a reduce's
    /// bytes as it fetches, then all of its input bytes and the records and bytes it has
    /// merged.
    fn progress(&self, a: &Active) -> (u64, u64) {
        let (records, bytes) = match a.stage {
            StageKind::MapRead => (a.done, a.done),
            StageKind::MapWrite => (a.before, a.before + a.done),
            StageKind::Shuffle => (0.0, a.done),
            StageKind::Merge => {
                let merged = a.before * (a.done / a.total.max(1.0)).min(1.0);
                (merged, a.before + merged)
            }
        };
        ((records / self.record_bytes()) as u64, bytes as u64)
    }

    fn finish_map(&mut self, p: usize, a: Active) {
        let id = self.procs[p].id;
        if !self.reachable(p) {
            // The report cannot reach the coordinator: the worker drops the attempt.
            self.procs[p].waiting = true;
            return;
        }
        let output = self.location(p, a.attempt);
        let counters = self.counters(&a);
        let t = Instant::now();
        let accepted = self.s.complete(id, a.attempt, Some(output), counters, self.now);
        self.times.complete.add(t.elapsed());
        self.trace(|l| {
            let _ = write!(l, "worker {id}: {} done, {}", a.attempt, if accepted { "accepted" } else { "refused" });
        });
        if accepted {
            self.outputs.insert((a.attempt.task.index, a.attempt.attempt), (p, self.now));
            self.committed_map[a.attempt.task.index as usize] = Some(p);
            self.changed = true;
        }
        self.ask(p);
    }

    fn finish_reduce(&mut self, p: usize, a: Active) {
        let id = self.procs[p].id;
        if !self.reachable(p) {
            self.procs[p].waiting = true;
            return;
        }
        let t = Instant::now();
        let granted = self.s.request_commit(id, a.attempt, self.now);
        self.times.commit.add(t.elapsed());
        let accepted = granted && {
            let counters = self.counters(&a);
            let t = Instant::now();
            let ok = self.s.complete(id, a.attempt, None, counters, self.now);
            self.times.complete.add(t.elapsed());
            ok
        };
        self.trace(|l| {
            let what = match (granted, accepted) {
                (false, _) => "commit refused",
                (true, false) => "committed, completion refused",
                (true, true) => "committed",
            };
            let _ = write!(l, "worker {id}: {} {what}", a.attempt);
        });
        if accepted {
            let n = &mut self.reduce_commits[a.attempt.task.index as usize];
            *n += 1;
            if *n > 1 {
                self.violations.push(format!("reduce task {} committed {} times", a.attempt.task.index, *n));
            }
            self.changed = true;
        }
        self.ask(p);
    }
}

/// How far a reduce's shuffle stage gets towards `target` bytes: the first unreachable map
/// output at or after what it has read stops it there, and after `retry_ms` of that, it gives
/// up on that output (returned as task, attempt).
fn shuffle_to(a: &mut Active, mut target: f64, now: Millis, retry_ms: Millis) -> (f64, Option<(u32, u32)>) {
    let Some(inputs) = &a.inputs else { return (target, None) };
    let n = inputs.entries.len();
    let upto = if a.total > 0.0 { ((target / a.total) * n as f64).floor() as usize } else { n };
    let upto = if target >= a.total { n } else { upto.min(n) };
    let i = a.bad.partition_point(|&b| (b as usize) < a.fetched);
    let mut lost = None;
    match a.bad.get(i) {
        Some(&b) if (b as usize) < upto => {
            let b = b as usize;
            a.fetched = b;
            target = target.min(a.total * b as f64 / n as f64).max(a.done);
            let since = *a.stalled_since.get_or_insert(now);
            if now - since >= retry_ms {
                let (task, attempt, _, _) = inputs.entries[b];
                lost = Some((task, attempt));
            }
        }
        _ => {
            a.fetched = upto;
            a.stalled_since = None;
        }
    }
    (target, lost)
}

/// The paper's completion time of a preset, s.
pub fn paper_seconds(preset: &str) -> Option<f64> {
    match preset {
        "sort-normal" => Some(891.0),
        "sort-no-backup" => Some(1_283.0),
        "sort-kill-200" => Some(933.0),
        "grep" => Some(150.0),
        _ => None,
    }
}

/// The report as text.
pub fn render(name: &str, sc: &Scenario, r: &Report) -> String {
    let mut out = String::new();
    let w = &sc.workload;
    let c = &sc.cluster;
    let paper = paper_seconds(name).map_or(String::new(), |s| format!(" (paper: {s:.0} s)"));
    let _ = match &r.end {
        End::Succeeded(ms) => {
            writeln!(out, "{name}: the job succeeded in {:.1} s of simulated time{paper}", *ms as f64 / 1e3)
        }
        End::Failed(why) => writeln!(out, "{name}: the job FAILED at {:.1} s: {why}", r.sim_ms as f64 / 1e3),
        End::TimedOut => writeln!(out, "{name}: the job did not end within {:.0} s", r.sim_ms as f64 / 1e3),
    };
    let _ = writeln!(
        out,
        "  cluster: {} machines in {} racks; {} map and {} reduce tasks over {:.0} GB; {:.1} % of machines {:.0}x slower; {} worker deaths; backups {}",
        c.machines,
        c.racks,
        w.map_tasks,
        w.reduce_tasks,
        w.input_bytes as f64 / 1e9,
        sc.faults.slow_fraction * 100.0,
        sc.faults.slow_factor.max(1.0),
        sc.faults.deaths.len(),
        if sc.policy.speculative { "on" } else { "off" },
    );
    let _ = writeln!(out, "  attempts: {} ({} backups, {} lost)", r.attempts, r.backups, r.lost);
    let t = &r.timeline;
    let _ = writeln!(
        out,
        "  peak rates: input {:.0} MB/s, shuffle {:.0} MB/s, output {:.0} MB/s ({} s bins)",
        Timeline::peak_mb_s(&t.input, t.bin_ms),
        Timeline::peak_mb_s(&t.shuffle, t.bin_ms),
        Timeline::peak_mb_s(&t.output, t.bin_ms),
        t.bin_ms as f64 / 1e3
    );
    render_scheduler_time(&mut out, &r.scheduler_time);
    if w.reduce_tasks > 0 && r.reduce_told_bytes > 0 {
        let limit = crate::net::rpc::MAX_MESSAGE_BYTES;
        let _ = writeln!(
            out,
            "  a reduce task is told {} map output locations: {:.1} MB as sent ({:.0} % of the {} MiB a message may be); R x M = {:.1} GB in all",
            w.map_tasks,
            r.reduce_told_bytes as f64 / 1e6,
            r.reduce_told_bytes as f64 * 100.0 / limit as f64,
            limit >> 20,
            r.reduce_told_bytes as f64 * f64::from(w.reduce_tasks) / 1e9
        );
    }
    for v in &r.violations {
        let _ = writeln!(out, "  INVARIANT BROKEN: {v}");
    }
    let _ = writeln!(
        out,
        "  trace: {} events, xxh3 {:016x}; simulated in {:.1} s",
        r.trace_lines, r.trace_digest, r.wall_s
    );
    out
}

/// The real time spent in scheduler calls, in all and per kind of call.
fn render_scheduler_time(out: &mut String, s: &SchedulerTime) {
    let total = s.total();
    let _ = writeln!(
        out,
        "  scheduler: {} calls, {:.2} s in all, {:.2} µs mean, longest {:.0} µs",
        total.calls,
        total.total_ns as f64 / 1e9,
        total.mean_us(),
        total.max_ns as f64 / 1e3
    );
    for (kind, c) in [
        ("assign", &s.assign),
        ("wait", &s.wait),
        ("heartbeat", &s.heartbeat),
        ("commit", &s.commit),
        ("complete", &s.complete),
        ("fail", &s.fail),
        ("tick", &s.tick),
    ] {
        if c.calls > 0 {
            let _ = writeln!(
                out,
                "    {kind:<9} {:>9} calls, {:>8.2} µs mean, longest {:>8.0} µs",
                c.calls,
                c.mean_us(),
                c.max_ns as f64 / 1e3
            );
        }
    }
}
