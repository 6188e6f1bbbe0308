//! Planning a job before anything runs: check the job and its inputs, cut the splits, and
//! prepare the output directory. Every bad input is reported here, before any process starts.

use std::path::{Path, PathBuf};

use crate::data::input::{self, InputFormat, Split};
use crate::error::{Error, Result};
use crate::exec::task::TaskSettings;
use crate::job::{PlanView, Prepared, Registry};
use crate::layout::{HISTORY, STEPS, SUCCESS, TEMPORARY};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct JobRequest {
    /// Registry name of the job.
    pub job: String,
    /// The job's own arguments and flags, as [`crate::job::job_argv`] writes them.
    pub job_args: Vec<String>,
    /// How input files are read.
    pub input_format: InputFormat,
    /// Input files and directories.
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    pub output: PathBuf,
    /// Split size in bytes; derived from the input when absent.
    pub split_size: Option<u64>,
    /// Number of reduce tasks; the worker count when absent.
    pub reduce_tasks: Option<u32>,
    /// Number of workers.
    pub workers: u32,
    /// Replace the contents of a non-empty output directory.
    pub overwrite: bool,
    /// Continue the job whose journal is in the output directory (a coordinator was killed).
    pub resume: bool,
    /// Memory and merge settings of the tasks (its `partitions` is set by the plan).
    pub settings: TaskSettings,
}

/// A planned job.
#[derive(Debug)]
pub struct Plan {
    /// The input splits, one map task each.
    pub splits: Vec<Split>,
    /// Number of reduce tasks.
    pub reduce_tasks: u32,
    /// The job's own arguments and flags, for the workers.
    pub job_args: Vec<String>,
    /// What the job needs on the workers.
    pub prepared: Prepared,
    /// Total input bytes.
    pub input_bytes: u64,
    /// The output directory, absolute, created and empty.
    pub output: OutputDir,
    /// How input files are read.
    pub input_format: InputFormat,
    /// Memory and merge settings of the tasks.
    pub settings: TaskSettings,
    /// What the plan chose that the request did not say, for the summary.
    pub notes: Vec<String>,
}

/// The size of a planned job, as `_job.json` records it.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The output directory.
    pub output: &'a Path,
    /// Total input bytes.
    pub input_bytes: u64,
    /// Number of map tasks.
    pub map_tasks: usize,
    /// Number of reduce tasks.
    pub reduce_tasks: u32,
}

impl Plan {
    /// Its size, for `_job.json`.
    pub fn shape(&self) -> Shape<'_> {
        Shape {
            output: self.output.path(),
            input_bytes: self.input_bytes,
            map_tasks: self.splits.len(),
            reduce_tasks: self.reduce_tasks,
        }
    }
}

/// Smallest and largest split sizes chosen automatically.
const MIN_SPLIT: u64 = 1 << 20;
const MAX_SPLIT: u64 = 64 << 20;

/// The absolute form of `path`, without touching the filesystem.
fn absolute(path: &Path) -> Result<PathBuf> {
    if crate::data::storage::is_url(path) {
        return Ok(path.to_path_buf());
    }
    std::path::absolute(path).map_err(Error::io("cannot resolve the path", path))
}

/// Checks a request and plans its job. Creates the output directory.
pub fn plan(request: &JobRequest, registry: &Registry) -> Result<Plan> {
    plan_with(request, registry, |output, inputs| {
        if request.resume {
            OutputDir::resume(output, inputs)
        } else {
            OutputDir::prepare(output, inputs, request.overwrite)
        }
    })
}

/// Plans one step of a multi-step job into `output`, which the job has already claimed (a
/// step's directory under the job's `_temporary`, or, for the last step, the job's output):
/// the request's output, `overwrite` and `resume` are not looked at.
pub fn plan_into(request: &JobRequest, registry: &Registry, output: OutputDir) -> Result<Plan> {
    plan_with(request, registry, |_, _| Ok(output))
}

