//! Hadoop Streaming and mrjob programs run unchanged: mrjob's own example jobs (PyPI's
//! `mrjob`, which `.ci/run` installs) against mrjob's inline runner; Hadoop's documented
//! streaming examples (KeyFieldBasedPartitioner, aggregate-style counting with a shell mapper)
//! against tests/reference/streaming.py; `--files`, the task environment and working
//! directories; compressed input; and every bad value of the new flags.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::{
    Dir, TRICKY_TEXT, assert_same_output, corpus, describe, mr, parts, reference, run_ok, sorted_lines,
};

fn job(input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut cmd = mr();
    cmd.args(["run", "streaming"]).args(extra).arg("--input").arg(input).arg("--output").arg(output);
    cmd
}

/// Runs a streaming job distributed and with `--local`; checks they agree; returns the
/// distributed output.
fn both(dir: &Dir, input: &Path, extra: &[&str], tag: &str) -> PathBuf {
    let dist = dir.path(&format!("{tag}-dist"));
    let local = dir.path(&format!("{tag}-local"));
    run_ok(job(input, &dist, extra).args(["--workers", "2", "--quiet"]));
    run_ok(job(input, &local, extra).args(["--local", "--quiet"]));
    assert_same_output(&dist, &local);
    dist
}

/// Runs a command that must fail as a usage error (exit code 2); returns its stderr.
fn run_usage_error(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "expected exit code 2\n{}", describe(cmd, &out));
    String::from_utf8(out.stderr).unwrap()
}

/// The directory of mrjob's bundled example jobs, if mrjob is installed (CI installs it).
fn mrjob_examples() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import mrjob.examples, os; print(os.path.dirname(mrjob.examples.__file__))"])
        .output();
    match out {
        Ok(out) if out.status.success() => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "mrjob is not installed; .ci/run installs it");
            eprintln!("skipping the mrjob comparisons: mrjob is not installed (CI installs it)");
            None
        }
    }
}

/// mrjob's own answer: `python3 JOB -r inline INPUTS`, its lines sorted.
fn inline(job: &Path, inputs: &[PathBuf]) -> Vec<u8> {
    let mut cmd = Command::new("python3");
    cmd.arg(job).args(["-r", "inline", "--no-conf"]).args(inputs).stderr(Stdio::piped());
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "mrjob's inline runner failed\n{}", describe(&cmd, &out));
    let mut lines: Vec<&[u8]> = out.stdout.split_inclusive(|&b| b == b'\n').collect();
    lines.sort();
    lines.concat()
}

/// The streaming flags that run step `step` of an mrjob job as Hadoop Streaming would:
/// `python3 JOB --step-num=N --mapper|--combiner|--reducer`, the job shipped with `--files`.
fn mrjob_step(script: &str, step: u32, mapper: bool, combiner: bool) -> Vec<String> {
    let command = |role: &str| format!("python3 {script} --step-num={step} --{role}");
    let mut args = vec!["--mapper".to_string(), if mapper { command("mapper") } else { "cat".into() }];
    if combiner {
        args.extend(["--combiner".into(), command("combiner")]);
    }
    args.extend(["--reducer".into(), command("reducer")]);
    args
}

/// The input files of a directory, in path order, as mrjob is given them.
fn files_of(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

/// Real text with the lines and characters where rules differ, in a few files.
fn mixed_text(dir: &Dir) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample");
    let first = files_of(&sample).into_iter().next().unwrap();
    let text = std::fs::read_to_string(first).unwrap();
    let cut = text.char_indices().nth(60_000).map_or(text.len(), |(i, _)| i);
    dir.write("mixed/a.txt", &text[..cut]);
    dir.write("mixed/b.txt", format!("{TRICKY_TEXT}\nThe end, the END; don't stop\n"));
    dir.write("mixed/c.txt", "It's a café's naïve Straße\r\nover the lazy dog\n\nthe the the\n");
    dir.path("mixed")
}

#[test]
fn mrjob_word_freq_count_with_a_combiner_matches_the_inline_runner() {
    let Some(examples) = mrjob_examples() else { return };
    let dir = Dir::new();
    let input = mixed_text(&dir);
    let script = examples.join("mr_word_freq_count.py");
    let mut args = vec!["--files".to_string(), script.display().to_string(), "--split-size".into(), "20000".into()];
    args.extend(mrjob_step("mr_word_freq_count.py", 0, true, true));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = both(&dir, &input, &args, "freq");
    let expected = inline(&script, &files_of(&input));
    assert!(expected.len() > 1000, "the inline runner counted almost nothing");
    assert!(sorted_lines(&out) == expected, "mr_word_freq_count.py differs from mrjob's inline runner");
}

