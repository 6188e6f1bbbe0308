//! `mr run` in distributed mode: a coordinator in this process, worker processes of this same
//! binary, and the supervision that makes sure none of them outlives the job.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::control::coordinator::{Coordinator, CoordinatorConfig};
use crate::control::journal::{Identity, Journal, Recovered};
use crate::control::plan::Plan;
use crate::control::scheduler::JobState;
use crate::error::{Error, Result};
use crate::exec::fault::Faults;
use crate::launch::interrupted::keep_for_resume;
use crate::report::progress::{ProgressMode, show};
use crate::report::summary::{PhaseSummary, Summary, WorkerSummary};
use crate::settings::FaultTolerance;
use crate::types::{Millis, Phase};

/// Settings of a distributed run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Number of worker processes.
    pub workers: u32,
    /// Address for the coordinator's gRPC server; a free loopback port when absent.
    pub listen: Option<String>,
    /// Timeouts, retries, backups, bad records, and whether the journal records a content
    /// hash of every input file (which `--resume` checks).
    pub tolerance: FaultTolerance,
    /// Faults to inject.
    pub faults: Faults,
    /// Extra arguments for `mr worker` (e.g. log settings).
    pub worker_args: Vec<String>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Address of the status server (HTML page, JSON API, metrics); none when absent.
    pub http: Option<String>,
    /// Print the status page's address on stderr at start.
    pub announce: bool,
    /// The token every call must carry. `mr run` makes a random one when none is given, and
    /// hands it to its workers.
    pub token: Option<String>,
    /// TLS on every service; `mr run` hands its files to its workers.
    pub tls: Option<crate::net::rpc::Tls>,
    /// How the job was asked for, for the status page.
    pub about: crate::report::status::About,
    /// `mr coordinator`: workers join from other hosts (their map outputs are re-executed when
    /// they are lost), and the coordinator waits for them to hear that the job is over.
    pub standalone: bool,
}

