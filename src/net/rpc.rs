//! The generated gRPC types (`pb`), the job's token (calls signed by [`AuthChannel`], checked
//! by [`CheckToken`] in front of every service), and TLS ([`Tls`], [`server`], [`endpoint`]).
//! The conversions between the generated types and the engine's own are in `convert.rs`.
//! Generated types are used only in `net/`, the coordinator's services, the worker and the load
//! test; only this module sees rustls.

#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("mapreduce");
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::error::{Error, Result};

/// Most bytes a request or reply may have: the protocol carries metadata, and map output
/// chunks of at most [`CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How often a server pings an idle HTTP/2 connection, and how long it waits for the answer
/// before it closes it: a peer whose host vanished (a cut link drops packets silently) must not
/// hold a connection, and so a server's shutdown, open until TCP gives up.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes of map output per FetchPartition message.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The job's shared secret. It never crosses the wire: every call carries, in its
/// `authorization` header, `MR-HMAC1 TIME.NONCE.MAC`, where MAC is the HMAC-SHA256, keyed with
/// the token, of the method's path, the time (ms since the Unix epoch) and a random nonce; and
/// every answer carries in `mr-server-proof` the HMAC of the path and that nonce, which only a
/// server that holds the token can compute. A server refuses a call without a valid MAC, with a
/// time more than [`FRESHNESS`] away from its clock, or with a nonce it has seen (a replay); a
/// client refuses an answer without a valid proof. No token (an empty one is none): no check,
/// the default of a coordinator reachable only on loopback.
#[derive(Clone, Default)]
pub struct Token(Option<Arc<TokenKey>>);

struct TokenKey {
    key: ring::hmac::Key,
    /// Nonces of the calls a server accepted, for [`FRESHNESS`] twice over.
    seen: std::sync::Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    nonces: std::collections::HashSet<u128>,
    order: std::collections::VecDeque<(u64, u128)>,
}

/// How far a call's time may be from the server's clock: the hosts' clocks must agree within it.
pub const FRESHNESS: std::time::Duration = std::time::Duration::from_secs(300);

/// The header of a server's proof.
const PROOF: &str = "mr-server-proof";
/// The scheme of the `authorization` header.
const SCHEME: &str = "MR-HMAC1 ";

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Token(set)" } else { "Token(none)" })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Token {
    /// A token; an empty string means none.
    pub fn new(token: &str) -> crate::Result<Token> {
        if token.is_empty() {
            return Ok(Token(None));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(crate::Error::Config("the token must be printable ASCII (--token, MR_TOKEN)".into()));
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
        Ok(Token(Some(Arc::new(TokenKey { key, seen: Default::default() }))))
    }

    /// A random token of 32 hex digits, for a job whose workers this process starts itself.
    pub fn random() -> crate::Result<(Token, String)> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| crate::Error::Job(format!("cannot make a random token: {e}")))?;
        let text = hex(&bytes);
        Ok((Token::new(&text)?, text))
    }

    /// True when calls must carry a token.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    fn mac(key: &ring::hmac::Key, parts: &[&str]) -> String {
        let mut context = ring::hmac::Context::with_key(key);
        for part in parts {
            context.update(&(part.len() as u64).to_le_bytes());
            context.update(part.as_bytes());
        }
        hex(context.sign().as_ref())
    }

    /// The `authorization` value of a call to `path`, and its nonce.
    fn sign(key: &ring::hmac::Key, path: &str) -> Option<(http::HeaderValue, String)> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).ok()?;
        let (time, nonce) = (unix_ms().to_string(), hex(&nonce));
        let mac = Token::mac(key, &["request", path, &time, &nonce]);
        let value = http::HeaderValue::from_str(&format!("{SCHEME}{time}.{nonce}.{mac}")).ok()?;
        Some((value, nonce))
    }

    /// A server's proof that it holds the token, for the call to `path` with `nonce`.
    fn proof(key: &ring::hmac::Key, path: &str, nonce: &str) -> String {
        Token::mac(key, &["response", path, nonce])
    }

    /// Checks a call's `authorization` value; returns its nonce.
    fn verify(&self, path: &str, value: Option<&http::HeaderValue>) -> Result<String, tonic::Status> {
        use subtle::ConstantTimeEq;
        let refused = || tonic::Status::unauthenticated("missing or wrong token");
        let Some(inner) = &self.0 else { return Ok(String::new()) };
        let value = value.and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
        let fields = value.strip_prefix(SCHEME).ok_or_else(refused)?;
        let mut parts = fields.splitn(3, '.');
        let (Some(time), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(refused());
        };
        let expected = Token::mac(&inner.key, &["request", path, time, nonce]);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return Err(refused());
        }
        let (Ok(time), Ok(id)) = (time.parse::<u64>(), u128::from_str_radix(nonce, 16)) else {
            return Err(refused());
        };
        let now = unix_ms();
        let window = FRESHNESS.as_millis() as u64;
        if time.abs_diff(now) > window {
            return Err(tonic::Status::unauthenticated(format!(
                "the call's time is {} s away from this host's clock: the hosts' clocks must agree within {} s",
                time.abs_diff(now) / 1000,
                window / 1000
            )));
        }
        let mut seen = inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        while seen.order.front().is_some_and(|&(at, _)| at + 2 * window < now) {
            if let Some((_, old)) = seen.order.pop_front() {
                seen.nonces.remove(&old);
            }
        }
        if !seen.nonces.insert(id) {
            return Err(tonic::Status::unauthenticated("a replayed call"));
        }
        seen.order.push_back((now, id));
        Ok(nonce.to_string())
    }
}

