//! `mr cluster` with long-lived workers (`mr worker --cluster URL --slots 2`), each advertising
//! its own loopback address (127.0.0.2, 127.0.0.3) so that reducers fetch through the Shuffle
//! services: many jobs at once, a killed job, a killed worker, and a service SIGKILLed and
//! started again. Every output is compared byte for byte with `mr run --local`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use crate::cluster::free_port;
use crate::harness::{Dir, assert_same_output, corpus, mr, run_fail, run_ok, run_usage, tagged_processes, wait_for};

const TOKEN: &str = "cluster-token";

/// A cluster service and its workers, all tagged, killed when dropped.
struct Service {
    service: Option<Child>,
    workers: Vec<Child>,
    tag: String,
    port: u16,
    url: String,
    web: String,
    state: PathBuf,
    tmp: PathBuf,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Service {
    fn start(dir: &Dir, name: &str, workers: &[&str]) -> Service {
        let tag = format!("{name}-{}", std::process::id());
        let tmp = dir.path("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mut s = Service {
            service: None,
            workers: Vec::new(),
            tag,
            port: free_port(),
            url: String::new(),
            web: String::new(),
            state: dir.path("state"),
            tmp,
            stderr: None,
        };
        s.start_service();
        for (i, host) in workers.iter().enumerate() {
            s.start_worker(dir, i, host);
        }
        wait_for(30, "every slot registered", || {
            s.metric("mr_cluster_slots{state=\"idle\"}") >= 2 * workers.len() as i64
        });
        s
    }

    fn start_service(&mut self) {
        let mut child = mr()
            .args(["cluster", "--listen", &format!("127.0.0.1:{}", self.port), "--http", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(&self.state)
            .env("MR_TOKEN", TOKEN)
            .env("MR_TEST_TAG", &self.tag)
            .env("TMPDIR", &self.tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        for _ in 0..2 {
            let mut line = String::new();
            stderr.read_line(&mut line).unwrap();
            if let Some(u) = line.strip_prefix("cluster: ") {
                self.url = u.trim().to_string();
            }
            if let Some(u) = line.strip_prefix("web: ") {
                self.web = u.trim().to_string();
            }
        }
        assert!(self.url.ends_with(&format!(":{}", self.port)) && self.web.starts_with("http://"), "{}", self.url);
        self.stderr = Some(std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = stderr.read_to_string(&mut rest);
            rest
        }));
        self.service = Some(child);
    }

    fn start_worker(&mut self, dir: &Dir, i: usize, host: &str) {
        let work = dir.path(&format!("w{i}"));
        std::fs::create_dir_all(&work).unwrap();
        let child = mr()
            .args(["worker", "--cluster", &self.url, "--slots", "2", "--advertise", host])
            .arg("--work-dir")
            .arg(&work)
            .env("MR_TOKEN", TOKEN)
            .env("MR_TEST_TAG", &self.tag)
            .env("TMPDIR", &self.tmp)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.workers.push(child);
    }

    /// `mr submit` of a job, not waited for.
    fn submit(&self, args: &[&str], input: &Path, output: &Path) -> std::process::Command {
        let mut cmd = mr();
        cmd.args(["submit", "--cluster", &self.url])
            .args(args)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .env("MR_TOKEN", TOKEN)
            .env("MR_TEST_TAG", &self.tag);
        cmd
    }

    fn get(&self, path: &str) -> String {
        let url = format!("{}{path}", self.web);
        ureq::get(&url).call().and_then(|mut r| r.body_mut().read_to_string()).unwrap_or_default()
    }

    fn jobs(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.get("api/v1/jobs")).unwrap_or_default()
    }

    fn job(&self, id: u64) -> serde_json::Value {
        serde_json::from_str(&self.get(&format!("api/v1/jobs/{id}"))).unwrap_or_default()
    }

    /// A series of the cluster's metrics, or -1.
    fn metric(&self, series: &str) -> i64 {
        self.get("metrics")
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(-1)
    }

    fn kill_service(&mut self) -> String {
        let mut child = self.service.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for child in self.service.iter_mut().chain(self.workers.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Slot processes die with their worker; anything left is a bug, killed here.
        wait_for(10, "no process of the cluster left", || tagged_processes(&self.tag).is_empty());
    }
}

fn local(name: &[&str], input: &Path, output: &Path) {
    run_ok(
        mr().arg("run").args(name).args(["--local", "--quiet"]).arg("--input").arg(input).arg("--output").arg(output),
    );
}

#[test]
fn twenty_jobs_at_once_on_four_slots_all_match_local() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let service = Service::start(&dir, "multijob-twenty", &["127.0.0.2", "127.0.0.3"]);
    let kinds: [&[&str]; 5] = [
        &["wordcount", "--reduce-tasks", "3", "--split-size", "700"],
        &["grep", "é|straße", "--reduce-tasks", "2", "--split-size", "500"],
        &["sort", "--reduce-tasks", "3", "--split-size", "900"],
        &["index", "--reduce-tasks", "2", "--split-size", "600"],
        &["streaming", "--mapper", "tr -s ' ' '\\n'", "--reducer", "uniq -c", "--reduce-tasks", "2"],
    ];
    for (k, kind) in kinds.iter().enumerate() {
        local(kind, &input, &dir.path(&format!("local-{k}")));
    }
    let mut submits: Vec<(usize, PathBuf, Child)> = (0..20)
        .map(|i| {
            let out = dir.path(&format!("out-{i}"));
            let child = service
                .submit(kinds[i % kinds.len()], &input, &out)
                .arg("--quiet")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (i, out, child)
        })
        .collect();
    for (i, out, child) in submits.drain(..) {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "job {i}: {}", String::from_utf8_lossy(&output.stderr));
        assert_same_output(&out, &dir.path(&format!("local-{}", i % kinds.len())));
    }
    let jobs = service.jobs();
    assert_eq!(jobs.len(), 20);
    assert!(jobs.iter().all(|j| j["state"] == "succeeded"), "{jobs:?}");
    // The history as `mr jobs` shows it.
    let listed = run_ok(mr().args(["jobs", "--cluster", &service.url]).env("MR_TOKEN", TOKEN));
    assert_eq!(listed.lines().filter(|l| l.contains("succeeded")).count(), 20, "{listed}");
    // Each job's page, from the store now that it ended.
    let page = service.get("jobs/3/api/v1/job");
    assert!(page.contains("\"state\":\"succeeded\""), "{page}");
}