/// A two-step job that ships a side file (its stop words): as two chained runs, the first's
/// output the second's input.
#[test]
fn mrjob_most_used_word_runs_as_two_chained_jobs_with_its_stop_words() {
    let Some(examples) = mrjob_examples() else { return };
    let dir = Dir::new();
    let input = mixed_text(&dir);
    let script = examples.join("mr_most_used_word.py");
    let files = format!("{},{}", script.display(), examples.join("stop_words.txt").display());
    let step = |n: u32, mapper: bool, combiner: bool| {
        let mut args = vec!["--files".to_string(), files.clone()];
        args.extend(mrjob_step("mr_most_used_word.py", n, mapper, combiner));
        args
    };
    let first = step(0, true, true);
    let first: Vec<&str> = first.iter().map(String::as_str).collect();
    let counts = both(&dir, &input, &first, "step0");
    let second = step(1, false, false);
    let second: Vec<&str> = second.iter().map(String::as_str).collect();
    let out = both(&dir, &counts, &second, "step1");
    let expected = inline(&script, &files_of(&input));
    assert!(!expected.is_empty());
    assert!(
        sorted_lines(&out) == expected,
        "mr_most_used_word.py: {:?}, mrjob: {:?}",
        String::from_utf8_lossy(&sorted_lines(&out)),
        String::from_utf8_lossy(&expected)
    );
    // Without its stop words the first step fails, naming the file.
    let err =
        crate::harness::run_fail(
            job(&input, &dir.path("no-stop-words"), &["--files", &script.display().to_string()])
                .args(&first[2..])
                .args(["--max-attempts", "1", "--workers", "1"]),
        );
    assert!(err.contains("stop_words.txt"), "{err}");
}