use tonic::codegen::http;

/// A client channel whose calls are signed with the job's token, and whose answers must prove
/// that the server holds it (see [`Token`]).
#[derive(Clone)]
pub struct AuthChannel {
    inner: tonic::transport::Channel,
    token: Token,
    /// The cluster job its calls are about, sent as [`JOB_HEADER`].
    job: Option<http::HeaderValue>,
}

/// The channel of every client of the job.
pub fn authenticated(channel: tonic::transport::Channel, token: Token) -> AuthChannel {
    AuthChannel { inner: channel, token, job: None }
}

/// The metadata that names the job a call to `mr cluster` is about (its Coordinator and State
/// services serve every running job).
pub const JOB_HEADER: &str = "mr-job-id";

impl AuthChannel {
    /// The same channel, its calls naming cluster job `job`.
    pub fn for_job(mut self, job: u64) -> AuthChannel {
        self.job = Some(http::HeaderValue::from(job));
        self
    }
}

/// The cluster job a call names in [`JOB_HEADER`], if it names one.
pub fn job_of<T>(request: &tonic::Request<T>) -> Option<u64> {
    request.metadata().get(JOB_HEADER)?.to_str().ok()?.parse().ok()
}

impl tonic::codegen::Service<http::Request<tonic::body::Body>> for AuthChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        tonic::codegen::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        if let Some(job) = &self.job {
            request.headers_mut().insert(JOB_HEADER, job.clone());
        }
        let Some(inner) = self.token.0.clone() else {
            let call = self.inner.call(request);
            return Box::pin(call);
        };
        let path = request.uri().path().to_string();
        let Some((value, nonce)) = Token::sign(&inner.key, &path) else {
            let status = tonic::Status::internal("cannot sign the call: no random nonce");
            return Box::pin(async move { Ok(status.into_http()) });
        };
        request.headers_mut().insert(http::header::AUTHORIZATION, value);
        let call = self.inner.call(request);
        Box::pin(async move {
            use subtle::ConstantTimeEq;
            let response = call.await?;
            let expected = Token::proof(&inner.key, &path, &nonce);
            let proved =
                response.headers().get(PROOF).is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())));
            // An error without a message (a refused token, an unknown method) carries no proof:
            // it is passed on, as it gives the caller nothing to act on but the error.
            let failed = response.headers().get("grpc-status").is_some_and(|s| s.as_bytes() != b"0");
            if proved || failed {
                return Ok(response);
            }
            Ok(tonic::Status::unauthenticated(
                "the server did not prove that it holds the job's token: it is not this job's coordinator or worker, \
                 or it has another token",
            )
            .into_http())
        })
    }
}

/// The server side of [`Token`]: a service that refuses calls without a valid signature, and
/// proves in its answers that it holds the token.
#[derive(Clone)]
pub struct CheckToken<S> {
    inner: S,
    token: Token,
}

/// `service`, refusing calls that do not carry `token`.
pub fn check_token<S>(service: S, token: Token) -> CheckToken<S> {
    CheckToken { inner: service, token }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for CheckToken<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for CheckToken<S>
where
    S: tonic::codegen::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(inner) = self.token.0.clone() else { return Box::pin(self.inner.call(request)) };
        let path = request.uri().path().to_string();
        // Checked before the message is read.
        let nonce = match self.token.verify(&path, request.headers().get(http::header::AUTHORIZATION)) {
            Ok(nonce) => nonce,
            Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
        };
        let proof = http::HeaderValue::from_str(&Token::proof(&inner.key, &path, &nonce));
        let call = self.inner.call(request);
        Box::pin(async move {
            let mut response = call.await?;
            if let Ok(proof) = proof {
                response.headers_mut().insert(PROOF, proof);
            }
            Ok(response)
        })
    }
}

