//! What surprised a new user: `--overwrite` of a directory holding other files, the sample run
//! of an installed binary, `--workers` far above the cores, and `--json` on failure.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn overwrite_replaces_a_job_s_output_but_refuses_other_files() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "b a b\n");
    // `-o .` in a directory of the user's own files.
    let here = dir.path("here");
    dir.write("here/notes.txt", "mine");
    dir.write("here/sub/deep.txt", "mine too");
    let mut cmd = mr();
    cmd.current_dir(&here).args(["run", "wordcount", "-o", ".", "--overwrite", "--quiet", "-i"]).arg(&input);
    let refused = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("notes.txt, sub") && err.contains("--overwrite replaces only"), "{err}");
    assert_eq!(names(&here), ["notes.txt", "sub"], "a refused --overwrite touched the directory");
    assert_eq!(std::fs::read_to_string(here.join("sub/deep.txt")).unwrap(), "mine too");

    // A previous job's output, with a leftover _temporary, is replaced.
    let out = dir.path("out");
    run_ok(&mut wordcount(&input, &out, &["--quiet", "--reduce-tasks", "3"]));
    std::fs::create_dir(out.join("_temporary")).unwrap();
    assert_eq!(names(&out), ["_SUCCESS", "_job.json", "_temporary", "part-r-00000", "part-r-00001", "part-r-00002"]);
    run_ok(&mut wordcount(&input, &out, &["--quiet", "--overwrite", "--reduce-tasks", "1"]));
    assert_eq!(names(&out), ["_SUCCESS", "_job.json", "part-r-00000"]);
    assert_eq!(parts(&out)[0].1, b"a\t1\nb\t2\n");
    // One file of the user's among a job's output: refused, nothing removed.
    dir.write("out/keep.me", "x");
    let refused = wordcount(&input, &out, &["--quiet", "--overwrite"]).output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(refused.status.code() == Some(2) && err.contains("(keep.me)"), "{err}");
    assert_eq!(names(&out), ["_SUCCESS", "_job.json", "keep.me", "part-r-00000"]);
}

#[test]
fn the_sample_runs_from_a_copy_of_the_binary_elsewhere() {
    let dir = Dir::new();
    let bin = dir.path("bin/mr");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_mr"), &bin).unwrap();
    let (elsewhere, tmp) = (dir.path("elsewhere"), dir.path("tmp"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    let mut cmd = std::process::Command::new(&bin);
    cmd.current_dir(&elsewhere).env("TMPDIR", &tmp).env_remove("RUST_LOG").args(["run", "--workers", "2"]);
    for var in outer_mr_vars() {
        cmd.env_remove(var);
    }
    let stdout = run_ok(&mut cmd);
    assert!(stdout.contains("top 20 words:") && stdout.contains(" the\n"), "{stdout}");
    // The output is the only thing left in TMPDIR: the generated corpus is gone.
    let left = names(&tmp);
    assert!(left.len() == 1 && left[0].starts_with("mr-sample-"), "{left:?}");
    let output = tmp.join(&left[0]);
    assert!(stdout.trim_end().ends_with(&format!("output in {}", output.display())), "{stdout}");
    // It read no file of the source tree, and counted the corpus that the repository ships.
    let history: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(output.join("_job.json")).unwrap()).unwrap();
    let input = history["config"]["inputs"][0].as_str().unwrap();
    assert!(!input.starts_with(env!("CARGO_MANIFEST_DIR")), "the sample was read from the source tree: {input}");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    assert!(sorted_lines(&output) == reference("jobs.py", &[Path::new("wordcount"), &shipped]), "not the sample");
}

#[test]
fn workers_far_above_the_cores_are_refused_unless_oversubscribed() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "b a b\n");
    let cores = std::thread::available_parallelism().unwrap().get();
    let out = dir.path("out");
    let too_many = (8 * cores + 1).to_string();
    let refused = wordcount(&input, &out, &["--workers", &too_many]).output().unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("--workers {too_many}")) && err.contains("--oversubscribe"), "{err}");
    assert!(!out.exists(), "a refused job created its output");
    // Asked for, they run; the one small split gets one reduce task, and the summary says so.
    let stdout = run_ok(&mut wordcount(&input, &out, &["--workers", &too_many, "--oversubscribe"]));
    assert!(stdout.contains("  reduce: 1 tasks,"), "{stdout}");
    assert!(stdout.contains(&format!("note: 1 reduce tasks: one per map task, fewer than the {too_many} workers")));
    assert_eq!(parts(&out).len(), 1);
    assert!(stdout.lines().all(|l| l.chars().count() <= 100 || l.starts_with("  output: ")), "{stdout}");
}

