//! The record reader at split boundaries: a file of arbitrary bytes cut by `plan_splits` at an
//! arbitrary split size, its splits read in order with `RecordReader`, must give exactly the
//! records of the whole file read as one split (every line once, in order, with its offset
//! and line number; an invalid UTF-8 line is the same error at the same offset), and those
//! must be the lines an independent split on '\n' finds. Text and tera input.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mr::input::{InputFile, InputFormat, RecordReader, Split, TERA_RECORD, number_lines, plan_splits};

#[derive(Debug, Arbitrary)]
struct Input {
    tera: bool,
    split_size: u16,
    contents: Vec<u8>,
}

fn path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir for the fuzz input");
        let path = dir.path().join("input.txt");
        (dir, path)
    });
    path
}

/// (offset, line number, bytes) of each record, and the offset of an invalid UTF-8 error.
type Records = (Vec<(u64, u64, Vec<u8>)>, Option<u64>);

/// Reads `splits` in order, stopping at the first error.
fn read(splits: &[Split], format: InputFormat) -> Records {
    let mut records = Vec::new();
    for split in splits {
        let mut reader = RecordReader::open(split, format).expect("open a split of a local file");
        loop {
            match reader.next_record() {
                Ok(Some(r)) => {
                    if let Ok(text) = std::str::from_utf8(r.bytes) {
                        assert!(format == InputFormat::Tera || r.text == text);
                    }
                    records.push((r.offset, r.line_number, r.bytes.to_vec()));
                }
                Ok(None) => break,
                Err(mr::Error::InvalidUtf8 { offset, .. }) => return (records, Some(offset)),
                Err(e) => panic!("reading {split}: {e}"),
            }
        }
    }
    (records, None)
}

/// The lines of `contents` by a plain split on '\n', "\r\n" dropped, numbered from 1.
fn oracle(contents: &[u8]) -> Records {
    let mut records = Vec::new();
    let mut offset = 0u64;
    for (i, piece) in contents.split_inclusive(|&b| b == b'\n').enumerate() {
        let mut line = piece.strip_suffix(b"\n").unwrap_or(piece);
        if piece.ends_with(b"\n") {
            line = line.strip_suffix(b"\r").unwrap_or(line);
        }
        if let Err(e) = std::str::from_utf8(line) {
            return (records, Some(offset + e.valid_up_to() as u64));
        }
        records.push((offset, i as u64 + 1, line.to_vec()));
        offset += piece.len() as u64;
    }
    (records, None)
}

fn splits(path: &Path, len: u64, split_size: u64, format: InputFormat) -> mr::Result<Vec<Split>> {
    let mut splits = plan_splits(&[InputFile { path: path.to_path_buf(), len }], split_size, format)?;
    if format == InputFormat::Text {
        number_lines(&mut splits)?;
    }
    Ok(splits)
}

fuzz_target!(|input: Input| {
    let Input { tera, split_size, mut contents } = input;
    let format = if tera { InputFormat::Tera } else { InputFormat::Text };
    contents.truncate(4096);
    let path = path();
    if tera && contents.len() as u64 % TERA_RECORD != 0 {
        std::fs::write(path, &contents).expect("write the fuzz input");
        let planned = plan_splits(&[InputFile { path: path.clone(), len: contents.len() as u64 }], 1, format);
        assert!(planned.is_err(), "a tera file of {} bytes accepted", contents.len());
        contents.truncate(contents.len() - contents.len() % TERA_RECORD as usize);
    }
    std::fs::write(path, &contents).expect("write the fuzz input");
    let len = contents.len() as u64;
    let split_size = u64::from(split_size);

    let cut = splits(path, len, split_size, format).expect("plan splits");
    let mut start = 0;
    for s in &cut {
        assert_eq!(s.start, start, "splits are contiguous");
        assert!(s.start < s.end && s.end <= len, "split {s} of a {len}-byte file");
        assert!(s.end - s.start <= split_size.max(1).max(if tera { TERA_RECORD } else { 1 }) + TERA_RECORD);
        start = s.end;
    }
    assert_eq!(start, len, "splits cover the file");

    let whole = if len == 0 {
        Vec::new()
    } else {
        let mut one = splits(path, len, len, format).expect("plan one split");
        assert_eq!(one.len(), 1);
        one.truncate(1);
        one
    };
    let expected = read(&whole, format);
    assert_eq!(read(&cut, format), expected, "split size {split_size}");
    if tera {
        let records: Vec<_> = contents
            .chunks(TERA_RECORD as usize)
            .zip((0..).step_by(TERA_RECORD as usize))
            .map(|(c, o)| (o, 0, c.to_vec()))
            .collect();
        assert_eq!(expected, (records, None));
    } else {
        assert_eq!(expected, oracle(&contents));
    }
});
