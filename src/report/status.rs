//! The coordinator's status server (axum): an HTML page at `/` that works offline, the same
//! data as JSON at `/api/v1/job` (schema: `docs/api-v1-job.schema.json`), and Prometheus
//! metrics at `/metrics`. Every response is a fresh snapshot of the scheduler.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::control::coordinator::Coordinator;
use crate::control::scheduler::{JobState, Outcome, Scheduler, TaskStatus};
use crate::data::input::Split;
use crate::error::{Error, Result};
use crate::types::TaskCounters;
use crate::types::{Millis, Phase};

/// Version of the JSON API, also its path segment.
pub const API_VERSION: u32 = 1;

/// Tasks listed one by one on the HTML page; the JSON API has all of them.
const PAGE_TASKS: usize = 500;

/// The whole job, as `/api/v1/job` serves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    /// Always [`API_VERSION`].
    pub api_version: u32,
    /// The job's name.
    pub job: String,
    /// running, committing, succeeded or failed.
    pub state: String,
    /// Why the job failed, once it has.
    pub error: Option<String>,
    /// When the job started, in ms since the Unix epoch.
    pub started_unix_ms: u64,
    /// Time since the job started.
    pub elapsed_ms: Millis,
    /// The map phase, then the reduce phase.
    pub phases: Vec<PhaseView>,
    /// Every task, maps first.
    pub tasks: Vec<TaskView>,
    /// Every worker that registered.
    pub workers: Vec<WorkerView>,
    /// Counters of the committed attempts, by phase, and the job's own counters summed.
    pub counters: CountersView,
}

/// One phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseView {
    /// map or reduce.
    pub phase: Phase,
    /// Number of tasks.
    pub tasks: u32,
    /// Tasks waiting for a worker.
    pub idle: u32,
    /// Tasks with an attempt running.
    pub running: u32,
    /// Tasks committed.
    pub done: u32,
    /// Attempts started, of every outcome.
    pub attempts: u32,
    /// Attempts that failed.
    pub failed_attempts: u32,
    /// Attempts whose worker died.
    pub lost_attempts: u32,
    /// Backup attempts.
    pub speculative_attempts: u32,
}

/// One task and its attempts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskView {
    /// map or reduce.
    pub phase: Phase,
    /// Index within the phase.
    pub index: u32,
    /// idle, running or done.
    pub state: TaskStatus,
    /// What it reads: the input split of a map task, the partition of a reduce task.
    pub input: String,
    /// Records processed: by the committed attempt, or so far by the furthest running one.
    pub records: u64,
    /// The last status message an attempt reported (a streaming command's `reporter:status:`).
    pub status: String,
    /// Its attempts, in order.
    pub attempts: Vec<AttemptView>,
}

/// One attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    /// Attempt number within the task.
    pub attempt: u32,
    /// The worker that ran it.
    pub worker: u64,
    /// True for a backup attempt.
    pub speculative: bool,
    /// When it started, in ms since the job started.
    pub start_ms: Millis,
    /// When it ended.
    pub end_ms: Option<Millis>,
    /// How long it ran, or has run so far.
    pub duration_ms: Millis,
    /// running, committed, failed, lost or discarded.
    pub outcome: String,
    /// The error of a failed attempt.
    pub error: Option<String>,
}

/// One worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerView {
    /// Its id in this job.
    pub id: u64,
    /// Its name (host and process).
    pub name: String,
    /// False once declared dead or exited.
    pub alive: bool,
    /// Time since it was last heard from.
    pub last_seen_ago_ms: Millis,
    /// The attempts it is running, e.g. "map 3.0".
    pub running: Vec<String>,
    /// Attempts it committed.
    pub committed: u32,
}

/// Counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountersView {
    /// Built-in counters of the committed map attempts.
    pub map: TaskCounters,
    /// Built-in counters of the committed reduce attempts.
    pub reduce: TaskCounters,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Map => "map",
        Phase::Reduce => "reduce",
    }
}

