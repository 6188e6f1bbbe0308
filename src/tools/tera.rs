//! TeraGen and TeraValidate: deterministic 100-byte records for the sort benchmark, and the
//! check that a sort's output is globally ordered and holds the same records.
//!
//! A record is `KEY(10) SPACE SPACE ROW(32 hex) SPACE SPACE FILLER(52) CR LF`, with a key of
//! printable ASCII derived from the row number and a seed. The checksum of a set of records
//! is the wrapping sum of their CRC32s: it does not depend on their order, so a sort's output
//! has the checksum of its input.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::data::input::TERA_RECORD;
use crate::error::{Error, Result};

const RECORD: usize = TERA_RECORD as usize;

/// Writes record `row` into `out`.
pub fn record(row: u64, seed: u64, out: &mut [u8; RECORD]) {
    let hash = xxhash_rust::xxh3::xxh3_128_with_seed(&row.to_le_bytes(), seed).to_le_bytes();
    for (i, b) in hash[..10].iter().enumerate() {
        out[i] = b' ' + b % 95;
    }
    out[10..12].copy_from_slice(b"  ");
    let hex = format!("{row:032X}");
    out[12..44].copy_from_slice(hex.as_bytes());
    out[44..46].copy_from_slice(b"  ");
    for (i, byte) in out[46..98].iter_mut().enumerate() {
        *byte = b'A' + ((row as usize + i) % 26) as u8;
    }
    out[98..100].copy_from_slice(b"\r\n");
}

/// What TeraGen wrote or TeraValidate read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    /// Number of records.
    pub records: u64,
    /// Wrapping sum of the records' CRC32s.
    pub sum: u64,
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} records, checksum {:016x}", self.records, self.sum)
    }
}

/// Writes `records` records into `files` files `DIR/part-m-NNNNN`, in parallel, and returns
/// their checksum. `dir` must exist and be empty.
pub fn generate(dir: &Path, records: u64, files: u32, seed: u64) -> Result<Checksum> {
    let files = u64::from(files.max(1));
    let results: Vec<Result<Checksum>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..files)
            .map(|f| {
                let (first, last) = (records * f / files, records * (f + 1) / files);
                let path = dir.join(format!("part-m-{f:05}"));
                scope.spawn(move || write_rows(&path, first, last, seed))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Job("teragen panicked".into())))).collect()
    });
    let mut total = Checksum { records: 0, sum: 0 };
    for r in results {
        let c = r?;
        total.records += c.records;
        total.sum = total.sum.wrapping_add(c.sum);
    }
    Ok(total)
}

fn write_rows(path: &Path, first: u64, last: u64, seed: u64) -> Result<Checksum> {
    let file = std::fs::File::create(path).map_err(Error::io("cannot create", path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = [0u8; RECORD];
    let mut sum = 0u64;
    for row in first..last {
        record(row, seed, &mut buf);
        sum = sum.wrapping_add(u64::from(crc32fast::hash(&buf)));
        out.write_all(&buf).map_err(Error::io("cannot write", path))?;
    }
    out.flush().map_err(Error::io("cannot write", path))?;
    Ok(Checksum { records: last - first, sum })
}

/// Reads the part files of `dir` in name order and checks that their records are in key
/// order across all files. Returns their checksum, or an error naming the first record out
/// of order.
pub fn validate(dir: &Path) -> Result<Checksum> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(Error::io("cannot list", dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
        .map(|e| e.path())
        .collect();
    if parts.is_empty() {
        return Err(Error::NoInputFiles(format!("'{}' (no part-* files)", dir.display())));
    }
    parts.sort();
    let mut total = Checksum { records: 0, sum: 0 };
    let mut previous: Option<[u8; 10]> = None;
    let mut buf = [0u8; RECORD];
    for path in &parts {
        let file = std::fs::File::open(path).map_err(Error::io("cannot read", path))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut index = 0u64;
        loop {
            match reader.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("cannot read", path)(e)),
            }
            let key: [u8; 10] = buf[..10].try_into().expect("10 bytes");
            if previous.is_some_and(|p| key < p) {
                return Err(Error::Job(format!(
                    "teravalidate: record {index} of '{}' (key {:?}) sorts before the record before it",
                    path.display(),
                    String::from_utf8_lossy(&key)
                )));
            }
            previous = Some(key);
            total.records += 1;
            total.sum = total.sum.wrapping_add(u64::from(crc32fast::hash(&buf)));
            index += 1;
        }
        let len = std::fs::metadata(path).map_err(Error::io("cannot read", path))?.len();
        if len % TERA_RECORD != 0 {
            return Err(Error::Job(format!(
                "teravalidate: '{}' is {len} bytes, not a whole number of records",
                path.display()
            )));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_records_are_deterministic_and_validate_checks_order() {
        let a = tempfile::tempdir().unwrap();
        let sum = generate(a.path(), 1000, 3, 7).unwrap();
        assert_eq!(sum.records, 1000);
        let b = tempfile::tempdir().unwrap();
        assert_eq!(generate(b.path(), 1000, 1, 7).unwrap(), sum, "the checksum does not depend on the files");
        // Unsorted input is refused; the same records sorted pass with the same checksum.
        assert!(validate(b.path()).is_err());
        let bytes = std::fs::read(b.path().join("part-m-00000")).unwrap();
        let mut records: Vec<&[u8]> = bytes.chunks(RECORD).collect();
        records.sort_by_key(|r| &r[..10]);
        let sorted = tempfile::tempdir().unwrap();
        std::fs::write(sorted.path().join("part-r-00000"), records.concat()).unwrap();
        assert_eq!(validate(sorted.path()).unwrap(), sum);
    }
}
