//! Input and output in object stores: `file://` URLs (the object_store crate's local store),
//! and `s3://` against a real S3-compatible server, moto_server (installed by `.ci/run` from
//! PyPI), with tests/reference/s3.py moving files in and out with boto3.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::harness::{Dir, assert_same_output, corpus, mr, run_fail, run_ok, wait_for};

fn local_oracle(dir: &Dir, input: &Path, args: &[&str]) -> std::path::PathBuf {
    let out = dir.path("local");
    run_ok(
        mr().args(["run", "wordcount", "--local", "--quiet", "--input"])
            .arg(input)
            .arg("--output")
            .arg(&out)
            .args(args),
    );
    out
}

#[test]
fn file_urls_read_and_write_through_the_object_store() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let args = ["--split-size", "700", "--reduce-tasks", "3"];
    let local = local_oracle(&dir, &input, &args);
    let out = dir.path("out");
    let (in_url, out_url) = (format!("file://{}", input.display()), format!("file://{}", out.display()));
    run_ok(
        mr().args(["run", "wordcount", "--quiet", "--workers", "2", "--input", &in_url, "--output", &out_url])
            .args(args),
    );
    assert_same_output(&out, &local);
    let again = dir.path("again");
    let again_url = format!("file://{}", again.display());
    run_ok(
        mr().args(["run", "wordcount", "--quiet", "--local", "--input", &in_url, "--output", &again_url]).args(args),
    );
    assert_same_output(&again, &local);
}

/// A moto_server on a free port, stopped on drop.
struct S3 {
    child: Child,
    endpoint: String,
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3 {
    fn start() -> Option<S3> {
        let found = std::env::var_os("PATH")?.to_str()?.split(':').any(|d| Path::new(d).join("moto_server").is_file());
        if !found {
            assert!(std::env::var_os("CI").is_none(), "moto_server is not installed; .ci/run installs it");
            eprintln!("skipping the S3 test: moto_server is not installed (CI installs it)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s3 = S3 { child, endpoint: format!("http://127.0.0.1:{port}") };
        wait_for(60, "moto_server to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        Some(s3)
    }

    fn helper(&self, verb: &str, prefix: &str, dir: &Path) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/s3.py");
        run_ok(Command::new("python3").arg(script).args([&self.endpoint, verb, "mrtest", prefix]).arg(dir));
    }

    fn mr(&self) -> Command {
        let mut cmd = mr();
        cmd.env("AWS_ENDPOINT", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1");
        cmd
    }
}

#[test]
fn s3_input_and_output_against_a_real_server() {
    let Some(s3) = S3::start() else { return };
    let dir = Dir::new();
    let input = corpus(&dir);
    s3.helper("put", "input", &input);
    let args = ["--split-size", "700", "--reduce-tasks", "3"];
    let local = local_oracle(&dir, &input, &args);

    // A word count from the bucket's input to its output, run with `mode`.
    let count = |mode: &[&str]| {
        let mut cmd = s3.mr();
        cmd.args(["run", "wordcount", "--quiet"]).args(mode).args(args);
        cmd.args(["--input", "s3://mrtest/input", "--output", "s3://mrtest/out"]);
        cmd
    };
    run_ok(&mut count(&["--workers", "2"]));
    let got = dir.path("got");
    s3.helper("get", "out", &got);
    assert_same_output(&got, &local);
    assert!(got.join("_job.json").is_file());

    // A non-empty output prefix is refused, and replaced with --overwrite.
    let err =
        run_fail(s3.mr().args(["run", "wordcount", "--input", "s3://mrtest/input", "--output", "s3://mrtest/out"]));
    assert!(err.contains("s3://mrtest/out") && err.contains("--overwrite"), "{err}");
    run_ok(&mut count(&["--local", "--overwrite"]));
    let again = dir.path("again");
    s3.helper("get", "out", &again);
    assert_same_output(&again, &local);

    // A failed job leaves no object behind.
    let mut failing = s3.mr();
    failing.args(["run", "streaming", "--mapper", "cat", "--reducer", "exit 3", "--max-attempts", "1"]).args([
        "--workers",
        "2",
        "--input",
        "s3://mrtest/input",
        "--output",
        "s3://mrtest/failed",
    ]);
    run_fail(&mut failing);
    let failed = dir.path("failed");
    s3.helper("get", "failed", &failed);
    let left: Vec<_> = std::fs::read_dir(&failed).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "a failed job left {left:?}");

    // A missing input prefix is a clear error.
    let err =
        run_fail(s3.mr().args(["run", "wordcount", "--input", "s3://mrtest/nothing", "--output", "s3://mrtest/x"]));
    assert!(err.contains("s3://mrtest/nothing"), "{err}");
}

#[test]
fn an_interrupted_object_store_job_deletes_what_it_wrote() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let out = dir.path("out");
    let out_url = format!("file://{}", out.display());
    // Every reduce attempt waits 1 s first: three reduce tasks on two workers commit their
    // part objects at least 1 s apart.
    let config = dir.write("mr.toml", "[faults.reduce]\nstraggler = 1.0\nstraggler_delay_ms = 1000\n");
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--quiet", "--workers", "2", "--reduce-tasks", "3", "--split-size", "4000"])
        .arg("--input")
        .arg(&input)
        .args(["--output", &out_url, "--config"])
        .arg(&config);
    let job = crate::harness::Background::start(cmd, &dir, "object-store-interrupt");
    let committed_part = || {
        std::fs::read_dir(&out).into_iter().flatten().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("part-r-") && name.len() == "part-r-00000".len()
        })
    };
    wait_for(60, "a first part object", committed_part);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(job.child.id() as i32), nix::sys::signal::Signal::SIGINT)
        .unwrap();
    let (status, _, stderr) = job.finish();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&out).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "an interrupted job left {left:?} under its output prefix");
}

