//! Streaming: map, combine and reduce with any executable, with Hadoop Streaming's
//! conventions. The mapper gets the input records, one per line, on stdin; it writes
//! `key<TAB>value` lines on stdout (a line without a tab is a key with an empty value). The
//! reducer gets its partition's pairs sorted by key as `key<TAB>value` lines on stdin, and
//! what it writes on stdout is the output. A stderr line `reporter:counter:GROUP,NAME,AMOUNT`
//! adds to a user counter, and `reporter:status:MESSAGE` sets the attempt's status message. A
//! command that exits non-zero fails the attempt, with the tail of its stderr in the error.
//! Commands run through `sh -c`, in the attempt's working directory, with Hadoop Streaming's
//! environment: one reducer per attempt, one mapper per input file of the attempt's split.
//!
//! Each command runs in a process group of its own, so that every process it starts is
//! killed with it. In the `mr` binary a guard (`mr stream-guard`, see [`guard`]) stands
//! between the worker and `sh`: it dies with nothing but SIGKILL, learns of the worker's death
//! (`PR_SET_PDEATHSIG`, even when the worker was SIGKILLed), is a subreaper for the command's
//! orphans, and kills the command's group whenever the command ends, the attempt stops or the
//! worker dies.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::streaming_args::{CONF_KEY, Conf, ShippedFile, StreamingArgs};
use super::{
    AttemptInfo, InputRange, Job, JobFactory, MapContext, PlanView, Prepared, Record, ReduceContext, SortedPairs,
    StateReader, UserCounters, Values,
};
use crate::error::{Error, Result};
use crate::types::{add_counter, merge_counters};

/// Lines of a command's stderr kept for its error message.
const STDERR_TAIL: usize = 20;

/// The running attempt's status message, set by its commands' stderr threads.
type Status = Arc<Mutex<String>>;

/// The streaming job.
pub struct Streaming {
    conf: Conf,
    /// The running attempt's last `reporter:status:` message.
    status: Status,
    /// The shipped files (`--files`): their bytes until an attempt writes them into the
    /// worker's cache, then their place there.
    files: Mutex<Vec<Shipped>>,
    running: Mutex<Running>,
}

/// One file of `--files` on this worker.
struct Shipped {
    file: ShippedFile,
    /// Its bytes, fetched when the job was built (none for an object store's file).
    bytes: Option<Vec<u8>>,
    /// Its copy in the worker's cache, once written.
    cached: Option<PathBuf>,
}

/// The attempt in progress: where it runs, and its command.
#[derive(Default)]
struct Running {
    attempt: Option<AttemptInfo>,
    /// The attempt's working directory.
    dir: Option<PathBuf>,
    process: Option<Process>,
    /// The input file of the running mapper.
    file: Option<String>,
    /// Whether a mapper has run in this attempt.
    mapped: bool,
}

pub(crate) struct Factory;

impl Factory {
    fn args(matches: &clap::ArgMatches) -> Result<StreamingArgs> {
        use clap::FromArgMatches;
        StreamingArgs::from_arg_matches(matches).map_err(|e| Error::Job(format!("streaming: its arguments: {e}")))
    }
}

