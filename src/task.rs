//! Running one task attempt: the map side (read a split, map, sort, combine, write one map
//! output file) and the reduce side (merge a partition of every map output, reduce, write a
//! part file). The same code runs in worker processes and in local mode; neither does RPC.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::input::{InputFormat, RecordReader, Split};
use crate::job::{
    Emit, Job, MapContext, Output, Record, ReduceContext, SortedPairs, UserCounters, ValueSource, Values,
    merge_counters,
};
use crate::mapout::{MapOutputWriter, Merger, SegmentReader};

/// What one attempt did, counted by the attempt and summed by the coordinator over the
/// committed attempts (so a task that ran twice counts once).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskCounters {
    /// Records read (map: input records; reduce: intermediate records merged).
    pub input_records: u64,
    /// Bytes read (map: input bytes of the split; reduce: map output bytes fetched).
    pub input_bytes: u64,
    /// Records written (map: intermediate records after the combiner; reduce: output records).
    pub output_records: u64,
    /// Bytes written.
    pub output_bytes: u64,
    /// Reduce: distinct keys (reduce input groups).
    pub groups: u64,
    /// Map: records skipped because they crashed earlier attempts.
    pub skipped_records: u64,
    /// Map: records given to the combiner.
    pub combine_input_records: u64,
    /// Map: records the combiner produced.
    pub combine_output_records: u64,
    /// Records written to disk before the reduce (the map output).
    pub spilled_records: u64,
    /// Counters defined by the job: group -> name -> amount.
    pub user: UserCounters,
}

impl std::ops::AddAssign<&TaskCounters> for TaskCounters {
    fn add_assign(&mut self, o: &TaskCounters) {
        self.input_records += o.input_records;
        self.input_bytes += o.input_bytes;
        self.output_records += o.output_records;
        self.output_bytes += o.output_bytes;
        self.groups += o.groups;
        self.skipped_records += o.skipped_records;
        self.combine_input_records += o.combine_input_records;
        self.combine_output_records += o.combine_output_records;
        self.spilled_records += o.spilled_records;
        merge_counters(&mut self.user, &o.user);
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
struct SortBuffer<'j> {
    job: &'j dyn Job,
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

impl Emit for SortBuffer<'_> {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let offset = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        self.entries.push(Entry {
            partition: self.job.partition(key, self.partitions).min(self.partitions - 1),
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            offset,
        });
    }
}

impl<'j> SortBuffer<'j> {
    fn new(job: &'j dyn Job, partitions: u32) -> SortBuffer<'j> {
        SortBuffer { job, partitions, data: Vec::new(), entries: Vec::new() }
    }

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

    /// Runs the combiner over the sorted entries; returns its output, sorted.
    fn combine(&self, counters: &mut UserCounters) -> Result<SortBuffer<'j>> {
        let mut combined = SortBuffer::new(self.job, self.partitions);
        let mut input = SortedEntries { buffer: self, next: 0, key_end: 0 };
        self.job.combine_sorted(&mut input, &mut |k, v| combined.emit(k, v), counters)?;
        combined.sort();
        Ok(combined)
    }

    /// Writes the sorted entries as a map output file. Returns the number of records.
    fn write(&self, out: &mut MapOutputWriter) -> Result<u64> {
        let mut entries = self.entries.iter().peekable();
        for p in 0..self.partitions {
            out.start_partition();
            while let Some(e) = entries.next_if(|e| e.partition == p) {
                out.write(self.key(e), self.value(e))?;
            }
        }
        Ok(self.entries.len() as u64)
    }
}

/// Sorted entries grouped by (partition, key), for the combiner.
struct SortedEntries<'a, 'j> {
    buffer: &'a SortBuffer<'j>,
    /// Next entry to yield as a value.
    next: usize,
    /// One past the current key's last entry.
    key_end: usize,
}

impl SortedPairs for SortedEntries<'_, '_> {
    fn next_key(&mut self) -> Option<&[u8]> {
        let entries = &self.buffer.entries;
        let start = self.key_end;
        let first = entries.get(start)?;
        let key = self.buffer.key(first);
        let mut end = start + 1;
        while end < entries.len() && entries[end].partition == first.partition && self.buffer.key(&entries[end]) == key
        {
            end += 1;
        }
        self.next = start;
        self.key_end = end;
        Some(key)
    }

