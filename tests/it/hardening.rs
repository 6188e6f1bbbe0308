//! Hangs, leftovers and holes that a hostile client or a careless operator could cause: an idle
//! connection to the status server, a paused `mr run`, attempts still running when the job
//! commits, processes and directories left behind, an empty token, and file permissions.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cluster::free_port;
use crate::harness::{Background, Dir, assert_same_output, mr, run_fail, run_ok, summary, tagged_processes, wait_for};

/// A shell loop that waits until `file` exists.
fn wait_until(file: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.05; done", file.display())
}

/// Words on a few lines in each of `files` files.
fn input(dir: &Dir, files: usize) -> PathBuf {
    for f in 0..files {
        dir.write(
            &format!("in/{f}.txt"),
            (0..400).map(|i| format!("w{} x{} line {f}\n", i % 31, i % 7)).collect::<String>(),
        );
    }
    dir.path("in")
}

/// Waits for `child` to exit, for at most `secs` seconds; kills it and fails if it does not.
fn exits_within(child: &mut std::process::Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Entries of a directory whose names start with `prefix`.
fn entries(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> =
        read.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).map(|e| e.path()).collect();
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_idle_connection_to_the_status_server_does_not_hold_the_end_of_the_job() {
    let dir = Dir::new();
    let input = input(&dir, 1);
    let go = dir.path("go");
    let mapper = format!("{}; cat", wait_until(&go));
    let addr = format!("127.0.0.1:{}", free_port());
    let out = dir.path("out");
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", &mapper, "--reducer", "cat", "-w", "1", "-q", "--http", &addr])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&out);
    let mut job = Background::start(cmd, &dir, "idle-status");
    wait_for(30, "the status server", || std::net::TcpStream::connect(&addr).is_ok());
    // A request that never ends: no blank line after its headers.
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /api/v1/job HTTP/1.1\r\nHost: mr\r\n").unwrap();
    std::fs::write(&go, "").unwrap();
    let status = exits_within(&mut job.child, 20, "mr run, with an idle status connection open");
    assert!(status.success(), "{status}");
    assert!(out.join("_job.json").is_file(), "no _job.json");
    drop(idle);
    let (_, _, stderr) = job.finish();
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn an_empty_token_is_no_token() {
    let dir = Dir::new();
    let input = input(&dir, 1);
    let go = dir.path("go");
    let mapper = format!("{}; cat", wait_until(&go));
    let port = free_port();
    let out = dir.path("out");
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", &mapper, "--reducer", "cat", "-w", "1", "-q"])
        .args(["--listen", &format!("0.0.0.0:{port}")])
        .env("MR_TOKEN", "")
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&out);
    let job = Background::start(cmd, &dir, "empty-token");
    // A caller without the token is refused: the job's own workers got a random one.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}");
        let channel = mr::worker::connect(&url, Duration::from_secs(30), None).await.unwrap();
        let mut state = mr::net::rpc::pb::state_client::StateClient::new(mr::net::rpc::authenticated(
            channel,
            mr::net::rpc::Token::new("").unwrap(),
        ));
        state.get_state(mr::net::rpc::pb::GetStateRequest { keys: vec![] }).await
    });
    let code = refused.as_ref().map_err(|s| s.code());
    assert_eq!(code.err(), Some(tonic::Code::Unauthenticated), "{refused:?}");
    std::fs::write(&go, "").unwrap();
    let (status, _, stderr) = job.finish();
    assert!(status.success(), "{stderr}");

    // A worker whose Shuffle service would serve other hosts needs a token, whatever its value.
    for token in [Some(""), None] {
        let mut cmd = mr();
        cmd.args(["worker", "--coordinator", "http://127.0.0.1:9", "--advertise", "mr-host.invalid"]);
        if let Some(token) = token {
            cmd.env("MR_TOKEN", token);
        }
        let err = run_fail(&mut cmd);
        assert!(err.contains("without a token") && err.contains("MR_TOKEN"), "{err}");
    }
}

