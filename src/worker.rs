//! The worker: registers with the coordinator, pulls tasks, runs them, heartbeats, and reports
//! each attempt's outcome. It exits when the coordinator says the job is over, or when the
//! coordinator has been unreachable for longer than the lost-coordinator timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use tracing::Instrument;

use crate::coordinator::TEMPORARY;
use crate::error::{Error, Result};
use crate::fault::Faults;
use crate::input::InputFormat;
use crate::input::Split;
use crate::job::{Job, Registry, StateReader};
use crate::rpc::pb::coordinator_client::CoordinatorClient;
use crate::rpc::pb::state_client::StateClient;
use crate::rpc::{MAX_MESSAGE_BYTES, pb};
use crate::scheduler::{AttemptId, Phase};
use crate::task::{self, Progress, TaskCounters, TaskSettings, panic_message};

/// How a worker connects and when it gives up.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The coordinator's URL, e.g. `http://127.0.0.1:7000`.
    pub coordinator: String,
    /// How long to retry the first connection.
    pub connect_timeout: Duration,
    /// How long the coordinator may be unreachable before the worker exits.
    pub lost_timeout: Duration,
}

/// Connects to the coordinator, retrying with exponential backoff for up to `timeout`.
pub async fn connect(url: &str, timeout: Duration) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| Error::Unreachable { url: url.into(), reason: format!("invalid URL: {e}") })?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    let deadline = Instant::now() + timeout;
    let mut backoff = Duration::from_millis(20);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if Instant::now() + backoff >= deadline => {
                let reason = std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string());
                return Err(Error::Unreachable {
                    url: url.into(),
                    reason: format!("gave up after {timeout:?}: {reason}"),
                });
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn rpc(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Rpc { call, status: Box::new(status) }
}

/// Reads the coordinator's state store from a blocking thread.
struct RemoteState {
    client: StateClient<Channel>,
    runtime: tokio::runtime::Handle,
}

impl StateReader for RemoteState {
    fn get(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let request = pb::GetStateRequest { keys: keys.to_vec() };
        let reply = self.runtime.block_on(self.client.get_state(request)).map_err(rpc("GetState"))?.into_inner();
        Ok(reply.values.into_iter().map(|v| v.found.then_some(v.value)).collect())
    }
}

/// The name a worker process registers under.
pub fn process_name(pid: u32) -> String {
    format!("pid {pid}")
}

/// The attempt a worker is running, shared with its heartbeat.
#[derive(Clone)]
struct Current {
    attempt: AttemptId,
    progress: Arc<Progress>,
    cancel: CancellationToken,
}

type Shared<T> = Arc<Mutex<T>>;

/// Runs a worker until the job is over. Returns an error if the coordinator is lost.
pub async fn run(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    let url = options.coordinator.clone();
    let channel = connect(&url, options.connect_timeout).await?;
    let mut client = CoordinatorClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let name = process_name(std::process::id());
    let reply =
        client.register_worker(pb::RegisterWorkerRequest { name }).await.map_err(rpc("RegisterWorker"))?.into_inner();
    let worker_id = reply.worker_id;
    let spec = reply.job.ok_or_else(|| Error::Job("the coordinator sent no job".into()))?;
    tracing::info!(worker = worker_id, job = spec.job_name, "registered");

    let job = {
        let client = StateClient::new(channel.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut state = RemoteState { client, runtime: tokio::runtime::Handle::current() };
        let (name, args) = (spec.job_name.clone(), spec.job_args.clone());
        tokio::task::spawn_blocking(move || registry.get(&name)?.build(&args, &mut state))
            .await
            .map_err(|e| Error::Job(format!("building the job panicked: {e}")))??
    };

    let stop = CancellationToken::new();
    let lost: Shared<Option<Error>> = Arc::default();
    let current: Shared<Option<Current>> = Arc::default();
    // Every log line of this worker carries the job and the worker id.
    let job_span = tracing::info_span!("job", job = %spec.job_name, worker = worker_id);
    let heartbeat = tokio::spawn(
        heartbeat_loop(
            client.clone(),
            worker_id,
            Duration::from_millis(reply.heartbeat_interval_ms.max(10)),
            options.lost_timeout,
            url.clone(),
            stop.clone(),
            lost.clone(),
            current.clone(),
        )
        .instrument(job_span.clone()),
    );
    let context = Context { worker_id, spec, job, current };
    let result = task_loop(&mut client, &context, &options, &stop).instrument(job_span).await;
    stop.cancel();
    heartbeat.abort();
    if let Some(e) = lost.lock().expect("lock poisoned").take() {
        return Err(e);
    }
    result
}

/// What every attempt of this worker needs.
struct Context {
    worker_id: u64,
    spec: pb::JobSpec,
    job: Arc<dyn Job>,
    current: Shared<Option<Current>>,
}

#[allow(clippy::too_many_arguments)]
async fn heartbeat_loop(
    mut client: CoordinatorClient<Channel>,
    worker_id: u64,
    interval: Duration,
    lost_timeout: Duration,
    url: String,
    stop: CancellationToken,
    lost: Shared<Option<Error>>,
    current: Shared<Option<Current>>,
) {
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let running = current.lock().expect("lock poisoned").clone();
        let request = pb::HeartbeatRequest {
            worker_id,
            running: running.as_ref().map(|c| c.attempt.into()),
            records: running.as_ref().map_or(0, |c| c.progress.records.load(Ordering::Relaxed)),
            bytes: running.as_ref().map_or(0, |c| c.progress.bytes.load(Ordering::Relaxed)),
        };
        match tokio::time::timeout(interval.max(Duration::from_secs(1)), client.heartbeat(request)).await {
            Ok(Ok(reply)) => {
                last_ok = Instant::now();
                let reply = reply.into_inner();
                if reply.exit {
                    tracing::info!("the coordinator ended the job");
                    stop.cancel();
                    return;
                }
                if let Some(c) = running
                    && reply.cancel.iter().any(|t| AttemptId::from(*t) == c.attempt)
                {
                    tracing::info!(attempt = %c.attempt, "cancelled by the coordinator");
                    c.progress.cancel();
                    c.cancel.cancel();
                }
            }
            Ok(Err(_)) | Err(_) if last_ok.elapsed() > lost_timeout => {
                let reason = format!("no answer for {:.1} s", last_ok.elapsed().as_secs_f64());
                *lost.lock().expect("lock poisoned") = Some(Error::Unreachable { url, reason });
                stop.cancel();
                return;
            }
            _ => {}
        }
    }
}

