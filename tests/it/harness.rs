//! Test harness: temporary directories, the `mr` command, oracles, and failure dumps that
//! show everything needed to debug (command, exit status, stdout, stderr, files).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A temporary directory for one test.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir { tmp: tempfile::Builder::new().prefix("mr-test-").tempdir().unwrap() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }
}

/// The `mr` binary under test, without the MR_* variables of the environment the tests run in:
/// its settings are the test's flags and the variables the test sets.
pub fn mr() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mr"));
    cmd.env_remove("RUST_LOG");
    for var in outer_mr_vars() {
        cmd.env_remove(var);
    }
    cmd
}

/// The MR_* variables of this process's environment that would set `mr`'s settings (all but
/// the harness's own MR_TEST_TAG).
pub fn outer_mr_vars() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(name, _)| name)
        .filter(|name| name.to_string_lossy().starts_with("MR_") && name != "MR_TEST_TAG")
        .collect()
}

fn listing(path: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        out = names.join(" ");
    }
    out
}

/// Dumps a command's outcome.
pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mr run wordcount` from `input` into `output`, with `extra` arguments.
pub fn wordcount(input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--input"]).arg(input).arg("--output").arg(output).args(extra);
    cmd
}

/// Runs a command that must succeed; returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "command failed\n{}", describe(cmd, &out));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with exit code 1; returns its stderr. The worker logs that a
/// failed job keeps are removed: the test has seen their name.
pub fn run_fail(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1), "expected exit code 1\n{}", describe(cmd, &out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    remove_kept_logs(&stderr);
    stderr
}

/// Removes the directory of worker logs that a failed job kept and named on `stderr`
/// (`worker logs: DIR`, its last line), if it named one: the test has seen it.
pub fn remove_kept_logs(stderr: &str) {
    if let Some((_, logs)) = stderr.rsplit_once("worker logs: ") {
        let logs = Path::new(logs.trim());
        assert!(logs.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mr-logs-")), "{stderr}");
        std::fs::remove_dir_all(logs).unwrap_or_else(|e| panic!("cannot remove {}: {e}", logs.display()));
    }
}

/// Runs a command that must fail with a usage error, exit code 2; returns its stderr.
pub fn run_usage(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "expected exit code 2\n{}", describe(cmd, &out));
    String::from_utf8(out.stderr).unwrap()
}

/// The part files of an output directory, by name, with `_SUCCESS` required.
pub fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    assert!(dir.join("_SUCCESS").is_file(), "no _SUCCESS in {}: {}", dir.display(), listing(dir));
    let mut parts: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    parts.sort();
    parts
}

/// All output lines of a job, sorted by bytes: comparable with a reference's output.
pub fn sorted_lines(dir: &Path) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for (_, bytes) in parts(dir) {
        lines.extend(bytes.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec));
    }
    lines.sort();
    lines.concat()
}

/// Checks that two outputs have the same part files, byte for byte.
pub fn assert_same_output(actual: &Path, expected_dir: &Path) {
    let a = parts(actual);
    let e = parts(expected_dir);
    let names = |p: &[(String, Vec<u8>)]| p.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&e), "part files differ");
    for ((name, bytes), (_, expected)) in a.iter().zip(&e) {
        assert!(bytes == expected, "{name} differs between {} and {}", actual.display(), expected_dir.display());
    }
}

/// Checks that the keys of each part file are distinct and in byte order.
pub fn assert_keys_sorted(dir: &Path) {
    for (name, bytes) in parts(dir) {
        let keys: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| l.split(|&b| b == b'\t').next().unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{name} is not sorted by key");
    }
}

/// Runs a reference script from tests/reference.
pub fn reference(script: &str, args: &[&Path]) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path).args(args);
    run_ok(&mut cmd).into_bytes()
}

/// Parses the JSON summary printed by `mr run --json`.
pub fn summary(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a JSON summary ({e}):\n{stdout}"))
}

/// Processes (other than this one) whose environment holds `MR_TEST_TAG=tag`.
pub fn tagged_processes(tag: &str) -> Vec<u32> {
    let needle = format!("MR_TEST_TAG={tag}");
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        // Zombies have no environment left; they are already dead.
        if let Ok(env) = std::fs::read(entry.path().join("environ"))
            && env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Waits for a condition, polling, for at most `secs` seconds.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A small deterministic pseudo-random generator for test corpora.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// A multi-file corpus with every edge the record reader must handle: CRLF lines, a file
/// without a final newline, an empty file, a long line, non-ASCII letters, a subdirectory,
/// and a hidden file that must be skipped; and the inputs where text rules differ (see
/// [`TRICKY_TEXT`]).
pub fn corpus(dir: &Dir) -> PathBuf {
    const WORDS: &[&str] = &[
        "the", "The", "THE", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "Café", "café", "ÉTÉ", "naïve",
        "Straße", "über", "Über", "señor", "map", "reduce", "shuffle", "x",
    ];
    const SEPARATORS: &[&str] = &[" ", ", ", "; ", "--", " 42 ", "'", " (", ") ", "_", "\t"];
    let mut rng = Lcg(7);
    let mut text = |lines: usize, newline: &str| {
        let mut s = String::new();
        for _ in 0..lines {
            for _ in 0..1 + rng.below(12) {
                s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                s.push_str(SEPARATORS[rng.below(SEPARATORS.len() as u64) as usize]);
            }
            s.push_str(newline);
        }
        s
    };
    let root = dir.path("in");
    dir.write("in/a.txt", text(300, "\n"));
    dir.write("in/b-crlf.txt", text(200, "\r\n"));
    let mut last = text(50, "\n");
    last.push_str("final line without newline Ünïcode");
    dir.write("in/c-no-final-newline.txt", last);
    dir.write("in/d-empty.txt", "");
    let long = format!("{}\n", ["long"; 700].join(" "));
    dir.write("in/sub/e-long-line.txt", format!("start\n{long}end\n"));
    dir.write("in/sub/f.txt", text(400, "\n"));
    dir.write("in/sub/h-tricky.txt", TRICKY_TEXT);
    dir.write("in/.hidden.txt", "hiddenword hiddenword\n");
    dir.write("in/sub/.hidden-dir/g.txt", "hiddenword\n");
    root
}

/// Where the documented rules differ from look-alike ones. Words (Unicode's Alphabetic
/// property, not "letters"): letter numbers (Nl: `Ⅻ`, `〇`), a circled letter (So: `Ⓐ`),
/// Devanagari with a virama and a vowel sign, combining marks (a decomposed `ï`), a 4-byte
/// letter, a final sigma, a titlecase letter, a dotted capital I, a digit of another script
/// (`٣`), a unit separator (`\x1f`) and a no-break space. Regexes (Unicode-aware, on text):
/// `\bber` on `über`, `^.{5}$` on `naïve`, `\d` on `٣`, `(?i)ÜBER`. Lines (split on `\n`, one
/// `\r` before it dropped): a lone `\r` inside a line, and a last line ending with `\r` and
/// no `\n`.
pub const TRICKY_TEXT: &str = "Chapter Ⅻ: Ⓐbc namaस्ते 〇 x𐍁y\n\
    naïve\n\
    über ber\n\
    ÜBER\n\
    ٣ and 3\n\
    nai\u{308}ve ΟΔΟΣ ǅemal İstanbul\u{a0}𝔘nicode\x1fend\n\
    lone\rcarriage return inside\r\n\
    windows line\r\n\
    last line ends with a cr\r";

/// A job started in the background, tagged so that its processes can be found.
pub struct Background {
    pub child: Child,
    pub tag: String,
    pub work: PathBuf,
    _kill_on_panic: KillOnPanic,
}

/// Kills every process of a tagged job when the test fails midway (its thread panics), so that
/// a failing test leaves nothing running; a passing test checks that its job left nothing.
struct KillOnPanic(String);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for pid in tagged_processes(&self.0) {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

impl Background {
    pub fn start(mut cmd: std::process::Command, dir: &Dir, name: &str) -> Background {
        let work = dir.path(&format!("tmp-{name}"));
        std::fs::create_dir_all(&work).unwrap();
        let tag = format!("{name}-{}", std::process::id());
        let child = cmd
            .env("MR_TEST_TAG", &tag)
            .env("TMPDIR", &work)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Background { child, _kill_on_panic: KillOnPanic(tag.clone()), tag, work }
    }

    /// The worker processes (every tagged process but `mr run` itself).
    pub fn workers(&self) -> Vec<u32> {
        tagged_processes(&self.tag).into_iter().filter(|&p| p != self.child.id()).collect()
    }

    /// Map output files in the job's work dir (each worker's directory inside it).
    pub fn map_outputs(&self) -> usize {
        fn count(dir: &Path, depth: u32) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| {
                    let path = e.path();
                    if path.is_dir() && depth > 0 {
                        count(&path, depth - 1)
                    } else {
                        usize::from(path.extension().is_some_and(|x| x == "out"))
                    }
                })
                .sum()
        }
        count(&self.work, 2)
    }

    /// Kills the job's root process with SIGKILL, reaps it, and waits until every process of
    /// the job has gone with it.
    pub fn sigkill(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
        wait_for(10, "the killed run's processes to end", || tagged_processes(&self.tag).is_empty());
    }

    pub fn finish(self) -> (std::process::ExitStatus, String, String) {
        let out = self.child.wait_with_output().unwrap();
        wait_for(10, "every process of the job to exit", || tagged_processes(&self.tag).is_empty());
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// The settings of a coordinator of a small wordcount job over `splits` into `dir/out`, that
/// nobody runs but the test calling it directly; tests change what they need.
pub fn coordinator_config(
    dir: &Dir,
    splits: Vec<mr::data::input::Split>,
) -> mr::control::coordinator::CoordinatorConfig {
    mr::control::coordinator::CoordinatorConfig {
        job_name: "wordcount".into(),
        job_args: Vec::new(),
        splits,
        reduce_tasks: 1,
        output_dir: dir.path("out"),
        heartbeat_interval: std::time::Duration::from_millis(100),
        tolerance: mr::settings::FaultTolerance::default(),
        faults: Default::default(),
        state: Vec::new(),
        input_format: Default::default(),
        settings: mr::exec::task::TaskSettings {
            output_compression: Default::default(),
            partitions: 1,
            sort_buffer: 1 << 20,
            merge_fan_in: 8,
            max_record_bytes: 1 << 20,
        },
        token: mr::net::rpc::Token::new("").unwrap(),
        tls: None,
        rerun_maps_of_lost_workers: false,
    }
}

/// Whether `program` is on the PATH.
pub fn command_exists(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Whether `script` (util-linux) is here to run a command under a pseudo-terminal; without it
/// a test skips, except in CI, which must install it.
pub fn script_exists() -> bool {
    let exists = command_exists("script");
    if !exists {
        assert!(std::env::var_os("CI").is_none(), "CI must install script (util-linux)");
        eprintln!("skipped: no `script` command");
    }
    exists
}

/// Three small text files in `dir/in`, and a streaming mapper that waits for the file `go`
/// (returned) before it copies its input: a job that shows its progress until `go` appears.
pub fn gated_job_input(dir: &Dir) -> (PathBuf, String) {
    for f in 0..3 {
        dir.write(&format!("in/{f}.txt"), "one two three\nfour five\n".repeat(2000));
    }
    let go = dir.path("go");
    let mapper = format!("while [ ! -e '{}' ]; do sleep 0.05; done; cat", go.display());
    (go, mapper)
}

/// The tasks of `phase` that the journal of the job (or step) writing into `out` holds.
pub fn journaled(out: &Path, phase: &str) -> std::collections::BTreeSet<u64> {
    let recovered = mr::control::journal::Journal::inspect(&mr::control::journal::path_for(out)).unwrap();
    recovered
        .done
        .iter()
        .filter(|(t, _)| serde_json::to_value(t.phase).unwrap() == phase)
        .map(|(t, _)| u64::from(t.index))
        .collect()
}

/// The tasks of `phase` that a run's summary shows attempts of.
pub fn attempted(summary: &serde_json::Value, phase: &str) -> std::collections::BTreeSet<u64> {
    summary["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["id"]["task"]["phase"] == phase)
        .map(|a| a["id"]["task"]["index"].as_u64().unwrap())
        .collect()
}

/// Files in `out` whose name starts with `prefix`.
pub fn files_named(out: &Path, prefix: &str) -> usize {
    std::fs::read_dir(out)
        .map_or(0, |d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(prefix)).count())
}
