//! The command line itself: usage errors and their exit code, the help of each subcommand, a
//! job's own flags, and `mr gen`'s output folder and sizes.

use std::path::{Path, PathBuf};

use crate::harness::*;

fn small_input(dir: &Dir) -> PathBuf {
    dir.write("in/a.txt", "the quick brown fox\njumps over the lazy dog\n".repeat(20))
}

/// Each usage error exits with code 2, says what is wrong and how to fix it, and leaves no
/// output directory behind.
#[test]
fn usage_errors_exit_2_and_name_the_fix() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let out = dir.path("out");
    let wordcount = |extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--input"]).arg(&input).args(extra);
        cmd
    };

    let err = run_usage(&mut wordcount(&[]));
    assert!(err.contains("job 'wordcount' needs --output DIR"), "{err}");

    let err = run_usage(wordcount(&["--http", "nonsense", "--output"]).arg(&out));
    assert!(err.contains("'--http <ADDR>'") && err.contains("expected HOST:PORT"), "{err}");

    let err = run_usage(wordcount(&["--split-size", "-1", "--output"]).arg(&out));
    assert!(err.contains("'--split-size <BYTES>'") && err.contains("cannot be negative"), "{err}");
    assert!(!err.contains("'-- -1'"), "no tip to pass -1 as a positional: {err}");

    let err = run_usage(mr().args(["run", "wordcont", "--input"]).arg(&input).arg("--output").arg(&out));
    assert!(err.contains("unknown job 'wordcont' (did you mean 'wordcount'?)"), "{err}");
    for job in ["grep", "index", "sort", "streaming", "word-search", "wordcount", "teragen", "teravalidate"] {
        assert!(err.contains(job), "{job} missing from {err}");
    }
    let err = run_usage(mr().args(["coordinator", "nope", "--listen", "127.0.0.1:0"]));
    assert!(err.contains("unknown job 'nope'") && !err.contains("teragen"), "{err}");

    // A job's name after --input's paths, where it would read as one more input.
    let err = run_usage(mr().args(["run", "grep", "fox", "--input"]).arg(&input).arg("sort").arg("-o").arg(&out));
    assert!(err.contains("--input sort: there is no such file, and sort is a job"), "{err}");

    let err = run_usage(mr().args(["run", "word-search", "--input"]).arg(&input).arg("-o").arg(&out));
    assert!(err.contains("--targets <FILE>"), "a job's own required flag: {err}");
    assert!(!out.exists(), "a usage error left {}", out.display());
}

/// `--local` says which flags on its command line it ignores (but not `--http off`, which asks
/// for nothing); the job runs.
#[test]
fn local_warns_of_the_flags_it_ignores() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let local = |out: &str, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--local", "-q", "--input"]).arg(&input).arg("-o").arg(dir.path(out));
        let output = cmd.args(extra).output().unwrap();
        assert!(output.status.success(), "{}", describe(&cmd, &output));
        String::from_utf8(output.stderr).unwrap()
    };
    let err = local("a", &["--http", "127.0.0.1:0"]);
    assert!(err.contains("warning: --http has no effect with --local") && err.contains("ignored"), "{err}");
    let err = local("b", &["--max-attempts", "2", "--token", "t", "--straggler-delay", "1s"]);
    assert!(err.contains("--token, --max-attempts, --straggler-delay have no effect with --local"), "{err}");
    assert_eq!(local("c", &["--http", "off", "--sort-buffer", "1MiB"]), "", "nothing ignored, nothing said");
}

/// `mr run`'s flags go before or after the job's name, and `--input`'s paths end at the job's
/// name: all of these are the same job, with the same output.
#[test]
fn flags_go_before_or_after_the_job_name() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let after = dir.path("after");
    run_ok(mr().args(["run", "wordcount", "--local", "-q", "--input"]).arg(&input).arg("-o").arg(&after));
    for (i, args) in [
        &["run", "--local", "-q", "--input", "IN", "wordcount", "-o", "OUT"][..],
        &["run", "-q", "--input", "IN", "--local", "-o", "OUT", "wordcount"][..],
        &["run", "--input", "IN", "-o", "OUT", "-q", "--local"][..],
    ]
    .into_iter()
    .enumerate()
    {
        let out = dir.path(&format!("out{i}"));
        let args = args.iter().map(|a| match *a {
            "IN" => input.as_os_str(),
            "OUT" => out.as_os_str(),
            a => a.as_ref(),
        });
        run_ok(mr().args(args));
        assert_same_output(&out, &after);
    }
}

fn help(args: &[&str]) -> String {
    run_ok(mr().args(args).arg("-h"))
}

