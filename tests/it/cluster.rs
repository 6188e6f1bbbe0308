//! `mr coordinator` with workers that join by hand, each advertising its own loopback address
//! (127.0.0.2, 127.0.0.3), so that they count as separate hosts: every map output a reducer
//! reads from the other worker crosses the Shuffle service. The test with real separate hosts
//! (network namespaces) is tests/cluster/run.sh.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};

use crate::harness::{Dir, assert_same_output, mr, run_fail, run_ok, run_usage, tagged_processes, wait_for};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Four input files; the one holding `marker` lines (if any) is file 3.
pub fn text(dir: &Dir, marker: &str) -> std::path::PathBuf {
    for f in 0..4 {
        let mut body: String = (0..3000).map(|i| format!("w{} x{} y{} line {f}\n", i % 97, i % 13, i % 5)).collect();
        if f == 3 {
            body.push_str(marker);
        }
        dir.write(&format!("in/{f}.txt"), body);
    }
    dir.path("in")
}

/// A job's processes, tagged so that the test can find and kill them.
pub struct Cluster {
    coordinator: Child,
    workers: Vec<Child>,
    pub tag: String,
    /// The coordinator's URL, as it prints it.
    pub url: String,
    status: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Cluster {
    fn start(dir: &Dir, name: &str, job: &[&str], hosts: &[&str]) -> Cluster {
        Cluster::start_with(dir, name, job, hosts, &[])
    }

    /// A cluster whose coordinator and workers all get `common` flags besides their own.
    pub fn start_with(dir: &Dir, name: &str, job: &[&str], hosts: &[&str], common: &[&std::ffi::OsStr]) -> Cluster {
        let tag = format!("{name}-{}", std::process::id());
        let port = free_port();
        let tmp = dir.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut coordinator = mr()
            .arg("coordinator")
            .args(job)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--worker-timeout", "2s"])
            .args(common)
            .env("MR_TOKEN", "cluster-secret")
            .env("MR_TEST_TAG", &tag)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(coordinator.stderr.take().unwrap());
        let (mut url, mut status) = (String::new(), String::new());
        for _ in 0..2 {
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            if let Some(u) = line.strip_prefix("coordinator: ") {
                url = u.trim().to_string();
            }
            if let Some(u) = line.strip_prefix("status: ") {
                status = u.trim().to_string();
            }
        }
        assert!(url.ends_with(&format!("://127.0.0.1:{port}")), "no coordinator line: {url:?}");
        assert!(status.starts_with("http://"), "no status line");
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            rest
        });
        let workers = hosts
            .iter()
            .map(|host| {
                mr().args(["worker", "--coordinator", &url, "--advertise", host])
                    .args(common)
                    .env("MR_TOKEN", "cluster-secret")
                    .env("MR_TEST_TAG", &tag)
                    .env("TMPDIR", &tmp)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Cluster { coordinator, workers, tag, url, status, stderr }
    }

    fn job(&self) -> serde_json::Value {
        let body = ureq::get(&format!("{}api/v1/job", self.status))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Waits for the coordinator; returns its exit code and stderr, after checking that every
    /// process of the job is gone.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.coordinator.wait().unwrap();
        for w in &mut self.workers {
            let _ = w.wait();
        }
        wait_for(15, "every process of the job to exit", || tagged_processes(&self.tag).is_empty());
        (status.code(), self.stderr.join().unwrap())
    }

    /// Starts one more worker with the token `cluster-secret` and `args`, which must finish
    /// the job: it and the coordinator exit with success.
    pub fn finish_with_a_worker<S: AsRef<std::ffi::OsStr>>(self, args: &[S]) {
        let mut good = mr()
            .args(["worker", "--coordinator", &self.url])
            .args(args)
            .env("MR_TOKEN", "cluster-secret")
            .env("MR_TEST_TAG", &self.tag)
            .spawn()
            .unwrap();
        let (code, stderr) = self.finish();
        assert!(good.wait().unwrap().success());
        assert_eq!(code, Some(0), "{stderr}");
    }
}

/// Checks, from a committed output's `_job.json`, that two workers ran attempts.
pub fn assert_both_hosts_ran_attempts(out: &std::path::Path) {
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
    let workers: std::collections::BTreeSet<u64> =
        history["summary"]["attempts"].as_array().unwrap().iter().map(|a| a["worker"].as_u64().unwrap()).collect();
    assert_eq!(workers.len(), 2, "both hosts ran attempts: {history:#}");
}

pub fn local(dir: &Dir, job: &[&str]) -> std::path::PathBuf {
    let out = dir.path("local");
    run_ok(mr().args(["run"]).args(job).args(["--local", "--quiet", "--output"]).arg(&out));
    out
}

#[test]
fn workers_on_separate_hosts_shuffle_over_the_network() {
    let dir = Dir::new();
    let input = text(&dir, "");
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let job = ["wordcount", "--input", i, "--reduce-tasks", "3", "--split-size", "16KiB"];
    let cluster = Cluster::start(&dir, "hosts", &[&job[..], &["--output", o]].concat(), &["127.0.0.2", "127.0.0.3"]);
    let (code, stderr) = cluster.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_same_output(&out, &local(&dir, &job));
    assert_both_hosts_ran_attempts(&out);
}

#[test]
fn a_lost_host_s_map_outputs_are_re_executed() {
    let dir = Dir::new();
    // Map task 3 (file 3) holds a SLOW line: its attempts wait for the file `go`.
    let input = text(&dir, "SLOW\n");
    let go = dir.path("go");
    let mapper = format!(
        "t=$(mktemp); cat > \"$t\"; if grep -q SLOW \"$t\"; then while [ ! -e '{}' ]; do sleep 0.05; done; fi; \
         tr -cs 'A-Za-z0-9' '\\n' < \"$t\" | awk 'NF {{ print $0 \"\\t1\" }}'; rm -f \"$t\"",
        go.display()
    );
    let reducer = "awk -F'\\t' '$1 != k { if (n) print k \"\\t\" c; k = $1; c = 0; n = 1 } { c += $2 } END { if (n) print k \"\\t\" c }'";
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let job = ["streaming", "--mapper", &mapper, "--reducer", reducer, "--input", i, "--reduce-tasks", "2"];
    // A split size under two files' size keeps each file a map task of its own.
    let job = [&job[..], &["--task-timeout", "10m", "--split-size", "100KB"]].concat();
    let mut cluster =
        Cluster::start(&dir, "lost-host", &[&job[..], &["--output", o]].concat(), &["127.0.0.2", "127.0.0.3"]);
    // One worker holds the slow map 3; wait until the other has committed the other three.
    wait_for(60, "maps 0-2 committed and map 3 running", || {
        let j = cluster.job();
        j["phases"][0]["done"] == 3 && j["phases"][0]["running"] == 1
    });
    let j = cluster.job();
    let slow_worker = j["tasks"][3]["attempts"][0]["worker"].as_u64().unwrap();
    let victim = j["workers"].as_array().unwrap().iter().find(|w| w["id"].as_u64() != Some(slow_worker)).unwrap();
    let pid: u32 = victim["name"].as_str().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
    let index = cluster.workers.iter().position(|c| c.id() == pid).expect("the victim is one of ours");
    let mut victim = cluster.workers.remove(index);
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Declared dead after the worker timeout: its committed map outputs go back to idle.
    wait_for(30, "the dead host's maps to be re-executed", || cluster.job()["phases"][0]["lost_attempts"] != 0);
    std::fs::write(&go, "").unwrap();
    let (code, stderr) = cluster.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_same_output(&out, &local(&dir, &job));
}

#[test]
fn a_worker_with_a_wrong_token_exits_with_a_clear_error() {
    let dir = Dir::new();
    let input = text(&dir, "");
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let cluster = Cluster::start(&dir, "token", &["wordcount", "--input", i, "--output", o], &[]);
    let err = run_fail(mr().args(["worker", "--coordinator", &cluster.url]).env("MR_TOKEN", "not-it"));
    assert!(err.contains("refused the token") && err.contains("--token"), "{err}");
    let err = run_fail(mr().args(["worker", "--coordinator", &cluster.url]));
    assert!(err.contains("refused the token"), "{err}");
    // A worker with the right token finishes the job.
    cluster.finish_with_a_worker::<&str>(&[]);
}

#[test]
fn a_coordinator_on_the_network_needs_a_token() {
    let dir = Dir::new();
    let input = text(&dir, "");
    let out = dir.path("out");
    let mut cmd = mr();
    cmd.args(["coordinator", "wordcount", "--listen", "0.0.0.0:0", "--input"]).arg(&input).arg("--output").arg(&out);
    let err = run_fail(&mut cmd);
    assert!(err.contains("without a token") && err.contains("--token"), "{err}");
    assert!(!out.exists());
    let err = run_usage(mr().args(["coordinator", "wordcount", "--input"]).arg(&input).arg("--output").arg(&out));
    assert!(err.contains("needs --listen"), "{err}");
}
