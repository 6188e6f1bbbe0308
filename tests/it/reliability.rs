//! Faults and bad input not covered elsewhere (docs/RELIABILITY.md tables them all): many
//! small files, a full disk, a record larger than the limit, garbage on the gRPC port, and a
//! streaming command killed by a signal.
//! Each run either matches `--local` (and a reference), or fails with a clear error, exit code
//! 1, no output, and no temporary file or process left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;

/// Lists what is left under `dir`, recursively.
fn left_in(dir: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        left.push(entry.path());
        if entry.path().is_dir() {
            left.extend(left_in(&entry.path()));
        }
    }
    left
}

/// 100,000 files of one to three short lines, in 100 directories (the last holds empty files).
fn many_small_files(dir: &Dir) -> PathBuf {
    const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "Épsilon", "zeta", "eta", "theta"];
    let root = dir.path("many");
    let mut rng = Lcg(11);
    for d in 0..100 {
        let sub = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            let mut text = String::new();
            if d < 99 {
                for _ in 0..1 + rng.below(3) {
                    for _ in 0..1 + rng.below(4) {
                        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                        text.push(' ');
                    }
                    text.push_str(&format!("file{d}x{f}\n"));
                }
            }
            std::fs::write(sub.join(format!("f{f:04}.txt")), text).unwrap();
        }
    }
    root
}

#[test]
fn a_hundred_thousand_small_files_pack_into_few_map_tasks() {
    let dir = Dir::new();
    let started = Instant::now();
    let input = many_small_files(&dir);
    eprintln!("generated 100,000 files in {:?}", started.elapsed());
    let expected = reference("jobs.py", &[Path::new("wordcount"), &input]);
    let (dist, local) = (dir.path("dist"), dir.path("local"));
    let job = Background::start(
        wordcount(&input, &dist, &["--workers", "2", "--reduce-tasks", "2", "--split-size", "1MiB", "--json"]),
        &dir,
        "many-files",
    );
    let work = job.work.clone();
    let (status, stdout, stderr) = job.finish();
    assert!(status.success(), "status {status}\n{stderr}");
    eprintln!("distributed run after {:?}", started.elapsed());
    let summary = summary(&stdout);
    // About 3.6 MB in 99,000 non-empty files: packed into splits of at most 1 MiB and 4096 files.
    let maps = summary["map"]["tasks"].as_u64().unwrap();
    eprintln!("{maps} map tasks for {} input bytes", summary["map"]["counters"]["input_bytes"]);
    assert!((25..=30).contains(&maps), "{maps} map tasks for 100,000 files\n{stdout}");
    run_ok(&mut wordcount(&input, &local, &["--reduce-tasks", "2", "--split-size", "1MiB", "--local", "--quiet"]));
    eprintln!("local run after {:?}", started.elapsed());
    assert_same_output(&dist, &local);
    assert!(sorted_lines(&dist) == expected, "output differs from the reference");
    assert!(left_in(&work).is_empty(), "left behind: {:?}", left_in(&work));
}