/// Plans a job, its output directory made by `output` from the output's absolute path and the
/// inputs' once everything else is checked.
fn plan_with(
    request: &JobRequest,
    registry: &Registry,
    output: impl FnOnce(&Path, &[PathBuf]) -> Result<OutputDir>,
) -> Result<Plan> {
    let draft = draft(request, registry)?;
    let output = output(&absolute(&request.output)?, &draft.inputs)?;
    Ok(draft.into_plan(output))
}

/// A plan without its output directory: what `mr submit` plans where the request is made and
/// sends to a cluster, which takes the output directory itself.
#[derive(Debug)]
pub struct Draft {
    /// The inputs, absolute.
    pub inputs: Vec<PathBuf>,
    /// The input splits, one map task each.
    pub splits: Vec<Split>,
    /// Number of reduce tasks.
    pub reduce_tasks: u32,
    /// The job's own arguments and flags, for the workers.
    pub job_args: Vec<String>,
    /// What the job needs on the workers.
    pub prepared: Prepared,
    /// Total input bytes.
    pub input_bytes: u64,
    /// How input files are read.
    pub input_format: InputFormat,
    /// Memory and merge settings of the tasks.
    pub settings: TaskSettings,
    /// What the plan chose that the request did not say, for the summary.
    pub notes: Vec<String>,
}

impl Draft {
    /// Its size, for `_job.json`, writing into `output`.
    pub fn shape<'a>(&self, output: &'a Path) -> Shape<'a> {
        Shape { output, input_bytes: self.input_bytes, map_tasks: self.splits.len(), reduce_tasks: self.reduce_tasks }
    }

    /// The plan of the job, writing into `output`.
    pub fn into_plan(self, output: OutputDir) -> Plan {
        Plan {
            splits: self.splits,
            reduce_tasks: self.reduce_tasks,
            job_args: self.job_args,
            prepared: self.prepared,
            input_bytes: self.input_bytes,
            output,
            input_format: self.input_format,
            settings: self.settings,
            notes: self.notes,
        }
    }
}

/// Checks a request and plans its job, all but its output directory (which it neither checks
/// nor touches).
pub fn draft(request: &JobRequest, registry: &Registry) -> Result<Draft> {
    let factory = registry.get(&request.job)?;
    let args = registry.parse(&request.job, &request.job_args)?;
    // Workers may run in another directory, or on another host: they get absolute paths.
    let inputs: Vec<PathBuf> = request.inputs.iter().map(|p| absolute(p)).collect::<Result<_>>()?;
    // Jobs see each file as reached from the input as given (`in/a.txt` for `--input in`).
    let files = input::discover_as(&inputs, &request.inputs)?;
    let input_bytes: u64 = files.iter().map(|f| f.len).sum();
    let split_size = request.split_size.unwrap_or_else(|| {
        // Four splits per worker keeps every core busy while the last tasks finish.
        (input_bytes / (4 * u64::from(request.workers.max(1)))).clamp(MIN_SPLIT, MAX_SPLIT)
    });
    let format = request.input_format;
    let mut splits = input::plan_splits(&files, split_size, format)?;
    // jsonl errors name the line.
    let numbered = factory.needs_line_numbers(&args) && format == InputFormat::Text;
    if numbered || format == InputFormat::Jsonl {
        input::number_lines(&mut splits)?;
    }
    let mut notes = Vec::new();
    let reduce_tasks = match request.reduce_tasks {
        Some(r) => r,
        None => match factory.reduce_tasks(&args)? {
            Some(r) => r,
            // By default one reduce task per worker, but no more than there are map tasks: a
            // small input does not need thousands of part files.
            None if request.workers as usize > splits.len() => {
                let capped = (splits.len() as u32).max(1);
                tracing::info!(
                    workers = request.workers,
                    reduce_tasks = capped,
                    "reduce tasks capped at the map tasks"
                );
                notes.push(reduce_cap_note(capped, request.workers));
                capped
            }
            None => request.workers.max(1),
        },
    };
    if reduce_tasks == 0 && !factory.allows_map_only() {
        return Err(Error::BadOption {
            flag: "--reduce-tasks 0".into(),
            message: format!(
                "job '{}' needs its reduce (its map output is an intermediate encoding, not output): give 1 or more",
                request.job
            ),
        });
    }
    let view = PlanView {
        args: &args,
        input_format: format,
        splits: &splits,
        reduce_tasks,
        max_record_bytes: request.settings.max_record_bytes,
    };
    let prepared = factory.prepare(&view)?;
    let settings = TaskSettings { partitions: reduce_tasks, ..request.settings };
    Ok(Draft {
        inputs,
        splits,
        reduce_tasks,
        job_args: request.job_args.clone(),
        prepared,
        input_bytes,
        input_format: format,
        settings,
        notes,
    })
}

