//! Running one task attempt: the map side (read a split, map, sort, combine, write one map
//! output file) and the reduce side (merge a partition of every map output, reduce, write a
//! part file). The same code runs in worker processes and in local mode; neither does RPC.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::data::input::{InputFormat, RecordReader, Split};
use crate::data::mapout::{MapOutputWriter, Merger, SegmentReader};
use crate::error::{Error, Result};
use crate::job::{
    Emit, Job, MapContext, Output, Record, ReduceContext, SortedPairs, UserCounters, ValueSource, Values,
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
    fn checkpoint(&self, records: u64, bytes: u64, last: bool) -> Result<()> {
        self.records.store(records, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        let crash_at = self.crash_at_records.load(Ordering::Relaxed);
        if records >= crash_at || (last && crash_at != NO_RECORD) {
            crate::exec::fault::crash();
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

/// Intermediate pairs of one map task, grouped by key in a hash table as they are emitted, so
/// that only the distinct keys are sorted. Keys live in one arena. Without a combiner, values
/// live in the arena too, chained per key in emission order. With a folding combiner, each key
/// has one value in the arena, into which every value emitted for it is folded in place. With
/// the all-values combiner, each key keeps its values in a buffer of its own, combined
/// whenever it holds `COMBINE_EVERY` of them, as Hadoop runs a combiner zero or more times.
struct SortBuffer<'j> {
    job: &'j dyn Job,
    partitions: u32,
    combining: Combining,
    data: Vec<u8>,
    /// Values without a combiner: (offset in `data`, length, next value of the key or `NONE`).
    values: Vec<(usize, u32, u32)>,
    /// Distinct keys, in first-emission order until sorted.
    groups: Vec<Group>,
    /// Hash table over `groups`, keyed by the key bytes: each entry says where its key (and,
    /// when folding, its value) lies, so a lookup touches the table and the arena only.
    table: hashbrown::HashTable<Entry>,
    hasher: foldhash::fast::FixedState,
    /// Records held.
    records: u64,
    /// Records given to eager combines, or folded.
    combine_input: u64,
    /// The first error of an eager combine or a fold.
    error: Option<Error>,
    /// With the all-values combiner: each key's own values (`Group::local` indexes it).
    locals: Vec<Local>,
    /// Bytes held in the keys' own value buffers (with the all-values combiner).
    local_bytes: usize,
    /// The accumulator a fold works on.
    acc: Vec<u8>,
    /// Bytes the buffer may hold (`--sort-buffer`): its arenas grow by doubling, but not past it.
    limit: usize,
}

/// How a sort buffer combines a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combining {
    /// Every value is kept.
    No,
    /// [`Job::combine`] over batches of values.
    AllValues,
    /// [`Job::fold`] into one value per key.
    Fold,
}

impl Combining {
    fn of(job: &dyn Job) -> Combining {
        if job.folds() {
            Combining::Fold
        } else if job.has_combiner() {
            Combining::AllValues
        } else {
            Combining::No
        }
    }
}

/// A key in the hash table: `data[offset..offset + key_len]`, its group, and when folding,
/// its value, `data[offset + key_len..][..value_len]`.
#[derive(Clone, Copy)]
struct Entry {
    offset: usize,
    key_len: u32,
    value_len: u32,
    group: u32,
}

const NONE: u32 = u32::MAX;
/// With a combiner, a key's values are combined once it holds this many.
const COMBINE_EVERY: u32 = 64;

/// A distinct key: 40 bytes, as a job without a combiner has one per distinct record.
struct Group {
    partition: u32,
    key_len: u32,
    key_offset: usize,
    /// Without a combiner: the key's first and last values (indices in `values`).
    first: u32,
    last: u32,
    /// With a folding combiner: the key's value in `data`.
    value_offset: usize,
    value_len: u32,
    /// With the all-values combiner: the key's values, `locals[local]`.
    local: u32,
}

/// A key's own values, with the all-values combiner.
struct Local {
    /// Each value as varint length + bytes.
    values: Vec<u8>,
    count: u32,
    /// Combine again once `count` reaches this: a combiner that does not shrink its input is
    /// not run over and over.
    combine_at: u32,
}

/// Makes room in `v` for `additional` more elements: by doubling, as `Vec` does, but not past
/// `free` bytes beyond what is needed.
#[inline]
fn make_room<T>(v: &mut Vec<T>, additional: usize, free: usize) {
    if v.capacity() - v.len() < additional {
        let size = std::mem::size_of::<T>().max(1);
        let doubled = v.capacity().max(additional).max(8);
        v.reserve_exact(doubled.min(free / size).max(additional));
    }
}

impl Emit for SortBuffer<'_> {
    #[inline]
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, key);
        let data = &self.data;
        let found = self
            .table
            .find(hash, |e| e.key_len as usize == key.len() && &data[e.offset..e.offset + e.key_len as usize] == key);
        let g = match found {
            Some(entry) if self.combining == Combining::Fold => {
                let entry = *entry;
                self.fold(hash, entry, key, value);
                return;
            }
            Some(entry) => entry.group,
            None => {
                let g = self.groups.len() as u32;
                let folding = self.combining == Combining::Fold;
                let grow = key.len() + if folding { value.len() } else { 0 };
                if self.data.capacity() - self.data.len() < grow {
                    let free = self.free();
                    make_room(&mut self.data, grow, free);
                }
                if self.groups.capacity() == self.groups.len() {
                    let free = self.free();
                    make_room(&mut self.groups, 1, free);
                }
                let key_offset = self.data.len();
                self.data.extend_from_slice(key);
                let partition = self.job.partition(key, self.partitions).min(self.partitions - 1);
                let value_offset = self.data.len();
                if folding {
                    // The key's first value is its accumulator, right after the key.
                    self.data.extend_from_slice(value);
                }
                let value_len = if folding { value.len() as u32 } else { 0 };
                let local = if self.combining == Combining::AllValues {
                    self.locals.push(Local { values: Vec::new(), count: 0, combine_at: COMBINE_EVERY });
                    (self.locals.len() - 1) as u32
                } else {
                    NONE
                };
                self.groups.push(Group {
                    partition,
                    key_len: key.len() as u32,
                    key_offset,
                    first: NONE,
                    last: NONE,
                    value_offset,
                    value_len,
                    local,
                });
                let (data, hasher) = (&self.data, &self.hasher);
                let entry = Entry { offset: key_offset, key_len: key.len() as u32, value_len, group: g };
                // Growing the table rehashes every key (rare: the table doubles).
                self.table.insert_unique(hash, entry, |e| {
                    std::hash::BuildHasher::hash_one(hasher, &data[e.offset..e.offset + e.key_len as usize])
                });
                if folding {
                    self.records += 1;
                    self.combine_input += 1;
                    return;
                }
                g
            }
        };
        self.records += 1;
        if self.combining == Combining::AllValues {
            let local = &mut self.locals[self.groups[g as usize].local as usize];
            let before = local.values.capacity();
            push_value(&mut local.values, value);
            self.local_bytes += local.values.capacity() - before;
            local.count += 1;
            if local.count >= local.combine_at {
                self.combine_group(g as usize);
            }
            return;
        }
        if self.values.capacity() == self.values.len() {
            let free = self.free();
            make_room(&mut self.values, 1, free);
        }
        if self.data.capacity() - self.data.len() < value.len() {
            let free = self.free();
            make_room(&mut self.data, value.len(), free);
        }
        let value_index = self.values.len() as u32;
        let group = &mut self.groups[g as usize];
        if group.last == NONE {
            group.first = value_index;
        } else {
            self.values[group.last as usize].2 = value_index;
        }
        group.last = value_index;
        self.values.push((self.data.len(), value.len() as u32, NONE));
        self.data.extend_from_slice(value);
    }
}

