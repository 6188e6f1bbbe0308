//! The cluster's gRPC services: `Cluster` (jobs for people, slots for workers), and the
//! `Coordinator` and `State` services of every running job at once, each call sent to the
//! job's own coordinator by the job id in its `mr-job-id` metadata.

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::cluster::service::{Cluster, job_info, unknown_slot};
use crate::cluster::submission::Submission;
use crate::error::{Error, Result};
use crate::net::rpc::{self, MAX_MESSAGE_BYTES, pb};

/// How long NextTask and WatchJob hold a call open when there is nothing new.
const LONG_POLL: Duration = Duration::from_millis(1000);
/// How often the jobs' timers run.
const TICK: Duration = Duration::from_millis(100);

impl Cluster {
    /// Serves the cluster's services on `listener` until `shutdown`, with the jobs' timers.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) -> Result<()> {
        let ticker = {
            let cluster = self.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(TICK);
                loop {
                    interval.tick().await;
                    cluster.tick();
                }
            })
        };
        let token = self.inner.config.token.clone();
        let mut server = rpc::server(self.inner.config.tls.as_ref())?;
        let cluster = pb::cluster_server::ClusterServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let coordinator = pb::coordinator_server::CoordinatorServer::new(self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let state = pb::state_server::StateServer::new(self.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES);
        let result = server
            .add_service(rpc::check_token(cluster, token.clone()))
            .add_service(rpc::check_token(coordinator, token.clone()))
            .add_service(rpc::check_token(state, token))
            .serve_with_incoming_shutdown(rpc::incoming(listener), shutdown.cancelled_owned())
            .await;
        ticker.abort();
        result.map_err(|e| Error::Job(format!("cluster server failed: {e}")))
    }

    /// The running job a call names.
    fn job_of<T>(&self, request: &Request<T>) -> Result<crate::control::coordinator::Coordinator, Status> {
        let id = rpc::job_of(request).ok_or_else(|| {
            Status::invalid_argument(format!("the call names no job: calls to mr cluster carry {}", rpc::JOB_HEADER))
        })?;
        self.coordinator(id)
    }

    /// A task for the slot, or an offer to join a job, if a running job has one now.
    fn offer(&self, slot: u64) -> Result<Option<pb::next_task_reply::Reply>, Status> {
        for crate::cluster::service::Offer { id, coordinator, worker, wants } in self.offers(slot)? {
            let Some(worker) = worker else {
                if !wants {
                    continue;
                }
                let secret = self.secret(id).unwrap_or_default();
                return Ok(Some(pb::next_task_reply::Reply::Join(pb::JoinOffer { job_id: id, secret })));
            };
            match coordinator.try_assign(worker) {
                Ok(Some(task)) => {
                    if let Some(info) = self.state().slots.get_mut(&slot) {
                        info.running = Some(id);
                    }
                    let task = pb::ClusterTask { job_id: id, task: Some(task) };
                    return Ok(Some(pb::next_task_reply::Reply::Task(task)));
                }
                Ok(None) => {}
                // Its registration is gone (a restarted job): it joins again.
                Err(_) => {
                    if let Some(info) = self.state().slots.get_mut(&slot) {
                        info.joined.remove(&id);
                    }
                }
            }
        }
        Ok(None)
    }
}

