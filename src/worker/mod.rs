//! The worker process: connects to the coordinator, makes its own directory, starts its
//! Shuffle service (`net/shuffle.rs`), registers, builds the job, then pulls tasks until the job
//! is over (`task_loop`). Beside it, by role: `attempt.rs` runs one attempt and reports its
//! outcome, `heartbeat.rs` tells the coordinator the worker is alive and obeys cancellations,
//! `shutdown.rs` holds the directory removed when the worker exits and the signals that end
//! it. It exits when the coordinator says the job is over, or when the coordinator has been
//! unreachable for longer than the lost-coordinator timeout.

mod attempt;
pub mod cluster;
mod heartbeat;
mod shutdown;
pub mod slots;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::data::compression::OutputCompression;
use crate::error::{Error, Result};
use crate::exec::task::TaskSettings;
use crate::job::{Job, Registry, StateReader};
use crate::net::rpc::pb::coordinator_client::CoordinatorClient;
use crate::net::rpc::pb::state_client::StateClient;
use crate::net::rpc::{self, AuthChannel, MAX_MESSAGE_BYTES, Tls, Token, pb};
use crate::net::shuffle::{self, Outputs};
use heartbeat::{Current, Heartbeat, Slot};
use shutdown::OwnDir;
pub use shutdown::{DIR_PREFIX, LOCK_FILE, remove_dead_workers_directories};

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

/// Runs a worker until the job is over. Returns an error if the coordinator is lost, and
/// `Error::Interrupted` on SIGINT or SIGTERM. Either way its work directory is removed.
pub async fn work(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    until_interrupted(serve(options, registry)).await
}

/// Runs `life` until it ends, or until SIGINT or SIGTERM (`Error::Interrupted`). Dropping its
/// future drops its work directory, which removes it.
pub(crate) async fn until_interrupted(life: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::select! {
        result = life => result,
        signal = shutdown::interrupted() => signal.and(Err(Error::Interrupted)),
    }
}

/// The host other workers reach this one at: `--advertise`, or the local address of its
/// connection to `url`.
pub(crate) async fn advertised_host(options: &WorkerOptions, url: &str) -> Result<String> {
    match &options.advertise {
        Some(host) => Ok(host.clone()),
        None => Ok(local_address_towards(url).await?.to_string()),
    }
}

/// What this process registers with: its name and pid, its host and its Shuffle URL.
pub(crate) fn registration(host: &str, shuffle_url: String) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        name: crate::layout::process_name(std::process::id()),
        shuffle_url,
        host: host.to_string(),
        pid: std::process::id(),
    }
}

