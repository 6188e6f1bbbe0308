//! The map output file: one per map attempt, holding R sorted partitions and an index.
//!
//! Layout:
//! ```text
//! [partition 0 records][partition 1 records]...[index][footer]
//! record = varint(key len) varint(value len) key value
//! index  = R x (offset u64, length u64, records u64, crc32 u32)   little-endian
//! footer = R u32, magic "MRMO0001"
//! ```
//! Records of a partition are sorted by key; equal keys keep the order in which they were
//! emitted. A reader checks the magic, the partition count and each segment's CRC32, so a
//! truncated or corrupt file is an error, never silently wrong output.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"MRMO0001";
const INDEX_ENTRY: usize = 8 + 8 + 8 + 4;
const FOOTER: usize = 4 + 8;

/// Bytes of a map output file of `partitions` partitions that are not records: its index and
/// footer. A file's size less this is what its reducers read.
pub fn overhead(partitions: u32) -> u64 {
    (INDEX_ENTRY * partitions as usize + FOOTER) as u64
}

/// Where one partition lives in a map output file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Offset of the partition's first record.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// Number of records.
    pub records: u64,
    /// CRC32 of the segment's bytes.
    pub crc: u32,
}

/// Bytes a writer gathers before it writes them, and a reader reads at a time.
const CHUNK: usize = 256 * 1024;

