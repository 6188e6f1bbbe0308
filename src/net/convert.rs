//! Every conversion between `mr`'s own types and the protobuf messages of
//! `proto/mapreduce.proto`, in one place.

use std::path::{Path, PathBuf};

use crate::data::input;
use crate::exec::fault::{Faults, PhaseFaults};
use crate::net::rpc::pb;
use crate::net::shuffle::Location;
use crate::types::{AttemptId, Phase, TaskCounters, TaskId, UserCounters};

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

impl From<TaskCounters> for pb::Counters {
    fn from(c: TaskCounters) -> pb::Counters {
        let user = c
            .user
            .iter()
            .flat_map(|(group, names)| {
                names.iter().map(|(name, &amount)| pb::UserCounter { group: group.clone(), name: name.clone(), amount })
            })
            .collect();
        pb::Counters {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            groups: c.groups,
            skipped_records: c.skipped_records,
            combine_input_records: c.combine_input_records,
            combine_output_records: c.combine_output_records,
            spilled_records: c.spilled_records,
            user,
        }
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
        TaskCounters {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            groups: c.groups,
            skipped_records: c.skipped_records,
            combine_input_records: c.combine_input_records,
            combine_output_records: c.combine_output_records,
            spilled_records: c.spilled_records,
            user,
        }
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

impl From<pb::MapOutput> for Location {
    fn from(m: pb::MapOutput) -> Location {
        Location { map_task: m.map_task, attempt: m.attempt, host: m.host, path: m.path, shuffle_url: m.shuffle_url }
    }
}

impl From<Location> for pb::MapOutput {
    fn from(l: Location) -> pb::MapOutput {
        pb::MapOutput {
            map_task: l.map_task,
            attempt: l.attempt,
            host: l.host,
            path: l.path,
            shuffle_url: l.shuffle_url,
        }
    }
}