/// TLS on every service and every client of a job. Every process of the job is a server (the
/// coordinator's services, each worker's Shuffle service) and a client, and holds the same three
/// files: the cluster's certificate chain and its private key, which it presents both as a
/// server and as a client, and the CA certificate that signed them, the only one it trusts.
/// Servers require a client certificate signed by that CA (mutual TLS); clients check that the
/// server's certificate is valid for the host of the URL they dial.
#[derive(Clone)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
    files: [PathBuf; 3],
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [cert, key, ca] = &self.files;
        f.debug_struct("Tls").field("cert", cert).field("key", key).field("ca", ca).finish()
    }
}

/// The flag and the variable of each TLS file, for messages.
const CERT: &str = "--tls-cert (MR_TLS_CERT)";
const KEY: &str = "--tls-key (MR_TLS_KEY)";
const CA: &str = "--tls-ca (MR_TLS_CA)";

impl Tls {
    /// Reads and checks the certificate chain, the private key and the CA certificate, all PEM:
    /// none of them means no TLS; one or two of them is an error. The key must be the
    /// certificate's, and the certificate must be signed by the CA and valid now, as a client
    /// certificate too: what the other processes of the job will check.
    pub fn load(cert: Option<&Path>, key: Option<&Path>, ca: Option<&Path>) -> Result<Option<Tls>> {
        let (cert_path, key_path, ca_path) = match (cert, key, ca) {
            (None, None, None) => return Ok(None),
            (Some(cert), Some(key), Some(ca)) => (cert, key, ca),
            _ => {
                let missing: Vec<&str> = [(cert, "--tls-cert"), (key, "--tls-key"), (ca, "--tls-ca")]
                    .into_iter()
                    .filter_map(|(path, flag)| path.is_none().then_some(flag))
                    .collect();
                return Err(Error::Config(format!(
                    "TLS needs --tls-cert, --tls-key and --tls-ca together (MR_TLS_CERT, MR_TLS_KEY, MR_TLS_CA, or \
                     tls_cert, tls_key, tls_ca in the config file): {} missing",
                    missing.join(" and ")
                )));
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // tonic's servers and clients use the process's default provider; another part of the
        // process may have installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let file_error = |setting, path: &Path| {
            let path = path.to_path_buf();
            move |reason: String| Error::TlsFile { setting, path, reason }
        };
        let cert_pem = read(CERT, cert_path)?;
        let chain = certificates(&cert_pem).map_err(file_error(CERT, cert_path))?;
        let key_pem = read(KEY, key_path)?;
        let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            file_error(KEY, key_path)(match e {
                rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key in the file".to_string(),
                e => format!("not a PEM private key: {e}"),
            })
        })?;
        let ca_pem = read(CA, ca_path)?;
        let mut roots = rustls::RootCertStore::empty();
        for der in certificates(&ca_pem).map_err(file_error(CA, ca_path))? {
            roots.add(der).map_err(|e| file_error(CA, ca_path)(format!("not a usable CA certificate: {e}")))?;
        }

        rustls::sign::CertifiedKey::from_der(chain.clone(), private_key, &provider).map_err(|e| {
            file_error(KEY, key_path)(format!("not the private key of the certificate in {}: {e}", cert_path.display()))
        })?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| file_error(CA, ca_path)(format!("no usable CA certificate: {e}")))?;
        let (end_entity, intermediates) = chain.split_first().expect("certificates() returns at least one");
        verifier.verify_client_cert(end_entity, intermediates, UnixTime::now()).map_err(|e| {
            file_error(CERT, cert_path)(format!(
                "the certificate does not verify against the CA in {} (--tls-ca): {e}",
                ca_path.display()
            ))
        })?;

        let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(Some(Tls {
            identity: Identity::from_pem(cert_pem, key_pem),
            ca: Certificate::from_pem(ca_pem),
            files: [absolute(cert_path), absolute(key_path), absolute(ca_path)],
        }))
    }

    /// The certificate, key and CA files, as absolute paths: what a process started by this one
    /// is given.
    pub fn files(&self) -> [&Path; 3] {
        let [cert, key, ca] = &self.files;
        [cert, key, ca]
    }

    /// The server side: this process's certificate, and client certificates required, signed
    /// by the CA.
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone()).client_ca_root(self.ca.clone())
    }

    /// The client side, for a server reached at `host`: only the CA is trusted, the server's
    /// certificate must be valid for `host`, and this process presents its own certificate.
    pub fn client_config(&self, host: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(host.trim_start_matches('[').trim_end_matches(']'))
    }
}

/// Reads a TLS file.
fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::TlsFile { setting, path: path.to_path_buf(), reason: e.to_string() })
}

/// The PEM certificates in a file's contents; at least one.
fn certificates(pem: &[u8]) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into());
    }
    Ok(chain)
}

