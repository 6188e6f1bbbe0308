//! Running one task attempt: the map side (read a split, map, sort, combine, write one map
//! output file) and the reduce side (merge a partition of every map output, reduce, write a
//! part file). The same code runs in worker processes and in local mode; neither does RPC.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::data::input::{InputFormat, RecordReader, Split};
use crate::data::mapout::{MapOutputWriter, Merger, SegmentReader};
use crate::error::{Error, Result};
use crate::job::buffer::MapBuffer;
use crate::job::{
    AttemptInfo, InputRange, Job, MapContext, Output, Record, ReduceContext, UserCounters, ValueSource, Values, guarded,
};
use crate::types::TaskCounters;

/// An attempt's live state: its counters (read by the heartbeat), its cancellation flag, its
/// injected crash threshold and the record it failed on.
#[derive(Debug)]
pub struct AttemptProgress {
    /// Records processed so far.
    pub records: AtomicU64,
    /// Bytes processed so far.
    pub bytes: AtomicU64,
    /// Bytes of map output written so far: progress while a map sorts, spills and merges
    /// (shared with the writers, `MapOutputWriter::reporting`).
    pub written: Arc<AtomicU64>,
    /// Set to stop the attempt at its next checkpoint.
    pub cancelled: AtomicBool,
    /// Fault injection: the process exits at the first checkpoint past this many records.
    pub crash_at_records: AtomicU64,
    /// Number in its split of the record a failed map attempt was processing, or `NO_RECORD`.
    pub bad_record: AtomicU64,
}

/// `AttemptProgress::bad_record` and `crash_at_records` when not set.
pub const NO_RECORD: u64 = u64::MAX;

/// Records between two progress checkpoints.
const CHECKPOINT: u64 = 1024;

impl Default for AttemptProgress {
    fn default() -> AttemptProgress {
        AttemptProgress {
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            written: Arc::default(),
            cancelled: AtomicBool::new(false),
            crash_at_records: AtomicU64::new(NO_RECORD),
            bad_record: AtomicU64::new(NO_RECORD),
        }
    }
}

impl AttemptProgress {
    /// Publishes progress; fails with [`Error::Interrupted`] once the attempt is cancelled.
    /// The last checkpoint of an attempt is `last`: an injected crash happens there at the
    /// latest.
    pub(crate) fn checkpoint(&self, records: u64, bytes: u64, last: bool) -> Result<()> {
        self.records.store(records, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        let crash_at = self.crash_at_records.load(Ordering::Relaxed);
        if records >= crash_at || (last && crash_at != NO_RECORD) {
            crate::exec::fault::crash();
        }
        if self.cancelled.load(Ordering::Relaxed) { Err(Error::Interrupted) } else { Ok(()) }
    }

    /// The bytes a heartbeat reports: those read, and those of map output written.
    pub fn reported_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed).saturating_add(self.written.load(Ordering::Relaxed))
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

/// How tasks use memory and merge sorted runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSettings {
    /// Number of reduce tasks, and so of partitions of every map output.
    pub partitions: u32,
    /// Bytes of intermediate data a map task holds in memory before it spills a sorted run.
    pub sort_buffer: u64,
    /// Most sorted runs merged at once; more are merged in several passes.
    pub merge_fan_in: usize,
    /// Largest input record a map task reads (`--max-record-bytes`).
    pub max_record_bytes: u64,
    /// How reduce tasks compress their part files (`--output-compression`).
    pub output_compression: crate::data::compression::OutputCompression,
}