/// A job that reads its input file's name from the environment (`mapreduce_map_input_file`,
/// through mrjob's jobconf_from_env), with several files packed into one split: one mapper per
/// file.
#[test]
fn mrjob_count_lines_by_file_reads_the_input_file_from_the_environment() {
    let Some(examples) = mrjob_examples() else { return };
    let dir = Dir::new();
    let input = mixed_text(&dir);
    let script = examples.join("mr_count_lines_by_file.py");
    let mut args = vec!["--files".to_string(), script.display().to_string()];
    args.extend(mrjob_step("mr_count_lines_by_file.py", 0, true, false));
    // Big splits: the three files are one map task.
    args.extend(["--split-size".into(), "64MiB".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dir.path("by-file");
    let stdout = run_ok(job(&input, &out, &args).args(["--workers", "2", "--json", "--reduce-tasks", "2"]));
    assert_eq!(crate::harness::summary(&stdout)["map"]["tasks"], 1, "{stdout}");
    let expected = inline(&script, &files_of(&input));
    assert_eq!(expected.iter().filter(|&&b| b == b'\n').count(), 3);
    assert!(
        sorted_lines(&out) == expected,
        "mr_count_lines_by_file.py: {}, mrjob: {}",
        String::from_utf8_lossy(&sorted_lines(&out)),
        String::from_utf8_lossy(&expected)
    );
}

/// Hadoop's streaming documentation, "Hadoop Partitioner Class": with `.` separating fields,
/// 4 key fields and `-k1,2`, the lines of each first-two-fields prefix go to one reducer, which
/// sees them sorted on all four fields.
#[test]
fn hadoops_key_field_based_partitioner_example() {
    let dir = Dir::new();
    let input = dir.write("in/keys.txt", "11.12.1.2\n11.14.2.3\n11.11.4.1\n11.12.1.1\n11.14.2.2\n");
    let args = [
        "-D",
        "stream.map.output.field.separator=.",
        "-D",
        "stream.num.map.output.key.fields=4",
        "-D",
        "map.output.key.field.separator=.",
        "-D",
        "mapreduce.partition.keypartitioner.options=-k1,2",
        "-D",
        "mapreduce.job.reduces=12",
        "--mapper",
        "/bin/cat",
        "--reducer",
        "/bin/cat",
        "--partitioner",
        "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
    ];
    let out = both(&dir, &input, &args, "doc");
    let parts = parts(&out);
    assert_eq!(parts.len(), 12, "-D mapreduce.job.reduces=12 makes 12 part files");
    let mut nonempty: Vec<String> =
        parts.iter().filter(|(_, b)| !b.is_empty()).map(|(_, b)| String::from_utf8(b.clone()).unwrap()).collect();
    nonempty.sort();
    // The documentation's three reducers' outputs.
    assert_eq!(nonempty, ["11.11.4.1\n", "11.12.1.1\n11.12.1.2\n", "11.14.2.2\n11.14.2.3\n"]);
}

/// Secondary sort on tab-separated fields (`--key-fields 2 --partition-fields 1`, and the same
/// through Hadoop's `-D` spellings): each user's events reach one reducer, in time order.
#[test]
fn secondary_sort_groups_by_partition_fields_and_sorts_by_key_fields() {
    let dir = Dir::new();
    let mut rng = crate::harness::Lcg(11);
    for f in 0..3 {
        let mut text = String::new();
        for i in 0..700 {
            let user = ["ann", "bob", "Çelik", "dan", "eve\u{301}", "zoë", "ann2", "b"][rng.below(8) as usize];
            // Unique (user, time) keys (the file in the time); the value holds a tab of its own.
            let time = (i * 7919 + f * 131) % 10_007;
            text.push_str(&format!("{user}\t{time:05}-{f}\tevent {f}-{i}\tx{}\n", rng.below(9)));
        }
        dir.write(&format!("events/{f}.tsv"), text);
    }
    let input = dir.path("events");
    let flags = ["--key-fields", "2", "--partition-fields", "1", "--reduce-tasks", "3"];
    let hadoop = [
        "-D",
        "stream.num.map.output.key.fields=2",
        "-D",
        "mapreduce.partition.keypartitioner.options=-k1,1",
        "-D",
        "mapreduce.job.partitioner.class=org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner",
        "--reduce-tasks",
        "3",
    ];
    let expected = reference("streaming.py", &[Path::new("secondary-sort"), Path::new("2"), Path::new("1"), &input]);
    for (tag, extra) in [("flags", &flags[..]), ("hadoop", &hadoop[..])] {
        let mut args = vec!["--mapper", "cat", "--reducer", "cat", "--split-size", "20000"];
        args.extend_from_slice(extra);
        let out = both(&dir, &input, &args, tag);
        // Each part file is whole groups, each group's lines in key order.
        let mut groups: Vec<String> = Vec::new();
        for (_, bytes) in parts(&out) {
            let text = String::from_utf8(bytes).unwrap();
            let mut current: Option<(String, String)> = None;
            for line in text.lines() {
                let user = line.split('\t').next().unwrap().to_string();
                match &mut current {
                    Some((u, body)) if *u == user => body.push_str(&format!("{line}\n")),
                    _ => {
                        groups.extend(current.take().map(|(_, b)| b));
                        current = Some((user, format!("{line}\n")));
                    }
                }
            }
            groups.extend(current.map(|(_, b)| b));
        }
        groups.sort();
        assert!(groups.concat().into_bytes() == expected, "{tag}: groups differ from the reference");
    }
}

/// Hadoop's aggregate-style counting: a shell mapper writes `LongValueSum:WORD<TAB>1`, and a
/// reducer sums each key's values.
#[test]
fn aggregate_style_counting_with_a_shell_mapper() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let mapper = "awk '{ for (i = 1; i <= NF; i++) print \"LongValueSum:\" $i \"\\t1\" }'";
    let reducer = "awk -F '\\t' '$1 != k { if (NR > 1) print substr(k, 14) \"\\t\" n; k = $1; n = 0 } \
                   { n += $2 } END { if (NR > 0) print substr(k, 14) \"\\t\" n }'";
    let out = both(&dir, &input, &["--mapper", mapper, "--reducer", reducer, "--cmdenv", "LC_ALL=C"], "agg");
    let expected = reference("streaming.py", &[Path::new("aggregate"), &input]);
    assert!(sorted_lines(&out) == expected, "aggregate counting differs from the reference");
}

/// The task environment Hadoop Streaming gives, `-D` and `--cmdenv` among it, a shipped file
/// in every working directory, and a working directory per attempt.
#[test]
fn commands_see_hadoops_environment_and_their_shipped_files() {
    let dir = Dir::new();
    for f in 0..3 {
        dir.write(&format!("in/{f}.txt"), (0..200).map(|i| format!("line {i} of {f}\n")).collect::<String>());
    }
    let input = dir.path("in");
    let side = dir.write("side/lookup.txt", "side-file-contents\n");
    let mapper = dir.write(
        "mapper.sh",
        "read -r first\n\
         printf 'file\\t%s %s %s\\n' \"$mapreduce_map_input_file\" \"$mapreduce_map_input_start\" \"$mapreduce_map_input_length\"\n\
         printf 'task\\t%s %s %s %s\\n' \"$mapreduce_task_id\" \"$mapreduce_task_attempt_id\" \"$mapreduce_task_partition\" \"$mapreduce_task_ismap\"\n\
         printf 'job\\t%s %s %s\\n' \"$mapreduce_job_id\" \"$mapreduce_job_maps\" \"$mapreduce_job_reduces\"\n\
         printf 'conf\\t%s %s %s\\n' \"$my_custom_property\" \"$MY_VAR\" \"$(cat renamed.txt)\"\n\
         printf 'cwd\\t%s\\n' \"$(basename \"$PWD\")\"\n\
         touch left-by-mapper\n\
         cat > /dev/null\n",
    );
    let reducer = "cat; printf 'reducer\\t%s %s %s %s\\n' \"$mapreduce_task_id\" \"$mapreduce_task_ismap\" \
                   \"$(basename \"$PWD\")\" \"$(ls | tr '\\n' ' ')\"";
    let files = format!("{}#renamed.txt,{}", side.display(), mapper.display());
    let args = [
        "--files",
        &files,
        "--mapper",
        "sh mapper.sh",
        "--reducer",
        reducer,
        "-D",
        "my.custom-property=from -D",
        "--cmdenv",
        "MY_VAR=from cmdenv",
        "--split-size",
        "64MiB",
        "--reduce-tasks",
        "1",
    ];
    let out = both(&dir, &input, &args, "env");
    let text = String::from_utf8(parts(&out).remove(0).1).unwrap();
    let values = |key: &str| -> Vec<String> {
        text.lines().filter_map(|l| l.strip_prefix(&format!("{key}\t"))).map(str::to_string).collect()
    };
    // One mapper per file of the one split, each told its own file.
    let mut files: Vec<String> = values("file");
    files.sort();
    let expected: Vec<String> = (0..3)
        .map(|f| {
            let path = std::fs::canonicalize(&input).unwrap().join(format!("{f}.txt"));
            format!("file://{} 0 {}", path.display(), std::fs::metadata(&path).unwrap().len())
        })
        .collect();
    assert_eq!(files, expected, "{text}");
    let tasks = values("task");
    assert_eq!(tasks.len(), 3);
    let job_id = values("job")[0].split(' ').next().unwrap().to_string();
    let digits = job_id.strip_prefix("job_").unwrap();
    assert!(digits.len() == 18 && digits.ends_with("_0001"), "{job_id}");
    for task in &tasks {
        assert_eq!(task, &format!("task_{digits}_m_000000 attempt_{digits}_m_000000_0 0 true"));
    }
    assert!(values("job").iter().all(|j| *j == format!("{job_id} 1 1")), "{text}");
    assert!(values("conf").iter().all(|c| c == "from -D from cmdenv side-file-contents"), "{text}");
    assert!(values("cwd").iter().all(|c| c == "task-m-00000-0"), "{text}");
    // The reducer's directory is its own: the shipped files, not what the mappers left.
    assert_eq!(
        values("reducer"),
        [format!("task_{digits}_r_000000 false task-r-00000-0 mapper.sh renamed.txt ")],
        "{text}"
    );
}

/// `--files` reaches workers through the coordinator, not a shared filesystem: the file is
/// gone before any worker starts.
#[test]
fn shipped_files_reach_workers_that_cannot_see_them() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "a\nb\nc\n");
    let side = dir.write("side/words.txt", "shipped\n");
    let output = dir.path("out");
    let files = format!("{}#words.txt", side.display());
    let job = [
        "streaming",
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--files",
        &files,
        "--mapper",
        "while read -r l; do printf '%s\\t%s\\n' \"$l\" \"$(cat words.txt)\"; done",
        "--reducer",
        "cat",
    ];
    let cluster = crate::cluster::Cluster::start_with(&dir, "files", &job, &[], &[]);
    std::fs::remove_file(&side).unwrap();
    let workers: Vec<std::process::Child> = ["127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|host| {
            mr().args(["worker", "--coordinator", &cluster.url, "--advertise", host])
                .env("MR_TOKEN", "cluster-secret")
                .env("MR_TEST_TAG", &cluster.tag)
                .env("TMPDIR", dir.path("tmp"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let (code, stderr) = cluster.finish();
    for mut w in workers {
        w.wait().unwrap();
    }
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sorted_lines(&output), b"a\tshipped\nb\tshipped\nc\tshipped\n");
}

/// `.gz`, `.bz2`, `.zst` and `.xz` inputs are decompressed, one map task each; other
/// compressed formats are refused by name before anything is written.
#[test]
fn compressed_inputs_are_read_by_extension() {
    let dir = Dir::new();
    let plain = corpus(&dir);
    let text: String = files_of(&plain.join("sub"))
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    dir.write("plain/all.txt", &text);
    for (ext, tool) in [("gz", "gzip"), ("bz2", "bzip2"), ("zst", "zstd"), ("xz", "xz")] {
        let path = dir.write(&format!("packed/all.txt.{ext}"), "");
        let file = std::fs::File::create(&path).unwrap();
        let mut child = Command::new(tool).args(["-c"]).stdin(Stdio::piped()).stdout(file).spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "{tool} failed");
    }
    let wc = |input: &Path, out: &Path, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--input"]).arg(input).arg("--output").arg(out);
        cmd.args(["--reduce-tasks", "2", "--split-size", "1000"]).args(extra);
        run_ok(&mut cmd)
    };
    wc(&dir.path("plain"), &dir.path("plain-out"), &["--local", "--quiet"]);
    for ext in ["gz", "bz2", "zst", "xz"] {
        let input = dir.path(&format!("packed/all.txt.{ext}"));
        let out = dir.path(&format!("{ext}-out"));
        let stdout = wc(&input, &out, &["--workers", "2", "--json"]);
        assert_eq!(crate::harness::summary(&stdout)["map"]["tasks"], 1, "one map task reads the .{ext} file");
        let counts = sorted_lines(&out);
        assert!(counts == sorted_lines(&dir.path("plain-out")), ".{ext} input counts differ from the plain text");
    }
    for (name, format) in [("a.lz4", "LZ4"), ("a.Z", "Unix compress"), ("a.7z", "7-Zip"), ("a.zip", "ZIP")] {
        let input = dir.write(&format!("other/{name}"), "not text\n");
        let out = dir.path("refused");
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--input"]).arg(&input).arg("--output").arg(&out);
        let err = run_usage_error(&mut cmd);
        assert!(err.contains(format) && err.contains(name) && err.contains("decompress it"), "{err}");
        assert!(!out.exists(), "a refused job left its output directory");
    }
}

