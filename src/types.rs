//! The vocabulary every part of `mr` shares: ids of workers, tasks and attempts, phases, time,
//! where a committed map output is, and the counters an attempt reports. A leaf module: it
//! imports nothing from the crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Identifies a worker for the life of a job.
pub type WorkerId = u64;

/// Milliseconds since the job started.
pub type Millis = u64;

/// Map or reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// A map task reads one split.
    Map,
    /// A reduce task reduces one partition.
    Reduce,
}

/// A task: its phase and its index within the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TaskId {
    /// The phase.
    pub phase: Phase,
    /// Index within the phase (the split index for maps, the partition for reduces).
    pub index: u32,
}

/// One attempt of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct AttemptId {
    /// The task.
    pub task: TaskId,
    /// The attempt number, from 0, unique within the task.
    pub attempt: u32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let phase = match self.phase {
            Phase::Map => "map",
            Phase::Reduce => "reduce",
        };
        write!(f, "{phase} task {}", self.index)
    }
}

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} attempt {}", self.task, self.attempt)
    }
}

/// Where a committed map output is: what the scheduler keeps for each done map task and hands
/// to reduce attempts, and what a reduce attempt reads or fetches. Its wire form (each worker's
/// host, Shuffle URL and directory sent once per assignment) is in `net/convert.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MapOutputLocation {
    /// The map task.
    pub map_task: u32,
    /// Its committed attempt.
    pub attempt: u32,
    /// The host the worker that wrote it advertises: a reducer on the same host reads the file
    /// in place.
    pub host: String,
    /// The file, on that host.
    pub path: String,
    /// The Shuffle service that serves it.
    pub shuffle_url: String,
}

/// What one attempt did, counted by the attempt and summed by the coordinator over the
/// committed attempts (so a task that ran twice counts once).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCounters {
    /// Records read (map: input records; reduce: intermediate records merged).
    pub input_records: u64,
    /// Bytes read (map: input bytes of the split; reduce: map output bytes fetched).
    pub input_bytes: u64,
    /// Records written (map: intermediate records after the combiner; reduce: output records).
    pub output_records: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Reduce: distinct keys (reduce input groups).
    pub groups: u64,
    /// Map: records skipped because they crashed earlier attempts.
    pub skipped_records: u64,
    /// Map: records given to the combiner.
    pub combine_input_records: u64,
    /// Map: records the combiner produced.
    pub combine_output_records: u64,
    /// Records written to disk before the reduce (the map output).
    pub spilled_records: u64,
    /// Counters defined by the job: group -> name -> amount.
    pub user: UserCounters,
}

impl std::ops::AddAssign<&TaskCounters> for TaskCounters {
    // Saturating: the coordinator sums what workers report, whatever they report.
    fn add_assign(&mut self, o: &TaskCounters) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.input_records, o.input_records);
        add(&mut self.input_bytes, o.input_bytes);
        add(&mut self.output_records, o.output_records);
        add(&mut self.output_bytes, o.output_bytes);
        add(&mut self.groups, o.groups);
        add(&mut self.skipped_records, o.skipped_records);
        add(&mut self.combine_input_records, o.combine_input_records);
        add(&mut self.combine_output_records, o.combine_output_records);
        add(&mut self.spilled_records, o.spilled_records);
        merge_counters(&mut self.user, &o.user);
    }
}

/// User-defined counters: group -> name -> amount.
pub type UserCounters = BTreeMap<String, BTreeMap<String, u64>>;

/// Adds `amount` to a user counter.
pub fn add_counter(counters: &mut UserCounters, group: &str, name: &str, amount: u64) {
    let group = match counters.get_mut(group) {
        Some(g) => g,
        None => counters.entry(group.to_string()).or_default(),
    };
    match group.get_mut(name) {
        Some(c) => *c = c.saturating_add(amount),
        None => {
            group.insert(name.to_string(), amount);
        }
    }
}

/// Adds every counter of `from` to `into`.
pub fn merge_counters(into: &mut UserCounters, from: &UserCounters) {
    for (group, names) in from {
        for (name, amount) in names {
            add_counter(into, group, name, *amount);
        }
    }
}
