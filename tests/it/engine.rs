//! The engine end to end: distributed runs against `--local` and a reference, parallelism,
//! exactly-once execution, worker exits, bad input, and Ctrl-C.

use std::path::Path;

use crate::harness::*;

#[test]
fn wordcount_matches_local_and_reference() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let expected = reference("jobs.py", &[Path::new("wordcount"), &input]);
    assert!(!expected.windows(10).any(|w| w == b"hiddenword"), "the reference skips hidden files");
    for (i, (split, reduces, workers)) in
        [("13", "1", "1"), ("64", "3", "2"), ("1000", "5", "3"), ("1MiB", "2", "2")].iter().enumerate()
    {
        let dist = dir.path(&format!("dist-{i}"));
        let local = dir.path(&format!("local-{i}"));
        let args = ["--split-size", split, "--reduce-tasks", reduces];
        run_ok(wordcount(&input, &dist, &args).args(["--workers", workers]).arg("--quiet"));
        run_ok(wordcount(&input, &local, &args).arg("--local").arg("--quiet"));
        assert_same_output(&dist, &local);
        assert_keys_sorted(&dist);
        assert_eq!(parts(&dist).len(), reduces.parse::<usize>().unwrap());
        let got = sorted_lines(&dist);
        assert!(got == expected, "split {split}, R {reduces}, W {workers}: output differs from the reference");
    }
}

#[test]
fn word_search_matches_local_and_reference() {
    let dir = Dir::new();
    let data = dir.path("ws");
    run_ok(
        mr().args(["gen", "word-search", "--strings", "20000", "--targets", "40", "--seed", "3", "--out"]).arg(&data),
    );
    let strings = data.join("strings.txt");
    let targets = data.join("targets.txt");
    let expected = reference("word_search.py", &[&targets, &strings]);
    let run = |out: &Path, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "word-search", "--input"]).arg(&strings).arg("--targets").arg(&targets);
        cmd.arg("--output").arg(out).args(["--split-size", "20000", "--quiet"]).args(extra);
        run_ok(&mut cmd);
    };
    run(&dir.path("dist"), &["--workers", "2", "--reduce-tasks", "3"]);
    run(&dir.path("local"), &["--local", "--reduce-tasks", "3"]);
    assert_same_output(&dir.path("dist"), &dir.path("local"));
    assert!(sorted_lines(&dir.path("dist")) == expected, "word-search differs from the reference");
}

/// A corpus of random strings: many distinct keys, so that both phases have real work.
fn random_strings(dir: &Dir) -> std::path::PathBuf {
    let data = dir.path("rand");
    run_ok(
        mr().args(["gen", "word-search", "--strings", "600000", "--max-len", "12", "--seed", "9", "--out"]).arg(&data),
    );
    data.join("strings.txt")
}

fn overlapping(attempts: &[serde_json::Value], phase: &str) -> bool {
    let of_phase: Vec<(u64, u64, u64)> = attempts
        .iter()
        .filter(|a| a["id"]["task"]["phase"] == phase)
        .map(|a| (a["worker"].as_u64().unwrap(), a["start_ms"].as_u64().unwrap(), a["end_ms"].as_u64().unwrap()))
        .collect();
    of_phase.iter().any(|a| of_phase.iter().any(|b| a.0 != b.0 && a.1 < b.2 && b.1 < a.2))
}

