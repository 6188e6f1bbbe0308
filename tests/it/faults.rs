//! Fault tolerance through the binary: injected crashes, workers killed and stopped from
//! outside, stragglers, poison records, crash loops, and a killed coordinator. Every run that
//! succeeds must be byte-identical to `--local`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

fn local_oracle(dir: &Dir, input: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.path("local");
    run_ok(wordcount(input, &out, extra).args(["--local", "--quiet"]));
    out
}

fn random_strings(dir: &Dir, strings: &str) -> PathBuf {
    let data = dir.path("rand");
    run_ok(
        mr().args(["gen", "word-search", "--strings", strings, "--max-len", "12", "--seed", "11", "--out"]).arg(&data),
    );
    data.join("strings.txt")
}

fn signal(pid: u32, signal: Signal) {
    kill(Pid::from_raw(pid as i32), signal).unwrap();
}

#[test]
fn crash_test_with_injected_failures_matches_local() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "700", "--reduce-tasks", "3"];
    let local = local_oracle(&dir, &input, &args);
    for seed in ["1", "2", "3"] {
        let out = dir.path(&format!("dist-{seed}"));
        let stdout = run_ok(wordcount(&input, &out, &args).args([
            "--workers",
            "3",
            "--inject-failure",
            "0.3",
            "--inject-seed",
            seed,
            "--worker-timeout",
            "30s",
            "--json",
        ]));
        let s = summary(&stdout);
        let lost = s["attempts"].as_array().unwrap().iter().filter(|a| a["outcome"] == "lost").count();
        assert!(lost > 0, "seed {seed}: no injected failure happened:\n{stdout}");
        // A crashed worker process's attempts are lost when it exits, not at the worker timeout.
        assert!(s["wall_ms"].as_u64().unwrap() < 30_000, "seed {seed}: waited for the worker timeout:\n{stdout}");
        assert_same_output(&out, &local);
    }
}

/// The attempts of `phase` in a `--json` summary with `outcome`, as (task, attempt). A failed
/// attempt's outcome is `{"failed": ERROR}`.
fn attempts_of(summary: &serde_json::Value, phase: &str, outcome: &str) -> Vec<(u64, u64)> {
    summary["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["id"]["task"]["phase"] == phase && (a["outcome"] == outcome || a["outcome"].get(outcome).is_some())
        })
        .map(|a| (a["id"]["task"]["index"].as_u64().unwrap(), a["id"]["attempt"].as_u64().unwrap()))
        .collect()
}

#[test]
fn workers_killed_in_map_and_reduce_phases() {
    let dir = Dir::new();
    let input = random_strings(&dir, "600000");
    let args = ["--split-size", "128KiB", "--reduce-tasks", "2"];
    let local = local_oracle(&dir, &input, &args);
    // Every reduce attempt waits 1 s before it starts: a window in which the test can see it
    // running and kill its worker.
    let config = dir.write("mr.toml", "[faults.reduce]\nstraggler = 1.0\nstraggler_delay_ms = 1000\n");
    let status = crate::watch::Status::new();
    let out = dir.path("dist");
    let mut cmd = wordcount(&input, &out, &args);
    cmd.args(["--workers", "2", "--json", "--speculative", "off"]).args(status.flag()).arg("--config").arg(&config);
    let job = Background::start(cmd, &dir, "sigkill");
    // Map phase: a map task has committed, a worker is running a map attempt, and maps are left
    // to run (the phase does not end before the kill).
    let mut victim = None;
    wait_for(60, "a worker running a map attempt after a first commit", || {
        let Some(view) = status.job() else { return false };
        let map = crate::watch::phase(&view, "map");
        let early = map["done"].as_u64() >= Some(1) && map["idle"].as_u64() >= Some(4);
        victim = crate::watch::worker_running(&view, "map").filter(|_| early);
        victim.is_some()
    });
    let (pid, attempt) = victim.take().unwrap();
    signal(pid, Signal::SIGKILL);
    // Reduce phase: every map is done and a worker is running a reduce attempt.
    wait_for(60, "a worker running a reduce attempt", || {
        let Some(view) = status.job() else { return false };
        victim = crate::watch::worker_running(&view, "reduce");
        victim.is_some()
    });
    let (pid, reduce_attempt) = victim.unwrap();
    signal(pid, Signal::SIGKILL);
    let (exit, stdout, stderr) = job.finish();
    assert!(exit.success(), "{stderr}");
    assert_same_output(&out, &local);
    let s = summary(&stdout);
    let lost_maps = attempts_of(&s, "map", "lost");
    let lost_reduces = attempts_of(&s, "reduce", "lost");
    assert!(!lost_maps.is_empty(), "killed during {attempt}, yet no map attempt was lost:\n{stdout}");
    assert!(lost_reduces.len() == 1, "killed during {reduce_attempt}, yet not one reduce attempt was lost:\n{stdout}");
    // The lost reduce task ran again and that later attempt committed.
    let (task, attempt) = lost_reduces[0];
    let committed = attempts_of(&s, "reduce", "committed");
    assert!(committed.iter().any(|&(t, a)| t == task && a > attempt), "reduce task {task} was not re-run:\n{stdout}");
}

