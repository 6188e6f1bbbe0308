//! The coordinator's journal: a coordinator killed with SIGKILL mid-job, then the same command
//! with `--resume`, must finish the job without re-running the tasks that the journal holds,
//! and byte-identical to `--local`. Also the errors of `--resume`.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cluster::free_port;
use crate::harness::*;

/// Words over 21 splits of about 6 KB.
fn input(dir: &Dir) -> PathBuf {
    let word = |n: usize| -> String { (0..3).map(|k| char::from(b'a' + (n / 26usize.pow(k) % 26) as u8)).collect() };
    let body: String = (0..12_000).map(|i| format!("{} {} {}\n", word(i % 1009), word(i % 17), word(i % 7))).collect();
    dir.write("in/words.txt", body)
}

/// Every map attempt straggles `ms`, every reduce attempt 400 ms: slow enough to be killed
/// mid-phase (3 reduce tasks on 2 workers: the last part file comes at least 400 ms after
/// the first).
fn slow(dir: &Dir, ms: u32) -> PathBuf {
    dir.write(
        "mr.toml",
        format!(
            "[faults.map]\nstraggler = 1.0\nstraggler_delay_ms = {ms}\n\
             [faults.reduce]\nstraggler = 1.0\nstraggler_delay_ms = 400\n"
        ),
    )
}

fn wordcount(input: &Path, out: &Path, config: &Path) -> std::process::Command {
    wordcount_into(input, out, config, 3)
}

fn wordcount_into(input: &Path, out: &Path, config: &Path, reduce_tasks: u32) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--input"]).arg(input).arg("--output").arg(out);
    cmd.args(["--split-size", "6000", "--workers", "2", "--reduce-tasks", &reduce_tasks.to_string(), "--config"]);
    cmd.arg(config);
    cmd
}

fn local_oracle(dir: &Dir, input: &Path) -> PathBuf {
    local_oracle_into(dir, input, 3)
}

fn local_oracle_into(dir: &Dir, input: &Path, reduce_tasks: u32) -> PathBuf {
    let out = dir.path("local");
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--local", "--quiet", "--reduce-tasks", &reduce_tasks.to_string(), "--input"]);
    cmd.arg(input);
    cmd.arg("--output").arg(&out);
    run_ok(&mut cmd);
    out
}

fn sigkill(child: &mut Child) {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
}

/// Kills `mr run` once `killed_when` holds, checks that its workers went with it, resumes,
/// and checks the output and that no task the journal holds ran again. `all_maps`: the kill
/// came after every map had committed (in the reduce phase, which starts 400 ms before any
/// reduce can commit: the journal's 20 ms batches are long written).
fn kill_and_resume(name: &str, all_maps: bool, killed_when: impl Fn(&Background, &Path) -> bool) {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 150);
    let out = dir.path("out");
    let expected = local_oracle(&dir, &input);
    let mut job = Background::start(wordcount(&input, &out, &config), &dir, name);
    wait_for(60, "the job to get far enough", || killed_when(&job, &out));
    sigkill(&mut job.child);
    wait_for(10, "the workers to die with their coordinator", || job.workers().is_empty());
    assert!(!out.join("_SUCCESS").exists(), "killed too late: the job committed");

    let (maps, reduces) = (journaled(&out, "map"), journaled(&out, "reduce"));
    assert!(!maps.is_empty(), "the journal holds no committed map task");
    let mut resume = wordcount(&input, &out, &config);
    resume.args(["--resume", "--json"]).env("TMPDIR", &job.work);
    let summary = summary(&run_ok(&mut resume));
    assert_same_output(&out, &expected);
    if all_maps {
        assert_eq!(maps.len() as u64, summary["map"]["tasks"].as_u64().unwrap(), "every map is journaled");
    }
    for (phase, done) in [("map", &maps), ("reduce", &reduces)] {
        let rerun: Vec<_> = attempted(&summary, phase).intersection(done).copied().collect();
        assert!(rerun.is_empty(), "committed {phase} tasks {rerun:?} ran again (journaled: {done:?})");
    }
    assert!(!out.join("_temporary").exists(), "the journal outlived the commit");
    // The killed run's work directory (its workers' map outputs) is removed with the job.
    let left: Vec<_> = std::fs::read_dir(&job.work).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_run_killed_in_the_map_phase_resumes_without_rerunning_committed_maps() {
    kill_and_resume("resume-map", false, |job, _| job.map_outputs() >= 5);
}

