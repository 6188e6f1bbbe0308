//! The worker: registers with the coordinator, pulls tasks, runs them, heartbeats, and reports
//! each attempt's outcome. It serves the map outputs it wrote through its Shuffle service
//! (`shuffle.rs`) from a work directory of its own, removed when it exits. It exits when the
//! coordinator says the job is over, or when the coordinator has been unreachable for longer
//! than the lost-coordinator timeout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::data::compression::OutputCompression;
use crate::data::input::InputFormat;
use crate::data::input::Split;
use crate::error::{Error, Result};
use crate::exec::fault::Faults;
use crate::exec::task::{self, Progress, TaskSettings, panic_message, part_name};
use crate::job::{Job, Registry, StateReader};
use crate::net::rpc::pb::coordinator_client::CoordinatorClient;
use crate::net::rpc::pb::state_client::StateClient;
use crate::net::rpc::{self, AuthChannel, MAX_MESSAGE_BYTES, Tls, Token, pb};
use crate::net::shuffle::{self, Location, Outputs};
use crate::types::TaskCounters;
use crate::types::{AttemptId, Phase};

/// How a worker connects and when it gives up.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The coordinator's URL, e.g. `http://127.0.0.1:7000`.
    pub coordinator: String,
    /// How long to retry the first connection.
    pub connect_timeout: Duration,
    /// How long the coordinator may be unreachable before the worker exits.
    pub lost_timeout: Duration,
    /// The job's token.
    pub token: Token,
    /// The host (name or IP) other workers reach this one at; by default the local address
    /// of its connection to the coordinator.
    pub advertise: Option<String>,
    /// Where the worker's own work directory is made (map outputs, fetched partitions); the
    /// system temp dir by default. The directory is removed when the worker exits.
    pub work_dir: Option<PathBuf>,
    /// TLS for its calls and its Shuffle service; the coordinator's URL is `https://` with it.
    pub tls: Option<Tls>,
    /// Whether it removes, when it starts, the directories that dead workers left in its work
    /// dir ([`remove_dead_workers_directories`]). A standalone worker does; the workers of
    /// `mr run` do not: their directories are in the job's work directory, which `mr run`
    /// removes, and a dead worker's map outputs there are still read in place by the job's
    /// reducers and by a resumed run.
    pub remove_dead_workers_directories: bool,
}

/// HTTP/2 receive window of a worker's connection to the coordinator.
const REPLY_WINDOW: u32 = 4 << 20;

/// Connects to the coordinator, retrying with exponential backoff for up to `timeout`. A
/// refused certificate is not retried.
pub async fn connect(url: &str, timeout: Duration, tls: Option<&Tls>) -> Result<Channel> {
    // A reduce assignment lists every map output (about 1.5 MB for 10,000 map tasks): with
    // HTTP/2's default 64 KiB windows it would cross in some twenty round trips.
    let endpoint = rpc::endpoint(url, tls)?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(REPLY_WINDOW))
        .initial_connection_window_size(Some(REPLY_WINDOW));
    let start = Instant::now();
    let deadline = start + timeout;
    let mut backoff = Duration::from_millis(20);
    let mut tries = 0u32;
    loop {
        tries += 1;
        // No try runs past the deadline: the worker gives up when its timeout says.
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let reason = match tokio::time::timeout(left, endpoint.connect()).await {
            Ok(Ok(channel)) => return Ok(channel),
            Ok(Err(e)) => {
                if let Some(reason) = rpc::tls_failure(&e) {
                    return Err(Error::TlsHandshake { url: url.into(), reason });
                }
                std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string())
            }
            Err(_) => "connection timed out".to_string(),
        };
        let now = Instant::now();
        if now >= deadline {
            if tls.is_none() && rpc::answers_with_tls(url).await {
                return Err(Error::ServerUsesTls { url: url.into() });
            }
            let waited =
                humantime::format_duration(Duration::from_millis(now.duration_since(start).as_millis() as u64));
            return Err(Error::Unreachable {
                url: url.into(),
                reason: format!("gave up after {waited} and {tries} tries (--connect-timeout {timeout:?}): {reason}"),
            });
        }
        tracing::debug!(tries, ?backoff, %reason, "cannot connect yet; trying again");
        tokio::time::sleep(backoff.min(deadline - now)).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Where the Shuffle service listens: the advertised address, or all interfaces for a host