/// `--files` from an object store URL: every worker reads the file from the store itself (it
/// is nowhere on the local disk), and the commands find it under its `#NAME`; equal to
/// `--local`, and to the same job shipping a local copy. A missing object is a usage error
/// before any task runs.
#[test]
fn shipped_files_come_from_an_object_store_url() {
    let Some(s3) = S3::start() else { return };
    let dir = Dir::new();
    let input = corpus(&dir);
    let table = "the\tTHE\nand\tAND\nof\tOF\n";
    dir.write("side/names.tsv", table);
    s3.helper("put", "side", &dir.path("side"));
    std::fs::remove_dir_all(dir.path("side")).unwrap();
    // The table's words, renamed, each counted.
    let mapper = "awk -F'\\t' 'NR == FNR { up[$1] = $2; next } { n = split($0, w, \" \"); for (i = 1; i <= n; i++) \
                  if (w[i] in up) print up[w[i]] \"\\t1\" }' lookup.tsv -";
    let reducer = "awk -F'\\t' '{ c[$1] += $2 } END { for (k in c) print k \"\\t\" c[k] }'";
    let job = |files: &str, out: &Path, extra: &[&str]| {
        let mut cmd = s3.mr();
        cmd.args(["run", "streaming", "--mapper", mapper, "--reducer", reducer, "--files", files]);
        cmd.args(["--split-size", "700", "--reduce-tasks", "1", "--input"]).arg(&input).arg("--output").arg(out);
        cmd.args(extra);
        cmd
    };
    let url = "s3://mrtest/side/names.tsv#lookup.tsv";
    let (dist, local) = (dir.path("dist"), dir.path("local"));
    run_ok(&mut job(url, &dist, &["--workers", "2", "--quiet"]));
    run_ok(&mut job(url, &local, &["--local", "--quiet"]));
    assert_same_output(&dist, &local);
    let copy = dir.write("copy/names.tsv", table);
    let from_disk = dir.path("from-disk");
    run_ok(&mut job(&format!("{}#lookup.tsv", copy.display()), &from_disk, &["--local", "--quiet"]));
    assert_same_output(&dist, &from_disk);
    let text = String::from_utf8(crate::harness::sorted_lines(&dist)).unwrap();
    assert!(text.contains("THE\t") && text.contains("AND\t"), "{text}");

    let missing = dir.path("missing");
    let err = crate::harness::run_usage(&mut job("s3://mrtest/side/absent.tsv", &missing, &["--workers", "2"]));
    assert!(err.contains("s3://mrtest/side/absent.tsv"), "{err}");
    assert!(!missing.exists(), "a refused job left its output");
}
