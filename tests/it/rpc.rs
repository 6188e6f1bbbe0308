//! The wire contract, exercised with a real coordinator in this process: the State service's
//! batched get and set, and a worker process that loses its coordinator.

use std::time::{Duration, Instant};

use mr::coordinator::{Coordinator, CoordinatorConfig};
use mr::rpc::pb;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

fn config(dir: &Dir, state: Vec<(String, Vec<u8>)>) -> CoordinatorConfig {
    CoordinatorConfig {
        job_name: "wordcount".into(),
        job_args: Vec::new(),
        // One split keeps the job running: no worker will ever take it.
        splits: vec![mr::input::Split { path: dir.write("in.txt", "a\n"), start: 0, end: 2, first_line: 0 }],
        reduce_tasks: 1,
        work_dir: dir.path("work"),
        output_dir: dir.path("out"),
        worker_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(100),
        max_attempts: 4,
        task_timeout: Duration::from_secs(60),
        speculative: true,
        skip_bad_records: false,
        faults: Default::default(),
        state,
        input_format: Default::default(),
        settings: mr::task::TaskSettings { partitions: 1, sort_buffer: 1 << 20, merge_fan_in: 8 },
    }
}

async fn serve(coordinator: Coordinator) -> (String, CancellationToken, tokio::task::JoinHandle<mr::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(coordinator.serve(listener, shutdown.clone()));
    (url, shutdown, server)
}

#[tokio::test]
async fn state_service_gets_and_sets_in_batches() {
    let dir = Dir::new();
    let coordinator = Coordinator::new(config(&dir, vec![("preset".into(), b"1".to_vec())]));
    let (url, shutdown, server) = serve(coordinator).await;
    let channel = mr::worker::connect(&url, Duration::from_secs(5)).await.unwrap();
    let mut client = pb::state_client::StateClient::new(channel);
    let entries = vec![
        pb::StateEntry { key: "a".into(), value: b"alpha".to_vec() },
        pb::StateEntry { key: "b".into(), value: Vec::new() },
    ];
    client.set_state(pb::SetStateRequest { entries }).await.unwrap();
    let keys = ["preset", "a", "missing", "b"].map(String::from).to_vec();
    let values = client.get_state(pb::GetStateRequest { keys }).await.unwrap().into_inner().values;
    let got: Vec<(bool, &[u8])> = values.iter().map(|v| (v.found, v.value.as_slice())).collect();
    assert_eq!(got, [(true, &b"1"[..]), (true, b"alpha"), (false, b""), (true, b"")]);
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_worker_exits_when_its_coordinator_goes_away() {
    let dir = Dir::new();
    let coordinator = Coordinator::new(config(&dir, Vec::new()));
    // Hold the only task so that the worker keeps asking.
    {
        let mut s = coordinator.scheduler();
        let holder = s.register("holder".into(), 0);
        assert!(matches!(s.request_task(holder, 0), mr::scheduler::Assignment::Run { .. }));
    }
    let (url, shutdown, server) = serve(coordinator.clone()).await;
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_mr"));
    for var in outer_mr_vars() {
        worker.env_remove(var);
    }
    let mut worker = worker
        .args(["worker", "--coordinator", &url, "--lost-timeout", "1s"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while coordinator.scheduler().workers().len() < 2 {
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
    let gone = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.expect("the worker exits").unwrap();
    assert!(gone.elapsed() < Duration::from_secs(5), "took {:?}", gone.elapsed());
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(worker.stderr.as_mut().unwrap(), &mut stderr).await.unwrap();
    assert!(stderr.contains("cannot reach the coordinator"), "{stderr}");
}

#[test]
fn a_worker_gives_up_connecting_after_its_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let err = run_fail(mr().args([
        "worker",
        "--coordinator",
        &format!("http://127.0.0.1:{port}"),
        "--connect-timeout",
        "1s",
    ]));
    assert!(err.contains("cannot reach the coordinator") && err.contains(&port.to_string()), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));
}