#[test]
fn bad_streaming_flags_are_usage_errors_that_name_the_fix() {
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "a\tb\n");
    let out = dir.path("out");
    let folder = dir.path("in");
    let twice = format!("{}#x,{}#x", input.display(), input.display());
    let base = ["--mapper", "cat", "--reducer", "cat"];
    let cases: &[(&[&str], &str)] = &[
        (&["--files", "/no/such/file.txt"], "cannot read '/no/such/file.txt'"),
        (&["--files", folder.to_str().unwrap()], "is not a regular file"),
        (&["--files", &twice], "two files are named 'x'"),
        (&["--files", "a.txt#sub/name"], "is not a file name"),
        (&["-D", "no-equals-sign"], "is not KEY=VALUE"),
        (&["-D", "=value"], "is not a property name"),
        (&["-D", "stream.num.map.output.key.fields=zero"], "at least 1"),
        (&["-D", "stream.map.output.field.separator=::"], "one byte"),
        (&["-D", "stream.reduce.input.field.separator=,"], "separates these fields with a tab"),
        (
            &["-D", "mapreduce.partition.keypartitioner.options=-k2,3", "--partitioner", "KeyFieldBasedPartitioner"],
            "-k1,K",
        ),
        (&["-D", "mapreduce.job.reduces=many"], "whole number"),
        (&["--partitioner", "org.example.Mine"], "KeyFieldBasedPartitioner"),
        (&["--key-fields", "0"], "--key-fields"),
        (&["--partition-fields", "0"], "--partition-fields"),
        (&["--key-fields", "2", "--partition-fields", "3"], "more than the key's 2 field(s)"),
        (&["--key-fields", "2", "-D", "stream.num.map.output.key.fields=3"], "give one"),
        (&["--cmdenv", "NOVALUE"], "is not NAME=VALUE"),
    ];
    for (flags, message) in cases {
        let err = run_usage_error(job(&input, &out, &base).args(*flags));
        assert!(err.contains(message), "{flags:?}: {err}");
        assert!(!out.exists(), "{flags:?} left its output directory");
    }
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--cmdenv", "A=b", "--input"]).arg(&input).arg("--output").arg(&out);
    let err = run_usage_error(&mut cmd);
    // Streaming's flags are its own subcommand's: clap refuses them on another job.
    assert!(err.contains("'--cmdenv'"), "{err}");
    for name in ["wordcount", "sort", "grep"] {
        let mut cmd = mr();
        cmd.args(["run", name, "--reduce-tasks", "0", "--input"]).arg(&input).arg("--output").arg(&out);
        if name == "grep" {
            cmd.arg("a");
        }
        let err = run_usage_error(&mut cmd);
        assert!(err.contains(&format!("--reduce-tasks 0: job '{name}' needs its reduce")), "{err}");
        assert!(!out.exists());
    }
}