/// A tmpfs of `size` mounted on a new directory; unmounted when dropped, even if the test
/// failed.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        // CI runs as root: a full disk must be tested, not skipped.
        assert!(
            out.status.success(),
            "this test mounts a tmpfs and needs root (CI runs as root): mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

/// Lines of 32 random hex digits: `sort` writes them all to its map outputs.
fn random_lines(dir: &Dir, name: &str, lines: usize) -> PathBuf {
    let mut rng = Lcg(5);
    let mut text = String::with_capacity(lines * 33);
    for _ in 0..lines {
        text.push_str(&format!("{:016x}{:016x}\n", rng.below(u64::MAX), rng.below(u64::MAX)));
    }
    dir.write(name, text)
}

#[test]
fn a_full_disk_while_spilling_fails_the_job_clearly_and_leaves_nothing() {
    let dir = Dir::new();
    // 24 MiB of input whose map outputs, spilled from a 1 MiB sort buffer, fill a 16 MiB disk.
    let input = random_lines(&dir, "in/lines.txt", 24 << 20 >> 5);
    let disk = Tmpfs::mount(dir.path("disk"), "16m");
    let out = dir.path("out");
    for (mode, tag) in [(&["--workers", "2", "--max-attempts", "2"][..], "full-dist"), (&["--local"][..], "full-local")]
    {
        let tag = format!("{tag}-{}", std::process::id());
        let mut cmd = mr();
        cmd.args(["run", "sort", "--input"]).arg(&input).arg("--output").arg(&out);
        cmd.args(["--sort-buffer", "1MiB", "--split-size", "8MiB", "--quiet"]).args(mode);
        cmd.env("TMPDIR", &disk.path).env("MR_TEST_TAG", &tag);
        let started = Instant::now();
        let err = run_fail(&mut cmd);
        eprintln!("{mode:?} failed after {:?}", started.elapsed());
        assert!(err.contains("No space left on device"), "{err}");
        // The file it could not write: a spilled run, or the merged map output.
        assert!(err.contains(&format!("'{}/mr-work-", disk.path.display())) && err.contains("map-0000"), "{err}");
        assert!(!out.exists(), "a failed job left its output dir");
        wait_for(10, "every process of the job to exit", || tagged_processes(&tag).is_empty());
        assert!(left_in(&disk.path).is_empty(), "left on the disk: {:?}", left_in(&disk.path));
    }
}

#[test]
fn a_line_over_max_record_bytes_fails_clearly_or_is_skipped() {
    let dir = Dir::new();
    // The same path as a 1 GiB line under the default 64 MiB limit (docs/RELIABILITY.md).
    let long: String = "word ".repeat(400_000);
    let input = dir.write("in/long.txt", format!("before\n{long}\nafter after\n"));
    let out = dir.path("out");
    let limit = ["--max-record-bytes", "1MiB"];
    for mode in [&["--workers", "2", "--max-attempts", "2"][..], &["--local"][..]] {
        let err = run_fail(&mut wordcount(&input, &out, &[&limit[..], mode].concat()));
        let named = format!("the record at byte offset 7 of '{}' is 2000000 bytes", input.display());
        assert!(err.contains(&named) && err.contains("more than --max-record-bytes (1048576 bytes)"), "{err}");
        assert!(err.contains("raise --max-record-bytes (MR_MAX_RECORD_BYTES, max_record_bytes"), "{err}");
        assert!(!out.exists(), "a failed job left its output dir");
    }
    // Skipped as a bad record: the lines around it are counted.
    let stdout = run_ok(&mut wordcount(&input, &out, &[&limit[..], &["--skip-bad-records", "--json"]].concat()));
    assert_eq!(summary(&stdout)["map"]["counters"]["skipped_records"], 1, "{stdout}");
    assert_eq!(sorted_lines(&out), b"after\t2\nbefore\t1\n");
    // Raised, the line is read whole.
    let (big, local) = (dir.path("big"), dir.path("local"));
    run_ok(&mut wordcount(&input, &big, &["--max-record-bytes", "2MB", "--workers", "2", "--quiet"]));
    run_ok(&mut wordcount(&input, &local, &["--max-record-bytes", "2MB", "--local", "--quiet"]));
    assert_same_output(&big, &local);
    assert_eq!(sorted_lines(&big), b"after\t2\nbefore\t1\nword\t400000\n");
}

/// Sends bytes as they are, and returns the reply's bytes: a gRPC client for any message.
#[derive(Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Calls `path` on the coordinator at `url` with `body` as the encoded request.
async fn raw_call(url: &str, token: &str, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel = mr::worker::connect(url, std::time::Duration::from_secs(10), None).await.unwrap();
    let service = mr::net::rpc::authenticated(channel, mr::net::rpc::Token::new(token).unwrap());
    let mut grpc = tonic::client::Grpc::new(service);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body), path, RawCodec).await.map(tonic::Response::into_inner)
}

/// Writes `bytes` on a new connection to `addr` and returns what comes back before the server
/// closes it (within 10 s).
fn raw_tcp(addr: &str, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    stream.write_all(bytes).unwrap();
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the server kept a connection of garbage open: {e}"),
    }
    reply
}

/// The HTTP/2 frames of `bytes` as (type, flags, stream id); panics on a partial frame.
fn http2_frames(mut bytes: &[u8]) -> Vec<(u8, u8, u32)> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 9, "a partial HTTP/2 frame header: {bytes:?}");
        let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
        let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff;
        frames.push((bytes[3], bytes[4], stream));
        assert!(bytes.len() >= 9 + len, "a partial HTTP/2 frame: {bytes:?}");
        bytes = &bytes[9 + len..];
    }
    frames
}