/// The summary's note when the default reduce count is capped by the number of map tasks.
pub fn reduce_cap_note(reduce_tasks: u32, workers: u32) -> String {
    format!("{reduce_tasks} reduce tasks: one per map task, fewer than the {workers} workers (--reduce-tasks sets it)")
}

/// Whether a name in an output directory is part of a job's output, which `--overwrite`
/// replaces: `_SUCCESS`, `_job.json` (and its temporary file), `_temporary`, `part-*`.
fn is_job_output(name: &std::ffi::OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name == SUCCESS.as_bytes()
        || name == HISTORY.as_bytes()
        || name == format!(".{HISTORY}.tmp").as_bytes()
        || name == TEMPORARY.as_bytes()
        || name.starts_with(b"part-")
}

/// Refuses `--overwrite` of a directory that holds anything but a job's output, naming the
/// first few such entries.
fn check_only_job_output(path: &Path) -> Result<()> {
    let mut foreign = Vec::new();
    for entry in std::fs::read_dir(path).map_err(Error::io("cannot list output directory", path))? {
        let entry = entry.map_err(Error::io("cannot list output directory", path))?;
        if !is_job_output(&entry.file_name()) {
            foreign.push(input::path_text(Path::new(&entry.file_name())).into_owned());
        }
    }
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let more = foreign.len().saturating_sub(5);
    foreign.truncate(5);
    let mut files = foreign.join(", ");
    if more > 0 {
        files.push_str(&format!(" and {more} more"));
    }
    Err(Error::OverwriteForeign { output: path.to_path_buf(), files })
}

/// The job's output directory. Unless [`OutputDir::keep`] is called, dropping it removes
/// everything the job wrote there (and the directory itself if the job created it), so a
/// failed or interrupted job leaves nothing half-written.
#[derive(Debug)]
pub struct OutputDir {
    path: PathBuf,
    created: bool,
    keep: bool,
    /// It holds the journal of a job to continue.
    resuming: bool,
    /// The exclusive lock on the directory, held for the job's life (none for an object store).
    _claim: Option<std::fs::File>,
}

