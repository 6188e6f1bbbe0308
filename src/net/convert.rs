//! Every conversion between `mr`'s own types and the protobuf messages of
//! `proto/mapreduce.proto`, in one place.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::data::input;
use crate::error::{Error, Result};
use crate::exec::fault::{Faults, PhaseFaults};
use crate::net::rpc::pb;
use crate::types::{AttemptId, MapOutputLocation, Phase, TaskCounters, TaskId, UserCounters};

/// A path as it travels on the wire: the bytes of its name, whatever they are, so that a name
/// that is not UTF-8 reaches the worker as the same file.
pub fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// The path that [`path_bytes`] sent.
pub fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

impl From<&input::Split> for pb::Split {
    fn from(split: &input::Split) -> pb::Split {
        let ranges = split
            .ranges
            .iter()
            .map(|r| pb::FileRange {
                path: path_bytes(&r.path),
                start: r.start,
                end: r.end,
                first_line: r.first_line,
                stamp: r.stamp.map(|s| pb::FileStamp { len: s.len, modified_ns: s.modified_ns }),
                name: r.name.as_deref().map(path_bytes),
            })
            .collect();
        pb::Split { ranges }
    }
}

impl From<pb::Split> for input::Split {
    fn from(split: pb::Split) -> input::Split {
        let ranges = split
            .ranges
            .into_iter()
            .map(|r| input::FileRange {
                path: path_from_bytes(r.path),
                start: r.start,
                end: r.end,
                first_line: r.first_line,
                stamp: r.stamp.map(|s| input::FileStamp { len: s.len, modified_ns: s.modified_ns }),
                name: r.name.map(path_from_bytes),
            })
            .collect();
        input::Split { ranges }
    }
}

impl From<AttemptId> for pb::TaskRef {
    fn from(id: AttemptId) -> pb::TaskRef {
        pb::TaskRef { is_map: id.task.phase == Phase::Map, task_id: id.task.index, attempt: id.attempt }
    }
}

impl From<pb::TaskRef> for AttemptId {
    fn from(r: pb::TaskRef) -> AttemptId {
        let phase = if r.is_map { Phase::Map } else { Phase::Reduce };
        AttemptId { task: TaskId { phase, index: r.task_id }, attempt: r.attempt }
    }
}

/// `$counters` as a `$to`: the counters the two have alike, copied one by one, and `user`.
macro_rules! same_counters {
    ($($to:ident)::+, $counters:ident, $user:ident) => {
        $($to)::+ {
            input_records: $counters.input_records,
            input_bytes: $counters.input_bytes,
            output_records: $counters.output_records,
            output_bytes: $counters.output_bytes,
            groups: $counters.groups,
            skipped_records: $counters.skipped_records,
            combine_input_records: $counters.combine_input_records,
            combine_output_records: $counters.combine_output_records,
            spilled_records: $counters.spilled_records,
            user: $user,
        }
    };
}

impl From<TaskCounters> for pb::Counters {
    fn from(c: TaskCounters) -> pb::Counters {
        let user = c
            .user
            .iter()
            .flat_map(|(group, names)| {
                names.iter().map(|(name, &amount)| pb::UserCounter { group: group.clone(), name: name.clone(), amount })
            })
            .collect();
        same_counters!(pb::Counters, c, user)
    }
}

impl From<pb::Counters> for TaskCounters {
    fn from(c: pb::Counters) -> TaskCounters {
        let mut user = UserCounters::new();
        for u in c.user {
            // Saturating: the amounts come from a worker, and the sum must not overflow.
            let amount = user.entry(u.group).or_default().entry(u.name).or_default();
            *amount = amount.saturating_add(u.amount);
        }
        same_counters!(TaskCounters, c, user)
    }
}

impl From<Faults> for pb::FaultInjection {
    fn from(f: Faults) -> pb::FaultInjection {
        let phase = |p: PhaseFaults| pb::PhaseFaults {
            failure: p.failure,
            straggler: p.straggler,
            straggler_delay_ms: p.straggler_delay_ms,
        };
        pb::FaultInjection { map: Some(phase(f.map)), reduce: Some(phase(f.reduce)), seed: f.seed }
    }
}

impl From<pb::FaultInjection> for Faults {
    fn from(f: pb::FaultInjection) -> Faults {
        let phase = |p: Option<pb::PhaseFaults>| {
            let p = p.unwrap_or_default();
            PhaseFaults { failure: p.failure, straggler: p.straggler, straggler_delay_ms: p.straggler_delay_ms }
        };
        Faults { map: phase(f.map), reduce: phase(f.reduce), seed: f.seed }
    }
}

