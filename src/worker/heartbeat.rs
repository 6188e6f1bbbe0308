//! The worker's heartbeat: a task beside the task loop that tells the coordinator, every
//! heartbeat interval, that the worker is alive and how far its running attempt has got, and
//! obeys the answer: it cancels an attempt the coordinator lists in `cancel`, stops the worker
//! when the job is over, and records that the coordinator is lost when it has not answered for
//! the lost-coordinator timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::exec::task::{self, AttemptProgress};
use crate::job::Job;
use crate::net::rpc::pb::coordinator_client::CoordinatorClient;
use crate::net::rpc::{AuthChannel, pb};
use crate::types::AttemptId;

/// A value one task of the worker sets and another reads.
pub(super) type Slot<T> = Arc<Mutex<Option<T>>>;

/// The attempt a worker is running, shared with its heartbeat.
#[derive(Clone)]
pub(super) struct Current {
    pub(super) attempt: AttemptId,
    pub(super) progress: Arc<AttemptProgress>,
    pub(super) cancel: CancellationToken,
}

impl Current {
    /// Stops the attempt: at its next checkpoint, or at once while it waits.
    pub(super) fn stop(&self) {
        self.progress.cancel();
        self.cancel.cancel();
    }
}

/// What the heartbeat needs: the coordinator, the worker it speaks for, and what it shares
/// with the task loop.
pub(super) struct Heartbeat {
    pub(super) client: CoordinatorClient<AuthChannel>,
    /// The worker's id; it changes when the worker registers again.
    pub(super) worker_id: Arc<AtomicU64>,
    /// How often it beats.
    pub(super) interval: Duration,
    /// How long the coordinator may not answer before the worker gives up.
    pub(super) lost_timeout: Duration,
    /// The coordinator's URL, for the error.
    pub(super) url: String,
    /// Cancelled to stop the worker (by the heartbeat when the job is over or the coordinator
    /// is lost; by the worker when its task loop ends).
    pub(super) stop: CancellationToken,
    /// Why the coordinator is lost, once it is.
    pub(super) lost: Slot<Error>,
    /// The attempt running, if any.
    pub(super) current: Slot<Current>,
    /// The job, asked for the running attempt's status message (`reporter:status:`).
    pub(super) job: Arc<dyn Job>,
}

impl Heartbeat {
    /// Beats until the worker stops.
    pub(super) async fn run(mut self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            let running = self.current.lock().expect("lock poisoned").clone();
            let request = pb::HeartbeatRequest {
                worker_id: self.worker_id.load(Ordering::Relaxed),
                running: running.as_ref().map(|c| c.attempt.into()),
                records: running.as_ref().map_or(0, |c| c.progress.records.load(Ordering::Relaxed)),
                bytes: running.as_ref().map_or(0, |c| c.progress.reported_bytes()),
                status: if running.is_some() {
                    task::attempt_status(self.job.as_ref()).unwrap_or_default()
                } else {
                    String::new()
                },
            };
            let answer =
                tokio::time::timeout(self.interval.max(Duration::from_secs(1)), self.client.heartbeat(request));
            match answer.await {
                Ok(Ok(reply)) => {
                    last_ok = Instant::now();
                    let reply = reply.into_inner();
                    if reply.exit {
                        tracing::info!("the coordinator ended the job");
                        self.stop.cancel();
                        return;
                    }
                    if let Some(c) = running
                        && reply.cancel.iter().any(|t| AttemptId::from(*t) == c.attempt)
                    {
                        tracing::info!(attempt = %c.attempt, "cancelled by the coordinator");
                        c.stop();
                    }
                }
                Ok(Err(status)) if status.code() == tonic::Code::NotFound => {
                    // A restarted coordinator: the running attempt belongs to its predecessor.
                    // The task loop registers again once the attempt has stopped.
                    last_ok = Instant::now();
                    if let Some(c) = running {
                        tracing::info!(attempt = %c.attempt, "the coordinator restarted: attempt dropped");
                        c.stop();
                    }
                }
                Ok(Err(_)) | Err(_) if last_ok.elapsed() > self.lost_timeout => {
                    let reason = format!("no answer for {:.1} s", last_ok.elapsed().as_secs_f64());
                    let url = self.url.clone();
                    *self.lost.lock().expect("lock poisoned") = Some(Error::Unreachable { url, reason });
                    self.stop.cancel();
                    return;
                }
                _ => {}
            }
        }
    }
}