/// Runs a map attempt over `split` and writes its map output to `output` (through a temporary
/// name, so a file at `output` is always complete). Intermediate data beyond the sort buffer
/// is spilled to sorted runs next to `output` and merged at the end. The records whose numbers
/// in the split are in `skip` are skipped and counted. When a record fails (invalid UTF-8, an
/// error or a panic in map), its number is left in `progress` for the bad-record rule.
pub fn run_map(
    job: &dyn Job,
    split: &Split,
    format: InputFormat,
    settings: &TaskSettings,
    skip: &[u64],
    output: &Path,
    progress: &AttemptProgress,
) -> Result<TaskCounters> {
    fixed_mmap_threshold();
    let partitions = settings.partitions;
    let mut reader = RecordReader::open(split, format, settings.max_record_bytes)?;
    let mut spills = Spills { output: output.to_path_buf(), runs: Vec::new() };
    let mut state = MapState::new(MapBuffer::new(job, partitions, settings.sort_buffer));
    map_records(job, &mut reader, skip, progress, &mut state, |s| {
        if s.buffer.full() && s.buffer.records() > 0 {
            let full = std::mem::replace(&mut s.buffer, MapBuffer::new(job, partitions, settings.sort_buffer));
            let run = spills.next_path();
            full.write_sorted(job, &run, &mut s.counters, &mut s.user, Some(&progress.written))?;
            spills.runs.push(run);
        }
        Ok(())
    })?;
    let MapState { buffer, mut counters, mut user, .. } = state;
    let tmp = tmp_name(output);
    if spills.runs.is_empty() {
        counters.output_records = buffer.write_sorted(job, &tmp, &mut counters, &mut user, Some(&progress.written))?;
    } else {
        if buffer.records() > 0 {
            let run = spills.next_path();
            buffer.write_sorted(job, &run, &mut counters, &mut user, Some(&progress.written))?;
            spills.runs.push(run);
        }
        counters.output_records = spills.merge(job, settings, &tmp, &mut counters, &progress.written)?;
    }
    counters.output_bytes = std::fs::metadata(&tmp).map_err(Error::io("cannot read map output", &tmp))?.len();
    std::fs::rename(&tmp, output).map_err(Error::io("cannot rename map output", output))?;
    counters.user = user;
    Ok(counters)
}

/// What a map attempt's record loop fills: the buffer map emits into, the attempt's counters,
/// the job's counters, and the buffers `emit_encoded` borrows.
pub(crate) struct MapState {
    pub(crate) buffer: MapBuffer,
    pub(crate) counters: TaskCounters,
    pub(crate) user: UserCounters,
    scratch: (Vec<u8>, Vec<u8>),
}

impl MapState {
    pub(crate) fn new(buffer: MapBuffer) -> MapState {
        MapState { buffer, counters: TaskCounters::default(), user: UserCounters::new(), scratch: Default::default() }
    }
}

/// The record loop of every map attempt: reads the split's records, skips and counts those
/// whose numbers are in `skip`, calls map between `map_setup` and `map_cleanup`, checkpoints
/// progress, and calls `after` after each record (a spill when the buffer is full, or a
/// map-only attempt's drain into its part file). When a record fails, its number is left in
/// `progress` for the bad-record rule.
pub(crate) fn map_records(
    job: &dyn Job,
    reader: &mut RecordReader,
    skip: &[u64],
    progress: &AttemptProgress,
    state: &mut MapState,
    mut after: impl FnMut(&mut MapState) -> Result<()>,
) -> Result<()> {
    guarded(|| job.map_setup())?;
    loop {
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            // A file that changed is no bad record: the task fails, whatever is skipped.
            Err(e @ Error::InputChanged { .. }) => return Err(e),
            Err(e) => {
                let number = reader.record_number();
                if skip.contains(&number) {
                    state.counters.skipped_records += 1;
                    continue;
                }
                progress.bad_record.store(number, Ordering::Relaxed);
                return Err(e);
            }
        };
        if skip.contains(&record.number) {
            state.counters.skipped_records += 1;
            continue;
        }
        let (path, offset, number) = (record.path, record.offset, record.number);
        let record = Record { path, offset, line_number: record.line_number, text: record.text, bytes: record.bytes };
        let mut ctx =
            MapContext { sink: &mut state.buffer, job, counters: &mut state.user, scratch: &mut state.scratch };
        if let Err(e) = guarded(|| job.map(record, &mut ctx)) {
            progress.bad_record.store(number, Ordering::Relaxed);
            return Err(Error::Job(format!("record at {path}:{offset}: {e}")));
        }
        state.counters.input_records += 1;
        if state.counters.input_records.is_multiple_of(CHECKPOINT) {
            progress.checkpoint(state.counters.input_records, reader.consumed(), false)?;
        }
        after(state)?;
    }
    let mut ctx = MapContext { sink: &mut state.buffer, job, counters: &mut state.user, scratch: &mut state.scratch };
    guarded(|| job.map_cleanup(&mut ctx))?;
    state.counters.input_bytes = reader.consumed();
    progress.checkpoint(state.counters.input_records, state.counters.input_bytes, true)
}

