//! `mr bench-coordinator`: what the coordinator costs per task, with no task work at all.
//!
//! An in-process [`Coordinator`] serves real gRPC on loopback, on a runtime of its own whose
//! threads count their CPU time as they stop. N simulated workers, each on its own connection
//! and on another runtime of this process, do what `mr worker` does minus the work:
//! RegisterWorker, then GetTask → ReportCompletion for each map, GetTask → CommitTask →
//! ReportCompletion for each reduce, until told to exit. They time every call. The floor is
//! the same N clients making empty unary calls (State.GetState with no keys) to the same
//! kind of server: what any call costs through tonic, the token check and loopback TCP.
//!
//! `--job` also runs the real thing: `mr run wordcount` with its worker processes on a corpus
//! cut into as many splits as there are map tasks, and reads the CPU time of the `mr run`
//! process alone (not its workers) from `/proc` while it is a zombie, before it is reaped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::control::coordinator::{Coordinator, CoordinatorConfig};
use crate::error::{Error, Result};
use crate::net::rpc::pb;
use crate::net::rpc::{MAX_MESSAGE_BYTES, Token};

/// Settings of `mr bench-coordinator`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Map tasks of the simulated job.
    pub maps: u32,
    /// Reduce tasks of the simulated job.
    pub reduces: u32,
    /// The numbers of concurrent clients to measure, one run each.
    pub clients: Vec<u32>,
}

/// Latency percentiles of one kind of call, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Calls measured.
    pub calls: usize,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
}

impl Latency {
    fn of(mut micros: Vec<f64>) -> Latency {
        if micros.is_empty() {
            return Latency::default();
        }
        micros.sort_by(f64::total_cmp);
        let at = |q: f64| micros[((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len()) - 1];
        Latency { calls: micros.len(), p50_us: at(0.5), p99_us: at(0.99), max_us: at(1.0) }
    }
}

/// One run of the simulated job with N clients, and its floor.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    /// Concurrent clients.
    pub clients: u32,
    /// Tasks of the job (maps + reduces).
    pub tasks: u32,
    /// Wall time of the job, from the first RegisterWorker to the last exit.
    pub wall_s: f64,
    /// CPU time of the coordinator's threads over the job.
    pub coordinator_cpu_s: f64,
    /// CPU time of the whole process (coordinator and clients).
    pub process_cpu_s: f64,
    /// GetTask answered with a map task (never held: a map task is there for the asking).
    pub get_task_map: Latency,
    /// ReportCompletion of a map attempt.
    pub report_map: Latency,
    /// GetTask answered with a reduce task: includes the wait for the last maps to finish.
    pub get_task_reduce: Latency,
    /// CommitTask of a reduce attempt.
    pub commit_reduce: Latency,
    /// ReportCompletion of a reduce attempt.
    pub report_reduce: Latency,
    /// The floor: empty unary calls by the same clients, as many as the job's map calls.
    pub empty_call: Latency,
    /// CPU time of the server's threads over the empty calls.
    pub empty_cpu_s: f64,
}

impl LoadRow {
    /// Coordinator CPU per task, in microseconds.
    pub fn cpu_per_task_us(&self) -> f64 {
        self.coordinator_cpu_s * 1e6 / f64::from(self.tasks.max(1))
    }

    /// Server CPU per empty call, in microseconds.
    pub fn cpu_per_empty_call_us(&self) -> f64 {
        self.empty_cpu_s * 1e6 / self.empty_call.calls.max(1) as f64
    }
}

