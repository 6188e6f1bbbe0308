//! The map side's buffers: what `MapContext::emit` fills, until a map task sorts it and
//! writes it as a map output file or a spilled run.
//!
//! A job without a combiner keeps every pair in an [`AppendBuffer`]. A job with a combiner
//! groups its pairs by key in a [`SortBuffer`], a hash table over the distinct keys, so that
//! only they are sorted: with a folding combiner a key holds one value into which each emitted
//! value is folded; with the all-values combiner it holds its values, combined as they pile up.

mod append;

pub(crate) use append::AppendBuffer;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::data::mapout::MapOutputWriter;
use crate::error::{Error, Result};
use crate::job::short_key::padded_words;
use crate::job::{Job, ShortKey, SortedPairs, UserCounters, ValueSource, Values, guarded};
use crate::types::TaskCounters;

/// The buffer of a map task: one per job kind, chosen once, so `emit` branches on a value that
/// never changes.
pub(crate) enum MapBuffer {
    /// A job with a combiner.
    Grouped(SortBuffer),
    /// A job without a combiner.
    Append(AppendBuffer),
    /// A map-only job: pairs become output lines at once, in emission order.
    Lines(LineSink),
}

/// A map-only job's output as it is emitted: `key<TAB>value` lines (`key` alone for an empty
/// value), which the attempt drains into its part file after each record.
#[derive(Default)]
pub(crate) struct LineSink {
    /// Lines not yet drained.
    pub(crate) lines: Vec<u8>,
    /// Pairs emitted.
    pub(crate) records: u64,
}

impl LineSink {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        self.lines.extend_from_slice(key);
        if !value.is_empty() {
            self.lines.push(b'\t');
            self.lines.extend_from_slice(value);
        }
        self.lines.push(b'\n');
        self.records += 1;
    }
}

impl MapBuffer {
    /// An empty buffer for `job`'s map tasks, of at most `limit` bytes.
    pub(crate) fn new(job: &dyn Job, partitions: u32, limit: u64) -> MapBuffer {
        let mode = if job.sums_counts() {
            Mode::Sum
        } else if job.folds() {
            Mode::Fold
        } else if job.has_combiner() {
            Mode::AllValues
        } else {
            return MapBuffer::Append(AppendBuffer::new(partitions, limit));
        };
        MapBuffer::Grouped(SortBuffer::new(partitions, mode, limit))
    }

    /// Adds a pair emitted by `job`'s map.
    #[inline(always)]
    pub(crate) fn emit(&mut self, job: &dyn Job, key: &[u8], value: &[u8]) {
        match self {
            MapBuffer::Grouped(b) => b.emit(job, key, value),
            MapBuffer::Append(b) => b.emit(job, key, value),
            MapBuffer::Lines(l) => l.emit(key, value),
        }
    }

    /// Adds a pair whose key is a [`ShortKey`].
    #[inline(always)]
    pub(crate) fn emit_short(&mut self, job: &dyn Job, key: ShortKey, value: &[u8]) {
        match self {
            MapBuffer::Grouped(b) => b.emit_short(job, key, value),
            MapBuffer::Append(b) => b.emit(job, key.bytes().as_slice(), value),
            MapBuffer::Lines(l) => l.emit(key.bytes().as_slice(), value),
        }
    }

    /// Records held.
    pub(crate) fn records(&self) -> u64 {
        match self {
            MapBuffer::Grouped(b) => b.records,
            MapBuffer::Append(b) => b.records(),
            MapBuffer::Lines(l) => l.records,
        }
    }

    /// Whether the buffer is full and must be spilled.
    pub(crate) fn full(&self) -> bool {
        match self {
            MapBuffer::Grouped(b) => b.full(),
            MapBuffer::Append(b) => b.full(),
            MapBuffer::Lines(_) => false,
        }
    }