async fn task_loop(
    client: &mut CoordinatorClient<Channel>,
    context: &Context,
    options: &WorkerOptions,
    stop: &CancellationToken,
) -> Result<()> {
    let mut last_ok = Instant::now();
    loop {
        let call = client.get_task(pb::GetTaskRequest { worker_id: context.worker_id });
        let reply = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            reply = call => reply,
        };
        let reply = match reply {
            Ok(reply) => {
                last_ok = Instant::now();
                reply.into_inner().reply
            }
            Err(status) if last_ok.elapsed() > options.lost_timeout => {
                let reason = format!("no answer for {:.1} s: {}", last_ok.elapsed().as_secs_f64(), status.message());
                return Err(Error::Unreachable { url: options.coordinator.clone(), reason });
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match reply {
            None | Some(pb::get_task_reply::Reply::Exit(_)) => return Ok(()),
            Some(pb::get_task_reply::Reply::WaitMs(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(pb::get_task_reply::Reply::Task(task)) => {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    result = run_attempt(client, context, task) => result?,
                }
            }
        }
    }
}

/// Runs one attempt and reports its outcome. Errors of the attempt itself are reported to
/// the coordinator; only RPC errors are returned.
async fn run_attempt(client: &mut CoordinatorClient<Channel>, context: &Context, task: pb::Task) -> Result<()> {
    let Some(kind) = &task.kind else { return Err(Error::Job("the coordinator sent a task without a kind".into())) };
    let phase = match kind {
        pb::task::Kind::Map(_) => Phase::Map,
        pb::task::Kind::Reduce(_) => Phase::Reduce,
    };
    let attempt = AttemptId { task: crate::scheduler::TaskId { phase, index: task.task_id }, attempt: task.attempt };
    // Every log line of the attempt carries its task and attempt.
    let span = tracing::info_span!("attempt", task = %attempt.task, attempt = attempt.attempt);
    run_attempt_in_span(client, context, task).instrument(span).await
}

async fn run_attempt_in_span(client: &mut CoordinatorClient<Channel>, context: &Context, task: pb::Task) -> Result<()> {
    let Some(kind) = task.kind else { return Err(Error::Job("the coordinator sent a task without a kind".into())) };
    let spec = &context.spec;
    let phase = match kind {
        pb::task::Kind::Map(_) => Phase::Map,
        pb::task::Kind::Reduce(_) => Phase::Reduce,
    };
    let attempt = AttemptId { task: crate::scheduler::TaskId { phase, index: task.task_id }, attempt: task.attempt };
    let settings = TaskSettings {
        partitions: spec.reduce_tasks,
        sort_buffer: spec.sort_buffer_bytes.max(1),
        merge_fan_in: spec.merge_fan_in.max(2) as usize,
    };
    let work = match kind {
        pb::task::Kind::Map(m) => {
            let split = m.split.ok_or_else(|| Error::Job("map task without a split".into()))?;
            let split =
                Split { path: split.path.into(), start: split.start, end: split.end, first_line: split.first_line };
            let output =
                Path::new(&spec.work_dir).join(format!("map-{:05}-{}.out", attempt.task.index, attempt.attempt));
            let format = InputFormat::from_name(&spec.input_format)
                .ok_or_else(|| Error::Job(format!("unknown input format '{}'", spec.input_format)))?;
            Work::Map { split, format, skip: m.skip_records, output }
        }
        pb::task::Kind::Reduce(r) => {
            let tmp_dir = Path::new(&spec.output_dir).join(TEMPORARY);
            let name = format!("part-r-{:05}", r.partition);
            Work::Reduce {
                partition: r.partition,
                map_outputs: r.map_outputs.into_iter().map(PathBuf::from).collect(),
                tmp: tmp_dir.join(format!("{name}.attempt-{}", attempt.attempt)),
                output: Path::new(&spec.output_dir).join(name),
            }
        }
    };
    let current = Current { attempt, progress: Arc::new(Progress::default()), cancel: CancellationToken::new() };
    *context.current.lock().expect("lock poisoned") = Some(current.clone());
    let outcome = execute(context, &work, &current, settings).await;
    *context.current.lock().expect("lock poisoned") = None;
    let task_ref = Some(pb::TaskRef::from(attempt));
    let worker_id = context.worker_id;
    match outcome {
        None => {
            work.discard();
            Ok(())
        }
        Some(Err(e)) => {
            work.discard();
            tracing::warn!(error = %e, "attempt failed");
            let (bad_record, lost_map_task) = match &work {
                Work::Map { .. } => (current.progress.bad_record(), None),
                Work::Reduce { map_outputs, .. } => (None, lost_map_output(&e, map_outputs)),
            };
            let request =
                pb::ReportFailureRequest { worker_id, task: task_ref, error: e.to_string(), bad_record, lost_map_task };
            client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
            Ok(())
        }
        Some(Ok(counters)) => {
            let output = match &work {
                Work::Map { output, .. } => output.clone(),
                Work::Reduce { tmp, output, .. } => {
                    let request = pb::CommitTaskRequest { worker_id, task: task_ref };
                    if !client.commit_task(request).await.map_err(rpc("CommitTask"))?.into_inner().granted {
                        tracing::info!("commit refused: another attempt committed this task");
                        work.discard();
                        return Ok(());
                    }
                    if let Err(e) = std::fs::rename(tmp, output) {
                        let error = Error::io("cannot commit output to", output)(e).to_string();
                        let request =
                            pb::ReportFailureRequest { worker_id, task: task_ref, error, ..Default::default() };
                        client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
                        return Ok(());
                    }
                    output.clone()
                }
            };
            report(client, worker_id, attempt, &output, counters, &work).await
        }
    }
}

/// Runs the attempt's work on a blocking thread, with its injected faults. `None` when the
/// attempt was cancelled.
async fn execute(
    context: &Context,
    work: &Work,
    current: &Current,
    settings: TaskSettings,
) -> Option<Result<TaskCounters>> {
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
    let (job, work, progress) = (context.job.clone(), work.clone(), current.progress.clone());
    let result = tokio::task::spawn_blocking(move || work.run(job.as_ref(), &settings, &progress)).await;
    let result = match result {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(Error::Job(format!("panicked: {}", panic_message(e.into_panic().as_ref())))),
        Err(e) => Err(Error::Job(format!("was cancelled: {e}"))),
    };
    if current.cancel.is_cancelled() { None } else { Some(result) }
}

/// The index of the map output that a failed reduce could not read, if that is the failure.
fn lost_map_output(error: &Error, map_outputs: &[PathBuf]) -> Option<u32> {
    let path = match error {
        Error::CorruptMapOutput { path, .. } => path,
        Error::Io { path, .. } => path,
        _ => return None,
    };
    map_outputs.iter().position(|p| p == path).map(|i| i as u32)
}

async fn report(
    client: &mut CoordinatorClient<Channel>,
    worker_id: u64,
    attempt: AttemptId,
    output: &Path,
    counters: TaskCounters,
    work: &Work,
) -> Result<()> {
    let request = pb::ReportCompletionRequest {
        worker_id,
        task: Some(attempt.into()),
        output: output.to_string_lossy().into_owned(),
        counters: Some(counters.into()),
    };
    let accepted = client.report_completion(request).await.map_err(rpc("ReportCompletion"))?.into_inner().accepted;
    if !accepted && matches!(work, Work::Map { .. }) {
        // Another attempt's map output is the task's; this one is never read.
        work.discard();
    }
    Ok(())
}

#[derive(Clone)]
enum Work {
    Map { split: Split, format: InputFormat, skip: Vec<u64>, output: PathBuf },
    Reduce { partition: u32, map_outputs: Vec<PathBuf>, tmp: PathBuf, output: PathBuf },
}

impl Work {
    fn run(&self, job: &dyn Job, settings: &TaskSettings, progress: &Progress) -> Result<TaskCounters> {
        match self {
            Work::Map { split, format, skip, output } => {
                task::run_map(job, split, *format, settings, skip, output, progress)
            }
            Work::Reduce { partition, map_outputs, tmp, .. } => {
                if let Some(dir) = tmp.parent() {
                    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
                }
                task::run_reduce(job, *partition, settings, map_outputs, tmp, progress)
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
    }
}