/// Measures the simulated job at each client count.
pub fn run(options: &LoadOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<LoadRow>> {
    let mut rows = Vec::new();
    for &clients in &options.clients {
        let clients = clients.max(1);
        progress(&format!("{clients} clients: empty calls"));
        let empty_calls = 2 * options.maps as usize;
        let (empty, _) = measure(options, clients, Work::Empty { calls: empty_calls })?;
        progress(&format!("{clients} clients: {} maps, {} reduces", options.maps, options.reduces));
        let (job, usage) = measure(options, clients, Work::Job)?;
        let pick = |kind: Kind| Latency::of(job.calls.iter().filter(|c| c.0 == kind).map(|c| c.1).collect());
        rows.push(LoadRow {
            clients,
            tasks: options.maps + options.reduces,
            wall_s: usage.wall_s,
            coordinator_cpu_s: usage.server_cpu_s,
            process_cpu_s: usage.process_cpu_s,
            get_task_map: pick(Kind::GetTaskMap),
            report_map: pick(Kind::ReportMap),
            get_task_reduce: pick(Kind::GetTaskReduce),
            commit_reduce: pick(Kind::Commit),
            report_reduce: pick(Kind::ReportReduce),
            empty_call: Latency::of(empty.calls.iter().map(|c| c.1).collect()),
            empty_cpu_s: empty.server_cpu_s,
        });
    }
    Ok(rows)
}

/// What the clients do.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// `calls` empty unary calls in all.
    Empty { calls: usize },
    /// The job, until told to exit.
    Job,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    GetTaskMap,
    ReportMap,
    GetTaskReduce,
    Commit,
    ReportReduce,
}

/// Every call the clients made (kind, microseconds), and the server's CPU.
#[derive(Debug, Default)]
struct Calls {
    calls: Vec<(Kind, f64)>,
    server_cpu_s: f64,
}

struct Usage {
    wall_s: f64,
    server_cpu_s: f64,
    process_cpu_s: f64,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Job(format!("bench-coordinator: {what}: {e}"))
}

fn rpc(what: &'static str) -> impl Fn(tonic::Status) -> Error {
    move |e| Error::Job(format!("bench-coordinator: {what} failed: {e}"))
}

/// CPU time (user + system) of what `who` names, in seconds.
fn cpu_s(who: nix::sys::resource::UsageWho) -> f64 {
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    nix::sys::resource::getrusage(who).map_or(0.0, |u| secs(u.user_time()) + secs(u.system_time()))
}

/// One run: a fresh coordinator on its own runtime, `clients` clients doing `work`.
fn measure(options: &LoadOptions, clients: u32, work: Work) -> Result<(Calls, Usage)> {
    // Each coordinator thread adds its CPU time here as it stops, so the sum is complete once
    // the runtime is dropped (which joins its threads).
    let server_cpu_us = Arc::new(AtomicU64::new(0));
    let server_rt = {
        let cpu = server_cpu_us.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mr-bench-coordinator")
            .enable_all()
            .on_thread_stop(move || {
                let s = cpu_s(nix::sys::resource::UsageWho::RUSAGE_THREAD);
                cpu.fetch_add((s * 1e6) as u64, Ordering::Relaxed);
            })
            .build()
            .map_err(io("cannot start a runtime"))?
    };
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("mr-bench-client")
        .enable_all()
        .build()
        .map_err(io("cannot start a runtime"))?;
    let output = tempfile::Builder::new().prefix("mr-bench-coordinator-").tempdir().map_err(io("cannot create"))?;
    let (token, token_text) = Token::random()?;
    let coordinator = Coordinator::new(job(options, output.path(), token));
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(|source| Error::Listen { addr: "127.0.0.1:0".into(), cause: source })?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|source| Error::Listen { addr: "127.0.0.1:0".into(), cause: source })?
    );
    let shutdown = CancellationToken::new();
    let server = server_rt.spawn(coordinator.clone().serve(listener, shutdown.clone()));

    let process_before = cpu_s(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let started = Instant::now();
    let token = Token::new(&token_text)?;
    let per_client = match work {
        Work::Empty { calls } => calls.div_ceil(clients as usize),
        Work::Job => 0,
    };
    let results: Vec<Result<Vec<(Kind, f64)>>> = client_rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..clients {
            set.spawn(client(url.clone(), token.clone(), work, per_client));
        }
        let mut results = Vec::new();
        while let Some(joined) = set.join_next().await {
            results.push(joined.map_err(|e| Error::Job(format!("bench-coordinator: a client panicked: {e}")))?);
        }
        Ok::<_, Error>(results)
    })?;
    let wall_s = started.elapsed().as_secs_f64();
    let process_cpu_s = cpu_s(nix::sys::resource::UsageWho::RUSAGE_SELF) - process_before;
    shutdown.cancel();
    let served = server_rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await });
    drop(client_rt);
    drop(server_rt);
    match served {
        Ok(Ok(Ok(()))) | Err(_) => {}
        Ok(Ok(Err(e))) => return Err(e),
        Ok(Err(e)) => return Err(Error::Job(format!("bench-coordinator: the server panicked: {e}"))),
    }
    let mut calls = Calls { server_cpu_s: server_cpu_us.load(Ordering::Relaxed) as f64 / 1e6, ..Calls::default() };
    for r in results {
        calls.calls.extend(r?);
    }
    if matches!(work, Work::Job) {
        let state = coordinator.scheduler().state().clone();
        if state != crate::control::scheduler::JobState::Succeeded {
            return Err(Error::Job(format!("bench-coordinator: the simulated job ended in state {state:?}")));
        }
    }
    let server_cpu_s = calls.server_cpu_s;
    Ok((calls, Usage { wall_s, server_cpu_s, process_cpu_s }))
}