#[test]
fn a_run_killed_in_the_reduce_phase_resumes_without_rerunning_committed_tasks() {
    kill_and_resume("resume-reduce", true, |_, out| files_named(out, "part-r-") >= 1);
}

#[test]
fn resume_refuses_another_job_and_a_committed_output() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 200);
    let out = dir.path("out");
    let mut job = Background::start(wordcount(&input, &out, &config), &dir, "resume-errors");
    wait_for(60, "a map output", || job.map_outputs() >= 1);
    sigkill(&mut job.child);
    wait_for(10, "the workers to die with their coordinator", || job.workers().is_empty());

    // Another reduce count is another job: refused, naming the difference, journal kept.
    let err = run_fail(wordcount_into(&input, &out, &config, 4).arg("--resume"));
    assert!(err.contains("reduce tasks: the journal has 3, this command plans 4"), "{err}");
    assert!(mr::control::journal::path_for(&out).exists());
    let usage = wordcount(&input, &out, &config).args(["--resume", "--local"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--local"));

    // The same job resumes; then there is nothing left to resume.
    run_ok(wordcount(&input, &out, &config).args(["--resume", "--quiet"]).env("TMPDIR", &job.work));
    let expected = local_oracle(&dir, &input);
    assert_same_output(&out, &expected);
    let err = run_fail(wordcount(&input, &out, &config).arg("--resume"));
    assert!(err.contains("holds a committed job"), "{err}");
    // An output that is not an interrupted job's is not taken over.
    let other = dir.path("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = run_fail(wordcount(&input, &other, &config).arg("--resume"));
    assert!(err.contains("holds no journal"), "{err}");
    assert_eq!(std::fs::read_to_string(other.join("notes.txt")).unwrap(), "mine");
    // Nothing to resume yet: the job starts.
    let fresh = dir.path("fresh");
    run_ok(wordcount(&input, &fresh, &config).args(["--resume", "--quiet"]));
    assert_same_output(&fresh, &dir.path("local"));
}

fn coordinator(port: u16, input: &Path, out: &Path, config: &Path, tag: &str, extra: &[&str]) -> Child {
    mr().args(["coordinator", "wordcount", "--input"])
        .arg(input)
        .arg("--output")
        .arg(out)
        .args(["--split-size", "6000", "--reduce-tasks", "3", "--quiet", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("MR_TEST_TAG", tag)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn workers_join_a_restarted_coordinator_which_resumes_the_job() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 150);
    let out = dir.path("out");
    let expected = local_oracle(&dir, &input);
    let tmp = dir.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let port = free_port();
    let tag = format!("restart-{}", std::process::id());
    let mut first = coordinator(port, &input, &out, &config, &tag, &[]);
    let logs: Vec<PathBuf> = (0..2).map(|i| dir.path(&format!("worker-{i}.log"))).collect();
    let workers: Vec<Child> = logs
        .iter()
        .map(|log| {
            mr().args(["worker", "--coordinator", &format!("http://127.0.0.1:{port}"), "--lost-timeout", "60s"])
                .env("MR_TEST_TAG", &tag)
                .env("TMPDIR", &tmp)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    let map_outputs = || {
        std::fs::read_dir(&tmp)
            .map(|d| {
                d.flatten()
                    .filter_map(|w| std::fs::read_dir(w.path()).ok())
                    .flat_map(|d| d.flatten())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "out"))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_for(60, "map outputs", || map_outputs() >= 5);
    sigkill(&mut first);
    let done = journaled(&out, "map");
    assert!(!done.is_empty(), "the journal holds no committed map task");

    // Same address, same job, --resume: the workers register again by themselves.
    let second = coordinator(port, &input, &out, &config, &tag, &["--resume", "--json"]);
    let result = second.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    assert!(result.status.success(), "{}", String::from_utf8_lossy(&result.stderr));
    assert_same_output(&out, &expected);
    let summary = summary(&stdout);
    let rerun: Vec<_> = attempted(&summary, "map").intersection(&done).copied().collect();
    assert!(rerun.is_empty(), "committed maps {rerun:?} ran again (journaled: {done:?})");
    for (mut worker, log) in workers.into_iter().zip(&logs) {
        let status = worker.wait().unwrap();
        let log = std::fs::read_to_string(log).unwrap();
        assert!(status.success(), "a worker failed: {log}");
        assert!(log.contains("registered again"), "{log}");
    }
    wait_for(10, "every process of the job to exit", || tagged_processes(&tag).is_empty());
}

/// `--verify-inputs` records each input file's content hash in the journal; a resume then
/// refuses an input edited in place with its size and modification time restored (which the
/// default check, size and mtime, cannot see), whether or not the resume repeats the flag, and
/// resumes once the contents are back.
#[test]
fn verify_inputs_refuses_to_resume_over_an_edit_that_keeps_size_and_mtime() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 300);
    let out = dir.path("out");
    let mut first = wordcount(&input, &out, &config);
    first.arg("--verify-inputs");
    let mut job = Background::start(first, &dir, "verify");
    wait_for(60, "map outputs", || job.map_outputs() >= 3);
    sigkill(&mut job.child);
    wait_for(10, "the workers to die with their coordinator", || job.workers().is_empty());

    let original = std::fs::read(&input).unwrap();
    let modified = std::fs::metadata(&input).unwrap().modified().unwrap();
    let mut edited = original.clone();
    edited[0] = if edited[0] == b'z' { b'y' } else { b'z' };
    let set = |bytes: &[u8]| {
        std::fs::write(&input, bytes).unwrap();
        std::fs::File::options().write(true).open(&input).unwrap().set_modified(modified).unwrap();
    };
    set(&edited);
    let err = run_fail(wordcount(&input, &out, &config).arg("--resume"));
    assert!(err.contains("input contents (xxh3-128): the journal has"), "{err}");
    assert!(mr::control::journal::path_for(&out).exists(), "a refused resume removed the journal");

    set(&original);
    let mut resume = wordcount(&input, &out, &config);
    resume.args(["--resume", "--quiet"]).env("TMPDIR", &job.work);
    run_ok(&mut resume);
    assert_same_output(&out, &local_oracle(&dir, &input));
}

#[test]
fn resume_refuses_changed_inputs_and_accepts_changed_memory_settings() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 150);
    let out = dir.path("out");
    let mut job = Background::start(wordcount(&input, &out, &config), &dir, "resume-inputs");
    wait_for(60, "map outputs", || job.map_outputs() >= 3);
    sigkill(&mut job.child);
    wait_for(10, "the workers to die with their coordinator", || job.workers().is_empty());
    let done = journaled(&out, "map");
    assert!(!done.is_empty(), "the journal holds no committed map task");

    let original = std::fs::read(&input).unwrap();
    let modified = std::fs::metadata(&input).unwrap().modified().unwrap();
    let set_mtime = |t: std::time::SystemTime| {
        std::fs::File::options().write(true).open(&input).unwrap().set_modified(t).unwrap();
    };
    // The same bytes, touched: another modification time.
    set_mtime(modified + std::time::Duration::from_secs(1));
    let err = run_fail(wordcount(&input, &out, &config).arg("--resume"));
    assert!(err.contains("input files: the journal has") && err.contains("words.txt"), "{err}");
    // One byte less, the modification time put back: another size (the same splits).
    std::fs::write(&input, &original[..original.len() - 1]).unwrap();
    set_mtime(modified);
    let err = run_fail(wordcount(&input, &out, &config).arg("--resume"));
    assert!(err.contains("input files: the journal has") && err.contains("words.txt"), "{err}");
    assert!(mr::control::journal::path_for(&out).exists(), "a refused resume removed the journal");

    // The input as it was, and other memory settings: resumed.
    std::fs::write(&input, &original).unwrap();
    set_mtime(modified);
    let mut resume = wordcount(&input, &out, &config);
    resume.args(["--resume", "--json", "--sort-buffer", "1MiB", "--merge-fan-in", "2", "--max-record-bytes", "1MiB"]);
    let summary = summary(&run_ok(resume.env("TMPDIR", &job.work)));
    assert_same_output(&out, &local_oracle(&dir, &input));
    let rerun: Vec<_> = attempted(&summary, "map").intersection(&done).copied().collect();
    assert!(rerun.is_empty(), "committed maps {rerun:?} ran again (journaled: {done:?})");
}

/// What is left in `dir`, as names relative to it, directories with a trailing `/`.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, names: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                names.push(format!("{name}/"));
                walk(root, &path, names);
            } else {
                names.push(name);
            }
        }
    }
    let mut names = Vec::new();
    walk(dir, dir, &mut names);
    names.sort();
    names
}

