//! The coordinator's journal: what a job has committed so far, in an embedded database (redb)
//! kept with the job's output (`OUT/_temporary/journal.redb`) until the job commits, so that a
//! coordinator killed mid-job can be restarted with `--resume` without re-running the tasks
//! that had committed.
//!
//! It holds the job's identity (what was planned: job, arguments, splits, input files' sizes
//! and modification times, reduce tasks), each committed task (its attempt, output and
//! counters), the entries of the state store, and an incarnation number that a resume
//! increments, so that workers registered with an earlier coordinator are told apart.
//!
//! Records are queued by the coordinator while it holds the scheduler's lock, so in the order
//! the scheduler accepted them, before the call is answered; a thread of their own writes them,
//! in batches of up to 20 ms: no RPC waits for the disk. A crash can therefore lose the last few records; the
//! journal is then a subset of what committed, and a subset is always safe to resume from: a
//! task missing from it runs again and writes the same output (a reduce's part file is
//! replaced by an atomic rename). A journal that cannot be written is reported and the job
//! goes on without it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::layout::TEMPORARY;
use crate::types::{MapOutputLocation, Phase, TaskCounters, TaskId};

/// File name of the journal, in the output directory's `_temporary`.
pub const FILE: &str = "journal.redb";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const DONE: TableDefinition<(u8, u32), &[u8]> = TableDefinition::new("done");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

const IDENTITY: &str = "identity";
const INCARNATION: &str = "incarnation";
const WORK_DIR: &str = "work_dir";
const OUTPUT_CREATED: &str = "output_created";
const LOGS: &str = "logs";
const FORMAT: &str = "format";

/// The journal's format, in its `meta` table under `format`: a build resumes only a journal of
/// its own format. Journals without the key are format 1 (map outputs as JSON strings).
pub const FORMAT_VERSION: u32 = 2;

/// Where the journal of a job writing to `output` lives.
pub fn path_for(output: &Path) -> PathBuf {
    output.join(TEMPORARY).join(FILE)
}

/// How the name of a work directory of `mr run` and `mr coordinator` begins (in `TMPDIR`).
pub const WORK_DIR_PREFIX: &str = "mr-work-";

/// How the name of a worker log directory of `mr run` begins (in `TMPDIR`).
pub const LOGS_PREFIX: &str = "mr-logs-";

/// Removes the work and log directories that the journal at `path` names: what a run killed
/// before it committed left in `TMPDIR` (its workers' map outputs, their logs), when the job
/// is not resumed but replaced (`--overwrite`). A directory is removed only if it looks like
/// one `mr` made: a directory (not a symbolic link) whose name has the expected prefix, owned
/// by this user; any other path is left alone. Returns the directories removed. It reads only
/// the two names, which every format of the journal holds.
pub fn remove_directories(path: &Path) -> Result<Vec<PathBuf>> {
    let db = Database::open(path).map_err(|e| failed(path, "cannot open it")(e.into()))?;
    let (work_dir, logs) = read_directories(&db).map_err(failed(path, "cannot read it"))?;
    let mut removed = Vec::new();
    for (dir, prefix) in [(work_dir, WORK_DIR_PREFIX), (logs, LOGS_PREFIX)] {
        let Some(dir) = dir else { continue };
        if !made_by_mr(&dir, prefix) {
            tracing::debug!(dir = %dir.display(), "not a directory of mr's own: left alone");
            continue;
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove the interrupted job's directory", dir)(e)),
        }
    }
    Ok(removed)
}

/// True if `dir` is a directory (not a symbolic link) named `prefix…`, owned by this user.
fn made_by_mr(dir: &Path, prefix: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let named = dir.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(prefix.as_bytes()));
    named
        && std::fs::symlink_metadata(dir)
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == nix::unistd::geteuid().as_raw())
}

/// What a job is: the planned facts that a resumed run must share with the run it continues,
/// by name, in the order they are compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Identity(pub Vec<(String, serde_json::Value)>);