/// The simulated job: `maps` splits of a file that no one reads, defaults elsewhere.
fn job(options: &LoadOptions, output: &Path, token: Token) -> CoordinatorConfig {
    let splits = (0..u64::from(options.maps))
        .map(|i| crate::data::input::Split {
            ranges: vec![crate::data::input::FileRange {
                path: PathBuf::from("/bench/input/part-000.txt"),
                start: i * 1000,
                end: (i + 1) * 1000,
                first_line: 0,
                stamp: None,
                name: None,
            }],
        })
        .collect();
    let defaults = crate::settings::defaults::<crate::settings::Resources>();
    CoordinatorConfig {
        job_name: "wordcount".into(),
        job_args: Vec::new(),
        splits,
        reduce_tasks: options.reduces,
        output_dir: output.to_path_buf(),
        heartbeat_interval: Duration::from_secs(1),
        tolerance: crate::settings::FaultTolerance::default(),
        faults: crate::exec::fault::Faults::default(),
        state: Vec::new(),
        input_format: crate::data::input::InputFormat::Text,
        settings: crate::exec::task::TaskSettings {
            output_compression: Default::default(),
            partitions: options.reduces,
            sort_buffer: defaults.sort_buffer,
            merge_fan_in: defaults.merge_fan_in as usize,
            max_record_bytes: defaults.max_record_bytes,
        },
        token,
        tls: None,
        rerun_maps_of_lost_workers: false,
    }
}