/// The worker's life: connect, set up, register, pull tasks with a heartbeat beside, and wind
/// down (the Shuffle service stopped, the directory removed).
async fn serve(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    let url = options.coordinator.clone();
    let tls = options.tls.as_ref();
    if let Some(host) = &options.advertise {
        check_token_for(&shuffle_bind(host), &options.token)?;
    }
    let channel = connect(&url, options.connect_timeout, tls).await?;
    let mut client = CoordinatorClient::new(rpc::authenticated(channel.clone(), options.token.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let host = advertised_host(&options, &url).await?;
    let base = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work_dir = OwnDir::create(&base)?;
    if options.remove_dead_workers_directories {
        remove_dead_workers_directories(&base, work_dir.path());
    }
    let (listener, shuffle_url) = shuffle_listener(&host, &options.token, tls).await?;
    let registration = registration(&host, shuffle_url);
    let reply = match client.register_worker(registration.clone()).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(registration_error(&url, tls, status).await),
    };
    let spec = reply.job.clone().ok_or_else(|| Error::Job("the coordinator sent no job".into()))?;
    tracing::info!(worker = reply.worker_id, job = spec.job_name, shuffle_url = registration.shuffle_url, "registered");

    let outputs = Outputs::default();
    let stop = CancellationToken::new();
    let shuffle_server = serve_shuffle(listener, &outputs, spec.reduce_tasks, &options, stop.clone())?;
    let job = build_job(channel, &options.token, registry, &spec).await?;
    let context =
        Context::new(reply.worker_id, registration, spec, job, outputs, work_dir.path().to_path_buf(), &options);
    let lost = Slot::default();
    // Every log line of this worker carries the job and the worker id.
    let job_span = tracing::info_span!("job", job = %context.spec.job_name, worker = reply.worker_id);
    let heartbeat = Heartbeat {
        client: client.clone(),
        worker_id: context.worker_id.clone(),
        interval: Duration::from_millis(reply.heartbeat_interval_ms.max(10)),
        lost_timeout: options.lost_timeout,
        url,
        stop: stop.clone(),
        lost: Arc::clone(&lost),
        current: Arc::clone(&context.current),
        job: context.job.clone(),
    };
    let heartbeat = tokio::spawn(heartbeat.run().instrument(job_span.clone()));
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

/// The Shuffle service's listener, on the host the worker advertises (port 0), and its URL
/// (`https://` with TLS).
async fn shuffle_listener(host: &str, token: &Token, tls: Option<&Tls>) -> Result<(TcpListener, String)> {
    let bind = shuffle_bind(host);
    check_token_for(&bind, token)?;
    let listener =
        TcpListener::bind(bind).await.map_err(|source| Error::Listen { addr: bind.to_string(), cause: source })?;
    let port = listener.local_addr().map_err(|source| Error::Listen { addr: bind.to_string(), cause: source })?.port();
    let shuffle_host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
    Ok((listener, format!("{}://{shuffle_host}:{port}", rpc::scheme(tls))))
}

/// Serves the map outputs in `outputs` on `listener` until `stop`.
fn serve_shuffle(
    listener: TcpListener,
    outputs: &Outputs,
    partitions: u32,
    options: &WorkerOptions,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<std::result::Result<(), tonic::transport::Error>>> {
    let mut server = rpc::server(options.tls.as_ref())?;
    let service = pb::shuffle_server::ShuffleServer::new(shuffle::ShuffleServer::new(outputs.clone(), partitions))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let service = rpc::check_token(service, options.token.clone());
    let incoming = rpc::incoming(listener);
    Ok(tokio::spawn(async move {
        server.add_service(service).serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
    }))
}

/// Builds the job from the registry, on a blocking thread: a job's factory may read the
/// coordinator's state store.
async fn build_job(
    channel: Channel,
    token: &Token,
    registry: Arc<Registry>,
    spec: &pb::JobSpec,
) -> Result<Arc<dyn Job>> {
    build_job_with(rpc::authenticated(channel, token.clone()), registry, spec).await
}

/// [`build_job`] over a channel of its own (a cluster's, naming the job).
async fn build_job_with(auth: AuthChannel, registry: Arc<Registry>, spec: &pb::JobSpec) -> Result<Arc<dyn Job>> {
    let client = StateClient::new(auth).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut state = RemoteState { client, runtime: tokio::runtime::Handle::current() };
    let (name, args) = (spec.job_name.clone(), spec.job_args.clone());
    tokio::task::spawn_blocking(move || registry.build(&name, &args, &mut state))
        .await
        .map_err(|e| Error::Job(format!("building the job panicked: {e}")))?
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

/// What every attempt of this worker needs.
struct Context {
    /// Its id; it changes when the worker registers again with a restarted coordinator.
    worker_id: Arc<AtomicU64>,
    /// What it registers with.
    registration: pb::RegisterWorkerRequest,
    spec: pb::JobSpec,
    job: Arc<dyn Job>,
    /// The attempt running, shared with the heartbeat.
    current: Slot<Current>,
    /// The host this worker advertises.
    host: String,
    /// The map outputs it serves.
    outputs: Outputs,
    /// Its own work directory.
    work_dir: PathBuf,
    token: Token,
    tls: Option<Tls>,
}

impl Context {
    /// The context of a job this process registered with (`registration`, whose host it
    /// advertises) as worker `worker_id`, with the job's token and TLS from `options`.
    fn new(
        worker_id: u64,
        registration: pb::RegisterWorkerRequest,
        spec: pb::JobSpec,
        job: Arc<dyn Job>,
        outputs: Outputs,
        work_dir: PathBuf,
        options: &WorkerOptions,
    ) -> Context {
        Context {
            worker_id: Arc::new(AtomicU64::new(worker_id)),
            host: registration.host.clone(),
            registration,
            spec,
            job,
            current: Slot::default(),
            outputs,
            work_dir,
            token: options.token.clone(),
            tls: options.tls.clone(),
        }
    }

    /// The memory and merge settings of the job's attempts.
    fn settings(&self) -> Result<TaskSettings> {
        let spec = &self.spec;
        Ok(TaskSettings {
            partitions: spec.reduce_tasks,
            sort_buffer: spec.sort_buffer_bytes.max(1),
            merge_fan_in: spec.merge_fan_in.max(2) as usize,
            max_record_bytes: spec.max_record_bytes.max(1),
            output_compression: OutputCompression::from_name(&spec.output_compression).ok_or_else(|| {
                Error::Job(format!("unknown output compression '{}' in the job", spec.output_compression))
            })?,
        })
    }
}

/// Pulls tasks until the job is over, running each attempt as it comes.
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
                    result = attempt::run_attempt(client, context, task) => result,
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
