//! The cluster's web pages (`mr cluster --http`): `/` lists the running, queued and finished
//! jobs; `/jobs/ID/` is the job's status page (the one `mr run` serves, with its JSON at
//! `/jobs/ID/api/v1/job` and metrics at `/jobs/ID/metrics`), live while the job runs and from
//! the store once it ended; `/workers` lists the slots; `/api/v1/jobs` and `/api/v1/jobs/ID`
//! serve the jobs as JSON (schema: `docs/api-v1-jobs.schema.json`); `/metrics` is the
//! cluster's Prometheus text: slots busy and idle, jobs by state, and each job's tasks.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use maud::{DOCTYPE, html};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cluster::queue::{JobId, JobState};
use crate::cluster::service::{Cluster, unix_ms};
use crate::cluster::store::{JobRecord, Progress};
use crate::error::{Error, Result};
use crate::report::status::JobView;

/// Version of the `/api/v1/jobs` documents.
pub const API_VERSION: u32 = 1;

/// Starts the web server on `addr`; returns it and its URL.
pub async fn start(
    cluster: &Cluster,
    addr: &str,
    shutdown: CancellationToken,
) -> Result<(tokio::task::JoinHandle<()>, String)> {
    let listen_error = |source| Error::Listen { addr: addr.to_string(), cause: source };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    let url = format!("http://{}/", crate::launch::run::reachable(local));
    let app = router(cluster.clone());
    let server = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        if let Err(e) = served {
            tracing::warn!("the cluster's web server failed: {e}");
        }
    });
    Ok((server, url))
}

/// The routes.
pub fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/workers", get(workers))
        .route("/metrics", get(metrics))
        .route("/api/v1/jobs", get(api_jobs))
        .route("/api/v1/jobs/{id}", get(api_job))
        .route("/jobs/{id}/", get(job_page))
        .route("/jobs/{id}/api/v1/job", get(job_api))
        .route("/jobs/{id}/metrics", get(job_metrics))
        .with_state(cluster)
}

/// A job as `/api/v1/jobs` serves it.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummaryView {
    /// Always [`API_VERSION`].
    pub api_version: u32,
    /// Its id.
    pub id: JobId,
    /// The job's name.
    pub job: String,
    /// queued, running, succeeded, failed or killed.
    pub state: JobState,
    /// Its tasks' progress.
    pub progress: Progress,
    /// Times in ms since the Unix epoch.
    pub submitted_ms: u64,
    /// When it started, if it has.
    pub started_ms: Option<u64>,
    /// When it ended, if it has.
    pub ended_ms: Option<u64>,
    /// Its inputs and output.
    pub inputs: Vec<String>,
    /// Its output directory.
    pub output: String,
    /// Why it failed or was killed.
    pub error: Option<String>,
    /// Its summary once it ended (`mr run --json`'s).
    pub summary: Option<serde_json::Value>,
}

fn view_of(record: &JobRecord) -> JobSummaryView {
    JobSummaryView {
        api_version: API_VERSION,
        id: record.id,
        job: record.submission.job.clone(),
        state: record.state,
        progress: record.progress,
        submitted_ms: record.submitted_ms,
        started_ms: record.started_ms,
        ended_ms: record.ended_ms,
        inputs: record.submission.inputs.iter().map(|p| p.display().to_string()).collect(),
        output: record.submission.output.display().to_string(),
        error: record.error.clone(),
        summary: record.summary_json.as_deref().and_then(|j| serde_json::from_str(j).ok()),
    }
}

fn records(cluster: &Cluster) -> Vec<JobRecord> {
    cluster.state().records.values().cloned().collect()
}

async fn api_jobs(State(cluster): State<Cluster>) -> Json<Vec<JobSummaryView>> {
    Json(records(&cluster).iter().map(view_of).collect())
}

async fn api_job(State(cluster): State<Cluster>, Path(id): Path<JobId>) -> Response {
    match cluster.state().records.get(&id) {
        Some(record) => Json(view_of(record)).into_response(),
        None => not_found(id),
    }
}

fn not_found(id: JobId) -> Response {
    (StatusCode::NOT_FOUND, format!("there is no job {id} on this cluster")).into_response()
}

/// The job's status page data: live from its coordinator while it runs, from the store once
/// it ended; `None` for an unknown job or one that has not started.
fn job_view(cluster: &Cluster, id: JobId) -> Option<JobView> {
    let (coordinator, stored) = {
        let s = cluster.state();
        (s.running.get(&id).map(|j| j.coordinator.clone()), s.records.get(&id).and_then(|r| r.view.clone()))
    };
    match coordinator {
        Some(c) => Some(crate::report::status::snapshot(&c)),
        None => serde_json::from_value(stored?).ok(),
    }
}

async fn job_page(State(cluster): State<Cluster>, Path(id): Path<JobId>) -> Response {
    match job_view(&cluster, id) {
        Some(view) => {
            let about = about(&cluster, id);
            Html(crate::report::status::render_page(&view, &about).into_string()).into_response()
        }
        None => not_found(id),
    }
}

/// How the job was asked for, as its page shows it: the submission's settings.
fn about(cluster: &Cluster, id: JobId) -> crate::report::status::About {
    let submission = cluster.state().records.get(&id).map(|r| r.submission.clone());
    let Some(submission) = submission else { return crate::report::status::About::default() };
    let mut command = vec!["mr".to_string(), "submit".into(), submission.job.clone()];
    command.extend(submission.job_args.iter().cloned());
    command.extend(submission.inputs.iter().flat_map(|i| ["--input".to_string(), i.display().to_string()]));
    command.extend(["--output".to_string(), submission.output.display().to_string()]);
    let settings = serde_json::to_value(&submission).unwrap_or_default();
    crate::report::status::About { command, settings, logs: None }
}

