//! Running one task attempt: the map side (read a split, map, sort, combine, write one map
//! output file) and the reduce side (merge a partition of every map output, reduce, write a
//! part file). The same code runs in worker processes and in local mode; neither does RPC.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::input::{LineReader, Split};
use crate::job::{Emit, Job, Output, Record, ValueSource, Values};
use crate::mapout::{MapOutputWriter, Merger, SegmentReader};
use crate::partition::partition;

/// What one attempt did, counted by the attempt and summed by the coordinator over the
/// committed attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskCounters {
    /// Records read (map: input lines; reduce: intermediate records merged).
    pub input_records: u64,
    /// Bytes read (map: input bytes of the split; reduce: map output bytes fetched).
    pub input_bytes: u64,
    /// Records written (map: intermediate records after the combiner; reduce: output lines).
    pub output_records: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Reduce: distinct keys.
    pub groups: u64,
    /// Map: records skipped because they crashed earlier attempts.
    pub skipped_records: u64,
}

impl std::ops::AddAssign for TaskCounters {
    fn add_assign(&mut self, o: TaskCounters) {
        self.input_records += o.input_records;
        self.input_bytes += o.input_bytes;
        self.output_records += o.output_records;
        self.output_bytes += o.output_bytes;
        self.groups += o.groups;
        self.skipped_records += o.skipped_records;
    }
}

/// Live progress of a running attempt, read by the heartbeat, and its cancellation flag.
#[derive(Debug)]
pub struct Progress {
    /// Records processed so far.
    pub records: AtomicU64,
    /// Bytes processed so far.
    pub bytes: AtomicU64,
    /// Set to stop the attempt at its next checkpoint.
    pub cancelled: AtomicBool,
    /// Fault injection: the process exits at the first checkpoint past this many records.
    pub crash_at_records: AtomicU64,
    /// Offset of the record a failed map attempt was processing, or `NO_RECORD`.
    pub bad_record: AtomicU64,
}

/// `Progress::bad_record` and `crash_at_records` when not set.
pub const NO_RECORD: u64 = u64::MAX;

/// Records between two progress checkpoints.
const CHECKPOINT: u64 = 1024;

impl Default for Progress {
    fn default() -> Progress {
        Progress {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            crash_at_records: AtomicU64::new(NO_RECORD),
            bad_record: AtomicU64::new(NO_RECORD),
        }
    }
}

impl Progress {
    /// Publishes progress; fails with [`Error::Interrupted`] once the attempt is cancelled.
    /// The last checkpoint of an attempt is `last`: an injected crash happens there at the
    /// latest.
    fn checkpoint(&self, records: u64, bytes: u64, last: bool) -> Result<()> {
        self.records.store(records, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        let crash_at = self.crash_at_records.load(Ordering::Relaxed);
        if records >= crash_at || (last && crash_at != NO_RECORD) {
            crate::fault::crash();
        }
        if self.cancelled.load(Ordering::Relaxed) { Err(Error::Interrupted) } else { Ok(()) }
    }

    /// The offset of the record a failed attempt was processing.
    pub fn bad_record(&self) -> Option<u64> {
        Some(self.bad_record.load(Ordering::Relaxed)).filter(|&o| o != NO_RECORD)
    }

    /// Asks the attempt to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }
}

/// Intermediate pairs of one map task, held in one arena and sorted by (partition, key).
struct SortBuffer {
    partitions: u32,
    data: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Clone, Copy)]
struct Entry {
    partition: u32,
    key_len: u32,
    value_len: u32,
    offset: usize,
}

impl Emit for SortBuffer {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let offset = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.entries.push(Entry {
            partition: partition(key, self.partitions),
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            offset,
        });
    }
}

impl SortBuffer {
    fn key(&self, e: &Entry) -> &[u8] {
        &self.data[e.offset..e.offset + e.key_len as usize]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        let start = e.offset + e.key_len as usize;
        &self.data[start..start + e.value_len as usize]
    }

    fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        // The offset breaks ties, so equal keys keep their emission order.
        entries
            .sort_unstable_by(|a, b| (a.partition, self.key(a), a.offset).cmp(&(b.partition, self.key(b), b.offset)));
        self.entries = entries;
    }

    /// Writes the sorted entries, combining each key's values if the job has a combiner.
    fn write(&self, job: &dyn Job, out: &mut MapOutputWriter) -> Result<u64> {
        let mut written = 0;
        let mut i = 0;
        for p in 0..self.partitions {
            out.start_partition();
            while i < self.entries.len() && self.entries[i].partition == p {
                let key = self.key(&self.entries[i]);
                let mut j = i + 1;
                while j < self.entries.len() && self.entries[j].partition == p && self.key(&self.entries[j]) == key {
                    j += 1;
                }
                if job.has_combiner() {
                    let mut source = SliceValues { buffer: self, entries: &self.entries[i..j] };
                    let mut result = Ok(());
                    job.combine(key, &mut Values::new(&mut source), &mut |value| {
                        if result.is_ok() {
                            result = out.write(key, value);
                            written += 1;
                        }
                    })?;
                    result?;
                } else {
                    for e in &self.entries[i..j] {
                        out.write(key, self.value(e))?;
                        written += 1;
                    }
                }
                i = j;
            }
        }
        Ok(written)
    }
}