fn push_value(buf: &mut Vec<u8>, value: &[u8]) {
    let mut len = value.len();
    while len >= 0x80 {
        buf.push((len as u8) | 0x80);
        len >>= 7;
    }
    buf.push(len as u8);
    buf.extend_from_slice(value);
}

/// Values stored by [`push_value`].
struct LocalValues<'a> {
    rest: &'a [u8],
}

impl ValueSource for LocalValues<'_> {
    fn next_value(&mut self) -> Option<&[u8]> {
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let (&b, rest) = self.rest.split_first()?;
            self.rest = rest;
            len |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let (value, rest) = self.rest.split_at(len.min(self.rest.len()));
        self.rest = rest;
        Some(value)
    }
}

impl<'j> SortBuffer<'j> {
    fn new(job: &'j dyn Job, partitions: u32, combining: Combining, limit: u64) -> SortBuffer<'j> {
        SortBuffer {
            job,
            partitions,
            combining,
            data: Vec::new(),
            values: Vec::new(),
            groups: Vec::new(),
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0),
            records: 0,
            combine_input: 0,
            error: None,
            locals: Vec::new(),
            local_bytes: 0,
            acc: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Bytes the buffer may still take.
    fn free(&self) -> usize {
        self.limit.saturating_sub(self.memory())
    }

    /// Whether the buffer is full: it holds its limit, or its hash table is full and growing
    /// it (old and new tables side by side while it rehashes) would pass the limit.
    fn full(&self) -> bool {
        let memory = self.memory();
        let table_full = self.table.len() == self.table.capacity();
        memory >= self.limit
            || (table_full && memory + self.table.capacity() * 2 * (std::mem::size_of::<Entry>() + 1) > self.limit)
    }

    /// Folds `value` into the value of the key of `entry` (`key`): in place when the
    /// accumulator keeps its length, else the key and its value move to the end of the arena.
    #[inline]
    fn fold(&mut self, hash: u64, entry: Entry, key: &[u8], value: &[u8]) {
        let offset = entry.offset + entry.key_len as usize;
        let len = entry.value_len as usize;
        self.acc.clear();
        self.acc.extend_from_slice(&self.data[offset..offset + len]);
        if let Err(e) = self.job.fold(key, &mut self.acc, value) {
            self.error.get_or_insert(e);
        }
        self.combine_input += 1;
        if self.acc.len() == len {
            self.data[offset..offset + len].copy_from_slice(&self.acc);
            return;
        }
        let key_offset = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(&self.acc);
        let group = &mut self.groups[entry.group as usize];
        group.key_offset = key_offset;
        group.value_offset = key_offset + key.len();
        group.value_len = self.acc.len() as u32;
        let value_len = self.acc.len() as u32;
        if let Some(e) = self.table.find_mut(hash, |e| e.group == entry.group) {
            e.offset = key_offset;
            e.value_len = value_len;
        }
    }

    /// Combines the values a key holds into fewer.
    fn combine_group(&mut self, g: usize) {
        let group = &self.groups[g];
        let key = &self.data[group.key_offset..group.key_offset + group.key_len as usize];
        let entry = &mut self.locals[group.local as usize];
        let local = std::mem::take(&mut entry.values);
        self.local_bytes -= local.capacity();
        let mut combined = Vec::new();
        let mut count = 0;
        let mut source = LocalValues { rest: &local };
        let mut values = Values::new(&mut source);
        let result = guarded(|| {
            self.job.combine(key, &mut values, &mut |v| {
                push_value(&mut combined, v);
                count += 1;
            })
        });
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        let entry = &mut self.locals[group.local as usize];
        self.combine_input += u64::from(entry.count);
        self.records = self.records - u64::from(entry.count) + u64::from(count);
        self.local_bytes += combined.capacity();
        entry.values = combined;
        entry.count = count;
        entry.combine_at = COMBINE_EVERY.max(count.saturating_mul(2));
    }

    /// Memory held, counted by capacity (what the allocator gave), as the sort buffer limits it.
    fn memory(&self) -> usize {
        self.data.capacity()
            + self.values.capacity() * std::mem::size_of::<(usize, u32, u32)>()
            + self.groups.capacity() * std::mem::size_of::<Group>()
            + self.table.capacity() * (std::mem::size_of::<Entry>() + 1)
            + self.locals.capacity() * std::mem::size_of::<Local>()
            + self.local_bytes
    }

    fn key(&self, g: &Group) -> &[u8] {
        &self.data[g.key_offset..g.key_offset + g.key_len as usize]
    }

    fn value(&self, index: u32) -> &[u8] {
        let (offset, len, _) = self.values[index as usize];
        &self.data[offset..offset + len as usize]
    }

    /// Sorts the distinct keys by (partition, key); the hash table is no longer needed.
    fn sort(&mut self) {
        self.table = hashbrown::HashTable::new();
        let mut groups = std::mem::take(&mut self.groups);
        groups.sort_unstable_by(|a, b| (a.partition, self.key(a)).cmp(&(b.partition, self.key(b))));
        self.groups = groups;
    }

    /// Runs the combiner over the sorted keys; returns its output, sorted, with no combiner.
    fn combine(&self, counters: &mut UserCounters) -> Result<SortBuffer<'j>> {
        let mut combined = SortBuffer::new(self.job, self.partitions, Combining::No, u64::MAX);
        let mut input = SortedGroups { buffer: self, group: 0, local: LocalValues { rest: &[] } };
        self.job.combine_sorted(&mut input, &mut |k, v| combined.emit(k, v), counters)?;
        combined.sort();
        Ok(combined)
    }

    /// Writes the sorted keys and their values (without the all-values combiner) as a map
    /// output file. Returns the number of records.
    fn write(&self, out: &mut MapOutputWriter) -> Result<u64> {
        let mut groups = self.groups.iter().peekable();
        for p in 0..self.partitions {
            out.start_partition();
            while let Some(g) = groups.next_if(|g| g.partition == p) {
                let key = self.key(g);
                if self.combining == Combining::Fold {
                    out.write(key, &self.data[g.value_offset..g.value_offset + g.value_len as usize])?;
                    continue;
                }
                let mut v = g.first;
                while v != NONE {
                    out.write(key, self.value(v))?;
                    v = self.values[v as usize].2;
                }
            }
        }
        Ok(if self.combining == Combining::Fold { self.groups.len() } else { self.values.len() } as u64)
    }
}

/// The sorted keys and their values, for the combiner.
struct SortedGroups<'a, 'j> {
    buffer: &'a SortBuffer<'j>,
    /// Index of the next key to yield.
    group: usize,
    /// The current key's values.
    local: LocalValues<'a>,
}

impl SortedPairs for SortedGroups<'_, '_> {
    fn next_key(&mut self) -> Option<&[u8]> {
        let buffer = self.buffer;
        let g = buffer.groups.get(self.group)?;
        self.group += 1;
        self.local = LocalValues { rest: &buffer.locals[g.local as usize].values };
        Some(buffer.key(g))
    }

