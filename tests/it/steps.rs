//! Multi-step streaming jobs (`--steps FILE.toml`) and `--resume` of streaming jobs: a run
//! SIGKILLed mid-step resumes at that step and its uncommitted tasks; so do a map-only job
//! and a job with compressed output. Each is checked against `--local` and, for the steps, a
//! shell pipeline. Also every bad steps file and flag.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// Three words a line over 3,000 lines (36 KB): 18 splits of 2,000 bytes.
fn input(dir: &Dir) -> PathBuf {
    let word = |n: usize| -> String { (0..3).map(|k| char::from(b'a' + (n / 26usize.pow(k) % 26) as u8)).collect() };
    let body: String = (0..3000).map(|i| format!("{} {} {}\n", word(i % 1009), word(i % 17), word(i % 7))).collect();
    dir.write("in/words.txt", body)
}

/// Every map attempt straggles 150 ms and every reduce attempt 300 ms, so that a run can be
/// killed mid-step.
fn slow(dir: &Dir) -> PathBuf {
    dir.write(
        "mr.toml",
        "[faults.map]\nstraggler = 1.0\nstraggler_delay_ms = 150\n\
         [faults.reduce]\nstraggler = 1.0\nstraggler_delay_ms = 300\n",
    )
}

/// Three steps: key each line by its first word (reducer `cat`); count the words of the lines
/// (an awk reducer over the sorted pairs); then, map-only, `count<TAB>word`.
const STEPS: &str = r#"
[[step]]
mapper = '''awk '{print $1 "\t" $0}' '''
reducer = "cat"
reduce_tasks = 3

[[step]]
mapper = '''awk -F'\t' '{n = split($2, w, " "); for (i = 1; i <= n; i++) print w[i] "\t1"}' '''
reducer = '''awk -F'\t' '$1 != k { if (NR > 1) print k "\t" c; k = $1; c = 0 } { c += $2 } END { if (NR > 0) print k "\t" c }' '''
reduce_tasks = 2

[[step]]
mapper = '''awk -F'\t' '{print $2 "\t" $1}' '''
"#;

fn streaming(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = mr();
    cmd.args(["run", "streaming"]).args(extra).arg("--input").arg(input).arg("--output").arg(out);
    cmd.args(["--split-size", "2000"]);
    cmd
}

/// The words' counts, by a shell pipeline: `count<TAB>word` lines, sorted.
fn counted_words(input: &Path) -> Vec<u8> {
    let script = "tr ' ' '\\n' < \"$1\" | sort | uniq -c | awk '{print $1 \"\\t\" $2}' | LC_ALL=C sort";
    run_ok(Command::new("sh").args(["-c", script, "sh"]).arg(input)).into_bytes()
}

