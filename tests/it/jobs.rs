//! The built-in jobs, Streaming, counters and input formats, each against an independent
//! reference, and distributed runs against `--local`.

use std::path::{Path, PathBuf};

use crate::harness::*;

fn job(name: &str, input: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["run", name]).args(extra).arg("--input").arg(input).arg("--output").arg(output);
    cmd
}

/// Runs a job distributed and local; checks they agree; returns the distributed output.
fn both(dir: &Dir, name: &str, input: &Path, extra: &[&str], tag: &str) -> PathBuf {
    let dist = dir.path(&format!("{tag}-dist"));
    let local = dir.path(&format!("{tag}-local"));
    run_ok(job(name, input, &dist, extra).args(["--workers", "2", "--reduce-tasks", "3", "--quiet"]));
    run_ok(job(name, input, &local, extra).args(["--local", "--reduce-tasks", "3", "--quiet"]));
    assert_same_output(&dist, &local);
    dist
}

#[test]
fn grep_matches_reference_with_line_numbers_across_splits() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let pattern = "qu[a-z]+k|^The|ber$";
    let out = both(&dir, "grep", &input, &[pattern, "--split-size", "300"], "grep");
    if ripgrep() {
        let expected = reference("jobs.py", &[Path::new("grep"), Path::new(pattern), &input]);
        assert!(!expected.is_empty());
        assert!(sorted_lines(&out) == expected, "grep differs from ripgrep");
    }
    let err = run_usage(&mut job("grep", &input, &dir.path("bad"), &["(unclosed"]));
    assert!(err.contains("invalid pattern '(unclosed'"), "{err}");
    assert!(!dir.path("bad").exists());
}

#[test]
fn index_matches_reference() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = both(&dir, "index", &input, &["--split-size", "500"], "index");
    let expected = reference("jobs.py", &[Path::new("index"), &input]);
    assert!(sorted_lines(&out) == expected, "index differs from the reference");
}

fn concatenated(dir: &Path) -> Vec<u8> {
    parts(dir).into_iter().flat_map(|(_, bytes)| bytes).collect()
}

#[test]
fn sort_is_globally_sorted_on_uniform_and_skewed_keys() {
    let dir = Dir::new();
    let uniform = dir.path("uniform");
    run_ok(mr().args(["gen", "word-search", "--strings", "30000", "--seed", "5", "--out"]).arg(&uniform));
    let mut rng = Lcg(3);
    let mut skewed = String::new();
    for i in 0..20_000 {
        match rng.below(10) {
            0..=6 => skewed.push_str("hot key\n"),
            7 => skewed.push_str("another hot key\r\n"),
            _ => skewed.push_str(&format!("cold {}\n", rng.below(1000) * 7 + i % 3)),
        }
    }
    let skewed = dir.write("skewed/lines.txt", skewed);
    for (tag, input) in [("uniform", uniform.join("strings.txt")), ("skewed", skewed)] {
        let out = both(&dir, "sort", &input, &["--split-size", "64KiB"], tag);
        let expected = reference("jobs.py", &[Path::new("sort"), &input]);
        assert!(concatenated(&out) == expected, "{tag}: the part files in order are not the sorted input");
    }
}