impl Identity {
    /// Adds a named fact.
    pub fn with(mut self, name: &str, value: impl Serialize) -> Identity {
        let value = serde_json::to_value(value).unwrap_or_else(|e| serde_json::Value::String(e.to_string()));
        self.0.push((name.to_string(), value));
        self
    }

    /// The first fact that differs between the journal's job (`self`) and this command's.
    fn difference(&self, now: &Identity) -> Option<String> {
        let show = |v: Option<&serde_json::Value>| {
            let text = v.map_or_else(|| "nothing".to_string(), |v| v.to_string());
            if text.chars().count() > 120 { format!("{}...", text.chars().take(120).collect::<String>()) } else { text }
        };
        let names = self.0.iter().chain(&now.0).map(|(n, _)| n);
        for name in names {
            let (a, b) = (self.get(name), now.get(name));
            if a != b {
                return Some(format!("{name}: the journal has {}, this command plans {}", show(a), show(b)));
            }
        }
        None
    }

    /// The fact named `name`, if it has one.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A committed task, as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    /// The task.
    #[serde(skip)]
    pub task: Option<TaskId>,
    /// Its committed attempt.
    pub attempt: u32,
    /// Where a map task's output is; `None` for a reduce task (its part file is in OUT).
    pub map_output: Option<MapOutputLocation>,
    /// Its counters.
    pub counters: TaskCounters,
}

/// What a journal holds, read back.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// How many coordinators ran this job before this one (0 for a new job).
    pub incarnation: u64,
    /// The work directory of the run that wrote it (map outputs of `mr run`'s workers).
    pub work_dir: Option<PathBuf>,
    /// Whether the job created its output directory.
    pub output_created: bool,
    /// The worker log directory of the run that wrote it.
    pub logs: Option<PathBuf>,
    /// The committed tasks.
    pub done: Vec<(TaskId, Done)>,
    /// The state store's entries.
    pub state: Vec<(String, Vec<u8>)>,
}

enum Entry {
    Done(TaskId, Done),
    State(Vec<(String, Vec<u8>)>),
}

/// An open journal. Records go to a writer thread; [`Journal::close`] waits for them.
pub struct Journal {
    path: PathBuf,
    sender: Mutex<Option<mpsc::Sender<Entry>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Opens an existing journal; one that another coordinator holds open is an error saying that
/// its job is still running.
fn open_existing(path: &Path) -> Result<Database> {
    Database::open(path).map_err(|e| open_failed(path, e))
}

/// Why a journal cannot be opened; one that another coordinator holds open is still running.
fn open_failed(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Journal {
            path: path.to_path_buf(),
            reason: "another coordinator has it open: that job is still running".into(),
        },
        e => failed(path, "cannot open it")(e.into()),
    }
}
fn failed(path: &Path, what: &str) -> impl Fn(redb::Error) -> Error {
    let path = path.to_path_buf();
    let what = what.to_string();
    move |e| Error::Journal { path: path.clone(), reason: format!("{what}: {e}") }
}

fn phase_code(phase: Phase) -> u8 {
    match phase {
        Phase::Map => 0,
        Phase::Reduce => 1,
    }
}

