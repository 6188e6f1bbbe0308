//! Wrong output and lost data: file names that are not UTF-8 or hold separators, two jobs on
//! one output, a commit without its part files, input that changes or cannot be read in
//! ranges, and one job's output as the next one's input.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use mr::control::coordinator::Coordinator;
use mr::net::rpc::pb;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

fn job(name: &str, input: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["run", name]).args(extra).arg("--input").arg(input).arg("--output").arg(output);
    cmd
}

/// Runs a job distributed and local into `tag-dist` and `tag-local`; checks that they agree
/// and match the reference `jobs.py MODE [ARG] INPUT`.
fn matches_reference(dir: &Dir, name: &str, arg: Option<&str>, input: &Path, tag: &str) {
    let dist = dir.path(&format!("{tag}-dist"));
    let local = dir.path(&format!("{tag}-local"));
    let extra: Vec<&str> = arg.into_iter().collect();
    run_ok(job(name, input, &dist, &extra).args(["--workers", "2", "--reduce-tasks", "2", "--quiet"]));
    run_ok(job(name, input, &local, &extra).args(["--local", "--reduce-tasks", "2", "--quiet"]));
    assert_same_output(&dist, &local);
    let mut args: Vec<&Path> = vec![Path::new(name)];
    args.extend(arg.map(Path::new));
    args.push(input);
    let expected = reference("jobs.py", &args);
    assert!(!expected.is_empty(), "{tag}: the reference found nothing");
    assert!(
        sorted_lines(&dist) == expected,
        "{tag}: differs from the reference\n--- mr\n{}\n--- reference\n{}",
        String::from_utf8_lossy(&sorted_lines(&dist)),
        String::from_utf8_lossy(&expected)
    );
}

