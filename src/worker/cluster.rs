//! A slot of a long-lived worker of `mr cluster` (`mr worker --cluster URL`): one process that
//! runs one attempt at a time, of any job, for as long as it lives. It registers its slot, asks
//! the cluster for work, joins each job it is offered once (a directory of its own for the
//! job's files, a Shuffle service of its own that serves the job's map outputs only to callers
//! holding the job's secret, a worker id in the job's scheduler, the job built from the
//! registry), and runs the job's attempts exactly as a worker of one job does
//! (`attempt.rs`), their calls naming the job. Beside the loop, its heartbeat tells the cluster
//! the running attempt's progress and learns which attempts to cancel and which jobs have
//! ended: their directory and Shuffle service go. When the cluster restarts (a call answers
//! NOT_FOUND), the slot stops the attempt it is running (the new service did not hand it out),
//! registers again and joins its jobs again with the same Shuffle services, whose map outputs
//! the restarted jobs' journals point at; a job the new service does not run is dropped. It never gives up on a
//! cluster that does not answer: it retries until it is stopped.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::job::Registry;
use crate::net::rpc::pb::cluster_client::ClusterClient;
use crate::net::rpc::pb::coordinator_client::CoordinatorClient;
use crate::net::rpc::{self, AuthChannel, MAX_MESSAGE_BYTES, Token, pb};
use crate::net::shuffle::Outputs;
use crate::worker::heartbeat::{Current, Slot};
use crate::worker::shutdown::OwnDir;
use crate::worker::{Context, WorkerOptions};

/// A job the slot joined.
struct Joined {
    context: Context,
    /// The job's calls, naming it.
    client: CoordinatorClient<AuthChannel>,
    /// Stops its Shuffle service.
    stop: CancellationToken,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.stop.cancel();
        // Its map outputs, fetched partitions and attempt files.
        let _ = std::fs::remove_dir_all(&self.context.work_dir);
    }
}

/// What the loop and the heartbeat share.
struct Shared {
    slot_id: AtomicU64,
    /// The job of the running attempt, and where that job's context keeps the attempt.
    current: Mutex<Option<(u64, Slot<Current>)>>,
    /// Jobs the cluster said have ended, for the loop to drop.
    ended: Mutex<HashSet<u64>>,
}

/// Runs one slot until SIGINT or SIGTERM (`Error::Interrupted`); its directory is removed.
pub async fn work_slot(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    crate::worker::until_interrupted(serve_slot(options, registry)).await
}

async fn serve_slot(options: WorkerOptions, registry: Arc<Registry>) -> Result<()> {
    let url = options.coordinator.clone();
    let channel = crate::worker::connect(&url, options.connect_timeout, options.tls.as_ref()).await?;
    let auth = rpc::authenticated(channel.clone(), options.token.clone());
    let mut cluster = ClusterClient::new(auth.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let host = crate::worker::advertised_host(&options, &url).await?;
    let base = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let own = OwnDir::create(&base)?;
    crate::worker::remove_dead_workers_directories(&base, own.path());
    let registration = crate::worker::registration(&host, String::new());
    let reply = match cluster.register_slot(registration.clone()).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::worker::registration_error(&url, options.tls.as_ref(), status).await),
    };
    tracing::info!(slot = reply.slot_id, "slot registered");
    let shared = Arc::new(Shared {
        slot_id: AtomicU64::new(reply.slot_id),
        current: Mutex::new(None),
        ended: Mutex::new(HashSet::new()),
    });
    let interval = Duration::from_millis(reply.heartbeat_interval_ms.max(10));
    let heartbeat = tokio::spawn(heartbeat(cluster.clone(), Arc::clone(&shared), interval));
    let mut slot = SlotLoop {
        cluster,
        channel,
        options,
        registry,
        shared,
        registration,
        dir: own.path().to_path_buf(),
        jobs: HashMap::new(),
    };
    let result = slot.run().await;
    heartbeat.abort();
    drop(slot);
    drop(own);
    result
}

/// The slot's loop and what it holds.
struct SlotLoop {
    cluster: ClusterClient<AuthChannel>,
    channel: Channel,
    options: WorkerOptions,
    registry: Arc<Registry>,
    shared: Arc<Shared>,
    registration: pb::RegisterWorkerRequest,
    /// Its own directory: a directory per joined job in it.
    dir: PathBuf,
    jobs: HashMap<u64, Joined>,
}