    fn next_value(&mut self) -> Option<&[u8]> {
        self.local.next_value()
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
    let combining = Combining::of(job);
    let mut buffer = SortBuffer::new(job, partitions, combining, settings.sort_buffer);
    let mut scratch = (Vec::new(), Vec::new());
    let mut spills = Spills { output: output.to_path_buf(), runs: Vec::new() };
    let mut user = UserCounters::new();
    let mut counters = TaskCounters::default();
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
                    counters.skipped_records += 1;
                    continue;
                }
                progress.bad_record.store(number, Ordering::Relaxed);
                return Err(e);
            }
        };
        if skip.contains(&record.number) {
            counters.skipped_records += 1;
            continue;
        }
        let (path, offset, number) = (record.path, record.offset, record.number);
        let record = Record { path, offset, line_number: record.line_number, text: record.text, bytes: record.bytes };
        let mut ctx = MapContext { sink: &mut buffer, counters: &mut user, scratch: &mut scratch };
        if let Err(e) = guarded(|| job.map(record, &mut ctx)) {
            progress.bad_record.store(number, Ordering::Relaxed);
            return Err(Error::Job(format!("record at {path}:{offset}: {e}")));
        }
        counters.input_records += 1;
        if counters.input_records % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, reader.consumed(), false)?;
        }
        if buffer.full() {
            let full =
                std::mem::replace(&mut buffer, SortBuffer::new(job, partitions, combining, settings.sort_buffer));
            let run = spills.next_path();
            write_sorted(full, &run, &mut counters, &mut user)?;
            spills.runs.push(run);
        }
    }
    let mut ctx = MapContext { sink: &mut buffer, counters: &mut user, scratch: &mut scratch };
    guarded(|| job.map_cleanup(&mut ctx))?;
    counters.input_bytes = reader.consumed();
    progress.checkpoint(counters.input_records, counters.input_bytes, true)?;
    let tmp = tmp_name(output);
    if spills.runs.is_empty() {
        counters.output_records = write_sorted(buffer, &tmp, &mut counters, &mut user)?;
    } else {
        if buffer.records > 0 {
            let run = spills.next_path();
            write_sorted(buffer, &run, &mut counters, &mut user)?;
            spills.runs.push(run);
        }
        counters.output_records = spills.merge(job, settings, &tmp, &mut counters)?;
    }
    counters.output_bytes = std::fs::metadata(&tmp).map_err(Error::io("cannot read map output", &tmp))?.len();
    std::fs::rename(&tmp, output).map_err(Error::io("cannot rename map output", output))?;
    counters.user = user;
    Ok(counters)
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