#[test]
fn terasort_output_validates_with_the_teragen_checksum() {
    let dir = Dir::new();
    let generated = dir.path("gen");
    let stdout =
        run_ok(mr().args(["run", "teragen", "--records", "30000", "--workers", "3", "--output"]).arg(&generated));
    let checksum = stdout.split("checksum ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let out = both(&dir, "sort", &generated, &["--input-format", "tera", "--split-size", "200KiB"], "tera");
    let validated = run_ok(mr().args(["run", "teravalidate", "--input"]).arg(&out));
    assert!(validated.contains("30000 records") && validated.contains(&checksum), "{validated} vs {stdout}");
    // The same, read independently by the documented record format.
    let python = |mode: &str, dir: &Path| String::from_utf8(reference("tera.py", &[Path::new(mode), dir])).unwrap();
    let expected = format!("30000 records, checksum {checksum}\n");
    assert_eq!(python("generated", &generated), expected, "teragen's output, read by tests/reference/tera.py");
    assert_eq!(python("sorted", &out), expected, "the sort's output, read by tests/reference/tera.py");
    // Unsorted input is refused.
    let err = run_fail(mr().args(["run", "teravalidate", "--input"]).arg(&generated));
    assert!(err.contains("sorts before"), "{err}");
}

fn ascii_corpus(dir: &Dir) -> PathBuf {
    let mut rng = Lcg(17);
    let words = ["alpha", "Beta", "gamma", "DELTA", "x", "map", "reduce", "the"];
    for f in 0..3 {
        let mut text = String::new();
        for _ in 0..400 {
            for _ in 0..1 + rng.below(9) {
                text.push_str(words[rng.below(words.len() as u64) as usize]);
                text.push_str([" ", ", ", "-", " 7 "][rng.below(4) as usize]);
            }
            text.push('\n');
        }
        dir.write(&format!("ascii/f{f}.txt"), text);
    }
    dir.path("ascii")
}

const SHELL_MAPPER: &str = "tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | awk 'NF { print $0 \"\\t1\" }'";

fn python_reducer(dir: &Dir) -> String {
    let script = dir.write(
        "sum.py",
        r#"import sys
current, total = None, 0
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("\t")
    if key != current:
        if current is not None:
            print(f"{current}\t{total}")
        current, total = key, 0
    total += int(value)
if current is not None:
    print(f"{current}\t{total}")
sys.stderr.write("reporter:counter:sum.py,keys written,1\n")
"#,
    );
    format!("python3 {}", script.display())
}

#[test]
fn streaming_with_a_shell_mapper_and_python_reducer_matches_wordcount() {
    let dir = Dir::new();
    let input = ascii_corpus(&dir);
    let reducer = python_reducer(&dir);
    let wordcount = dir.path("wordcount");
    run_ok(&mut job("wordcount", &input, &wordcount, &["--reduce-tasks", "3", "--quiet"]));
    let streamed = both(&dir, "streaming", &input, &["--mapper", SHELL_MAPPER, "--reducer", &reducer], "plain");
    assert_same_output(&streamed, &wordcount);
    let combined = dir.path("combined");
    let stdout =
        run_ok(job("streaming", &input, &combined, &["--mapper", SHELL_MAPPER, "--reducer", &reducer]).args([
            "--combiner",
            &reducer,
            "--reduce-tasks",
            "3",
            "--workers",
            "2",
            "--json",
        ]));
    assert_same_output(&combined, &wordcount);
    let s = summary(&stdout);
    let map = &s["map"]["counters"];
    assert!(map["combine_output_records"].as_u64().unwrap() < map["combine_input_records"].as_u64().unwrap());
    // One stderr counter line per combiner run (one per map task) and per reducer.
    let expected = s["map"]["tasks"].as_u64().unwrap();
    assert_eq!(map["user"]["sum.py"]["keys written"], expected, "{stdout}");
    assert_eq!(s["reduce"]["counters"]["user"]["sum.py"]["keys written"], 3, "{stdout}");
}

#[test]
fn a_failing_streaming_command_fails_with_its_stderr() {
    let dir = Dir::new();
    let input = ascii_corpus(&dir);
    let out = dir.path("out");
    let mut cmd =
        job("streaming", &input, &out, &["--mapper", "cat", "--reducer", "echo broken pipe dream >&2; exit 3"]);
    let err = run_fail(cmd.args(["--max-attempts", "2", "--workers", "2"]));
    assert!(err.contains("exit status: 3") && err.contains("broken pipe dream"), "{err}");
    assert!(!out.exists());
}

#[test]
fn counters_add_up_and_stay_exact_under_reruns() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "800", "--reduce-tasks", "3", "--workers", "3", "--json"];
    let clean = summary(&run_ok(&mut job("sort", &input, &dir.path("clean"), &args)));
    let faulty = summary(&run_ok(job("sort", &input, &dir.path("faulty"), &args).args([
        "--inject-failure",
        "0.3",
        "--inject-seed",
        "4",
    ])));
    let lost = faulty["attempts"].as_array().unwrap().iter().filter(|a| a["outcome"] == "lost").count();
    assert!(lost > 0, "no fault was injected");
    for phase in ["map", "reduce"] {
        assert_eq!(clean[phase]["counters"], faulty[phase]["counters"], "{phase} counters changed with reruns");
    }
    let (map, reduce) = (&clean["map"]["counters"], &clean["reduce"]["counters"]);
    let lines = reference("jobs.py", &[Path::new("sort"), &input]).iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(map["input_records"], lines);
    assert_eq!(map["output_records"], reduce["input_records"], "without a combiner, map output = reduce input");
    assert_eq!(map["spilled_records"], map["output_records"]);
    assert_eq!(reduce["output_records"], lines);
}