/// Checks that the resumed run ran none of the tasks the journal held, and left nothing in the
/// killed run's TMPDIR.
fn assert_resumed(summary: &serde_json::Value, maps: &BTreeSet<u64>, reduces: &BTreeSet<u64>, work: &Path) {
    for (phase, done) in [("map", maps), ("reduce", reduces)] {
        let rerun: Vec<_> = attempted(summary, phase).intersection(done).copied().collect();
        assert!(rerun.is_empty(), "committed {phase} tasks {rerun:?} ran again (journaled: {done:?})");
    }
    let left: Vec<_> = std::fs::read_dir(work).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn three_steps_match_local_and_a_shell_pipeline() {
    let dir = Dir::new();
    let input = input(&dir);
    let steps = dir.write("steps.toml", STEPS);
    let args = ["--steps", steps.to_str().unwrap()];
    let out = dir.path("out");
    let json = run_ok(streaming(&input, &out, &args).args(["--workers", "2", "--json"]));
    let local = dir.path("local");
    run_ok(streaming(&input, &local, &args).args(["--local", "--quiet"]));
    assert_same_output(&out, &local);
    assert!(sorted_lines(&out) == counted_words(&input), "the steps' output differs from the shell pipeline's");
    assert_eq!(files_named(&out, "part-m-"), files_named(&out, "part-"), "the last step is map-only");
    let summary = summary(&json);
    let tasks: Vec<_> = summary["steps"].as_array().unwrap().iter().map(|s| &s["summary"]["reduce"]["tasks"]).collect();
    assert_eq!(tasks, [3, 2, 0], "{summary}");
}

/// Killed in its second step after some of that step's maps committed: `--resume` skips the
/// first step, resumes the second at its uncommitted tasks, and runs the third.
#[test]
fn a_multi_step_job_killed_mid_step_resumes_at_its_step_and_task() {
    let dir = Dir::new();
    let input = input(&dir);
    let (config, steps) = (slow(&dir), dir.write("steps.toml", STEPS));
    let args = ["--steps", steps.to_str().unwrap(), "--workers", "2", "--config", config.to_str().unwrap()];
    let out = dir.path("out");
    let local = dir.path("local");
    run_ok(&mut streaming(&input, &local, &["--steps", steps.to_str().unwrap(), "--local", "--quiet"]));
    let step = |n: u32| out.join(format!("_temporary/steps/step-{n}"));
    let mut job = Background::start(streaming(&input, &out, &args), &dir, "steps-resume");
    // The first step's work directory (its map outputs) is removed before the second starts.
    let second = mr::control::journal::path_for(&step(1));
    wait_for(120, "the second step's maps", || second.exists() && job.map_outputs() >= 5);
    job.sigkill();
    assert!(!step(1).join("_SUCCESS").exists(), "killed too late: the second step committed");
    let (maps, reduces) = (journaled(&step(1), "map"), journaled(&step(1), "reduce"));
    assert!(!maps.is_empty(), "the second step's journal holds no committed map task");

    // Other steps are another job: refused, and the interrupted run is kept.
    let other = dir.write("other.toml", STEPS.replace("reduce_tasks = 2", "reduce_tasks = 4"));
    let mut refused = streaming(&input, &out, &["--steps", other.to_str().unwrap(), "--resume"]);
    refused.args(&args[2..]);
    let err = run_fail(&mut refused);
    assert!(err.contains("other steps"), "{err}");
    assert!(mr::control::journal::path_for(&step(1)).exists() && step(0).join("_SUCCESS").exists());

    let mut resume = streaming(&input, &out, &args);
    resume.args(["--resume", "--json"]).env("TMPDIR", &job.work);
    let summary = summary(&run_ok(&mut resume));
    assert_same_output(&out, &local);
    assert!(sorted_lines(&out) == counted_words(&input));
    let steps = summary["steps"].as_array().unwrap();
    assert_eq!(steps[0]["earlier_run"], true, "{summary}");
    assert_eq!(steps[0]["summary"]["map"]["tasks"], 18, "the first step as the killed run recorded it");
    assert_eq!(steps[1]["earlier_run"], false);
    assert_resumed(&steps[1]["summary"], &maps, &reduces, &job.work);
    assert!(!out.join("_temporary").exists(), "the steps outlived the commit");
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
    assert_eq!(history["summary"]["steps"].as_array().unwrap().len(), 3);
}

/// A map-only job (`--reduce-tasks 0`) killed after some part files committed resumes
/// without rerunning them.
#[test]
fn a_map_only_job_killed_mid_job_resumes() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir);
    let args = ["--mapper", "awk '{print $2 \"\\t\" $1}'", "--reduce-tasks", "0", "--workers", "2"];
    let out = dir.path("out");
    let local = dir.path("local");
    run_ok(streaming(&input, &local, &args[..4]).args(["--local", "--quiet"]));
    let mut cmd = streaming(&input, &out, &args);
    cmd.arg("--config").arg(&config);
    let mut job = Background::start(cmd, &dir, "map-only");
    wait_for(120, "part files", || files_named(&out, "part-m-") >= 4);
    job.sigkill();
    let maps = journaled(&out, "map");
    assert!(!maps.is_empty() && maps.len() < 18, "journaled: {maps:?}");
    let mut resume = streaming(&input, &out, &args);
    resume.arg("--config").arg(&config).args(["--resume", "--json"]).env("TMPDIR", &job.work);
    let summary = summary(&run_ok(&mut resume));
    assert_same_output(&out, &local);
    assert_eq!(files_named(&out, "part-m-"), 18);
    assert_resumed(&summary, &maps, &BTreeSet::new(), &job.work);
}