    /// Sorts the buffer, runs the combiner, and writes it as a map output file at `path`.
    /// Returns the records written.
    pub(crate) fn write_sorted(
        self,
        job: &dyn Job,
        path: &std::path::Path,
        counters: &mut TaskCounters,
        user: &mut UserCounters,
        written: Option<&Arc<AtomicU64>>,
    ) -> Result<u64> {
        let mut writer = MapOutputWriter::create(path)?;
        if let Some(written) = written {
            writer = writer.reporting(written.clone());
        }
        let written = match self {
            MapBuffer::Lines(_) => return Err(Error::Job("a map-only attempt writes no map output file".into())),
            MapBuffer::Append(mut b) => {
                b.sort();
                b.write(&mut writer)?
            }
            MapBuffer::Grouped(mut b) => {
                if let Some(e) = b.error.take() {
                    return Err(e);
                }
                let keys = b.sort();
                if b.mode == Mode::AllValues {
                    counters.combine_input_records += b.combine_input + b.records;
                    let mut combined = guarded(|| b.combine(job, &keys, user))?;
                    counters.combine_output_records += combined.records();
                    combined.sort();
                    combined.write(&mut writer)?
                } else {
                    counters.combine_input_records += b.combine_input;
                    counters.combine_output_records += b.records;
                    b.write(&keys, &mut writer)?
                }
            }
        };
        writer.finish()?;
        counters.spilled_records += written;
        Ok(written)
    }
}

/// Makes room in `v` for `additional` more elements: by doubling, as `Vec` does, but not past
/// `free` bytes beyond what is needed.
#[inline]
pub(crate) fn make_room<T>(v: &mut Vec<T>, additional: usize, free: usize) {
    if v.capacity() - v.len() < additional {
        let size = std::mem::size_of::<T>().max(1);
        let doubled = v.capacity().max(additional).max(8);
        v.reserve_exact(doubled.min(free / size).max(additional));
    }
}

/// How a [`SortBuffer`] combines a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The job's fold is the sum of `u64` counts ([`Job::sums_counts`]), done here.
    Sum,
    /// [`Job::fold`] into one value per key.
    Fold,
    /// [`Job::combine`] over batches of values.
    AllValues,
}

/// Keys of up to this many bytes are compared as two integers kept in their table entry.
const INLINE: usize = 16;
/// With the all-values combiner, a key's values are combined once it holds this many.
const COMBINE_EVERY: u32 = 64;

/// Intermediate pairs of one map task with a combiner, grouped by key in a hash table as they
/// are emitted, so that only the distinct keys are sorted. Keys live in one arena. With a
/// folding combiner each key has one value, right after it in the arena, into which every
/// value emitted for it is folded in place. With the all-values combiner each key keeps its
/// values in a buffer of its own, combined whenever it holds `COMBINE_EVERY` of them (then
/// whenever their count doubles), as Hadoop runs a combiner zero or more times.
pub(crate) struct SortBuffer {
    partitions: u32,
    mode: Mode,
    data: Vec<u8>,
    /// The distinct keys. An entry holds its key's length and two integers that, with the
    /// length, identify a key of up to `INLINE` bytes, so finding such a key reads no arena.
    table: KeyTable,
    /// The hasher of keys longer than `INLINE` bytes.
    long: foldhash::fast::FixedState,
    /// Records held.
    records: u64,
    /// Records given to eager combines, or folded.
    combine_input: u64,
    /// The first error of an eager combine or a fold.
    error: Option<Error>,
    /// With the all-values combiner: each key's own values (`Entry::local` indexes it).
    locals: Vec<Local>,
    /// Bytes held in the keys' own value buffers (with the all-values combiner).
    local_bytes: usize,
    /// The accumulator a fold works on.
    acc: Vec<u8>,
    /// Bytes the buffer may hold (`--sort-buffer`): its arena grows by doubling, but not past it.
    limit: usize,
}

/// A distinct key: `data[offset..][..key_len]`, and with a fold its value right after it.
#[derive(Clone, Copy)]
struct Entry {
    /// [`key_words`] of the key.
    words: [u64; 2],
    offset: usize,
    key_len: u32,
    partition: u32,
    /// By mode: the key's count (`Sum`), its value's length (`Fold`: the value is in the arena
    /// right after the key), or the index of its values in `locals` (`AllValues`).
    value: u64,
}

impl Entry {
    #[inline]
    fn is(&self, key: &[u8], words: [u64; 2], data: &[u8]) -> bool {
        self.key_len as usize == key.len()
            && self.words == words
            && (key.len() <= INLINE || data[self.offset..self.offset + key.len()] == *key)
    }