/// The canonical form of `path` where it exists: its deepest existing ancestor resolved
/// (symbolic links, `..`), the rest appended.
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = std::fs::canonicalize(at) {
            return rest.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// Refuses an output directory that holds an input (a later run would find it gone or
/// mixed with output) or lies inside an input directory (a later run over that input would
/// read this job's output as data).
fn check_overlap(output: &Path, inputs: &[PathBuf]) -> Result<()> {
    let out = resolved(output);
    for input in inputs.iter().filter(|i| !crate::data::storage::is_url(i)) {
        let real = std::fs::canonicalize(input).map_err(Error::io("cannot resolve input", input))?;
        if real.starts_with(&out) {
            return Err(Error::OutputOverlapsInput { output: output.to_path_buf(), input: real });
        }
        if real.is_dir() && out.starts_with(&real) {
            return Err(Error::OutputInsideInput { output: output.to_path_buf(), input: input.clone() });
        }
    }
    Ok(())
}

/// Takes the output directory for this job: creates it if it is absent, then holds an
/// exclusive lock (`flock`) on it until the returned file is dropped, at the end of the job.
/// A second job on the same directory, started at the same moment or any time before the
/// first ends, is refused here before it touches anything ([`Error::OutputBusy`]). Returns
/// the lock and whether this call created the directory.
/// What the first checks of a `--resume` found: an output that does not exist yet (prepared,
/// to start afresh), or one that exists, claimed, for the caller to look into.
enum ToResume {
    Afresh(OutputDir),
    Claimed(PathBuf, std::fs::File),
}

/// The first checks of a `--resume`: `output` is a local directory (else
/// [`Error::NothingToResume`] with `url_reason`) holding no input, and is prepared when absent
/// or claimed when present.
fn claim_to_resume(output: &Path, inputs: &[PathBuf], url_reason: &str) -> Result<ToResume> {
    if crate::data::storage::is_url(output) {
        return Err(Error::NothingToResume { output: output.to_path_buf(), reason: url_reason.into() });
    }
    let path = std::path::absolute(output).map_err(Error::io("cannot resolve output directory", output))?;
    check_overlap(&path, inputs)?;
    if !path.exists() {
        tracing::info!(output = %path.display(), "nothing to resume: the job starts afresh");
        return OutputDir::prepare(&path, inputs, false).map(ToResume::Afresh);
    }
    let (lock, _) = claim(&path)?;
    Ok(ToResume::Claimed(path, lock))
}

fn claim(path: &Path) -> Result<(std::fs::File, bool)> {
    use std::os::unix::fs::MetadataExt;
    loop {
        let created = match std::fs::create_dir(path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let parent = path.parent().unwrap_or(path);
                std::fs::create_dir_all(parent).map_err(Error::io("cannot create output directory", parent))?;
                continue;
            }
            Err(e) => return Err(Error::io("cannot create output directory", path)(e)),
        };
        let dir = std::fs::File::open(path).map_err(Error::io("cannot use output directory", path))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::OutputBusy(path.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("cannot lock output directory", path)(e)),
        }
        // The job that held the lock may have removed the directory before it let go: the lock
        // is then on a directory that no longer has this name. Take the one that has it now.
        let held = dir.metadata().map_err(Error::io("cannot use output directory", path))?;
        if !held.is_dir() {
            let not_dir = std::io::Error::from(std::io::ErrorKind::NotADirectory);
            return Err(Error::io("cannot use output directory", path)(not_dir));
        }
        match std::fs::metadata(path) {
            Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => return Ok((dir, created)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot use output directory", path)(e)),
        }
    }
}

impl OutputDir {
    /// Checks and prepares an output directory: absent (created) or empty, or emptied with
    /// `overwrite`; never an input, a parent of one, or inside an input directory. A local
    /// directory is claimed first (`claim`): it is this job's until the guard is dropped.
    pub fn prepare(output: &Path, inputs: &[PathBuf], overwrite: bool) -> Result<OutputDir> {
        if crate::data::storage::is_url(output) {
            return OutputDir::prepare_objects(output, inputs, overwrite);
        }
        let path = std::path::absolute(output).map_err(Error::io("cannot resolve output directory", output))?;
        check_overlap(&path, inputs)?;
        let (lock, created) = claim(&path)?;
        let mut entries = std::fs::read_dir(&path).map_err(Error::io("cannot use output directory", &path))?;
        if entries.next().is_some() {
            let journals = journals(&path);
            if !overwrite {
                if !journals.is_empty() || path.join(TEMPORARY).join(STEPS).is_dir() {
                    return Err(Error::OutputInterrupted(path));
                }
                return Err(Error::OutputNotEmpty(path));
            }
            check_only_job_output(&path)?;
            for journal in journals {
                // A run killed before it committed, replaced rather than resumed: the work and
                // log directories its journal names go with it (a multi-step job's: each step's).
                match crate::control::journal::remove_directories(&journal) {
                    Ok(removed) => {
                        for dir in removed {
                            tracing::info!(dir = %dir.display(), "removed the interrupted job's directory");
                        }
                    }
                    Err(e) => tracing::warn!(
                        "--overwrite: the output held an interrupted job whose directories are not all removed \
                         ({e}); the output is replaced all the same"
                    ),
                }
            }
            clear_dir(&path)?;
        }
        Ok(OutputDir { path, created, keep: false, resuming: false, _claim: Some(lock) })
    }

