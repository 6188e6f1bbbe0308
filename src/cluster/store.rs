//! The cluster's durable store: every job it was given, in an embedded database (redb) at
//! `--state-dir/cluster.redb`. A job's record holds its submission, its state and times, its
//! progress, its error and its final summary (counters and attempts, as `mr run --json`
//! prints it), and the secret its map outputs are served with; it is written when the job is
//! submitted, starts, makes progress and ends, each write one transaction. The tasks a running
//! job has committed are in its own journal (`control::journal`, in its output's
//! `_temporary`), as for `mr coordinator --resume`. A restarted service reads every record
//! back: finished jobs stay in the history, queued ones stay queued, and running ones go on
//! from their journals.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::cluster::queue::{JobId, JobState};
use crate::cluster::submission::Submission;
use crate::error::{Error, Result};
use crate::types::Millis;

/// File name of the store, in `--state-dir`.
pub const FILE: &str = "cluster.redb";

const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Each job's plan as `mr submit` sent it (a `JobPlan` message), written once.
const PLANS: TableDefinition<u64, &[u8]> = TableDefinition::new("plans");
const LAST_ID: &str = "last_id";

/// Tasks done and tasks in all, per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Map tasks committed.
    pub map_done: u32,
    /// Map tasks.
    pub map_total: u32,
    /// Reduce tasks committed.
    pub reduce_done: u32,
    /// Reduce tasks.
    pub reduce_total: u32,
    /// Input bytes in all.
    #[serde(default)]
    pub input_bytes: u64,
    /// Input bytes the committed map attempts read.
    #[serde(default)]
    pub map_bytes: u64,
    /// Map output bytes the reduce tasks merge, of the committed map outputs.
    #[serde(default)]
    pub reduce_total_bytes: u64,
    /// Bytes the committed reduce attempts merged.
    #[serde(default)]
    pub reduce_bytes: u64,
}

/// What the store keeps of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its number.
    pub id: JobId,
    /// What was submitted.
    pub submission: Submission,
    /// Where it is.
    pub state: JobState,
    /// When it was submitted (ms since the Unix epoch).
    pub submitted_ms: Millis,
    /// When it started running.
    pub started_ms: Option<Millis>,
    /// When it ended.
    pub ended_ms: Option<Millis>,
    /// Its tasks' progress, as last recorded.
    pub progress: Progress,
    /// Why it failed or was killed.
    pub error: Option<String>,
    /// Its summary once it ended, as `mr run --json` prints it (counters, attempts).
    pub summary_json: Option<String>,
    /// The summary as `mr run` prints it.
    pub summary_text: Option<String>,
    /// Its status page's data when it ended (`/api/v1/job`'s `JobView`), served once it is
    /// over.
    pub view: Option<serde_json::Value>,
    /// The secret its map outputs are served with (hex): a reducer of another job cannot
    /// fetch them.
    pub secret: String,
}