/// name.
fn shuffle_bind(host: &str) -> std::net::SocketAddr {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, 0),
        Err(_) => std::net::SocketAddr::from(([0, 0, 0, 0], 0)),
    }
}

/// A Shuffle service reachable from other hosts serves map outputs only to callers that hold
/// the job's token: an empty or missing token is refused there.
fn check_token_for(bind: &std::net::SocketAddr, token: &Token) -> Result<()> {
    if token.is_set() || bind.ip().is_loopback() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the worker would serve its map outputs on {} without a token, so anyone who can reach it could read \
         them: give the job's token in MR_TOKEN or --token-file FILE (the coordinator's --token)",
        bind.ip()
    )))
}

fn rpc(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
    move |status| Error::Rpc { call, status: Box::new(status) }
}

/// The local address this host uses to reach `url`'s host: what others can reach it at.
async fn local_address_towards(url: &str) -> Result<std::net::IpAddr> {
    let uri: tonic::transport::Uri = url.parse().map_err(|e: tonic::codegen::http::uri::InvalidUri| {
        Error::InvalidUrl { url: url.into(), reason: e.to_string() }
    })?;
    let host = uri.host().unwrap_or("127.0.0.1").trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| Error::Unreachable { url: url.into(), reason: e.to_string() })?;
    let local = stream.local_addr().map_err(|e| Error::Unreachable { url: url.into(), reason: e.to_string() })?;
    Ok(local.ip())
}

/// Why RegisterWorker failed, naming the setting to fix where there is one: the first call
/// is where a wrong token, a refused certificate or a missing TLS shows.
async fn registration_error(url: &str, tls: Option<&Tls>, status: tonic::Status) -> Error {
    // A server that could not prove that it holds the token is not the job's: the status says so.
    if status.code() == tonic::Code::Unauthenticated && !status.message().contains("did not prove") {
        return Error::Unauthenticated { url: url.into() };
    }
    if let Some(reason) = rpc::tls_failure(&status) {
        return Error::TlsHandshake { url: url.into(), reason };
    }
    if tls.is_none() && rpc::answers_with_tls(url).await {
        return Error::ServerUsesTls { url: url.into() };
    }
    rpc("RegisterWorker")(status)
}

/// Reads the coordinator's state store from a blocking thread.
struct RemoteState {
    client: StateClient<AuthChannel>,
    runtime: tokio::runtime::Handle,
}

impl StateReader for RemoteState {
    fn get(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let request = pb::GetStateRequest { keys: keys.to_vec() };
        let reply = self.runtime.block_on(self.client.get_state(request)).map_err(rpc("GetState"))?.into_inner();
        Ok(reply.values.into_iter().map(|v| v.found.then_some(v.value)).collect())
    }
}

/// The attempt a worker is running, shared with its heartbeat.
#[derive(Clone)]
struct Current {
    attempt: AttemptId,
    progress: Arc<Progress>,
    cancel: CancellationToken,
}

type Shared<T> = Arc<Mutex<T>>;

/// Runs a worker until the job is over. Returns an error if the coordinator is lost, and
/// `Error::Interrupted` on SIGINT or SIGTERM. Either way its work directory is removed.
pub async fn run(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind| signal(kind).map_err(|e| Error::Job(format!("cannot install a signal handler: {e}")));
    let (mut interrupt, mut terminate) = (handler(SignalKind::interrupt())?, handler(SignalKind::terminate())?);
    // Dropping the job's future drops its work directory, which removes it.
    tokio::select! {
        result = serve(options, registry) => result,
        _ = interrupt.recv() => Err(Error::Interrupted),
        _ = terminate.recv() => Err(Error::Interrupted),
    }
}