    /// The output directory of a job to continue (`--resume`): one that holds the job's
    /// journal. It is claimed first, so that the directory of a job still running is refused
    /// before anything in it is touched. Attempt files left in its `_temporary` are removed
    /// (their attempts died with the coordinator); committed part files stay. An absent or
    /// empty directory has nothing to resume: the job starts afresh.
    pub fn resume(output: &Path, inputs: &[PathBuf]) -> Result<OutputDir> {
        let nothing = |reason: &str| Error::NothingToResume { output: output.to_path_buf(), reason: reason.into() };
        let url = "an object-store output keeps no journal, so its jobs cannot be resumed; run without --resume";
        let (path, lock) = match claim_to_resume(output, inputs, url)? {
            ToResume::Afresh(dir) => return Ok(dir),
            ToResume::Claimed(path, lock) => (path, lock),
        };
        let journal = crate::control::journal::path_for(&path);
        if !journal.exists() {
            if path.join(SUCCESS).exists() {
                return Err(nothing(
                    "it holds a committed job (_SUCCESS): there is nothing to resume; choose another output, or \
                     remove it to run the job again",
                ));
            }
            let empty = std::fs::read_dir(&path).map_or(true, |mut entries| entries.next().is_none());
            if !empty {
                return Err(nothing(&format!(
                    "it holds no journal ({}): it is not the output of an interrupted job; choose another output, \
                     or pass --overwrite instead of --resume to replace it",
                    journal.display()
                )));
            }
            tracing::info!(output = %path.display(), "nothing to resume: the job starts afresh");
            return Ok(OutputDir { path, created: false, keep: false, resuming: false, _claim: Some(lock) });
        }
        remove_dead_attempts(&path.join(TEMPORARY))?;
        Ok(OutputDir { path, created: false, keep: false, resuming: true, _claim: Some(lock) })
    }

    /// The output directory of a multi-step job run with `--resume`: one that holds the steps
    /// of an interrupted run (`_temporary/steps`), claimed; each step then resumes from its own
    /// journal ([`OutputDir::step`], [`OutputDir::into_last_step`]). An absent or empty
    /// directory has nothing to resume: the job starts afresh.
    pub fn resume_steps(output: &Path, inputs: &[PathBuf]) -> Result<OutputDir> {
        let nothing = |reason: &str| Error::NothingToResume { output: output.to_path_buf(), reason: reason.into() };
        let url = "an object-store output keeps no journal, so its jobs cannot be resumed";
        let (path, lock) = match claim_to_resume(output, inputs, url)? {
            ToResume::Afresh(dir) => return Ok(dir),
            ToResume::Claimed(path, lock) => (path, lock),
        };
        let steps = path.join(TEMPORARY).join(STEPS);
        let empty = std::fs::read_dir(&path).map_or(true, |mut entries| entries.next().is_none());
        if !steps.is_dir() && !empty {
            return Err(nothing(&if path.join(SUCCESS).exists() {
                "it holds a committed job (_SUCCESS): there is nothing to resume; choose another output, or remove \
                 it to run the job again"
                    .to_string()
            } else {
                format!(
                    "it holds no steps of an interrupted multi-step job ({}): choose another output, or pass \
                     --overwrite instead of --resume to replace it",
                    steps.display()
                )
            }));
        }
        Ok(OutputDir { path, created: false, keep: false, resuming: !empty, _claim: Some(lock) })
    }

    /// The directory of a step of a multi-step job, `OUT/_temporary/steps/step-N`, under the
    /// job's claimed output: it resumes from its journal if it holds one (its dead attempts'
    /// files removed); else whatever it holds is from a run that never journaled it, and is
    /// removed. A failed step's directory is removed when dropped.
    pub fn step(path: &Path) -> Result<OutputDir> {
        let resuming = crate::control::journal::path_for(path).exists();
        if resuming {
            remove_dead_attempts(&path.join(TEMPORARY))?;
        } else {
            if path.exists() {
                std::fs::remove_dir_all(path).map_err(Error::io("cannot remove an unfinished step's output", path))?;
            }
            std::fs::create_dir_all(path).map_err(Error::io("cannot create a step's output directory", path))?;
        }
        Ok(OutputDir { path: path.to_path_buf(), created: true, keep: false, resuming, _claim: None })
    }