    fn key<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        &data[self.offset..self.offset + self.key_len as usize]
    }

    /// With a fold: the length of the key's value.
    fn value_len(&self) -> usize {
        self.value as usize
    }

    /// With a fold: the key's value.
    fn value<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        let start = self.offset + self.key_len as usize;
        &data[start..start + self.value_len()]
    }

    /// With the all-values combiner: the index of the key's values in `locals`.
    fn local(&self) -> usize {
        self.value as usize
    }
}

/// `Entry::key_len` of an empty slot.
const EMPTY: u32 = u32::MAX;

/// The distinct keys: open addressing with linear probing over a power-of-two array of
/// entries, at most half full, so a lookup usually reads one entry.
struct KeyTable {
    slots: Vec<Entry>,
    len: usize,
}

impl KeyTable {
    const EMPTY_ENTRY: Entry = Entry { words: [0, 0], offset: 0, key_len: EMPTY, partition: 0, value: 0 };

    fn new() -> KeyTable {
        KeyTable { slots: vec![Self::EMPTY_ENTRY; 16], len: 0 }
    }

    /// The slot of `key` (`Ok`), or the empty slot where it goes (`Err`).
    #[inline(always)]
    fn find(&self, hash: u64, key: &[u8], words: [u64; 2], data: &[u8]) -> std::result::Result<usize, usize> {
        self.probe(hash, |e| e.is(key, words, data))
    }

    /// The slot of a short key (`Ok`), or the empty slot where it goes (`Err`): integers
    /// compared, no arena read.
    #[inline(always)]
    fn find_short(&self, hash: u64, key: ShortKey) -> std::result::Result<usize, usize> {
        self.probe(hash, |e| e.key_len as usize == key.len() && e.words == key.words())
    }