#[test]
fn whole_file_and_gzip_inputs() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let text = dir.path("text");
    run_ok(&mut job("wordcount", &input, &text, &["--reduce-tasks", "2", "--quiet"]));
    let whole = both(&dir, "wordcount", &input, &["--input-format", "whole-file"], "whole");
    assert!(sorted_lines(&whole) == sorted_lines(&text));
    // A gzip file is one split, read through gzip: two .gz files of many times the split size
    // are two map tasks, where the same files uncompressed are dozens.
    let plain = dir.path("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::create_dir_all(dir.path("gz")).unwrap();
    for name in ["f.txt", "h-tricky.txt"] {
        std::fs::copy(input.join("sub").join(name), plain.join(name)).unwrap();
        let mut cmd = std::process::Command::new("gzip");
        cmd.args(["-c"])
            .arg(plain.join(name))
            .stdout(std::fs::File::create(dir.path(&format!("gz/{name}.gz"))).unwrap());
        assert!(cmd.status().unwrap().success());
    }
    let from_gz = both(&dir, "wordcount", &dir.path("gz"), &["--split-size", "100"], "gz");
    let from_plain = both(&dir, "wordcount", &plain, &["--split-size", "100"], "plain");
    assert_same_output(&from_gz, &from_plain);
    let map_tasks = |input: &Path, out: &str| {
        let stdout =
            run_ok(&mut job("wordcount", input, &dir.path(out), &["--split-size", "100", "--local", "--json"]));
        summary(&stdout)["map"]["tasks"].as_u64().unwrap()
    };
    assert_eq!(map_tasks(&dir.path("gz"), "gz-tasks"), 2, "one map task per .gz file");
    assert!(map_tasks(&plain, "plain-tasks") > 20, "the uncompressed files are cut into 100-byte splits");
}

#[test]
fn tiny_sort_buffer_spills_and_merges_in_passes_with_the_same_output() {
    let dir = Dir::new();
    let input = corpus(&dir);
    // Many map tasks (more than the fan-in, for the reduce side) and a tiny sort buffer (many
    // spills per map task, merged in several passes). A folding combiner keeps one small value
    // per distinct word, so word count and index need a smaller buffer than sort to spill; sort
    // keeps each line with a 32-byte entry.
    let args = ["--split-size", "3000", "--reduce-tasks", "2"];
    for (name, buffer) in [("wordcount", "256"), ("index", "512"), ("sort", "1KiB")] {
        let local = dir.path(&format!("{name}-local"));
        run_ok(job(name, &input, &local, &args).args(["--local", "--quiet"]));
        let spilled = dir.path(&format!("{name}-spilled"));
        let stdout = run_ok(
            job(name, &input, &spilled, &args)
                .args(["--sort-buffer", buffer, "--merge-fan-in", "3", "--workers", "2"])
                .arg("--json"),
        );
        assert_same_output(&spilled, &local);
        let s = summary(&stdout);
        let map = &s["map"]["counters"];
        assert!(
            map["spilled_records"].as_u64().unwrap() > map["output_records"].as_u64().unwrap(),
            "{name}: the map side did not spill: {map}"
        );
        assert!(s["map"]["tasks"].as_u64().unwrap() > 3, "{name}: too few map outputs for a multi-pass reduce merge");
    }
}

/// Runs a reference script from tests/reference in `cwd`.
fn reference_in(cwd: &Path, script: &str, args: &[&str]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(script);
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(path).args(args).current_dir(cwd);
    run_ok(&mut cmd).into_bytes()
}

/// Whether ripgrep, the grep reference, is installed. CI installs it (`.ci/run`), so there it
/// must be found.
fn ripgrep() -> bool {
    let found = std::process::Command::new("rg").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        assert!(std::env::var_os("CI").is_none(), "rg (ripgrep) is not installed; .ci/run installs it");
        eprintln!("skipping the ripgrep comparison: rg is not installed (CI installs it)");
    }
    found
}

#[test]
fn the_references_alphabetic_property_is_rusts() {
    let mut ranges = String::new();
    let mut start = None;
    for cp in 0..=0x11_0000u32 {
        let inside = char::from_u32(cp).is_some_and(char::is_alphabetic);
        match (inside, start) {
            (true, None) => start = Some(cp),
            (false, Some(first)) => {
                ranges.push_str(&format!("{first:x}-{:x}\n", cp - 1));
                start = None;
            }
            _ => {}
        }
    }
    let python = reference_in(Path::new("."), "jobs.py", &["alphabetic"]);
    assert!(
        python == ranges.as_bytes(),
        "the Python reference's \\p{{Alphabetic}} is not char::is_alphabetic (Unicode {:?}): update \
         the `regex` package, or pin the one whose Unicode version is Rust's",
        char::UNICODE_VERSION
    );
}