async fn serve(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    let url = options.coordinator.clone();
    let tls = options.tls.as_ref();
    if let Some(host) = &options.advertise {
        check_token_for(&shuffle_bind(host), &options.token)?;
    }
    let channel = connect(&url, options.connect_timeout, tls).await?;
    let mut client = CoordinatorClient::new(rpc::authenticated(channel.clone(), options.token.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let host = match &options.advertise {
        Some(host) => host.clone(),
        None => local_address_towards(&url).await?.to_string(),
    };
    let base = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work_dir = OwnDir::create(&base)?;
    if options.remove_dead_workers_directories {
        remove_dead_workers_directories(&base, work_dir.path());
    }

    let bind = shuffle_bind(&host);
    check_token_for(&bind, &options.token)?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| Error::Listen { addr: bind.to_string(), cause: source })?;
    let port = listener.local_addr().map_err(|source| Error::Listen { addr: bind.to_string(), cause: source })?.port();
    let shuffle_host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let shuffle_url = format!("{}://{shuffle_host}:{port}", rpc::scheme(tls));
    let mut shuffle_server = rpc::server(tls)?;

    let name = crate::layout::process_name(std::process::id());
    let registration = pb::RegisterWorkerRequest { name, shuffle_url: shuffle_url.clone(), host: host.clone() };
    let reply = match client.register_worker(registration.clone()).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(registration_error(&url, tls, status).await),
    };
    let worker_id = reply.worker_id;
    let spec = reply.job.ok_or_else(|| Error::Job("the coordinator sent no job".into()))?;
    tracing::info!(worker = worker_id, job = spec.job_name, shuffle_url, "registered");
    let worker_id = Arc::new(AtomicU64::new(worker_id));

    let outputs = Outputs::default();
    let stop = CancellationToken::new();
    let shuffle_server = {
        let service =
            pb::shuffle_server::ShuffleServer::new(shuffle::ShuffleServer::new(outputs.clone(), spec.reduce_tasks))
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let service = rpc::check_token(service, options.token.clone());
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let stop = stop.clone();
        tokio::spawn(async move {
            shuffle_server.add_service(service).serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
        })
    };

    let job = {
        let client = StateClient::new(rpc::authenticated(channel.clone(), options.token.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut state = RemoteState { client, runtime: tokio::runtime::Handle::current() };
        let (name, args) = (spec.job_name.clone(), spec.job_args.clone());
        tokio::task::spawn_blocking(move || registry.get(&name)?.build(&args, &mut state))
            .await
            .map_err(|e| Error::Job(format!("building the job panicked: {e}")))??
    };

    let lost: Shared<Option<Error>> = Arc::default();
    let current: Shared<Option<Current>> = Arc::default();
    // Every log line of this worker carries the job and the worker id.
    let job_span = tracing::info_span!("job", job = %spec.job_name, worker = worker_id.load(Ordering::Relaxed));
    let heartbeat = tokio::spawn(
        heartbeat_loop(
            client.clone(),
            worker_id.clone(),
            Duration::from_millis(reply.heartbeat_interval_ms.max(10)),
            options.lost_timeout,
            url.clone(),
            stop.clone(),
            lost.clone(),
            current.clone(),
            job.clone(),
        )
        .instrument(job_span.clone()),
    );
    let context = Context {
        worker_id,
        registration,
        spec,
        job,
        current,
        host,
        outputs,
        work_dir: work_dir.path().to_path_buf(),
        token: options.token.clone(),
        tls: options.tls.clone(),
    };
    let result = task_loop(&mut client, &context, &options, &stop).instrument(job_span).await;
    stop.cancel();
    heartbeat.abort();
    // Keepalives close connections to vanished peers within seconds; the bound is a backstop.
    let _ = tokio::time::timeout(Duration::from_secs(5), shuffle_server).await;
    drop(work_dir);
    if let Some(e) = lost.lock().expect("lock poisoned").take() {
        return Err(e);
    }
    result
}

/// How the name of a worker's own directory begins (in its work dir).
pub const DIR_PREFIX: &str = "mr-worker-";

/// The lock file in a worker's own directory: the worker holds an exclusive lock on it
/// (`flock`) for as long as the directory exists, so a directory whose lock can be taken
/// belongs to a worker that is dead.
pub const LOCK_FILE: &str = "worker.lock";

/// A worker's own directory (`mr-worker-*` in its work dir) and the lock that tells that the
/// worker is alive. Dropping it removes the directory, then lets go of the lock.
struct OwnDir {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl OwnDir {
    /// Makes the directory in `base` and takes its lock. The lock file gets its name only once
    /// it is locked (a rename), so no other worker can find it unlocked while this one lives.
    fn create(base: &Path) -> Result<OwnDir> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(base)
            .map_err(Error::io("cannot create the worker's work directory in", base))?;
        let fresh = dir.path().join(format!(".{LOCK_FILE}.new"));
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&fresh)
            .map_err(Error::io("cannot create the worker's lock file", &fresh))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let busy = std::io::Error::from(std::io::ErrorKind::WouldBlock);
                return Err(Error::io("cannot lock the worker's lock file", &fresh)(busy));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock the worker's lock file", &fresh)(e));
            }
        }
        let named = dir.path().join(LOCK_FILE);
        std::fs::rename(&fresh, &named).map_err(Error::io("cannot name the worker's lock file", &named))?;
        Ok(OwnDir { dir, _lock: lock })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes what workers killed without a chance to clean up (SIGKILL, a crash of the host)
/// left in `base`: every `mr-worker-*` directory of this user, other than `own`, whose lock
/// file this process can lock. A live worker holds its lock, so its directory is never
/// removed; nor is a directory without a lock file (a worker still making it). Failures are
/// logged: they do not stop the worker.
pub fn remove_dead_workers_directories(base: &Path, own: &Path) {
    use std::os::unix::fs::MetadataExt;
    let entries = match std::fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %base.display(), "cannot list the work dir to remove dead workers' directories: {e}");
            return;
        }
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry.file_name().as_encoded_bytes().starts_with(DIR_PREFIX.as_bytes());
        if !named || path == own {
            continue;
        }
        // Not a symbolic link, and this user's.
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir() && meta.uid() == uid);
        if !ours {
            continue;
        }
        let lock_path = path.join(LOCK_FILE);
        let Ok(lock) = std::fs::File::open(&lock_path) else { continue };
        match lock.try_lock() {
            Ok(()) => match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(dir = %path.display(), "removed a dead worker's directory"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %path.display(), "cannot remove a dead worker's directory: {e}"),
            },
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(file = %lock_path.display(), "cannot lock a worker's lock file: {e}");
            }
        }
    }
}