/// A reduce task of partition `partition` that reads `map_outputs`, as sent: each place the
/// outputs are (host, Shuffle URL, directory) once in `sources`, and each output as its task,
/// attempt, source and file name, so that a place is not repeated M times.
pub fn reduce_task<L: Borrow<MapOutputLocation>>(partition: u32, map_outputs: &[L]) -> pb::ReduceTask {
    let mut index: HashMap<(&str, &str, &str), u32> = HashMap::new();
    let mut sources = Vec::new();
    let map_outputs = map_outputs
        .iter()
        .map(|o| {
            let o = o.borrow();
            let (dir, file) = split_path(&o.path);
            let source = *index.entry((&o.host, &o.shuffle_url, dir)).or_insert_with(|| {
                sources.push(pb::MapOutputSource {
                    host: o.host.clone(),
                    shuffle_url: o.shuffle_url.clone(),
                    dir: dir.to_string(),
                });
                (sources.len() - 1) as u32
            });
            pb::MapOutput { map_task: o.map_task, attempt: o.attempt, source, file: file.to_string() }
        })
        .collect();
    pb::ReduceTask { partition, sources, map_outputs }
}

/// The map outputs a reduce task was sent ([`reduce_task`]); a map output whose source is not
/// in the list is an error.
pub fn map_output_locations(task: pb::ReduceTask) -> Result<Vec<MapOutputLocation>> {
    let sources = task.sources;
    task.map_outputs
        .into_iter()
        .map(|o| {
            let source = sources.get(o.source as usize).ok_or_else(|| {
                Error::Job(format!(
                    "the coordinator sent map task {}'s output with source {}, of {} sources",
                    o.map_task,
                    o.source,
                    sources.len()
                ))
            })?;
            Ok(MapOutputLocation {
                map_task: o.map_task,
                attempt: o.attempt,
                host: source.host.clone(),
                path: format!("{}{}", source.dir, o.file),
                shuffle_url: source.shuffle_url.clone(),
            })
        })
        .collect()
}

/// A path cut after its last `/` (the directory keeps it), so that the two parts joined are
/// the path again, whatever it is.
fn split_path(path: &str) -> (&str, &str) {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    path.split_at(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(map_task: u32, host: &str, path: &str) -> MapOutputLocation {
        MapOutputLocation {
            map_task,
            attempt: map_task % 2,
            host: host.into(),
            path: path.into(),
            shuffle_url: format!("http://{host}:7000"),
        }
    }

    #[test]
    fn a_reduce_task_names_each_source_once_and_reads_back_the_same() {
        let outputs = [
            location(0, "10.0.0.1", "/w/mr-worker-a/map-00000-0.out"),
            location(1, "10.0.0.2", "/w/mr-worker-b/map-00001-1.out"),
            location(2, "10.0.0.1", "/w/mr-worker-a/map-00002-0.out"),
            location(3, "10.0.0.1", "/w/mr-worker-c/map-00003-1.out"),
            location(4, "10.0.0.2", "relative.out"),
            location(5, "10.0.0.2", "/at-the-root"),
            location(6, "10.0.0.2", "/dir/"),
        ];
        let task = reduce_task(3, &outputs);
        assert_eq!(task.partition, 3);
        let sources: Vec<(&str, &str)> = task.sources.iter().map(|s| (s.host.as_str(), s.dir.as_str())).collect();
        assert_eq!(
            sources,
            [
                ("10.0.0.1", "/w/mr-worker-a/"),
                ("10.0.0.2", "/w/mr-worker-b/"),
                ("10.0.0.1", "/w/mr-worker-c/"),
                ("10.0.0.2", ""),
                ("10.0.0.2", "/"),
                ("10.0.0.2", "/dir/"),
            ]
        );
        assert_eq!(task.map_outputs[2].source, 0);
        assert_eq!(task.map_outputs[2].file, "map-00002-0.out");
        assert_eq!(map_output_locations(task).unwrap(), outputs);
    }

    #[test]
    fn a_map_output_of_an_unknown_source_is_an_error() {
        let mut task = reduce_task(0, &[location(0, "h", "/d/f")]);
        task.map_outputs[0].source = 1;
        let err = map_output_locations(task).unwrap_err().to_string();
        assert!(err.contains("map task 0's output with source 1, of 1 sources"), "{err}");
    }
}