impl JobFactory for Factory {
    fn command(&self, command: clap::Command) -> clap::Command {
        use clap::Args;
        StreamingArgs::augment_args(command)
            .about("Map, combine and reduce with commands, as Hadoop Streaming does")
            .long_about(None)
    }

    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        let args = Factory::args(plan.args)?;
        // A map-only job (--reduce-tasks 0) needs no reducer.
        if args.reducer.is_none() && plan.reduce_tasks > 0 {
            return Err(Error::JobArgs {
                job: "streaming".into(),
                message: "needs --reducer CMD (e.g. --mapper 'cat' --reducer 'uniq -c'), or --reduce-tasks 0".into(),
            });
        }
        let (conf, mut state) = super::streaming_args::prepare(&args, plan)?;
        let conf = serde_json::to_vec(&conf).map_err(|e| Error::Job(format!("streaming: {e}")))?;
        state.push((CONF_KEY.to_string(), conf));
        Ok(Prepared { state })
    }

    fn reduce_tasks(&self, args: &clap::ArgMatches) -> Result<Option<u32>> {
        super::streaming_args::reduce_tasks(&Factory::args(args)?.jobconf)
    }

    fn steps(&self, args: &clap::ArgMatches) -> Result<Option<Vec<super::JobStep>>> {
        let args = Factory::args(args)?;
        let Some(path) = &args.steps else { return Ok(None) };
        let parse_step = |step: &[String]| {
            let command = self.command(clap::Command::new("streaming")).no_binary_name(true);
            let matches = command.try_get_matches_from(step).map_err(|e| Error::JobArgs {
                job: "streaming".into(),
                message: e.render().to_string().trim_start_matches("error: ").trim_end().to_string(),
            })?;
            Factory::args(&matches)
        };
        super::streaming_steps::load(path, &args, &parse_step).map(Some)
    }

    fn build(&self, _args: &clap::ArgMatches, state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        let found = state.get(&[CONF_KEY.to_string()])?.pop().flatten();
        let bytes =
            found.ok_or_else(|| Error::Job(format!("streaming: the coordinator does not hold '{CONF_KEY}'")))?;
        let conf: Conf = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Job(format!("streaming: malformed configuration in '{CONF_KEY}': {e}")))?;
        let mut files = Vec::new();
        for file in &conf.files {
            let bytes = if file.from_store {
                None
            } else {
                // One key per call: a file may take most of a message.
                let found = state.get(std::slice::from_ref(&file.source))?.pop().flatten();
                let bytes = found
                    .ok_or_else(|| Error::Job(format!("streaming: the coordinator does not hold '{}'", file.name)))?;
                check_file(file, &bytes)?;
                Some(bytes)
            };
            files.push(Shipped { file: file.clone(), bytes, cached: None });
        }
        Ok(Arc::new(Streaming {
            conf,
            status: Status::default(),
            files: Mutex::new(files),
            running: Mutex::new(Running::default()),
        }))
    }
}

/// Checks a shipped file's bytes against its size and checksum.
fn check_file(file: &ShippedFile, bytes: &[u8]) -> Result<()> {
    let sum = super::streaming_args::checksum(bytes);
    if bytes.len() as u64 != file.len || sum != file.checksum {
        return Err(Error::Job(format!(
            "streaming: shipped file '{}' arrived with {} bytes and checksum {sum}, not {} bytes and {}",
            file.name,
            bytes.len(),
            file.len,
            file.checksum
        )));
    }
    Ok(())
}

/// A running command: its stdin, a thread reading its stdout, and one collecting stderr.
struct Process {
    command: String,
    child: Child,
    stdin: Option<std::io::BufWriter<ChildStdin>>,
    lines: Receiver<Vec<u8>>,
    stdout: Option<JoinHandle<std::io::Result<()>>>,
    stderr: Option<JoinHandle<(Vec<String>, UserCounters)>>,
}

/// The program that runs each command under a guard: the `mr` binary, set by its command line
/// at start. Without one (a program that only links the library), `sh` runs directly, in a
/// process group of its own, killed with the attempt.
static GUARD: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Makes streaming commands run under `exe stream-guard` (see [`guard`]).
pub fn set_guard(exe: std::path::PathBuf) {
    let _ = GUARD.set(exe);
}