/// Makes glibc serve every allocation of 128 KiB or more with its own mapping, returned to
/// the system when freed. By default glibc raises that threshold to the size of the largest
/// mapping freed (up to 32 MiB), so after a sort buffer is spilled and freed, the next one
/// grows in the heap, whose freed pages stay resident: a map task's memory would reach twice
/// `--sort-buffer`. Setting the threshold turns that adjustment off, once per process.
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only changes the allocator's tuning; it is called once, before the
        // sort buffer allocates.
        ONCE.call_once(|| unsafe {
            nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
        });
    }
}

/// The sorted runs a map attempt spilled.
struct Spills {
    output: PathBuf,
    runs: Vec<PathBuf>,
}

impl Spills {
    fn next_path(&self) -> PathBuf {
        let mut name = self.output.as_os_str().to_owned();
        name.push(format!(".spill-{}", self.runs.len()));
        PathBuf::from(name)
    }

    /// Merges the runs into one map output at `path`, `merge_fan_in` runs at a time,
    /// combining again if the job has a combiner. Returns the records written.
    fn merge(
        &mut self,
        job: &dyn Job,
        settings: &TaskSettings,
        path: &Path,
        counters: &mut TaskCounters,
        written: &Arc<AtomicU64>,
    ) -> Result<u64> {
        let fan_in = settings.merge_fan_in.max(2);
        let mut pass = 0;
        while self.runs.len() > fan_in {
            let mut merged = Vec::new();
            for (i, batch) in self.runs.chunks(fan_in).enumerate() {
                let mut name = self.output.as_os_str().to_owned();
                name.push(format!(".merge-{pass}-{i}"));
                let target = PathBuf::from(name);
                counters.spilled_records += merge_files(job, batch, settings.partitions, &target, written)?;
                merged.push(target);
            }
            self.remove();
            self.runs = merged;
            pass += 1;
        }
        let records = merge_files(job, &self.runs, settings.partitions, path, written)?;
        self.remove();
        Ok(records)
    }

    fn remove(&mut self) {
        for run in self.runs.drain(..) {
            let _ = std::fs::remove_file(run);
        }
    }
}

impl Drop for Spills {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Merges map output files partition by partition into one, combining each key's values
/// when the job has a combiner. Returns the records written.
fn merge_files(
    job: &dyn Job,
    inputs: &[PathBuf],
    partitions: u32,
    output: &Path,
    written: &Arc<AtomicU64>,
) -> Result<u64> {
    let mut writer = MapOutputWriter::create(output)?.reporting(written.clone());
    let mut written = 0;
    let (sums, folds, combines) = (job.sums_counts(), job.folds(), job.has_combiner());
    let mut acc = Vec::new();
    for p in 0..partitions {
        writer.start_partition();
        let runs = inputs.iter().map(|path| SegmentReader::open(path, p, partitions)).collect::<Result<Vec<_>>>()?;
        let mut merger = Merger::new(runs)?;
        let mut key = Vec::new();
        while merger.advance()? {
            if sums || folds {
                key.clear();
                key.extend_from_slice(merger.key());
                acc.clear();
                acc.extend_from_slice(merger.value());
                while merger.peek_key() == Some(&key[..]) {
                    merger.advance()?;
                    if sums {
                        crate::job::add_count(&mut acc, merger.value())?;
                    } else {
                        guarded(|| job.fold(&key, &mut acc, merger.value()))?;
                    }
                }
                writer.write(&key, &acc)?;
                written += 1;
                continue;
            }
            if !combines {
                writer.write(merger.key(), merger.value())?;
                written += 1;
                continue;
            }
            key.clear();
            key.extend_from_slice(merger.key());
            let mut source = MergeValues { merger: &mut merger, key: &key, first: true, error: None, records: 0 };
            let mut values = Values::new(&mut source);
            let mut failed = None;
            guarded(|| {
                job.combine(&key, &mut values, &mut |v| {
                    if failed.is_none() {
                        match writer.write(&key, v) {
                            Ok(()) => written += 1,
                            Err(e) => failed = Some(e),
                        }
                    }
                })
            })?;
            while values.next_value().is_some() {}
            if let Some(e) = failed.or(values.take_error()).or(source.error) {
                return Err(e);
            }
        }
    }
    writer.finish()?;
    Ok(written)
}

pub use crate::job::panic_message;

/// The name of reduce task `partition`'s part file: `part-r-NNNNN`, with the compression's
/// extension.
pub fn part_name(partition: u32, compression: crate::data::compression::OutputCompression) -> String {
    format!("part-r-{partition:05}{}", compression.extension())
}

/// Runs one attempt's work (`run`) between the job's [`Job::attempt_start`] and
/// [`Job::attempt_end`].
pub fn with_attempt<T>(job: &dyn Job, info: &AttemptInfo, run: impl FnOnce() -> Result<T>) -> Result<T> {
    guarded(|| job.attempt_start(info))?;
    let result = run();
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.attempt_end()));
    result
}