#[test]
fn grep_and_index_of_a_relative_input_match_ripgrep_and_the_reference() {
    let dir = Dir::new();
    corpus(&dir);
    // Run in the directory that holds `in`, with a relative --input.
    let root = dir.path("");
    // A path is the input as given, then the file's path within it.
    let run = |name: &str, args: &[&str], out: &str, extra: &[&str]| {
        let mut cmd = mr();
        cmd.current_dir(&root).args(["run", name]).args(args).args(["--input", "./in/../in", "--output", out]);
        run_ok(cmd.args(["--split-size", "300", "--reduce-tasks", "2", "--quiet"]).args(extra));
    };
    run("index", &[], "index-dist", &["--workers", "2"]);
    run("index", &[], "index-local", &["--local"]);
    assert_same_output(&dir.path("index-dist"), &dir.path("index-local"));
    let expected = reference_in(&root, "jobs.py", &["index", "./in/../in"]);
    let got = sorted_lines(&dir.path("index-dist"));
    assert!(got == expected, "index differs from the reference:\n{}", String::from_utf8_lossy(&got));
    let a = "\t./in/../in/a.txt,";
    assert!(String::from_utf8_lossy(&got).contains(a), "no {a}:\n{}", String::from_utf8_lossy(&got));
    // A file given directly is named as given, in both modes and in the reference.
    for mode in ["--workers=2", "--local"] {
        let out = format!("direct{mode}");
        let mut cmd = mr();
        cmd.current_dir(&root).args(["run", "index", "--input", "in/a.txt", "--output", &out, "--quiet", mode]);
        run_ok(&mut cmd);
        let got = sorted_lines(&dir.path(&out));
        assert!(got == reference_in(&root, "jobs.py", &["index", "in/a.txt"]), "index of a file given directly");
        assert!(String::from_utf8_lossy(&got).ends_with("\tin/a.txt\n"), "{}", String::from_utf8_lossy(&got));
    }
    if !ripgrep() {
        return;
    }
    let patterns = [r"\bber", r"^.{5}$", r"\d", r"(?i)ÜBER", r"qu[a-z]+k|^The|ber$", r"r$", r"\r", r"Ⓐ|ⅻ|स|〇|𐍁"];
    for (i, pattern) in patterns.iter().enumerate() {
        let (dist, local) = (format!("grep-{i}-dist"), format!("grep-{i}-local"));
        run("grep", &[pattern], &dist, &["--workers", "2"]);
        run("grep", &[pattern], &local, &["--local"]);
        assert_same_output(&dir.path(&dist), &dir.path(&local));
        let expected = reference_in(&root, "jobs.py", &["grep", pattern, "./in/../in"]);
        assert!(!expected.is_empty(), "{pattern}: ripgrep found nothing");
        let got = sorted_lines(&dir.path(&dist));
        assert!(
            got == expected,
            "grep {pattern} differs from ripgrep:\n--- mr\n{}--- rg\n{}",
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected)
        );
    }
}

#[test]
fn word_search_trims_targets_and_reads_lines_by_the_documented_rules() {
    let dir = Dir::new();
    // Trimmed of White_Space: spaces, a no-break space, \r. Kept: a unit separator (\x1f, which
    // Python's str.strip would remove) and a zero-width space (not White_Space either).
    let targets =
        dir.write("targets.txt", "  ab\x1f\n\u{a0}cd\u{a0}\r\n\u{200b}ef\n\x1f\ngh\r\n   \nab\x1f\nij\rkl\ncr\r");
    let input = dir
        .write("in/strings.txt", "ab\x1f\nab\nxcdx\nef \u{200b}ef\n\x1f\x1f\ngh\rij\rkl\nij\r\nkl\nlast line's cr\r");
    let expected = reference("word_search.py", &[&targets, &input]);
    assert!(String::from_utf8_lossy(&expected).contains("ab\x1f\t1\n"), "{expected:?}");
    let run = |out: &str, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "word-search", "--input"]).arg(&input).arg("--targets").arg(&targets);
        run_ok(cmd.arg("--output").arg(dir.path(out)).args(["--reduce-tasks", "2", "--quiet"]).args(extra));
    };
    run("dist", &["--workers", "2"]);
    run("local", &["--local"]);
    assert_same_output(&dir.path("dist"), &dir.path("local"));
    let got = sorted_lines(&dir.path("dist"));
    assert!(got == expected, "word-search differs from the reference: {got:?} vs {expected:?}");
}

#[test]
fn generated_unicode_text_matches_the_references() {
    let dir = Dir::new();
    let input = dir.path("text");
    run_ok(
        mr().args(["gen", "text", "--unicode", "--size", "96KiB", "--files", "3", "--seed", "4", "--out"]).arg(&input),
    );
    for name in ["wordcount", "index", "sort"] {
        let out = both(&dir, name, &input, &["--split-size", "8KiB"], name);
        let expected = reference("jobs.py", &[Path::new(name), &input]);
        assert!(sorted_lines(&out) == expected, "{name} of `mr gen text --unicode` differs from the reference");
    }
}