impl SlotLoop {
    async fn run(&mut self) -> Result<()> {
        loop {
            let ended: Vec<u64> = self.shared.ended.lock().expect("lock poisoned").drain().collect();
            for id in ended {
                if self.jobs.remove(&id).is_some() {
                    tracing::info!(job = id, "the job ended: its files are removed");
                }
            }
            let slot_id = self.shared.slot_id.load(Ordering::Relaxed);
            let reply = match self.cluster.next_task(pb::NextTaskRequest { slot_id }).await {
                Ok(reply) => reply.into_inner().reply,
                Err(status) if status.code() == tonic::Code::NotFound => {
                    self.register_again().await;
                    continue;
                }
                Err(status) => {
                    tracing::debug!(%status, "the cluster does not answer; trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            match reply {
                None | Some(pb::next_task_reply::Reply::WaitMs(_)) => {}
                Some(pb::next_task_reply::Reply::Join(offer)) => {
                    if let Err(e) = self.join(offer.job_id, &offer.secret).await {
                        tracing::warn!(job = offer.job_id, error = %e, "cannot join the job");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                Some(pb::next_task_reply::Reply::Task(task)) => self.run_task(task).await,
            }
        }
    }

    /// Runs an attempt of a joined job, as a worker of that job would.
    async fn run_task(&mut self, task: pb::ClusterTask) {
        let (id, Some(task)) = (task.job_id, task.task) else { return };
        let Some(joined) = self.jobs.get_mut(&id) else { return };
        *self.shared.current.lock().expect("lock poisoned") = Some((id, Arc::clone(&joined.context.current)));
        let result = crate::worker::attempt::run_attempt(&mut joined.client, &joined.context, task).await;
        *self.shared.current.lock().expect("lock poisoned") = None;
        if let Err(e) = result {
            // The cluster is unreachable or restarted, or the job ended: the next call tells.
            tracing::warn!(job = id, error = %e, "attempt dropped");
        }
    }

    /// Joins a job: its directory, its Shuffle service, its registration, the job built.
    async fn join(&mut self, id: u64, secret: &str) -> Result<()> {
        let token = Token::new(secret)?;
        let tls = self.options.tls.clone();
        let (listener, shuffle_url) =
            crate::worker::shuffle_listener(&self.registration.host, &token, tls.as_ref()).await?;
        let registration = pb::RegisterWorkerRequest { shuffle_url, ..self.registration.clone() };
        let slot_id = self.shared.slot_id.load(Ordering::Relaxed);
        let request = pb::JoinJobRequest { slot_id, job_id: id, worker: Some(registration.clone()) };
        let reply = self.cluster.join_job(request).await.map_err(crate::worker::rpc("JoinJob"))?.into_inner();
        let spec = reply.job.ok_or_else(|| Error::Job("the cluster sent no job".into()))?;
        let work_dir = self.dir.join(format!("job-{id}"));
        std::fs::create_dir_all(&work_dir).map_err(Error::io("cannot create the job's directory", &work_dir))?;
        let outputs = Outputs::default();
        let stop = CancellationToken::new();
        let options = WorkerOptions { token, ..self.options.clone() };
        crate::worker::serve_shuffle(listener, &outputs, spec.reduce_tasks, &options, stop.clone())?;
        let auth = rpc::authenticated(self.channel.clone(), self.options.token.clone()).for_job(id);
        let job = crate::worker::build_job_with(auth.clone(), Arc::clone(&self.registry), &spec).await;
        let job = match job {
            Ok(job) => job,
            Err(e) => {
                stop.cancel();
                let _ = std::fs::remove_dir_all(&work_dir);
                return Err(e);
            }
        };
        let context = Context::new(reply.worker_id, registration, spec, job, outputs, work_dir, &options);
        let client = CoordinatorClient::new(auth).max_decoding_message_size(MAX_MESSAGE_BYTES);
        tracing::info!(job = id, worker = reply.worker_id, "joined the job");
        self.jobs.insert(id, Joined { context, client, stop });
        Ok(())
    }

    /// Registers the slot again with a restarted cluster, and joins its jobs again with the
    /// same Shuffle services; a job the cluster no longer runs is dropped.
    async fn register_again(&mut self) {
        let reply = match self.cluster.register_slot(self.registration.clone()).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => {
                tracing::debug!(%status, "cannot register again yet");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
        };
        self.shared.slot_id.store(reply.slot_id, Ordering::Relaxed);
        tracing::warn!(slot = reply.slot_id, "the cluster restarted: registered again");
        let ids: Vec<u64> = self.jobs.keys().copied().collect();
        for id in ids {
            let Some(joined) = self.jobs.get(&id) else { continue };
            let worker = Some(joined.context.registration.clone());
            let request = pb::JoinJobRequest { slot_id: reply.slot_id, job_id: id, worker };
            match self.cluster.join_job(request).await {
                Ok(r) => joined.context.worker_id.store(r.into_inner().worker_id, Ordering::Relaxed),
                Err(_) => {
                    self.jobs.remove(&id);
                }
            }
        }
    }
}

/// Beats until aborted: the running attempt's progress; cancels what the cluster lists, and
/// hands the ended jobs to the loop.
async fn heartbeat(mut cluster: ClusterClient<AuthChannel>, shared: Arc<Shared>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let running = {
            let current = shared.current.lock().expect("lock poisoned");
            current.as_ref().and_then(|(job, slot)| Some((*job, slot.lock().expect("lock poisoned").clone()?)))
        };
        let beat = running.as_ref().map(|(_, c)| pb::HeartbeatRequest {
            worker_id: 0,
            running: Some(c.attempt.into()),
            records: c.progress.records.load(Ordering::Relaxed),
            bytes: c.progress.reported_bytes(),
            status: String::new(),
        });
        let request = pb::SlotHeartbeatRequest {
            slot_id: shared.slot_id.load(Ordering::Relaxed),
            job_id: running.as_ref().map_or(0, |(job, _)| *job),
            beat,
        };
        let call = tokio::time::timeout(interval.max(Duration::from_secs(1)), cluster.slot_heartbeat(request));
        let reply = match call.await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                // The cluster restarted: the running attempt was handed out by the service
                // that is gone, and no job of the new one waits for it. It is stopped, so that
                // the loop registers the slot again (and drops the jobs that no longer run).
                if let Some((job, c)) = &running {
                    stop_attempt(&shared, *job, c, "its cluster restarted");
                }
                continue;
            }
            Ok(Err(_)) | Err(_) => continue,
        };
        if let Some((job, c)) = &running {
            let cancelled = reply.cancel.iter().any(|t| crate::types::AttemptId::from(*t) == c.attempt);
            if cancelled || reply.ended_jobs.contains(job) {
                stop_attempt(&shared, *job, c, "cancelled by the cluster");
            }
        }
        shared.ended.lock().expect("lock poisoned").extend(reply.ended_jobs);
    }
}

/// Stops the running attempt `c` of `job`, once; the slot process exits if it does not stop.
fn stop_attempt(shared: &Arc<Shared>, job: u64, c: &Current, why: &str) {
    if c.cancel.is_cancelled() {
        return;
    }
    tracing::info!(job, attempt = %c.attempt, "attempt stopped: {why}");
    c.stop();
    tokio::spawn(exit_if_stuck(Arc::clone(shared), job, c.attempt));
}

/// How long a cancelled attempt may take to stop (it sees the cancellation at its next
/// checkpoint; a streaming command that reads nothing may never reach one).
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Exit status of a slot process that could not stop a cancelled attempt: its supervisor
/// starts another slot, which removes this one's directory.
pub const STUCK_EXIT: i32 = 75;

/// Ends the slot process if the cancelled attempt is still running after [`STOP_GRACE`]: the
/// slot is freed for other jobs, and the attempt's processes die with it.
async fn exit_if_stuck(shared: Arc<Shared>, job: u64, attempt: crate::types::AttemptId) {
    tokio::time::sleep(STOP_GRACE).await;
    let current = shared.current.lock().expect("lock poisoned");
    let stuck = current.as_ref().is_some_and(|(j, slot)| {
        *j == job && slot.lock().expect("lock poisoned").as_ref().is_some_and(|c| c.attempt == attempt)
    });
    if stuck {
        tracing::error!(job, %attempt, "the cancelled attempt did not stop: the slot process exits");
        std::process::exit(STUCK_EXIT);
    }
}
