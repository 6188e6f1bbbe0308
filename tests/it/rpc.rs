//! The wire contract, exercised with a real coordinator in this process: the State service's
//! batched get and set, the token, the Shuffle service, and a worker process that loses its
//! coordinator.

use std::time::{Duration, Instant};

use mr::control::coordinator::{Coordinator, CoordinatorConfig};
use mr::net::rpc::pb;
use tokio_util::sync::CancellationToken;

use crate::harness::*;

fn config(dir: &Dir, state: Vec<(String, Vec<u8>)>) -> CoordinatorConfig {
    with_token(dir, state, "")
}

fn with_token(dir: &Dir, state: Vec<(String, Vec<u8>)>, token: &str) -> CoordinatorConfig {
    CoordinatorConfig {
        state,
        token: mr::net::rpc::Token::new(token).unwrap(),
        // One split keeps the job running: no worker will ever take it.
        ..coordinator_config(dir, vec![mr::data::input::Split::single(dir.write("in.txt", "a\n"), 0, 2)])
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
    let channel = mr::worker::connect(&url, Duration::from_secs(5), None).await.unwrap();
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
        assert!(matches!(s.request_task(holder, 0), mr::control::scheduler::Assignment::Run { .. }));
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
    // Nothing listens on these ports: each try is refused at once, and the worker tries again
    // until its --connect-timeout has passed, then says how long it tried.
    let tries: Vec<_> = [1u64, 3]
        .map(|secs| {
            std::thread::spawn(move || {
                let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
                let start = Instant::now();
                let timeout = format!("{secs}s");
                let url = format!("http://127.0.0.1:{port}");
                let err = run_fail(mr().args(["worker", "--coordinator", &url, "--connect-timeout", &timeout]));
                (secs, start.elapsed(), port, err)
            })
        })
        .into_iter()
        .collect();
    for handle in tries {
        let (secs, elapsed, port, err) = handle.join().unwrap();
        let timeout = Duration::from_secs(secs);
        assert!(err.contains("cannot reach the coordinator") && err.contains(&port.to_string()), "{err}");
        assert!(err.contains(&format!("(--connect-timeout {secs}s)")), "{err}");
        assert!(elapsed >= timeout, "--connect-timeout {secs}s gave up after {elapsed:?}: {err}");
        assert!(elapsed < timeout + Duration::from_secs(3), "--connect-timeout {secs}s took {elapsed:?}");
        // The time the message states is at least the timeout and at most what passed.
        let stated = err.split("gave up after ").nth(1).and_then(|r| r.split(" and ").next()).unwrap();
        let stated = humantime::parse_duration(stated).unwrap_or_else(|e| panic!("{e}: {err}"));
        assert!(stated >= timeout && stated <= elapsed, "it says {stated:?}, took {elapsed:?}: {err}");
        let tries: u32 = err.split(" and ").nth(1).and_then(|r| r.split(' ').next()?.parse().ok()).unwrap();
        assert!(tries > 3, "{err}");
    }
}

#[tokio::test]
async fn a_worker_retries_until_its_coordinator_listens() {
    let dir = Dir::new();
    let coordinator = Coordinator::new(config(&dir, Vec::new()));
    // Hold the only task: the worker registers and keeps asking.
    {
        let mut s = coordinator.scheduler();
        let holder = s.register("holder".into(), 0);
        assert!(matches!(s.request_task(holder, 0), mr::control::scheduler::Assignment::Run { .. }));
    }
    let port = crate::cluster::free_port();
    let mut worker = tokio::process::Command::new(env!("CARGO_BIN_EXE_mr"));
    for var in outer_mr_vars() {
        worker.env_remove(var);
    }
    let url = format!("http://127.0.0.1:{port}");
    let mut worker = worker
        .args(["worker", "--coordinator", &url, "--connect-timeout", "20s", "--lost-timeout", "1s"])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Nothing listens for the worker's first tries.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(worker.try_wait().unwrap().is_none(), "the worker gave up while it should still try");
    assert_eq!(coordinator.scheduler().workers().len(), 1, "only the holder");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(coordinator.clone().serve(listener, shutdown.clone()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while coordinator.scheduler().workers().len() < 2 {
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), worker.wait()).await.expect("the worker exits").unwrap();
    assert_eq!(status.code(), Some(1), "the worker exits when its coordinator goes away");
}

#[tokio::test]
async fn every_service_refuses_a_missing_or_wrong_token() {
    let dir = Dir::new();
    let coordinator = Coordinator::new(with_token(&dir, Vec::new(), "right"));
    let (url, shutdown, server) = serve(coordinator).await;
    let channel = mr::worker::connect(&url, Duration::from_secs(5), None).await.unwrap();
    let keys = vec!["k".to_string()];
    for (token, accepted) in [("", false), ("wrong", false), ("righ", false), ("right", true)] {
        let token = mr::net::rpc::Token::new(token).unwrap();
        let mut state = pb::state_client::StateClient::new(mr::net::rpc::authenticated(channel.clone(), token.clone()));
        let got = state.get_state(pb::GetStateRequest { keys: keys.clone() }).await;
        let mut coord =
            pb::coordinator_client::CoordinatorClient::new(mr::net::rpc::authenticated(channel.clone(), token.clone()));
        let registered = coord.register_worker(pb::RegisterWorkerRequest::default()).await;
        if accepted {
            assert!(got.is_ok() && registered.is_ok(), "{got:?} {registered:?}");
        } else {
            assert_eq!(got.unwrap_err().code(), tonic::Code::Unauthenticated, "{token:?}");
            assert_eq!(registered.unwrap_err().code(), tonic::Code::Unauthenticated, "{token:?}");
        }
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

/// A map output of `partitions` partitions, partition p holding keys "p-0".."p-(n-1)".
fn map_output(path: &std::path::Path, partitions: u32, n: usize) {
    let mut w = mr::data::mapout::MapOutputWriter::create(path).unwrap();
    for p in 0..partitions {
        w.start_partition();
        for i in 0..n {
            w.write(format!("{p}-{i:06}").as_bytes(), b"v").unwrap();
        }
    }
    w.finish().unwrap();
}

fn read_all(path: &std::path::Path, partition: u32, partitions: u32) -> mr::Result<Vec<Vec<u8>>> {
    let mut r = mr::data::mapout::SegmentReader::open(path, partition, partitions)?;
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut keys = Vec::new();
    while r.next_into(&mut k, &mut v)? {
        keys.push(k.clone());
    }
    Ok(keys)
}

#[tokio::test]
async fn the_shuffle_service_streams_a_partition_by_task_and_attempt_only() {
    let dir = Dir::new();
    let file = dir.path("map-3-1.out");
    // Big enough for several chunks.
    map_output(&file, 3, 40_000);
    let outputs = mr::net::shuffle::Outputs::default();
    outputs.insert(3, 1, file.clone());
    let token = mr::net::rpc::Token::new("t").unwrap();
    let service = pb::shuffle_server::ShuffleServer::new(mr::net::shuffle::ShuffleServer::new(outputs, 3));
    let service = mr::net::rpc::check_token(service, token.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let server = tokio::spawn(tonic::transport::Server::builder().add_service(service).serve_with_incoming_shutdown(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        stop.clone().cancelled_owned(),
    ));
    let location = |map_task, attempt| mr::types::MapOutputLocation {
        map_task,
        attempt,
        host: "elsewhere".into(),
        // Never used by the server: it serves what its worker wrote.
        path: "/etc/passwd".into(),
        shuffle_url: url.clone(),
    };
    let dest = dir.path("fetched.out");
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let count = |n: u64| {
        bytes.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    };
    mr::net::shuffle::fetch(&location(3, 1), 1, &dest, &token, None, &count).await.unwrap();
    let expected = read_all(&file, 1, 3).unwrap();
    assert_eq!(read_all(&dest, 0, 1).unwrap(), expected);
    assert_eq!(bytes.into_inner(), std::fs::metadata(&dest).unwrap().len() - 28 - 12);

    // Unknown attempt, or a wrong token: not served.
    let err = mr::net::shuffle::fetch(&location(3, 0), 1, &dest, &token, None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, mr::Error::LostMapOutput { map_task: 3, attempt: 0, .. }), "{err}");
    assert!(err.to_string().contains("no output of map task 3 attempt 0"), "{err}");
    let wrong = mr::net::rpc::Token::new("x").unwrap();
    let err = mr::net::shuffle::fetch(&location(3, 1), 1, &dest, &wrong, None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, mr::Error::Unauthenticated { .. }), "{err}");

    // A corrupt byte on the server's disk is caught by the segment checksum after the copy.
    let mut raw = std::fs::read(&file).unwrap();
    let segments = mr::data::mapout::read_index(&file, 3).unwrap();
    raw[segments[2].offset as usize + 100] ^= 0x01;
    std::fs::write(&file, raw).unwrap();
    mr::net::shuffle::fetch(&location(3, 1), 2, &dest, &token, None, &|_| {}).await.unwrap();
    let err = read_all(&dest, 0, 1).unwrap_err();
    assert!(matches!(err, mr::Error::CorruptMapOutput { .. }), "{err}");

    stop.cancel();
    server.await.unwrap().unwrap();
    // A server that is gone: the output is reported lost after the retries.
    let err = mr::net::shuffle::fetch(&location(3, 1), 1, &dest, &token, None, &|_| {}).await.unwrap_err();
    assert!(matches!(err, mr::Error::LostMapOutput { .. }), "{err}");
    assert!(err.to_string().contains("4 tries"), "{err}");
}

#[tokio::test]
async fn a_fetch_is_tried_4_times_over_about_2_seconds() {
    let dir = Dir::new();
    let file = dir.path("map-0-0.out");
    map_output(&file, 2, 100);
    let token = mr::net::rpc::Token::new("t").unwrap();
    let location = |port: u16| mr::types::MapOutputLocation {
        map_task: 0,
        attempt: 0,
        host: "elsewhere".into(),
        path: file.display().to_string(),
        shuffle_url: format!("http://127.0.0.1:{port}"),
    };

    // A server that accepts connections and closes them at once: every try fails. A try may
    // open more than one connection (the client reconnects within it), so tries are told apart
    // by the pauses between them: 250, 500 and 1000 ms.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let times = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            times.lock().unwrap().push(Instant::now());
            drop(stream);
        }
    });
    let start = Instant::now();
    let err = mr::net::shuffle::fetch(&location(port), 1, &dir.path("a.out"), &token, None, &|_| {}).await.unwrap_err();
    let elapsed = start.elapsed();
    assert!(matches!(err, mr::Error::LostMapOutput { .. }) && err.to_string().contains("(4 tries)"), "{err}");
    let times = accepted.lock().unwrap().clone();
    let mut tries = vec![times[0]];
    for pair in times.windows(2) {
        if pair[1] - pair[0] > Duration::from_millis(150) {
            tries.push(pair[1]);
        }
    }
    let pauses: Vec<u128> = tries.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    assert_eq!(tries.len(), 4, "pauses between connections {pauses:?} ms: {err}");
    for (pause, planned) in pauses.iter().zip([250, 500, 1000]) {
        assert!((planned..planned + 400).contains(pause), "pauses {pauses:?} ms, planned 250, 500, 1000");
    }
    assert!(elapsed >= Duration::from_millis(1750) && elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(!dir.path("a.out").exists(), "a failed fetch left its file");

    // A server that comes up 600 ms late: a later try gets the partition.
    let port = crate::cluster::free_port();
    let outputs = mr::net::shuffle::Outputs::default();
    outputs.insert(0, 0, file.clone());
    let stop = CancellationToken::new();
    let server = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
            let service = pb::shuffle_server::ShuffleServer::new(mr::net::shuffle::ShuffleServer::new(outputs, 2));
            let service = mr::net::rpc::check_token(service, token_of("t"));
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(
                    tokio_stream::wrappers::TcpListenerStream::new(listener),
                    stop.cancelled_owned(),
                )
                .await
        })
    };
    let start = Instant::now();
    mr::net::shuffle::fetch(&location(port), 1, &dir.path("b.out"), &token, None, &|_| {}).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(600), "fetched before the server was up");
    assert_eq!(read_all(&dir.path("b.out"), 0, 1).unwrap(), read_all(&file, 1, 2).unwrap());
    stop.cancel();
    server.await.unwrap().unwrap();
}

fn token_of(token: &str) -> mr::net::rpc::Token {
    mr::net::rpc::Token::new(token).unwrap()
}