/// How long workers get to exit by themselves after the job ends before they are killed.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Runs a planned job with worker processes. Returns the summary of a committed job; on
/// failure the output directory is cleaned, and on an interrupt it is kept for `--resume`
/// when it has a journal ([`settle`]).
pub async fn run_job(job_name: &str, mut plan: Plan, config: RunConfig) -> std::result::Result<Summary, Failed> {
    // Each worker process logs to its own file in `logs`; kept when the job fails. A resumed
    // job logs on in the directory of the run it continues.
    let (work_dir, journal, recovered, logs) = open_journal(job_name, &mut plan, config.tolerance.verify_inputs)?;
    let (listener, local, url) = listen(config.listen.as_deref().unwrap_or("127.0.0.1:0"), config.tls.as_ref()).await?;
    let (token, token_text) = job_token(&config, local)?;
    let coordinator_config = coordinator_config(job_name, &plan, &config, token);
    let coordinator = Coordinator::with_journal(coordinator_config, journal.clone(), recovered);
    if config.standalone && config.announce {
        eprintln!("coordinator: {url}");
    }
    let shutdown = CancellationToken::new();
    let status = start_status_server(&config, &coordinator, logs.path(), &shutdown).await?;
    let server = tokio::spawn(coordinator.clone().serve(listener, shutdown.clone()));

    let progress_stop = CancellationToken::new();
    let progress = tokio::spawn(show(coordinator.clone(), plan.input_bytes, config.progress, progress_stop.clone()));
    let worker_args = worker_args(&config, &work_dir);
    let mut supervisor = Supervisor::new(url, worker_args, token_text, logs.path().to_path_buf())?;
    let outcome = supervise(&coordinator, &mut supervisor, &config).await;
    if config.standalone && outcome.is_ok() {
        // Workers on other hosts learn that the job is over at their next call.
        let deadline = tokio::time::Instant::now() + EXIT_GRACE;
        while !coordinator.workers_told_to_exit() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    progress_stop.cancel();
    let _ = progress.await;
    supervisor.stop_all(&coordinator).await;
    let served = stop_servers(shutdown, server, status).await;
    if let Some(journal) = &journal {
        journal.close();
    }

    let (mut summary, error) = summarize(job_name, &plan, &coordinator, &supervisor, &outcome, served);
    summary.view = Some(crate::report::status::snapshot(&coordinator));
    let Some(e) = error else {
        drop(work_dir);
        remove_partial_writes(plan.output.path());
        plan.output.keep();
        drop(logs);
        return Ok(summary);
    };
    let error = match outcome {
        Err(e) => e,
        Ok(()) => Error::Job(e),
    };
    let error = settle(error, plan, work_dir, logs, journal.as_deref());
    summary.error = Some(error.to_string());
    Err(Failed { error, summary: Some(Box::new(summary)) })
}

/// Removes from a committed `file://` output what attempts killed in the middle of writing a
/// part left (backups stopped when the other attempt committed); every worker has exited.
fn remove_partial_writes(output: &std::path::Path) {
    if !crate::data::storage::is_url(output) {
        return;
    }
    let removed = crate::data::storage::Object::parse(&output.to_string_lossy())
        .and_then(|prefix| prefix.remove_partial_writes());
    if let Err(e) = removed {
        tracing::warn!(output = %output.display(), error = %e, "cannot remove unfinished writes");
    }
}

/// A distributed run that did not commit: its error, and its summary when the job got as far
/// as running (`--json` prints it).
#[derive(Debug)]
pub struct Failed {
    /// Why the job did not commit.
    pub error: Error,
    /// The summary of what ran (`succeeded` false, `error` set).
    pub summary: Option<Box<Summary>>,
}

impl From<Error> for Failed {
    fn from(error: Error) -> Failed {
        Failed { error, summary: None }
    }
}

/// Leaves the output of a job that did not commit: an interrupted job with a journal keeps
/// what `--resume` needs, like a crashed one (pruned by [`keep_for_resume`]); any other job's
/// output is removed (dropping the plan's output directory) and its logs kept for a look.
fn settle(error: Error, mut plan: Plan, work_dir: WorkDir, logs: WorkDir, journal: Option<&Journal>) -> Error {
    match (error, journal) {
        (Error::Interrupted, Some(journal)) => {
            plan.output.leave_alone();
            keep_for_resume(&work_dir.keep(), journal.path());
            logs.keep();
            Error::InterruptedResumable(plan.output.path().to_path_buf())
        }
        (error, _) => {
            drop(plan);
            drop(work_dir);
            match error {
                Error::Interrupted => error,
                error => Error::WithLogs { error: Box::new(error), logs: logs.keep() },
            }
        }
    }
}

/// The coordinator's gRPC listener on `addr`, its address, and the URL workers reach it at.
async fn listen(addr: &str, tls: Option<&crate::net::rpc::Tls>) -> Result<(TcpListener, SocketAddr, String)> {
    let listen_error = |source| Error::Listen { addr: addr.to_string(), cause: source };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let url = format!("{}://{}", crate::net::rpc::scheme(tls), reachable(local));
    Ok((listener, local, url))
}

/// The job's token, and its text for the workers: the one given, else a random one (`mr
/// coordinator`: none). A coordinator reachable from other hosts needs one.
fn job_token(config: &RunConfig, local: SocketAddr) -> Result<(crate::net::rpc::Token, String)> {
    // An empty token is no token.
    let token_text = match config.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => t.to_string(),
        None if config.standalone => String::new(),
        None => crate::net::rpc::Token::random()?.1,
    };
    let token = crate::net::rpc::Token::new(&token_text)?;
    if !token.is_set() && !local.ip().is_loopback() {
        return Err(Error::Config(format!(
            "the coordinator would listen on {local} without a token, so anyone who can reach it could run jobs' \
             code on its workers: give --token (or MR_TOKEN), the same to every worker"
        )));
    }
    Ok((token, token_text))
}

/// What the coordinator of a planned job is configured with.
fn coordinator_config(
    job_name: &str,
    plan: &Plan,
    config: &RunConfig,
    token: crate::net::rpc::Token,
) -> CoordinatorConfig {
    CoordinatorConfig {
        job_name: job_name.to_string(),
        job_args: plan.job_args.clone(),
        splits: plan.splits.clone(),
        reduce_tasks: plan.reduce_tasks,
        output_dir: plan.output.path().to_path_buf(),
        heartbeat_interval: (config.tolerance.worker_timeout / 10)
            .clamp(Duration::from_millis(50), Duration::from_secs(1)),
        tolerance: config.tolerance.clone(),
        faults: config.faults,
        state: plan.prepared.state.clone(),
        input_format: plan.input_format,
        settings: plan.settings,
        token,
        tls: config.tls.clone(),
        rerun_maps_of_lost_workers: config.standalone,
    }
}