#[test]
fn an_interrupted_run_keeps_what_resume_needs_and_resumes() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir, 150);
    let out = dir.path("out");
    // Five reduce tasks on two workers run in three waves of 400 ms: after the first part file
    // there are at least 800 ms left to interrupt the job in, even on a loaded machine.
    let expected = local_oracle_into(&dir, &input, 5);
    let job = Background::start(wordcount_into(&input, &out, &config, 5), &dir, "interrupt");
    wait_for(60, "a committed reduce task", || files_named(&out, "part-r-") >= 1);
    kill(Pid::from_raw(job.child.id() as i32), Signal::SIGINT).unwrap();
    let work = job.work.clone();
    let (status, _, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let hint = format!("interrupted: resume with the same command and --resume, or remove {}", out.display());
    assert!(stderr.contains(&hint), "{stderr}");
    assert!(!out.join("_SUCCESS").exists(), "interrupted too late: the job committed");

    // Kept: the journal (alone in _temporary), the committed part files; in TMPDIR, the work
    // directory with nothing but committed map outputs, and the log directory.
    let (maps, reduces) = (journaled(&out, "map"), journaled(&out, "reduce"));
    assert!(!maps.is_empty(), "no map task is journaled");
    assert!(!reduces.is_empty() && files_named(&out, "part-r-") >= reduces.len(), "{reduces:?}");
    let kept = tree(&out);
    assert!(
        kept.iter().all(|n| n.starts_with("part-r-") || n == "_temporary/" || n == "_temporary/journal.redb"),
        "{kept:?}"
    );
    let left = tree(&work);
    assert!(left.iter().any(|n| n.starts_with("mr-work-") && n.ends_with(".out")), "{left:?}");
    for name in &left {
        let top = name.starts_with("mr-work-") || name.starts_with("mr-logs-");
        let allowed = name.ends_with('/') || name.ends_with(".out") || name.ends_with(".log");
        assert!(top && allowed, "left behind for no resume: {name} (in {left:?})");
    }

    // Run again without --resume: the error says that the job can be resumed, and how.
    let err = run_fail(&mut wordcount_into(&input, &out, &config, 5));
    assert!(err.contains("holds an interrupted job") && err.contains("--resume"), "{err}");

    let mut resume = wordcount_into(&input, &out, &config, 5);
    resume.args(["--resume", "--json"]).env("TMPDIR", &work);
    let summary = summary(&run_ok(&mut resume));
    assert_same_output(&out, &expected);
    assert!(sorted_lines(&out) == reference("jobs.py", &[Path::new("wordcount"), &input]), "differs from jobs.py");
    assert_eq!(maps.len() as u64, summary["map"]["tasks"].as_u64().unwrap(), "every map was journaled");
    for (phase, done) in [("map", &maps), ("reduce", &reduces)] {
        let rerun: Vec<_> = attempted(&summary, phase).intersection(done).copied().collect();
        assert!(rerun.is_empty(), "committed {phase} tasks {rerun:?} ran again (journaled: {done:?})");
    }
    assert!(tree(&work).is_empty(), "left behind after the resume: {:?}", tree(&work));
}