/// A streaming job whose mappers wait for `gate` before they copy their input.
fn gated(gate: &Path) -> Vec<String> {
    let wait = format!("while [ ! -e '{}' ]; do sleep 0.02; done; cat", gate.display());
    ["streaming", "--mapper", &wait, "--reducer", "cat", "--reduce-tasks", "2", "--split-size", "800"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[test]
fn a_killed_job_leaves_no_output_or_work_files_and_the_others_finish() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let service = Service::start(&dir, "multijob-kill", &["127.0.0.2", "127.0.0.3"]);
    let gate = dir.path("never");
    let args = gated(&gate);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let killed_out = dir.path("killed");
    let id = run_ok(service.submit(&args, &input, &killed_out).arg("--detach"));
    let id: u64 = id.trim().parse().unwrap();
    wait_for(30, "the gated job's attempts running", || service.metric("mr_cluster_slots{state=\"busy\"}") >= 2);
    let work_files = || {
        let mut found = Vec::new();
        for w in ["w0", "w1"] {
            for slot in std::fs::read_dir(dir.path(w)).unwrap().flatten() {
                if slot.path().join(format!("job-{id}")).exists() {
                    found.push(slot.path());
                }
            }
        }
        found
    };
    assert!(!work_files().is_empty(), "the job has no work directory on any slot");
    // Another job runs beside it and finishes, equal to local.
    let kind = ["wordcount", "--reduce-tasks", "3", "--split-size", "700"];
    let other = service.submit(&kind, &input, &dir.path("other")).arg("--quiet").spawn().unwrap();
    let killed = run_ok(mr().args(["kill", "--cluster", &service.url, &id.to_string()]).env("MR_TOKEN", TOKEN));
    assert!(killed.contains(&format!("job {id}")), "{killed}");
    wait_for(30, "the job killed", || service.job(id)["state"] == "killed");
    assert!(!killed_out.exists(), "the killed job's output is still there");
    wait_for(30, "the killed job's work files removed", || work_files().is_empty());
    assert!(other.wait_with_output().unwrap().status.success());
    local(&kind, &input, &dir.path("local"));
    assert_same_output(&dir.path("other"), &dir.path("local"));
    // Killing it again says it has ended.
    let again =
        mr().args(["kill", "--cluster", &service.url, &id.to_string()]).env("MR_TOKEN", TOKEN).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already ended"));
}

#[test]
fn a_worker_killed_mid_job_leaves_the_job_to_the_other() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let mut service = Service::start(&dir, "multijob-worker", &["127.0.0.2", "127.0.0.3"]);
    let gate = dir.path("gate");
    let args = gated(&gate);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = dir.path("out");
    let submit = service.submit(&args, &input, &out).arg("--quiet").arg("--worker-timeout").arg("2s").spawn().unwrap();
    wait_for(30, "attempts running on both workers", || service.metric("mr_cluster_slots{state=\"busy\"}") >= 3);
    let mut worker = service.workers.remove(0);
    worker.kill().unwrap();
    worker.wait().unwrap();
    std::fs::write(&gate, "").unwrap();
    let output = submit.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    local(&args, &input, &dir.path("local"));
    assert_same_output(&out, &dir.path("local"));
}