/// Starts the status server on `--http`'s address, if there is one, and says where it is.
async fn start_status_server(
    config: &RunConfig,
    coordinator: &Coordinator,
    logs: &std::path::Path,
    shutdown: &CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<Result<()>>>> {
    let Some(addr) = &config.http else { return Ok(None) };
    let listener =
        TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr: addr.clone(), cause: source })?;
    let local = listener.local_addr().map_err(|source| Error::Listen { addr: addr.clone(), cause: source })?;
    if config.announce {
        eprintln!("status: http://{}/", reachable(local));
    }
    let about = crate::report::status::About { logs: Some(logs.to_path_buf()), ..config.about.clone() };
    Ok(Some(tokio::spawn(crate::report::status::serve(listener, coordinator.clone(), about, shutdown.clone()))))
}

/// The arguments of every worker after `mr worker --coordinator URL`: the extra ones, the
/// job's work directory, and the TLS files.
fn worker_args(config: &RunConfig, work_dir: &WorkDir) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = config.worker_args.iter().map(Into::into).collect();
    args.extend(["--work-dir".into(), work_dir.path().into()]);
    if let Some(tls) = &config.tls {
        let [cert, key, ca] = tls.files();
        for (flag, path) in [("--tls-cert", cert), ("--tls-key", key), ("--tls-ca", ca)] {
            args.extend([flag.into(), path.into()]);
        }
    }
    args
}

/// How the coordinator's server ended, if it did.
type Served = std::result::Result<Result<()>, tokio::task::JoinError>;

/// Stops the coordinator's server and the status server, and waits for them.
async fn stop_servers(
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<()>>,
    status: Option<tokio::task::JoinHandle<Result<()>>>,
) -> Served {
    shutdown.cancel();
    // Keepalives close connections to vanished peers within seconds; the bound is a backstop.
    let served = match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!("the coordinator's server did not shut down within 10 s; leaving it");
            Ok(Ok(()))
        }
    };
    if let Some(status) = status {
        // The status page is a view; its failure does not fail the job.
        if let Ok(Err(e)) = status.await {
            tracing::warn!("{e}");
        }
    }
    served
}

/// The job's summary, and its error if it did not commit.
fn summarize(
    job_name: &str,
    plan: &Plan,
    coordinator: &Coordinator,
    supervisor: &Supervisor,
    outcome: &Result<()>,
    served: Served,
) -> (Summary, Option<String>) {
    let s = coordinator.scheduler();
    let error = match (outcome, s.state()) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), JobState::Succeeded) => None,
        (Ok(()), JobState::Failed(f)) => Some(match f.task {
            Some(task) => {
                let task = describe_task(plan, task);
                Error::TaskFailed { task, attempts: f.attempts, last_error: f.last_error.clone() }.to_string()
            }
            None => f.last_error.clone(),
        }),
        (Ok(()), other) => Some(format!("the job ended in state {other:?}")),
    };
    let error = error.or_else(|| match served {
        Ok(Err(e)) => Some(e.to_string()),
        Err(e) => Some(format!("coordinator server panicked: {e}")),
        Ok(Ok(())) => None,
    });
    let summary = Summary {
        job: job_name.to_string(),
        mode: "distributed",
        succeeded: error.is_none(),
        interrupted: matches!(outcome, Err(Error::Interrupted)),
        error: error.clone(),
        output: plan.output.path().display().to_string(),
        map: PhaseSummary::from_attempts(Phase::Map, plan.splits.len() as u32, s.counters(Phase::Map), s.attempts()),
        reduce: PhaseSummary::from_attempts(Phase::Reduce, plan.reduce_tasks, s.counters(Phase::Reduce), s.attempts()),
        wall_ms: coordinator.now(),
        committed_ms: coordinator.committed_at(),
        workers: supervisor.summaries(),
        speculative_attempts: s.attempts().iter().filter(|a| a.speculative).count() as u32,
        attempts: s.attempts().to_vec(),
        notes: plan.notes.clone(),
        view: None,
    };
    (summary, error)
}

/// A directory removed, with everything in it, when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    /// Leaves the directory in place and returns its path.
    fn keep(self) -> PathBuf {
        let path = self.0.clone();
        std::mem::forget(self);
        path
    }
}