/// Sorts (and combines) a sort buffer and writes it as a map output file. Returns the records
/// written.
fn write_sorted(
    mut buffer: SortBuffer<'_>,
    path: &Path,
    counters: &mut TaskCounters,
    user: &mut UserCounters,
) -> Result<u64> {
    if let Some(e) = buffer.error.take() {
        return Err(e);
    }
    buffer.sort();
    match buffer.combining {
        Combining::No => {}
        Combining::AllValues => {
            counters.combine_input_records += buffer.combine_input + buffer.records;
            buffer = guarded(|| buffer.combine(user))?;
            counters.combine_output_records += buffer.records;
        }
        Combining::Fold => {
            counters.combine_input_records += buffer.combine_input;
            counters.combine_output_records += buffer.records;
        }
    }
    let mut writer = MapOutputWriter::create(path)?;
    let written = buffer.write(&mut writer)?;
    writer.finish()?;
    counters.spilled_records += written;
    Ok(written)
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
    ) -> Result<u64> {
        let fan_in = settings.merge_fan_in.max(2);
        let mut pass = 0;
        while self.runs.len() > fan_in {
            let mut merged = Vec::new();
            for (i, batch) in self.runs.chunks(fan_in).enumerate() {
                let mut name = self.output.as_os_str().to_owned();
                name.push(format!(".merge-{pass}-{i}"));
                let target = PathBuf::from(name);
                counters.spilled_records += merge_files(job, batch, settings.partitions, &target)?;
                merged.push(target);
            }
            self.remove();
            self.runs = merged;
            pass += 1;
        }
        let written = merge_files(job, &self.runs, settings.partitions, path)?;
        self.remove();
        Ok(written)
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
fn merge_files(job: &dyn Job, inputs: &[PathBuf], partitions: u32, output: &Path) -> Result<u64> {
    let mut writer = MapOutputWriter::create(output)?;
    let mut written = 0;
    let combining = Combining::of(job);
    let mut acc = Vec::new();
    for p in 0..partitions {
        writer.start_partition();
        let runs = inputs.iter().map(|path| SegmentReader::open(path, p, partitions)).collect::<Result<Vec<_>>>()?;
        let mut merger = Merger::new(runs)?;
        let mut key = Vec::new();
        while merger.advance()? {
            if combining == Combining::Fold {
                key.clear();
                key.extend_from_slice(merger.key());
                acc.clear();
                acc.extend_from_slice(merger.value());
                while merger.peek_key() == Some(&key[..]) {
                    merger.advance()?;
                    guarded(|| job.fold(&key, &mut acc, merger.value()))?;
                }
                writer.write(&key, &acc)?;
                written += 1;
                continue;
            }
            if combining == Combining::No {
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

/// One sorted input of a reduce: partition `.1` of the `.2` partitions of map output file `.0`.
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
    for (path, partition, partitions) in map_outputs {
        counters.input_bytes += SegmentReader::open(path, *partition, *partitions)?.segment().len;
    }
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
    /// by folding or with the all-values combiner.
    struct Sum {
        fold: bool,
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
            !self.fold
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
            let settings = TaskSettings { partitions, sort_buffer, merge_fan_in: 2, max_record_bytes: u64::MAX };
            let (folded, counters) = run_job(&Sum { fold: true }, &text, split_size, &settings);
            let (combined, _) = run_job(&Sum { fold: false }, &text, split_size, &settings);
            proptest::prop_assert_eq!(&folded, &combined);
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
