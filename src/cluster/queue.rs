//! The cluster's jobs as a pure state machine, as `control::scheduler` is for one job's tasks:
//! no I/O, no clock (callers pass `now` in ms), no tokio. It keeps the jobs in submission
//! order, starts queued jobs first in, first out while fewer than `max_running` run, shares the
//! workers' slots between the running jobs (each gets an equal share; a job that needs fewer
//! slots than its share leaves the rest to the others), kills, and restores its jobs after a
//! restart of the service. What an event asks of the world comes back as [`Effect`]s, taken
//! with [`Queue::take_effects`]; each running job's tasks are scheduled by its own
//! `control::scheduler::Scheduler`, which this module never sees.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::Millis;

/// A job's number in the cluster, from 1, in submission order.
pub type JobId = u64;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a place among the running jobs.
    Queued,
    /// Its tasks run on the workers.
    Running,
    /// Its output committed.
    Succeeded,
    /// A task failed too often, or its commit failed: its output was removed.
    Failed,
    /// Killed (`mr kill`): its attempts stopped and its output was removed.
    Killed,
}

impl JobState {
    /// True for a job that has ended.
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Killed)
    }

    /// Its name, as `mr jobs` and the API show it.
    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Killed => "killed",
        }
    }
}

/// What the queue knows of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the job is.
    pub state: JobState,
    /// When it was submitted, started and ended (ms, the caller's clock).
    pub submitted_ms: Millis,
    /// When it started running, if it has.
    pub started_ms: Option<Millis>,
    /// When it ended, if it has.
    pub ended_ms: Option<Millis>,
    /// Attempts of it that run now.
    pub running: u32,
    /// Slots it could use now: the tasks of its current phase that have not committed.
    pub demand: u32,
    /// Killed while running: it ends as killed whatever its scheduler says.
    kill_asked: bool,
}

/// What an event asks of the owner of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Start the job: plan its scheduler, or, with `resume`, continue it from its journal (a
    /// job that was running when the service stopped).
    Start {
        /// The job.
        id: JobId,
        /// It ran before the service restarted.
        resume: bool,
    },
    /// Stop the running job: its attempts are cancelled and its output removed; the owner
    /// calls [`Queue::job_ended`] once it has ended.
    Abort(JobId),
    /// The job has ended in this state (record it).
    Ended(JobId, JobState),
}

/// The queue's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueConfig {
    /// Most jobs running at once; `None`: no limit.
    pub max_running: Option<usize>,
}

/// The cluster's jobs, by id.
#[derive(Debug, Default)]
pub struct Queue {
    config: QueueConfig,
    jobs: BTreeMap<JobId, Entry>,
    effects: Vec<Effect>,
}

impl Queue {
    /// An empty queue.
    pub fn new(config: QueueConfig) -> Queue {
        Queue { config, jobs: BTreeMap::new(), effects: Vec::new() }
    }

    /// The jobs, by id (so in submission order).
    pub fn jobs(&self) -> &BTreeMap<JobId, Entry> {
        &self.jobs
    }

    /// The effects of the events so far, in the order they arose.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// A new job joins the end of the queue; it starts at once if there is room.
    pub fn submit(&mut self, id: JobId, now: Millis) {
        self.jobs.insert(id, entry(JobState::Queued, now, None, None));
        self.start_ready(now);
    }

    /// Puts back a job the service knew before it restarted, as its store recorded it. A
    /// running one is started again (`resume`) and keeps its place; call
    /// [`Queue::start_ready`] once every job is restored.
    pub fn restore(
        &mut self,
        id: JobId,
        state: JobState,
        submitted_ms: Millis,
        started_ms: Option<Millis>,
        ended_ms: Option<Millis>,
    ) {
        self.jobs.insert(id, entry(state, submitted_ms, started_ms, ended_ms));
        if state == JobState::Running {
            self.effects.push(Effect::Start { id, resume: true });
        }
    }

    /// Starts queued jobs, first submitted first, while fewer than `max_running` run.
    pub fn start_ready(&mut self, now: Millis) {
        let mut running = self.jobs.values().filter(|e| e.state == JobState::Running).count();
        for (&id, e) in &mut self.jobs {
            if self.config.max_running.is_some_and(|max| running >= max) {
                break;
            }
            if e.state == JobState::Queued {
                e.state = JobState::Running;
                e.started_ms = Some(now);
                running += 1;
                self.effects.push(Effect::Start { id, resume: false });
            }
        }
    }

    /// The running job's load: its attempts that run, and the slots it could use.
    pub fn set_load(&mut self, id: JobId, running: u32, demand: u32) {
        if let Some(e) = self.jobs.get_mut(&id).filter(|e| e.state == JobState::Running) {
            e.running = running;
            e.demand = demand.max(running);
        }
    }