impl Process {
    /// Starts `command` with these variables added to this process's environment, in `dir`
    /// (none: this process's working directory).
    fn spawn(command: &str, env: &[(String, String)], dir: Option<&Path>, status: Status) -> Result<Process> {
        let parent = std::process::id();
        let mut cmd = match GUARD.get() {
            Some(exe) => {
                let mut cmd = Command::new(exe);
                cmd.arg("stream-guard").arg("--parent").arg(parent.to_string()).arg("--").arg(command);
                cmd
            }
            None => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c").arg(command);
                cmd
            }
        };
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        if let Some(dir) = dir {
            cmd.current_dir(dir);
        }
        // SAFETY: only umask, setpgid, prctl, getppid and kill, which are async-signal-safe, run
        // between fork and exec.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                use nix::sys::signal::Signal;
                // The command creates files as the user's umask says, not privately.
                crate::data::storage::restore_umask();
                nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
                // The guard cleans up when the worker dies; a bare `sh` just dies.
                let signal = if GUARD.get().is_some() { Signal::SIGTERM } else { Signal::SIGKILL };
                nix::sys::prctl::set_pdeathsig(signal)?;
                if nix::unistd::getppid().as_raw() as u32 != parent {
                    nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGKILL)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Job(format!("streaming: cannot start `{command}`: {e}")))?;
        let stdin = child.stdin.take().map(std::io::BufWriter::new);
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = channel();
        let stdout = std::thread::spawn(move || {
            let mut reader = BufReader::new(out);
            loop {
                let mut line = Vec::new();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    return Ok(());
                }
                if line.ends_with(b"\n") {
                    line.pop();
                }
                if tx.send(line).is_err() {
                    return Ok(());
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut tail = Vec::new();
            let mut counters = UserCounters::new();
            for line in BufReader::new(err).lines().map_while(std::result::Result::ok) {
                if let Some((group, name, amount)) = parse_counter(&line) {
                    add_counter(&mut counters, group, name, amount);
                    continue;
                }
                if let Some(message) = parse_status(&line) {
                    *status.lock().unwrap_or_else(|p| p.into_inner()) = message.to_string();
                    continue;
                }
                if tail.len() == STDERR_TAIL {
                    tail.remove(0);
                }
                tail.push(line);
            }
            (tail, counters)
        });
        Ok(Process { command: command.to_string(), child, stdin, lines, stdout: Some(stdout), stderr: Some(stderr) })
    }

    /// Writes one line to the command's stdin. A command that stopped reading fails here.
    fn write(&mut self, parts: &[&[u8]]) -> Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin is open until finish");
        let result = parts.iter().try_for_each(|p| stdin.write_all(p)).and_then(|_| stdin.write_all(b"\n"));
        match result {
            Ok(()) => Ok(()),
            Err(e) => Err(match self.finish(&mut |_| {}) {
                Err(exit) => exit,
                Ok(_) => Error::Job(format!("streaming: cannot write to `{}`: {e}", self.command)),
            }),
        }
    }

    /// Passes the lines the command has written so far to `out`.
    fn drain(&mut self, out: &mut dyn FnMut(Vec<u8>)) {
        while let Ok(line) = self.lines.try_recv() {
            out(line);
        }
    }

    /// Closes stdin, passes every remaining line to `out`, and waits for the command. Returns
    /// its counters, or an error with the tail of its stderr if it failed.
    fn finish(&mut self, out: &mut dyn FnMut(Vec<u8>)) -> Result<UserCounters> {
        let closed = self.stdin.take().map(|mut s| s.flush());
        for line in self.lines.iter() {
            out(line);
        }
        let read = self.stdout.take().map(|t| t.join());
        let (tail, counters) = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        let status =
            self.child.wait().map_err(|e| Error::Job(format!("streaming: waiting for `{}`: {e}", self.command)))?;
        // What the command left running in its group goes with it (the guard did it already).
        self.kill_group();
        if !status.success() {
            let stderr =
                if tail.is_empty() { "no stderr".to_string() } else { format!("stderr:\n{}", tail.join("\n")) };
            return Err(Error::Job(format!("streaming command `{}` failed ({status}); {stderr}", self.command)));
        }
        if let Some(Ok(Err(e))) = read {
            return Err(Error::Job(format!("streaming: reading the output of `{}`: {e}", self.command)));
        }
        if let Some(Err(e)) = closed
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(Error::Job(format!("streaming: writing to `{}`: {e}", self.command)));
        }
        Ok(counters)
    }
}