fn outcome_name(outcome: &Outcome) -> (&'static str, Option<String>) {
    match outcome {
        Outcome::Running => ("running", None),
        Outcome::Committed => ("committed", None),
        Outcome::Failed(e) => ("failed", Some(e.clone())),
        Outcome::Lost => ("lost", None),
        Outcome::Discarded => ("discarded", None),
    }
}

/// A snapshot of `coordinator`'s job.
pub fn snapshot(coordinator: &Coordinator) -> JobView {
    let now = coordinator.now();
    let config = coordinator.config();
    let s = coordinator.scheduler();
    let (state, error) = match s.state() {
        JobState::Running => ("running", None),
        JobState::TasksDone => ("committing", None),
        JobState::Succeeded => ("succeeded", None),
        JobState::Failed(f) => ("failed", Some(f.last_error.clone())),
    };
    let (phases, tasks) = phase_views(&s, &config.splits, now);
    JobView {
        api_version: API_VERSION,
        job: config.job_name.clone(),
        state: state.to_string(),
        error,
        started_unix_ms: coordinator.started_unix_ms(),
        elapsed_ms: now,
        phases,
        tasks,
        workers: worker_views(&s, now),
        counters: CountersView { map: s.counters(Phase::Map), reduce: s.counters(Phase::Reduce) },
    }
}

/// Each phase's counts of tasks and attempts, and each task with its attempts.
fn phase_views(s: &Scheduler, splits: &[Split], now: Millis) -> (Vec<PhaseView>, Vec<TaskView>) {
    let mut tasks = Vec::new();
    let mut phases = Vec::new();
    for phase in [Phase::Map, Phase::Reduce] {
        let statuses = s.task_statuses(phase);
        let messages = s.status_messages(phase);
        let start = tasks.len();
        for (index, (state, records)) in statuses.iter().enumerate() {
            let input = match phase {
                Phase::Map => splits.get(index).map_or_else(String::new, |split| split.to_string()),
                Phase::Reduce => format!("partition {index}"),
            };
            tasks.push(TaskView {
                phase,
                index: index as u32,
                state: *state,
                input,
                records: *records,
                status: messages.get(index).map_or_else(String::new, |m| m.to_string()),
                attempts: Vec::new(),
            });
        }
        let mut view = PhaseView {
            phase,
            tasks: statuses.len() as u32,
            idle: statuses.iter().filter(|t| t.0 == TaskStatus::Idle).count() as u32,
            running: statuses.iter().filter(|t| t.0 == TaskStatus::Running).count() as u32,
            done: statuses.iter().filter(|t| t.0 == TaskStatus::Done).count() as u32,
            attempts: 0,
            failed_attempts: 0,
            lost_attempts: 0,
            speculative_attempts: 0,
        };
        for a in s.attempts().iter().filter(|a| a.id.task.phase == phase) {
            view.attempts += 1;
            view.failed_attempts += u32::from(matches!(a.outcome, Outcome::Failed(_)));
            view.lost_attempts += u32::from(a.outcome == Outcome::Lost);
            view.speculative_attempts += u32::from(a.speculative);
            let (outcome, error) = outcome_name(&a.outcome);
            if let Some(task) = tasks.get_mut(start + a.id.task.index as usize) {
                task.attempts.push(AttemptView {
                    attempt: a.id.attempt,
                    worker: a.worker,
                    speculative: a.speculative,
                    start_ms: a.start_ms,
                    end_ms: a.end_ms,
                    duration_ms: a.end_ms.unwrap_or(now).saturating_sub(a.start_ms),
                    outcome: outcome.to_string(),
                    error,
                });
            }
        }
        phases.push(view);
    }
    (phases, tasks)
}