/// Writes a map output file, one partition after another. Records are encoded into one
/// buffer, which is checksummed and written a chunk at a time.
pub struct MapOutputWriter {
    file: File,
    path: PathBuf,
    index: Vec<Segment>,
    pos: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` from here on are not yet in the current partition's checksum.
    unhashed: usize,
    current: Option<(Segment, crc32fast::Hasher)>,
    /// Where the bytes written are counted, as an attempt's progress.
    written: Option<Arc<AtomicU64>>,
}

impl MapOutputWriter {
    /// Creates the file at `path`.
    pub fn create(path: &Path) -> Result<MapOutputWriter> {
        let file = File::create(path).map_err(Error::io("cannot create map output", path))?;
        Ok(MapOutputWriter {
            file,
            path: path.to_path_buf(),
            index: Vec::new(),
            pos: 0,
            buf: Vec::with_capacity(CHUNK),
            unhashed: 0,
            current: None,
            written: None,
        })
    }

    /// Counts the bytes it writes into `written` as it goes.
    pub fn reporting(mut self, written: Arc<AtomicU64>) -> MapOutputWriter {
        self.written = Some(written);
        self
    }

    /// Starts the next partition; partitions must be started in order, none skipped.
    pub fn start_partition(&mut self) {
        self.finish_partition();
        let segment = Segment { offset: self.pos, len: 0, records: 0, crc: 0 };
        self.current = Some((segment, crc32fast::Hasher::new()));
    }

    /// Adds the bytes not yet checksummed to the current partition's checksum.
    fn hash_pending(&mut self) {
        if let Some((_, hasher)) = self.current.as_mut() {
            hasher.update(&self.buf[self.unhashed..]);
        }
        self.unhashed = self.buf.len();
    }

    fn finish_partition(&mut self) {
        self.hash_pending();
        if let Some((mut segment, hasher)) = self.current.take() {
            segment.len = self.pos - segment.offset;
            segment.crc = hasher.finalize();
            self.index.push(segment);
        }
    }

    /// Writes out the buffer.
    fn flush_buf(&mut self) -> Result<()> {
        self.hash_pending();
        self.file.write_all(&self.buf).map_err(Error::io("cannot write map output", &self.path))?;
        if let Some(written) = &self.written {
            written.fetch_add(self.buf.len() as u64, Ordering::Relaxed);
        }
        self.buf.clear();
        self.unhashed = 0;
        Ok(())
    }

    /// Appends a record to the current partition.
    #[inline]
    pub fn write(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut head = [0u8; 20];
        let mut n = encode_varint(key.len() as u64, &mut head);
        n += encode_varint(value.len() as u64, &mut head[n..]);
        let (segment, _) = self.current.as_mut().expect("start_partition is called before write");
        segment.records += 1;
        self.buf.extend_from_slice(&head[..n]);
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        self.pos += (n + key.len() + value.len()) as u64;
        if self.buf.len() >= CHUNK {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Writes the index and footer, flushes and syncs. Returns the file's size.
    pub fn finish(mut self) -> Result<u64> {
        self.finish_partition();
        let tail = index_and_footer(&self.index);
        self.buf.extend_from_slice(&tail);
        self.flush_buf()?;
        self.file.sync_all().map_err(Error::io("cannot sync map output", &self.path))?;
        Ok(self.pos + tail.len() as u64)
    }
}

/// The index and footer that end a map output file whose partitions are `segments`. A file of
/// one partition's raw bytes followed by `index_and_footer(&[segment])` (with offset 0) is a
/// valid map output of one partition: that is how a fetched partition is stored.
pub fn index_and_footer(segments: &[Segment]) -> Vec<u8> {
    let mut tail = Vec::with_capacity(segments.len() * INDEX_ENTRY + FOOTER);
    for s in segments {
        tail.extend_from_slice(&s.offset.to_le_bytes());
        tail.extend_from_slice(&s.len.to_le_bytes());
        tail.extend_from_slice(&s.records.to_le_bytes());
        tail.extend_from_slice(&s.crc.to_le_bytes());
    }
    tail.extend_from_slice(&(segments.len() as u32).to_le_bytes());
    tail.extend_from_slice(MAGIC);
    tail
}

fn encode_varint(mut v: u64, out: &mut [u8]) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        out[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    out[i] = v as u8;
    i + 1
}

/// Reads the index of a map output file and checks that it has `partitions` partitions.
pub fn read_index(path: &Path, partitions: u32) -> Result<Vec<Segment>> {
    let corrupt = |reason: String| Error::CorruptMapOutput { path: path.to_path_buf(), reason };
    let mut file = File::open(path).map_err(Error::io("cannot read map output", path))?;
    let len = file.metadata().map_err(Error::io("cannot read map output", path))?.len();
    if len < FOOTER as u64 {
        return Err(corrupt(format!("{len} bytes is too short for a footer")));
    }
    let mut footer = [0u8; FOOTER];
    file.seek(SeekFrom::Start(len - FOOTER as u64))
        .and_then(|_| file.read_exact(&mut footer))
        .map_err(Error::io("cannot read map output", path))?;
    if &footer[4..] != MAGIC {
        return Err(corrupt("bad magic in footer (truncated or not a map output)".into()));
    }
    let count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes"));
    if count != partitions {
        return Err(corrupt(format!("has {count} partitions, the job has {partitions}")));
    }
    let index_len = count as u64 * INDEX_ENTRY as u64;
    if len < FOOTER as u64 + index_len {
        return Err(corrupt("index is truncated".into()));
    }
    let body_len = len - FOOTER as u64 - index_len;
    let mut raw = vec![0u8; index_len as usize];
    file.seek(SeekFrom::Start(body_len))
        .and_then(|_| file.read_exact(&mut raw))
        .map_err(Error::io("cannot read map output", path))?;
    let mut segments = Vec::with_capacity(count as usize);
    let mut expected_offset = 0;
    for entry in raw.chunks_exact(INDEX_ENTRY) {
        let u64_at = |i: usize| u64::from_le_bytes(entry[i..i + 8].try_into().expect("8 bytes"));
        let segment = Segment {
            offset: u64_at(0),
            len: u64_at(8),
            records: u64_at(16),
            crc: u32::from_le_bytes(entry[24..28].try_into().expect("4 bytes")),
        };
        if segment.offset != expected_offset {
            return Err(corrupt(format!("index entry at offset {} is out of place", segment.offset)));
        }
        // Lengths near 2^64 could wrap around to a sum that covers the file.
        expected_offset = expected_offset
            .checked_add(segment.len)
            .ok_or_else(|| corrupt(format!("segment length {} overflows", segment.len)))?;
        segments.push(segment);
    }
    if expected_offset != body_len {
        return Err(corrupt("index does not cover the file".into()));
    }
    Ok(segments)
}

/// Reads the records of one partition of one map output file, in order, checking its CRC.
/// It reads the segment a chunk at a time, checksums each chunk as it is read, and decodes
/// records from the chunk.
pub struct SegmentReader {
    file: std::io::Take<File>,
    path: PathBuf,
    segment: Segment,
    buf: Vec<u8>,
    /// Where the next record starts in `buf`.
    at: usize,
    read: u64,
    hasher: crc32fast::Hasher,
}

impl SegmentReader {
    /// Opens partition `partition` of the map output at `path`.
    pub fn open(path: &Path, partition: u32, partitions: u32) -> Result<SegmentReader> {
        let segment = read_index(path, partitions)?.get(partition as usize).copied().ok_or_else(|| {
            Error::CorruptMapOutput { path: path.to_path_buf(), reason: format!("has no partition {partition}") }
        })?;
        let mut file = File::open(path).map_err(Error::io("cannot read map output", path))?;
        file.seek(SeekFrom::Start(segment.offset)).map_err(Error::io("cannot read map output", path))?;
        Ok(SegmentReader {
            file: file.take(segment.len),
            path: path.to_path_buf(),
            segment,
            buf: Vec::new(),
            at: 0,
            read: 0,
            hasher: crc32fast::Hasher::new(),
        })
    }

    /// The segment this reader reads.
    pub fn segment(&self) -> Segment {
        self.segment
    }

    /// Makes `buf[at..]` hold at least `need` bytes, reading more of the segment (a chunk at
    /// least) if needed. False if the segment ends first.
    fn fill(&mut self, need: usize) -> Result<bool> {
        if self.buf.len() - self.at >= need {
            return Ok(true);
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let start = self.buf.len();
        let want = need.max(CHUNK) - start;
        (&mut self.file)
            .take(want as u64)
            .read_to_end(&mut self.buf)
            .map_err(Error::io("cannot read map output", &self.path))?;
        self.hasher.update(&self.buf[start..]);
        Ok(self.buf.len() >= need)
    }

    /// Reads the next record into `key` and `value` (cleared first). False at the end.
    #[inline]
    pub fn next_into(&mut self, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<bool> {
        if self.read >= self.segment.records {
            return self.end();
        }
        let key_len = self.varint()?;
        let value_len = self.varint()?;
        // Checked before allocating: a corrupt length must not ask for more than the segment.
        let len = match key_len.checked_add(value_len) {
            Some(len) if len <= self.segment.len => len as usize,
            _ => return Err(self.corrupt(format!("record length {key_len} + {value_len} exceeds its segment"))),
        };
        if !self.fill(len)? {
            return Err(self.corrupt("segment ends inside a record".into()));
        }
        let (k, rest) = self.buf[self.at..self.at + len].split_at(key_len as usize);
        key.clear();
        key.extend_from_slice(k);
        value.clear();
        value.extend_from_slice(rest);
        self.at += len;
        self.read += 1;
        Ok(true)
    }

    /// After the last record: checks that nothing follows it and the checksum, once.
    fn end(&mut self) -> Result<bool> {
        if self.read > self.segment.records {
            return Ok(false);
        }
        // Read the rest so that the checksum covers the whole segment.
        let rest = self.buf.len() - self.at;
        let start = self.buf.len();
        self.file.read_to_end(&mut self.buf).map_err(Error::io("cannot read map output", &self.path))?;
        self.hasher.update(&self.buf[start..]);
        let crc = std::mem::take(&mut self.hasher).finalize();
        if crc != self.segment.crc || rest > 0 || self.buf.len() > start {
            return Err(self.corrupt("checksum mismatch".into()));
        }
        self.buf = Vec::new();
        self.at = 0;
        self.read += 1; // later calls return false without checking again
        Ok(false)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // A varint has at most 10 bytes; fewer may be left near the end of the segment.
        self.fill(10)?;
        let mut v = 0u64;
        for (i, shift) in (0..64).step_by(7).enumerate() {
            let Some(&b) = self.buf.get(self.at + i) else {
                return Err(self.corrupt("segment ends inside a record".into()));
            };
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                self.at += i + 1;
                return Ok(v);
            }
        }
        Err(self.corrupt("varint too long".into()))
    }

    fn corrupt(&self, reason: String) -> Error {
        Error::CorruptMapOutput { path: self.path.clone(), reason }
    }
}

/// K-way merge of sorted segments. Among equal keys, records of earlier segments come first,
/// so the merged order is deterministic.
pub struct Merger {
    runs: Vec<SegmentReader>,
    values: Vec<Vec<u8>>,
    heap: BinaryHeap<Head>,
    key: Vec<u8>,
    value: Vec<u8>,
}

struct Head {
    key: Vec<u8>,
    run: usize,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.run == other.run
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    // BinaryHeap is a max-heap: reverse, so the smallest (key, run) is on top.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&other.key, other.run).cmp(&(&self.key, self.run))
    }
}

impl Merger {
    /// Starts a merge of `runs`.
    pub fn new(mut runs: Vec<SegmentReader>) -> Result<Merger> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        let mut values = Vec::with_capacity(runs.len());
        for (i, run) in runs.iter_mut().enumerate() {
            let mut key = Vec::new();
            let mut value = Vec::new();
            if run.next_into(&mut key, &mut value)? {
                heap.push(Head { key, run: i });
            }
            values.push(value);
        }
        Ok(Merger { runs, values, heap, key: Vec::new(), value: Vec::new() })
    }

    /// Moves to the next record in merged order. False when every run is exhausted.
    pub fn advance(&mut self) -> Result<bool> {
        let Some(mut head) = self.heap.peek_mut() else {
            return Ok(false);
        };
        // The head's record becomes the current one, and its run's next record takes its
        // place in the heap (one sift instead of a pop and a push).
        let run = head.run;
        std::mem::swap(&mut self.key, &mut head.key);
        std::mem::swap(&mut self.value, &mut self.values[run]);
        if !self.runs[run].next_into(&mut head.key, &mut self.values[run])? {
            std::collections::binary_heap::PeekMut::pop(head);
        }
        Ok(true)
    }

    /// The key of the current record.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The value of the current record.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The key of the record after the current one, if any.
    pub fn peek_key(&self) -> Option<&[u8]> {
        self.heap.peek().map(|h| h.key.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(path: &Path, parts: &[Vec<(&str, &str)>]) {
        let mut w = MapOutputWriter::create(path).unwrap();
        for part in parts {
            w.start_partition();
            for (k, v) in part {
                w.write(k.as_bytes(), v.as_bytes()).unwrap();
            }
        }
        w.finish().unwrap();
    }

    #[test]
    fn a_reporting_writer_counts_every_byte_it_writes_as_it_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let written = Arc::new(AtomicU64::new(0));
        let mut w = MapOutputWriter::create(&path).unwrap().reporting(written.clone());
        w.start_partition();
        let value = [b'v'; 1000];
        // More than a chunk: progress shows before the file is finished.
        for i in 0..(2 * CHUNK / value.len()) {
            w.write(format!("key{i:06}").as_bytes(), &value).unwrap();
        }
        let before_finish = written.load(Ordering::Relaxed);
        assert!(before_finish >= CHUNK as u64, "{before_finish}");
        let size = w.finish().unwrap();
        assert_eq!(written.load(Ordering::Relaxed), size);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    }

    #[test]
    fn round_trip_and_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_file(&a, &[vec![("x", "1")], vec![("apple", "a1"), ("pear", "a2"), ("pear", "a3")]]);
        write_file(&b, &[vec![], vec![("apple", "b1"), ("fig", "b2"), ("pear", "b3")]]);
        let runs = vec![SegmentReader::open(&a, 1, 2).unwrap(), SegmentReader::open(&b, 1, 2).unwrap()];
        let mut m = Merger::new(runs).unwrap();
        let mut got = Vec::new();
        while m.advance().unwrap() {
            got.push(format!("{}={}", String::from_utf8_lossy(m.key()), String::from_utf8_lossy(m.value())));
        }
        assert_eq!(got, ["apple=a1", "apple=b1", "fig=b2", "pear=a2", "pear=a3", "pear=b3"]);
    }

    #[test]
    fn corruption_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write_file(&a, &[vec![("key", "value"), ("key2", "value2")]]);
        let mut bytes = std::fs::read(&a).unwrap();
        bytes[3] ^= 0x01;
        std::fs::write(&a, &bytes).unwrap();
        let mut r = SegmentReader::open(&a, 0, 1).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let mut result = Ok(true);
        while let Ok(true) = result {
            result = r.next_into(&mut k, &mut v);
        }
        assert!(matches!(result, Err(Error::CorruptMapOutput { .. })), "{result:?}");
        // Truncation hits the footer check.
        std::fs::write(&a, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(read_index(&a, 1), Err(Error::CorruptMapOutput { .. })));
        assert!(matches!(read_index(&a, 2), Err(Error::CorruptMapOutput { .. })));
    }

    /// Found by the `mapout_read` fuzz target: opening a partition the file does not have
    /// indexed past the end of the index and panicked.
    #[test]
    fn a_partition_the_file_does_not_have_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        write_file(&a, &[vec![("apple", "1"), ("pear", "22")]]);
        assert!(matches!(SegmentReader::open(&a, 1, 1), Err(Error::CorruptMapOutput { .. })));
    }

    fn varint(v: u64) -> Vec<u8> {
        let mut buf = [0u8; 10];
        let n = encode_varint(v, &mut buf);
        buf[..n].to_vec()
    }

    /// Lengths near 2^64 that wrapped around: an index whose segment lengths sum past 2^64
    /// back to the body's length, and a record whose key and value lengths (2^63 each) sum
    /// to 0. Both were accepted in release builds; the second then asked for 2^63 bytes.
    #[test]
    fn lengths_that_wrap_around_are_corrupt_and_allocate_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let body = [varint(1 << 63), varint(1 << 63)].concat();
        let len = body.len() as u64;
        let segment = |offset, len| Segment { offset, len, records: 1, crc: crc32fast::hash(&body) };
        let wrapped = [segment(0, u64::MAX), segment(u64::MAX, len + 1)];
        std::fs::write(&a, [body.clone(), index_and_footer(&wrapped)].concat()).unwrap();
        assert!(matches!(read_index(&a, 2), Err(Error::CorruptMapOutput { .. })));

        std::fs::write(&a, [body.clone(), index_and_footer(&[segment(0, len)])].concat()).unwrap();
        let mut r = SegmentReader::open(&a, 0, 1).unwrap();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        assert!(matches!(r.next_into(&mut k, &mut v), Err(Error::CorruptMapOutput { .. })));
        assert!(k.capacity() == 0 && v.capacity() == 0);
    }
}