/// `--output-compression gzip|zstd` writes `part-r-NNNNN.gz`/`.zst` that the `gzip` and `zstd`
/// programs decompress to the plain output, and that mr reads back as input.
#[test]
fn compressed_output_decompresses_to_the_plain_output_and_reads_back() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let wc = |out: &Path, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--reduce-tasks", "3", "--quiet", "--input"]).arg(&input);
        run_ok(cmd.arg("--output").arg(out).args(extra));
    };
    let plain = dir.path("plain");
    wc(&plain, &["--local"]);
    for (name, ext, tool) in [("gzip", "gz", "gzip"), ("zstd", "zst", "zstd")] {
        let dist = dir.path(&format!("{name}-dist"));
        let local = dir.path(&format!("{name}-local"));
        wc(&dist, &["--output-compression", name, "--workers", "2"]);
        wc(&local, &["--output-compression", name, "--local"]);
        assert_same_output(&dist, &local);
        for ((part, bytes), (plain_part, plain_bytes)) in parts(&dist).into_iter().zip(parts(&plain)) {
            assert_eq!(part, format!("{plain_part}.{ext}"));
            let mut child =
                Command::new(tool).args(["-d", "-c"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &bytes));
            let out = child.wait_with_output().unwrap();
            feeder.join().unwrap().unwrap();
            assert!(out.status.success() && out.stdout == plain_bytes, "{part}: {tool} -d differs from {plain_part}");
        }
        // Read back: a sort over the compressed output is the sort over the plain one.
        let sorted = dir.path(&format!("{name}-sorted"));
        run_ok(
            mr().args(["run", "sort", "--quiet", "--reduce-tasks", "2", "--input"])
                .arg(&dist)
                .arg("--output")
                .arg(&sorted),
        );
        let lines: Vec<u8> = parts(&sorted).into_iter().flat_map(|(_, b)| b).collect();
        assert!(lines == sorted_lines(&plain), "sort over the .{ext} output differs");
    }
    let err = run_usage_error(
        mr().args(["run", "wordcount", "--output-compression", "lz4", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.path("bad")),
    );
    assert!(err.contains("--output-compression") && err.contains("gzip, zstd"), "{err}");
    assert!(!dir.path("bad").exists());
}