    /// Linear probing from `hash`: the first slot whose entry `is` the key (`Ok`), or the
    /// first empty slot (`Err`).
    #[inline(always)]
    fn probe(&self, hash: u64, is: impl Fn(&Entry) -> bool) -> std::result::Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let e = &self.slots[i];
            if e.key_len == EMPTY {
                return Err(i);
            }
            if is(e) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Doubles the table, placing every entry again by `hash`.
    fn grow(&mut self, hash: impl Fn(&Entry) -> u64) {
        let doubled = vec![Self::EMPTY_ENTRY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        let mask = self.slots.len() - 1;
        for e in old.into_iter().filter(|e| e.key_len != EMPTY) {
            let mut i = hash(&e) as usize & mask;
            while self.slots[i].key_len != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = e;
        }
    }
}

/// Two integers that, with its length, identify a key of up to 16 bytes: its bytes as
/// [`ShortKey`] holds them (little-endian, zero-padded), so that a key emitted as bytes and
/// the same key emitted as a [`ShortKey`] are one key. For a longer key: its first 16 bytes.
#[inline(always)]
fn key_words(key: &[u8]) -> [u64; 2] {
    padded_words(key)
}

/// The hash of a key of up to `INLINE` bytes: of its words and length (a folded multiply, as
/// foldhash's).
#[inline(always)]
fn short_hash(words: [u64; 2], len: usize) -> u64 {
    let product =
        u128::from(words[0] ^ 0x243f_6a88_85a3_08d3) * u128::from(words[1] ^ 0x1319_8a2e_0370_7344 ^ len as u64);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The hash of a key: [`short_hash`] up to `INLINE` bytes, of its bytes beyond.
#[inline]
fn key_hash(key: &[u8], words: [u64; 2], long: &foldhash::fast::FixedState) -> u64 {
    if key.len() <= INLINE { short_hash(words, key.len()) } else { std::hash::BuildHasher::hash_one(long, key) }
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

impl SortBuffer {
    fn new(partitions: u32, mode: Mode, limit: u64) -> SortBuffer {
        SortBuffer {
            partitions,
            mode,
            data: Vec::new(),
            table: KeyTable::new(),
            long: foldhash::fast::FixedState::with_seed(0),
            records: 0,
            combine_input: 0,
            error: None,
            locals: Vec::new(),
            local_bytes: 0,
            acc: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }

    /// Adds a pair: a key already present takes the value (summed, folded or kept); a new key
    /// is inserted. Finding a key and adding a count is the hot path of a counting job, inlined
    /// into its map; the rest is out of line.
    #[inline(always)]
    fn emit(&mut self, job: &dyn Job, key: &[u8], value: &[u8]) {
        let words = key_words(key);
        let hash = key_hash(key, words, &self.long);
        match self.table.find(hash, key, words, &self.data) {
            Ok(slot) if self.mode == Mode::Sum => self.add_count(slot, value),
            Ok(slot) => self.combine_into(job, slot, key, value),
            Err(slot) => self.insert(job, slot, words, key, value),
        }
    }

    /// [`SortBuffer::emit`] of a short key: found by its integers, its bytes made only when it
    /// is new.
    #[inline(always)]
    fn emit_short(&mut self, job: &dyn Job, key: ShortKey, value: &[u8]) {
        let hash = short_hash(key.words(), key.len());
        match self.table.find_short(hash, key) {
            Ok(slot) if self.mode == Mode::Sum => self.add_count(slot, value),
            Ok(slot) => self.combine_into(job, slot, key.bytes().as_slice(), value),
            Err(slot) => self.insert(job, slot, key.words(), key.bytes().as_slice(), value),
        }
    }

    /// Adds the count `value` (a `u64`, big-endian) to the count of the key in `slot`.
    #[inline(always)]
    fn add_count(&mut self, slot: usize, value: &[u8]) {
        self.combine_input += 1;
        match <[u8; 8]>::try_from(value) {
            Ok(v) => {
                let e = &mut self.table.slots[slot];
                e.value = e.value.saturating_add(u64::from_be_bytes(v));
            }
            Err(_) => self.count_error(value),
        }
    }

    /// Keeps the error of a count that is not 8 bytes long.
    #[inline(never)]
    fn count_error(&mut self, value: &[u8]) {
        let e = Error::Job(format!("a count value has {} bytes, not 8", value.len()));
        self.error.get_or_insert(e);
    }

    /// Gives `value` to the key of `entry`, present and folded or combined: folded into its
    /// value, or kept with its values.
    #[inline(never)]
    fn combine_into(&mut self, job: &dyn Job, slot: usize, key: &[u8], value: &[u8]) {
        let entry = self.table.slots[slot];
        match self.mode {
            Mode::Sum => self.add_count(slot, value),
            Mode::Fold => self.fold(job, slot, key, value),
            Mode::AllValues => self.push_local(job, entry, value),
        }
    }

    /// Inserts a key not yet present, with its partition and its first value.
    #[inline(never)]
    fn insert(&mut self, job: &dyn Job, slot: usize, words: [u64; 2], key: &[u8], value: &[u8]) {
        let grow = key.len() + if self.mode == Mode::Fold { value.len() } else { 0 };
        if self.data.capacity() - self.data.len() < grow {
            let free = self.free();
            make_room(&mut self.data, grow, free);
        }
        let offset = self.data.len();
        self.data.extend_from_slice(key);
        let partition = job.partition(key, self.partitions).min(self.partitions - 1);
        let mut entry = Entry { words, offset, key_len: key.len() as u32, partition, value: 0 };
        match self.mode {
            Mode::Sum => {
                self.combine_input += 1;
                match <[u8; 8]>::try_from(value) {
                    Ok(v) => entry.value = u64::from_be_bytes(v),
                    Err(_) => self.count_error(value),
                }
            }
            Mode::Fold => {
                // The key's first value is its accumulator, right after the key.
                self.data.extend_from_slice(value);
                entry.value = value.len() as u64;
                self.combine_input += 1;
            }
            Mode::AllValues => {
                let mut values = Vec::new();
                push_value(&mut values, value);
                self.local_bytes += values.capacity();
                self.locals.push(Local { values, count: 1, combine_at: COMBINE_EVERY });
                entry.value = (self.locals.len() - 1) as u64;
            }
        }
        self.records += 1;
        self.table.slots[slot] = entry;
        self.table.len += 1;
        if self.table.len * 2 > self.table.slots.len() {
            // Rare: the table doubles.
            let (data, long) = (&self.data, &self.long);
            self.table.grow(|e| key_hash(e.key(data), e.words, long));
        }
    }

    /// Folds `value` into the value of the key of `entry` (`key`): in place when the
    /// accumulator keeps its length, else the key and its value move to the end of the arena.
    fn fold(&mut self, job: &dyn Job, slot: usize, key: &[u8], value: &[u8]) {
        let entry = self.table.slots[slot];
        let offset = entry.offset + entry.key_len as usize;
        let len = entry.value_len();
        self.acc.clear();
        self.acc.extend_from_slice(&self.data[offset..offset + len]);
        if let Err(e) = job.fold(key, &mut self.acc, value) {
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
        let e = &mut self.table.slots[slot];
        e.offset = key_offset;
        e.value = self.acc.len() as u64;
    }

    /// Adds a value to a key's own values, combining them when there are enough.
    fn push_local(&mut self, job: &dyn Job, entry: Entry, value: &[u8]) {
        self.records += 1;
        let local = &mut self.locals[entry.local()];
        let before = local.values.capacity();
        push_value(&mut local.values, value);
        self.local_bytes += local.values.capacity() - before;
        local.count += 1;
        if local.count >= local.combine_at {
            self.combine_local(job, entry);
        }
    }

    /// Combines the values a key holds into fewer.
    fn combine_local(&mut self, job: &dyn Job, entry: Entry) {
        let key = entry.key(&self.data);
        let local = std::mem::take(&mut self.locals[entry.local()].values);
        self.local_bytes -= local.capacity();
        let mut combined = Vec::new();
        let mut count = 0;
        let mut source = LocalValues { rest: &local };
        let mut values = Values::new(&mut source);
        let result = guarded(|| {
            job.combine(key, &mut values, &mut |v| {
                push_value(&mut combined, v);
                count += 1;
            })
        });
        if let Err(e) = result {
            self.error.get_or_insert(e);
        }
        let local = &mut self.locals[entry.local()];
        self.combine_input += u64::from(local.count);
        self.records = self.records - u64::from(local.count) + u64::from(count);
        self.local_bytes += combined.capacity();
        local.values = combined;
        local.count = count;
        local.combine_at = COMBINE_EVERY.max(count.saturating_mul(2));
    }

    /// Memory held, counted by capacity (what the allocator gave), as the sort buffer limits
    /// it, with the list of the keys that sorting makes.
    fn memory(&self) -> usize {
        self.data.capacity()
            + self.table.slots.capacity() * std::mem::size_of::<Entry>()
            + self.table.len * std::mem::size_of::<Entry>()
            + self.locals.capacity() * std::mem::size_of::<Local>()
            + self.local_bytes
    }

    /// Bytes the buffer may still take.
    fn free(&self) -> usize {
        self.limit.saturating_sub(self.memory())
    }

    /// Whether the buffer is full: it holds its limit, or its hash table doubles at its next
    /// key and that (old and new tables side by side while it rehashes) would pass the limit.
    fn full(&self) -> bool {
        let memory = self.memory();
        let grows = (self.table.len + 1) * 2 > self.table.slots.len();
        memory >= self.limit
            || (grows && memory + self.table.slots.len() * 2 * std::mem::size_of::<Entry>() > self.limit)
    }

    /// The distinct keys sorted by (partition, key); the hash table is no longer needed.
    fn sort(&mut self) -> Vec<Entry> {
        let slots = std::mem::replace(&mut self.table, KeyTable::new()).slots;
        let mut keys: Vec<Entry> = slots.into_iter().filter(|e| e.key_len != EMPTY).collect();
        let data = &self.data;
        keys.sort_unstable_by(|a, b| (a.partition, a.key(data)).cmp(&(b.partition, b.key(data))));
        keys
    }

    /// Runs the combiner over the sorted keys; returns its output, not yet sorted.
    fn combine(&self, job: &dyn Job, keys: &[Entry], counters: &mut UserCounters) -> Result<AppendBuffer> {
        let mut combined = AppendBuffer::new(self.partitions, u64::MAX);
        let mut input = SortedGroups { buffer: self, keys, next: 0, local: LocalValues { rest: &[] } };
        job.combine_sorted(&mut input, &mut |k, v| combined.emit(job, k, v), counters)?;
        Ok(combined)
    }

    /// Writes the sorted keys and their folded values as a map output file. Returns the
    /// number of records.
    fn write(&self, keys: &[Entry], out: &mut MapOutputWriter) -> Result<u64> {
        let mut keys = keys.iter().peekable();
        for p in 0..self.partitions {
            out.start_partition();
            while let Some(e) = keys.next_if(|e| e.partition == p) {
                if self.mode == Mode::Sum {
                    out.write(e.key(&self.data), &e.value.to_be_bytes())?;
                } else {
                    out.write(e.key(&self.data), e.value(&self.data))?;
                }
            }
        }
        Ok(self.records)
    }
}

/// The sorted keys and their values, for the combiner.
struct SortedGroups<'a> {
    buffer: &'a SortBuffer,
    keys: &'a [Entry],
    /// Index of the next key to yield.
    next: usize,
    /// The current key's values.
    local: LocalValues<'a>,
}

impl SortedPairs for SortedGroups<'_> {
    fn next_key(&mut self) -> Option<&[u8]> {
        let buffer = self.buffer;
        let e = self.keys.get(self.next)?;
        self.next += 1;
        self.local = LocalValues { rest: &buffer.locals[e.local()].values };
        Some(e.key(&buffer.data))
    }

    fn next_value(&mut self) -> Option<&[u8]> {
        self.local.next_value()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::data::mapout::SegmentReader;
    use crate::job::{Codec, MapContext, Record, ReduceContext};

    /// How a test job combines: not at all, by summing counts in the buffer, by a fold of
    /// decimal sums (whose length changes, so folded values move), or with the all-values
    /// combiner.
    #[derive(Clone, Copy, Debug)]
    enum Kind {
        None,
        Sum,
        Fold,
        AllValues,
    }

    struct Test(Kind);

    fn decimal(bytes: &[u8]) -> u64 {
        std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
    }

    impl Job for Test {
        fn map(&self, _: Record<'_>, _: &mut MapContext<'_>) -> Result<()> {
            Ok(())
        }
        fn reduce(&self, _: &[u8], _: &mut Values<'_>, _: &mut ReduceContext<'_>) -> Result<()> {
            Ok(())
        }
        fn sums_counts(&self) -> bool {
            matches!(self.0, Kind::Sum)
        }
        fn folds(&self) -> bool {
            matches!(self.0, Kind::Fold)
        }
        fn has_combiner(&self) -> bool {
            matches!(self.0, Kind::AllValues)
        }
        fn fold(&self, _: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<()> {
            let total = decimal(acc) + decimal(value);
            *acc = total.to_string().into_bytes();
            Ok(())
        }
        fn combine(&self, _: &[u8], values: &mut Values<'_>, out: &mut dyn FnMut(&[u8])) -> Result<()> {
            let mut total = 0;
            while let Some(v) = values.next_value() {
                total += decimal(v);
            }
            out(total.to_string().as_bytes());
            Ok(())
        }
    }

    /// Keys where the inline comparison could go wrong: empty, 1 to 3 bytes whose first,
    /// middle and last bytes agree, lengths 4, 7, 8, 15, 16, 17 and longer, keys sharing their
    /// first and last 8 bytes, NUL bytes (zero padding), and bytes above 0x7f.
    fn key_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let piece = prop::sample::select(vec![
            &b""[..],
            b"a",
            b"b",
            b"\0",
            b"\xff",
            b"ab",
            b"aab",
            b"abb",
            b"abcd",
            b"abcdefg",
            b"abcdefgh",
            b"abcdefghijklmno",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopq",
        ]);
        prop::collection::vec(piece, 0..4).prop_map(|pieces| pieces.concat())
    }

    /// The values a model expects for a key, from the values emitted for it.
    type ValuesOf = dyn Fn(&[u64]) -> Vec<Vec<u8>>;

    /// Emits `pairs` into a fresh buffer of `job` (as bytes and as short keys), writes it, and
    /// reads every partition back.
    fn round_trip(job: &Test, pairs: &[(Vec<u8>, Vec<u8>)], partitions: u32) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut buffer = MapBuffer::new(job, partitions, u64::MAX);
        // Every other pair whose key fits is emitted as a `ShortKey`: both forms of a key
        // must be one key.
        for (i, (k, v)) in pairs.iter().enumerate() {
            match ShortKey::new(k) {
                Some(short) if i % 2 == 0 => buffer.emit_short(job, short, v),
                _ => buffer.emit(job, k, v),
            }
        }
        let mut counters = TaskCounters::default();
        buffer.write_sorted(job, &path, &mut counters, &mut UserCounters::new(), None).unwrap();
        (0..partitions)
            .map(|p| {
                let mut reader = SegmentReader::open(&path, p, partitions).unwrap();
                let (mut k, mut v) = (Vec::new(), Vec::new());
                let mut records = Vec::new();
                while reader.next_into(&mut k, &mut v).unwrap() {
                    records.push((k.clone(), v.clone()));
                }
                records
            })
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Every buffer writes what a simple model says: without a combiner, every pair,
        /// sorted by (partition, key) and in emission order among equal keys; with any
        /// combiner, one value per key, the sum of its values.
        #[test]
        fn buffers_write_what_a_btreemap_model_says(
            pairs in proptest::collection::vec((key_strategy(), 0u64..1000), 0..200),
            partitions in 1u32..4,
        ) {
            let partition = |k: &[u8]| crate::job::partition::partition(k, partitions);
            let mut model: BTreeMap<(u32, Vec<u8>), Vec<u64>> = BTreeMap::new();
            for (k, v) in &pairs {
                model.entry((partition(k), k.clone())).or_default().push(*v);
            }
            let parts = |f: &ValuesOf| {
                let mut parts = vec![Vec::new(); partitions as usize];
                for ((p, k), vs) in &model {
                    parts[*p as usize].extend(f(vs).into_iter().map(|v| (k.clone(), v)));
                }
                parts
            };
            let decimal_pairs: Vec<_> = pairs.iter().map(|(k, v)| (k.clone(), v.to_string().into_bytes())).collect();
            let all = parts(&|vs| vs.iter().map(|v| v.to_string().into_bytes()).collect());
            proptest::prop_assert_eq!(round_trip(&Test(Kind::None), &decimal_pairs, partitions), all);
            let summed = parts(&|vs| vec![vs.iter().sum::<u64>().to_string().into_bytes()]);
            proptest::prop_assert_eq!(&round_trip(&Test(Kind::Fold), &decimal_pairs, partitions), &summed);
            proptest::prop_assert_eq!(&round_trip(&Test(Kind::AllValues), &decimal_pairs, partitions), &summed);
            let counts: Vec<_> = pairs.iter().map(|(k, v)| {
                let mut e = Vec::new();
                v.encode(&mut e);
                (k.clone(), e)
            }).collect();
            let encoded = parts(&|vs| {
                let mut e = Vec::new();
                vs.iter().sum::<u64>().encode(&mut e);
                vec![e]
            });
            proptest::prop_assert_eq!(round_trip(&Test(Kind::Sum), &counts, partitions), encoded);
        }
    }

    #[test]
    fn key_words_and_length_identify_short_keys() {
        let keys: [&[u8]; 8] = [b"", b"\0", b"ab", b"abb", b"aab", b"abcdefgh", b"abcdefgh\0", b"abcdefghijklmnop"];
        for a in keys {
            for b in keys {
                assert_eq!(a == b, a.len() == b.len() && key_words(a) == key_words(b), "{a:?} {b:?}");
            }
            // The table's words of a key are its short key's.
            assert_eq!(ShortKey::new(a).map(|k| k.words()), Some(key_words(a)));
        }
    }

    #[test]
    fn a_count_of_the_wrong_length_is_an_error() {
        let job = Test(Kind::Sum);
        let mut buffer = MapBuffer::new(&job, 1, u64::MAX);
        buffer.emit(&job, b"k", &1u64.to_be_bytes());
        buffer.emit(&job, b"k", b"1");
        let dir = tempfile::tempdir().unwrap();
        let result = buffer.write_sorted(
            &job,
            &dir.path().join("out"),
            &mut TaskCounters::default(),
            &mut UserCounters::new(),
            None,
        );
        assert!(matches!(&result, Err(Error::Job(m)) if m.contains("not 8")), "{result:?}");
    }
}