#[test]
fn tasks_of_a_phase_run_in_parallel_and_exactly_once() {
    let dir = Dir::new();
    let input = random_strings(&dir);
    let out = dir.path("out");
    let stdout = run_ok(&mut wordcount(
        &input,
        &out,
        &["--workers", "2", "--reduce-tasks", "2", "--split-size", "400KiB", "--json"],
    ));
    let s = summary(&stdout);
    let attempts = s["attempts"].as_array().unwrap();
    let maps = s["map"]["tasks"].as_u64().unwrap();
    let reduces = s["reduce"]["tasks"].as_u64().unwrap();
    assert!(maps >= 8, "{maps} map tasks");
    // Job count: in a fault-free run every task is executed exactly once.
    assert_eq!(attempts.len() as u64, maps + reduces, "{stdout}");
    assert!(attempts.iter().all(|a| a["outcome"] == "committed"), "{stdout}");
    let mut ids: Vec<String> = attempts.iter().map(|a| a["id"]["task"].to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u64, maps + reduces);
    assert!(overlapping(attempts, "map"), "no two map tasks ran at the same time:\n{stdout}");
    assert!(overlapping(attempts, "reduce"), "no two reduce tasks ran at the same time:\n{stdout}");
    // The attempt records are the engine's own account: the output must show it too. Each
    // word once, with its count, in the part file of its partition (xxh3 of the word, mod 2).
    let expected = reference("jobs.py", &[Path::new("wordcount"), &input]);
    assert!(sorted_lines(&out) == expected, "the output differs from the reference");
    let local = dir.path("local");
    run_ok(&mut wordcount(&input, &local, &["--local", "--reduce-tasks", "2", "--split-size", "400KiB", "--quiet"]));
    assert_same_output(&out, &local);
    for (name, bytes) in parts(&out) {
        let index: u32 = name.strip_prefix("part-r-").unwrap().parse().unwrap();
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let word = line.split(|&b| b == b'\t').next().unwrap();
            assert_eq!(mr::job::partition::partition(word, 2), index, "{} in {name}", String::from_utf8_lossy(word));
        }
    }
}

#[test]
fn no_worker_exits_before_the_job_commits() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = dir.path("out");
    let stdout = run_ok(&mut wordcount(&input, &out, &["--workers", "3", "--split-size", "2000", "--json"]));
    let s = summary(&stdout);
    let committed = s["committed_ms"].as_u64().expect("the job committed");
    let workers = s["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3, "{stdout}");
    for w in workers {
        assert!(w["exit_ms"].as_u64().unwrap() >= committed, "a worker exited before the commit:\n{stdout}");
        assert_eq!(w["status"], "exit status: 0", "{stdout}");
    }
}

#[test]
fn sample_run_with_no_arguments() {
    let stdout = run_ok(mr().args(["run", "--workers", "2"]));
    assert!(stdout.contains("top 20 words:"), "{stdout}");
    assert!(stdout.contains(" the\n"), "{stdout}");
    let output = stdout.lines().last().unwrap().rsplit_once("output in ").unwrap().1.to_string();
    assert!(Path::new(&output).join("_SUCCESS").is_file());
    std::fs::remove_dir_all(output).unwrap();
}

#[test]
fn empty_files_give_empty_committed_output() {
    let dir = Dir::new();
    dir.write("in/empty1.txt", "");
    dir.write("in/empty2.txt", "");
    let out = dir.path("out");
    run_ok(&mut wordcount(&dir.path("in"), &out, &["--workers", "1", "--reduce-tasks", "2", "--quiet"]));
    let p = parts(&out);
    assert_eq!(p.len(), 2);
    assert!(p.iter().all(|(_, bytes)| bytes.is_empty()));
}

#[test]
fn overwrite_replaces_a_non_empty_output() {
    let dir = Dir::new();
    let input = dir.write("in.txt", "b a b\n");
    let out = dir.path("out");
    dir.write("out/part-r-00007", "old");
    let err = run_fail(&mut wordcount(&input, &out, &["--quiet"]));
    assert!(err.contains("is not empty") && err.contains("--overwrite"), "{err}");
    assert!(out.join("part-r-00007").is_file(), "a refused job must not touch the output");
    run_ok(&mut wordcount(&input, &out, &["--quiet", "--overwrite", "--reduce-tasks", "1"]));
    assert!(!out.join("part-r-00007").exists());
    assert_eq!(parts(&out)[0].1, b"a\t1\nb\t2\n");
}

