//! The shuffle: every worker serves the map outputs it wrote through the Shuffle gRPC service,
//! and a reduce attempt copies its partition of each map output to its own disk before it
//! merges them, reading same-host outputs in place.
//!
//! A server finds an output by (map task, attempt) in the table of outputs its own worker
//! wrote, never by a path the caller names. A fetched partition is stored as a map output file
//! of one partition, so the reduce reads local and fetched inputs alike, and the segment's
//! CRC32 from the writer's index is checked end to end; every chunk also carries its own CRC32,
//! checked as it arrives.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::data::mapout::{self, Segment};
use crate::error::{Error, Result};
use crate::net::rpc::pb::shuffle_client::ShuffleClient;
use crate::net::rpc::{self, CHUNK_BYTES, MAX_MESSAGE_BYTES, Tls, Token, pb};
use crate::types::MapOutputLocation;

/// How many times a fetch is tried before its map output is reported lost.
pub const FETCH_TRIES: u32 = 4;
/// A fetch that receives nothing for this long has lost its peer (a cut link drops packets
/// silently, so the connection alone would wait for TCP to give up).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The first pause between tries; it doubles after each.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The map outputs a worker wrote and serves: (map task, attempt) -> file.
#[derive(Clone, Default)]
pub struct Outputs(Arc<Mutex<HashMap<(u32, u32), PathBuf>>>);

impl Outputs {
    /// Records a map output that this worker wrote.
    pub fn insert(&self, map_task: u32, attempt: u32, path: PathBuf) {
        self.0.lock().expect("lock poisoned").insert((map_task, attempt), path);
    }

    /// Forgets a map output (discarded).
    pub fn remove(&self, map_task: u32, attempt: u32) {
        self.0.lock().expect("lock poisoned").remove(&(map_task, attempt));
    }

    fn get(&self, map_task: u32, attempt: u32) -> Option<PathBuf> {
        self.0.lock().expect("lock poisoned").get(&(map_task, attempt)).cloned()
    }
}

/// The Shuffle service of one worker.
#[derive(Clone)]
pub struct ShuffleServer {
    outputs: Outputs,
    partitions: u32,
}

