//! The status server while a job runs: the HTML page in headless Chromium, the JSON API against
//! its documented schema, `/metrics` as Prometheus text, and `mr status`.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Background, Dir, assert_same_output, mr, run_ok, wait_for};

/// A streaming mapper that holds every map attempt until the file `go` exists, so that the
/// job is certainly running while the test looks at it.
fn gated_mapper(go: &Path) -> String {
    format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; tr -cs 'A-Za-z' '\\n' | awk 'NF {{ print $0 \"\\t1\" }}'",
        go.display()
    )
}

const REDUCER: &str = "awk -F'\\t' '$1 != k { if (n) print k \"\\t\" c; k = $1; c = 0; n = 1 } { c += $2 } END { if (n) print k \"\\t\" c }'";

fn get(url: &str) -> String {
    ureq::get(url).call().and_then(|mut r| r.body_mut().read_to_string()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// Headless Chromium, if installed. CI installs it (`.ci/run`), so there it must be found.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "chromium is not installed; .ci/run installs it");
        eprintln!("skipping the browser check: chromium is not installed (CI installs it)");
    }
    found
}

/// Runs headless Chromium with a fresh profile and no background network traffic.
fn headless(chromium: &Path, profile: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    run_ok(&mut cmd)
}

/// Where CI keeps files for people to look at afterwards.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("MR_ARTIFACTS")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts"), PathBuf::from);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_status_server_shows_a_running_job() {
    let dir = Dir::new();
    for f in 0..4 {
        let text: String = (0..300).map(|i| format!("alpha beta gamma {} line {f}\n", i % 7)).collect();
        dir.write(&format!("in/{f}.txt"), text);
    }
    let go = dir.path("go");
    let mapper = gated_mapper(&go);
    let out = dir.path("out");
    let grpc = crate::cluster::free_port();
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", &mapper, "--reducer", REDUCER, "--workers", "2", "--reduce-tasks", "2"])
        // A split size under two files' size keeps each file a map task of its own.
        .args(["--task-timeout", "10m", "--split-size", "10KB", "--listen", &format!("127.0.0.1:{grpc}"), "--input"])
        .arg(dir.path("in"))
        .arg("--output")
        .arg(&out);
    let mut job = Background::start(cmd, &dir, "status");

    // The status line comes first on stderr; the rest is drained in the background.
    let mut stderr = BufReader::new(job.child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line.strip_prefix("status: ").unwrap_or_else(|| panic!("no status line: {line:?}")).trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with('/'), "{url}");
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        rest
    });
    let api = format!("{url}api/v1/job");
    let view = || serde_json::from_str::<serde_json::Value>(&get(&api)).unwrap();
    wait_for(30, "both workers to run a map attempt", || {
        let v = view();
        v["phases"][0]["running"] == 2 && v["workers"].as_array().unwrap().len() == 2
    });

    // The JSON API matches its documented schema.
    let schema_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api-v1-job.schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let running = view();
    let errors: Vec<String> = validator.iter_errors(&running).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:?}\n{running:#}");
    assert_eq!(running["job"], "streaming");
    assert_eq!(running["state"], "running");
    assert_eq!(running["tasks"].as_array().unwrap().len(), 4 + 2);

    // /metrics parses as Prometheus text and agrees with the JSON.
    let text = get(&format!("{url}metrics"));
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let sample = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a gauge: {other:?}"),
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(sample("mr_tasks", &[("phase", "map"), ("state", "running")]), 2.0);
    assert_eq!(sample("mr_tasks", &[("phase", "reduce"), ("state", "idle")]), 2.0);
    assert_eq!(sample("mr_workers", &[("state", "alive")]), 2.0);
    assert_eq!(sample("mr_job_state", &[("state", "running"), ("job", "streaming")]), 1.0);

    // `mr status` prints the same in a terminal.
    let status = run_ok(mr().args(["status", &url]));
    assert!(status.starts_with("job streaming: running"), "{status}");
    assert!(status.contains("map    0/4 tasks done, 2 running, 2 idle"), "{status}");
    assert!(status.contains("workers: 2 alive, 0 dead"), "{status}");
    // The gRPC port is not a status server, and the error says so.
    let err = crate::harness::run_fail(mr().args(["status", &format!("http://127.0.0.1:{grpc}/")]));
    assert!(err.contains("not a status server") && err.contains("status server at"), "{err}");
    // The worker logs are linked, and served.
    assert!(get(&url).contains(r#"href="/logs/worker-1.log""#), "no link to the worker logs");
    get(&format!("{url}logs/worker-1.log"));
    for other in ["logs/worker-1.log.bak", "logs/..%2F..%2Fetc%2Fpasswd", "logs/worker-.log"] {
        assert!(ureq::get(&format!("{url}{other}")).call().is_err(), "{other} is served");
    }

    // The page, in a real browser: the job, its phases, its tasks and workers, and a chart.
    if let Some(chromium) = chromium() {
        let dom = headless(&chromium, &dir.path("profile-dom"), &["--dump-dom", &url]);
        for needle in [
            r#"<span id="job-name">streaming</span>"#,
            r#"id="job-state">running</span>"#,
            r#"<tr class="phase" data-phase="map">"#,
            r#"<tr class="task" data-phase="map" data-state="running">"#,
            r#"<tr class="task" data-phase="reduce" data-state="idle">"#,
            r#"<td class="alive">alive</td>"#,
            r#"<svg id="chart""#,
            r#"<code id="command">"#,
            r#"<td id="ended">running</td>"#,
        ] {
            assert!(dom.contains(needle), "the page lacks {needle}:\n{dom}");
        }
        let shot = artifacts().join("status-page.png");
        let _ = std::fs::remove_file(&shot);
        headless(
            &chromium,
            &dir.path("profile-shot"),
            &["--window-size=1200,1000", "--hide-scrollbars", &format!("--screenshot={}", shot.display()), &url],
        );
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "not a screenshot: {} bytes", png.len());
    }

    // Let the job finish; its output matches the local run of the same commands.
    std::fs::write(&go, "").unwrap();
    let status = job.child.wait().unwrap();
    let rest = drain.join().unwrap();
    assert!(status.success(), "{rest}");
    wait_for(10, "every process of the job to exit", || crate::harness::tagged_processes(&job.tag).is_empty());
    let local = dir.path("local");
    run_ok(mr().args(["run", "streaming", "--mapper", &mapper, "--reducer", REDUCER, "--reduce-tasks", "2"]).args([
        "--local".as_ref(),
        "--quiet".as_ref(),
        "--input".as_ref(),
        dir.path("in").as_os_str(),
        "--output".as_ref(),
        local.as_os_str(),
    ]));
    assert_same_output(&out, &local);

    // The finished job, from its history: as text, and as the same page, offline.
    let text = run_ok(mr().arg("status").arg(&out));
    assert!(text.starts_with("job streaming: succeeded") && text.contains("map    4/4 tasks done"), "{text}");
    let page = run_ok(mr().args(["status", "--html"]).arg(out.join("_job.json")));
    for needle in [
        r#"id="job-state">succeeded</span>"#,
        r#"<code id="command">"#,
        "--reducer",
        r#"<td id="started">"#,
        r#"<details id="settings">"#,
        r#"class="row-label""#,
        r#"class="tick""#,
        r#"<p id="naming">"#,
    ] {
        assert!(page.contains(needle), "the history page lacks {needle}:\n{page}");
    }
    assert!(!page.contains(r#"<td id="ended">running"#), "a finished job has an end time");
    if let Some(chromium) = chromium() {
        check_layout(&chromium, &dir, &page);
    }
}

/// Renders `page` in headless Chromium at 1280 and 400 pixels wide: a screenshot of each in
/// target/artifacts/, and no horizontal overflow (the document no wider than the window;
/// wide tables scroll inside their own box).
fn check_layout(chromium: &Path, dir: &Dir, page: &str) {
    let measure = "<script>document.body.setAttribute('data-overflow',\
        String(document.documentElement.scrollWidth > window.innerWidth));</script></body>";
    let measured = dir.write("report.html", page.replace("</body>", measure));
    let url = format!("file://{}", measured.display());
    for width in [1280, 400] {
        let size = format!("--window-size={width},900");
        let dom = headless(chromium, &dir.path(&format!("profile-{width}")), &[&size, "--dump-dom", &url]);
        assert!(dom.contains(r#"data-overflow="false""#), "the page overflows {width} px:\n{dom}");
        assert!(dom.contains(r#"<span id="job-name">streaming</span>"#) && dom.contains(r#"<svg id="chart""#));
        let shot = artifacts().join(format!("status-history-{width}.png"));
        let _ = std::fs::remove_file(&shot);
        let args = [size.as_str(), "--hide-scrollbars", &format!("--screenshot={}", shot.display()), &url];
        headless(chromium, &dir.path(&format!("profile-shot-{width}")), &args);
        let png = std::fs::read(&shot).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "not a screenshot: {} bytes", png.len());
    }
}

#[test]
fn mr_status_names_an_unreachable_server() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let err = crate::harness::run_fail(mr().args(["status", &url]));
    assert!(err.contains("cannot reach") && err.contains(&url.trim_end_matches('/').to_string()), "{err}");
}

/// The TCP ports process `pid` listens on (from /proc: its socket inodes, and the kernel's
/// table of TCP sockets in the LISTEN state).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is IP:PORT in hex; st 0A is LISTEN; the inode is field 9.
            if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                let port = fields[1].rsplit_once(':').map(|(_, p)| u16::from_str_radix(p, 16).unwrap());
                ports.extend(port);
            }
        }
    }
    ports.sort();
    ports
}

#[test]
fn http_off_serves_nothing_and_quiet_prints_nothing() {
    let dir = Dir::new();
    dir.write("in/a.txt", "one two two\n");
    let go = dir.path("go");
    let mapper = gated_mapper(&go);
    // The config file asks for a status server on `http`; the flag turns it off.
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = dir.write("mr.toml", format!("http = \"{http}\"\n"));
    let job = |grpc: &str, out: &str, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "streaming", "--mapper", &mapper, "--reducer", REDUCER, "--workers", "1", "--listen", grpc])
            .arg("--config")
            .arg(&config)
            .arg("--input")
            .arg(dir.path("in"))
            .arg("--output")
            .arg(dir.path(out))
            .args(extra);
        cmd
    };
    for (off, out) in [(true, "off"), (false, "on")] {
        let _ = std::fs::remove_file(&go);
        let grpc_port = crate::cluster::free_port();
        let grpc = format!("127.0.0.1:{grpc_port}");
        let extra: &[&str] = if off { &["--http", "off", "--quiet"] } else { &["--quiet"] };
        let mut running = Background::start(job(&grpc, out, extra), &dir, &format!("http-{out}"));
        // `mr run` binds its listeners before it starts a worker: once a worker (or its mapper)
        // runs, the coordinator's process serves all it will serve.
        let pid = running.child.id();
        wait_for(60, "the coordinator to listen and its worker to start", || {
            listening_ports(pid).contains(&grpc_port) && !running.workers().is_empty()
        });
        let ports = listening_ports(pid);
        let served = std::net::TcpStream::connect(http).is_ok();
        if off {
            assert_eq!(ports, [grpc_port], "with --http off, only the gRPC port is served");
            assert!(!served, "with --http off, something answers on the configured {http}");
        } else {
            assert!(ports.contains(&http.port()) && ports.len() == 2, "{ports:?}: the status server is not on {http}");
            assert!(served && get(&format!("http://{http}/api/v1/job")).contains("\"job\":\"streaming\""));
        }
        std::fs::write(&go, "").unwrap();
        let status = running.child.wait().unwrap();
        let mut stdout = String::new();
        let mut stderr = String::new();
        running.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
        running.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(status.success(), "{stderr}");
        // --quiet: nothing on either stream, the status line included.
        assert!(stdout.is_empty() && stderr.is_empty(), "--quiet printed {stdout:?} {stderr:?}");
        wait_for(10, "every process of the job to exit", || crate::harness::tagged_processes(&running.tag).is_empty());
    }
    // Without --quiet the status line comes first.
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--workers", "1", "--input"]).arg(dir.path("in")).arg("--output").arg(dir.path("o2"));
    let output = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("status: http://127.0.0.1:"), "{stderr}");
}

