//! Local mode (`mr run --local`): the same job run sequentially in this process, with the same
//! task code but no RPC and no worker processes. It is for debugging, and it is the oracle the
//! tests compare distributed runs with.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::control::plan::Plan;
use crate::control::scheduler::{AttemptRecord, Outcome};
use crate::error::{Error, Result};
use crate::exec::task::{self, AttemptProgress};
use crate::job::{Job, Registry};
use crate::layout::{SUCCESS, TEMPORARY};
use crate::report::summary::{PhaseSummary, Summary};
use crate::types::TaskCounters;
use crate::types::{AttemptId, Millis, Phase, TaskId};

/// Runs a planned job sequentially and commits its output. Cancelling `progress` stops it
/// at its next checkpoint, and the output directory is then cleaned.
pub fn run(registry: &Registry, job_name: &str, plan: Plan, progress: &AttemptProgress) -> Result<Summary> {
    let started = Instant::now();
    let now = || started.elapsed().as_millis() as Millis;
    let mut state: HashMap<String, Vec<u8>> = plan.prepared.state.iter().cloned().collect();
    let job = registry.build(job_name, &plan.job_args, &mut state)?;
    let work_dir = tempfile::Builder::new()
        .prefix("mr-work-")
        .tempdir()
        .map_err(Error::io("cannot create work directory in", std::env::temp_dir()))?;
    let mut attempts = Vec::new();
    let mut record = |phase, index, start| {
        let id = AttemptId { task: TaskId { phase, index }, attempt: 0 };
        attempts.push(AttemptRecord {
            speculative: false,
            id,
            worker: 0,
            start_ms: start,
            end_ms: Some(now()),
            outcome: Outcome::Committed,
        });
    };

    let out = plan.output.path().to_path_buf();
    let objects = crate::data::storage::is_url(&out);
    let tmp_dir = if objects { work_dir.path().join("output") } else { out.join(TEMPORARY) };
    let mut record_map = |i, start| record(Phase::Map, i, start);
    let (map_counters, map_outputs) =
        run_maps(job.as_ref(), &plan, (work_dir.path(), &tmp_dir), progress, &now, &mut record_map)?;

    std::fs::create_dir_all(&tmp_dir).map_err(Error::io("cannot create", &tmp_dir))?;
    let mut reduce_counters = TaskCounters::default();
    for p in 0..plan.reduce_tasks {
        let start = now();
        let name = task::part_name(p, plan.settings.output_compression);
        let tmp: PathBuf = tmp_dir.join(format!("{name}.attempt-0"));
        let inputs: Vec<task::ReduceInput> =
            map_outputs.iter().map(|path| (path.clone(), p, plan.settings.partitions)).collect();
        let info = task::reduce_attempt(p, 0, work_dir.path());
        reduce_counters += &task::with_attempt(job.as_ref(), &info, || {
            task::run_reduce(job.as_ref(), &plan.settings, &inputs, &tmp, progress)
        })
        .map_err(|e| in_task(Phase::Reduce, p as usize, e))?;
        crate::data::storage::commit(&tmp, &crate::data::storage::join(&out, &name))?;
        record(Phase::Reduce, p, start);
    }
    if !objects {
        std::fs::remove_dir_all(&tmp_dir).map_err(Error::io("cannot remove", &tmp_dir))?;
    }
    crate::data::storage::write(&crate::data::storage::join(&out, SUCCESS), Vec::new())?;
    let committed = now();
    drop(work_dir);
    let summary = Summary {
        job: job_name.to_string(),
        mode: "local",
        succeeded: true,
        interrupted: false,
        error: None,
        output: out.display().to_string(),
        map: PhaseSummary::from_attempts(Phase::Map, plan.splits.len() as u32, map_counters, &attempts),
        reduce: PhaseSummary::from_attempts(Phase::Reduce, plan.reduce_tasks, reduce_counters, &attempts),
        wall_ms: now(),
        committed_ms: Some(committed),
        workers: Vec::new(),
        speculative_attempts: 0,
        attempts,
        notes: plan.notes.clone(),
        view: None,
    };
    plan.output.keep();
    Ok(summary)
}

/// Runs the map tasks in order: into map output files in `work_dir`, returned; or, for a
/// map-only job, into part files written in `tmp_dir` and committed into the output.
/// `record(task, start)` records each committed attempt, `now` telling the time.
fn run_maps(
    job: &dyn Job,
    plan: &Plan,
    (work_dir, tmp_dir): (&Path, &Path),
    progress: &AttemptProgress,
    now: &dyn Fn() -> Millis,
    record: &mut dyn FnMut(u32, Millis),
) -> Result<(TaskCounters, Vec<PathBuf>)> {
    let map_only = plan.reduce_tasks == 0;
    if map_only {
        std::fs::create_dir_all(tmp_dir).map_err(Error::io("cannot create", tmp_dir))?;
    }
    let (format, settings) = (plan.input_format, &plan.settings);
    let mut counters = TaskCounters::default();
    let mut map_outputs = Vec::with_capacity(plan.splits.len());
    for (i, split) in plan.splits.iter().enumerate() {
        let start = now();
        let info = task::map_attempt(i as u32, 0, work_dir, split);
        let name = map_only.then(|| crate::exec::maponly::part_name(i as u32, settings.output_compression));
        let output = match &name {
            Some(name) => tmp_dir.join(format!("{name}.attempt-0")),
            None => work_dir.join(format!("map-{i:05}-0.out")),
        };
        counters += &task::with_attempt(job, &info, || match name {
            Some(_) => crate::exec::maponly::run_map_only(job, split, format, settings, &[], &output, progress),
            None => task::run_map(job, split, format, settings, &[], &output, progress),
        })
        .map_err(|e| in_task(Phase::Map, i, e))?;
        match name {
            Some(name) => {
                crate::data::storage::commit(&output, &crate::data::storage::join(plan.output.path(), &name))?
            }
            None => map_outputs.push(output),
        }
        record(i as u32, start);
    }
    Ok((counters, map_outputs))
}

fn in_task(phase: Phase, index: usize, e: Error) -> Error {
    if matches!(e, Error::Interrupted) {
        return e;
    }
    Error::TaskFailed {
        task: TaskId { phase, index: index as u32 }.to_string(),
        attempts: 1,
        last_error: e.to_string(),
    }
}
