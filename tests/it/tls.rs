//! TLS on every service: a CA and a cluster certificate made by the test (rcgen), `mr
//! coordinator` with workers on two loopback "hosts" and `mr run` with its own workers, each
//! committing the same output as `--local`; and the errors of a worker without TLS, of a worker
//! that trusts another CA, of a client without a certificate, and of missing or garbled files.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use mr::control::coordinator::{Coordinator, CoordinatorConfig};
use mr::net::rpc::pb;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rcgen::{KeyUsagePurpose, SanType};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, assert_both_hosts_ran_attempts, local, text};
use crate::harness::{Dir, assert_same_output, coordinator_config, mr, run_fail, run_ok, tagged_processes, wait_for};

/// A CA and a certificate it signed, for both server and client use, valid for 127.0.0.1,
/// 127.0.0.2, 127.0.0.3 and localhost: PEM files in a directory of their own.
pub struct Certs {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

impl Certs {
    pub fn new(dir: &Dir, name: &str) -> Certs {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, format!("{name} CA"));
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "localhost"];
        let mut params = CertificateParams::new(hosts.map(String::from).to_vec()).unwrap();
        assert!(matches!(params.subject_alt_names[0], SanType::IpAddress(_)), "IP addresses are IP SANs");
        params.distinguished_name.push(DnType::CommonName, format!("{name} cluster"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();

        Certs {
            cert: dir.write(&format!("{name}/cluster.pem"), cert.pem()),
            key: dir.write(&format!("{name}/cluster.key"), key.serialize_pem()),
            ca: dir.write(&format!("{name}/ca.pem"), ca_cert.pem()),
        }
    }

    /// The three flags.
    pub fn flags(&self) -> Vec<&OsStr> {
        let [cert, key, ca] = [&self.cert, &self.key, &self.ca].map(|p| p.as_os_str());
        vec![OsStr::new("--tls-cert"), cert, OsStr::new("--tls-key"), key, OsStr::new("--tls-ca"), ca]
    }

    pub fn load(&self) -> mr::net::rpc::Tls {
        mr::net::rpc::Tls::load(Some(&self.cert), Some(&self.key), Some(&self.ca)).unwrap().unwrap()
    }
}

#[test]
fn workers_on_separate_hosts_shuffle_over_tls() {
    let dir = Dir::new();
    let certs = Certs::new(&dir, "tls");
    let input = text(&dir, "");
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let job = ["wordcount", "--input", i, "--reduce-tasks", "3", "--split-size", "16KiB"];
    let job_and_output = [&job[..], &["--output", o]].concat();
    let cluster = Cluster::start_with(&dir, "tls-hosts", &job_and_output, &["127.0.0.2", "127.0.0.3"], &certs.flags());
    assert!(cluster.url.starts_with("https://127.0.0.1:"), "{}", cluster.url);
    let (code, stderr) = cluster.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_same_output(&out, &local(&dir, &job));
    assert_both_hosts_ran_attempts(&out);
}

#[test]
fn a_worker_without_tls_or_trusting_another_ca_exits_with_a_clear_error() {
    let dir = Dir::new();
    let certs = Certs::new(&dir, "cluster");
    let input = text(&dir, "");
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let cluster =
        Cluster::start_with(&dir, "tls-refused", &["wordcount", "--input", i, "--output", o], &[], &certs.flags());
    let http_url = cluster.url.replacen("https://", "http://", 1);

    // No TLS files, and the URL that the coordinator printed.
    let err = run_fail(mr().args(["worker", "--coordinator", &cluster.url]).env("MR_TOKEN", "cluster-secret"));
    assert!(err.contains("the URL is https://") && err.contains("--tls-ca"), "{err}");
    // No TLS files and an http:// URL: the coordinator's TLS listener closes the connection.
    let err = run_fail(
        mr().args(["worker", "--coordinator", &http_url, "--connect-timeout", "2s"]).env("MR_TOKEN", "cluster-secret"),
    );
    assert!(err.contains("TLS") && err.contains("https://"), "{err}");
    // TLS files and an http:// URL.
    let err = run_fail(mr().args(["worker", "--coordinator", &http_url]).args(certs.flags()).env("MR_TOKEN", "x"));
    assert!(err.contains("TLS on") && err.contains("http://"), "{err}");
    // A certificate and a CA of another cluster: the coordinator's certificate is not trusted.
    let other = Certs::new(&dir, "other");
    let err = run_fail(mr().args(["worker", "--coordinator", &cluster.url]).args(other.flags()).env("MR_TOKEN", "x"));
    assert!(err.contains("TLS handshake with https://127.0.0.1:") && err.contains("certificate"), "{err}");

    // The right files and token finish the job.
    cluster.finish_with_a_worker(&certs.flags());
}

#[test]
fn mr_run_hands_its_tls_files_to_its_workers() {
    let dir = Dir::new();
    let certs = Certs::new(&dir, "run");
    let input = text(&dir, "");
    let out = dir.path("out");
    let (i, o) = (input.to_str().unwrap(), out.to_str().unwrap());
    let job = ["wordcount", "--input", i, "--reduce-tasks", "2", "--split-size", "16KiB"];
    let tag = format!("tls-run-{}", std::process::id());
    run_ok(
        mr().arg("run")
            .args(job)
            .args(["--quiet", "--workers", "2", "--output", o])
            .args(certs.flags())
            .env("MR_TEST_TAG", &tag),
    );
    assert_same_output(&out, &local(&dir, &job));
    let history: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("_job.json")).unwrap()).unwrap();
    assert_eq!(history["config"]["tls_ca"], certs.ca.to_str().unwrap());
    wait_for(15, "every process of the job to exit", || tagged_processes(&tag).is_empty());
}