    /// A multi-step job's output, made the output of its last step: resumed from the last
    /// step's journal if it holds one (dead attempts' files removed, the steps' outputs kept
    /// until the commit removes `_temporary`).
    pub fn into_last_step(mut self) -> Result<OutputDir> {
        self.resuming = crate::control::journal::path_for(&self.path).exists();
        if self.resuming {
            remove_dead_attempts(&self.path.join(TEMPORARY))?;
        }
        Ok(self)
    }

    /// True if it holds the steps of an interrupted multi-step job, to continue.
    pub fn holds_steps(&self) -> bool {
        self.path.join(TEMPORARY).join(STEPS).is_dir()
    }

    /// True if it holds the journal of a job to continue.
    pub fn resuming(&self) -> bool {
        self.resuming
    }

    /// True if the job created it (and removes it if it fails).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Leaves it as it is when dropped: a job that could not be resumed did not write to it.
    pub fn leave_alone(&mut self) {
        self.keep = true;
    }

    /// Records that the job created it, as the journal of a resumed job says.
    pub fn set_created(&mut self, created: bool) {
        self.created = created;
    }

    /// An output prefix in an object store: no object under it, or all deleted with
    /// `overwrite`; never a prefix of an input.
    fn prepare_objects(output: &Path, inputs: &[PathBuf], overwrite: bool) -> Result<OutputDir> {
        let url = output.to_string_lossy().trim_end_matches('/').to_string();
        for input in inputs {
            let input_url = input.to_string_lossy();
            let input_url = input_url.trim_end_matches('/');
            if input_url == url || input_url.starts_with(&format!("{url}/")) {
                return Err(Error::OutputOverlapsInput { output: PathBuf::from(&url), input: input.clone() });
            }
            if url.starts_with(&format!("{input_url}/")) {
                return Err(Error::OutputInsideInput { output: PathBuf::from(&url), input: input.clone() });
            }
        }
        let prefix = crate::data::storage::Object::parse(&url)?;
        if !prefix.is_empty()? {
            if !overwrite {
                return Err(Error::OutputNotEmpty(PathBuf::from(&url)));
            }
            prefix.delete_all()?;
        }
        Ok(OutputDir { path: PathBuf::from(url), created: true, keep: false, resuming: false, _claim: None })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The job committed: keep its output.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if crate::data::storage::is_url(&self.path) {
            // Everything under the prefix is this job's: it was empty when the job started.
            if let Ok(prefix) = crate::data::storage::Object::parse(&self.path.to_string_lossy()) {
                let _ = prefix.delete_all();
            }
            return;
        }
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
            return;
        }
        let _ = std::fs::remove_dir_all(self.path.join(TEMPORARY));
        let _ = std::fs::remove_file(self.path.join(SUCCESS));
        if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with("part-") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Removes what dead attempts left in a `_temporary` directory: everything but the journal and
/// a multi-step job's steps.
fn remove_dead_attempts(tmp: &Path) -> Result<()> {
    for entry in std::fs::read_dir(tmp).map_err(Error::io("cannot list", tmp))? {
        let entry = entry.map_err(Error::io("cannot list", tmp))?;
        let name = entry.file_name();
        if name != crate::control::journal::FILE && name != STEPS {
            let p = entry.path();
            let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed.map_err(Error::io("cannot remove a dead attempt's file", &p))?;
        }
    }
    Ok(())
}

/// The journals of an interrupted job in an output directory: its own, and those of a
/// multi-step job's steps.
fn journals(path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = vec![crate::control::journal::path_for(path)];
    if let Ok(steps) = std::fs::read_dir(path.join(TEMPORARY).join(STEPS)) {
        let mut dirs: Vec<PathBuf> = steps.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        found.extend(dirs.iter().map(|dir| crate::control::journal::path_for(dir)));
    }
    found.retain(|journal| journal.exists());
    found
}

fn clear_dir(path: &Path) -> Result<()> {
    for entry in std::fs::read_dir(path).map_err(Error::io("cannot list output directory", path))? {
        let entry = entry.map_err(Error::io("cannot list output directory", path))?;
        let p = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let removed = if is_dir { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        removed.map_err(Error::io("cannot remove (for --overwrite)", &p))?;
    }
    Ok(())
}