impl WorkDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The job's work directory and journal. A new job gets a new work directory and a new
/// journal; a resumed one (`--resume`) reopens the journal, checks that it is the same job,
/// and takes over the work directory it names (where the map outputs of `mr run`'s workers
/// are), if it is still there. An object-store output has no journal.
#[allow(clippy::type_complexity)]
fn open_journal(
    job_name: &str,
    plan: &mut Plan,
    verify_inputs: bool,
) -> Result<(WorkDir, Option<std::sync::Arc<Journal>>, Recovered, WorkDir)> {
    let new_dir = |prefix: &str, what: &'static str| -> Result<WorkDir> {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(Error::io(what, std::env::temp_dir()))?;
        Ok(WorkDir(dir.keep()))
    };
    let new_work_dir = || new_dir(crate::control::journal::WORK_DIR_PREFIX, "cannot create work directory in");
    let new_logs = || new_dir(crate::control::journal::LOGS_PREFIX, "cannot create log directory in");
    let output = plan.output.path().to_path_buf();
    if crate::data::storage::is_url(&output) {
        return Ok((new_work_dir()?, None, Recovered::default(), new_logs()?));
    }
    let path = crate::control::journal::path_for(&output);
    let mut identity = identity(job_name, plan)?;
    // The contents' hashes: asked for, or recorded by the run this one continues.
    let hashed = if plan.output.resuming() {
        let journaled = match crate::control::journal::Journal::identity(&path) {
            Ok(journaled) => journaled,
            Err(e) => {
                plan.output.leave_alone();
                return Err(e);
            }
        };
        let hashed = journaled.get(INPUT_CONTENTS).is_some();
        if verify_inputs && !hashed {
            tracing::warn!(
                "--verify-inputs: the interrupted run recorded no content hashes (it ran without --verify-inputs), \
                 so only the input files' sizes and modification times are checked"
            );
        }
        hashed
    } else {
        verify_inputs
    };
    if hashed {
        identity = identity.with(INPUT_CONTENTS, content_hashes(plan)?);
    }
    if !plan.output.resuming() {
        let (work_dir, logs) = (new_work_dir()?, new_logs()?);
        let journal = Journal::create(&path, &identity, work_dir.path(), logs.path(), plan.output.created())?;
        return Ok((work_dir, Some(std::sync::Arc::new(journal)), Recovered::default(), logs));
    }
    let (journal, recovered) = match Journal::resume(&path, &identity) {
        Ok(resumed) => resumed,
        Err(e) => {
            plan.output.leave_alone();
            return Err(e);
        }
    };
    plan.output.set_created(recovered.output_created);
    let work_dir = match &recovered.work_dir {
        Some(dir) if dir.is_dir() => WorkDir(dir.clone()),
        _ => new_work_dir()?,
    };
    // The journal names the first run's log directory: every later run logs there too, so a
    // resumed run that is killed again leaves no directory of its own.
    let logs = match &recovered.logs {
        Some(dir) if dir.is_dir() => WorkDir(dir.clone()),
        _ => new_logs()?,
    };
    let count = |phase| recovered.done.iter().filter(|(t, _)| t.phase == phase).count();
    tracing::info!(
        maps = count(Phase::Map),
        reduces = count(Phase::Reduce),
        incarnation = recovered.incarnation,
        "resuming the job from its journal"
    );
    Ok((work_dir, Some(std::sync::Arc::new(journal)), recovered, logs))
}

/// The name of the journal's record of the input files' content hashes (`--verify-inputs`).
const INPUT_CONTENTS: &str = "input contents (xxh3-128)";