/// Each worker, with its running attempts and its count of committed ones.
fn worker_views(s: &Scheduler, now: Millis) -> Vec<WorkerView> {
    let mut workers: BTreeMap<u64, WorkerView> = s
        .workers()
        .iter()
        .map(|(&id, w)| {
            let view = WorkerView {
                id,
                name: w.name.clone(),
                alive: w.alive,
                last_seen_ago_ms: now.saturating_sub(w.last_seen_ms),
                running: Vec::new(),
                committed: 0,
            };
            (id, view)
        })
        .collect();
    for a in s.attempts() {
        if let Some(w) = workers.get_mut(&a.worker) {
            match a.outcome {
                Outcome::Running => {
                    w.running.push(format!("{} {}.{}", phase_name(a.id.task.phase), a.id.task.index, a.id.attempt))
                }
                Outcome::Committed => w.committed += 1,
                _ => {}
            }
        }
    }
    workers.into_values().collect()
}

/// What the page shows besides the scheduler's state: how the job was asked for.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// The command line, e.g. `mr run wordcount -i in -o out`.
    pub command: Vec<String>,
    /// The resolved settings, as `_job.json`'s `config` records them.
    pub settings: serde_json::Value,
    /// The worker log directory, when the page may link its files (a server on loopback).
    pub logs: Option<PathBuf>,
}

/// The state the routes share.
#[derive(Clone)]
struct Served {
    coordinator: Coordinator,
    about: Arc<About>,
}

/// The status server's routes.
pub fn router(coordinator: Coordinator, about: About) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/v1/job", get(api))
        .route("/metrics", get(metrics))
        .route("/logs/{name}", get(log_file))
        .with_state(Served { coordinator, about: Arc::new(about) })
}

/// Serves the status server on `listener` until `shutdown`. Worker logs are linked only when
/// it listens on a loopback address.
pub async fn serve(
    listener: TcpListener,
    coordinator: Coordinator,
    mut about: About,
    shutdown: CancellationToken,
) -> Result<()> {
    if !listener.local_addr().is_ok_and(|a| a.ip().is_loopback()) {
        about.logs = None;
    }
    let server =
        axum::serve(listener, router(coordinator, about)).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    // Requests in flight get a short grace period; a client that holds a connection open (an
    // idle keep-alive, a request it never finishes) does not hold the job's end.
    let grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = server => served.map_err(|e| Error::Job(format!("status server failed: {e}"))),
        () = grace => {
            tracing::debug!("status server: connections still open after the grace period are dropped");
            Ok(())
        }
    }
}

/// How long the status server lets requests in flight finish once the job is over.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

async fn api(State(served): State<Served>) -> Json<JobView> {
    Json(snapshot(&served.coordinator))
}

async fn page(State(served): State<Served>) -> Html<String> {
    Html(render_page(&snapshot(&served.coordinator), &served.about).into_string())
}