#[test]
fn bad_input_is_a_clear_error_with_nothing_written() {
    let dir = Dir::new();
    let out = dir.path("out");

    let err = run_fail(&mut wordcount(&dir.path("missing.txt"), &out, &[]));
    assert!(err.contains("missing.txt") && err.contains("does not exist"), "{err}");
    assert!(!out.exists());

    // A symlink loop cannot be read, even by root.
    std::os::unix::fs::symlink(dir.path("loop"), dir.path("loop")).unwrap();
    let err = run_fail(&mut wordcount(&dir.path("loop"), &out, &[]));
    assert!(err.contains("cannot read input") && err.contains("loop"), "{err}");
    assert!(!out.exists());

    std::fs::create_dir(dir.path("no-files")).unwrap();
    let err = run_fail(&mut wordcount(&dir.path("no-files"), &out, &[]));
    assert!(err.contains("no input files"), "{err}");

    let bad = dir.write("bad/bad.txt", b"good line\nbad \xff byte\n");
    for mode in [&["--workers", "2"][..], &["--local"][..]] {
        let err = run_fail(&mut wordcount(&bad, &out, mode));
        assert!(err.contains("invalid UTF-8") && err.contains("bad.txt") && err.contains("byte offset 14"), "{err}");
        assert!(!out.exists(), "a failed job left {}", out.display());
    }

    let refused = wordcount(&bad, &dir.path("bad"), &["--overwrite"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("would contain the input"), "{err}");
    assert!(bad.is_file(), "the input must survive");

    let err = run_usage(mr().args(["run", "no-such-job", "--input"]).arg(&bad).arg("--output").arg(&out));
    assert!(err.contains("unknown job 'no-such-job'") && err.contains("wordcount"), "{err}");
}

#[test]
fn busy_port_is_a_clear_error() {
    let dir = Dir::new();
    let input = dir.write("in.txt", "a\n");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = dir.path("out");
    let err = run_fail(&mut wordcount(&input, &out, &["--listen", &addr]));
    assert!(err.contains("cannot listen on") && err.contains(&addr), "{err}");
    assert!(!out.exists());
}

#[test]
fn ctrl_c_stops_everything_and_keeps_only_what_resume_needs() {
    let dir = Dir::new();
    let input = random_strings(&dir);
    let out = dir.path("out");
    let job = Background::start(
        wordcount(&input, &out, &["--workers", "2", "--split-size", "64KiB", "--quiet"]),
        &dir,
        "ctrl-c",
    );
    // Interrupt once both workers are at work.
    wait_for(30, "two workers and a committed map output", || job.workers().len() == 2 && job.map_outputs() >= 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(job.child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let start = std::time::Instant::now();
    let work = job.work.clone();
    let (status, _, _) = job.finish();
    assert!(start.elapsed().as_secs() < 5, "the job took {:?} to stop", start.elapsed());
    assert_eq!(status.code(), Some(130));
    assert_kept_for_resume(&out, &work, "ctrl-c");
}

/// An interrupted distributed job keeps its output directory with the journal and no
/// `_SUCCESS`, and in TMPDIR only its work directory (committed map outputs) and its logs.
fn assert_kept_for_resume(out: &Path, work: &Path, name: &str) {
    assert!(mr::control::journal::path_for(out).exists(), "{name}: the journal is gone");
    assert!(!out.join("_SUCCESS").exists(), "{name}: an interrupted job committed");
    for entry in std::fs::read_dir(work).unwrap().flatten() {
        let entry = entry.file_name().to_string_lossy().into_owned();
        assert!(entry.starts_with("mr-work-") || entry.starts_with("mr-logs-"), "{name}: {entry} left in TMPDIR");
    }
}

#[test]
fn bench_command_runs_on_a_small_corpus_and_every_output_is_the_baselines() {
    let dir = Dir::new();
    // An ASCII-only count by the documented rule ([A-Za-z]+, lowercased), as `word count` lines.
    let ascii = dir.path("ascii-count.sh");
    std::fs::write(
        &ascii,
        "#!/bin/sh\ncat \"$1\"/* | tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | grep . | LC_ALL=C sort | uniq -c \\\n  | awk '{print $2 \" \" $1}'\n",
    )
    .unwrap();
    std::fs::set_permissions(&ascii, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = dir.path("b");
    let stdout = run_ok(
        mr().args(["bench", "--size", "2MiB", "--word-search-strings", "20000", "--repeat", "1", "--json", "--dir"])
            .arg(&b)
            .arg("--ascii-count")
            .arg(&ascii),
    );
    let rows = summary(&stdout);
    let rows = rows.as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 10, "{stdout}");
    assert!(names[0].contains("baseline"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("ASCII-only count") && n.contains("2 threads")), "{names:?}");
    for row in rows {
        assert!(row["usage"]["wall_s"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["usage"]["peak_rss_mib"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["wall_ratio_ascii"].as_f64().unwrap() > 0.0, "{row}");
    }
    // The baseline follows the documented rule (the Python reference), and the engine's
    // outputs are the baseline's, line for line.
    let corpus = b.join("corpus-ascii");
    let baseline = std::fs::read(b.join("baseline-2.txt")).unwrap();
    assert!(
        baseline == reference("jobs.py", &[Path::new("wordcount"), &corpus]),
        "the baseline differs from the reference"
    );
    assert!(std::fs::read(b.join("baseline-1.txt")).unwrap() == baseline, "the 1-thread baseline differs");
    for out in ["mr-2", "mr-1", "mr-local"] {
        assert!(sorted_lines(&b.join(out)) == baseline, "{out} differs from the baseline");
    }
}

#[test]
fn progress_bars_on_a_terminal_and_plain_lines_otherwise() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = dir.path("tty");
    // Under a pseudo-terminal: bars, redrawn in place.
    let script = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_mr"));
    for var in outer_mr_vars() {
        cmd.env_remove(var);
    }
    cmd.args(["run", "wordcount", "--workers", "2", "--split-size", "500", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out);
    let screen = run_ok(&mut cmd);
    assert!(screen.contains("map    [") && screen.contains("reduce [") && screen.contains("tasks"), "{screen}");
    assert!(screen.contains("\u{1b}["), "bars are redrawn with terminal escapes: {screen}");
    // Not a terminal: plain lines, the last one with every task done.
    let plain = mr()
        .args(["run", "wordcount", "--workers", "2", "--split-size", "500", "--reduce-tasks", "2", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path("plain"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&plain.stderr);
    let last = stderr.lines().rfind(|l| l.starts_with("mr: map ")).unwrap_or_default().to_string();
    assert!(last.ends_with("reduce 2/2 tasks") && !stderr.contains("\u{1b}["), "{stderr}");
    // --quiet: nothing.
    let quiet = mr()
        .args(["run", "wordcount", "--quiet", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path("q"))
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty() && quiet.stdout.is_empty());
}

#[test]
fn a_committed_job_leaves_its_history() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = dir.path("out");
    run_ok(&mut wordcount(&input, &out, &["--workers", "2", "--reduce-tasks", "3", "--split-size", "4000", "--quiet"]));
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
    let (config, summary) = (&history["config"], &history["summary"]);
    assert_eq!(config["job"], "wordcount");
    assert_eq!(config["reduce_tasks"], 3);
    assert_eq!(config["workers"], 2);
    assert_eq!(summary["succeeded"], true);
    let maps = config["map_tasks"].as_u64().unwrap();
    assert_eq!(summary["map"]["tasks"], maps);
    let attempts = summary["attempts"].as_array().unwrap();
    assert_eq!(attempts.len() as u64, maps + 3);
    assert!(attempts.iter().all(|a| a["end_ms"].as_u64() >= a["start_ms"].as_u64() && a["outcome"] == "committed"));
    assert!(summary["reduce"]["counters"]["output_records"].as_u64().unwrap() > 0);
}

#[test]
fn sigterm_stops_everything_with_exit_130_distributed_and_local() {
    let dir = Dir::new();
    let input = random_strings(&dir);
    for (name, mode) in [("sigterm", &["--workers", "2"][..]), ("sigterm-local", &["--local"][..])] {
        let out = dir.path(name);
        let mut cmd = wordcount(&input, &out, &["--split-size", "64KiB", "--quiet"]);
        cmd.args(mode);
        let job = Background::start(cmd, &dir, name);
        if mode[0] == "--local" {
            // Local mode commits map outputs into its work dir, one after another.
            wait_for(30, "a first map output", || job.map_outputs() >= 1);
        } else {
            wait_for(30, "two workers and a committed map output", || {
                job.workers().len() == 2 && job.map_outputs() >= 1
            });
        }
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(job.child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        let start = std::time::Instant::now();
        let work = job.work.clone();
        let (status, _, stderr) = job.finish();
        assert!(start.elapsed().as_secs() < 5, "{name}: the job took {:?} to stop", start.elapsed());
        assert_eq!(status.code(), Some(130), "{name}: {stderr}");
        if mode[0] == "--local" {
            // Local mode keeps no journal: it leaves nothing.
            assert!(!out.exists(), "{name}: an interrupted job left its output dir");
            let left: Vec<_> = std::fs::read_dir(&work).unwrap().flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "{name}: temporary files left: {left:?}");
        } else {
            assert_kept_for_resume(&out, &work, name);
        }
    }
}