#[test]
fn oversized_and_malformed_rpcs_get_an_error_and_the_job_goes_on() {
    let dir = Dir::new();
    for f in 0..3 {
        dir.write(&format!("in/{f}.txt"), (0..200).map(|i| format!("w{} line {f}\n", i % 17)).collect::<String>());
    }
    let input = dir.path("in");
    // The maps wait for `go`, so the coordinator is up while the test sends it garbage.
    let go = dir.path("go");
    let mapper = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; tr -cs 'A-Za-z0-9' '\\n' | awk 'NF {{ print $0 \"\\t1\" }}'",
        go.display()
    );
    let reducer = "awk -F'\\t' '$1 != k { if (n) print k \"\\t\" c; k = $1; c = 0; n = 1 } { c += $2 } END { if (n) print k \"\\t\" c }'";
    let addr = format!("127.0.0.1:{}", crate::cluster::free_port());
    let (out, local) = (dir.path("out"), dir.path("local"));
    let job = |out: &Path, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "streaming", "--mapper", &mapper, "--reducer", reducer, "--reduce-tasks", "2"]);
        cmd.arg("--input").arg(&input).arg("--output").arg(out).args(["--quiet", "--split-size", "3KB"]).args(extra);
        cmd
    };
    let running =
        Background::start(job(&out, &["--workers", "2", "--listen", &addr, "--token", "secret"]), &dir, "rpc");
    wait_for(30, "the coordinator to listen", || std::net::TcpStream::connect(&addr).is_ok());
    let url = format!("http://{addr}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // 17 MiB: over the 16 MiB every server decodes.
        let status = raw_call(&url, "secret", "/mapreduce.State/SetState", vec![0; 17 << 20]).await.unwrap_err();
        eprintln!("oversized: {status:?}");
        assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
        assert!(status.message().contains("message length too large"), "{status:?}");
        // A field 1 whose length runs past the end: not a protobuf message.
        for path in ["/mapreduce.State/GetState", "/mapreduce.Coordinator/RegisterWorker"] {
            let status = raw_call(&url, "secret", path, vec![0x0a, 0xff, 0x01, b'x']).await.unwrap_err();
            eprintln!("malformed {path}: {status:?}");
            assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
            assert!(status.message().contains("failed to decode Protobuf message"), "{status:?}");
        }
        // The token is checked before the message is read.
        let status = raw_call(&url, "wrong", "/mapreduce.State/GetState", vec![0xff; 8]).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        let status = raw_call(&url, "secret", "/mapreduce.Nothing/Here", Vec::new()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{status:?}");
    });
    // HTTP/1 and random bytes on the HTTP/2 port: the connection is closed, nothing else.
    let reply = raw_tcp(&addr, b"GET / HTTP/1.1\r\nHost: mr\r\n\r\n");
    let frames = http2_frames(&reply);
    eprintln!("HTTP/1 reply: {:?}, frames (type, flags, stream): {frames:?}", String::from_utf8_lossy(&reply));
    // The server's preface, an HTTP/2 SETTINGS frame (type 4) on stream 0, comes first; no
    // HTTP/1 response, and nothing but connection-level frames.
    assert!(matches!(frames.first(), Some((4, 0, 0))), "no SETTINGS frame first: {reply:?}");
    assert!(frames.iter().all(|&(_, _, stream)| stream == 0), "{frames:?}");
    let mut rng = Lcg(3);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.below(256) as u8).collect();
    raw_tcp(&addr, &garbage);

    std::fs::write(&go, "").unwrap();
    let (status, _, stderr) = running.finish();
    assert!(status.success(), "the job failed after the garbage: {stderr}");
    run_ok(&mut job(&local, &["--local"]));
    assert_same_output(&out, &local);
}

#[test]
fn a_streaming_command_killed_by_a_signal_fails_the_job_clearly() {
    let dir = Dir::new();
    let input = dir.write("in.txt", "a b\nc\n");
    let out = dir.path("out");
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", "echo about to crash >&2; kill -SEGV $$", "--reducer", "cat"]);
    cmd.arg("--input").arg(&input).arg("--output").arg(&out).args(["--max-attempts", "2", "--workers", "2"]);
    let err = run_fail(&mut cmd);
    assert!(err.contains("signal: 11 (SIGSEGV)") && err.contains("about to crash"), "{err}");
    assert!(err.contains("2 attempts out of 2 allowed"), "{err}");
    assert!(!out.exists(), "a failed job left its output dir");
}
