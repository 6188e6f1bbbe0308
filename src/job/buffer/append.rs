//! The map side's buffer for jobs without a combiner: every pair is appended to one arena and
//! indexed by a fixed-size entry; sorting sorts the entries by (partition, key, emission
//! order), comparing the keys' first 8 bytes as an integer before their bytes. Nothing is
//! hashed and no key is looked up: such a job keeps every pair anyway.

use crate::data::mapout::MapOutputWriter;
use crate::error::Result;
use crate::job::Job;

/// Pairs in emission order, then sorted by (partition, key); equal keys keep their emission
/// order.
pub(crate) struct AppendBuffer {
    partitions: u32,
    /// Every pair's key and value, one after the other.
    data: Vec<u8>,
    entries: Vec<Pair>,
    /// Bytes the buffer may hold: its arena and its entries grow by doubling, but not past it.
    limit: usize,
    sorted: bool,
}

/// One pair: `data[offset..][..key_len]` and the value right after it. 32 bytes.
#[derive(Clone, Copy)]
struct Pair {
    /// The key's first 8 bytes, big-endian, zero-padded: comparing prefixes as integers orders
    /// keys as their bytes do, except between keys with equal prefixes.
    prefix: u64,
    offset: usize,
    key_len: u32,
    value_len: u32,
    partition: u32,
}

impl AppendBuffer {
    /// An empty buffer for `partitions` partitions, of at most `limit` bytes.
    pub(crate) fn new(partitions: u32, limit: u64) -> AppendBuffer {
        AppendBuffer {
            partitions,
            data: Vec::new(),
            entries: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            sorted: false,
        }
    }

    /// Appends a pair, with its partition from [`Job::partition`] (clamped to
    /// `partitions - 1`).
    #[inline]
    pub(crate) fn emit(&mut self, job: &dyn Job, key: &[u8], value: &[u8]) {
        let partition = job.partition(key, self.partitions).min(self.partitions - 1);
        let grow = key.len() + value.len();
        if self.data.capacity() - self.data.len() < grow {
            let free = self.free();
            crate::job::buffer::make_room(&mut self.data, grow, free);
        }
        if self.entries.capacity() == self.entries.len() {
            let free = self.free();
            crate::job::buffer::make_room(&mut self.entries, 1, free);
        }
        let offset = self.data.len();
        self.data.extend_from_slice(key);
        self.data.extend_from_slice(value);
        let (key_len, value_len) = (key.len() as u32, value.len() as u32);
        self.entries.push(Pair { prefix: prefix(key), offset, key_len, value_len, partition });
    }

    /// Pairs held.
    pub(crate) fn records(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Memory held, counted by capacity.
    pub(crate) fn memory(&self) -> usize {
        self.data.capacity() + self.entries.capacity() * std::mem::size_of::<Pair>()
    }

    fn free(&self) -> usize {
        self.limit.saturating_sub(self.memory())
    }

    /// Whether the buffer holds its limit.
    pub(crate) fn full(&self) -> bool {
        self.memory() >= self.limit
    }

    fn key(&self, p: &Pair) -> &[u8] {
        &self.data[p.offset..p.offset + p.key_len as usize]
    }

    fn value(&self, p: &Pair) -> &[u8] {
        let start = p.offset + p.key_len as usize;
        &self.data[start..start + p.value_len as usize]
    }

    /// Sorts the pairs by (partition, key, emission order).
    pub(crate) fn sort(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        // The offset grows with emission order, so it orders equal keys as they came.
        entries.sort_unstable_by(|a, b| {
            (a.partition, a.prefix)
                .cmp(&(b.partition, b.prefix))
                .then_with(|| self.key(a).cmp(self.key(b)))
                .then(a.offset.cmp(&b.offset))
        });
        self.entries = entries;
        self.sorted = true;
    }

    /// Writes the sorted pairs as the partitions of a map output file. Returns the
    /// number of records.
    pub(crate) fn write(&self, out: &mut MapOutputWriter) -> Result<u64> {
        debug_assert!(self.sorted || self.entries.is_empty());
        let mut pairs = self.entries.iter().peekable();
        for p in 0..self.partitions {
            out.start_partition();
            while let Some(pair) = pairs.next_if(|pair| pair.partition == p) {
                out.write(self.key(pair), self.value(pair))?;
            }
        }
        Ok(self.entries.len() as u64)
    }
}

/// The first 8 bytes of `key` as a big-endian integer, zero-padded.
#[inline]
fn prefix(key: &[u8]) -> u64 {
    match key.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => {
            let mut head = [0u8; 8];
            head[..key.len()].copy_from_slice(key);
            u64::from_be_bytes(head)
        }
    }
}