    fn next_value(&mut self) -> Option<&[u8]> {
        if self.next >= self.key_end {
            return None;
        }
        self.next += 1;
        Some(self.buffer.value(&self.buffer.entries[self.next - 1]))
    }
}

/// Runs a map attempt over `split` and writes its map output to `output` (through a temporary
/// name, so a file at `output` is always complete). Records at the offsets in `skip` are
/// skipped and counted. When a record fails (invalid UTF-8, an error or a panic in map), its
/// offset is left in `progress` for the bad-record rule.
pub fn run_map(
    job: &dyn Job,
    split: &Split,
    format: InputFormat,
    partitions: u32,
    skip: &[u64],
    output: &Path,
    progress: &Progress,
) -> Result<TaskCounters> {
    let mut reader = RecordReader::open(split, format)?;
    let mut buffer = SortBuffer::new(job, partitions);
    let mut user = UserCounters::new();
    let path = split.path.to_string_lossy();
    let mut counters = TaskCounters::default();
    guarded(|| job.map_setup())?;
    loop {
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                let offset = reader.record_offset();
                if skip.contains(&offset) {
                    counters.skipped_records += 1;
                    continue;
                }
                progress.bad_record.store(offset, Ordering::Relaxed);
                return Err(e);
            }
        };
        if skip.contains(&record.offset) {
            counters.skipped_records += 1;
            continue;
        }
        let offset = record.offset;
        let record =
            Record { path: &path, offset, line_number: record.line_number, text: record.text, bytes: record.bytes };
        let mut ctx = MapContext { sink: &mut buffer, counters: &mut user, scratch: Default::default() };
        if let Err(e) = guarded(|| job.map(record, &mut ctx)) {
            progress.bad_record.store(offset, Ordering::Relaxed);
            return Err(Error::Job(format!("record at {path}:{offset}: {e}")));
        }
        counters.input_records += 1;
        if counters.input_records % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, reader.consumed(split), false)?;
        }
    }
    let mut ctx = MapContext { sink: &mut buffer, counters: &mut user, scratch: Default::default() };
    guarded(|| job.map_cleanup(&mut ctx))?;
    counters.input_bytes = reader.consumed(split);
    progress.checkpoint(counters.input_records, counters.input_bytes, true)?;
    buffer.sort();
    if job.has_combiner() {
        counters.combine_input_records = buffer.entries.len() as u64;
        buffer = guarded(|| buffer.combine(&mut user))?;
        counters.combine_output_records = buffer.entries.len() as u64;
    }
    let tmp = tmp_name(output);
    let mut writer = MapOutputWriter::create(&tmp)?;
    counters.output_records = buffer.write(&mut writer)?;
    counters.spilled_records = counters.output_records;
    counters.output_bytes = writer.finish()?;
    std::fs::rename(&tmp, output).map_err(Error::io("cannot rename map output", output))?;
    counters.user = user;
    Ok(counters)
}

/// Runs the job's code, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(Error::Job(format!("panicked: {}", panic_message(panic.as_ref())))),
    }
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
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        for part in parts {
            self.out.write_all(part).map_err(Error::io("cannot write output", &self.path))?;
            self.bytes += part.len() as u64;
        }
        self.records += 1;
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
    let mut user = UserCounters::new();
    guarded(|| job.reduce_setup())?;
    let mut key = Vec::new();
    while merger.advance()? {
        key.clear();
        key.extend_from_slice(merger.key());
        let mut source = MergeValues { merger: &mut merger, key: &key, first: true, error: None, records: 0 };
        let mut values = Values::new(&mut source);
        let mut ctx = ReduceContext { sink: &mut part, counters: &mut user };
        guarded(|| job.reduce(&key, &mut values, &mut ctx))?;
        // Values the reduce function did not consume still belong to this key.
        while values.next_value().is_some() {}
        if let Some(e) = values.take_error() {
            return Err(e);
        }
        if let Some(e) = source.error {
            return Err(e);
        }
        counters.input_records += source.records;
        counters.groups += 1;
        if counters.groups % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, 0, false)?;
        }
    }
    let mut ctx = ReduceContext { sink: &mut part, counters: &mut user };
    guarded(|| job.reduce_cleanup(&mut ctx))?;
    counters.user = user;
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