/// Each subcommand's help groups its flags under headings and shows only the flags that
/// apply to it; a job's help shows its own flags.
#[test]
fn help_is_grouped_and_shows_only_what_applies() {
    let run = help(&["run"]);
    for heading in ["Jobs:", "Input and output:", "Resources:", "Fault tolerance:", "Cluster and security:"] {
        assert!(run.contains(heading), "{heading} missing from\n{run}");
    }
    for item in ["Output format:", "Fault injection (testing):", "wordcount", "teragen", "teravalidate", "--local"] {
        assert!(run.contains(item), "{item} missing from\n{run}");
    }
    assert!(!run.contains("--targets") && !run.contains("--mapper") && !run.contains("--records"), "{run}");

    let coordinator = help(&["coordinator"]);
    for absent in ["--local", "--records", "teragen"] {
        assert!(!coordinator.contains(absent), "{absent} in\n{coordinator}");
    }
    let listen = coordinator.lines().find(|l| l.contains("--listen <ADDR>")).unwrap_or_default();
    assert!(listen.contains("required") && !listen.contains("default"), "{listen}");

    let status = help(&["status"]);
    assert!(!status.contains("worker log files") && !status.contains("--workers"), "{status}");

    let worker = help(&["worker"]);
    assert!(worker.contains("Cluster and security:") && worker.contains("--tls-ca"), "{worker}");
    assert!(!worker.contains("--local") && !worker.contains("--sort-buffer"), "{worker}");

    // `mr submit` has no part in the services, workers and resumes the cluster runs: those
    // flags are not shown, and refused when given, with nothing sent to the cluster.
    for submit in [help(&["submit"]), help(&["submit", "wordcount"])] {
        assert!(submit.contains("--cluster <URL>") && submit.contains("--detach"), "{submit}");
        let flags: Vec<&str> = submit.lines().filter_map(|l| l.split_whitespace().next()).collect();
        for absent in ["--listen", "--http", "--oversubscribe", "--max-restarts", "--resume", "teragen"] {
            assert!(!flags.contains(&absent), "{absent} in\n{submit}");
        }
    }
    let refused = mr()
        .args(["submit", "--cluster", "http://127.0.0.1:9", "wordcount", "--input", "in", "--output", "out"])
        .args(["--listen", "127.0.0.1:0", "--max-restarts", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--listen, --max-restarts are for `mr run`"), "{stderr}");

    for (job, own) in [
        (&["run", "grep"][..], "<PATTERN>"),
        (&["run", "word-search"][..], "--targets <FILE>"),
        (&["run", "streaming"][..], "--combiner <CMD>"),
        (&["run", "teragen"][..], "--records <N>"),
        (&["coordinator", "streaming"][..], "--mapper <CMD>"),
    ] {
        let text = help(job);
        assert!(text.contains(own), "{own} missing from {job:?}:\n{text}");
        assert!(text.contains("--sort-buffer"), "{job:?} shows mr run's flags too:\n{text}");
    }
    assert!(!help(&["run", "wordcount"]).contains("--targets"));
    let gen_help = help(&["gen", "word-search"]);
    assert!(gen_help.contains("strings.txt") && gen_help.contains("targets.txt"), "{gen_help}");
}

/// `--straggler-delay` takes a duration with units, and a bare number as milliseconds.
#[test]
fn straggler_delay_takes_units() {
    let dir = Dir::new();
    let input = small_input(&dir);
    for (i, (delay, ms)) in [("20ms", 20), ("1s", 1000), ("30", 30)].into_iter().enumerate() {
        let out = dir.path(&format!("out{i}"));
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "-q", "-w", "1", "--inject-straggler", "0", "--straggler-delay", delay]);
        run_ok(cmd.arg("--input").arg(&input).arg("--output").arg(&out));
        let history: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
        assert_eq!(history["config"]["faults"]["map"]["straggler_delay_ms"], ms, "{delay}");
    }
    let err = run_usage(mr().args(["run", "--straggler-delay", "soon", "-i", "x", "-o", "y"]));
    assert!(err.contains("'--straggler-delay <DURATION>'"), "{err}");
}

fn sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect();
    files.sort();
    files
}

/// `mr gen text` writes at most the size asked for, refuses to leave stale files of an earlier
/// run (or, with --overwrite, removes them), and takes -o/--output as mr run does.
#[test]
fn gen_text_is_honest_about_size_and_files() {
    let dir = Dir::new();
    let out = dir.path("text");
    run_ok(mr().args(["gen", "text", "--size", "10", "--files", "4", "-o"]).arg(&out));
    let total: u64 = sizes(&out).iter().map(|f| f.1).sum();
    assert!(total <= 10, "--size 10 wrote {total} bytes: {:?}", sizes(&out));

    let out = dir.path("more");
    run_ok(mr().args(["gen", "text", "--unicode", "--size", "64KiB", "--files", "4", "--output"]).arg(&out));
    for (name, len) in sizes(&out) {
        assert!((16 * 1024 - 200..=16 * 1024).contains(&len), "{name}: {len} bytes");
    }
    let err = run_usage(mr().args(["gen", "text", "--size", "8KiB", "--files", "2", "--out"]).arg(&out));
    assert!(err.contains("already holds generated files") && err.contains("part-000.txt"), "{err}");
    assert!(err.contains("--overwrite"), "{err}");
    assert_eq!(sizes(&out).len(), 4, "a refused run changes nothing");
    dir.write("more/notes.md", "mine");
    run_ok(mr().args(["gen", "text", "--size", "8KiB", "--files", "2", "--overwrite", "--out"]).arg(&out));
    let names: Vec<String> = sizes(&out).into_iter().map(|f| f.0).collect();
    assert_eq!(names, ["notes.md", "part-000.txt", "part-001.txt"], "no stale part files, other files kept");

    let ws = dir.path("ws");
    run_ok(mr().args(["gen", "word-search", "--strings", "10", "-o"]).arg(&ws));
    let err = run_usage(mr().args(["gen", "word-search", "--strings", "10", "-o"]).arg(&ws));
    assert!(err.contains("strings.txt") && err.contains("--overwrite"), "{err}");
}