#[test]
fn a_stopped_worker_is_declared_dead_and_its_task_rerun() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "4000", "--reduce-tasks", "2"];
    let local = local_oracle(&dir, &input, &args);
    // Every map attempt sleeps 1 s first: a window in which the test sees it running and stops
    // its worker inside it.
    let config = dir.write("mr.toml", "[faults.map]\nstraggler = 1.0\nstraggler_delay_ms = 1000\n");
    let status = crate::watch::Status::new();
    let out = dir.path("dist");
    let mut cmd = wordcount(&input, &out, &args);
    cmd.args(["--workers", "2", "--worker-timeout", "1s", "--speculative", "off", "--json", "--config"]).arg(&config);
    cmd.args(status.flag());
    let job = Background::start(cmd, &dir, "sigstop");
    let mut victim = None;
    wait_for(60, "a worker running a map attempt", || {
        let Some(view) = status.job() else { return false };
        victim = crate::watch::worker_running(&view, "map");
        victim.is_some()
    });
    let (stopped, attempt) = victim.unwrap();
    signal(stopped, Signal::SIGSTOP);
    let (exit, stdout, stderr) = job.finish();
    assert!(exit.success(), "{stderr}");
    let s = summary(&stdout);
    let lost = s["attempts"].as_array().unwrap().iter().filter(|a| a["outcome"] == "lost").count();
    assert!(lost >= 1, "the worker stopped during {attempt} lost no attempt:\n{stdout}");
    assert_same_output(&out, &local);
}

/// The `--local` oracle of a word count with `args`, and a seed (as a flag value) under which
/// exactly one of its map tasks straggles at probability 0.2 (see `seed_with_one_straggler`).
fn straggler_setup(dir: &Dir, input: &Path, args: &[&str]) -> (PathBuf, String) {
    let local = local_oracle(dir, input, args);
    let maps = summary(&run_ok(wordcount(input, &dir.path("count"), args).args(["--local", "--json"])))["map"]["tasks"]
        .as_u64()
        .unwrap() as u32;
    (local, seed_with_one_straggler(maps, 0.2).to_string())
}

/// Runs a word count with `args` and `extra` on two workers, one of its map tasks straggling
/// for 60 s (see `straggler_setup`), which must not hold the job up. Returns the `--local`
/// oracle's output, the job's output and its summary (`--json`).
fn run_with_one_straggler(dir: &Dir, input: &Path, args: &[&str], extra: &[&str]) -> (PathBuf, PathBuf, String) {
    let (local, seed) = straggler_setup(dir, input, args);
    let out = dir.path("dist");
    let start = Instant::now();
    let mut cmd = wordcount(input, &out, args);
    cmd.args(["--workers", "2"]).args(extra);
    cmd.args(["--inject-straggler", "0.2", "--straggler-delay", "60000", "--inject-seed", &seed, "--json"]);
    let stdout = run_ok(&mut cmd);
    assert!(start.elapsed() < Duration::from_secs(20), "the job waited for its straggler: {:?}", start.elapsed());
    (local, out, stdout)
}

/// A seed under which exactly one of `maps` map tasks straggles on its first attempt, and
/// its backup does not.
fn seed_with_one_straggler(maps: u32, p: f64) -> u64 {
    use mr::exec::fault::{Faults, PhaseFaults};
    use mr::types::{AttemptId, Phase, TaskId};
    (0..10_000)
        .find(|&seed| {
            let faults = Faults {
                map: PhaseFaults { straggler: p, straggler_delay_ms: 1, ..Default::default() },
                seed,
                ..Default::default()
            };
            let straggles = |index, attempt| {
                faults.for_attempt(AttemptId { task: TaskId { phase: Phase::Map, index }, attempt }).delay.is_some()
            };
            let slow: Vec<u32> = (0..maps).filter(|&i| straggles(i, 0)).collect();
            slow.len() == 1 && !straggles(slow[0], 1)
        })
        .expect("some seed has exactly one straggler")
}