    /// Kills a job. A queued one ends at once; a running one is aborted, and ends as killed
    /// when its owner reports its end. Returns false for a job that is unknown or has ended.
    pub fn kill(&mut self, id: JobId, now: Millis) -> bool {
        let Some(e) = self.jobs.get_mut(&id) else { return false };
        match e.state {
            JobState::Queued => {
                e.state = JobState::Killed;
                e.ended_ms = Some(now);
                self.effects.push(Effect::Ended(id, JobState::Killed));
                true
            }
            JobState::Running if !e.kill_asked => {
                e.kill_asked = true;
                self.effects.push(Effect::Abort(id));
                true
            }
            JobState::Running => true,
            _ => false,
        }
    }

    /// The running job has ended (its scheduler's outcome: `Succeeded` or `Failed`; a job
    /// killed while running ends as `Killed` whatever it says). The next queued job starts.
    pub fn job_ended(&mut self, id: JobId, outcome: JobState, now: Millis) {
        let Some(e) = self.jobs.get_mut(&id).filter(|e| e.state == JobState::Running) else { return };
        let state = if e.kill_asked { JobState::Killed } else { outcome };
        e.state = state;
        e.ended_ms = Some(now);
        e.running = 0;
        e.demand = 0;
        self.effects.push(Effect::Ended(id, state));
        self.start_ready(now);
    }

    /// Each running job's share of `slots`: max-min fair. Every job that wants slots gets an
    /// equal share, a job that wants fewer keeps only what it wants and the rest is shared
    /// by the others; slots that do not divide evenly go to the earliest jobs.
    pub fn shares(&self, slots: u32) -> BTreeMap<JobId, u32> {
        let mut shares: BTreeMap<JobId, u32> = self.running().map(|(&id, _)| (id, 0)).collect();
        // Water-filling, in rounds: every job that wants more gets an equal part of what is
        // left, at most what it wants; what a job does not take is shared in the next round.
        let mut wanting: Vec<(JobId, u32)> =
            self.running().filter(|(_, e)| e.demand > 0).map(|(&id, e)| (id, e.demand)).collect();
        let mut left = slots;
        while left > 0 && !wanting.is_empty() {
            let equal = left / wanting.len() as u32;
            for (id, demand) in &mut wanting {
                // Fewer slots than jobs: one each, oldest job first.
                let give = (*demand).min(equal.max(1)).min(left);
                *shares.entry(*id).or_default() += give;
                *demand -= give;
                left -= give;
            }
            wanting.retain(|&(_, demand)| demand > 0);
        }
        shares
    }

    /// The running jobs in the order a free slot should be offered to them: first those below
    /// their share (of `slots`), the furthest below first; then those at or above it that
    /// still want slots (a job below its share may have nothing to run right now, such as
    /// reduces waiting for maps, and a slot is not left idle for it); then the rest. Ties go
    /// to the earliest job.
    pub fn offer_order(&self, slots: u32) -> Vec<JobId> {
        let shares = self.shares(slots);
        let mut order: Vec<(u8, u64, JobId)> = self
            .running()
            .map(|(&id, e)| {
                let share = shares.get(&id).copied().unwrap_or(0);
                let class = if e.running < share {
                    0
                } else if e.running < e.demand {
                    1
                } else {
                    2
                };
                // running / share, compared without division: scaled by a common factor.
                let fill = u64::from(e.running) * 1_000_000 / u64::from(share.max(1));
                (class, fill, id)
            })
            .collect();
        order.sort_unstable();
        order.into_iter().map(|(_, _, id)| id).collect()
    }

    fn running(&self) -> impl Iterator<Item = (&JobId, &Entry)> {
        self.jobs.iter().filter(|(_, e)| e.state == JobState::Running)
    }
}