/// The running attempt's status message, as the job tells it ([`Job::status`]).
pub fn attempt_status(job: &dyn Job) -> Option<String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.status())).ok().flatten()
}

/// The [`AttemptInfo`] of a map attempt over `split`.
pub fn map_attempt(task: u32, attempt: u32, work_dir: &Path, split: &Split) -> AttemptInfo {
    let inputs = split
        .ranges
        .iter()
        .map(|r| InputRange {
            path: crate::data::input::path_text(&r.path).into_owned(),
            start: r.start,
            length: r.end - r.start,
        })
        .collect();
    AttemptInfo { is_map: true, task, attempt, work_dir: work_dir.to_path_buf(), inputs }
}

/// The [`AttemptInfo`] of a reduce attempt of partition `task`.
pub fn reduce_attempt(task: u32, attempt: u32, work_dir: &Path) -> AttemptInfo {
    AttemptInfo { is_map: false, task, attempt, work_dir: work_dir.to_path_buf(), inputs: Vec::new() }
}

/// Writes reduce output lines to a part file.
struct PartWriter {
    out: BufWriter<crate::data::compression::Encoder<File>>,
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

/// One sorted input of a reduce: partition `.1` of the `.2` partitions of map output file `.0`.
/// A reduce attempt's bytes of progress after merging `merged` of its `records`: its
/// `input_bytes` fetched, and as many again in proportion to the records merged.
fn reduce_progress_bytes(input_bytes: u64, merged: u64, records: u64) -> u64 {
    let share = (u128::from(input_bytes) * u128::from(merged.min(records)) / u128::from(records)) as u64;
    input_bytes.saturating_add(share)
}

/// A map output fetched from another host is a file of one partition: `(path, 0, 1)`.
pub type ReduceInput = (PathBuf, u32, u32);

/// Runs a reduce attempt over its inputs (one partition of every map output, in map task
/// order), writing its part file to `output` and syncing it. The caller commits it.
pub fn run_reduce(
    job: &dyn Job,
    settings: &TaskSettings,
    map_outputs: &[ReduceInput],
    output: &Path,
    progress: &AttemptProgress,
) -> Result<TaskCounters> {
    let mut counters = TaskCounters::default();
    let mut inputs: Vec<ReduceInput> = map_outputs.to_vec();
    // Its records in all, for progress: the segments' index says.
    let mut records = 0u64;
    for (path, partition, partitions) in map_outputs {
        let segment = SegmentReader::open(path, *partition, *partitions)?.segment();
        counters.input_bytes += segment.len;
        records += segment.records;
    }
    // Progress, as its heartbeats report it (input records plus bytes): its input bytes once
    // fetched, then again in proportion to the records merged, so that a slow merge shows.
    let merged_bytes = |merged: u64| reduce_progress_bytes(counters.input_bytes, merged, records.max(1));
    // More runs than the fan-in: merge them in passes into single-partition runs first.
    let fan_in = settings.merge_fan_in.max(2);
    let mut merged = Vec::new();
    let mut pass = 0;
    while inputs.len() > fan_in {
        let mut next = Vec::new();
        for (i, batch) in inputs.chunks(fan_in).enumerate() {
            let mut name = output.as_os_str().to_owned();
            name.push(format!(".merge-{pass}-{i}"));
            let target = PathBuf::from(name);
            merge_segments(batch, &target)?;
            next.push((target.clone(), 0, 1));
            merged.push(target);
        }
        inputs = next;
        pass += 1;
    }
    let _cleanup = RemoveOnDrop(merged);
    let runs = inputs.iter().map(|(path, p, of)| SegmentReader::open(path, *p, *of)).collect::<Result<Vec<_>>>()?;
    let mut merger = Merger::new(runs)?;
    let file = File::create(output).map_err(Error::io("cannot create output file", output))?;
    let file = settings.output_compression.encoder(file)?;
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
            progress.checkpoint(counters.input_records, merged_bytes(counters.input_records), false)?;
        }
    }
    let mut ctx = ReduceContext { sink: &mut part, counters: &mut user };
    guarded(|| job.reduce_cleanup(&mut ctx))?;
    counters.user = user;
    let encoder = part.out.into_inner().map_err(|e| Error::io("cannot write output", output)(e.into_error()))?;
    let file = encoder.finish().map_err(Error::io("cannot write output", output))?;
    file.sync_all().map_err(Error::io("cannot sync output", output))?;
    counters.output_records = part.records;
    // The part file's size: what the job commit checks (compressed, with compression).
    counters.output_bytes = file.metadata().map_err(Error::io("cannot read output", output))?.len();
    progress.checkpoint(counters.input_records, counters.input_bytes.saturating_mul(2), true)?;
    Ok(counters)
}