/// The open store.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens the store in `dir`, making both if needed (the directory private to the user).
    /// A store another service holds open is an error that says so.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(Error::io("cannot create the state directory", dir))?;
        let path = dir.join(FILE);
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::ClusterStore {
                    path,
                    reason: "another mr cluster has it open: give each service its own --state-dir".into(),
                });
            }
            Err(e) => return Err(failed(&path, "cannot open it")(e.into())),
        };
        let store = Store { db, path };
        let init = || -> std::result::Result<(), redb::Error> {
            let tx = store.db.begin_write()?;
            tx.open_table(JOBS)?;
            tx.open_table(META)?;
            tx.open_table(PLANS)?;
            tx.commit()?;
            Ok(())
        };
        init().map_err(failed(&store.path, "cannot write it"))?;
        Ok(store)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records a new job and its plan: its id is the next number, given by the store (so never
    /// reused, across restarts), and the record is written with it. Returns the id.
    pub fn add(&self, mut record: JobRecord, plan: &[u8]) -> Result<JobId> {
        let mut write = || -> std::result::Result<JobId, redb::Error> {
            let tx = self.db.begin_write()?;
            let id = {
                let mut meta = tx.open_table(META)?;
                let id = meta.get(LAST_ID)?.map_or(0, |v| v.value()) + 1;
                meta.insert(LAST_ID, id)?;
                id
            };
            record.id = id;
            let bytes = serde_json::to_vec(&record).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
            tx.open_table(JOBS)?.insert(id, bytes.as_slice())?;
            tx.open_table(PLANS)?.insert(id, plan)?;
            tx.commit()?;
            Ok(id)
        };
        write().map_err(failed(&self.path, "cannot record a new job"))
    }

    /// A job's plan, as [`Store::add`] recorded it.
    pub fn plan(&self, id: JobId) -> Result<Option<Vec<u8>>> {
        let read = || -> std::result::Result<Option<Vec<u8>>, redb::Error> {
            let tx = self.db.begin_read()?;
            Ok(tx.open_table(PLANS)?.get(id)?.map(|v| v.value().to_vec()))
        };
        read().map_err(failed(&self.path, "cannot read a job's plan"))
    }

    /// Replaces a job's record. With `durable` false (a change of its progress alone, which a
    /// restarted job recomputes from its journal) the write is not synced to disk: the next
    /// durable write carries it.
    pub fn put(&self, record: &JobRecord, durable: bool) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| Error::ClusterStore {
            path: self.path.clone(),
            reason: format!("cannot encode a job: {e}"),
        })?;
        let write = || -> std::result::Result<(), redb::Error> {
            let mut tx = self.db.begin_write()?;
            if !durable {
                tx.set_durability(redb::Durability::None)?;
            }
            tx.open_table(JOBS)?.insert(record.id, bytes.as_slice())?;
            tx.commit()?;
            Ok(())
        };
        write().map_err(failed(&self.path, "cannot record a job"))
    }

    /// Every job, by id.
    pub fn all(&self) -> Result<Vec<JobRecord>> {
        let read = || -> std::result::Result<Vec<(u64, Vec<u8>)>, redb::Error> {
            let tx = self.db.begin_read()?;
            let table = tx.open_table(JOBS)?;
            let mut rows = Vec::new();
            for row in table.iter()? {
                let (id, bytes) = row?;
                rows.push((id.value(), bytes.value().to_vec()));
            }
            Ok(rows)
        };
        let rows = read().map_err(failed(&self.path, "cannot read it"))?;
        rows.into_iter()
            .map(|(id, bytes)| {
                serde_json::from_slice(&bytes).map_err(|e| Error::ClusterStore {
                    path: self.path.clone(),
                    reason: format!("job {id}'s record is not readable: {e}"),
                })
            })
            .collect()
    }
}

fn failed(path: &Path, what: &str) -> impl Fn(redb::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| Error::ClusterStore { path: path.clone(), reason: format!("{what}: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission() -> Submission {
        Submission {
            job: "wordcount".into(),
            job_args: vec![],
            inputs: vec!["/in".into()],
            output: "/out".into(),
            input_format: Default::default(),
            output_compression: Default::default(),
            split_size: Some(1024),
            reduce_tasks: Some(2),
            workers: 2,
            overwrite: false,
            sort_buffer: 1 << 20,
            merge_fan_in: 64,
            max_record_bytes: 1 << 20,
            worker_timeout_ms: 10_000,
            task_timeout_ms: 60_000,
            max_attempts: 4,
            speculative: true,
            skip_bad_records: false,
            faults: Default::default(),
            command: vec!["mr".into(), "submit".into()],
            config: serde_json::json!({"workers": 2}),
        }
    }

    fn record(state: JobState) -> JobRecord {
        JobRecord {
            id: 0,
            submission: submission(),
            state,
            submitted_ms: 1,
            started_ms: None,
            ended_ms: None,
            progress: Progress::default(),
            error: None,
            summary_json: None,
            summary_text: None,
            view: None,
            secret: "00".into(),
        }
    }

    #[test]
    fn jobs_survive_a_reopen_and_ids_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.add(record(JobState::Queued), b"plan a").unwrap();
        let b = store.add(record(JobState::Queued), b"plan b").unwrap();
        assert_eq!((a, b), (1, 2));
        let mut done = store.all().unwrap()[0].clone();
        done.state = JobState::Succeeded;
        done.summary_json = Some("{\"succeeded\": true}".into());
        store.put(&done, true).unwrap();
        let mut running = store.all().unwrap()[1].clone();
        running.progress.map_done = 1;
        store.put(&running, false).unwrap();
        // A second service on the same directory is refused while this one has it open.
        let err = Store::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("another mr cluster has it open"), "{err}");
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let all = store.all().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], done);
        assert_eq!(all[1].state, JobState::Queued);
        assert_eq!(store.plan(2).unwrap().as_deref(), Some(b"plan b".as_slice()));
        assert_eq!(store.plan(4).unwrap(), None);
        assert_eq!(store.add(record(JobState::Queued), b"").unwrap(), 3);
    }
}
