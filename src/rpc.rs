//! The generated gRPC types and the conversions between them and the engine's own types.
//! Only this module, the coordinator's service and the worker's client see tonic and prost.

#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("mapreduce");
}

use crate::scheduler::{AttemptId, Phase, TaskId};

/// Most bytes a request or reply may have: the protocol carries metadata only.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

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

impl From<crate::task::TaskCounters> for pb::Counters {
    fn from(c: crate::task::TaskCounters) -> pb::Counters {
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

impl From<pb::Counters> for crate::task::TaskCounters {
    fn from(c: pb::Counters) -> crate::task::TaskCounters {
        let mut user = crate::job::UserCounters::new();
        for u in c.user {
            *user.entry(u.group).or_default().entry(u.name).or_default() += u.amount;
        }
        crate::task::TaskCounters {
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