#[test]
fn a_service_killed_mid_job_resumes_it_without_rerunning_committed_tasks() {
    let dir = Dir::new();
    // Six files, one map task each; the mapper of the last one waits for the gate.
    let input = dir.path("in");
    // Files of 4000 bytes each, split at 4000 bytes: one map task per file.
    for f in 0..6 {
        let body: String = (0..200).map(|i| format!("w{:02} straße Été {f}\n", i % 17)).collect();
        assert_eq!(body.len(), 4000);
        dir.write(&format!("in/{f}{}.txt", if f == 5 { "-slow" } else { "" }), body);
    }
    let gate = dir.path("gate");
    let mapper = format!(
        "case \"$mapreduce_map_input_file\" in *slow*) while [ ! -e '{}' ]; do sleep 0.02; done;; esac; cat",
        gate.display()
    );
    let args = ["streaming", "--mapper", &mapper, "--reducer", "sort", "--reduce-tasks", "2", "--split-size", "4000"];
    let mut service = Service::start(&dir, "multijob-restart", &["127.0.0.2", "127.0.0.3"]);
    // A job that finished before the restart stays in the history.
    run_ok(service.submit(&["wordcount"], &input, &dir.path("before")).arg("--quiet"));
    let out = dir.path("out");
    let id = run_ok(service.submit(&args, &input, &out).arg("--detach"));
    let id: u64 = id.trim().parse().unwrap();
    wait_for(30, "five maps committed", || service.job(id)["progress"]["map_done"] == 5);
    let before = service.kill_service();
    // What the killed service's journal of the job holds: those maps must not run again.
    let journal = mr::control::journal::Journal::inspect(&mr::control::journal::path_for(&out)).unwrap();
    let journaled = journal.done.iter().filter(|(task, _)| task.phase == mr::types::Phase::Map).count();
    assert!(journaled > 0, "the journal holds no committed map");
    std::fs::write(&gate, "").unwrap();
    service.start_service();
    wait_for(60, "the job resumed and succeeded", || service.job(id)["state"] == "succeeded");
    let job = service.job(id);
    let attempts = job["summary"]["attempts"].as_array().unwrap();
    let maps: Vec<_> = attempts.iter().filter(|a| a["id"]["task"]["phase"] == "map").collect();
    assert_eq!(maps.len(), 6 - journaled, "journaled maps ran again after the restart: {maps:?}\n{before}");
    local(&args, &input, &dir.path("local"));
    assert_same_output(&out, &dir.path("local"));
    assert_eq!(service.job(1)["state"], "succeeded", "the history lost the first job");
}