/// A job's own error, or the request's (INVALID_ARGUMENT, which `mr submit` exits 2 for).
fn submit_error(e: &Error) -> Status {
    if e.is_usage() { Status::invalid_argument(e.to_string()) } else { Status::failed_precondition(e.to_string()) }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for Cluster {
    async fn submit(&self, request: Request<pb::SubmitRequest>) -> Result<Response<pb::SubmitReply>, Status> {
        let request = request.into_inner();
        let submission: Submission = serde_json::from_str(&request.submission)
            .map_err(|e| Status::invalid_argument(format!("the submission is not readable: {e}")))?;
        if !submission.output.is_absolute() && !crate::data::storage::is_url(&submission.output) {
            return Err(Status::invalid_argument("the output must be an absolute path or a URL"));
        }
        let plan = request.plan.ok_or_else(|| Status::invalid_argument("the submission has no plan"))?;
        let job_id = Cluster::submit(self, submission, plan).await.map_err(|e| submit_error(&e))?;
        Ok(Response::new(pb::SubmitReply { job_id }))
    }

    async fn list_jobs(&self, _: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsReply>, Status> {
        let s = self.state();
        let jobs = s.records.values().map(|r| job_info(r, s.versions.get(&r.id).copied().unwrap_or(0))).collect();
        Ok(Response::new(pb::ListJobsReply { jobs }))
    }

    async fn watch_job(&self, request: Request<pb::WatchJobRequest>) -> Result<Response<pb::JobInfo>, Status> {
        let r = request.into_inner();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let info = {
                let s = self.state();
                let record = s.records.get(&r.job_id).ok_or_else(|| no_such_job(r.job_id))?;
                job_info(record, s.versions.get(&r.job_id).copied().unwrap_or(0))
            };
            if info.version != r.known_version || tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(Response::new(info));
            }
        }
    }

    async fn kill_job(&self, request: Request<pb::KillJobRequest>) -> Result<Response<pb::KillJobReply>, Status> {
        let id = request.into_inner().job_id;
        let (killed, state) = self.kill(id).await.ok_or_else(|| no_such_job(id))?;
        if !killed {
            return Err(Status::failed_precondition(format!("job {id} has already ended: {}", state.name())));
        }
        Ok(Response::new(pb::KillJobReply { state: state.name().to_string() }))
    }

    async fn register_slot(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterSlotReply>, Status> {
        let r = request.into_inner();
        let name = if r.host.is_empty() { r.name } else { format!("{} {}", r.host, r.name) };
        let slot_id = self.register_slot(name, r.host);
        tracing::info!(slot = slot_id, "slot registered");
        let heartbeat_interval_ms = (self.inner.config.slot_timeout / 10).as_millis().clamp(50, 1000) as u64;
        Ok(Response::new(pb::RegisterSlotReply { slot_id, heartbeat_interval_ms }))
    }

    async fn next_task(&self, request: Request<pb::NextTaskRequest>) -> Result<Response<pb::NextTaskReply>, Status> {
        let slot = request.into_inner().slot_id;
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let changed = self.inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(reply) = self.offer(slot)? {
                return Ok(Response::new(pb::NextTaskReply { reply: Some(reply) }));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Ok(Response::new(pb::NextTaskReply { reply: Some(pb::next_task_reply::Reply::WaitMs(0)) }));
            }
        }
    }

    async fn join_job(
        &self,
        request: Request<pb::JoinJobRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        let r = request.into_inner();
        if !self.state().slots.contains_key(&r.slot_id) {
            return Err(unknown_slot(r.slot_id));
        }
        let coordinator = self.coordinator(r.job_id)?;
        let registration = r.worker.ok_or_else(|| Status::invalid_argument("worker is required"))?;
        let reply =
            pb::coordinator_server::Coordinator::register_worker(&coordinator, Request::new(registration)).await?;
        let worker = reply.get_ref().worker_id;
        if let Some(info) = self.state().slots.get_mut(&r.slot_id) {
            info.joined.insert(r.job_id, worker);
        }
        tracing::debug!(slot = r.slot_id, job = r.job_id, worker, "slot joined a job");
        Ok(reply)
    }

    async fn slot_heartbeat(
        &self,
        request: Request<pb::SlotHeartbeatRequest>,
    ) -> Result<Response<pb::SlotHeartbeatReply>, Status> {
        let r = request.into_inner();
        let (joined, ended_jobs) = {
            let mut s = self.state();
            let running: Vec<u64> = s.running.keys().copied().collect();
            let info = s.slots.get_mut(&r.slot_id).ok_or_else(|| unknown_slot(r.slot_id))?;
            info.last_seen = std::time::Instant::now();
            info.running = (r.job_id != 0).then_some(r.job_id);
            let ended: Vec<u64> = info.joined.keys().copied().filter(|id| !running.contains(id)).collect();
            info.joined.retain(|id, _| running.contains(id));
            let joined: Vec<(u64, u64)> = info.joined.iter().map(|(&job, &worker)| (job, worker)).collect();
            (joined, ended)
        };
        let mut cancel = Vec::new();
        for (job, worker) in joined {
            let Ok(coordinator) = self.coordinator(job) else { continue };
            // The slot is alive for every job it joined; only one has its running attempt.
            let beat = match &r.beat {
                Some(beat) if job == r.job_id => pb::HeartbeatRequest { worker_id: worker, ..beat.clone() },
                _ => pb::HeartbeatRequest { worker_id: worker, ..Default::default() },
            };
            if let Ok(reply) = pb::coordinator_server::Coordinator::heartbeat(&coordinator, Request::new(beat)).await
                && job == r.job_id
            {
                cancel = reply.into_inner().cancel;
            }
        }
        self.inner.changed.notify_waiters();
        Ok(Response::new(pb::SlotHeartbeatReply { cancel, ended_jobs }))
    }
}