impl Journal {
    /// Starts the journal of a new job at `path` (an existing file is replaced), with the
    /// directories of the run, removed by the run that completes the job.
    pub fn create(
        path: &Path,
        identity: &Identity,
        work_dir: &Path,
        logs: &Path,
        output_created: bool,
    ) -> Result<Journal> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("cannot create the journal's directory", dir))?;
        }
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("cannot replace the journal", path)(e));
            }
            _ => {}
        }
        let db = Database::create(path).map_err(|e| failed(path, "cannot create it")(e.into()))?;
        let identity = serde_json::to_vec(identity)
            .map_err(|e| Error::Journal { path: path.to_path_buf(), reason: format!("cannot encode the job: {e}") })?;
        let write = || -> std::result::Result<(), redb::Error> {
            let tx = db.begin_write()?;
            {
                let mut meta = tx.open_table(META)?;
                meta.insert(FORMAT, FORMAT_VERSION.to_le_bytes().as_slice())?;
                meta.insert(IDENTITY, identity.as_slice())?;
                meta.insert(INCARNATION, 0u64.to_le_bytes().as_slice())?;
                meta.insert(WORK_DIR, work_dir.as_os_str().as_encoded_bytes())?;
                meta.insert(LOGS, logs.as_os_str().as_encoded_bytes())?;
                meta.insert(OUTPUT_CREATED, [u8::from(output_created)].as_slice())?;
                tx.open_table(DONE)?;
                tx.open_table(STATE)?;
            }
            tx.commit()?;
            Ok(())
        };
        write().map_err(failed(path, "cannot write it"))?;
        Ok(Journal::start(path, db))
    }

    /// Opens the journal of a job to continue it: checks that it is the same job as
    /// `identity`, counts one more incarnation, and returns what it holds.
    pub fn resume(path: &Path, identity: &Identity) -> Result<(Journal, Recovered)> {
        let db = open_existing(path)?;
        check_format(&db, path)?;
        let mut recovered = read(&db, path)?;
        let journaled = read_identity(&db, path)?;
        if let Some(difference) = journaled.difference(identity) {
            return Err(Error::JournalMismatch { path: path.to_path_buf(), difference });
        }
        recovered.incarnation += 1;
        let incarnation = recovered.incarnation;
        let write = || -> std::result::Result<(), redb::Error> {
            let tx = db.begin_write()?;
            tx.open_table(META)?.insert(INCARNATION, incarnation.to_le_bytes().as_slice())?;
            tx.commit()?;
            Ok(())
        };
        write().map_err(failed(path, "cannot write it"))?;
        Ok((Journal::start(path, db), recovered))
    }

    /// The job that the journal at `path` belongs to, read without changing anything. A
    /// journal of another format than this build's is [`Error::JournalFormat`].
    /// The file is opened read-only, so it is left as it is, unless a crash left it to be
    /// repaired (then it is opened to be written, which repairs it).
    pub fn identity(path: &Path) -> Result<Identity> {
        let identity = |db: &dyn ReadableDatabase| {
            check_format(db, path)?;
            read_identity(db, path)
        };
        match redb::ReadOnlyDatabase::open(path) {
            Ok(db) => identity(&db),
            Err(redb::DatabaseError::RepairAborted) => identity(&open_existing(path)?),
            Err(e) => Err(open_failed(path, e)),
        }
    }

    /// Reads a journal without changing it (e.g. one left by a killed coordinator).
    pub fn inspect(path: &Path) -> Result<Recovered> {
        let db = Database::open(path).map_err(|e| failed(path, "cannot open it")(e.into()))?;
        check_format(&db, path)?;
        read(&db, path)
    }

    fn start(path: &Path, db: Database) -> Journal {
        let (sender, receiver) = mpsc::channel();
        let at = path.to_path_buf();
        let writer = std::thread::spawn(move || write_loop(&db, &at, &receiver));
        Journal { path: path.to_path_buf(), sender: Mutex::new(Some(sender)), writer: Mutex::new(Some(writer)) }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, entry: Entry) {
        if let Some(sender) = self.sender.lock().expect("journal lock poisoned").as_ref() {
            // A stopped writer already reported why.
            let _ = sender.send(entry);
        }
    }

    /// Records a committed task.
    pub fn record_done(&self, task: TaskId, done: Done) {
        self.send(Entry::Done(task, done));
    }

    /// Records entries set in the state store.
    pub fn record_state(&self, entries: Vec<(String, Vec<u8>)>) {
        self.send(Entry::State(entries));
    }

    /// Writes what is pending and closes the file.
    pub fn close(&self) {
        self.sender.lock().expect("journal lock poisoned").take();
        if let Some(writer) = self.writer.lock().expect("journal lock poisoned").take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}