#[test]
fn a_job_s_map_outputs_are_served_only_with_its_own_secret() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let mut service = Service::start(&dir, "multijob-secret", &["127.0.0.2", "127.0.0.3"]);
    // Job 1 ends; job 2's reducers wait for a gate that never comes, so its map outputs stay.
    run_ok(service.submit(&["wordcount"], &input, &dir.path("first")).arg("--quiet"));
    let wait = format!("while [ ! -e '{}' ]; do sleep 0.02; done; cat", dir.path("never").display());
    let held = ["streaming", "--mapper", "cat", "--reducer", &wait, "--reduce-tasks", "2", "--split-size", "800"];
    let out = dir.path("held");
    let id = run_ok(service.submit(&held, &input, &out).arg("--detach"));
    let id: u64 = id.trim().parse().unwrap();
    wait_for(30, "every map committed", || {
        let p = &service.job(id)["progress"];
        p["map_done"].as_u64().is_some_and(|d| d > 0 && Some(d) == p["map_total"].as_u64())
    });
    // The service goes; the workers keep serving job 2's map outputs.
    service.kill_service();
    let store = mr::cluster::store::Store::open(&service.state).unwrap();
    let records = store.all().unwrap();
    let secret = |id: u64| records.iter().find(|r| r.id == id).unwrap().secret.clone();
    let journal = mr::control::journal::Journal::inspect(&mr::control::journal::path_for(&out)).unwrap();
    let location = journal.done.iter().find_map(|(_, done)| done.map_output.clone()).expect("a map output");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let fetch = |secret: &str, dest: &str| {
        let token = mr::net::rpc::Token::new(secret).unwrap();
        runtime.block_on(mr::net::shuffle::fetch(&location, 0, &dir.path(dest), &token, None, &|_| {}))
    };
    let other = fetch(&secret(1), "with-job-1");
    assert!(other.is_err(), "job 1's secret fetched job 2's map output");
    assert!(fetch("", "with-none").is_err(), "no secret fetched job 2's map output");
    fetch(&secret(id), "with-job-2").unwrap();
}

#[test]
fn submit_plans_the_job_itself_so_a_bad_input_is_refused_before_anything_is_queued() {
    let dir = Dir::new();
    let missing = dir.path("no-such-input");
    // Refused where the request is made, as `mr run` refuses it (exit 1, the path named): no
    // cluster is even reached (none listens there).
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let refused = run_fail(
        mr().args(["submit", "--cluster", &nowhere, "wordcount", "--input"])
            .arg(&missing)
            .arg("--output")
            .arg(dir.path("out"))
            .env("MR_TOKEN", TOKEN),
    );
    assert!(refused.contains(&format!("input path '{}' does not exist", missing.display())), "{refused}");
    assert!(!dir.path("out").exists());
    let input = corpus(&dir);
    let service = Service::start(&dir, "multijob-refused", &["127.0.0.2"]);
    let refused = run_fail(&mut service.submit(&["wordcount"], &missing, &dir.path("out")));
    assert!(refused.contains(&missing.display().to_string()), "{refused}");
    // Outputs the cluster cannot take are refused by it before it queues the job: inside an
    // input directory (a usage error, exit 2), or not empty.
    let inside = input.join("out");
    let refused = run_usage(&mut service.submit(&["wordcount"], &input, &inside));
    assert!(refused.contains(&inside.display().to_string()), "{refused}");
    let full = dir.write("full/notes.txt", "mine\n");
    let refused = run_fail(&mut service.submit(&["wordcount"], &input, full.parent().unwrap()));
    assert!(refused.contains(&full.parent().unwrap().display().to_string()), "{refused}");
    assert_eq!(service.jobs(), Vec::<serde_json::Value>::new(), "a refused job was queued");
    assert!(!dir.path("out").exists() && !inside.exists());
}

#[test]
fn a_cluster_job_prints_mr_run_s_summary_and_leaves_a_job_json_that_mr_status_reads() {
    let dir = Dir::new();
    let input = corpus(&dir);
    let service = Service::start(&dir, "multijob-history", &["127.0.0.2"]);
    let json = run_ok(service.submit(&["wordcount"], &input, &dir.path("out")).arg("--json"));
    let run = run_ok(
        mr().args(["run", "wordcount", "--json", "--workers", "2", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.path("run")),
    );
    // The same summary as `mr run --json`, key for key and in the same order.
    let keys = |text: &str| -> Vec<String> {
        let key = regex::Regex::new(r#"(?m)^  "([a-z_]+)":"#).unwrap();
        key.captures_iter(text).map(|c| c[1].to_string()).collect()
    };
    assert_eq!(keys(&json), keys(&run), "{json}");
    let summary = crate::usage::valid_summary(&crate::usage::summary_schema(), &json);
    assert_eq!((summary["succeeded"].as_bool(), summary["mode"].as_str()), (Some(true), Some("cluster")));
    // The jobs' JSON, as its schema says (progress with its bytes, for the bars).
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api-v1-jobs.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let jobs = serde_json::Value::Array(service.jobs());
    let errors: Vec<String> =
        jsonschema::validator_for(&schema).unwrap().iter_errors(&jobs).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:?}\n{jobs:#}");
    assert!(jobs[0]["progress"]["input_bytes"].as_u64().is_some_and(|b| b > 0), "{jobs:#}");
    let text = run_ok(&mut service.submit(&["wordcount"], &input, &dir.path("text")));
    assert!(text.starts_with("job wordcount (cluster) succeeded in "), "{text}");
    assert!(text.contains("\n  map:    ") && text.contains("\n  reduce: "), "{text}");
    // `_job.json`, with the schema of `mr run`'s.
    let history = |out: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path(out).join("_job.json")).unwrap()).unwrap()
    };
    let (cluster, local) = (history("out"), history("run"));
    let names = |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(names(&cluster), names(&local));
    assert_eq!(names(&cluster["config"]), names(&local["config"]));
    assert_eq!(names(&cluster["summary"]), names(&local["summary"]));
    assert_eq!(cluster["command"][1], "submit");
    assert_eq!(cluster["status"]["state"], "succeeded", "{:#}", cluster["status"]);
    let status = run_ok(mr().arg("status").arg(dir.path("out")));
    assert!(status.starts_with("job wordcount: succeeded"), "{status}");
}