impl ShuffleServer {
    /// Serves `outputs`, map outputs of `partitions` partitions.
    pub fn new(outputs: Outputs, partitions: u32) -> ShuffleServer {
        ShuffleServer { outputs, partitions }
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::FetchPartitionChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::shuffle_server::Shuffle for ShuffleServer {
    type FetchPartitionStream = ChunkStream;

    async fn fetch_partition(
        &self,
        request: Request<pb::FetchPartitionRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let r = request.into_inner();
        if r.partition >= self.partitions {
            return Err(Status::invalid_argument(format!(
                "partition {} out of range: the job has {}",
                r.partition, self.partitions
            )));
        }
        let path = self
            .outputs
            .get(r.map_task, r.attempt)
            .ok_or_else(|| Status::not_found(format!("no output of map task {} attempt {}", r.map_task, r.attempt)))?;
        let partitions = self.partitions;
        // A few chunks in flight: the reader waits for the network (HTTP/2 flow control).
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = send_segment(&path, r.partition, partitions, &tx) {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

fn send_segment(
    path: &Path,
    partition: u32,
    partitions: u32,
    tx: &tokio::sync::mpsc::Sender<Result<pb::FetchPartitionChunk, Status>>,
) -> Result<()> {
    let segment = mapout::read_index(path, partitions)?[partition as usize];
    let mut file = std::fs::File::open(path).map_err(Error::io("cannot read map output", path))?;
    file.seek(SeekFrom::Start(segment.offset)).map_err(Error::io("cannot read map output", path))?;
    let mut file = file.take(segment.len);
    let mut first = true;
    let mut left = segment.len;
    loop {
        let mut data = vec![0u8; (left as usize).min(CHUNK_BYTES)];
        file.read_exact(&mut data).map_err(Error::io("cannot read map output", path))?;
        left -= data.len() as u64;
        let chunk = pb::FetchPartitionChunk {
            segment_len: if first { segment.len } else { 0 },
            segment_records: if first { segment.records } else { 0 },
            segment_crc: if first { segment.crc } else { 0 },
            data_crc: crc32fast::hash(&data),
            data,
        };
        first = false;
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Ok(()); // the reader went away
        }
        if left == 0 {
            return Ok(());
        }
    }
}

/// Copies partition `partition` of the map output at `location` into the file `dest` (a map
/// output of one partition), trying [`FETCH_TRIES`] times with a doubling pause. On a last
/// failure the error is [`Error::LostMapOutput`], which the coordinator answers by
/// re-executing the map task. A wrong token or a refused certificate is not tried again.
/// `on_chunk` is called with the bytes of every chunk received.
pub async fn fetch(
    location: &MapOutputLocation,
    partition: u32,
    dest: &Path,
    token: &Token,
    tls: Option<&Tls>,
    on_chunk: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let mut backoff = FIRST_BACKOFF;
    let mut tries = 0;
    loop {
        tries += 1;
        match fetch_once(location, partition, dest, token, tls, on_chunk).await {
            Ok(()) => return Ok(()),
            Err(FetchError::Refused(e)) => return Err(e),
            Err(FetchError::Failed(reason)) if tries >= FETCH_TRIES => {
                let _ = std::fs::remove_file(dest);
                return Err(Error::LostMapOutput {
                    map_task: location.map_task,
                    attempt: location.attempt,
                    url: location.shuffle_url.clone(),
                    reason: format!("{reason} ({tries} tries)"),
                });
            }
            Err(FetchError::Failed(reason)) => {
                tracing::info!(map_task = location.map_task, %reason, ?backoff, "fetch failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
    }
}

enum FetchError {
    /// Worth trying again, then reported as a lost map output.
    Failed(String),
    /// Not worth trying again (a wrong token, a refused certificate, a local disk error).
    Refused(Error),
}

async fn fetch_once(
    location: &MapOutputLocation,
    partition: u32,
    dest: &Path,
    token: &Token,
    tls: Option<&Tls>,
    on_chunk: &(dyn Fn(u64) + Sync),
) -> std::result::Result<(), FetchError> {
    let url = &location.shuffle_url;
    let endpoint = rpc::endpoint(url, tls).map_err(|e| match e {
        Error::TlsScheme { .. } => FetchError::Refused(e),
        e => FetchError::Failed(e.to_string()),
    })?;
    let endpoint = endpoint.connect_timeout(Duration::from_secs(2)).tcp_nodelay(true);
    let channel = endpoint.connect().await.map_err(|e| match rpc::tls_failure(&e) {
        Some(reason) => FetchError::Refused(Error::TlsHandshake { url: url.clone(), reason }),
        None => FetchError::Failed(rpc::source_message(&e)),
    })?;
    let mut client = ShuffleClient::new(crate::net::rpc::authenticated(channel, token.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let request = pb::FetchPartitionRequest { map_task: location.map_task, attempt: location.attempt, partition };
    let status = |s: Status| match (s.code(), rpc::tls_failure(&s)) {
        (tonic::Code::Unauthenticated, _) => FetchError::Refused(Error::Unauthenticated { url: url.clone() }),
        (_, Some(reason)) => FetchError::Refused(Error::TlsHandshake { url: url.clone(), reason }),
        (code, None) => FetchError::Failed(format!("{code}: {}", s.message())),
    };
    let stalled = || FetchError::Failed(format!("no data for {} s", STALL_TIMEOUT.as_secs()));
    let call = tokio::time::timeout(STALL_TIMEOUT, client.fetch_partition(request));
    let mut stream = call.await.map_err(|_| stalled())?.map_err(status)?.into_inner();
    let local = |e: std::io::Error| FetchError::Refused(Error::io("cannot write fetched map output", dest)(e));
    let mut file = std::io::BufWriter::new(std::fs::File::create(dest).map_err(local)?);
    let mut segment: Option<Segment> = None;
    let mut received = 0u64;
    while let Some(chunk) =
        tokio::time::timeout(STALL_TIMEOUT, stream.message()).await.map_err(|_| stalled())?.map_err(status)?
    {
        if crc32fast::hash(&chunk.data) != chunk.data_crc {
            return Err(FetchError::Failed("a chunk arrived corrupt (checksum mismatch)".into()));
        }
        if segment.is_none() {
            segment = Some(Segment {
                offset: 0,
                len: chunk.segment_len,
                records: chunk.segment_records,
                crc: chunk.segment_crc,
            });
        }
        received += chunk.data.len() as u64;
        file.write_all(&chunk.data).map_err(local)?;
        on_chunk(chunk.data.len() as u64);
    }
    let Some(segment) = segment else { return Err(FetchError::Failed("the stream ended without data".into())) };
    if received != segment.len {
        return Err(FetchError::Failed(format!("got {received} of {} bytes", segment.len)));
    }
    file.write_all(&mapout::index_and_footer(&[segment])).map_err(local)?;
    file.into_inner().map_err(|e| local(e.into_error()))?.sync_all().map_err(local)?;
    Ok(())
}