/// How long the writer gathers entries after the first before it commits them: one
/// transaction (and one sync to disk) for every task that committed meanwhile.
const BATCH: std::time::Duration = std::time::Duration::from_millis(20);

/// Writes entries as they come, everything that arrives within [`BATCH`] in one transaction;
/// at once when the journal is closed.
fn write_loop(db: &Database, path: &Path, receiver: &mpsc::Receiver<Entry>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = std::time::Instant::now() + BATCH;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(entry) => batch.push(entry),
                Err(_) => break,
            }
        }
        if let Err(e) = write_batch(db, &batch) {
            tracing::error!(
                journal = %path.display(),
                "cannot write the journal ({e}): the job goes on, but a resumed run would redo its tasks"
            );
            return;
        }
    }
}

fn write_batch(db: &Database, batch: &[Entry]) -> std::result::Result<(), redb::Error> {
    let tx = db.begin_write()?;
    {
        let mut done = tx.open_table(DONE)?;
        let mut state = tx.open_table(STATE)?;
        for entry in batch {
            match entry {
                Entry::Done(task, record) => {
                    let bytes = serde_json::to_vec(record).map_err(|e| redb::Error::Corrupted(e.to_string()))?;
                    done.insert((phase_code(task.phase), task.index), bytes.as_slice())?;
                }
                Entry::State(entries) => {
                    for (key, value) in entries {
                        state.insert(key.as_str(), value.as_slice())?;
                    }
                }
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// The format a journal was written in: [`FORMAT_VERSION`] or an earlier one, 1 when it
/// names none.
fn read_format(db: &dyn ReadableDatabase, path: &Path) -> Result<u32> {
    let read = || -> std::result::Result<Option<Vec<u8>>, redb::Error> {
        let tx = db.begin_read()?;
        Ok(tx.open_table(META)?.get(FORMAT)?.map(|v| v.value().to_vec()))
    };
    match read().map_err(failed(path, "cannot read it"))? {
        None => Ok(1),
        Some(bytes) => <[u8; 4]>::try_from(bytes.as_slice())
            .map(u32::from_le_bytes)
            .map_err(|_| Error::Journal { path: path.to_path_buf(), reason: "its format is unreadable".into() }),
    }
}

/// Refuses a journal of another format than this build's, naming the output directory.
fn check_format(db: &dyn ReadableDatabase, path: &Path) -> Result<()> {
    let found = read_format(db, path)?;
    if found == FORMAT_VERSION {
        return Ok(());
    }
    let output = path.parent().and_then(Path::parent).unwrap_or(path).to_path_buf();
    Err(Error::JournalFormat { output, journal: path.to_path_buf(), found, expected: FORMAT_VERSION })
}

/// The work and log directories a journal names, in any format.
fn read_directories(db: &Database) -> std::result::Result<(Option<PathBuf>, Option<PathBuf>), redb::Error> {
    let tx = db.begin_read()?;
    let meta = tx.open_table(META)?;
    let path = |key: &str| -> std::result::Result<Option<PathBuf>, redb::Error> {
        Ok(meta.get(key)?.map(|v| as_path(v.value().to_vec())))
    };
    Ok((path(WORK_DIR)?, path(LOGS)?))
}

/// A path written as its bytes (`as_encoded_bytes`), which on Unix are the bytes themselves.
fn as_path(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}

fn read_identity(db: &dyn ReadableDatabase, path: &Path) -> Result<Identity> {
    let read = || -> std::result::Result<Option<Vec<u8>>, redb::Error> {
        let tx = db.begin_read()?;
        Ok(tx.open_table(META)?.get(IDENTITY)?.map(|v| v.value().to_vec()))
    };
    let bytes = read().map_err(failed(path, "cannot read it"))?;
    let bytes = bytes.ok_or_else(|| Error::Journal { path: path.to_path_buf(), reason: "it names no job".into() })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Journal { path: path.to_path_buf(), reason: format!("its job is unreadable: {e}") })
}

fn read(db: &Database, path: &Path) -> Result<Recovered> {
    let corrupt = |what: &str| Error::Journal { path: path.to_path_buf(), reason: format!("{what} is unreadable") };
    let read = || -> std::result::Result<_, redb::Error> {
        let tx = db.begin_read()?;
        let meta = tx.open_table(META)?;
        let get = |key: &str| -> std::result::Result<Option<Vec<u8>>, redb::Error> {
            Ok(meta.get(key)?.map(|v| v.value().to_vec()))
        };
        let (incarnation, work_dir, created) = (get(INCARNATION)?, get(WORK_DIR)?, get(OUTPUT_CREATED)?);
        let logs = get(LOGS)?;
        let mut done = Vec::new();
        for row in tx.open_table(DONE)?.iter()? {
            let (key, value) = row?;
            done.push((key.value(), value.value().to_vec()));
        }
        let mut state = Vec::new();
        for row in tx.open_table(STATE)?.iter()? {
            let (key, value) = row?;
            state.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok((incarnation, work_dir, created, logs, done, state))
    };
    let (incarnation, work_dir, created, logs, rows, state) = read().map_err(failed(path, "cannot read it"))?;
    let incarnation = incarnation
        .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| corrupt("its incarnation"))?;
    let (work_dir, logs) = (work_dir.map(as_path), logs.map(as_path));
    let mut done = Vec::with_capacity(rows.len());
    for ((phase, index), bytes) in rows {
        let phase = match phase {
            0 => Phase::Map,
            1 => Phase::Reduce,
            _ => return Err(corrupt("a task's phase")),
        };
        let task = TaskId { phase, index };
        let mut record: Done = serde_json::from_slice(&bytes).map_err(|_| corrupt(&format!("{task}")))?;
        record.task = Some(task);
        done.push((task, record));
    }
    Ok(Recovered { incarnation, work_dir, output_created: created.as_deref() == Some(&[1]), logs, done, state })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(splits: u32) -> Identity {
        Identity::default().with("job", "wordcount").with("splits", splits)
    }

    fn done(attempt: u32, map_output: Option<MapOutputLocation>) -> Done {
        Done { task: None, attempt, map_output, counters: TaskCounters::default() }
    }

    #[test]
    fn committed_tasks_and_state_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path());
        let journal =
            Journal::create(&path, &identity(3), Path::new("/tmp/work"), Path::new("/tmp/logs"), true).unwrap();
        let location = MapOutputLocation {
            map_task: 2,
            attempt: 1,
            host: "10.0.0.2".into(),
            path: "/tmp/work/mr-worker-1/map-00002-1.out".into(),
            shuffle_url: "http://10.0.0.2:4000".into(),
        };
        journal.record_done(TaskId { phase: Phase::Map, index: 2 }, done(1, Some(location.clone())));
        journal.record_state(vec![("k".into(), b"v".to_vec())]);
        journal.record_done(TaskId { phase: Phase::Reduce, index: 0 }, done(0, None));
        journal.close();
        drop(journal);

        let (journal, recovered) = Journal::resume(&path, &identity(3)).unwrap();
        assert_eq!(recovered.incarnation, 1);
        assert_eq!(recovered.work_dir.as_deref(), Some(Path::new("/tmp/work")));
        assert!(recovered.output_created);
        assert_eq!(recovered.logs.as_deref(), Some(Path::new("/tmp/logs")));
        let tasks: Vec<(TaskId, u32, Option<&MapOutputLocation>)> =
            recovered.done.iter().map(|(t, d)| (*t, d.attempt, d.map_output.as_ref())).collect();
        assert_eq!(
            tasks,
            [
                (TaskId { phase: Phase::Map, index: 2 }, 1, Some(&location)),
                (TaskId { phase: Phase::Reduce, index: 0 }, 0, None)
            ]
        );
        assert_eq!(recovered.state, [("k".to_string(), b"v".to_vec())]);
        drop(journal);
        assert_eq!(Journal::inspect(&path).unwrap().incarnation, 1);
    }

    #[test]
    fn another_job_is_refused_naming_what_differs() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path());
        drop(Journal::create(&path, &identity(3), dir.path(), dir.path(), false).unwrap());
        let err = Journal::resume(&path, &identity(4)).err().unwrap().to_string();
        assert!(err.contains("splits: the journal has 3, this command plans 4"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn an_open_journal_is_not_resumed_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path());
        let _open = Journal::create(&path, &identity(1), dir.path(), dir.path(), false).unwrap();
        let err = Journal::resume(&path, &identity(1)).err().unwrap().to_string();
        assert!(err.contains("still running"), "{err}");
    }

    #[test]
    fn only_directories_that_look_like_mr_s_own_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str| {
            let path = dir.path().join(name);
            std::fs::create_dir(&path).unwrap();
            std::fs::write(path.join("file"), b"x").unwrap();
            path
        };
        let remove = |work: &Path, logs: &Path| {
            let out = tempfile::tempdir().unwrap();
            let path = path_for(out.path());
            drop(Journal::create(&path, &identity(1), work, logs, false).unwrap());
            remove_directories(&path).unwrap()
        };
        // mr's own: both removed.
        let (work, logs) = (make("mr-work-abc"), make("mr-logs-abc"));
        assert_eq!(remove(&work, &logs), [work.clone(), logs.clone()]);
        assert!(!work.exists() && !logs.exists());
        // Another name, a symbolic link, a file, a path that is gone: left alone.
        let other = make("data");
        let link = dir.path().join("mr-logs-link");
        std::os::unix::fs::symlink(make("linked"), &link).unwrap();
        assert!(remove(&other, &link).is_empty());
        assert!(other.join("file").exists() && link.join("file").exists());
        let file = dir.path().join("mr-work-file");
        std::fs::write(&file, b"x").unwrap();
        assert!(remove(&file, &dir.path().join("mr-logs-gone")).is_empty());
        assert!(file.exists());
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"not a database at all, just some text").unwrap();
        let err = Journal::resume(&path, &identity(1)).err().unwrap().to_string();
        assert!(err.contains("cannot open it"), "{err}");
    }

    /// A journal without a format (as builds before typed map outputs wrote them) or of
    /// another format is refused, naming OUT, before anything is written to it.
    #[test]
    fn a_journal_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path());
        let journal = Journal::create(&path, &identity(1), dir.path(), dir.path(), true).unwrap();
        journal.close();
        drop(journal);
        assert_eq!(Journal::identity(&path).unwrap(), identity(1), "this build's format");
        let set_format = |format: Option<u32>| {
            let db = Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut meta = tx.open_table(META).unwrap();
                match format {
                    Some(f) => meta.insert(FORMAT, f.to_le_bytes().as_slice()).map(drop).unwrap(),
                    None => meta.remove(FORMAT).map(drop).unwrap(),
                }
            }
            tx.commit().unwrap();
        };
        for (format, found) in [(None, 1), (Some(3), 3)] {
            set_format(format);
            let err = Journal::identity(&path).unwrap_err();
            assert!(err.is_usage(), "{err:?}");
            assert!(matches!(err, Error::JournalFormat { found: f, expected: FORMAT_VERSION, .. } if f == found));
            let text = err.to_string();
            assert!(text.contains(&format!("cannot resume into '{}'", dir.path().display())), "{text}");
            let err = Journal::resume(&path, &identity(1)).err().unwrap();
            assert!(matches!(err, Error::JournalFormat { .. }), "{err:?}");
            assert!(Journal::inspect(&path).is_err());
        }
        let db = Database::open(&path).unwrap();
        let incarnation = read(&db, &path).unwrap().incarnation;
        assert_eq!(incarnation, 0, "a refused resume counts no incarnation");
    }
}