pub(crate) fn summary_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/summary.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// Parses `--json`'s stdout and checks it against docs/summary.schema.json.
pub(crate) fn valid_summary(validator: &jsonschema::Validator, stdout: &str) -> serde_json::Value {
    let value = summary(stdout);
    let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:?}\n{value:#}");
    value
}

#[test]
fn json_prints_a_summary_on_success_failure_and_interruption() {
    let dir = Dir::new();
    let validator = summary_schema();
    let good = dir.write("in/a.txt", "b a b\n");
    let ok = valid_summary(&validator, &run_ok(&mut wordcount(&good, &dir.path("ok"), &["--json", "-w", "2"])));
    assert_eq!((ok["succeeded"].as_bool(), ok["error"].is_null()), (Some(true), true), "{ok}");

    // A job that fails while it runs: its attempts, and the error.
    let bad = dir.write("bad/bad.txt", b"good line\nbad \xff byte\n");
    for mode in ["--workers=2", "--local"] {
        let out = wordcount(&bad, &dir.path("failed"), &["--json", "--max-attempts", "1", mode]).output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        remove_kept_logs(&String::from_utf8_lossy(&out.stderr));
        let failed = valid_summary(&validator, &String::from_utf8_lossy(&out.stdout));
        assert_eq!(failed["succeeded"], false, "{failed}");
        assert!(failed["error"].as_str().unwrap().contains("invalid UTF-8"), "{failed}");
        if mode != "--local" {
            assert!(failed["attempts"].as_array().unwrap().iter().any(|a| a["outcome"]["failed"].is_string()));
        }
    }
    // A job refused before it runs.
    let out = wordcount(&dir.path("missing"), &dir.path("none"), &["--json"]).output().unwrap();
    let refused = valid_summary(&validator, &String::from_utf8_lossy(&out.stdout));
    assert!(refused["error"].as_str().unwrap().contains("does not exist"), "{refused}");

    // An interrupted job: a reducer that waits for a file nobody writes.
    let started = dir.path("started");
    std::fs::create_dir_all(&started).unwrap();
    let reducer = format!("touch '{}'/$$; while true; do sleep 0.05; done", started.display());
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", "cat", "--reducer", &reducer, "--json", "-w", "2", "--input"])
        .arg(&good)
        .arg("--output")
        .arg(dir.path("interrupted"));
    let job = Background::start(cmd, &dir, "json-interrupt");
    wait_for(60, "the reduce task to start", || std::fs::read_dir(&started).unwrap().next().is_some());
    kill(Pid::from_raw(job.child.id() as i32), Signal::SIGINT).unwrap();
    let (status, stdout, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let interrupted = valid_summary(&validator, &stdout);
    assert_eq!((interrupted["succeeded"].as_bool(), interrupted["interrupted"].as_bool()), (Some(false), Some(true)));
    assert!(interrupted["error"].as_str().unwrap().contains("--resume"), "{interrupted}");
    let kept: PathBuf = mr::control::journal::path_for(&dir.path("interrupted"));
    assert!(kept.exists(), "the interrupted job's journal is gone");
}

#[test]
fn a_check_seed_writes_its_trace_when_asked() {
    let dir = Dir::new();
    let trace = dir.path("seed-3.txt");
    let out = mr().args(["simulate", "check", "--seed", "3", "--trace"]).arg(&trace).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&trace).expect("the trace is written");
    assert!(text.contains("registered") && text.contains("job committed"), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("trace: {}", trace.display())), "{stdout}");
}