#[test]
fn a_token_on_the_command_line_is_warned_about_and_a_token_file_works() {
    let dir = Dir::new();
    // Nothing listens there: the worker gives up at once, after the warning.
    let out = mr()
        .args(["worker", "--coordinator", "http://127.0.0.1:9", "--connect-timeout", "100ms", "--token", "s3cret"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: --token on the command line") && stderr.contains("--token-file"), "{stderr}");
    let file = dir.write("token", "s3cret\n");
    let out = mr()
        .args(["worker", "--coordinator", "http://127.0.0.1:9", "--connect-timeout", "100ms", "--token-file"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning") && stderr.contains("cannot reach"), "{stderr}");
}

/// `mr run streaming` from `input` into `out` with `cat` as the mapper, `reducer`, two reduce
/// tasks and `extra` arguments.
fn cat_and(reducer: &str, input: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", "cat", "--reducer", reducer, "-r", "2"]).args(extra);
    cmd.arg("--input").arg(input).arg("--output").arg(out);
    cmd
}

/// A streaming reducer that leaves a file in the returned `started` directory (so every map is
/// done), waits for the returned `go` file, then sorts: `(go, started, command)`.
fn gated_reducer(dir: &Dir) -> (PathBuf, PathBuf, String) {
    let (go, started) = (dir.path("go"), dir.path("started"));
    std::fs::create_dir_all(&started).unwrap();
    let reducer = format!("touch '{}'/$$; {}; sort", started.display(), wait_until(&go));
    (go, started, reducer)
}

#[test]
fn a_paused_mr_run_keeps_its_workers_and_finishes() {
    let dir = Dir::new();
    let input = input(&dir, 4);
    let (go, started, reducer) = gated_reducer(&dir);
    let args = |out: &Path| cat_and(&reducer, &input, out, &["--split-size", "4KiB"]);
    let out = dir.path("out");
    let mut cmd = args(&out);
    // Standalone workers would give up on the coordinator after 1 s.
    cmd.args(["-w", "2", "--json"]).env("MR_LOST_TIMEOUT", "1s");
    let job = Background::start(cmd, &dir, "paused");
    wait_for(60, "both reduce tasks to start", || entries(&started, "").len() == 2);
    let pid = Pid::from_raw(job.child.id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    kill(pid, Signal::SIGCONT).unwrap();
    let resumed = Instant::now();
    std::fs::write(&go, "").unwrap();
    let (status, stdout, stderr) = job.finish();
    assert!(status.success(), "{stderr}");
    let took = resumed.elapsed();
    assert!(took < Duration::from_secs(20), "the job took {took:?} after the pause");
    // No worker gave up during the pause: the two that started are the two that exited.
    let s = summary(&stdout);
    assert_eq!(s["workers"].as_array().unwrap().len(), 2, "{stdout}");
    let local = dir.path("local");
    run_ok(args(&local).arg("--local"));
    assert_same_output(&out, &local);
}

#[test]
fn reduce_attempts_write_nothing_into_the_output_until_they_commit() {
    let dir = Dir::new();
    let input = input(&dir, 2);
    let (go, started, reducer) = gated_reducer(&dir);
    let out = dir.path("out");
    let cmd = cat_and(&reducer, &input, &out, &["-w", "2", "-q"]);
    let job = Background::start(cmd, &dir, "attempt-files");
    wait_for(60, "both reduce tasks to start", || entries(&started, "").len() == 2);
    // Running reduce attempts have their part files open, somewhere else.
    let in_output: Vec<PathBuf> = entries(&out.join("_temporary"), "part-");
    assert!(in_output.is_empty(), "running attempts write into the output: {in_output:?}");
    std::fs::write(&go, "").unwrap();
    let (status, _, stderr) = job.finish();
    assert!(status.success(), "{stderr}");
    assert!(!out.join("_temporary").exists());
}

/// Pids of the processes whose parent is `parent`, recursively.
fn descendants(parent: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut queue = vec![parent];
    while let Some(p) = queue.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // The parent is the second field after the command's closing parenthesis.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
            if ppid == Some(p) {
                all.push(pid);
                queue.push(pid);
            }
        }
    }
    all
}

fn alive(pid: u32) -> bool {
    // A zombie is dead; its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[test]
fn streaming_commands_leave_no_process_when_a_worker_or_mr_run_is_killed() {
    let dir = Dir::new();
    let input = input(&dir, 1);
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", "cat | (sleep 30; cat)", "--reducer", "cat", "-w", "1", "-q"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.path("out"));
    let mut job = Background::start(cmd, &dir, "orphans");
    let sleeping = |root: u32| {
        descendants(root)
            .into_iter()
            .filter(|&p| std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0")))
    };
    let root = job.child.id();
    wait_for(60, "a mapper's sleep", || sleeping(root).count() == 1);
    // SIGKILL the worker: its command's processes go with it.
    let sleep = sleeping(root).next().unwrap();
    let is_worker = |p: u32| {
        std::fs::read(format!("/proc/{p}/cmdline"))
            .is_ok_and(|c| c.ends_with(b"worker\0") || c.windows(8).any(|w| w == b"\0worker\0"))
    };
    let worker = job.workers().into_iter().find(|&w| is_worker(w) && descendants(w).contains(&sleep));
    let worker = worker.expect("the sleep runs under a worker");
    let doomed = descendants(worker);
    kill(Pid::from_raw(worker as i32), Signal::SIGKILL).unwrap();
    wait_for(10, "the killed worker's command to end", || !doomed.iter().any(|&p| alive(p)));
    // SIGKILL mr run while its new worker runs the command again: nothing is left.
    wait_for(60, "the replacement's sleep", || sleeping(root).count() == 1);
    kill(Pid::from_raw(root as i32), Signal::SIGKILL).unwrap();
    job.child.wait().unwrap();
    wait_for(10, "every process of the job to end", || tagged_processes(&job.tag).is_empty());
}

/// A `mr coordinator` of a streaming job whose mappers wait for the file it returns, with the
/// token "secret" on a free port; with its URL.
fn gated_coordinator(dir: &Dir, input: &Path, extra: &[&str], name: &str) -> (Background, String, PathBuf) {
    let go = dir.path("go");
    let mapper = format!("{}; cat", wait_until(&go));
    let port = free_port();
    let mut cmd = mr();
    cmd.args(["coordinator", "streaming", "--mapper", &mapper, "--reducer", "cat", "-q", "--worker-timeout", "1s"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("MR_TOKEN", "secret")
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(dir.path("out"));
    (Background::start(cmd, dir, name), format!("http://127.0.0.1:{port}"), go)
}

/// A standalone `mr worker` of `gated_coordinator`'s job, in `work`, tagged as the job's.
fn standalone_worker(url: &str, work: &Path, tag: &str) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["worker", "--coordinator", url, "--work-dir"])
        .arg(work)
        .env("MR_TOKEN", "secret")
        .env("MR_TEST_TAG", tag);
    cmd
}

#[test]
fn a_worker_stopped_by_sigterm_or_ctrl_c_removes_its_directory() {
    let dir = Dir::new();
    let input = input(&dir, 1);
    let (coordinator, url, _) = gated_coordinator(&dir, &input, &[], "sigterm");
    for signal in [Signal::SIGTERM, Signal::SIGINT] {
        let work = dir.path(&format!("work-{signal}"));
        std::fs::create_dir_all(&work).unwrap();
        let mut worker =
            standalone_worker(&url, &work, &coordinator.tag).stderr(std::process::Stdio::piped()).spawn().unwrap();
        wait_for(30, "the worker's directory", || entries(&work, "mr-worker-").len() == 1);
        assert_eq!(mode(&entries(&work, "mr-worker-")[0]), 0o700);
        wait_for(30, "the worker's streaming command", || !descendants(worker.id()).is_empty());
        kill(Pid::from_raw(worker.id() as i32), signal).unwrap();
        let status = exits_within(&mut worker, 10, "the signalled worker");
        assert_eq!(status.code(), Some(130), "{signal}: {status}");
        assert!(entries(&work, "").is_empty(), "{signal} left {:?}", entries(&work, ""));
    }
    kill(Pid::from_raw(coordinator.child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = coordinator.finish();
}

#[test]
fn work_files_are_private_and_a_killed_resume_leaves_no_log_directory() {
    let dir = Dir::new();
    let input = input(&dir, 4);
    let go = dir.path("go");
    let reducer = format!("{}; sort", wait_until(&go));
    let out = dir.path("out");
    let job = |resume: bool| {
        let mut cmd = cat_and(&reducer, &input, &out, &["-w", "2", "-q", "--split-size", "4KiB"]);
        if resume {
            cmd.arg("--resume");
        }
        // The permissions of the output follow this umask; everything else is private.
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c").arg("umask 027; exec \"$@\"").arg("sh").arg(cmd.get_program()).args(cmd.get_args());
        for var in crate::harness::outer_mr_vars() {
            sh.env_remove(var);
        }
        sh
    };
    let first = Background::start(job(false), &dir, "private");
    let tmp = first.work.clone();
    wait_for(60, "map outputs", || first.map_outputs() >= 4);
    let mut first = first;
    first.sigkill();
    // What the killed run left: its work directory, worker directories, map outputs, logs and
    // journal, all private.
    let mut checked = 0;
    let mut stack: Vec<PathBuf> = entries(&tmp, "mr-");
    stack.push(out.join("_temporary"));
    while let Some(path) = stack.pop() {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), expected, "{}", path.display());
        checked += 1;
        if path.is_dir() {
            stack.extend(entries(&path, ""));
        }
    }
    assert!(checked >= 10, "only {checked} files and directories");
    assert_eq!(entries(&tmp, "mr-logs-").len(), 1);

    // A resumed run killed again logs on in the same directory.
    let second = Background::start(job(true), &dir, "private");
    // Its workers, and soon their reducers' shells (the maps are restored, so reduces start at
    // once): at least two processes of its own, not exactly two.
    wait_for(60, "the resumed run's workers", || second.workers().len() >= 2);
    let mut second = second;
    second.sigkill();
    assert_eq!(entries(&tmp, "mr-logs-").len(), 1, "{:?}", entries(&tmp, ""));

    std::fs::write(&go, "").unwrap();
    let last = Background::start(job(true), &dir, "private");
    let (status, _, stderr) = last.finish();
    assert!(status.success(), "{stderr}");
    assert!(entries(&tmp, "mr-").is_empty(), "left in TMPDIR: {:?}", entries(&tmp, ""));
    // The output follows the umask (027).
    for entry in entries(&out, "") {
        assert_eq!(mode(&entry), 0o640, "{}", entry.display());
    }
    assert_eq!(mode(&out), 0o750);
}

#[test]
fn a_killed_run_replaced_with_overwrite_removes_its_work_and_log_directories() {
    let dir = Dir::new();
    let input = input(&dir, 4);
    let go = dir.path("go");
    let reducer = format!("{}; sort", wait_until(&go));
    let job = |out: &Path, extra: &[&str]| {
        let mut cmd = cat_and(&reducer, &input, out, &["-q", "--split-size", "4KiB"]);
        cmd.args(extra);
        cmd
    };
    let out = dir.path("out");
    let mut killed = Background::start(job(&out, &["-w", "2"]), &dir, "replaced");
    let tmp = killed.work.clone();
    wait_for(60, "map outputs", || killed.map_outputs() >= 4);
    killed.sigkill();
    // What the killed run left in TMPDIR, named by the journal in the output.
    let (work, logs) = (entries(&tmp, "mr-work-"), entries(&tmp, "mr-logs-"));
    assert_eq!((work.len(), logs.len()), (1, 1), "{:?}", entries(&tmp, ""));
    assert!(out.join("_temporary/journal.redb").is_file());

    std::fs::write(&go, "").unwrap();
    let replacing = Background::start(job(&out, &["-w", "2", "--overwrite"]), &dir, "replaced");
    let (status, _, stderr) = replacing.finish();
    assert!(status.success(), "{stderr}");
    let local = dir.path("local");
    run_ok(&mut job(&local, &["--local"]));
    assert_same_output(&out, &local);
    assert!(entries(&tmp, "mr-").is_empty(), "left in TMPDIR: {:?}", entries(&tmp, ""));
}

#[test]
fn a_starting_worker_removes_dead_workers_directories_and_keeps_live_ones() {
    let dir = Dir::new();
    let input = input(&dir, 3);
    let (coordinator, url, go) = gated_coordinator(&dir, &input, &["--split-size", "4KiB"], "dead-workers");
    let work = dir.path("work");
    std::fs::create_dir_all(&work).unwrap();
    let worker =
        || standalone_worker(&url, &work, &coordinator.tag).stderr(std::process::Stdio::null()).spawn().unwrap();
    // A worker running a map attempt, whose directory holds its lock.
    let mut live = worker();
    wait_for(30, "the first worker's streaming command", || !descendants(live.id()).is_empty());
    let live_dir = entries(&work, "mr-worker-");
    assert_eq!(live_dir.len(), 1, "{live_dir:?}");
    let live_dir = live_dir[0].clone();
    // A second one, killed mid-attempt: its directory stays.
    let mut killed = worker();
    wait_for(30, "the second worker's streaming command", || !descendants(killed.id()).is_empty());
    let dead_dir: Vec<PathBuf> = entries(&work, "mr-worker-").into_iter().filter(|d| *d != live_dir).collect();
    assert_eq!(dead_dir.len(), 1, "{:?}", entries(&work, ""));
    let dead_dir = dead_dir[0].clone();
    kill(Pid::from_raw(killed.id() as i32), Signal::SIGKILL).unwrap();
    killed.wait().unwrap();
    assert!(dead_dir.is_dir(), "a worker killed with SIGKILL cannot remove its directory");

    // A worker starting in the same work dir removes the dead one's, and only that.
    let mut third = worker();
    wait_for(30, "the dead worker's directory to be removed", || !dead_dir.exists());
    assert!(live_dir.is_dir(), "a live worker's directory was removed");
    assert!(live.try_wait().unwrap().is_none(), "the live worker exited");
    wait_for(30, "the third worker's directory", || entries(&work, "mr-worker-").len() == 2);

    std::fs::write(&go, "").unwrap();
    for (worker, name) in [(&mut live, "the first worker"), (&mut third, "the third worker")] {
        let status = exits_within(worker, 60, name);
        assert!(status.success(), "{name}: {status}");
    }
    let (status, _, stderr) = coordinator.finish();
    assert!(status.success(), "{stderr}");
    assert!(entries(&work, "").is_empty(), "left in the work dir: {:?}", entries(&work, ""));
}

#[tokio::test]
async fn a_worker_refuses_a_server_that_cannot_prove_it_holds_the_token() {
    let dir = Dir::new();
    // What holds the coordinator's port: a coordinator that does not know the job's token (it
    // checks none), with a job for any worker that believes it.
    let split = mr::data::input::Split::single(dir.write("in.txt", "a\n"), 0, 2);
    let impostor = mr::control::coordinator::Coordinator::new(crate::harness::coordinator_config(&dir, vec![split]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(impostor.clone().serve(listener, shutdown.clone()));
    let worker = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            mr().args(["worker", "--coordinator", &url]).env("MR_TOKEN", "the-job's-secret").output().unwrap()
        })
    };
    let out = tokio::time::timeout(Duration::from_secs(60), worker).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("did not prove that it holds the job's token"), "{stderr}");
    // It ran nothing for the impostor.
    assert!(impostor.scheduler().attempts().is_empty());
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
