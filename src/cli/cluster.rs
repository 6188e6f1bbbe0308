//! The cluster's commands: `mr cluster` (the service), `mr submit`, `mr jobs`, `mr kill`, and
//! `mr worker --cluster URL` (long-lived slots).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{JobArgs, JobRecord, LogFormat, OutputFormat, Selected, command_line, cores, request, usage};
use crate::cluster::service::{Cluster, ClusterConfig};
use crate::cluster::submission::{Submission, plan_message};
use crate::control::plan::{self, Draft};
use crate::error::Error;
use crate::job::Registry;
use crate::net::rpc::pb::cluster_client::ClusterClient;
use crate::net::rpc::{self, AuthChannel, Token, pb};
use crate::report::progress::{ProgressMode, Snapshot, show_from};
use crate::settings::{Addresses, Security, heading};

/// `mr cluster`'s flags.
#[derive(Debug, Args)]
pub(super) struct ClusterArgs {
    #[command(flatten)]
    addresses: Addresses,
    /// Directory of the cluster's store of jobs (cluster.redb): every job's request, state,
    /// progress and summary, kept across restarts.
    #[arg(long, value_name = "DIR", env = "MR_STATE_DIR", help_heading = heading::CLUSTER)]
    state_dir: PathBuf,
    /// Most jobs that run at once (the others wait in the queue); 0: no limit.
    #[arg(long, value_name = "N", env = "MR_MAX_RUNNING", default_value_t = 0, help_heading = heading::CLUSTER)]
    max_running: usize,
    #[command(flatten)]
    security: Security,
}

/// The cluster a command talks to.
#[derive(Debug, Args)]
pub(super) struct ClusterUrl {
    /// The cluster's URL (what `mr cluster` prints), e.g. http://10.0.0.1:7000.
    #[arg(long, value_name = "URL", env = "MR_CLUSTER", help_heading = heading::CLUSTER)]
    pub(super) cluster: Option<String>,
}

impl ClusterUrl {
    /// The URL; a usage error without one.
    fn get(&self) -> anyhow::Result<&str> {
        self.cluster.as_deref().ok_or_else(|| usage("give the cluster's URL: --cluster URL (or MR_CLUSTER)"))
    }
}

/// `mr submit`'s flags: every flag of `mr run`, the cluster, and how to wait.
#[derive(Debug, Args)]
pub(super) struct SubmitArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    #[command(flatten)]
    url: ClusterUrl,
    /// Print the job's id and return at once; the job runs on.
    #[arg(long)]
    detach: bool,
    /// On Ctrl-C, return and leave the job running, instead of asking whether to kill it.
    #[arg(long)]
    detach_on_interrupt: bool,
}

/// `mr jobs`' flags.
#[derive(Debug, Args)]
pub(super) struct JobsArgs {
    #[command(flatten)]
    url: ClusterUrl,
    #[command(flatten)]
    security: Security,
    /// Print the jobs as JSON.
    #[arg(long)]
    json: bool,
}

/// `mr kill`'s flags.
#[derive(Debug, Args)]
pub(super) struct KillArgs {
    /// The job's id (as `mr submit` and `mr jobs` show it).
    id: u64,
    #[command(flatten)]
    url: ClusterUrl,
    #[command(flatten)]
    security: Security,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `mr cluster`: serves until SIGINT or SIGTERM; running jobs are left to resume at the next
/// start.
pub(super) fn serve(args: ClusterArgs, registry: Registry) -> anyhow::Result<()> {
    let Some(listen) = args.addresses.listen.clone() else {
        return Err(usage(
            "mr cluster needs --listen ADDR (e.g. 0.0.0.0:7000, or MR_LISTEN) so that workers and submitters know \
             where to reach it",
        ));
    };
    let tls = args.security.tls()?;
    crate::data::storage::private_umask();
    let token = Token::new(args.security.token.as_deref().unwrap_or(""))?;
    runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|source| Error::Listen { addr: listen.clone(), cause: source })?;
        let local = listener.local_addr().map_err(|source| Error::Listen { addr: listen.clone(), cause: source })?;
        if !token.is_set() && !local.ip().is_loopback() {
            return Err(Error::Config(format!(
                "the cluster would listen on {local} without a token, so anyone who can reach it could run jobs' \
                 code on its workers: give MR_TOKEN (or --token), the same to every worker and submitter"
            ))
            .into());
        }
        let config = ClusterConfig {
            state_dir: args.state_dir.clone(),
            token,
            tls: tls.clone(),
            max_running: (args.max_running > 0).then_some(args.max_running),
            slot_timeout: Duration::from_secs(10),
        };
        let cluster = Cluster::open(config, Arc::new(registry)).await?;
        let shutdown = CancellationToken::new();
        let web = match args.addresses.http.as_deref() {
            Some("off") => None,
            addr => Some(crate::cluster::web::start(&cluster, addr.unwrap_or("127.0.0.1:0"), shutdown.clone()).await?),
        };
        eprintln!("cluster: {}://{}", rpc::scheme(tls.as_ref()), crate::launch::run::reachable(local));
        if let Some((_, url)) = &web {
            eprintln!("web: {url}");
        }
        let server = tokio::spawn(cluster.clone().serve(listener, shutdown.clone()));
        let stop = interrupted();
        tokio::select! {
            served = server => served.map_err(|e| Error::Job(format!("the cluster's server panicked: {e}")))??,
            signal = stop => signal?,
        }
        shutdown.cancel();
        cluster.stop();
        Ok(())
    })
}