/// Each input file's content hash (xxh3-128, hex), in the order of the splits: read in full.
fn content_hashes(plan: &Plan) -> Result<Vec<(String, String)>> {
    use std::io::Read;
    let mut hashes: Vec<(String, String)> = Vec::new();
    for range in plan.splits.iter().flat_map(|s| &s.ranges) {
        let name = crate::data::input::path_text(&range.path).into_owned();
        if hashes.last().is_some_and(|(n, _)| *n == name) {
            continue;
        }
        let mut source = crate::data::storage::open(&range.path)?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = source.read(&mut buf).map_err(Error::io("cannot read input file", &range.path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        hashes.push((name, format!("{:032x}", hasher.digest128())));
    }
    Ok(hashes)
}

/// What a resumed run must share with the run it continues: everything that decides the
/// tasks and their outputs (not memory settings or worker counts, which may change).
pub fn identity(job_name: &str, plan: &Plan) -> Result<Identity> {
    let ranges = || plan.splits.iter().flat_map(|s| &s.ranges);
    let mut files: Vec<(String, Option<u64>, Option<u128>)> = Vec::new();
    for range in ranges() {
        let path = crate::data::input::path_text(&range.path).into_owned();
        if files.last().is_some_and(|(p, _, _)| *p == path) {
            continue;
        }
        // A local file's size and modification time tell an input that changed in between.
        let stamp = if crate::data::storage::is_url(&range.path) {
            (None, None)
        } else {
            let meta = std::fs::metadata(&range.path).map_err(Error::io("cannot read input", &range.path))?;
            let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
            (Some(meta.len()), modified.map(|d| d.as_nanos()))
        };
        files.push((path, stamp.0, stamp.1));
    }
    // A file's name as jobs see it is part of the output (grep, index): it must not change.
    let text = |p: &std::path::Path| crate::data::input::path_text(p).into_owned();
    // (path, name, start, end, first line) of each range.
    type Range = (String, String, u64, u64, u64);
    let splits: Vec<Vec<Range>> = plan
        .splits
        .iter()
        .map(|s| s.ranges.iter().map(|r| (text(&r.path), text(r.name()), r.start, r.end, r.first_line)).collect())
        .collect();
    let mut state = xxhash_rust::xxh3::Xxh3::new();
    for (key, value) in &plan.prepared.state {
        for part in [key.as_bytes(), value.as_slice()] {
            state.update(&(part.len() as u64).to_le_bytes());
            state.update(part);
        }
    }
    Ok(Identity::default()
        .with("job", job_name)
        .with("job arguments", &plan.job_args)
        .with("output", crate::data::input::path_text(plan.output.path()))
        .with("input format", plan.input_format.name())
        .with("map tasks", plan.splits.len())
        .with("reduce tasks", plan.reduce_tasks)
        .with("output compression", plan.settings.output_compression.name())
        .with("input files", files)
        .with("splits", splits)
        .with("job state", format!("{:016x}", state.digest())))
}

/// The address to connect to for a listener bound to `local`: loopback for a wildcard address.
pub fn reachable(local: std::net::SocketAddr) -> std::net::SocketAddr {
    match local.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => (std::net::Ipv4Addr::LOCALHOST, local.port()).into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => (std::net::Ipv6Addr::LOCALHOST, local.port()).into(),
        _ => local,
    }
}

/// Describes a task for an error message, with its input split for a map task.
pub fn describe_task(plan: &Plan, task: crate::types::TaskId) -> String {
    match task.phase {
        Phase::Map => match plan.splits.get(task.index as usize) {
            Some(split) => format!("{task} (input {split})"),
            None => task.to_string(),
        },
        Phase::Reduce => format!("{task} (partition {})", task.index),
    }
}

/// Waits for the job to end, replacing worker processes that die before it does.
async fn supervise(coordinator: &Coordinator, supervisor: &mut Supervisor, config: &RunConfig) -> Result<()> {
    let mut ended = coordinator.ended();
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    for _ in 0..config.workers {
        supervisor.spawn(coordinator)?;
    }
    // Deaths in a row with no task committed in between: a crash loop, not bad luck.
    let mut deaths_in_a_row = 0;
    let mut committed_at_last_death = 0;
    loop {
        tokio::select! {
            _ = ended.wait_for(|&e| e) => return Ok(()),
            _ = interrupt.recv() => return Err(interrupted(coordinator, supervisor, "interrupted")),
            _ = terminate.recv() => return Err(interrupted(coordinator, supervisor, "terminated")),
            Some((pid, status)) = supervisor.exits.recv() => {
                supervisor.exited(pid, status, coordinator.now());
                if coordinator.has_ended() {
                    return Ok(());
                }
                coordinator.worker_exited_pid(pid);
                tracing::warn!(pid, %status, "worker process died before the job ended; starting a new one");
                let committed = coordinator.committed_attempts();
                if committed > committed_at_last_death {
                    deaths_in_a_row = 0;
                }
                committed_at_last_death = committed;
                deaths_in_a_row += 1;
                if deaths_in_a_row > config.tolerance.max_restarts {
                    coordinator.abort("worker processes keep dying");
                    return Err(Error::WorkersDied(deaths_in_a_row));
                }
                supervisor.spawn(coordinator)?;
            }
        }
    }
}

/// Stops an interrupted job. With a journal (a local output), the workers are killed before
/// the job is aborted: told that the job is over, a worker would remove its directory, and
/// with it map outputs that a resume reads. An object-store output keeps no journal: its
/// workers hear of the abort first, as they always did.
fn interrupted(coordinator: &Coordinator, supervisor: &Supervisor, reason: &str) -> Error {
    let journaled = !crate::data::storage::is_url(&coordinator.config().output_dir);
    if journaled {
        supervisor.kill_all(Signal::SIGKILL);
    }
    coordinator.abort(reason);
    Error::Interrupted
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(kind).map_err(|e| Error::Job(format!("cannot install a signal handler: {e}")))
}

/// Options that create a file only its owner can read and write (0600).
fn private_file() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Starts worker processes and keeps track of them until they have all exited.
struct Supervisor {
    exe: PathBuf,
    url: String,
    extra_args: Vec<std::ffi::OsString>,
    token: String,
    running: HashSet<u32>,
    logs: PathBuf,
    started: u32,
    done: Vec<WorkerSummary>,
    exits_tx: mpsc::UnboundedSender<(u32, ExitStatus)>,
    exits: mpsc::UnboundedReceiver<(u32, ExitStatus)>,
}

impl Supervisor {
    fn new(url: String, extra_args: Vec<std::ffi::OsString>, token: String, logs: PathBuf) -> Result<Supervisor> {
        let exe = std::env::current_exe().map_err(|e| Error::Job(format!("cannot find this executable: {e}")))?;
        let (exits_tx, exits) = mpsc::unbounded_channel();
        Ok(Supervisor {
            exe,
            url,
            extra_args,
            token,
            running: HashSet::new(),
            logs,
            started: 0,
            done: Vec::new(),
            exits_tx,
            exits,
        })
    }

    /// Starts one `mr worker` process in its own process group, set to be killed when this
    /// process dies.
    fn spawn(&mut self, coordinator: &Coordinator) -> Result<()> {
        let mut cmd = tokio::process::Command::new(&self.exe);
        cmd.arg("worker").arg("--supervised").arg("--coordinator").arg(&self.url).args(&self.extra_args);
        // In the environment, not on the command line, where other users could read it.
        cmd.env("MR_TOKEN", &self.token);
        cmd.stdin(std::process::Stdio::null());
        // A resumed job's log directory holds the earlier runs' logs: numbers go on after theirs.
        let file = loop {
            self.started += 1;
            let log = self.logs.join(format!("worker-{}.log", self.started));
            match private_file().create_new(true).open(&log) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                opened => break opened.map_err(Error::io("cannot create worker log", &log))?,
            }
        };
        cmd.stdout(std::process::Stdio::null()).stderr(file);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (umask, setpgid, prctl, getppid, kill).
        unsafe {
            cmd.pre_exec(move || {
                // The worker makes its own files private, and its output files follow this umask.
                crate::data::storage::restore_umask();
                nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                // The parent may have died before prctl: then nobody would send the signal.
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    nix::sys::signal::kill(Pid::this(), Signal::SIGKILL)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Job(format!("cannot start a worker process: {e}")))?;
        let pid = child.id().expect("a child that was just spawned has a pid");
        self.running.insert(pid);
        tracing::debug!(pid, at = coordinator.now(), "worker process started");
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            if let Ok(status) = child.wait().await {
                let _ = tx.send((pid, status));
            }
        });
        Ok(())
    }

    fn exited(&mut self, pid: u32, status: ExitStatus, now: Millis) {
        self.running.remove(&pid);
        self.done.push(WorkerSummary { pid, exit_ms: Some(now), status: status.to_string() });
    }

    /// Lets workers exit by themselves for a grace period, then kills what is left, and
    /// reaps them all.
    async fn stop_all(&mut self, coordinator: &Coordinator) {
        let succeeded = *coordinator.scheduler().state() == JobState::Succeeded;
        if !succeeded {
            self.kill_all(Signal::SIGKILL);
        }
        let deadline = tokio::time::Instant::now() + EXIT_GRACE;
        while !self.running.is_empty() {
            match tokio::time::timeout_at(deadline, self.exits.recv()).await {
                Ok(Some((pid, status))) => self.exited(pid, status, coordinator.now()),
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(left = self.running.len(), "workers did not exit in time; killing them");
                    self.kill_all(Signal::SIGKILL);
                    while let Some((pid, status)) = self.exits.recv().await {
                        self.exited(pid, status, coordinator.now());
                        if self.running.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
    }

    fn kill_all(&self, signal: Signal) {
        for &pid in &self.running {
            let _ = killpg(Pid::from_raw(pid as i32), signal);
        }
    }

    fn summaries(&self) -> Vec<WorkerSummary> {
        self.done.clone()
    }
}
