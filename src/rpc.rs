//! The generated gRPC types and the conversions between them and the engine's own types.
//! Only this module, the coordinator's service and the worker's client see tonic and prost.

#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("mapreduce");
}

use crate::scheduler::{AttemptId, Phase, TaskId};

/// Most bytes a request or reply may have: the protocol carries metadata, and map output
/// chunks of at most [`CHUNK_BYTES`].
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How often a server pings an idle HTTP/2 connection, and how long it waits for the answer
/// before it closes it: a peer whose host vanished (a cut link drops packets silently) must not
/// hold a connection, and so a server's shutdown, open until TCP gives up.
pub const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`KEEPALIVE_INTERVAL`].
pub const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A gRPC server builder with the engine's keepalive settings.
pub fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Bytes of map output per FetchPartition message.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The job's shared secret. Every call carries it as `authorization: Bearer TOKEN`, and every
/// service refuses a call without it or with another one. No token: no check (the default of a
/// coordinator reachable only on loopback).
#[derive(Clone, Default)]
pub struct Token(Option<std::sync::Arc<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Token(set)" } else { "Token(none)" })
    }
}

impl Token {
    /// A token; an empty string means none.
    pub fn new(token: &str) -> crate::Result<Token> {
        if token.is_empty() {
            return Ok(Token(None));
        }
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| crate::Error::Config("the token must be printable ASCII (--token, MR_TOKEN)".into()))?;
        Ok(Token(Some(std::sync::Arc::new(value))))
    }

    /// A random token of 32 hex digits, for a job whose workers this process starts itself.
    pub fn random() -> crate::Result<(Token, String)> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| crate::Error::Job(format!("cannot make a random token: {e}")))?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok((Token::new(&text)?, text))
    }

    /// True when calls must carry a token.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl tonic::service::Interceptor for Token {
    /// Client side: attaches the token. Server side: use [`Token::check`].
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.as_ref().clone());
        }
        Ok(request)
    }
}

/// The server side of [`Token`]: refuses calls that do not carry it.
#[derive(Clone, Debug, Default)]
pub struct CheckToken(pub Token);

impl tonic::service::Interceptor for CheckToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        use subtle::ConstantTimeEq;
        let Some(expected) = &self.0.0 else { return Ok(request) };
        let given = request.metadata().get("authorization").map_or(&[][..], |v| v.as_bytes());
        if bool::from(given.ct_eq(expected.as_bytes())) {
            Ok(request)
        } else {
            Err(tonic::Status::unauthenticated("missing or wrong token"))
        }
    }
}

/// A channel whose calls carry the job's token.
pub type AuthChannel = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Token>;

impl From<AttemptId> for pb::TaskRef {
    fn from(id: AttemptId) -> pb::TaskRef {
        pb::TaskRef { is_map: id.task.phase == Phase::Map, task_id: id.task.index, attempt: id.attempt }
    }
}

impl From<pb::TaskRef> for AttemptId {
    fn from(r: pb::TaskRef) -> AttemptId {
        let phase = if r.is_map { Phase::Map } else { Phase::Reduce };
        AttemptId { task: TaskId { phase, index: r.task_id }, attempt: r.attempt }
    }
}

impl From<crate::task::TaskCounters> for pb::Counters {
    fn from(c: crate::task::TaskCounters) -> pb::Counters {
        let user = c
            .user
            .iter()
            .flat_map(|(group, names)| {
                names.iter().map(|(name, &amount)| pb::UserCounter { group: group.clone(), name: name.clone(), amount })
            })
            .collect();
        pb::Counters {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            groups: c.groups,
            skipped_records: c.skipped_records,
            combine_input_records: c.combine_input_records,
            combine_output_records: c.combine_output_records,
            spilled_records: c.spilled_records,
            user,
        }
    }
}

impl From<pb::Counters> for crate::task::TaskCounters {
    fn from(c: pb::Counters) -> crate::task::TaskCounters {
        let mut user = crate::job::UserCounters::new();
        for u in c.user {
            *user.entry(u.group).or_default().entry(u.name).or_default() += u.amount;
        }
        crate::task::TaskCounters {
            input_records: c.input_records,
            input_bytes: c.input_bytes,
            output_records: c.output_records,
            output_bytes: c.output_bytes,
            groups: c.groups,
            skipped_records: c.skipped_records,
            combine_input_records: c.combine_input_records,
            combine_output_records: c.combine_output_records,
            spilled_records: c.spilled_records,
            user,
        }
    }
}