/// A job with `--output-compression gzip` killed after a compressed part file committed
/// resumes without rerunning its task.
#[test]
fn a_job_with_compressed_output_killed_mid_job_resumes() {
    let dir = Dir::new();
    let input = input(&dir);
    let config = slow(&dir);
    let count = "awk -F'\\t' '$1 != k { if (NR > 1) print k \"\\t\" c; k = $1; c = 0 } { c += 1 } END { if (NR > 0) \
                 print k \"\\t\" c }'";
    let args = ["--mapper", "tr ' ' '\\n'", "--reducer", count, "--output-compression", "gzip", "--reduce-tasks", "3"];
    let out = dir.path("out");
    let local = dir.path("local");
    run_ok(streaming(&input, &local, &args).args(["--local", "--quiet"]));
    let mut cmd = streaming(&input, &out, &args);
    cmd.args(["--workers", "2", "--config"]).arg(&config);
    let mut job = Background::start(cmd, &dir, "gzip-resume");
    wait_for(120, "a compressed part file", || {
        std::fs::read_dir(&out).is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".gz")))
    });
    job.sigkill();
    // Killed in the reduce phase: every map is journaled (the reduces start 300 ms after the
    // last map's commit); a reduce may not be yet.
    let (maps, reduces) = (journaled(&out, "map"), journaled(&out, "reduce"));
    assert_eq!(maps.len(), 18, "journaled: {maps:?}");
    let mut resume = streaming(&input, &out, &args);
    resume.args(["--workers", "2", "--config"]).arg(&config).args(["--resume", "--json"]).env("TMPDIR", &job.work);
    let summary = summary(&run_ok(&mut resume));
    assert_same_output(&out, &local);
    assert_eq!(files_named(&out, "part-r-"), 3);
    assert_resumed(&summary, &maps, &reduces, &job.work);
}

#[test]
fn bad_steps_files_and_flags_are_errors_that_name_the_fix() {
    let dir = Dir::new();
    let input = input(&dir);
    let out = dir.path("out");
    let usage = |file: &str, text: &str, extra: &[&str]| {
        let steps = dir.write(file, text);
        let err = run_usage(streaming(&input, &out, &["--steps", steps.to_str().unwrap()]).args(extra));
        assert!(!out.exists(), "a refused job left {}", out.display());
        err
    };
    let err = usage("typo.toml", "[[step]]\nmapper = \"cat\"\n\n[[step]]\nreduser = \"wc\"\n", &[]);
    assert!(err.contains("typo.toml, line 5: step[1].reduser: unknown field"), "{err}");
    let err = usage("syntax.toml", "[[step]]\nmapper = cat\n", &[]);
    assert!(err.contains("syntax.toml, line 2"), "{err}");
    let err = usage("type.toml", "[[step]]\nmapper = \"cat\"\nreduce_tasks = \"two\"\n", &[]);
    assert!(err.contains("line 3: step[0].reduce_tasks"), "{err}");
    let err = usage("empty.toml", "# nothing\n", &[]);
    assert!(err.contains("no [[step]]"), "{err}");
    let err = usage("zero.toml", "[[step]]\nmapper = \"cat\"\n[[step]]\nreducer = \"cat\"\nkey_fields = 0\n", &[]);
    assert!(err.contains("line 3, step 2 of 2") && err.contains("--key-fields"), "{err}");
    let err = usage("nothing.toml", "[[step]]\nreduce_tasks = 2\n", &[]);
    assert!(err.contains("no mapper and no reducer"), "{err}");
    let good = "[[step]]\nmapper = \"cat\"\nreducer = \"cat\"\n";
    for flag in ["--mapper", "--reducer", "--combiner"] {
        let err = usage("good.toml", good, &[flag, "cat"]);
        assert!(err.contains("cannot be used with") && err.contains(flag), "{err}");
    }
    let err = usage("good.toml", good, &["--reduce-tasks", "0"]);
    assert!(err.contains("map-only"), "{err}");
    let url = format!("file://{}", dir.path("url-out").display());
    let err = run_usage(&mut streaming(&input, Path::new(&url), &["--steps", dir.path("good.toml").to_str().unwrap()]));
    assert!(err.contains("local --output"), "{err}");
    let err = run_usage(&mut streaming(&input, &out, &["--steps", dir.path("absent.toml").to_str().unwrap()]));
    assert!(err.contains("absent.toml"), "{err}");
    let mut coordinator = mr();
    coordinator.args(["coordinator", "streaming", "--steps"]).arg(dir.path("good.toml"));
    coordinator.arg("--input").arg(&input).arg("--output").arg(&out).args(["--listen", "127.0.0.1:0"]);
    assert!(run_usage(&mut coordinator).contains("mr run"));

    // A step that fails fails the job, which leaves nothing behind.
    let failing =
        dir.write("failing.toml", "[[step]]\nmapper = \"cat\"\nreducer = \"cat\"\n[[step]]\nreducer = \"exit 3\"\n");
    let mut cmd = streaming(&input, &out, &["--steps", failing.to_str().unwrap(), "--max-attempts", "1"]);
    let err = run_fail(cmd.args(["--workers", "2"]));
    assert!(err.contains("step 2 of 2"), "{err}");
    assert!(!out.exists(), "a failed job left {}", out.display());
}
