//! Streaming: map, combine and reduce with any executable, with Hadoop Streaming's
//! conventions. The mapper gets the input records, one per line, on stdin; it writes
//! `key<TAB>value` lines on stdout (a line without a tab is a key with an empty value). The
//! reducer gets its partition's pairs sorted by key as `key<TAB>value` lines on stdin, and
//! what it writes on stdout is the output. A stderr line `reporter:counter:GROUP,NAME,AMOUNT`
//! adds to a user counter. A command that exits non-zero fails the attempt, with the tail of
//! its stderr in the error. Commands run through `sh -c`, one process per attempt.
//!
//! Each command runs in a process group of its own, so that every process it starts is
//! killed with it. In the `mr` binary a guard (`mr stream-guard`, see [`guard`]) stands
//! between the worker and `sh`: it dies with nothing but SIGKILL, learns of the worker's death
//! (`PR_SET_PDEATHSIG`, even when the worker was SIGKILLed), is a subreaper for the command's
//! orphans, and kills the command's group whenever the command ends, the attempt stops or the
//! worker dies.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{
    Job, JobFactory, MapContext, PlanView, Prepared, Record, ReduceContext, SortedPairs, StateReader, UserCounters,
    Values,
};
use crate::error::{Error, Result};
use crate::types::{add_counter, merge_counters};

/// Lines of a command's stderr kept for its error message.
const STDERR_TAIL: usize = 20;

/// The streaming job.
pub struct Streaming {
    mapper: String,
    reducer: String,
    combiner: Option<String>,
    running: Mutex<Option<Process>>,
}

pub(crate) struct Factory;

impl JobFactory for Factory {
    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        super::no_args("streaming", plan.args)?;
        let need = |flag: &str, v: &Option<String>| {
            v.clone().ok_or_else(|| Error::JobArgs {
                job: "streaming".into(),
                message: format!("needs {flag} CMD (e.g. --mapper 'cat' --reducer 'uniq -c')"),
            })
        };
        let mut worker_args = vec![need("--mapper", &plan.options.mapper)?, need("--reducer", &plan.options.reducer)?];
        worker_args.extend(plan.options.combiner.clone());
        Ok(Prepared { worker_args, state: Vec::new() })
    }

    fn build(&self, args: &[String], _state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        match args {
            [mapper, reducer, combiner @ ..] if combiner.len() <= 1 => {
                Ok(Arc::new(Streaming::new(mapper, reducer, combiner.first().map(String::as_str))))
            }
            _ => Err(Error::Job(format!("streaming: malformed worker arguments {args:?}"))),
        }
    }
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
    fn spawn(command: &str) -> Result<Process> {
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

/// Parses `reporter:counter:GROUP,NAME,AMOUNT`.
fn parse_counter(line: &str) -> Option<(&str, &str, u64)> {
    let rest = line.strip_prefix("reporter:counter:")?;
    let mut parts = rest.splitn(3, ',');
    let (group, name, amount) = (parts.next()?, parts.next()?, parts.next()?);
    Some((group, name, amount.trim().parse().ok()?))
}

/// Splits a `key<TAB>value` line; a line without a tab is a key with an empty value.
fn split_pair(line: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'\t', line) {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, b""),
    }
}

impl Streaming {
    /// A streaming job with these commands.
    pub fn new(mapper: &str, reducer: &str, combiner: Option<&str>) -> Streaming {
        Streaming {
            mapper: mapper.to_string(),
            reducer: reducer.to_string(),
            combiner: combiner.map(str::to_string),
            running: Mutex::new(None),
        }
    }

    fn process(&self) -> std::sync::MutexGuard<'_, Option<Process>> {
        // A panic while holding it ended the attempt already; the next setup replaces it.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with_process<T>(&self, f: impl FnOnce(&mut Process) -> Result<T>) -> Result<T> {
        let mut guard = self.process();
        let process = guard.as_mut().ok_or_else(|| Error::Job("streaming: no command is running".into()))?;
        f(process)
    }
}

impl Job for Streaming {
    fn map_setup(&self) -> Result<()> {
        *self.process() = Some(Process::spawn(&self.mapper)?);
        Ok(())
    }

    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        self.with_process(|p| {
            p.write(&[record.bytes])?;
            p.drain(&mut |line| {
                let (k, v) = split_pair(&line);
                ctx.emit(k, v);
            });
            Ok(())
        })
    }

    fn map_cleanup(&self, ctx: &mut MapContext<'_>) -> Result<()> {
        let mut process = self.process().take().ok_or_else(|| Error::Job("streaming: no mapper is running".into()))?;
        let counters = process.finish(&mut |line| {
            let (k, v) = split_pair(&line);
            ctx.emit(k, v);
        })?;
        merge_counters(ctx.counters, &counters);
        Ok(())
    }

    fn reduce_setup(&self) -> Result<()> {
        *self.process() = Some(Process::spawn(&self.reducer)?);
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        self.with_process(|p| {
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
        })
    }

    fn reduce_cleanup(&self, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let mut process = self.process().take().ok_or_else(|| Error::Job("streaming: no reducer is running".into()))?;
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
        self.combiner.is_some()
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
        let Some(command) = &self.combiner else { return Ok(()) };
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
        let mut process = Process::spawn(command)?;
        // A thread feeds stdin while this one reads stdout, so neither pipe can fill up.
        let mut stdin = process.stdin.take().expect("stdin is open");
        let feeder = std::thread::spawn(move || stdin.write_all(&lines).and_then(|_| stdin.flush()));
        let reported = process.finish(&mut |line| {
            let (k, v) = split_pair(&line);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_pairs_parse() {
        assert_eq!(parse_counter("reporter:counter:g,n,12"), Some(("g", "n", 12)));
        assert_eq!(parse_counter("reporter:counter:g,n"), None);
        assert_eq!(parse_counter("hello"), None);
        assert_eq!(split_pair(b"k\tv\tw"), (&b"k"[..], &b"v\tw"[..]));
        assert_eq!(split_pair(b"k"), (&b"k"[..], &b""[..]));
    }
}
