//! One attempt on a worker: the task message made into [`Work`], its injected faults, the
//! reduce side's gathering of its inputs (read in place on this host, else fetched through the
//! Shuffle services), the run on a blocking thread, then the commit (a reduce attempt asks
//! CommitTask and moves its part file into OUT) and the report of its outcome.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::data::input::{InputFormat, Split};
use crate::error::{Error, Result};
use crate::exec::fault::Faults;
use crate::exec::task::{self, AttemptProgress, TaskSettings, panic_message};
use crate::job::Job;
use crate::net::rpc::pb::coordinator_client::CoordinatorClient;
use crate::net::rpc::{AuthChannel, pb};
use crate::net::shuffle;
use crate::types::{AttemptId, MapOutputLocation, Phase, TaskCounters, TaskId};
use crate::worker::heartbeat::Current;
use crate::worker::{Context, rpc};

/// Runs one attempt and reports its outcome. Errors of the attempt itself are reported to
/// the coordinator; only RPC and protocol errors are returned.
pub(super) async fn run_attempt(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    task: pb::Task,
) -> Result<()> {
    let Some(kind) = task.kind else { return Err(Error::Job("the coordinator sent a task without a kind".into())) };
    let phase = match kind {
        pb::task::Kind::Map(_) => Phase::Map,
        pb::task::Kind::Reduce(_) => Phase::Reduce,
    };
    let attempt = AttemptId { task: TaskId { phase, index: task.task_id }, attempt: task.attempt };
    // Every log line of the attempt carries its task and attempt.
    let span = tracing::info_span!("attempt", task = %attempt.task, attempt = attempt.attempt);
    run_attempt_in_span(client, context, attempt, kind).instrument(span).await
}

async fn run_attempt_in_span(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    attempt: AttemptId,
    kind: pb::task::Kind,
) -> Result<()> {
    let mut work = Work::new(context, attempt, kind)?;
    let current = Current { attempt, progress: Arc::new(AttemptProgress::default()), cancel: CancellationToken::new() };
    *context.current.lock().expect("lock poisoned") = Some(current.clone());
    let outcome = execute(context, &mut work, &current).await;
    *context.current.lock().expect("lock poisoned") = None;
    match outcome {
        None => {
            work.discard();
            Ok(())
        }
        Some(Err(e)) => {
            work.discard();
            report_failure(client, context, attempt, &work, &current.progress, e).await
        }
        Some(Ok(counters)) => {
            let Some(output) = commit(client, context, attempt, &work).await? else { return Ok(()) };
            work.discard_fetched();
            report(client, context, attempt, &output, counters, &work).await
        }
    }
}

/// Puts a finished attempt's output in place: a map output joins the table the Shuffle
/// service serves; a reduce attempt asks for the commit and, granted, moves its part file
/// into OUT. Returns where the output is, or `None` when the commit was refused or failed
/// (then reported).
async fn commit(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    attempt: AttemptId,
    work: &Work,
) -> Result<Option<PathBuf>> {
    match work {
        Work::Map { output, .. } => {
            context.outputs.insert(attempt.task.index, attempt.attempt, output.clone());
            Ok(Some(output.clone()))
        }
        Work::Reduce { tmp, output, .. } => {
            let (worker_id, task) = (context.worker_id.load(Ordering::Relaxed), Some(pb::TaskRef::from(attempt)));
            let request = pb::CommitTaskRequest { worker_id, task };
            if !client.commit_task(request).await.map_err(rpc("CommitTask"))?.into_inner().granted {
                tracing::info!("commit refused: another attempt committed this task");
                work.discard();
                return Ok(None);
            }
            let (from, to) = (tmp.clone(), output.clone());
            let committed = tokio::task::spawn_blocking(move || crate::data::storage::commit(&from, &to))
                .await
                .unwrap_or_else(|e| Err(Error::Job(format!("the commit panicked: {e}"))));
            if let Err(e) = committed {
                let request = pb::ReportFailureRequest { worker_id, task, error: e.to_string(), ..Default::default() };
                client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
                return Ok(None);
            }
            Ok(Some(output.clone()))
        }
    }
}