/// One simulated worker: its own connection, every call timed.
async fn client(url: String, token: Token, work: Work, empty_calls: usize) -> Result<Vec<(Kind, f64)>> {
    use pb::coordinator_client::CoordinatorClient;
    use pb::state_client::StateClient;
    let channel = crate::worker::connect(&url, Duration::from_secs(10), None).await?;
    let mut calls = Vec::new();
    let timed = |start: Instant| start.elapsed().as_secs_f64() * 1e6;
    if let Work::Empty { .. } = work {
        let mut state = StateClient::new(crate::net::rpc::authenticated(channel, token))
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        for _ in 0..empty_calls {
            let start = Instant::now();
            state.get_state(pb::GetStateRequest { keys: Vec::new() }).await.map_err(rpc("GetState"))?;
            calls.push((Kind::Empty, timed(start)));
        }
        return Ok(calls);
    }
    let mut c = CoordinatorClient::new(crate::net::rpc::authenticated(channel, token))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let name = format!("bench pid {}", std::process::id());
    // A simulated worker is no process of its own: it gives no pid.
    let (shuffle_url, host) = ("http://127.0.0.1:1".into(), "127.0.0.1".into());
    let request = pb::RegisterWorkerRequest { name, shuffle_url, host, pid: 0 };
    let worker_id = c.register_worker(request).await.map_err(rpc("RegisterWorker"))?.into_inner().worker_id;
    loop {
        let start = Instant::now();
        let reply = c.get_task(pb::GetTaskRequest { worker_id }).await.map_err(rpc("GetTask"))?.into_inner();
        let took = timed(start);
        let task = match reply.reply {
            Some(pb::get_task_reply::Reply::Task(task)) => task,
            Some(pb::get_task_reply::Reply::Exit(_)) => return Ok(calls),
            Some(pb::get_task_reply::Reply::WaitMs(_)) | None => continue,
        };
        let is_map = matches!(task.kind, Some(pb::task::Kind::Map(_)));
        calls.push((if is_map { Kind::GetTaskMap } else { Kind::GetTaskReduce }, took));
        let task_ref = pb::TaskRef { is_map, task_id: task.task_id, attempt: task.attempt };
        let output = if is_map {
            format!("/tmp/mr-work-bench00/mr-worker-bench00/map-{:05}-{}.out", task.task_id, task.attempt)
        } else {
            let start = Instant::now();
            let request = pb::CommitTaskRequest { worker_id, task: Some(task_ref) };
            let granted = c.commit_task(request).await.map_err(rpc("CommitTask"))?.into_inner().granted;
            calls.push((Kind::Commit, timed(start)));
            if !granted {
                continue;
            }
            format!("/bench/output/part-r-{:05}", task.task_id)
        };
        let counters = pb::Counters { input_records: 20, input_bytes: 1000, output_records: 150, ..Default::default() };
        let request = pb::ReportCompletionRequest { worker_id, task: Some(task_ref), output, counters: Some(counters) };
        let start = Instant::now();
        c.report_completion(request).await.map_err(rpc("ReportCompletion"))?;
        calls.push((if is_map { Kind::ReportMap } else { Kind::ReportReduce }, timed(start)));
    }
}

/// Renders the rows as Markdown: cost per task, then latencies, each against the floor.
pub fn table(rows: &[LoadRow]) -> String {
    let mut s = String::from(
        "| clients | wall (s) | coordinator CPU (s) | CPU / task (µs) | CPU / empty call (µs) | CPU / task ÷ 2 empty calls |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let floor = 2.0 * r.cpu_per_empty_call_us();
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.0} | {:.2} |\n",
            r.clients,
            r.wall_s,
            r.coordinator_cpu_s,
            r.cpu_per_task_us(),
            r.cpu_per_empty_call_us(),
            r.cpu_per_task_us() / floor
        ));
    }
    s.push_str(
        "\n| clients | call | calls | p50 (µs) | p99 (µs) | max (µs) | p50 / empty p50 | p99 / empty p99 |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let lines = [
            ("empty call (floor)", r.empty_call),
            ("GetTask → map", r.get_task_map),
            ("ReportCompletion, map", r.report_map),
            ("GetTask → reduce (waits for the maps)", r.get_task_reduce),
            ("CommitTask", r.commit_reduce),
            ("ReportCompletion, reduce", r.report_reduce),
        ];
        for (name, l) in lines {
            s.push_str(&format!(
                "| {} | {name} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} |\n",
                r.clients,
                l.calls,
                l.p50_us,
                l.p99_us,
                l.max_us,
                l.p50_us / r.empty_call.p50_us,
                l.p99_us / r.empty_call.p99_us
            ));
        }
    }
    s
}

/// The coordinator's own cost in a real `mr run`.
#[derive(Debug, Clone, Serialize)]
pub struct RealJob {
    /// The command that ran.
    pub command: Vec<String>,
    /// Map tasks it had.
    pub maps: u32,
    /// Wall time of `mr run`.
    pub wall_s: f64,
    /// CPU time of the `mr run` process alone (coordinator, supervisor, planning).
    pub coordinator_cpu_s: f64,
    /// CPU time of its worker processes.
    pub workers_cpu_s: f64,
}