#[test]
fn metrics_series_agree_with_the_job_s_counters() {
    let dir = Dir::new();
    for f in 0..3 {
        let text: String = (0..200).map(|i| format!("alpha beta {} gamma line{f}\n", i % 5)).collect();
        dir.write(&format!("in/{f}.txt"), text);
    }
    let go = dir.path("go");
    let mapper = "tr -cs 'A-Za-z' '\\n' | awk 'NF { print $0 \"\\t1\" }'; echo 'reporter:counter:test,map runs,1' >&2";
    // The reducers wait for `go`: the map phase's counters are final while the job still runs.
    let reducer = format!("while [ ! -e '{}' ]; do sleep 0.05; done; {REDUCER}", go.display());
    let status = crate::watch::Status::new();
    let mut cmd = mr();
    cmd.args(["run", "streaming", "--mapper", mapper, "--reducer", &reducer, "--workers", "2", "--reduce-tasks", "2"])
        .args(["--task-timeout", "10m", "--split-size", "4KB", "--json", "--input"])
        .arg(dir.path("in"))
        .arg("--output")
        .arg(dir.path("out"))
        .args(status.flag());
    let started = std::time::Instant::now();
    let job = Background::start(cmd, &dir, "metrics");
    wait_for(30, "every map done and both reduces running", || {
        status.job().is_some_and(|v| {
            let map = crate::watch::phase(&v, "map");
            map["done"] == map["tasks"] && crate::watch::phase(&v, "reduce")["running"] == 2
        })
    });
    let view = status.job().unwrap();
    let text = status.metrics().unwrap();
    let scraped = started.elapsed();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let sample = |name: &str, labels: &[(&str, &str)]| -> u64 {
        let found: Vec<f64> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a gauge: {other:?}"),
            })
            .collect();
        assert_eq!(found.len(), 1, "{name} {labels:?} in\n{text}");
        assert_eq!(scrape.samples.iter().find(|s| s.metric == name).unwrap().labels.get("job"), Some("streaming"));
        found[0] as u64
    };
    let running = sample("mr_attempts", &[("phase", "reduce"), ("outcome", "running")]);
    let map_records = [
        ("in", sample("mr_records", &[("phase", "map"), ("direction", "in")])),
        ("out", sample("mr_records", &[("phase", "map"), ("direction", "out")])),
    ];
    let map_bytes = [
        ("in", sample("mr_bytes", &[("phase", "map"), ("direction", "in")])),
        ("out", sample("mr_bytes", &[("phase", "map"), ("direction", "out")])),
    ];
    let map_runs = sample("mr_user_counter", &[("phase", "map"), ("group", "test"), ("name", "map runs")]);
    let committed = sample("mr_attempts", &[("phase", "map"), ("outcome", "committed")]);
    let elapsed = sample("mr_job_elapsed_milliseconds", &[]);
    assert_eq!(running, 2);
    assert!(elapsed >= view["elapsed_ms"].as_u64().unwrap() && elapsed <= scraped.as_millis() as u64, "{elapsed}");

    std::fs::write(&go, "").unwrap();
    let (exit, stdout, stderr) = job.finish();
    assert!(exit.success(), "{stderr}");
    let s = crate::harness::summary(&stdout);
    let counters = &s["map"]["counters"];
    let maps = s["map"]["tasks"].as_u64().unwrap();
    assert!(maps >= 2, "{stdout}");
    for (direction, value) in map_records {
        let key = if direction == "in" { "input_records" } else { "output_records" };
        assert_eq!(counters[key], value, "mr_records{{phase=map,direction={direction}}}");
    }
    for (direction, value) in map_bytes {
        let key = if direction == "in" { "input_bytes" } else { "output_bytes" };
        assert_eq!(counters[key], value, "mr_bytes{{phase=map,direction={direction}}}");
    }
    assert_eq!(counters["input_records"], 600);
    assert_eq!(counters["user"]["test"]["map runs"], map_runs);
    assert_eq!(map_runs, maps);
    assert_eq!(committed, maps);
}