impl Process {
    /// Kills the command's process group: the guard's, which makes the guard kill the
    /// command's own group and exit, or the bare `sh`'s.
    fn kill_group(&self) {
        use nix::sys::signal::{Signal, killpg};
        let group = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let signal = if GUARD.get().is_some() { Signal::SIGTERM } else { Signal::SIGKILL };
        let _ = killpg(group, signal);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

/// `mr stream-guard --parent PID -- COMMAND`: runs `sh -c COMMAND` in a process group of its
/// own, with this process's stdin, stdout and stderr, and returns how it ended once it has and
/// its group is killed. The guard is a subreaper (orphans of the command become its children),
/// and its parent (`PID`, the worker) set SIGTERM as its parent-death signal: on SIGTERM,
/// SIGINT or SIGHUP, or if the parent is already gone, it kills the command's group and its
/// own remaining children, and returns `None`.
pub fn guard(parent: u32, command: &str) -> Result<Option<std::process::ExitStatus>> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, sigprocmask};
    use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let fail = |what: &str, e: nix::Error| Error::Job(format!("streaming guard: {what}: {e}"));
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGCHLD] {
        signals.add(s);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).map_err(|e| fail("cannot block signals", e))?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|e| fail("cannot become a subreaper", e))?;
    if nix::unistd::getppid().as_raw() as u32 != parent {
        return Ok(None);
    }
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    // SAFETY: only setpgid and sigprocmask, which are async-signal-safe, run between fork and
    // exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))?;
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::Job(format!("streaming: cannot start `{command}`: {e}")))?;
    let sh = nix::unistd::Pid::from_raw(child.id() as i32);
    // The pipes stay open only in the command's processes, so that their ends mean its end.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors, which this process no longer uses.
            unsafe { nix::libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let status = loop {
        match signals.wait().map_err(|e| fail("cannot wait for signals", e))? {
            Signal::SIGCHLD => {
                let mut ended = None;
                loop {
                    match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(pid, code)) if pid == sh => {
                            ended = Some(ExitStatusExt::from_raw(code << 8))
                        }
                        Ok(WaitStatus::Signaled(pid, signal, _)) if pid == sh => {
                            ended = Some(ExitStatusExt::from_raw(signal as i32))
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                if let Some(status) = ended {
                    break Some(status);
                }
            }
            _ => break None,
        }
    };
    let _ = killpg(sh, Signal::SIGKILL);
    kill_children();
    Ok(status)
}

/// Kills and reaps every remaining child of this process (a subreaper's adopted orphans).
fn kill_children() {
    use nix::sys::wait::waitpid;
    let me = std::process::id();
    let path = format!("/proc/{me}/task/{me}/children");
    for _ in 0..100 {
        let children: Vec<i32> = std::fs::read_to_string(&path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if children.is_empty() {
            return;
        }
        for pid in children {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Parses `reporter:status:MESSAGE`.
fn parse_status(line: &str) -> Option<&str> {
    line.strip_prefix("reporter:status:")
}

/// Parses `reporter:counter:GROUP,NAME,AMOUNT`.
fn parse_counter(line: &str) -> Option<(&str, &str, u64)> {
    let rest = line.strip_prefix("reporter:counter:")?;
    let mut parts = rest.splitn(3, ',');
    let (group, name, amount) = (parts.next()?, parts.next()?, parts.next()?);
    Some((group, name, amount.trim().parse().ok()?))
}

/// Splits a line into its key, the first `fields` fields separated by `separator`, and its
/// value, the rest; a line with fewer fields is a key with an empty value.
fn split_key(line: &[u8], fields: u32, separator: u8) -> (&[u8], &[u8]) {
    match memchr::memchr_iter(separator, line).nth(fields.max(1) as usize - 1) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, b""),
    }
}

impl Streaming {
    /// A streaming job with these commands.
    pub fn new(mapper: &str, reducer: &str, combiner: Option<&str>) -> Streaming {
        let conf = Conf {
            mapper: Some(mapper.to_string()),
            reducer: Some(reducer.to_string()),
            combiner: combiner.map(str::to_string),
            key_fields: 1,
            separator: b'\t',
            key_separator: b'\t',
            job_id: "job_0000000000000_0001".into(),
            ..Conf::default()
        };
        Streaming {
            conf,
            status: Status::default(),
            files: Mutex::new(Vec::new()),
            running: Mutex::new(Running::default()),
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, Running> {
        // A panic while holding it ended the attempt already; the next attempt replaces it.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Splits a line the mapper or combiner wrote into key and value.
    fn pair<'l>(&self, line: &'l [u8]) -> (&'l [u8], &'l [u8]) {
        split_key(line, self.conf.key_fields, self.conf.separator)
    }

    /// The environment of a command of this attempt, as Hadoop Streaming sets it: the task's
    /// ids and, for a mapper, its input file; then `-D` properties and `--cmdenv`.
    fn env(&self, attempt: &AttemptInfo, input: Option<&InputRange>) -> Vec<(String, String)> {
        let digits = self.conf.job_id.strip_prefix("job_").unwrap_or(&self.conf.job_id);
        let kind = if attempt.is_map { "m" } else { "r" };
        let task = format!("{digits}_{kind}_{:06}", attempt.task);
        let mut env = vec![
            ("mapreduce_job_id".to_string(), self.conf.job_id.clone()),
            ("mapreduce_job_maps".into(), self.conf.maps.to_string()),
            ("mapreduce_job_reduces".into(), self.conf.reduces.to_string()),
            ("mapreduce_task_id".into(), format!("task_{task}")),
            ("mapreduce_task_attempt_id".into(), format!("attempt_{task}_{}", attempt.attempt)),
            ("mapreduce_task_partition".into(), attempt.task.to_string()),
            ("mapreduce_task_ismap".into(), attempt.is_map.to_string()),
        ];
        if let Some(input) = input {
            let uri = if input.path.starts_with('/') { format!("file://{}", input.path) } else { input.path.clone() };
            env.push(("mapreduce_map_input_file".into(), uri));
            env.push(("mapreduce_map_input_start".into(), input.start.to_string()));
            env.push(("mapreduce_map_input_length".into(), input.length.to_string()));
        }
        env.extend(self.conf.env.iter().cloned());
        env
    }

    /// Starts `command` for the running attempt, in its working directory.
    fn spawn(&self, running: &Running, command: &str, input: Option<&InputRange>) -> Result<Process> {
        let attempt = running.attempt.as_ref().ok_or_else(|| Error::Job("streaming: no attempt is running".into()))?;
        Process::spawn(command, &self.env(attempt, input), running.dir.as_deref(), self.status.clone())
    }

    /// Writes the shipped files into the worker's cache (`WORK/streaming-files/CHECKSUM`),
    /// once per worker, and returns each file's name and cached path.
    fn cached_files(&self, work_dir: &Path) -> Result<Vec<(String, PathBuf)>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let cache = work_dir.join("streaming-files");
        let mut out = Vec::new();
        for shipped in files.iter_mut() {
            if shipped.cached.is_none() {
                let bytes = match shipped.bytes.take() {
                    Some(bytes) => bytes,
                    None => {
                        let mut bytes = Vec::new();
                        let source = Path::new(&shipped.file.source);
                        crate::data::storage::open(source)?
                            .read_to_end(&mut bytes)
                            .map_err(Error::io("cannot read shipped file", source))?;
                        check_file(&shipped.file, &bytes)?;
                        bytes
                    }
                };
                std::fs::create_dir_all(&cache).map_err(Error::io("cannot create", &cache))?;
                let path = cache.join(&shipped.file.checksum);
                let tmp = cache.join(format!("{}.tmp", shipped.file.checksum));
                std::fs::write(&tmp, &bytes).map_err(Error::io("cannot write", &tmp))?;
                std::fs::rename(&tmp, &path).map_err(Error::io("cannot rename", &tmp))?;
                shipped.cached = Some(path);
            }
            out.push((shipped.file.name.clone(), shipped.cached.clone().expect("cached above")));
        }
        Ok(out)
    }

    /// Finishes the running mapper, if any, passing its last pairs to `ctx`.
    fn finish_mapper(&self, running: &mut Running, ctx: &mut MapContext<'_>) -> Result<()> {
        if let Some(mut process) = running.process.take() {
            let counters = process.finish(&mut |line| {
                let (k, v) = self.pair(&line);
                ctx.emit(k, v);
            })?;
            merge_counters(ctx.counters, &counters);
        }
        running.file = None;
        Ok(())
    }

    /// Starts a mapper for input file `path` (none: the attempt's first), after finishing the
    /// one of the previous file: each mapper sees one file, as its environment says.
    fn start_mapper(&self, running: &mut Running, path: Option<&str>, ctx: &mut MapContext<'_>) -> Result<()> {
        self.finish_mapper(running, ctx)?;
        let Some(command) = &self.conf.mapper else { return Ok(()) };
        let inputs = running.attempt.as_ref().map(|a| a.inputs.as_slice()).unwrap_or_default();
        let input = match path {
            Some(path) => inputs.iter().find(|r| r.path == path).cloned(),
            None => inputs.first().cloned(),
        };
        running.process = Some(self.spawn(running, command, input.as_ref())?);
        running.file = path.map(str::to_string);
        running.mapped = true;
        Ok(())
    }
}

impl Job for Streaming {
    fn attempt_start(&self, attempt: &AttemptInfo) -> Result<()> {
        let files = self.cached_files(&attempt.work_dir)?;
        let kind = if attempt.is_map { "m" } else { "r" };
        let dir = attempt.work_dir.join(format!("task-{kind}-{:05}-{}", attempt.task, attempt.attempt));
        // Fresh for each attempt: what an earlier attempt of this number left is gone.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(Error::io("cannot create working directory", &dir))?;
        for (name, cached) in files {
            let link = dir.join(&name);
            std::os::unix::fs::symlink(&cached, &link).map_err(Error::io("cannot link shipped file", &link))?;
        }
        *self.running() = Running { attempt: Some(attempt.clone()), dir: Some(dir), ..Running::default() };
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(())
    }

    fn status(&self) -> Option<String> {
        Some(self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()).filter(|s| !s.is_empty())
    }

    fn attempt_end(&self) {
        let ended = std::mem::take(&mut *self.running());
        // Its command, if still running, is killed before its directory goes.
        drop(ended.process);
        if let Some(dir) = ended.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        if self.conf.mapper.is_none() {
            let (k, v) = self.pair(record.bytes);
            ctx.emit(k, v);
            return Ok(());
        }
        let mut running = self.running();
        if running.process.is_none() || running.file.as_deref() != Some(record.path) {
            self.start_mapper(&mut running, Some(record.path), ctx)?;
        }
        let process = running.process.as_mut().ok_or_else(|| Error::Job("streaming: no mapper is running".into()))?;
        process.write(&[record.bytes])?;
        process.drain(&mut |line| {
            let (k, v) = self.pair(&line);
            ctx.emit(k, v);
        });
        Ok(())
    }

    fn map_cleanup(&self, ctx: &mut MapContext<'_>) -> Result<()> {
        let mut running = self.running();
        // A split without a record still runs its mapper, on empty input, as Hadoop does.
        if !running.mapped && self.conf.mapper.is_some() {
            self.start_mapper(&mut running, None, ctx)?;
        }
        self.finish_mapper(&mut running, ctx)
    }

    fn reduce_setup(&self) -> Result<()> {
        let mut running = self.running();
        let command = self.conf.reducer.as_deref().ok_or_else(|| Error::Job("streaming: no reducer".into()))?;
        running.process = Some(self.spawn(&running, command, None)?);
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let mut running = self.running();
        let p = running.process.as_mut().ok_or_else(|| Error::Job("streaming: no reducer is running".into()))?;
        while let Some(value) = values.next_value() {
            if value.is_empty() { p.write(&[key])? } else { p.write(&[key, b"\t", value])? }
        }
        let mut result = Ok(());
        p.drain(&mut |line| {
            if result.is_ok() {
                result = ctx.write_record(&line, b"\n");
            }
        });
        result
    }

    fn reduce_cleanup(&self, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let mut process =
            self.running().process.take().ok_or_else(|| Error::Job("streaming: no reducer is running".into()))?;
        let mut result = Ok(());
        let counters = process.finish(&mut |line| {
            if result.is_ok() {
                result = ctx.write_record(&line, b"\n");
            }
        })?;
        result?;
        merge_counters(ctx.counters, &counters);
        Ok(())
    }

    fn has_combiner(&self) -> bool {
        self.conf.combiner.is_some()
    }

    /// Values pass through: the combiner command runs once per task, in `combine_sorted`.
    fn combine(&self, _key: &[u8], values: &mut Values<'_>, out: &mut dyn FnMut(&[u8])) -> Result<()> {
        while let Some(v) = values.next_value() {
            out(v);
        }
        Ok(())
    }

    fn combine_sorted(
        &self,
        input: &mut dyn SortedPairs,
        out: &mut dyn FnMut(&[u8], &[u8]),
        counters: &mut UserCounters,
    ) -> Result<()> {
        let Some(command) = &self.conf.combiner else { return Ok(()) };
        let mut lines = Vec::new();
        while let Some(key) = input.next_key() {
            let key = key.to_vec();
            while let Some(value) = input.next_value() {
                lines.extend_from_slice(&key);
                if !value.is_empty() {
                    lines.push(b'\t');
                    lines.extend_from_slice(value);
                }
                lines.push(b'\n');
            }
        }
        let mut process = self.spawn(&self.running(), command, None)?;
        // A thread feeds stdin while this one reads stdout, so neither pipe can fill up.
        let mut stdin = process.stdin.take().expect("stdin is open");
        let feeder = std::thread::spawn(move || stdin.write_all(&lines).and_then(|_| stdin.flush()));
        let reported = process.finish(&mut |line| {
            let (k, v) = self.pair(&line);
            out(k, v);
        })?;
        merge_counters(counters, &reported);
        match feeder.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Ok(Err(e)) => Err(Error::Job(format!("streaming: writing to the combiner: {e}"))),
            Err(_) => Err(Error::Job("streaming: the combiner's input thread panicked".into())),
        }
    }

    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        match self.conf.partition_fields {
            Some(fields) => {
                crate::job::partition::partition(split_key(key, fields, self.conf.key_separator).0, partitions)
            }
            None => crate::job::partition::partition(key, partitions),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_pairs_parse() {
        assert_eq!(parse_counter("reporter:counter:g,n,12"), Some(("g", "n", 12)));
        assert_eq!(parse_counter("reporter:counter:g,n"), None);
        assert_eq!(parse_counter("hello"), None);
        assert_eq!(parse_status("reporter:status:halfway: 50%"), Some("halfway: 50%"));
        assert_eq!(parse_status("status:x"), None);
        assert_eq!(split_key(b"k\tv\tw", 1, b'\t'), (&b"k"[..], &b"v\tw"[..]));
        assert_eq!(split_key(b"k", 1, b'\t'), (&b"k"[..], &b""[..]));
        assert_eq!(split_key(b"a\tb\tc\td", 2, b'\t'), (&b"a\tb"[..], &b"c\td"[..]));
        assert_eq!(split_key(b"a\tb", 3, b'\t'), (&b"a\tb"[..], &b""[..]));
        assert_eq!(split_key(b"11.12.1.2", 2, b'.'), (&b"11.12"[..], &b"1.2"[..]));
    }
}