/// Runs `mr run wordcount` with `workers` worker processes on a generated corpus cut into
/// exactly `maps` splits of 1,000 bytes, in `dir`; checks its output against `--local`.
pub fn real_job(dir: &Path, maps: u32, workers: u32, reduces: u32) -> Result<RealJob> {
    const SPLIT: u64 = 1000;
    let exe = std::env::current_exe().map_err(|e| Error::Job(format!("cannot find this executable: {e}")))?;
    let input = dir.join("input");
    let file = input.join("part-000.txt");
    let bytes = u64::from(maps) * SPLIT;
    if std::fs::metadata(&file).map(|m| m.len()).ok() != Some(bytes) {
        let _ = std::fs::remove_dir_all(&input);
        crate::tools::datagen::text(&input, bytes + bytes / 10 + 4096, 1, 3)?;
        let f = std::fs::OpenOptions::new().write(true).open(&file).map_err(Error::io("cannot open", &file))?;
        f.set_len(bytes).map_err(Error::io("cannot cut", &file))?;
    }
    let (out, local) = (dir.join("out"), dir.join("out-local"));
    for d in [&out, &local] {
        let _ = std::fs::remove_dir_all(d);
    }
    let mut command: Vec<String> = ["run", "wordcount", "--input"].map(String::from).to_vec();
    command.push(input.to_string_lossy().into_owned());
    command.push("--output".into());
    command.push(out.to_string_lossy().into_owned());
    for (flag, value) in [("--split-size", SPLIT), ("--workers", workers.into()), ("--reduce-tasks", reduces.into())] {
        command.extend([flag.to_string(), value.to_string()]);
    }
    command.extend(["--quiet".into(), "--http".into(), "off".into(), "--oversubscribe".into()]);
    let started = Instant::now();
    let child = std::process::Command::new(&exe)
        .args(&command)
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| Error::Job(format!("cannot run mr run: {e}")))?;
    let (coordinator_cpu_s, workers_cpu_s) = own_cpu_at_exit(child)?;
    let wall_s = started.elapsed().as_secs_f64();
    let status = std::process::Command::new(&exe)
        .args(["run", "wordcount", "--local", "--quiet", "--split-size", "1MiB", "--reduce-tasks"])
        .arg(reduces.to_string())
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&local)
        .stdout(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::Job(format!("cannot run mr run --local: {e}")))?;
    if !status.success() {
        return Err(Error::Job(format!("mr run --local failed ({status})")));
    }
    for part in 0..reduces {
        let name = format!("part-r-{part:05}");
        let read = |d: &Path| std::fs::read(d.join(&name)).map_err(Error::io("cannot read", d.join(&name)));
        if read(&out)? != read(&local)? {
            return Err(Error::Job(format!("{name} of the distributed run differs from --local's")));
        }
    }
    Ok(RealJob { command, maps, wall_s, coordinator_cpu_s, workers_cpu_s })
}

/// Waits for `child` to exit and returns its own CPU seconds and its reaped children's, read
/// from `/proc` while it is a zombie: once reaped, its time is only in this process's
/// children's total, mixed with its workers'.
fn own_cpu_at_exit(mut child: std::process::Child) -> Result<(f64, f64)> {
    use nix::sys::wait::{Id, WaitPidFlag, waitid};
    let pid = child.id();
    let waited = waitid(Id::Pid(nix::unistd::Pid::from_raw(pid as i32)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
    waited.map_err(|e| Error::Job(format!("cannot wait for mr run: {e}")))?;
    let stat_path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&stat_path).map_err(Error::io("cannot read", &stat_path))?;
    let status = child.wait().map_err(|e| Error::Job(format!("cannot reap mr run: {e}")))?;
    if !status.success() {
        return Err(Error::Job(format!("mr run failed ({status})")));
    }
    // Fields after the command name (which may hold spaces, hence the last ')'): utime,
    // stime, cutime, cstime are fields 14 to 17 of the line, in USER_HZ ticks (100 a second
    // on Linux).
    let fields: Vec<f64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().skip(11).take(4).filter_map(|f| f.parse().ok()).collect())
        .unwrap_or_default();
    let [utime, stime, cutime, cstime] = fields[..] else {
        return Err(Error::Job(format!("cannot parse {stat_path}: {stat}")));
    };
    Ok(((utime + stime) / 100.0, (cutime + cstime) / 100.0))
}