/// A file named `caf\xe9.txt` (Latin-1, not UTF-8) next to one literally named
/// `caf\u{fffd}.txt`, the name a lossy conversion gives the first: each must be read as itself.
#[test]
fn file_names_that_are_not_utf8_are_read_as_themselves() {
    let dir = Dir::new();
    let input = dir.path("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join(OsStr::from_bytes(b"caf\xe9.txt")), "omega alpha\nomega\n").unwrap();
    std::fs::write(input.join("caf\u{fffd}.txt"), "omega beta\n").unwrap();
    std::fs::write(input.join("plain.txt"), "gamma omega\n").unwrap();
    matches_reference(&dir, "wordcount", None, &input, "wc");
    let counts = String::from_utf8(sorted_lines(&dir.path("wc-dist"))).unwrap();
    assert!(counts.contains("omega\t4\n") && counts.contains("beta\t1\n"), "{counts}");
    // index and grep name each file by its own (percent-encoded) text.
    matches_reference(&dir, "index", None, &input, "index");
    let index = String::from_utf8(sorted_lines(&dir.path("index-dist"))).unwrap();
    assert!(index.contains("alpha\t") && index.contains("caf%E9.txt"), "{index}");
    assert!(index.contains("beta\t") && index.contains("caf\u{fffd}.txt"), "{index}");
    matches_reference(&dir, "grep", Some("omega"), &input, "grep");

    // An output directory whose name is not UTF-8: the job commits and records its history.
    let out = dir.path("out").join(OsStr::from_bytes(b"r\xe9sultat"));
    for mode in [&["--workers", "2"][..], &["--local"][..]] {
        run_ok(job("wordcount", &input, &out, mode).args(["--quiet", "--overwrite", "--reduce-tasks", "2"]));
        assert_same_output(&out, &dir.path("wc-local"));
        let history: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
        assert!(history["config"]["output"].as_str().unwrap().ends_with("/out/r%E9sultat"), "{history}");
    }
}

/// File names with the separators of grep's and index's output, and `%`, are escaped so that
/// every line parses back: one tab, the documents split on commas.
#[test]
fn index_and_grep_escape_separators_in_file_names() {
    let dir = Dir::new();
    let input = dir.path("in");
    let names = ["a,b.txt", "tab\there.txt", "new\nline.txt", "100%.txt", "plain.txt"];
    for name in names {
        dir.write(&format!("in/{name}"), "needle shared\nhay\n");
    }
    matches_reference(&dir, "index", None, &input, "index");
    let index = String::from_utf8(sorted_lines(&dir.path("index-dist"))).unwrap();
    let shared = index.lines().find(|l| l.starts_with("shared\t")).unwrap();
    let docs: Vec<&str> = shared.split_once('\t').unwrap().1.split(',').collect();
    assert_eq!(docs.len(), names.len(), "{shared}");
    for (doc, name) in
        [("a%2Cb.txt", "a,b"), ("tab%09here.txt", "tab"), ("new%0Aline.txt", "newline"), ("100%25.txt", "%")]
    {
        assert!(docs.iter().any(|d| d.ends_with(&format!("/in/{doc}"))), "{name}: {shared}");
    }
    matches_reference(&dir, "grep", Some("needle"), &input, "grep");
    let grep = String::from_utf8(sorted_lines(&dir.path("grep-dist"))).unwrap();
    assert_eq!(grep.lines().count(), names.len(), "{grep}");
    assert!(grep.lines().all(|l| l.matches('\t').count() == 1 && l.ends_with(":1\tneedle shared")), "{grep}");
}

fn slow_maps(dir: &Dir, ms: u32) -> PathBuf {
    dir.write("slow.toml", format!("[faults.map]\nstraggler = 1.0\nstraggler_delay_ms = {ms}\n"))
}

fn words(dir: &Dir) -> PathBuf {
    let body: String = (0..4000).map(|i| format!("w{} w{} common\n", i % 97, i % 13)).collect();
    dir.write("in/words.txt", body)
}

/// Two jobs on one output, started together, or the second while the first runs (plain,
/// `--overwrite` and `--resume`): one commits the `--local` bytes, the others are refused
/// without touching it.
#[test]
fn two_jobs_on_one_output_never_mix() {
    let dir = Dir::new();
    let input = words(&dir);
    let expected = dir.path("local");
    run_ok(&mut job("wordcount", &input, &expected, &["--local", "--reduce-tasks", "3", "--quiet"]));
    let args = ["--workers", "2", "--reduce-tasks", "3", "--split-size", "8000", "--quiet"];

    for round in 0..3 {
        let out = dir.path(&format!("race-{round}"));
        let children: Vec<_> = (0..2)
            .map(|_| {
                job("wordcount", &input, &out, &args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        let results: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let won: Vec<_> = results.iter().filter(|r| r.status.success()).collect();
        assert_eq!(won.len(), 1, "round {round}: exactly one job commits: {results:?}");
        let lost = results.iter().find(|r| !r.status.success()).unwrap();
        let err = String::from_utf8_lossy(&lost.stderr);
        assert_eq!(lost.status.code(), Some(1), "{err}");
        assert!(err.contains("in use by another running job") || err.contains("is not empty"), "{err}");
        assert_same_output(&out, &expected);
    }

    let out = dir.path("out");
    let config = slow_maps(&dir, 2000);
    let mut first = job("wordcount", &input, &out, &args);
    first.arg("--config").arg(&config);
    let first = Background::start(first, &dir, "first");
    // Planned and claimed when the directory exists; its maps sleep 2 s before they start.
    wait_for(60, "the first job to claim its output", || mr::control::journal::path_for(&out).exists());
    // A file in _temporary, such as an attempt's, must outlive every refused command.
    let attempt = out.join("_temporary/part-r-00009.attempt-0");
    std::fs::write(&attempt, "").unwrap();
    for extra in [&[][..], &["--overwrite"][..], &["--resume"][..]] {
        let err = run_fail(job("wordcount", &input, &out, &args).args(extra));
        assert!(err.contains("is in use by another running job"), "{extra:?}: {err}");
        assert!(attempt.exists(), "{extra:?} touched the running job's _temporary");
    }
    let (status, _, stderr) = first.finish();
    assert!(status.success(), "{stderr}");
    assert_same_output(&out, &expected);
}

async fn next_task(
    client: &mut pb::coordinator_client::CoordinatorClient<tonic::transport::Channel>,
    worker_id: u64,
) -> pb::Task {
    let reply = client.get_task(pb::GetTaskRequest { worker_id }).await.unwrap().into_inner().reply;
    match reply {
        Some(pb::get_task_reply::Reply::Task(task)) => task,
        other => panic!("no task: {other:?}"),
    }
}

/// A client that holds the commit of a reduce task and reports it done without writing its part
/// file (or with another size than it reports): the coordinator checks the part files before it
/// writes `_SUCCESS`, and fails the job.
#[tokio::test]
async fn a_reported_commit_without_its_part_file_fails_the_job() {
    for written in [None, Some(&b"short\n"[..])] {
        let dir = Dir::new();
        std::fs::create_dir(dir.path("out")).unwrap();
        let split = mr::data::input::Split::single(dir.write("in.txt", "a\n"), 0, 2);
        let coordinator = Coordinator::new(coordinator_config(&dir, vec![split]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(coordinator.clone().serve(listener, shutdown.clone()));
        let channel = mr::worker::connect(&url, Duration::from_secs(5), None).await.unwrap();
        let mut client = pb::coordinator_client::CoordinatorClient::new(channel);
        let worker_id =
            client.register_worker(pb::RegisterWorkerRequest::default()).await.unwrap().into_inner().worker_id;
        let task_ref = |is_map, t: &pb::Task| Some(pb::TaskRef { is_map, task_id: t.task_id, attempt: t.attempt });
        let report = |task, output: &str, bytes| pb::ReportCompletionRequest {
            worker_id,
            task,
            output: output.into(),
            counters: Some(pb::Counters { output_bytes: bytes, ..Default::default() }),
        };
        // Reduce tasks are handed out once every map is done: the map is reported first.
        let map = next_task(&mut client, worker_id).await;
        let accepted = client.report_completion(report(task_ref(true, &map), "/nowhere", 0)).await.unwrap();
        assert!(accepted.into_inner().accepted);
        let reduce = next_task(&mut client, worker_id).await;
        let commit = pb::CommitTaskRequest { worker_id, task: task_ref(false, &reduce) };
        assert!(client.commit_task(commit).await.unwrap().into_inner().granted);
        let part = dir.path("out/part-r-00000");
        if let Some(bytes) = written {
            std::fs::write(&part, bytes).unwrap();
        }
        let completed = report(task_ref(false, &reduce), part.to_str().unwrap(), 1234);
        assert!(client.report_completion(completed).await.unwrap().into_inner().accepted);
        let state = coordinator.scheduler().state().clone();
        let mr::control::scheduler::JobState::Failed(failure) = state else {
            panic!("the job did not fail: {state:?}")
        };
        let what = if written.is_some() { "is 6 bytes" } else { "is missing" };
        assert!(failure.last_error.contains(&format!("part-r-00000' {what}")), "{}", failure.last_error);
        assert!(failure.last_error.contains("reported 1234 bytes"), "{}", failure.last_error);
        assert!(!dir.path("out/_SUCCESS").exists(), "an incomplete output was committed");
        shutdown.cancel();
        server.await.unwrap().unwrap();
    }
}

/// The job's data is committed when `_job.json` is written: a history that cannot be written
/// (here a reducer made a directory of that name) is a warning, and the command succeeds.
#[test]
fn a_history_that_cannot_be_written_after_the_commit_is_a_warning() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "x y\n");
    let out = dir.path("out");
    let reducer = format!("mkdir -p '{}/_job.json/in-the-way' && cat", out.display());
    let mut cmd = job("streaming", &input, &out, &["--local", "--quiet", "--mapper", "cat", "--reducer", &reducer]);
    let result = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(result.status.success(), "{}", describe(&cmd, &result));
    assert!(stderr.contains("warning: the job committed, but cannot write the job history"), "{stderr}");
    assert_eq!(sorted_lines(&out), b"x y\n");
}

/// An input file cut while the maps run (after the job was planned): every map attempt that
/// reads it fails naming it, even with `--skip-bad-records`, and nothing is committed.
#[test]
fn an_input_cut_while_the_job_runs_fails_it_naming_the_file() {
    let dir = Dir::new();
    let input = words(&dir);
    let config = slow_maps(&dir, 1500);
    let out = dir.path("out");
    let mut cmd = job("wordcount", &input, &out, &["--workers", "2", "--split-size", "8000", "--skip-bad-records"]);
    cmd.args(["--max-attempts", "2", "--config"]).arg(&config);
    let running = Background::start(cmd, &dir, "cut");
    // The output directory is made when the job has been planned; the maps sleep 1.5 s first.
    wait_for(60, "the job to be planned", || out.exists());
    let file = std::fs::OpenOptions::new().write(true).open(&input).unwrap();
    file.set_len(100).unwrap();
    let (status, _, stderr) = running.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let changed =
        format!("input file '{}' changed while the job ran (56501 bytes when planned, 100 bytes now)", input.display());
    assert!(stderr.contains(&changed), "{stderr}");
    assert!(!out.exists(), "a failed job left its output");
    remove_kept_logs(&stderr);
}

/// What cannot be read in ranges is refused by name before anything blocks on it: a FIFO in an
/// input directory, a character device, a pipe given as `/dev/stdin` or `<(...)`.
#[test]
fn inputs_that_are_not_regular_files_are_refused() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "a b\n");
    let fifo = dir.path("in/pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = dir.path("out");
    let check = |cmd: &mut std::process::Command, what: &str| {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        wait_for(60, "mr to refuse the input", || child.try_wait().unwrap().is_some());
        let result = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{err}");
        assert!(err.contains(what) && err.contains("input must be regular files"), "{err}");
        assert!(!out.exists());
    };
    check(&mut job("wordcount", input.parent().unwrap(), &out, &[]), &format!("'{}' is a FIFO", fifo.display()));
    check(&mut job("wordcount", Path::new("/dev/zero"), &out, &["--local"]), "a character device");
    check(&mut job("wordcount", Path::new("/dev/stdin"), &out, &[]), "is a FIFO");
    let script =
        format!("exec '{}' run wordcount --input <(echo a b) --output '{}'", env!("CARGO_BIN_EXE_mr"), out.display());
    check(std::process::Command::new("bash").args(["-c", &script]), "is a FIFO");
}

/// Hadoop's rule: names that start with `_` or `.` in an input directory are not input, so an
/// output directory (`_SUCCESS`, `_job.json`) is read as its part files; a file named on the
/// command line is read whatever its name.
#[test]
fn a_job_s_output_is_the_next_job_s_input() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let wc = dir.path("data/wc-out");
    run_ok(&mut job("wordcount", &input, &wc, &["--workers", "2", "--reduce-tasks", "3", "--quiet"]));
    assert!(wc.join("_job.json").is_file() && wc.join("_SUCCESS").is_file());
    // wordcount -> sort over the directory: the part files' lines, sorted.
    let sorted = dir.path("sorted");
    run_ok(&mut job("sort", &wc, &sorted, &["--workers", "2", "--reduce-tasks", "2", "--quiet"]));
    let lines: Vec<u8> = parts(&sorted).into_iter().flat_map(|(_, b)| b).collect();
    assert!(lines == reference("jobs.py", &[Path::new("sort"), &wc]), "sort over an output differs");
    assert_eq!(lines, sorted_lines(&wc), "sort read something else than the part files");
    // A word count over a folder that holds an earlier output counts no key of _job.json.
    std::fs::copy(input.join("a.txt"), dir.path("data/a.txt")).unwrap();
    matches_reference(&dir, "wordcount", None, &dir.path("data"), "again");
    let counts = String::from_utf8(sorted_lines(&dir.path("again-dist"))).unwrap();
    assert!(!counts.contains("speculative\t") && !counts.contains("null\t"), "_job.json was read: {counts}");
    // Named on the command line, an underscore file is read.
    let named = dir.write("_named.txt", "underscore named\n");
    let out = dir.path("named-out");
    run_ok(&mut job("wordcount", &named, &out, &["--local", "--quiet"]));
    assert_eq!(sorted_lines(&out), b"named\t1\nunderscore\t1\n");
}

/// An output inside an input directory (the next run over that input would read it), or an
/// input inside the output, is a usage error (exit 2), and nothing is created.
#[test]
fn an_output_inside_an_input_or_an_input_inside_the_output_is_refused() {
    let dir = Dir::new();
    let input = dir.write("tiny/a.txt", "a\n").parent().unwrap().to_path_buf();
    let refused = |cmd: &mut std::process::Command, what: &str| {
        let result = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{err}");
        assert!(err.contains(what), "{err}");
    };
    for mode in [&["--workers", "1"][..], &["--local"][..]] {
        let inside = input.join("sub");
        refused(&mut job("wordcount", &input, &inside, mode), "is inside the input directory");
        assert!(!inside.exists());
        // Through a symbolic link to the input, too.
        let link = dir.path("link");
        let _ = std::os::unix::fs::symlink(&input, &link);
        refused(&mut job("wordcount", &input, &link.join("deeper/out"), mode), "is inside the input directory");
        assert!(!input.join("deeper").exists());
        let overwrite: Vec<&str> = mode.iter().copied().chain(["--overwrite"]).collect();
        refused(&mut job("wordcount", &input.join("a.txt"), &input, &overwrite), "would contain the input");
        assert!(input.join("a.txt").is_file());
    }
}