fn no_such_job(id: u64) -> Status {
    Status::not_found(format!("there is no job {id} on this cluster: `mr jobs --cluster URL` lists them"))
}

/// The answer to a call that a single job's workers make, made to a cluster.
fn not_a_coordinator() -> Status {
    Status::failed_precondition(
        "this is an mr cluster, which runs many jobs: start the worker with `mr worker --cluster URL`, not \
         --coordinator",
    )
}

#[tonic::async_trait]
impl pb::coordinator_server::Coordinator for Cluster {
    async fn register_worker(
        &self,
        _: Request<pb::RegisterWorkerRequest>,
    ) -> Result<Response<pb::RegisterWorkerReply>, Status> {
        Err(not_a_coordinator())
    }

    async fn get_task(&self, _: Request<pb::GetTaskRequest>) -> Result<Response<pb::GetTaskReply>, Status> {
        Err(not_a_coordinator())
    }

    async fn heartbeat(&self, _: Request<pb::HeartbeatRequest>) -> Result<Response<pb::HeartbeatReply>, Status> {
        Err(not_a_coordinator())
    }

    async fn commit_task(
        &self,
        request: Request<pb::CommitTaskRequest>,
    ) -> Result<Response<pb::CommitTaskReply>, Status> {
        let coordinator = self.job_of(&request)?;
        pb::coordinator_server::Coordinator::commit_task(&coordinator, request).await
    }

    async fn report_completion(
        &self,
        request: Request<pb::ReportCompletionRequest>,
    ) -> Result<Response<pb::ReportCompletionReply>, Status> {
        let coordinator = self.job_of(&request)?;
        let reply = pb::coordinator_server::Coordinator::report_completion(&coordinator, request).await;
        self.inner.changed.notify_waiters();
        reply
    }

    async fn report_failure(
        &self,
        request: Request<pb::ReportFailureRequest>,
    ) -> Result<Response<pb::ReportFailureReply>, Status> {
        let coordinator = self.job_of(&request)?;
        let reply = pb::coordinator_server::Coordinator::report_failure(&coordinator, request).await;
        self.inner.changed.notify_waiters();
        reply
    }
}

#[tonic::async_trait]
impl pb::state_server::State for Cluster {
    async fn get_state(&self, request: Request<pb::GetStateRequest>) -> Result<Response<pb::GetStateReply>, Status> {
        let coordinator = self.job_of(&request)?;
        pb::state_server::State::get_state(&coordinator, request).await
    }

    async fn set_state(&self, request: Request<pb::SetStateRequest>) -> Result<Response<pb::SetStateReply>, Status> {
        let coordinator = self.job_of(&request)?;
        pb::state_server::State::set_state(&coordinator, request).await
    }
}