/// Reports a failed attempt, with the record a map attempt failed on, or the map output a
/// reduce attempt could not read.
async fn report_failure(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    attempt: AttemptId,
    work: &Work,
    progress: &AttemptProgress,
    error: Error,
) -> Result<()> {
    tracing::warn!(%error, "attempt failed");
    let (bad_record, lost) = match work {
        Work::Map { .. } => (progress.bad_record(), None),
        Work::Reduce { locations, inputs, .. } => (None, lost_map_output(&error, locations, inputs)),
    };
    let request = pb::ReportFailureRequest {
        worker_id: context.worker_id.load(Ordering::Relaxed),
        task: Some(attempt.into()),
        error: error.to_string(),
        bad_record,
        lost_map_task: lost.map(|l| l.0),
        lost_map_attempt: lost.map_or(0, |l| l.1),
        lost_map_unreachable: lost.is_some_and(|l| l.2),
    };
    client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
    Ok(())
}

/// Runs the attempt's work on a blocking thread, with its injected faults. `None` when the
/// attempt was cancelled.
async fn execute(context: &Context, work: &mut Work, current: &Current) -> Option<Result<TaskCounters>> {
    let faults = Faults::from(context.spec.faults.unwrap_or_default()).for_attempt(current.attempt);
    if let Some(delay) = faults.delay {
        tracing::info!(?delay, "injected straggler: sleeping");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = current.cancel.cancelled() => return None,
        }
    }
    if let Some(records) = faults.crash_at_records {
        current.progress.crash_at_records.store(records, Ordering::Relaxed);
    }
    if let Work::Reduce { partition, locations, inputs, fetched, .. } = work {
        tokio::select! {
            result = gather(context, *partition, locations, fetched, &current.progress) => match result {
                Ok(gathered) => *inputs = gathered,
                Err(e) => return Some(Err(e)),
            },
            _ = current.cancel.cancelled() => return None,
        }
    }
    let settings = context.settings();
    let (job, work, progress) = (context.job.clone(), work.clone(), current.progress.clone());
    let result = tokio::task::spawn_blocking(move || work.run(job.as_ref(), &settings, &progress)).await;
    let result = match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::Job(format!("panicked: {}", panic_message(e.into_panic().as_ref())))),
        Err(e) => Err(Error::Job(format!("was cancelled: {e}"))),
    };
    if current.cancel.is_cancelled() { None } else { Some(result) }
}

/// Fetches in parallel at most this many map outputs.
const PARALLEL_FETCHES: usize = 4;

/// The reduce's inputs: partition `partition` of every map output, read in place when it is
/// on this host, else fetched into `fetched` from the worker that holds it.
async fn gather(
    context: &Context,
    partition: u32,
    locations: &[MapOutputLocation],
    fetched: &Path,
    progress: &Arc<AttemptProgress>,
) -> Result<Vec<task::ReduceInput>> {
    let partitions = context.spec.reduce_tasks;
    let mut inputs: Vec<Option<task::ReduceInput>> = vec![None; locations.len()];
    let mut remote = Vec::new();
    for (i, location) in locations.iter().enumerate() {
        let path = PathBuf::from(&location.path);
        if location.host == context.host && path.is_file() {
            inputs[i] = Some((path, partition, partitions));
        } else {
            remote.push(i);
        }
    }
    if !remote.is_empty() {
        std::fs::create_dir_all(fetched).map_err(Error::io("cannot create", fetched))?;
    }
    let mut running = tokio::task::JoinSet::new();
    let mut pending = remote.into_iter();
    loop {
        while running.len() < PARALLEL_FETCHES {
            let Some(i) = pending.next() else { break };
            let (location, progress) = (locations[i].clone(), progress.clone());
            let (token, tls) = (context.token.clone(), context.tls.clone());
            let dest = fetched.join(format!("map-{:05}.out", location.map_task));
            running.spawn(async move {
                let on_chunk = |bytes: u64| {
                    progress.bytes.fetch_add(bytes, Ordering::Relaxed);
                };
                shuffle::fetch(&location, partition, &dest, &token, tls.as_ref(), &on_chunk).await.map(|()| (i, dest))
            });
        }
        let Some(joined) = running.join_next().await else { break };
        let (i, dest) = joined.map_err(|e| Error::Job(format!("a fetch panicked: {e}")))??;
        inputs[i] = Some((dest, 0, 1));
    }
    Ok(inputs.into_iter().map(|i| i.expect("every input is local or fetched")).collect())
}