/// A worker's log file, `worker-N.log` in the job's log directory, and nothing else.
async fn log_file(State(served): State<Served>, Path(name): Path<String>) -> Response {
    let valid = name
        .strip_prefix("worker-")
        .and_then(|n| n.strip_suffix(".log"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let Some(dir) = served.about.logs.as_ref().filter(|_| valid) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such log").into_response();
    };
    match tokio::fs::read(dir.join(&name)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response(),
        Err(e) => (axum::http::StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}

/// The names of the worker log files in `dir`, in number order.
fn log_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<(u64, String)> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let n = name.strip_prefix("worker-")?.strip_suffix(".log")?.parse().ok()?;
                    Some((n, name))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.into_iter().map(|(_, name)| name).collect()
}

async fn metrics(State(served): State<Served>) -> Response {
    match render_metrics(&snapshot(&served.coordinator)) {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The job's metrics in Prometheus text format.
pub fn render_metrics(view: &JobView) -> std::result::Result<String, prometheus::Error> {
    use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
    let registry = Registry::new();
    let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> std::result::Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help).const_label("job", view.job.clone()), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let tasks = gauge_vec("mr_tasks", "Tasks by phase and state.", &["phase", "state"])?;
    let attempts = gauge_vec("mr_attempts", "Attempts started, by phase and outcome.", &["phase", "outcome"])?;
    let records = gauge_vec("mr_records", "Records of the committed attempts.", &["phase", "direction"])?;
    let bytes = gauge_vec("mr_bytes", "Bytes of the committed attempts.", &["phase", "direction"])?;
    let user = gauge_vec("mr_user_counter", "Counters defined by the job.", &["phase", "group", "name"])?;
    let workers = gauge_vec("mr_workers", "Workers by liveness.", &["state"])?;
    for p in &view.phases {
        let phase = phase_name(p.phase);
        for (state, n) in [("idle", p.idle), ("running", p.running), ("done", p.done)] {
            tasks.with_label_values(&[phase, state]).set(i64::from(n));
        }
    }
    for t in &view.tasks {
        for a in &t.attempts {
            attempts.with_label_values(&[phase_name(t.phase), a.outcome.as_str()]).inc();
        }
    }
    for (phase, c) in [("map", &view.counters.map), ("reduce", &view.counters.reduce)] {
        records.with_label_values(&[phase, "in"]).set(c.input_records as i64);
        records.with_label_values(&[phase, "out"]).set(c.output_records as i64);
        bytes.with_label_values(&[phase, "in"]).set(c.input_bytes as i64);
        bytes.with_label_values(&[phase, "out"]).set(c.output_bytes as i64);
        for (group, names) in &c.user {
            for (name, amount) in names {
                user.with_label_values(&[phase, group.as_str(), name.as_str()]).set(*amount as i64);
            }
        }
    }
    let alive = view.workers.iter().filter(|w| w.alive).count() as i64;
    workers.with_label_values(&["alive"]).set(alive);
    workers.with_label_values(&["dead"]).set(view.workers.len() as i64 - alive);
    let elapsed = IntGauge::with_opts(
        Opts::new("mr_job_elapsed_milliseconds", "Time since the job started.").const_label("job", view.job.clone()),
    )?;
    elapsed.set(view.elapsed_ms as i64);
    registry.register(Box::new(elapsed))?;
    let state = gauge_vec("mr_job_state", "1 for the job's current state.", &["state"])?;
    for s in ["running", "committing", "succeeded", "failed"] {
        state.with_label_values(&[s]).set(i64::from(view.state == s));
    }
    prometheus::TextEncoder::new().encode_to_string(&registry.gather())
}

fn secs(ms: Millis) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn outcome_color(outcome: &str) -> &'static str {
    match outcome {
        "committed" => "#2e7d32",
        "running" => "#1565c0",
        "failed" => "#c62828",
        "lost" => "#ef6c00",
        _ => "#9e9e9e",
    }
}

/// Time-axis ticks: a round step that gives at most about six ticks over `span` ms.
fn ticks(span: Millis) -> Vec<Millis> {
    let step = [100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000]
        .into_iter()
        .find(|&step| span / step <= 6)
        .unwrap_or_else(|| (span / 6).div_ceil(600_000) * 600_000);
    (0..=span / step).map(|i| i * step).collect()
}

/// A timeline of every attempt: one row per task (labelled when rows are tall enough, else
/// by phase), one bar per attempt coloured by outcome, and a time axis with ticks.
fn chart(view: &JobView) -> Markup {
    const WIDTH: f64 = 900.0;
    const LEFT: f64 = 90.0;
    let rows = view.tasks.len().max(1);
    let row_h = (360.0 / rows as f64).clamp(2.0, 14.0);
    let plot_h = row_h * rows as f64;
    let height = plot_h + 30.0;
    let span = view.elapsed_ms.max(1);
    let x = |ms: Millis| LEFT + (WIDTH - LEFT - 20.0) * ms as f64 / span as f64;
    let mut svg = String::new();
    for (row, t) in view.tasks.iter().enumerate() {
        let y = row as f64 * row_h;
        if row_h >= 10.0 {
            let _ = write!(
                svg,
                r#"<text class="row-label" x="0" y="{:.1}" font-size="10">{} {}</text>"#,
                y + row_h - 3.0,
                phase_name(t.phase),
                t.index
            );
        }
        for a in &t.attempts {
            let x0 = x(a.start_ms);
            let w = (x(a.start_ms + a.duration_ms) - x0).max(1.0);
            let _ = write!(
                svg,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{} {}.{}: {} ({})</title></rect>"#,
                (row_h - 1.0).max(1.0),
                outcome_color(&a.outcome),
                phase_name(t.phase),
                t.index,
                a.attempt,
                a.outcome,
                secs(a.duration_ms)
            );
        }
    }
    if row_h < 10.0 {
        for (phase, first) in [Phase::Map, Phase::Reduce]
            .into_iter()
            .filter_map(|p| Some((p, view.tasks.iter().position(|t| t.phase == p)?)))
        {
            let y = first as f64 * row_h + 10.0;
            let _ =
                write!(svg, r#"<text class="row-label" x="0" y="{y:.1}" font-size="11">{}</text>"#, phase_name(phase));
        }
    }
    let _ = write!(svg, r##"<line x1="{LEFT}" y1="{plot_h:.1}" x2="{:.1}" y2="{plot_h:.1}" stroke="#888"/>"##, x(span));
    for tick in ticks(span) {
        let tx = x(tick);
        let _ = write!(
            svg,
            r##"<line class="tick" x1="{tx:.1}" y1="{plot_h:.1}" x2="{tx:.1}" y2="{:.1}" stroke="#888"/><text x="{tx:.1}" y="{:.1}" font-size="10" text-anchor="middle">{}</text>"##,
            plot_h + 4.0,
            plot_h + 16.0,
            secs(tick)
        );
    }
    html! {
        svg #chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height) viewBox=(format!("0 0 {WIDTH} {height}")) {
            (PreEscaped(svg))
            text x=(WIDTH / 2.0) y=(height - 1.0) font-size="10" text-anchor="middle" { "time since the job started" }
        }
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}\
th{background:#f4f4f4}.num{text-align:right}.state{font-weight:bold}.dead{color:#c62828}\
.outcome-committed{color:#2e7d32}.outcome-failed{color:#c62828}.outcome-lost{color:#ef6c00}\
.outcome-running{color:#1565c0}.outcome-discarded{color:#777}h2{margin-top:1.2em}\
.wide{overflow-x:auto;max-width:100%}svg{max-width:100%;height:auto}code{word-break:break-all}\
.error{white-space:pre-wrap;word-break:break-word}\
@media (max-width:600px){body{margin:.5em;font-size:13px}td,th{padding:2px 4px}}";

/// Reloads the page's content every second while the job runs, without any external asset. Its
/// links are relative: a cluster serves each job's page under `/jobs/ID/`.
const SCRIPT: &str = "(function(){function poll(){var s=document.getElementById('job-state');\
if(!s||!/running|committing/.test(s.textContent))return;fetch(location.pathname).then(function(r){return r.text()})\
.then(function(t){var d=new DOMParser().parseFromString(t,'text/html');\
document.getElementById('app').replaceWith(d.getElementById('app'));}).catch(function(){})\
.finally(function(){setTimeout(poll,1000)});}setTimeout(poll,1000);})();";

/// A time in ms since the Unix epoch as UTC, e.g. `2026-12-01T17:18:07Z`.
fn utc(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A command-line argument as a POSIX shell would need it: single-quoted unless it is made of
/// characters that need no quoting.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_=./:,@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// A setting's value as text: strings as they are, the rest as JSON.
fn setting_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// How the job was asked for: its command line, input, output, start and end, and settings.
fn job_section(view: &JobView, about: &About) -> Markup {
    let ended = matches!(view.state.as_str(), "succeeded" | "failed");
    let inputs: Vec<String> =
        about.settings["inputs"].as_array().map(|a| a.iter().map(setting_text).collect()).unwrap_or_default();
    let settings: Vec<(&String, &serde_json::Value)> = about
        .settings
        .as_object()
        .map(|o| o.iter().filter(|(k, _)| !matches!(k.as_str(), "inputs" | "output")).collect())
        .unwrap_or_default();
    html! {
        h2 { "Job" }
        div .wide { table #job {
            @if !about.command.is_empty() { tr { th { "command" } td { code #command { (about.command.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")) } } } }
            @if !inputs.is_empty() { tr { th { "input" } td { code #input { (inputs.join(" ")) } } } }
            @if let Some(output) = about.settings["output"].as_str() { tr { th { "output" } td { code #output { (output) } } } }
            tr { th { "started" } td #started { (utc(view.started_unix_ms)) } }
            tr { th { "ended" } td #ended { @if ended { (utc(view.started_unix_ms + view.elapsed_ms)) } @else { "running" } } }
        } }
        @if !settings.is_empty() {
            details #settings {
                summary { "Settings (" (settings.len()) ")" }
                div .wide { table {
                    @for (key, value) in settings { tr { th { (key) } td { code { (setting_text(value)) } } } }
                } }
            }
        }
        @if let Some(dir) = &about.logs {
            p #logs { "Worker logs: " @for name in log_names(dir) { a href=(format!("/logs/{name}")) { (name) } " " } }
        }
    }
}

/// The HTML status page: the live one, or (with `mr status --html OUT`) a finished job's,
/// from its history.
pub fn render_page(view: &JobView, about: &About) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "mr: " (view.job) " " (view.state) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                div #app {
                    h1 { "mr job " span #job-name { (view.job) } }
                    p {
                        "State: " span #job-state .state { (view.state) }
                        " · elapsed " span #elapsed { (secs(view.elapsed_ms)) }
                        " · " a href="api/v1/job" { "JSON" } " · " a href="metrics" { "metrics" }
                    }
                    @if let Some(error) = &view.error { p #job-error .dead .error { "Error: " (error) } }
                    (job_section(view, about))
                    (phases_table(view))
                    h2 { "Task durations" }
                    p #naming { "Each execution of a task is an attempt, named TASK.ATTEMPT: " code { "map 3.0" } " is attempt 0 of map task 3, " code { "map 3.1" } " the next one (a retry, or a backup of a slow attempt)." }
                    div .wide { (chart(view)) }
                    p #legend {
                        @for outcome in ["committed", "running", "failed", "lost", "discarded"] {
                            span style=(format!("color:{}", outcome_color(outcome))) { "■ " } (outcome) " "
                        }
                    }
                    (workers_table(view))
                    (counters_section(view))
                    (tasks_section(view))
                }
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

/// The page's table of phases.
fn phases_table(view: &JobView) -> Markup {
    html! {
        h2 { "Phases" }
        div .wide { table #phases {
            tr { th { "phase" } th { "tasks" } th { "idle" } th { "running" } th { "done" } th { "attempts" } th { "failed" } th { "lost" } th { "backup" } }
            @for p in &view.phases {
                tr .phase data-phase=(phase_name(p.phase)) {
                    td { (phase_name(p.phase)) } td .num { (p.tasks) } td .num { (p.idle) } td .num { (p.running) }
                    td .num { (p.done) } td .num { (p.attempts) } td .num { (p.failed_attempts) }
                    td .num { (p.lost_attempts) } td .num { (p.speculative_attempts) }
                }
            }
        } }
    }
}

/// The page's table of workers.
fn workers_table(view: &JobView) -> Markup {
    html! {
        h2 { "Workers" }
        div .wide { table #workers {
            tr { th { "id" } th { "name" } th { "liveness" } th { "last heard" } th { "running" } th { "committed" } }
            @for w in &view.workers {
                tr .worker {
                    td .num { (w.id) } td { (w.name) }
                    td class=(if w.alive { "alive" } else { "dead" }) { (if w.alive { "alive" } else { "dead" }) }
                    td .num { (secs(w.last_seen_ago_ms)) " ago" } td { (w.running.join(", ")) } td .num { (w.committed) }
                }
            }
        } }
    }
}

/// The page's counters: the engine's, then the job's own.
fn counters_section(view: &JobView) -> Markup {
    let counters = [("map", &view.counters.map), ("reduce", &view.counters.reduce)];
    html! {
        h2 { "Counters" }
        div .wide { table #counters {
            tr { th { "counter" } th { "map" } th { "reduce" } }
            @for (name, m, r) in counter_rows(&view.counters) {
                tr { td { (name) } td .num { (m) } td .num { (r) } }
            }
        } }
        @for (phase, c) in counters {
            @for (group, names) in &c.user {
                @for (name, amount) in names {
                    p .user-counter { (phase) " counter " (group) "/" (name) ": " (amount) }
                }
            }
        }
    }
}

/// The page's table of tasks, each with its attempts.
fn tasks_section(view: &JobView) -> Markup {
    html! {
        h2 { "Tasks" }
        @if view.tasks.len() > PAGE_TASKS {
            p { "The first " (PAGE_TASKS) " of " (view.tasks.len()) " tasks; all of them are in the " a href="api/v1/job" { "JSON" } "." }
        }
        div .wide { table #tasks {
            tr { th { "task" } th { "state" } th { "input" } th { "records" } th { "status" } th { "attempts (worker, start, duration, outcome)" } }
            @for t in view.tasks.iter().take(PAGE_TASKS) {
                tr .task data-phase=(phase_name(t.phase)) data-state=(format!("{:?}", t.state).to_lowercase()) {
                    td { (phase_name(t.phase)) " " (t.index) }
                    td { (format!("{:?}", t.state).to_lowercase()) }
                    td { (t.input) }
                    td .num { (t.records) }
                    td .status { (t.status) }
                    td {
                        @for a in &t.attempts {
                            div .attempt {
                                "#" (a.attempt) " on worker " (a.worker) ", at " (secs(a.start_ms)) ", " (secs(a.duration_ms)) ", "
                                span class=(format!("outcome-{}", a.outcome)) { (a.outcome) }
                                @if a.speculative { " (backup)" }
                                @if let Some(e) = &a.error { ": " span .error { (e) } }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn counter_rows(c: &CountersView) -> Vec<(&'static str, u64, u64)> {
    let (m, r) = (&c.map, &c.reduce);
    vec![
        ("input records", m.input_records, r.input_records),
        ("input bytes", m.input_bytes, r.input_bytes),
        ("output records", m.output_records, r.output_records),
        ("output bytes", m.output_bytes, r.output_bytes),
        ("reduce input groups", m.groups, r.groups),
        ("combine input records", m.combine_input_records, r.combine_input_records),
        ("combine output records", m.combine_output_records, r.combine_output_records),
        ("spilled records", m.spilled_records, r.spilled_records),
        ("skipped records", m.skipped_records, r.skipped_records),
    ]
}

/// `mr status URL`: the job's state in a terminal, from its JSON API.
pub fn print_status(url: &str) -> Result<String> {
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/api/v1/job").unwrap_or(base);
    let api = format!("{base}/api/v1/job");
    let body = fetch(&api)?;
    let view: JobView = serde_json::from_str(&body).map_err(|e| Error::StatusUnreachable {
        url: api.clone(),
        reason: format!("it did not answer with a job status ({e})"),
    })?;
    Ok(render_text(&view))
}

/// The job status as terminal text.
pub fn render_text(view: &JobView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job {}: {} after {}", view.job, view.state, secs(view.elapsed_ms));
    if let Some(e) = &view.error {
        let _ = writeln!(out, "  error: {e}");
    }
    for p in &view.phases {
        let _ = writeln!(
            out,
            "  {:<6} {}/{} tasks done, {} running, {} idle; {} attempts ({} failed, {} lost, {} backup)",
            phase_name(p.phase),
            p.done,
            p.tasks,
            p.running,
            p.idle,
            p.attempts,
            p.failed_attempts,
            p.lost_attempts,
            p.speculative_attempts
        );
    }
    let alive = view.workers.iter().filter(|w| w.alive).count();
    let _ = writeln!(out, "  workers: {alive} alive, {} dead", view.workers.len() - alive);
    for w in &view.workers {
        let running = if w.running.is_empty() { "idle".to_string() } else { w.running.join(", ") };
        let liveness = if w.alive { "alive" } else { "dead" };
        let _ = writeln!(
            out,
            "    {:>3} {:<24} {liveness:<5} heard {} ago, {} committed, {running}",
            w.id,
            w.name,
            secs(w.last_seen_ago_ms),
            w.committed
        );
    }
    for (name, m, r) in counter_rows(&view.counters) {
        if m > 0 || r > 0 {
            let _ = writeln!(out, "  {name:<24} map {m:>12}  reduce {r:>12}");
        }
    }
    for t in view.tasks.iter().filter(|t| t.state == TaskStatus::Running) {
        for a in t.attempts.iter().filter(|a| a.outcome == "running") {
            let _ = writeln!(
                out,
                "  running: {} {} attempt {} on worker {} for {}, {} records{}",
                phase_name(t.phase),
                t.index,
                a.attempt,
                a.worker,
                secs(a.duration_ms),
                t.records,
                if t.status.is_empty() { String::new() } else { format!(": {}", t.status) }
            );
        }
    }
    out
}

/// `mr status TARGET`: a running job from its status server (TARGET is the `status:` URL), or
/// a finished job from its history (TARGET is its output directory or its `_job.json`). As
/// text, or with `html` as the status page (for a finished job, the page the server showed
/// last, offline).
pub fn show(target: &str, html: bool) -> Result<String> {
    if target.starts_with("http://") || target.starts_with("https://") {
        if html {
            let base = target.trim_end_matches('/');
            let base = base.strip_suffix("/api/v1/job").unwrap_or(base);
            return fetch(&format!("{base}/"));
        }
        return print_status(target);
    }
    let (view, about) = history(std::path::Path::new(target))?;
    Ok(if html { render_page(&view, &about).into_string() } else { render_text(&view) })
}

/// A finished job's last status and how it was asked for, from its `_job.json` (in `path`, or
/// `path` itself).
pub fn history(path: &std::path::Path) -> Result<(JobView, About)> {
    let file = if path.is_dir() { path.join(crate::layout::HISTORY) } else { path.to_path_buf() };
    let bad = |reason: String| Error::History { path: file.clone(), reason };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        let hint = if path.is_dir() { ": the directory holds no committed job's history" } else { "" };
        bad(format!("cannot read it ({e}){hint}; give a job's output directory, or the status server's URL"))
    })?;
    let history: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e}): is it a job's _job.json?")))?;
    let status = history.get("status").filter(|s| !s.is_null()).ok_or_else(|| {
        bad("it holds no status: the job ran with --local, which has no status server, or with an older mr".into())
    })?;
    let view: JobView =
        serde_json::from_value(status.clone()).map_err(|e| bad(format!("its status is not a job status: {e}")))?;
    let command = history["command"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).map(String::from));
    let about = About {
        command: command.map(Vec::from_iter).unwrap_or_default(),
        settings: history["config"].clone(),
        logs: None,
    };
    Ok((view, about))
}

/// GETs `url` from a status server.
fn fetch(url: &str) -> Result<String> {
    ureq::get(url).call().and_then(|mut r| r.body_mut().read_to_string()).map_err(|e| {
        let reason = match &e {
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => e.to_string(),
            // Something listens there, but it does not speak HTTP/1.1: the gRPC port speaks HTTP/2.
            _ => format!("{e}, so it is not a status server (the coordinator's gRPC address?)"),
        };
        Error::StatusUnreachable { url: url.to_string(), reason }
    })
}