#[test]
fn streaming_files_given_relative_to_the_submitter_reach_the_workers() {
    let dir = Dir::new();
    let input = corpus(&dir);
    // The service runs elsewhere: the program exists only under the submitter's directory.
    dir.write("desk/tools/upper.sh", "tr a-z A-Z\n");
    let service = Service::start(&dir, "multijob-files", &["127.0.0.2"]);
    let args = ["streaming", "--files", "tools/upper.sh#up.sh", "--mapper", "sh up.sh", "--reducer", "uniq -c"];
    let out = dir.path("out");
    run_ok(service.submit(&args, &input, &out).arg("--quiet").current_dir(dir.path("desk")));
    run_ok(
        mr().arg("run")
            .args(args)
            .args(["--local", "--quiet", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(dir.path("local"))
            .current_dir(dir.path("desk")),
    );
    assert_same_output(&out, &dir.path("local"));
    let lines = String::from_utf8(crate::harness::sorted_lines(&out)).unwrap();
    assert!(lines.contains("STRAßE") && !lines.contains("Straße"), "{lines}");
}

#[test]
fn an_attached_submit_on_a_terminal_draws_mr_run_s_progress_bars() {
    if !crate::harness::script_exists() {
        return;
    }
    let dir = Dir::new();
    let (go, mapper) = crate::harness::gated_job_input(&dir);
    let service = Service::start(&dir, "multijob-bars", &["127.0.0.2"]);
    let command = format!(
        "stty cols 100 rows 40; exec '{}' submit --cluster '{}' streaming --mapper \"$MAPPER\" --reducer sort \
         --input '{}' --output '{}' --reduce-tasks 2 --split-size 32KiB",
        env!("CARGO_BIN_EXE_mr"),
        service.url,
        dir.path("in").display(),
        dir.path("out").display()
    );
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"]).env("MAPPER", &mapper).env("MR_TOKEN", TOKEN).env_remove("RUST_LOG");
    for var in crate::harness::outer_mr_vars() {
        cmd.env_remove(var);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let frames = || crate::progress::frames(&seen.lock().unwrap());
    // Every mapper waits for `go`: no map has committed yet.
    wait_for(60, "a frame of both bars", || {
        frames().iter().any(|r| r.starts_with("reduce waiting for map outputs, 0/2 tasks"))
    });
    let map = frames().iter().rev().find(|r| r.starts_with("map ")).unwrap().clone();
    assert!(map.contains("0 B/") && map.contains(" 0/6 tasks") && map.contains(" in "), "{map}");
    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let rows = frames();
    assert!(status.success(), "{rows:#?}");
    let last = |prefix: &str| rows.iter().rev().find(|r| r.starts_with(prefix)).unwrap().clone();
    let (map, reduce) = (last("map "), last("reduce "));
    assert!(map.contains(" 6/6 tasks") && map.contains(" in "), "{map}");
    // Reduce progress is in bytes merged, all of them by the end.
    let merged = regex::Regex::new(r"^reduce \[=+\] ([0-9.]+ [KM]?i?B)/([0-9.]+ [KM]?i?B) 2/2 tasks .* in ").unwrap();
    let caps = merged.captures(&reduce).unwrap_or_else(|| panic!("{reduce}"));
    assert_eq!(&caps[1], &caps[2], "{reduce}");
    assert!(caps[2] != *"0 B", "{reduce}");
    assert!(rows.iter().any(|r| r.starts_with("job streaming (cluster) succeeded in ")), "{rows:#?}");
}