/// The map output that a failed reduce could not read, if that is the failure: (map task,
/// attempt, whether it was unreachable rather than corrupt).
fn lost_map_output(
    error: &Error,
    locations: &[MapOutputLocation],
    inputs: &[task::ReduceInput],
) -> Option<(u32, u32, bool)> {
    let path = match error {
        Error::LostMapOutput { map_task, attempt, .. } => return Some((*map_task, *attempt, true)),
        Error::CorruptMapOutput { path, .. } => path,
        Error::Io { path, .. } => path,
        _ => return None,
    };
    let i = inputs.iter().position(|(p, ..)| p == path)?;
    locations.get(i).map(|l| (l.map_task, l.attempt, false))
}

/// Reports a completed attempt. A map output the coordinator did not accept (another
/// attempt's is the task's, or the call failed) is removed: it is never read.
async fn report(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    attempt: AttemptId,
    output: &Path,
    counters: TaskCounters,
    work: &Work,
) -> Result<()> {
    let request = pb::ReportCompletionRequest {
        worker_id: context.worker_id.load(Ordering::Relaxed),
        task: Some(attempt.into()),
        output: output.to_string_lossy().into_owned(),
        counters: Some(counters.into()),
    };
    let accepted = client.report_completion(request).await.map(|r| r.into_inner().accepted);
    if !accepted.as_ref().is_ok_and(|&a| a) && matches!(work, Work::Map { .. }) {
        context.outputs.remove(attempt.task.index, attempt.attempt);
        work.discard();
    }
    accepted.map(|_| ()).map_err(rpc("ReportCompletion"))
}

/// What an attempt does, and the files it reads and writes.
#[derive(Clone)]
enum Work {
    Map {
        split: Split,
        format: InputFormat,
        skip: Vec<u64>,
        output: PathBuf,
    },
    Reduce {
        partition: u32,
        /// Where the map outputs are.
        locations: Vec<MapOutputLocation>,
        /// The files the reduce reads, once gathered.
        inputs: Vec<task::ReduceInput>,
        /// Where fetched map outputs go.
        fetched: PathBuf,
        tmp: PathBuf,
        output: PathBuf,
    },
}

impl Work {
    /// The work of `attempt`, from its task message.
    fn new(context: &Context, attempt: AttemptId, kind: pb::task::Kind) -> Result<Work> {
        let spec = &context.spec;
        match kind {
            pb::task::Kind::Map(m) => {
                let split = m.split.ok_or_else(|| Error::Job("map task without a split".into()))?;
                let output = context.work_dir.join(format!("map-{:05}-{}.out", attempt.task.index, attempt.attempt));
                let format = InputFormat::from_name(&spec.input_format)
                    .ok_or_else(|| Error::Job(format!("unknown input format '{}'", spec.input_format)))?;
                Ok(Work::Map { split: Split::from(split), format, skip: m.skip_records, output })
            }
            pb::task::Kind::Reduce(r) => {
                // The attempt writes under the worker's own directory, never into OUT: only the
                // commit grant moves its file there, so an attempt still running when the job
                // commits (a beaten backup, a cancelled one) cannot write into a committed output.
                let output_dir = crate::net::convert::path_from_bytes(spec.output_dir.clone());
                let name = format!("part-r-{:05}", r.partition);
                Ok(Work::Reduce {
                    partition: r.partition,
                    fetched: context.work_dir.join(format!("fetch-{:05}-{}", r.partition, attempt.attempt)),
                    tmp: context.work_dir.join("output").join(format!("{name}.attempt-{}", attempt.attempt)),
                    output: output_dir.join(name),
                    locations: crate::net::convert::map_output_locations(r)?,
                    inputs: Vec::new(),
                })
            }
        }
    }

    fn run(&self, job: &dyn Job, settings: &TaskSettings, progress: &AttemptProgress) -> Result<TaskCounters> {
        match self {
            Work::Map { split, format, skip, output } => {
                task::run_map(job, split, *format, settings, skip, output, progress)
            }
            Work::Reduce { inputs, tmp, .. } => {
                if let Some(dir) = tmp.parent() {
                    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
                }
                task::run_reduce(job, settings, inputs, tmp, progress)
            }
        }
    }

    /// Removes what this attempt wrote that will never be read.
    fn discard(&self) {
        let path = match self {
            Work::Map { output, .. } => output,
            Work::Reduce { tmp, .. } => tmp,
        };
        let _ = std::fs::remove_file(path);
        self.discard_fetched();
    }

    /// Removes the map outputs a reduce fetched.
    fn discard_fetched(&self) {
        if let Work::Reduce { fetched, .. } = self {
            let _ = std::fs::remove_dir_all(fetched);
        }
    }
}