struct SliceValues<'a> {
    buffer: &'a SortBuffer,
    entries: &'a [Entry],
}

impl ValueSource for SliceValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        let (first, rest) = self.entries.split_first()?;
        self.entries = rest;
        Some(self.buffer.value(first))
    }
}

/// Runs a map attempt over `split` and writes its map output to `output` (through a temporary
/// name, so a file at `output` is always complete). Records at the offsets in `skip` are
/// skipped and counted. When a record fails (invalid UTF-8, an error or a panic in map), its
/// offset is left in `progress` for the bad-record rule.
pub fn run_map(
    job: &dyn Job,
    split: &Split,
    partitions: u32,
    skip: &[u64],
    output: &Path,
    progress: &Progress,
) -> Result<TaskCounters> {
    let mut reader = LineReader::open(split)?;
    let mut buffer = SortBuffer { partitions, data: Vec::new(), entries: Vec::new() };
    let path = split.path.to_string_lossy();
    let mut counters = TaskCounters::default();
    loop {
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                let offset = reader.line_offset();
                if skip.contains(&offset) {
                    counters.skipped_records += 1;
                    continue;
                }
                progress.bad_record.store(offset, Ordering::Relaxed);
                return Err(e);
            }
        };
        if skip.contains(&line.offset) {
            counters.skipped_records += 1;
            continue;
        }
        let record = Record { path: &path, offset: line.offset, line: line.text };
        let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.map(record, &mut buffer)));
        let failed = match mapped {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(panic) => Some(Error::Job(format!("map panicked: {}", panic_message(panic.as_ref())))),
        };
        if let Some(e) = failed {
            progress.bad_record.store(record.offset, Ordering::Relaxed);
            return Err(Error::Job(format!("record at {}:{}: {e}", path, record.offset)));
        }
        counters.input_records += 1;
        if counters.input_records % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, reader.position().saturating_sub(split.start), false)?;
        }
    }
    counters.input_bytes = reader.position().saturating_sub(split.start);
    progress.checkpoint(counters.input_records, counters.input_bytes, true)?;
    buffer.sort();
    let tmp = tmp_name(output);
    let mut writer = MapOutputWriter::create(&tmp)?;
    counters.output_records = buffer.write(job, &mut writer)?;
    counters.output_bytes = writer.finish()?;
    std::fs::rename(&tmp, output).map_err(Error::io("cannot rename map output", output))?;
    Ok(counters)
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Writes reduce output lines to a part file.
struct PartWriter {
    out: BufWriter<File>,
    path: PathBuf,
    records: u64,
    bytes: u64,
}

impl Output for PartWriter {
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let io = Error::io("cannot write output", &self.path);
        (|| {
            self.out.write_all(key)?;
            self.out.write_all(b"\t")?;
            self.out.write_all(value)?;
            self.out.write_all(b"\n")
        })()
        .map_err(io)?;
        self.records += 1;
        self.bytes += (key.len() + value.len() + 2) as u64;
        Ok(())
    }
}

/// The values of the current key in a merge.
struct MergeValues<'a> {
    merger: &'a mut Merger,
    key: &'a [u8],
    first: bool,
    error: Option<Error>,
    records: u64,
}

impl ValueSource for MergeValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        if self.first {
            self.first = false;
        } else if self.error.is_some() || self.merger.peek_key() != Some(self.key) {
            return None;
        } else if let Err(e) = self.merger.advance() {
            self.error = Some(e);
            return None;
        }
        self.records += 1;
        Some(self.merger.value())
    }
}

/// Runs a reduce attempt over partition `partition` of every map output, writing its part
/// file to `output` and syncing it. The caller commits it.
pub fn run_reduce(
    job: &dyn Job,
    partition: u32,
    partitions: u32,
    map_outputs: &[PathBuf],
    output: &Path,
    progress: &Progress,
) -> Result<TaskCounters> {
    let mut counters = TaskCounters::default();
    let mut runs = Vec::with_capacity(map_outputs.len());
    for path in map_outputs {
        let run = SegmentReader::open(path, partition, partitions)?;
        counters.input_bytes += run.segment().len;
        runs.push(run);
    }
    let mut merger = Merger::new(runs)?;
    let file = File::create(output).map_err(Error::io("cannot create output file", output))?;
    let mut part =
        PartWriter { out: BufWriter::with_capacity(256 * 1024, file), path: output.into(), records: 0, bytes: 0 };
    let mut key = Vec::new();
    while merger.advance()? {
        key.clear();
        key.extend_from_slice(merger.key());
        let mut source = MergeValues { merger: &mut merger, key: &key, first: true, error: None, records: 0 };
        job.reduce(&key, &mut Values::new(&mut source), &mut part)?;
        // Values the reduce function did not consume still belong to this key.
        while source.next_value().is_some() {}
        if let Some(e) = source.error {
            return Err(e);
        }
        counters.input_records += source.records;
        counters.groups += 1;
        if counters.groups % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, 0, false)?;
        }
    }
    let file = part.out.into_inner().map_err(|e| Error::io("cannot write output", output)(e.into_error()))?;
    file.sync_all().map_err(Error::io("cannot sync output", output))?;
    counters.output_records = part.records;
    counters.output_bytes = part.bytes;
    progress.checkpoint(counters.input_records, counters.input_bytes, true)?;
    Ok(counters)
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}