/// mrjob's `mr_grep.py`, whose one step is a mapper command and no reducer: a map-only job
/// (Hadoop's `-D mapreduce.job.reduces=0`), its `part-m-NNNNN` files against mrjob's local
/// runner.
#[test]
fn mrjob_grep_runs_map_only_and_matches_mrjobs_local_runner() {
    let Some(examples) = mrjob_examples() else { return };
    let dir = Dir::new();
    let input = mixed_text(&dir);
    // The mapper command exactly as mrjob makes it for Hadoop.
    let script = "from mrjob.examples.mr_grep import MRGrepJob; print(MRGrepJob(['-e', 'the [a-z]']).mapper_cmd())";
    let mapper = Command::new("python3").args(["-c", script]).output().unwrap();
    assert!(mapper.status.success(), "{}", String::from_utf8_lossy(&mapper.stderr));
    let mapper = String::from_utf8(mapper.stdout).unwrap();
    let args = ["--mapper", mapper.trim(), "-D", "mapreduce.job.reduces=0", "--split-size", "20000"];
    let out = both(&dir, &input, &args, "grep");
    let names: Vec<String> = parts(&out).into_iter().map(|(n, _)| n).collect();
    assert!(names.len() > 2 && names.iter().all(|n| n.starts_with("part-m-")), "{names:?}");
    let mut cmd = Command::new("python3");
    cmd.arg(examples.join("mr_grep.py")).args(["-r", "local", "--no-conf", "-e", "the [a-z]"]);
    let out_local = cmd.args(files_of(&input)).stderr(Stdio::piped()).output().unwrap();
    assert!(out_local.status.success(), "{}", describe(&cmd, &out_local));
    let mut expected: Vec<&[u8]> = out_local.stdout.split_inclusive(|&b| b == b'\n').collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert!(sorted_lines(&out) == expected.concat(), "mr_grep.py differs from mrjob's local runner");
}