/// Waits for SIGINT or SIGTERM.
async fn interrupted() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut interrupt, mut terminate) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// An authenticated client of the cluster at `url`.
async fn client(url: &str, security: &Security) -> anyhow::Result<ClusterClient<AuthChannel>> {
    let tls = security.tls()?;
    let token = Token::new(security.token.as_deref().unwrap_or(""))?;
    let channel = crate::worker::connect(url, Duration::from_secs(10), tls.as_ref()).await?;
    Ok(ClusterClient::new(rpc::authenticated(channel, token)).max_decoding_message_size(rpc::MAX_MESSAGE_BYTES))
}

/// A failed call to the cluster as an error; a refused request is a usage error (exit 2).
fn call_error(call: &'static str) -> impl FnOnce(tonic::Status) -> anyhow::Error {
    move |status| match status.code() {
        tonic::Code::InvalidArgument => Error::Usage(status.message().to_string()).into(),
        tonic::Code::FailedPrecondition | tonic::Code::NotFound => Error::Job(status.message().to_string()).into(),
        _ => Error::Rpc { call, status: Box::new(status) }.into(),
    }
}

/// What `mr submit` sends: the request `mr run` would plan, with absolute paths and the
/// settings `_job.json` records, and the job planned here, so that a bad input is refused
/// before anything reaches the cluster.
fn submission(
    args: &JobArgs,
    selected: Selected,
    registry: &Registry,
    log_format: LogFormat,
) -> anyhow::Result<(Submission, Draft)> {
    let (job, job_args) = match selected {
        Selected::Job { name, argv } => (name, argv),
        Selected::Default => ("wordcount".to_string(), Vec::new()),
        Selected::Teragen { .. } | Selected::Teravalidate => {
            return Err(usage("teragen and teravalidate run with `mr run`, not on a cluster"));
        }
    };
    if registry.get(&job)?.steps(&registry.parse(&job, &job_args)?)?.is_some() {
        return Err(usage("a multi-step job (--steps) runs with `mr run`, not on a cluster"));
    }
    let request = request(args, &job, job_args, None, registry)?;
    let draft = plan::draft(&request, registry)?;
    let absolute = |p: &PathBuf| -> anyhow::Result<PathBuf> {
        if crate::data::storage::is_url(p) {
            return Ok(p.clone());
        }
        std::path::absolute(p).with_context(|| format!("cannot make '{}' absolute", p.display()))
    };
    let output = absolute(&request.output)?;
    let workers = args.resources.workers.unwrap_or_else(cores);
    let config = JobRecord::new(args, &request, draft.shape(&output), workers, false, log_format, args.faults());
    let config = serde_json::to_value(&config)?;
    let t = &args.tolerance;
    let submission = Submission {
        job: request.job.clone(),
        job_args: request.job_args.clone(),
        inputs: draft.inputs.clone(),
        output,
        input_format: request.input_format,
        output_compression: request.settings.output_compression,
        split_size: request.split_size,
        reduce_tasks: request.reduce_tasks,
        workers,
        overwrite: request.overwrite,
        sort_buffer: request.settings.sort_buffer,
        merge_fan_in: request.settings.merge_fan_in as u32,
        max_record_bytes: request.settings.max_record_bytes,
        worker_timeout_ms: t.worker_timeout.as_millis() as u64,
        task_timeout_ms: t.task_timeout.as_millis() as u64,
        max_attempts: t.max_attempts,
        speculative: t.speculative,
        skip_bad_records: t.skip_bad_records,
        faults: args.faults(),
        command: command_line(),
        config,
    };
    Ok((submission, draft))
}