#[test]
fn missing_garbled_or_mismatched_tls_files_are_named() {
    let dir = Dir::new();
    let certs = Certs::new(&dir, "good");
    let other = Certs::new(&dir, "other");
    let input = text(&dir, "");
    let out = dir.path("out");
    let coordinator = |tls: &[&OsStr]| {
        let mut cmd = mr();
        cmd.args(["coordinator", "wordcount", "--listen", "127.0.0.1:0", "--input"]).arg(&input);
        cmd.arg("--output").arg(&out).args(tls);
        cmd
    };
    let (cert, key, ca) = (certs.cert.as_os_str(), certs.key.as_os_str(), certs.ca.as_os_str());

    let err = run_fail(&mut coordinator(&["--tls-cert".as_ref(), cert]));
    assert!(err.contains("TLS needs --tls-cert, --tls-key and --tls-ca together"), "{err}");
    assert!(err.contains("--tls-key and --tls-ca missing"), "{err}");
    let err = run_fail(&mut coordinator(&["--tls-cert".as_ref(), cert, "--tls-key".as_ref(), key]));
    assert!(err.contains("--tls-ca missing"), "{err}");

    let absent = dir.path("absent.pem");
    let tls = |c: &OsStr, k: &OsStr, a: &OsStr| {
        ["--tls-cert".as_ref(), c, "--tls-key".as_ref(), k, "--tls-ca".as_ref(), a].map(|s: &OsStr| s.to_os_string())
    };
    let run = |args: [std::ffi::OsString; 6]| {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        run_fail(&mut coordinator(&args))
    };
    let err = run(tls(cert, key, absent.as_os_str()));
    assert!(err.contains(&format!("--tls-ca (MR_TLS_CA) '{}': No such file", absent.display())), "{err}");

    let garbled = dir.write("garbled.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n");
    let err = run(tls(garbled.as_os_str(), key, ca));
    assert!(err.contains(&format!("--tls-cert (MR_TLS_CERT) '{}': not a PEM certificate", garbled.display())), "{err}");
    let not_pem = dir.write("notes.txt", "hello\n");
    let err = run(tls(cert, not_pem.as_os_str(), ca));
    assert!(err.contains(&format!("--tls-key (MR_TLS_KEY) '{}': no PEM private key", not_pem.display())), "{err}");
    let err = run(tls(cert, key, not_pem.as_os_str()));
    assert!(err.contains("--tls-ca (MR_TLS_CA)") && err.contains("no PEM certificate"), "{err}");

    // Another cluster's key; a certificate that another CA signed.
    let err = run(tls(cert, other.key.as_os_str(), ca));
    assert!(err.contains("--tls-key (MR_TLS_KEY)") && err.contains("not the private key of the certificate"), "{err}");
    let err = run(tls(other.cert.as_os_str(), other.key.as_os_str(), ca));
    assert!(err.contains("--tls-cert (MR_TLS_CERT)") && err.contains("does not verify against the CA"), "{err}");
    assert!(!out.exists(), "nothing is planned before the TLS files are checked");

    // The worker checks its files the same way.
    let err = run_fail(
        mr().args(["worker", "--coordinator", "https://127.0.0.1:1", "--tls-cert"])
            .arg(&garbled)
            .arg("--tls-key")
            .arg(key),
    );
    assert!(err.contains("--tls-ca missing"), "{err}");
}

fn config(dir: &Dir, tls: mr::net::rpc::Tls) -> CoordinatorConfig {
    CoordinatorConfig {
        state: vec![("k".into(), b"v".to_vec())],
        token: mr::net::rpc::Token::new("right").unwrap(),
        tls: Some(tls),
        ..coordinator_config(dir, vec![mr::data::input::Split::single(dir.write("in.txt", "a\n"), 0, 2)])
    }
}

/// Over TLS the token is still checked, and a client without a certificate is refused.
#[tokio::test]
async fn tls_servers_require_a_client_certificate_and_the_token() {
    let dir = Dir::new();
    let certs = Certs::new(&dir, "mtls");
    let tls = certs.load();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(Coordinator::new(config(&dir, tls.clone())).serve(listener, shutdown.clone()));

    let channel = mr::worker::connect(&url, Duration::from_secs(5), Some(&tls)).await.unwrap();
    let get = pb::GetStateRequest { keys: vec!["k".into()] };
    for (token, accepted) in [("wrong", false), ("right", true)] {
        let token = mr::net::rpc::Token::new(token).unwrap();
        let mut state = pb::state_client::StateClient::new(mr::net::rpc::authenticated(channel.clone(), token));
        let got = state.get_state(get.clone()).await;
        if accepted {
            assert_eq!(got.unwrap().into_inner().values[0].value, b"v");
        } else {
            assert_eq!(got.unwrap_err().code(), tonic::Code::Unauthenticated);
        }
    }

    // The CA but no client certificate: the server ends the handshake.
    let ca = tonic::transport::Certificate::from_pem(std::fs::read(&certs.ca).unwrap());
    let anonymous = tonic::transport::ClientTlsConfig::new().ca_certificate(ca).domain_name("127.0.0.1");
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().tls_config(anonymous).unwrap();
    let refused = match endpoint.connect().await {
        Err(e) => mr::net::rpc::tls_failure(&e),
        Ok(channel) => {
            let token = mr::net::rpc::Token::new("right").unwrap();
            let mut state = pb::state_client::StateClient::new(mr::net::rpc::authenticated(channel, token));
            let status = state.get_state(get.clone()).await.unwrap_err();
            mr::net::rpc::tls_failure(&status).or(Some(status.to_string()))
        }
    };
    let refused = refused.unwrap();
    assert!(refused.contains("CertificateRequired") || refused.contains("certificate"), "{refused}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