/// Map-only output is committed exactly once per map task: crashed and backup attempts leave
/// nothing, and the output equals `--local`'s.
#[test]
fn map_only_part_files_are_committed_exactly_once_under_faults() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let mapper = "awk '{ print NR \"\\t\" toupper($0) }'";
    let local = dir.path("local");
    let base = ["--mapper", mapper, "--reduce-tasks", "0", "--split-size", "2000", "--quiet"];
    run_ok(job(&input, &local, &base).arg("--local"));
    let out = dir.path("faulty");
    let faults = ["--workers", "3", "--inject-failure", "0.3", "--inject-seed", "5", "--json"];
    let stdout = run_ok(job(&input, &out, &base[..base.len() - 1]).args(faults));
    let s = crate::harness::summary(&stdout);
    let lost = s["attempts"].as_array().unwrap().iter().filter(|a| a["outcome"] == "lost").count();
    assert!(lost > 0, "no fault was injected: {stdout}");
    assert_same_output(&out, &local);
    let maps = s["map"]["tasks"].as_u64().unwrap() as usize;
    assert_eq!(parts(&out).len(), maps, "one part-m file per map task");
    let names: Vec<String> =
        std::fs::read_dir(&out).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n.starts_with("part-m-") || n == "_SUCCESS" || n == "_job.json"), "{names:?}");
    assert_eq!(s["reduce"]["tasks"], 0);
}