/// `mr submit`: plans the job and queues it, then (unless --detach) shows its progress and
/// summary as `mr run` does and exits with its status.
pub(super) fn submit(
    args: SubmitArgs,
    selected: Selected,
    registry: &Registry,
    log_format: LogFormat,
) -> anyhow::Result<()> {
    if args.job.io.resume {
        return Err(usage("--resume is for `mr run`: a cluster resumes its jobs by itself after a restart"));
    }
    let (submission, draft) = submission(&args.job, selected, registry, log_format)?;
    let request =
        pb::SubmitRequest { submission: serde_json::to_string(&submission)?, plan: Some(plan_message(&draft)) };
    let format = &args.job.format;
    let mode = if format.quiet || format.json { ProgressMode::Off } else { ProgressMode::Auto };
    runtime()?.block_on(async move {
        let mut client = client(args.url.get()?, &args.job.security).await?;
        let id = client.submit(request).await.map_err(call_error("Submit"))?.into_inner().job_id;
        if args.detach {
            println!("{id}");
            return Ok(());
        }
        if mode != ProgressMode::Off {
            eprintln!("job {id} submitted to {}", args.url.get()?);
        }
        let watch = Watch { id, input_bytes: draft.input_bytes, mode, detach_on_interrupt: args.detach_on_interrupt };
        let Some(info) = watch.follow(&mut client).await? else { return Ok(()) };
        ended(id, &info, format)
    })
}

/// Prints an ended job's summary as `mr run` does (the same text and JSON, made by the cluster
/// from the same summary), and returns its status.
fn ended(id: u64, info: &pb::JobInfo, format: &OutputFormat) -> anyhow::Result<()> {
    let succeeded = info.state == "succeeded";
    if format.json {
        if info.summary_json.is_empty() {
            let failed = serde_json::json!({
                "job": info.job, "mode": "cluster", "succeeded": false, "interrupted": false, "error": info.error,
            });
            println!("{}", serde_json::to_string_pretty(&failed)?);
        } else {
            println!("{}", info.summary_json);
        }
    } else if succeeded && !format.quiet {
        println!("{}", info.summary_text);
    }
    match info.state.as_str() {
        "succeeded" => Ok(()),
        "killed" => Err(Error::Job(format!("job {id} was killed: its output was removed")).into()),
        state => Err(Error::Job(format!("job {id} {state}: {}", info.error)).into()),
    }
}

/// An attached `mr submit` following its job.
struct Watch {
    id: u64,
    input_bytes: u64,
    mode: ProgressMode,
    detach_on_interrupt: bool,
}

/// The progress display, drawn from the job's last known state.
struct Bars {
    state: tokio::sync::watch::Sender<Snapshot>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Bars {
    fn start(input_bytes: u64, mode: ProgressMode, now: Snapshot) -> Bars {
        let (state, seen) = tokio::sync::watch::channel(now);
        let stop = CancellationToken::new();
        let task = tokio::spawn(show_from(move || *seen.borrow(), input_bytes, mode, stop.clone()));
        Bars { state, stop, task }
    }

    /// Draws the last state and stops.
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// What the progress display shows of a job.
fn snapshot(info: &pb::JobInfo) -> Snapshot {
    Snapshot {
        map_done: info.map_done,
        maps: info.map_total,
        map_bytes: info.map_bytes,
        reduce_done: info.reduce_done,
        reduces: info.reduce_total,
        reduce_bytes: info.reduce_bytes,
        reduce_total: info.reduce_total_bytes,
    }
}

impl Watch {
    /// Follows the job until it ends (its last state), or until Ctrl-C detaches (`None`). The
    /// cluster answers each WatchJob as soon as the job changes.
    async fn follow(&self, client: &mut ClusterClient<AuthChannel>) -> anyhow::Result<Option<pb::JobInfo>> {
        let id = self.id;
        let mut version = 0;
        let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
        let mut display: Option<Bars> = None;
        loop {
            let call = client.watch_job(pb::WatchJobRequest { job_id: id, known_version: version });
            let info = tokio::select! {
                info = call => info.map_err(call_error("WatchJob"))?.into_inner(),
                _ = interrupt.recv() => {
                    // The question is asked without the bars drawing over it.
                    if let Some(d) = display.take() {
                        d.stop().await;
                    }
                    if self.detach_on_interrupt || !ask_to_kill(id).await {
                        eprintln!("\ndetached: job {id} runs on (`mr jobs --cluster URL` lists it)");
                        return Ok(None);
                    }
                    client.kill_job(pb::KillJobRequest { job_id: id }).await.map_err(call_error("KillJob"))?;
                    continue;
                }
            };
            version = info.version;
            let now = snapshot(&info);
            let over = matches!(info.state.as_str(), "succeeded" | "failed" | "killed");
            match &display {
                Some(d) => {
                    d.state.send_replace(now);
                }
                // From the job's start on (a queued job has no progress to show).
                None if info.state != "queued" && !over => {
                    display = Some(Bars::start(self.input_bytes, self.mode, now));
                }
                None => {}
            }
            if over {
                if let Some(d) = display.take() {
                    d.stop().await;
                }
                return Ok(Some(info));
            }
        }
    }
}

/// Asks on the terminal whether to kill the job; without a terminal, the job is killed (as
/// Ctrl-C stops `mr run`'s job).
async fn ask_to_kill(id: u64) -> bool {
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return true;
    }
    eprint!("\nkill job {id}? [y/N] ");
    let answer = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await;
    matches!(answer, Ok(Ok(line)) if line.trim().eq_ignore_ascii_case("y") || line.trim().eq_ignore_ascii_case("yes"))
}

/// `mr jobs`: one line per job, oldest first.
pub(super) fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let jobs = runtime()?.block_on(async {
        let mut client = client(args.url.get()?, &args.security).await?;
        let reply = client.list_jobs(pb::ListJobsRequest {}).await.map_err(call_error("ListJobs"))?;
        anyhow::Ok(reply.into_inner().jobs)
    })?;
    if args.json {
        let rows: Vec<serde_json::Value> = jobs.iter().map(job_json).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:>5}  {:<12} {:<10} {:<22} {:<20} {:>10}  OUTPUT",
        "ID", "JOB", "STATE", "PROGRESS", "SUBMITTED", "DURATION"
    );
    for j in &jobs {
        let progress = format!("map {}/{} reduce {}/{}", j.map_done, j.map_total, j.reduce_done, j.reduce_total);
        println!(
            "{:>5}  {:<12} {:<10} {:<22} {:<20} {:>10}  {}",
            j.job_id,
            j.job,
            j.state,
            progress,
            submitted(j.submitted_ms),
            duration(j),
            String::from_utf8_lossy(&j.output)
        );
    }
    Ok(())
}