async fn job_api(State(cluster): State<Cluster>, Path(id): Path<JobId>) -> Response {
    match job_view(&cluster, id) {
        Some(view) => Json(view).into_response(),
        None => not_found(id),
    }
}

async fn job_metrics(State(cluster): State<Cluster>, Path(id): Path<JobId>) -> Response {
    let Some(view) = job_view(&cluster, id) else { return not_found(id) };
    prometheus_text(crate::report::status::render_metrics(&view))
}

fn prometheus_text(text: std::result::Result<String, prometheus::Error>) -> Response {
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left}\
th{background:#f4f4f4}";

async fn index(State(cluster): State<Cluster>) -> Html<String> {
    let jobs = records(&cluster);
    let groups = [
        ("Running", jobs.iter().filter(|r| r.state == JobState::Running).collect::<Vec<_>>()),
        ("Queued", jobs.iter().filter(|r| r.state == JobState::Queued).collect()),
        ("Finished", jobs.iter().rev().filter(|r| r.state.is_final()).collect()),
    ];
    page(
        "mr cluster",
        html! {
            h1 { "mr cluster" }
            p { a href="/workers" { "workers" } " · " a href="/api/v1/jobs" { "JSON" } " · " a href="/metrics" { "metrics" } }
            @for (title, group) in &groups {
                h2 { (title) " (" (group.len()) ")" }
                table id=(title.to_lowercase()) {
                    tr { th { "id" } th { "job" } th { "state" } th { "progress" } th { "duration" } th { "output" } th { "error" } }
                    @for r in group {
                        tr {
                            td { a href={ "/jobs/" (r.id) "/" } { (r.id) } }
                            td { (r.submission.job) }
                            td .state { (r.state.name()) }
                            td { "map " (r.progress.map_done) "/" (r.progress.map_total) " reduce " (r.progress.reduce_done) "/" (r.progress.reduce_total) }
                            td { (duration(r)) }
                            td { (r.submission.output.display()) }
                            td { (r.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        },
    )
}

fn duration(r: &JobRecord) -> String {
    let Some(started) = r.started_ms else { return "-".into() };
    format!("{:.1} s", r.ended_ms.unwrap_or_else(unix_ms).saturating_sub(started) as f64 / 1000.0)
}

async fn workers(State(cluster): State<Cluster>) -> Html<String> {
    let slots: Vec<_> = cluster.state().slots.iter().map(|(&id, s)| (id, s.clone())).collect();
    page(
        "mr cluster: workers",
        html! {
            h1 { "Workers" }
            p { a href="/" { "jobs" } }
            table #slots {
                tr { th { "slot" } th { "worker" } th { "host" } th { "running" } th { "jobs joined" } th { "last call" } }
                @for (id, s) in &slots {
                    tr {
                        td { (id) }
                        td { (s.name) }
                        td { (s.host) }
                        td { (s.running.map_or_else(|| "idle".to_string(), |j| format!("job {j}"))) }
                        td { (s.joined.len()) }
                        td { (format!("{:.1} s ago", s.last_seen.elapsed().as_secs_f64())) }
                    }
                }
            }
        },
    )
}

/// A page of the cluster's site: `body` under the page's title and style.
fn page(title: &str, body: maud::Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head { meta charset="utf-8"; title { (title) } style { (maud::PreEscaped(STYLE)) } }
            body { (body) }
        }
    };
    Html(page.into_string())
}

async fn metrics(State(cluster): State<Cluster>) -> Response {
    prometheus_text(render_metrics(&cluster))
}

/// The cluster's metrics: slots busy and idle, jobs by state, and each running or recorded
/// job's tasks done and in all, by phase.
fn render_metrics(cluster: &Cluster) -> std::result::Result<String, prometheus::Error> {
    use prometheus::{IntGaugeVec, Opts, Registry};
    let registry = Registry::new();
    let gauge_vec = |name: &str, help: &str, labels: &[&str]| -> std::result::Result<IntGaugeVec, prometheus::Error> {
        let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(g.clone()))?;
        Ok(g)
    };
    let slots = gauge_vec("mr_cluster_slots", "Worker slots, busy or idle.", &["state"])?;
    let jobs = gauge_vec("mr_cluster_jobs", "Jobs by state.", &["state"])?;
    let tasks = gauge_vec("mr_cluster_job_tasks", "Each job's tasks in all, by phase.", &["id", "job", "phase"])?;
    let done =
        gauge_vec("mr_cluster_job_tasks_done", "Each job's committed tasks, by phase.", &["id", "job", "phase"])?;
    let s = cluster.state();
    let busy = s.slots.values().filter(|slot| slot.running.is_some()).count() as i64;
    slots.with_label_values(&["busy"]).set(busy);
    slots.with_label_values(&["idle"]).set(s.slots.len() as i64 - busy);
    for state in [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Killed] {
        jobs.with_label_values(&[state.name()]).set(s.records.values().filter(|r| r.state == state).count() as i64);
    }
    for r in s.records.values().filter(|r| r.state == JobState::Running) {
        let (id, job) = (r.id.to_string(), r.submission.job.as_str());
        let p = r.progress;
        for (phase, n, d) in [("map", p.map_total, p.map_done), ("reduce", p.reduce_total, p.reduce_done)] {
            tasks.with_label_values(&[&id, job, phase]).set(i64::from(n));
            done.with_label_values(&[&id, job, phase]).set(i64::from(d));
        }
    }
    drop(s);
    let mut text = Vec::new();
    prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut text)?;
    String::from_utf8(text).map_err(|e| prometheus::Error::Msg(e.to_string()))
}