/// Merges segments (path, partition, partitions) into a single-partition file, keeping
/// every record.
fn merge_segments(inputs: &[(PathBuf, u32, u32)], output: &Path) -> Result<()> {
    let runs = inputs.iter().map(|(path, p, of)| SegmentReader::open(path, *p, *of)).collect::<Result<Vec<_>>>()?;
    let mut merger = Merger::new(runs)?;
    let mut writer = MapOutputWriter::create(output)?;
    writer.start_partition();
    while merger.advance()? {
        writer.write(merger.key(), merger.value())?;
    }
    writer.finish()?;
    Ok(())
}

/// Removes files when dropped.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn tmp_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::input::{InputFile, plan_splits};

    /// Sums decimal counts per key (a decimal sum grows in length, so a fold moves its value),
    /// by folding, with the all-values combiner, or in reduce only.
    struct Sum {
        fold: bool,
        combine: bool,
    }

    fn decimal(bytes: &[u8]) -> Result<u64> {
        std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).ok_or_else(|| Error::Job("not a count".into()))
    }

    impl Job for Sum {
        fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
            let (key, count) = record.text.split_once(' ').unwrap_or((record.text, "1"));
            ctx.emit(key.as_bytes(), count.as_bytes());
            Ok(())
        }

        fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
            let mut total = 0;
            while let Some(v) = values.next_value() {
                total += decimal(v)?;
            }
            ctx.write(key, total.to_string().as_bytes())
        }

        fn has_combiner(&self) -> bool {
            self.combine
        }

        fn combine(&self, _key: &[u8], values: &mut Values<'_>, out: &mut dyn FnMut(&[u8])) -> Result<()> {
            let mut total = 0;
            while let Some(v) = values.next_value() {
                total += decimal(v)?;
            }
            out(total.to_string().as_bytes());
            Ok(())
        }

        fn folds(&self) -> bool {
            self.fold
        }

        fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<()> {
            let total = decimal(acc)? + decimal(value)?;
            acc.clear();
            acc.extend_from_slice(total.to_string().as_bytes());
            Ok(())
        }
    }

    #[test]
    fn progress_counts_map_output_written_and_a_reduce_s_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        let text: String = (0..5_000).map(|i| format!("word{} {}\n", i % 700, i % 9)).collect();
        std::fs::write(&input, &text).unwrap();
        let files = [InputFile { path: input, len: text.len() as u64, modified_ns: None, name: None }];
        let split = plan_splits(&files, u64::MAX, InputFormat::Text).unwrap().remove(0);
        let job = Sum { fold: false, combine: false };
        // A small sort buffer: spills and a merge, all of them written output.
        let settings = TaskSettings {
            partitions: 2,
            sort_buffer: 4096,
            merge_fan_in: 2,
            max_record_bytes: u64::MAX,
            output_compression: Default::default(),
        };
        let (map_out, progress) = (dir.path().join("map.out"), AttemptProgress::default());
        let c = run_map(&job, &split, InputFormat::Text, &settings, &[], &map_out, &progress).unwrap();
        let written = progress.written.load(Ordering::Relaxed);
        // Every spill and merge pass, and the map output itself.
        assert!(written > 2 * c.output_bytes, "{written} written, {} in the output", c.output_bytes);
        assert_eq!(progress.reported_bytes(), c.input_bytes + written);
        assert_eq!(progress.records.load(Ordering::Relaxed), c.input_records);

        let progress = AttemptProgress::default();
        let inputs: Vec<ReduceInput> = (0..2).map(|p| (map_out.clone(), p, 2)).collect();
        let c = run_reduce(&job, &settings, &inputs, &dir.path().join("part"), &progress).unwrap();
        // What the scheduler expects of a committed reduce: its records, and its bytes twice.
        assert_eq!(progress.reported_bytes(), 2 * c.input_bytes);
        assert_eq!(progress.records.load(Ordering::Relaxed), c.input_records);
        assert_eq!(reduce_progress_bytes(100, 0, 10), 100);
        assert_eq!(reduce_progress_bytes(100, 5, 10), 150);
        assert_eq!(reduce_progress_bytes(100, 12, 10), 200);
    }

    /// Runs a whole job over `text` in map tasks of `split_size` bytes; returns each part
    /// file's contents and the map counters.
    fn run_job(job: &dyn Job, text: &str, split_size: u64, settings: &TaskSettings) -> (Vec<Vec<u8>>, TaskCounters) {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        std::fs::write(&input, text).unwrap();
        let files = [InputFile { path: input, len: text.len() as u64, modified_ns: None, name: None }];
        let splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
        let mut outputs = Vec::new();
        let mut counters = TaskCounters::default();
        for (i, split) in splits.iter().enumerate() {
            let output = dir.path().join(format!("map-{i}.out"));
            let c =
                run_map(job, split, InputFormat::Text, settings, &[], &output, &AttemptProgress::default()).unwrap();
            counters += &c;
            outputs.push(output);
        }
        let parts = (0..settings.partitions)
            .map(|p| {
                let inputs: Vec<ReduceInput> = outputs.iter().map(|o| (o.clone(), p, settings.partitions)).collect();
                let part = dir.path().join(format!("part-{p}"));
                run_reduce(job, settings, &inputs, &part, &AttemptProgress::default()).unwrap();
                std::fs::read(part).unwrap()
            })
            .collect();
        (parts, counters)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// A folding combiner gives the same output as the all-values combiner, and as no
        /// combiner, whatever the map tasks, the spills and the merge passes.
        #[test]
        fn folding_gives_the_output_of_the_all_values_combiner(
            records in proptest::collection::vec((0u8..40, 0u64..1000), 0..300),
            split_size in 64u64..4096,
            sort_buffer in 1u64..8192,
            partitions in 1u32..4,
        ) {
            let text: String = records.iter().map(|(k, v)| format!("k{k} {v}\n")).collect();
            let settings = TaskSettings {
                partitions,
                sort_buffer,
                merge_fan_in: 2,
                max_record_bytes: u64::MAX,
                output_compression: Default::default(),
            };
            let (folded, counters) = run_job(&Sum { fold: true, combine: false }, &text, split_size, &settings);
            let (combined, _) = run_job(&Sum { fold: false, combine: true }, &text, split_size, &settings);
            proptest::prop_assert_eq!(&folded, &combined);
            let (reduced, _) = run_job(&Sum { fold: false, combine: false }, &text, split_size, &settings);
            proptest::prop_assert_eq!(&folded, &reduced);
            let mut expected = std::collections::BTreeMap::new();
            for (k, v) in &records {
                *expected.entry(format!("k{k}")).or_insert(0u64) += v;
            }
            let mut lines: Vec<String> =
                folded.iter().flat_map(|p| String::from_utf8(p.clone()).unwrap().lines().map(String::from).collect::<Vec<_>>()).collect();
            lines.sort();
            let mut want: Vec<String> = expected.iter().map(|(k, v)| format!("{k}\t{v}")).collect();
            want.sort();
            proptest::prop_assert_eq!(lines, want);
            proptest::prop_assert_eq!(counters.combine_input_records, records.len() as u64);
        }
    }
}