/// What every attempt of this worker needs.
struct Context {
    /// Its id; it changes when the worker registers again with a restarted coordinator.
    worker_id: Arc<AtomicU64>,
    /// What it registers with.
    registration: pb::RegisterWorkerRequest,
    spec: pb::JobSpec,
    job: Arc<dyn Job>,
    current: Shared<Option<Current>>,
    /// The host this worker advertises.
    host: String,
    /// The map outputs it serves.
    outputs: Outputs,
    /// Its own work directory.
    work_dir: PathBuf,
    token: Token,
    tls: Option<Tls>,
}

#[allow(clippy::too_many_arguments)]
async fn heartbeat_loop(
    mut client: CoordinatorClient<AuthChannel>,
    worker_id: Arc<AtomicU64>,
    interval: Duration,
    lost_timeout: Duration,
    url: String,
    stop: CancellationToken,
    lost: Shared<Option<Error>>,
    current: Shared<Option<Current>>,
    job: Arc<dyn Job>,
) {
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let running = current.lock().expect("lock poisoned").clone();
        let request = pb::HeartbeatRequest {
            worker_id: worker_id.load(Ordering::Relaxed),
            running: running.as_ref().map(|c| c.attempt.into()),
            records: running.as_ref().map_or(0, |c| c.progress.records.load(Ordering::Relaxed)),
            bytes: running.as_ref().map_or(0, |c| c.progress.bytes.load(Ordering::Relaxed)),
            status: if running.is_some() {
                task::attempt_status(job.as_ref()).unwrap_or_default()
            } else {
                String::new()
            },
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
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                // A restarted coordinator: the running attempt belongs to its predecessor. The
                // task loop registers again once the attempt has stopped.
                last_ok = Instant::now();
                if let Some(c) = running {
                    tracing::info!(attempt = %c.attempt, "the coordinator restarted: attempt dropped");
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
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    options: &WorkerOptions,
    stop: &CancellationToken,
) -> Result<()> {
    let mut last_ok = Instant::now();
    loop {
        let call = client.get_task(pb::GetTaskRequest { worker_id: context.worker_id.load(Ordering::Relaxed) });
        let reply = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            reply = call => reply,
        };
        let reply = match reply {
            Ok(reply) => {
                last_ok = Instant::now();
                reply.into_inner().reply
            }
            Err(status) if status.code() == tonic::Code::NotFound => {
                last_ok = Instant::now();
                register_again(client, context).await?;
                continue;
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
                let result = tokio::select! {
                    _ = stop.cancelled() => return Ok(()),
                    result = run_attempt(client, context, task) => result,
                };
                match result {
                    // The coordinator is unreachable or restarted: the next GetTask tells which.
                    Err(e @ Error::Rpc { .. }) => tracing::warn!(error = %e, "attempt dropped"),
                    other => other?,
                }
            }
        }
    }
}

/// Registers again with a coordinator that restarted (and continues the job from its journal):
/// the same Shuffle service and map outputs, a new worker id.
async fn register_again(client: &mut CoordinatorClient<AuthChannel>, context: &Context) -> Result<()> {
    let reply = client.register_worker(context.registration.clone()).await.map_err(rpc("RegisterWorker"))?.into_inner();
    let spec = reply.job.ok_or_else(|| Error::Job("the coordinator sent no job".into()))?;
    let ours = &context.spec;
    if (&spec.job_name, &spec.job_args, &spec.output_dir, spec.reduce_tasks)
        != (&ours.job_name, &ours.job_args, &ours.output_dir, ours.reduce_tasks)
    {
        return Err(Error::Job(format!(
            "the coordinator now runs another job ({} into '{}'): this worker ran {} into '{}'; start a new worker for \
             the new job",
            spec.job_name,
            String::from_utf8_lossy(&spec.output_dir),
            ours.job_name,
            String::from_utf8_lossy(&ours.output_dir)
        )));
    }
    context.worker_id.store(reply.worker_id, Ordering::Relaxed);
    tracing::warn!(worker = reply.worker_id, "the coordinator restarted: registered again");
    Ok(())
}

/// Runs one attempt and reports its outcome. Errors of the attempt itself are reported to
/// the coordinator; only RPC errors are returned.
async fn run_attempt(client: &mut CoordinatorClient<AuthChannel>, context: &Context, task: pb::Task) -> Result<()> {
    let Some(kind) = &task.kind else { return Err(Error::Job("the coordinator sent a task without a kind".into())) };
    let phase = match kind {
        pb::task::Kind::Map(_) => Phase::Map,
        pb::task::Kind::Reduce(_) => Phase::Reduce,
    };
    let attempt = AttemptId { task: crate::types::TaskId { phase, index: task.task_id }, attempt: task.attempt };
    // Every log line of the attempt carries its task and attempt.
    let span = tracing::info_span!("attempt", task = %attempt.task, attempt = attempt.attempt);
    run_attempt_in_span(client, context, task).instrument(span).await
}

async fn run_attempt_in_span(
    client: &mut CoordinatorClient<AuthChannel>,
    context: &Context,
    task: pb::Task,
) -> Result<()> {
    let Some(kind) = task.kind else { return Err(Error::Job("the coordinator sent a task without a kind".into())) };
    let spec = &context.spec;
    let phase = match kind {
        pb::task::Kind::Map(_) => Phase::Map,
        pb::task::Kind::Reduce(_) => Phase::Reduce,
    };
    let attempt = AttemptId { task: crate::types::TaskId { phase, index: task.task_id }, attempt: task.attempt };
    let settings = TaskSettings {
        partitions: spec.reduce_tasks,
        sort_buffer: spec.sort_buffer_bytes.max(1),
        merge_fan_in: spec.merge_fan_in.max(2) as usize,
        max_record_bytes: spec.max_record_bytes.max(1),
        output_compression: OutputCompression::from_name(&spec.output_compression).ok_or_else(|| {
            Error::Job(format!("unknown output compression '{}' in the job", spec.output_compression))
        })?,
    };
    let mut work = work_of(context, attempt, kind, &settings)?;
    let current = Current { attempt, progress: Arc::new(Progress::default()), cancel: CancellationToken::new() };
    *context.current.lock().expect("lock poisoned") = Some(current.clone());
    let outcome = execute(context, &mut work, &current, settings).await;
    *context.current.lock().expect("lock poisoned") = None;
    let task_ref = Some(pb::TaskRef::from(attempt));
    let worker_id = context.worker_id.load(Ordering::Relaxed);
    match outcome {
        None => {
            work.discard();
            Ok(())
        }
        Some(Err(e)) => {
            work.discard();
            tracing::warn!(error = %e, "attempt failed");
            let (bad_record, lost) = match &work {
                Work::Map { .. } | Work::MapOnly { .. } => (current.progress.bad_record(), None),
                Work::Reduce { locations, inputs, .. } => (None, lost_map_output(&e, locations, inputs)),
            };
            let request = pb::ReportFailureRequest {
                worker_id,
                task: task_ref,
                error: e.to_string(),
                bad_record,
                lost_map_task: lost.map(|l| l.0),
                lost_map_attempt: lost.map_or(0, |l| l.1),
                lost_map_unreachable: lost.is_some_and(|l| l.2),
            };
            client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
            Ok(())
        }
        Some(Ok(counters)) => {
            let output = match &work {
                Work::Map { output, .. } => {
                    context.outputs.insert(attempt.task.index, attempt.attempt, output.clone());
                    output.clone()
                }
                Work::Reduce { tmp, output, .. } | Work::MapOnly { tmp, output, .. } => {
                    let request = pb::CommitTaskRequest { worker_id, task: task_ref };
                    if !client.commit_task(request).await.map_err(rpc("CommitTask"))?.into_inner().granted {
                        tracing::info!("commit refused: another attempt committed this task");
                        work.discard();
                        return Ok(());
                    }
                    let (from, to) = (tmp.clone(), output.clone());
                    let committed = tokio::task::spawn_blocking(move || crate::data::storage::commit(&from, &to))
                        .await
                        .unwrap_or_else(|e| Err(Error::Job(format!("the commit panicked: {e}"))));
                    if let Err(e) = committed {
                        let error = e.to_string();
                        let request =
                            pb::ReportFailureRequest { worker_id, task: task_ref, error, ..Default::default() };
                        client.report_failure(request).await.map_err(rpc("ReportFailure"))?;
                        return Ok(());
                    }
                    output.clone()
                }
            };
            work.discard_fetched();
            report(client, context, attempt, &output, counters, &work).await
        }
    }
}

/// What an attempt of `kind` does, and where it writes.
fn work_of(context: &Context, attempt: AttemptId, kind: pb::task::Kind, settings: &TaskSettings) -> Result<Work> {
    let spec = &context.spec;
    Ok(match kind {
        pb::task::Kind::Map(m) => {
            let split = m.split.ok_or_else(|| Error::Job("map task without a split".into()))?;
            let split = Split::from(split);
            let output = context.work_dir.join(format!("map-{:05}-{}.out", attempt.task.index, attempt.attempt));
            let format = InputFormat::from_name(&spec.input_format)
                .ok_or_else(|| Error::Job(format!("unknown input format '{}'", spec.input_format)))?;
            if spec.reduce_tasks == 0 {
                // Map-only: the part file is written and committed as a reduce task's is.
                let name = crate::exec::maponly::part_name(attempt.task.index, settings.output_compression);
                let tmp = context.work_dir.join("output").join(format!("{name}.attempt-{}", attempt.attempt));
                let output = crate::net::convert::path_from_bytes(spec.output_dir.clone()).join(name);
                Work::MapOnly { split, format, skip: m.skip_records, tmp, output }
            } else {
                Work::Map { split, format, skip: m.skip_records, output }
            }
        }
        pb::task::Kind::Reduce(r) => {
            // The attempt writes under the worker's own directory, never into OUT: only the
            // commit grant moves its file there, so an attempt still running when the job
            // commits (a beaten backup, a cancelled one) cannot write into a committed output.
            let output_dir = crate::net::convert::path_from_bytes(spec.output_dir.clone());
            let tmp_dir = context.work_dir.join("output");
            let name = part_name(r.partition, settings.output_compression);
            Work::Reduce {
                partition: r.partition,
                locations: r.map_outputs.into_iter().map(Location::from).collect(),
                inputs: Vec::new(),
                fetched: context.work_dir.join(format!("fetch-{:05}-{}", r.partition, attempt.attempt)),
                tmp: tmp_dir.join(format!("{name}.attempt-{}", attempt.attempt)),
                output: output_dir.join(name),
            }
        }
    })
}

/// Runs the attempt's work on a blocking thread, with its injected faults. `None` when the
/// attempt was cancelled.
async fn execute(
    context: &Context,
    work: &mut Work,
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
    if let Work::Reduce { partition, locations, inputs, fetched, .. } = work {
        tokio::select! {
            result = gather(context, *partition, locations, fetched, &current.progress) => match result {
                Ok(gathered) => *inputs = gathered,
                Err(e) => return Some(Err(e)),
            },
            _ = current.cancel.cancelled() => return None,
        }
    }
    let (job, work, progress) = (context.job.clone(), work.clone(), current.progress.clone());
    let info = work.attempt_info(current.attempt, &context.work_dir);
    let result = tokio::task::spawn_blocking(move || {
        task::with_attempt(job.as_ref(), &info, || work.run(job.as_ref(), &settings, &progress))
    })
    .await;
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
    locations: &[Location],
    fetched: &Path,
    progress: &Arc<Progress>,
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
fn lost_map_output(error: &Error, locations: &[Location], inputs: &[task::ReduceInput]) -> Option<(u32, u32, bool)> {
    let path = match error {
        Error::LostMapOutput { map_task, attempt, .. } => return Some((*map_task, *attempt, true)),
        Error::CorruptMapOutput { path, .. } => path,
        Error::Io { path, .. } => path,
        _ => return None,
    };
    let i = inputs.iter().position(|(p, ..)| p == path)?;
    locations.get(i).map(|l| (l.map_task, l.attempt, false))
}

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
        // Another attempt's map output is the task's, or the coordinator never heard of this one: it is
        // never read.
        context.outputs.remove(attempt.task.index, attempt.attempt);
        work.discard();
    }
    accepted.map(|_| ()).map_err(rpc("ReportCompletion"))
}