/// A `reporter:status:MESSAGE` line on a command's stderr is its task's status message, on the
/// status page (HTML and JSON) and in `mr status`, as Hadoop shows it.
#[test]
fn reporter_status_lines_show_on_the_status_page_and_in_mr_status() {
    use std::io::{BufRead, BufReader, Read};
    let dir = Dir::new();
    let input = dir.write("in/a.txt", "one\ntwo\n");
    let gate = dir.path("gate");
    let mapper = format!(
        "echo \"reporter:status:halfway through $mapreduce_task_id\" >&2; \
         while [ ! -e '{}' ]; do sleep 0.05; done; cat",
        gate.display()
    );
    let mut cmd = job(&input, &dir.path("out"), &["--mapper", &mapper, "--reducer", "cat", "--workers", "1"]);
    cmd.args(["--task-timeout", "10m"]);
    let mut running = crate::harness::Background::start(cmd, &dir, "reporter");
    let mut stderr = BufReader::new(running.child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line.strip_prefix("status: ").unwrap_or_else(|| panic!("no status line: {line:?}")).trim().to_string();
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let get = |path: &str| {
        ureq::get(&format!("{url}{path}")).call().and_then(|mut r| r.body_mut().read_to_string()).unwrap_or_default()
    };
    let status = |v: &serde_json::Value| v["tasks"][0]["status"].as_str().unwrap_or_default().to_string();
    crate::harness::wait_for(30, "the map task's status message", || {
        serde_json::from_str::<serde_json::Value>(&get("api/v1/job")).is_ok_and(|v| status(&v).starts_with("halfway"))
    });
    let view: serde_json::Value = serde_json::from_str(&get("api/v1/job")).unwrap();
    let message = status(&view);
    assert!(message.starts_with("halfway through task_") && message.ends_with("_m_000000"), "{message}");
    assert!(get("").contains(&message), "the HTML page does not show {message:?}");
    let text = run_ok(mr().args(["status", &url]));
    assert!(text.contains("running: map 0 attempt 0 on worker 1 for ") && text.contains(&message), "{text}");
    std::fs::write(&gate, "").unwrap();
    let (exit, _, _) = running.finish();
    let rest = drain.join().unwrap();
    assert!(exit.success(), "{rest}");
    assert!(!rest.contains("reporter:status"), "{rest}");
    assert_eq!(sorted_lines(&dir.path("out")), b"one\ntwo\n");
}

/// The same two-step job with `--steps`: one command, its steps in a TOML file, each step's
/// output the next one's input under `OUT/_temporary` until the last commits; equal to the two
/// chained runs, to `--local` and to mrjob's inline runner, with a summary and `_job.json` of
/// each step, and nothing left of the steps but the output.
#[test]
fn mrjob_most_used_word_runs_with_steps_as_one_command() {
    let Some(examples) = mrjob_examples() else { return };
    let dir = Dir::new();
    let input = mixed_text(&dir);
    let script = examples.join("mr_most_used_word.py");
    let files = format!("{},{}", script.display(), examples.join("stop_words.txt").display());
    let role = |step: u32, role: &str| format!("\"python3 mr_most_used_word.py --step-num={step} --{role}\"");
    let steps = dir.write(
        "steps.toml",
        format!(
            "# mrjob's mr_most_used_word.py, as Hadoop Streaming runs its two steps\n[[step]]\nmapper = {}\n\
             combiner = {}\nreducer = {}\n\n[[step]]\nreducer = {}\n",
            role(0, "mapper"),
            role(0, "combiner"),
            role(0, "reducer"),
            role(1, "reducer")
        ),
    );
    let args = ["--steps", steps.to_str().unwrap(), "--files", &files, "--split-size", "20000"];
    let tmp = dir.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = dir.path("steps-dist");
    let json = run_ok(job(&input, &out, &args).args(["--workers", "2", "--json"]).env("TMPDIR", &tmp));
    let local = dir.path("steps-local");
    let text = run_ok(job(&input, &local, &args).arg("--local"));
    assert_same_output(&out, &local);
    // The text summary names each step.
    assert!(text.contains("2 steps") && text.contains("step 1 of 2") && text.contains("step 2 of 2"), "{text}");

    // The chained runs of the two steps.
    let chained = |n: u32, mapper: bool, combiner: bool, input: &Path, out: &Path| {
        let mut flags = vec!["--files".to_string(), files.clone(), "--split-size".into(), "20000".into()];
        flags.extend(mrjob_step("mr_most_used_word.py", n, mapper, combiner));
        run_ok(job(input, out, &flags.iter().map(String::as_str).collect::<Vec<_>>()).args(["--workers", "2", "-q"]));
    };
    chained(0, true, true, &input, &dir.path("chain0"));
    chained(1, false, false, &dir.path("chain0"), &dir.path("chain1"));
    assert_same_output(&out, &dir.path("chain1"));
    let expected = inline(&script, &files_of(&input));
    assert!(!expected.is_empty() && sorted_lines(&out) == expected, "differs from mrjob's inline runner");

    let summary = crate::harness::summary(&json);
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/summary.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema).unwrap()).unwrap();
    let errors: Vec<String> =
        jsonschema::validator_for(&schema).unwrap().iter_errors(&summary).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "not as docs/summary.schema.json says: {errors:?}");
    let steps = summary["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{summary}");
    assert!(steps.iter().all(|s| s["summary"]["succeeded"] == true && s["earlier_run"] == false), "{summary}");
    let lines: usize = files_of(&input).iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).sum();
    assert_eq!(steps[0]["summary"]["map"]["counters"]["input_records"], lines as u64, "{summary}");
    assert!(steps[0]["summary"]["map"]["counters"]["combine_input_records"].as_u64().unwrap() > 0);
    assert_eq!(steps[1]["summary"]["output"], out.display().to_string());
    assert!(steps[1]["args"][0] == "--mapper=cat", "a step without a mapper runs cat: {summary}");
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
    assert_eq!(history["config"]["steps"], 2);
    assert!(history["config"]["args"].to_string().contains("--steps"), "{history}");
    let reduces = &history["summary"]["steps"][1]["config"]["reduce_tasks"];
    assert!(reduces.as_u64().is_some_and(|r| r >= 1) && *reduces == steps[1]["summary"]["reduce"]["tasks"]);
    assert!(!out.join("_temporary").exists(), "the steps' outputs outlived the commit");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