/// Writes at `out`'s journal path a journal as builds before typed map output locations wrote
/// it: no `format` key, and each committed task's output a JSON string.
fn write_format_1_journal(out: &Path, work_dir: &Path, logs: &Path) -> PathBuf {
    use redb::TableDefinition;
    let meta: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
    let done: TableDefinition<(u8, u32), &[u8]> = TableDefinition::new("done");
    let state: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
    let path = mr::control::journal::path_for(out);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let db = redb::Database::create(&path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut m = tx.open_table(meta).unwrap();
        m.insert("identity", br#"[["job","wordcount"],["reduce tasks",3]]"#.as_slice()).unwrap();
        m.insert("incarnation", 0u64.to_le_bytes().as_slice()).unwrap();
        m.insert("work_dir", work_dir.as_os_str().as_encoded_bytes()).unwrap();
        m.insert("logs", logs.as_os_str().as_encoded_bytes()).unwrap();
        m.insert("output_created", [1u8].as_slice()).unwrap();
        let location = r#"{"map_task":0,"attempt":0,"host":"127.0.0.1","path":"/tmp/mr-work-x/map-00000-0.out","shuffle_url":"http://127.0.0.1:4000"}"#;
        let entry = serde_json::json!({ "attempt": 0, "output": location, "counters": {} });
        let mut d = tx.open_table(done).unwrap();
        d.insert((0u8, 0u32), serde_json::to_vec(&entry).unwrap().as_slice()).unwrap();
        tx.open_table(state).unwrap();
    }
    tx.commit().unwrap();
    path
}

/// A journal written before map output locations were typed (no format version) is refused by
/// `--resume` with a usage error that names the output directory and the fix, and nothing is
/// touched; `--overwrite` replaces it, with the directories it names.
#[test]
fn a_journal_of_an_older_format_is_refused_and_overwrite_replaces_it() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = dir.write("mr.toml", "");
    let out = dir.path("out");
    let (work_dir, logs) = (dir.path("mr-work-old"), dir.path("mr-logs-old"));
    std::fs::create_dir_all(&work_dir).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    let journal = write_format_1_journal(&out, &work_dir, &logs);
    let bytes = std::fs::read(&journal).unwrap();
    let untouched =
        || tree(&out) == ["_temporary/", "_temporary/journal.redb"] && std::fs::read(&journal).unwrap() == bytes;

    let err = run_usage(wordcount(&input, &out, &config).arg("--resume"));
    let output = out.display().to_string();
    assert!(err.contains(&format!("cannot resume into '{output}'")), "{err}");
    assert!(err.contains("format 1") && err.contains("resumes format 2"), "{err}");
    assert!(err.contains(&format!("remove '{output}' and rerun without --resume")), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert!(untouched(), "nothing is touched: {:?}", tree(&out));
    assert!(work_dir.is_dir() && logs.is_dir());
    let err = run_usage(wordcount(&input, &out, &config).arg("--resume").arg("--json"));
    assert!(err.contains("format 1"), "{err}");
    assert!(untouched(), "nothing is touched: {:?}", tree(&out));

    run_ok(wordcount(&input, &out, &config).args(["--overwrite", "--quiet"]));
    assert_same_output(&out, &local_oracle(&dir, &input));
    assert!(!work_dir.exists() && !logs.exists(), "--overwrite removes the directories the old journal names");
}