fn job_json(j: &pb::JobInfo) -> serde_json::Value {
    serde_json::json!({
        "id": j.job_id, "job": j.job, "state": j.state,
        "map_done": j.map_done, "map_total": j.map_total, "reduce_done": j.reduce_done, "reduce_total": j.reduce_total,
        "submitted_ms": j.submitted_ms, "started_ms": j.started_ms, "ended_ms": j.ended_ms,
        "output": String::from_utf8_lossy(&j.output), "error": j.error,
    })
}

fn submitted(ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn duration(j: &pb::JobInfo) -> String {
    if j.started_ms == 0 {
        return "-".into();
    }
    let end = if j.ended_ms > 0 { j.ended_ms } else { crate::cluster::service::unix_ms() };
    format!("{:.1}s", end.saturating_sub(j.started_ms) as f64 / 1000.0)
}

/// `mr kill`.
pub(super) fn kill(args: KillArgs) -> anyhow::Result<()> {
    let state = runtime()?.block_on(async {
        let mut client = client(args.url.get()?, &args.security).await?;
        let request = pb::KillJobRequest { job_id: args.id };
        let reply = client.kill_job(request).await.map_err(call_error("KillJob"))?;
        anyhow::Ok(reply.into_inner().state)
    })?;
    match state.as_str() {
        "killed" => println!("job {}: killed", args.id),
        "running" => println!("job {}: killing (its attempts stop, then its output is removed)", args.id),
        other => return Err(Error::Job(format!("job {} has already ended: {other}", args.id)).into()),
    }
    Ok(())
}

/// `mr worker --cluster URL`: one slot in this process (`--slots 1`), or N slot processes.
pub(super) fn worker(
    slots: Option<u32>,
    options: crate::worker::WorkerOptions,
    registry: Registry,
) -> anyhow::Result<()> {
    let slots = slots.unwrap_or_else(cores);
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let result = if slots == 1 {
        runtime.block_on(crate::worker::cluster::work_slot(options, Arc::new(registry)))
    } else {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        runtime.block_on(crate::worker::slots::supervise(exe, slot_args(), slots))
    };
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(result?)
}

/// A slot process's arguments: this command's, with `--slots 1`.
fn slot_args() -> Vec<OsString> {
    let mut args = Vec::new();
    let mut skip = false;
    for arg in std::env::args_os().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--slots" {
            skip = true;
            continue;
        }
        if text.starts_with("--slots=") {
            continue;
        }
        args.push(arg);
    }
    args.extend(["--slots".into(), "1".into()]);
    args
}
