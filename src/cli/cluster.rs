//! The cluster's commands: `mr cluster` (the service), `mr submit`, `mr jobs`, `mr kill`, and
//! `mr worker --cluster URL` (long-lived slots).

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{JobArgs, Selected, cores, request, usage};
use crate::cluster::service::{Cluster, ClusterConfig};
use crate::cluster::submission::Submission;
use crate::error::Error;
use crate::job::Registry;
use crate::net::rpc::pb::cluster_client::ClusterClient;
use crate::net::rpc::{self, AuthChannel, Token, pb};
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
    cluster: Option<String>,
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

/// What `mr submit` sends: the request `mr run` would plan, with absolute paths.
fn submission(args: &JobArgs, selected: Selected, registry: &Registry) -> anyhow::Result<Submission> {
    let (job, job_args) = match selected {
        Selected::Job { name, argv } => (name, argv),
        Selected::Default => ("wordcount".to_string(), Vec::new()),
        Selected::Teragen { .. } | Selected::Teravalidate => {
            return Err(usage("teragen and teravalidate run with `mr run`, not on a cluster"));
        }
    };
    let request = request(args, &job, job_args, None, registry)?;
    let absolute = |p: &PathBuf| -> anyhow::Result<PathBuf> {
        if crate::data::storage::is_url(p) {
            return Ok(p.clone());
        }
        std::path::absolute(p).with_context(|| format!("cannot make '{}' absolute", p.display()))
    };
    let t = &args.tolerance;
    Ok(Submission {
        job: request.job,
        job_args: request.job_args,
        inputs: request.inputs.iter().map(absolute).collect::<anyhow::Result<_>>()?,
        output: absolute(&request.output)?,
        input_format: request.input_format,
        output_compression: request.settings.output_compression,
        split_size: request.split_size,
        reduce_tasks: request.reduce_tasks,
        workers: args.resources.workers.unwrap_or_else(cores),
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
    })
}

/// `mr submit`: queues the job, then (unless --detach) shows its progress and summary and
/// exits with its status.
pub(super) fn submit(args: SubmitArgs, selected: Selected, registry: &Registry) -> anyhow::Result<()> {
    if args.job.io.resume {
        return Err(usage("--resume is for `mr run`: a cluster resumes its jobs by itself after a restart"));
    }
    let submission = submission(&args.job, selected, registry)?;
    let json = serde_json::to_string(&submission)?;
    runtime()?.block_on(async move {
        let mut client = client(args.url.get()?, &args.job.security).await?;
        let request = pb::SubmitRequest { submission: json };
        let id = client.submit(request).await.map_err(call_error("Submit"))?.into_inner().job_id;
        if args.detach {
            println!("{id}");
            return Ok(());
        }
        let quiet = args.job.format.quiet || args.job.format.json;
        if !quiet {
            eprintln!("job {id} submitted to {}", args.url.get()?);
        }
        let info = watch(&mut client, id, quiet, args.detach_on_interrupt).await?;
        let Some(info) = info else { return Ok(()) };
        if args.job.format.json {
            println!("{}", info.summary_json);
        } else if !args.job.format.quiet && !info.summary_text.is_empty() {
            println!("{}", info.summary_text);
        }
        match info.state.as_str() {
            "succeeded" => Ok(()),
            "killed" => Err(Error::Job(format!("job {id} was killed: its output was removed")).into()),
            state => Err(Error::Job(format!("job {id} {state}: {}", info.error)).into()),
        }
    })
}

/// Follows the job until it ends (its last state), or until Ctrl-C detaches (`None`).
async fn watch(
    client: &mut ClusterClient<AuthChannel>,
    id: u64,
    quiet: bool,
    detach_on_interrupt: bool,
) -> anyhow::Result<Option<pb::JobInfo>> {
    let mut version = 0;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let progress = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        let call = client.watch_job(pb::WatchJobRequest { job_id: id, known_version: version });
        let info = tokio::select! {
            info = call => info.map_err(call_error("WatchJob"))?.into_inner(),
            _ = interrupt.recv() => {
                if detach_on_interrupt || !ask_to_kill(id).await {
                    eprintln!("\ndetached: job {id} runs on (`mr jobs --cluster URL` lists it)");
                    return Ok(None);
                }
                client.kill_job(pb::KillJobRequest { job_id: id }).await.map_err(call_error("KillJob"))?;
                continue;
            }
        };
        version = info.version;
        if progress {
            eprint!(
                "\rjob {id}: {} map {}/{} reduce {}/{}   ",
                info.state, info.map_done, info.map_total, info.reduce_done, info.reduce_total
            );
        }
        if matches!(info.state.as_str(), "succeeded" | "failed" | "killed") {
            if progress {
                eprintln!();
            }
            return Ok(Some(info));
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