/// `https` with TLS, `http` without.
pub fn scheme(tls: Option<&Tls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// A client endpoint for `url`, with TLS when `tls` is given. The URL's scheme must match:
/// `https://` with TLS, `http://` without.
pub fn endpoint(url: &str, tls: Option<&Tls>) -> Result<Endpoint> {
    let invalid = |reason: String| Error::InvalidUrl { url: url.into(), reason };
    let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| invalid(e.to_string()))?;
    let uri = endpoint.uri();
    match (uri.scheme_str(), tls) {
        (Some("http"), None) => Ok(endpoint),
        (Some("https"), Some(tls)) => {
            let host = uri.host().ok_or_else(|| invalid("no host".into()))?;
            let config = tls.client_config(host);
            endpoint.tls_config(config).map_err(|e| invalid(source_message(&e)))
        }
        (Some("http" | "https"), _) => Err(Error::TlsScheme { url: url.into(), tls: tls.is_some() }),
        _ => Err(invalid("expected http://HOST:PORT or https://HOST:PORT".into())),
    }
}

/// A gRPC server with the engine's keepalives, and TLS when `tls` is given.
pub fn server(tls: Option<&Tls>) -> Result<tonic::transport::Server> {
    let server = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    match tls {
        None => Ok(server),
        Some(tls) => server
            .tls_config(tls.server_config())
            .map_err(|e| Error::Config(format!("cannot set up TLS: {}", source_message(&e)))),
    }
}

/// The connections a server accepts on `listener`, with Nagle's algorithm off: a reply's
/// trailers, written just after its message, would otherwise wait for the client's delayed
/// acknowledgement of the message (some 40 ms on Linux) before they leave.
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |conn| {
        let conn = conn?;
        if let Err(e) = conn.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot turn Nagle's algorithm off on a connection");
        }
        Ok(conn)
    })
}

/// The TLS error in an error's chain, if the error is a failed TLS handshake: a certificate
/// refused by either side, or a peer that does not speak TLS.
pub fn tls_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            return Some(tls.to_string());
        }
        current = e.source();
    }
    None
}

/// Whether the server at `url`'s host and port answers a plain-text HTTP/2 connection preface
/// with a TLS record (an alert): a TLS server called without TLS. A server that does not
/// answer within 2 s, or answers otherwise, is taken for a plain-text one.
pub async fn answers_with_tls(url: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(uri) = url.parse::<tonic::transport::Uri>() else { return false };
    let Some(host) = uri.host() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(80);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.ok()?;
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.ok()?;
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.ok()?;
        // A TLS record of content type alert (21), protocol version 3.x; an HTTP/2 server
        // answers with a SETTINGS frame, whose first byte is 0.
        Some(head == [21, 3])
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), probe).await.ok().flatten().unwrap_or(false)
}

/// The innermost message of an error chain: the useful part of a transport error.
pub fn source_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(value: &str) -> http::HeaderValue {
        http::HeaderValue::from_str(value).unwrap()
    }

    #[test]
    fn calls_are_signed_answers_proved_and_replays_refused() {
        let (server, client, other) =
            (Token::new("secret").unwrap(), Token::new("secret").unwrap(), Token::new("other").unwrap());
        let key = |t: &Token| t.0.clone().unwrap().key.clone();
        let path = "/mapreduce.Coordinator/GetTask";
        let (value, nonce) = Token::sign(&key(&client), path).unwrap();
        // The token is not in the header.
        assert!(!value.to_str().unwrap().contains("secret"));
        assert_eq!(server.verify(path, Some(&value)).unwrap(), nonce);
        // Once only.
        assert_eq!(server.verify(path, Some(&value)).unwrap_err().message(), "a replayed call");
        // Not for another method, not from another token, not without a header.
        let (value, _) = Token::sign(&key(&client), path).unwrap();
        assert!(server.verify("/mapreduce.State/GetState", Some(&value)).is_err());
        let (value, _) = Token::sign(&key(&other), path).unwrap();
        assert!(server.verify(path, Some(&value)).is_err());
        assert!(server.verify(path, None).is_err());
        assert!(server.verify(path, Some(&header("Bearer secret"))).is_err());
        // Not too far from this host's clock.
        let stale = unix_ms() - FRESHNESS.as_millis() as u64 - 1000;
        let nonce = "0123456789abcdef0123456789abcdef";
        let mac = Token::mac(&key(&client), &["request", path, &stale.to_string(), nonce]);
        let err = server.verify(path, Some(&header(&format!("{SCHEME}{stale}.{nonce}.{mac}")))).unwrap_err();
        assert!(err.message().contains("clocks"), "{err:?}");
        // The proof depends on the token, the method and the nonce.
        let proof = Token::proof(&key(&server), path, nonce);
        assert_eq!(proof, Token::proof(&key(&client), path, nonce));
        assert_ne!(proof, Token::proof(&key(&other), path, nonce));
        assert_ne!(proof, Token::proof(&key(&server), path, "another"));
        // No token: no check.
        assert!(Token::new("").unwrap().verify(path, None).is_ok());
    }
}