#[test]
fn backup_attempts_beat_a_straggler() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "4000", "--reduce-tasks", "2"];
    let (local, out, stdout) = run_with_one_straggler(&dir, &input, &args, &[]);
    assert!(summary(&stdout)["speculative_attempts"].as_u64().unwrap() >= 1, "{stdout}");
    assert_same_output(&out, &local);
}

#[test]
fn poison_record_fails_the_job_clearly_or_is_skipped() {
    let dir = Dir::new();
    let input = dir.write("in/good.txt", "alpha beta\ngamma\n");
    dir.write("in/poison.txt", b"delta\nbad \xff line\nepsilon delta\n");
    let out = dir.path("out");
    let mut cmd = wordcount(input.parent().unwrap(), &out, &["--workers", "2", "--max-attempts", "2"]);
    let err = run_fail(&mut cmd);
    // The two small files are packed into one split, which the error names.
    assert!(err.contains("map task 0 (input ") && err.contains("good.txt bytes 0..17, "), "{err}");
    assert!(err.contains("poison.txt bytes 0..31)"), "{err}");
    assert!(err.contains("2 attempts out of 2 allowed") && err.contains("invalid UTF-8"), "{err}");
    assert!(!out.exists(), "a failed job left output behind");

    let stdout = run_ok(
        wordcount(input.parent().unwrap(), &out, &["--workers", "2", "--reduce-tasks", "1", "--skip-bad-records"])
            .arg("--json"),
    );
    assert_eq!(summary(&stdout)["map"]["counters"]["skipped_records"], 1, "{stdout}");
    assert_eq!(parts(&out)[0].1, b"alpha\t1\nbeta\t1\ndelta\t2\nepsilon\t1\ngamma\t1\n");
}

#[test]
fn workers_that_keep_dying_fail_the_job() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = dir.path("out");
    let mut cmd = wordcount(&input, &out, &["--workers", "2", "--inject-failure", "1", "--max-restarts", "3"]);
    let err = run_fail(&mut cmd);
    assert!(err.contains("died 4 times in a row"), "{err}");
    assert!(!out.exists());
}