#[derive(Clone)]
enum Work {
    Map {
        split: Split,
        format: InputFormat,
        skip: Vec<u64>,
        output: PathBuf,
    },
    /// A map task of a map-only job: its part file is written to `tmp`, committed to `output`.
    MapOnly {
        split: Split,
        format: InputFormat,
        skip: Vec<u64>,
        tmp: PathBuf,
        output: PathBuf,
    },
    Reduce {
        partition: u32,
        /// Where the map outputs are.
        locations: Vec<Location>,
        /// The files the reduce reads, once gathered.
        inputs: Vec<task::ReduceInput>,
        /// Where fetched map outputs go.
        fetched: PathBuf,
        tmp: PathBuf,
        output: PathBuf,
    },
}

impl Work {
    fn run(&self, job: &dyn Job, settings: &TaskSettings, progress: &Progress) -> Result<TaskCounters> {
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
            Work::MapOnly { split, format, skip, tmp, .. } => {
                if let Some(dir) = tmp.parent() {
                    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
                }
                crate::exec::maponly::run_map_only(job, split, *format, settings, skip, tmp, progress)
            }
        }
    }

    /// Which attempt this is, for the job.
    fn attempt_info(&self, attempt: AttemptId, work_dir: &Path) -> crate::job::AttemptInfo {
        match self {
            Work::Map { split, .. } | Work::MapOnly { split, .. } => {
                task::map_attempt(attempt.task.index, attempt.attempt, work_dir, split)
            }
            Work::Reduce { .. } => task::reduce_attempt(attempt.task.index, attempt.attempt, work_dir),
        }
    }

    /// Removes what this attempt wrote that will never be read.
    fn discard(&self) {
        let path = match self {
            Work::Map { output, .. } => output,
            Work::Reduce { tmp, .. } | Work::MapOnly { tmp, .. } => tmp,
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