fn entry(state: JobState, submitted_ms: Millis, started_ms: Option<Millis>, ended_ms: Option<Millis>) -> Entry {
    Entry { state, submitted_ms, started_ms, ended_ms, running: 0, demand: 0, kill_asked: false }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(effects: &[Effect]) -> Vec<JobId> {
        effects.iter().filter_map(|e| if let Effect::Start { id, .. } = e { Some(*id) } else { None }).collect()
    }

    #[test]
    fn jobs_start_first_in_first_out_up_to_the_limit() {
        let mut q = Queue::new(QueueConfig { max_running: Some(2) });
        for id in 1..=4 {
            q.submit(id, id * 10);
        }
        assert_eq!(started(&q.take_effects()), vec![1, 2]);
        assert_eq!(q.jobs()[&3].state, JobState::Queued);
        q.job_ended(2, JobState::Succeeded, 50);
        assert_eq!(
            q.take_effects(),
            vec![Effect::Ended(2, JobState::Succeeded), Effect::Start { id: 3, resume: false }]
        );
        assert_eq!(q.jobs()[&3].started_ms, Some(50));
        q.job_ended(1, JobState::Failed, 60);
        assert_eq!(started(&q.take_effects()), vec![4]);
        // Without a limit, every job starts at once.
        let mut q = Queue::new(QueueConfig::default());
        for id in 1..=20 {
            q.submit(id, 0);
        }
        assert_eq!(started(&q.take_effects()), (1..=20).collect::<Vec<_>>());
    }

    #[test]
    fn slots_are_shared_equally_and_what_a_job_does_not_need_goes_to_the_others() {
        let mut q = Queue::new(QueueConfig::default());
        for id in 1..=3 {
            q.submit(id, 0);
        }
        for id in 1..=3 {
            q.set_load(id, 0, 100);
        }
        assert_eq!(q.shares(9).into_values().collect::<Vec<_>>(), vec![3, 3, 3]);
        // 10 slots: the extra one to the oldest job.
        assert_eq!(q.shares(10).into_values().collect::<Vec<_>>(), vec![4, 3, 3]);
        // Job 2 wants one slot: the other two share the rest.
        q.set_load(2, 0, 1);
        assert_eq!(q.shares(9).into_values().collect::<Vec<_>>(), vec![4, 1, 4]);
        // Nobody wants anything: no shares, but every running job is listed.
        for id in 1..=3 {
            q.set_load(id, 0, 0);
        }
        assert_eq!(q.shares(4).into_values().collect::<Vec<_>>(), vec![0, 0, 0]);
        // More jobs than slots: the oldest get one each.
        for id in 1..=3 {
            q.set_load(id, 0, 5);
        }
        assert_eq!(q.shares(2).into_values().collect::<Vec<_>>(), vec![1, 1, 0]);
    }

    #[test]
    fn a_free_slot_goes_to_the_job_furthest_below_its_share() {
        let mut q = Queue::new(QueueConfig::default());
        for id in 1..=2 {
            q.submit(id, 0);
        }
        // 4 slots, two long jobs: job 1 has 3 running, job 2 has 1.
        q.set_load(1, 3, 100);
        q.set_load(2, 1, 100);
        assert_eq!(q.offer_order(4), vec![2, 1]);
        q.set_load(2, 2, 100);
        q.set_load(1, 2, 100);
        // Both at their share: the oldest first, both still want more.
        assert_eq!(q.offer_order(4), vec![1, 2]);
        // Job 1 needs nothing more: it comes last.
        q.set_load(1, 2, 2);
        assert_eq!(q.offer_order(4), vec![2, 1]);
        // Simulated: slots freed one at a time go to whoever is below its share, so two
        // equal jobs end up with two slots each, whichever order the slots free up in.
        let (mut a, mut b) = (4u32, 0u32);
        for _ in 0..8 {
            // One of job 1's attempts ends, and the slot is offered.
            a = a.saturating_sub(1);
            q.set_load(1, a, 100);
            q.set_load(2, b, 100);
            match q.offer_order(4)[0] {
                1 => a += 1,
                _ => b += 1,
            }
        }
        assert_eq!((a, b), (2, 2));
    }

    #[test]
    fn kill_ends_a_queued_job_at_once_and_aborts_a_running_one() {
        let mut q = Queue::new(QueueConfig { max_running: Some(1) });
        q.submit(1, 0);
        q.submit(2, 0);
        q.take_effects();
        assert!(q.kill(2, 5));
        assert_eq!(q.take_effects(), vec![Effect::Ended(2, JobState::Killed)]);
        assert!(q.kill(1, 6));
        assert!(q.kill(1, 7), "killing twice is no error");
        assert_eq!(q.take_effects(), vec![Effect::Abort(1)]);
        // Its scheduler says the abort failed the job: it was killed.
        q.job_ended(1, JobState::Failed, 8);
        assert_eq!(q.take_effects(), vec![Effect::Ended(1, JobState::Killed)]);
        assert_eq!(q.jobs()[&1].ended_ms, Some(8));
        assert!(!q.kill(1, 9), "an ended job cannot be killed");
        assert!(!q.kill(3, 9), "nor an unknown one");
        assert!(q.take_effects().is_empty());
    }

    #[test]
    fn a_restart_resumes_running_jobs_keeps_the_queue_and_the_history() {
        let mut q = Queue::new(QueueConfig { max_running: Some(2) });
        q.restore(1, JobState::Succeeded, 0, Some(1), Some(2));
        q.restore(2, JobState::Running, 3, Some(4), None);
        q.restore(3, JobState::Queued, 5, None, None);
        q.restore(4, JobState::Queued, 6, None, None);
        q.start_ready(100);
        assert_eq!(
            q.take_effects(),
            vec![Effect::Start { id: 2, resume: true }, Effect::Start { id: 3, resume: false }]
        );
        assert_eq!(q.jobs()[&1].state, JobState::Succeeded);
        assert_eq!(q.jobs()[&2].started_ms, Some(4));
        assert_eq!(q.jobs()[&4].state, JobState::Queued);
        q.job_ended(2, JobState::Succeeded, 200);
        assert_eq!(started(&q.take_effects()), vec![4]);
    }
}