#[test]
fn workers_exit_when_the_coordinator_is_killed() {
    let dir = Dir::new();
    let input = random_strings(&dir, "600000");
    let out = dir.path("out");
    let config = dir.write("mr.toml", "[faults.map]\nstraggler = 1.0\nstraggler_delay_ms = 30000\n");
    let mut cmd = wordcount(&input, &out, &["--workers", "2", "--config"]);
    cmd.arg(&config);
    let mut job = Background::start(cmd, &dir, "coordinator-kill");
    wait_for(60, "both workers running", || job.workers().len() == 2);
    signal(job.child.id(), Signal::SIGKILL);
    job.child.wait().unwrap();
    let start = Instant::now();
    wait_for(5, "every worker to exit after the coordinator died", || job.workers().is_empty());
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn worker_logs_are_kept_and_named_when_a_job_fails_and_removed_when_it_succeeds() {
    let dir = Dir::new();
    let tmp = dir.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let input = dir.write("in/poison.txt", b"fine\nbad \xff line\n");
    let out = dir.path("out");
    // Not run_fail, which removes the logs it sees: these are read below.
    let output = wordcount(&input, &out, &["--workers", "2", "--max-attempts", "2", "--log-format", "json"])
        .env("TMPDIR", &tmp)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    let logs = PathBuf::from(err.rsplit_once("worker logs: ").expect("the error names the logs").1.trim());
    assert!(logs.starts_with(&tmp), "{err}");
    let mut failed = 0;
    for entry in std::fs::read_dir(&logs).unwrap().flatten() {
        for line in std::fs::read_to_string(entry.path()).unwrap().lines() {
            let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if event["fields"]["message"] == "attempt failed" {
                // Every line of an attempt names the job, the worker, the task and the attempt.
                assert_eq!(event["span"]["task"], "map task 0", "{line}");
                assert_eq!(event["spans"][0]["job"], "wordcount", "{line}");
                assert!(event["spans"][0]["worker"].is_u64(), "{line}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 2, "two failed attempts are logged");
    std::fs::remove_dir_all(&logs).unwrap();
    std::fs::write(&input, "fine\n").unwrap();
    run_ok(wordcount(&input, &out, &["--workers", "2", "--quiet"]).env("TMPDIR", &tmp));
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "a successful job left {left:?}");
}

/// Every map output file (`*.out`) under `dir`.
fn map_output_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(map_output_files(&path));
        } else if path.extension().is_some_and(|x| x == "out") {
            found.push(path);
        }
    }
    found
}

#[test]
fn a_corrupt_map_output_counts_against_max_attempts() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "8000", "--reduce-tasks", "1"];
    let local = local_oracle(&dir, &input, &args);
    // Every reduce attempt waits 1.5 s before it reads the map outputs: time to corrupt them.
    let config = dir.write("mr.toml", "[faults.reduce]\nstraggler = 1.0\nstraggler_delay_ms = 1500\n");
    for max_attempts in ["1", "2"] {
        let status = crate::watch::Status::new();
        let out = dir.path(&format!("out-{max_attempts}"));
        let mut cmd = wordcount(&input, &out, &args);
        cmd.args(["--workers", "2", "--json", "--max-attempts", max_attempts, "--speculative", "off"]);
        cmd.args(status.flag()).arg("--config").arg(&config);
        let job = Background::start(cmd, &dir, "corrupt");
        wait_for(60, "every map done and a reduce attempt started", || {
            status.job().is_some_and(|v| {
                let map = crate::watch::phase(&v, "map");
                map["done"] == map["tasks"] && crate::watch::phase(&v, "reduce")["running"] == 1
            })
        });
        let files = map_output_files(&job.work);
        assert!(files.len() >= 2, "{files:?}");
        for file in &files {
            // The last byte of partition 0 (the only one): the low byte of the last record's
            // count, so the records still parse and only the segment's CRC32 tells.
            let segment = &mr::data::mapout::read_index(file, 1).unwrap()[0];
            assert!(segment.len > 0, "{}", file.display());
            let mut bytes = std::fs::read(file).unwrap();
            bytes[(segment.offset + segment.len - 1) as usize] ^= 0x01;
            std::fs::write(file, bytes).unwrap();
        }
        let (exit, stdout, stderr) = job.finish();
        if max_attempts == "1" {
            // The first corrupt output found fails its map task's only allowed attempt.
            assert_eq!(exit.code(), Some(1), "{stderr}");
            assert!(stderr.contains("map task") && stderr.contains("1 attempts out of 1 allowed"), "{stderr}");
            assert!(stderr.contains("corrupt"), "{stderr}");
            assert!(!out.exists(), "a failed job left its output");
            remove_kept_logs(&stderr);
        } else {
            // With a second attempt allowed, each map task whose output was found corrupt runs
            // again (its committed attempt becomes lost, and counts as a failure).
            assert!(exit.success(), "{stderr}");
            assert_same_output(&out, &local);
            let s = summary(&stdout);
            let lost = attempts_of(&s, "map", "lost");
            assert!(!lost.is_empty(), "no corrupt map output was rerun:\n{stdout}");
            for (task, attempt) in lost {
                let committed = attempts_of(&s, "map", "committed");
                assert!(committed.iter().any(|&(t, a)| t == task && a > attempt), "map {task} not rerun:\n{stdout}");
            }
        }
    }
}

#[test]
fn an_attempt_without_progress_for_task_timeout_fails_and_runs_again() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "4000", "--reduce-tasks", "2"];
    // One attempt sleeps 60 s before it starts: no progress, so after --task-timeout 3s it is
    // abandoned as a failure and its task runs again (no backups: speculation is off).
    let extra = ["--speculative", "off", "--task-timeout", "3s"];
    let (local, out, stdout) = run_with_one_straggler(&dir, &input, &args, &extra);
    let s = summary(&stdout);
    let failed = attempts_of(&s, "map", "failed");
    assert_eq!(failed.len(), 1, "{stdout}");
    let (task, _) = failed[0];
    let attempt = s["attempts"].as_array().unwrap().iter().find(|a| a["outcome"].get("failed").is_some()).unwrap();
    let error = attempt["outcome"]["failed"].as_str().unwrap_or_default();
    assert!(error.contains("no progress for 3.0 s (task timeout)"), "{attempt}");
    assert!(attempts_of(&s, "map", "committed").contains(&(task, 1)), "{stdout}");
    assert_same_output(&out, &local);

    // Every attempt straggling: each is abandoned, and after --max-attempts the job fails.
    let err = run_fail(wordcount(&input, &dir.path("never"), &args).args([
        "--workers",
        "2",
        "--task-timeout",
        "3s",
        "--max-attempts",
        "2",
        "--inject-straggler",
        "1",
        "--straggler-delay",
        "60000",
    ]));
    assert!(err.contains("2 attempts out of 2 allowed") && err.contains("(task timeout)"), "{err}");
    assert!(!dir.path("never").exists());
}
