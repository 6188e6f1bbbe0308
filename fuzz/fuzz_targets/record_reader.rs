//! The record reader at split boundaries: 1 to 5 files of arbitrary bytes (empty ones too),
//! cut and packed by `plan_splits` at an arbitrary split size, read split after split with
//! `RecordReader` under an arbitrary `max_record_bytes`, must give exactly the records of the
//! files read as one split of whole files: every record once, in order, with its file, offset
//! and line number; an invalid UTF-8 record is the same error at the same offset, a record over
//! the limit the same `RecordTooLarge` of the same size, and reading goes on after both. Those
//! must be what an independent reading of the files finds (lines by a plain split on '\n',
//! 100-byte tera records, whole files). The splits must cover every byte once, in file order,
//! hold at most the split size unless one range, and their `consumed` must add up. Text, tera
//! and whole-file input.
#![no_main]

mod common;

use std::path::PathBuf;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mr::data::input::{FileRange, InputFile, InputFormat, RecordReader, Split, TERA_RECORD, number_lines, plan_splits};

#[derive(Debug, Arbitrary)]
struct Input {
    format: u8,
    split_size: u16,
    /// `max_record_bytes`; none is no limit.
    limit: Option<u16>,
    first: Vec<u8>,
    /// Up to 4 more files.
    more: Vec<Vec<u8>>,
}

/// Most bytes of one file; at most 5 files.
const MAX_FILE: usize = 2048;

/// What reading gives for one record: (file, offset, what).
#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    /// Line number and bytes.
    Record(u64, Vec<u8>),
    /// Offset of the first invalid byte.
    InvalidUtf8(u64),
    /// Size of the record.
    TooLarge(u64),
}

type Records = Vec<(String, u64, What)>;

/// Reads `splits` in order, on past errors; checks record numbers, error paths and offsets,
/// and returns the records and the bytes consumed.
fn read(splits: &[Split], format: InputFormat, limit: u64) -> (Records, u64) {
    let mut records = Vec::new();
    let mut consumed = 0;
    for split in splits {
        let mut reader = RecordReader::open(split, format, limit).expect("open a split of local files");
        let mut number = 0u64;
        loop {
            match reader.next_record() {
                Ok(Some(r)) => {
                    assert_eq!(r.number, number, "record number in {split}");
                    match std::str::from_utf8(r.bytes) {
                        Ok(text) => assert_eq!(r.text, text),
                        Err(_) => assert!(format == InputFormat::Tera && r.text.is_empty()),
                    }
                    records.push((r.path.to_string(), r.offset, What::Record(r.line_number, r.bytes.to_vec())));
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(reader.record_number(), number, "number of the failed record in {split}: {e}");
                    let (path, what) = match e {
                        mr::Error::InvalidUtf8 { path, offset } => {
                            assert!(offset >= reader.record_offset());
                            (path, What::InvalidUtf8(offset))
                        }
                        mr::Error::RecordTooLarge { path, offset, size, limit: l } => {
                            assert_eq!(l, limit);
                            assert!(size > limit, "a record of {size} bytes over a limit of {limit}");
                            assert_eq!(offset, reader.record_offset());
                            (path, What::TooLarge(size))
                        }
                        e => panic!("reading {split}: {e}"),
                    };
                    let path = path.to_string_lossy().into_owned();
                    assert_eq!(reader.record_path(), path);
                    records.push((path, reader.record_offset(), what));
                }
            }
            number += 1;
        }
        assert_eq!(reader.next_record().ok().map(|r| r.is_none()), Some(true), "the end stays the end");
        consumed += reader.consumed();
    }
    (records, consumed)
}

/// The records of the files read without `mr`, and the bytes a reading consumes.
fn oracle(files: &[(PathBuf, Vec<u8>)], format: InputFormat, limit: u64) -> (Records, u64) {
    let mut records = Vec::new();
    let mut consumed = 0;
    for (path, contents) in files {
        let path = path.to_string_lossy().into_owned();
        let mut push = |offset, what| records.push((path.clone(), offset, what));
        match format {
            InputFormat::Jsonl | InputFormat::Csv => unreachable!("the target reads text, tera and whole-file input"),
            InputFormat::Text => {
                consumed += contents.len() as u64;
                let mut offset = 0u64;
                for (i, piece) in contents.split_inclusive(|&b| b == b'\n').enumerate() {
                    let mut line = piece.strip_suffix(b"\n").unwrap_or(piece);
                    if piece.ends_with(b"\n") {
                        line = line.strip_suffix(b"\r").unwrap_or(line);
                    }
                    if line.len() as u64 > limit {
                        push(offset, What::TooLarge(line.len() as u64));
                    } else if let Err(e) = std::str::from_utf8(line) {
                        push(offset, What::InvalidUtf8(offset + e.valid_up_to() as u64));
                    } else {
                        push(offset, What::Record(i as u64 + 1, line.to_vec()));
                    }
                    offset += piece.len() as u64;
                }
            }
            InputFormat::Tera => {
                consumed += contents.len() as u64;
                for (i, record) in contents.chunks(TERA_RECORD as usize).enumerate() {
                    push(i as u64 * TERA_RECORD, What::Record(0, record.to_vec()));
                }
            }
            InputFormat::WholeFile => {
                if contents.is_empty() {
                    continue;
                }
                if contents.len() as u64 > limit {
                    push(0, What::TooLarge(contents.len() as u64));
                } else if let Err(e) = std::str::from_utf8(contents) {
                    push(0, What::InvalidUtf8(e.valid_up_to() as u64));
                } else {
                    consumed += contents.len() as u64;
                    push(0, What::Record(0, contents.clone()));
                }
            }
        }
    }
    (records, consumed)
}

fn plan(files: &[InputFile], split_size: u64, format: InputFormat) -> Vec<Split> {
    let mut splits = plan_splits(files, split_size, format).expect("plan splits");
    if format == InputFormat::Text {
        number_lines(&mut splits).expect("number lines");
    }
    splits
}

fuzz_target!(|input: Input| {
    let Input { format, split_size, limit, first, more } = input;
    let format = match format % 3 {
        0 => InputFormat::Text,
        1 => InputFormat::Tera,
        _ => InputFormat::WholeFile,
    };
    let limit = limit.map_or(u64::MAX, u64::from);
    let split_size = u64::from(split_size % 4096);
    let dir = common::dir();
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::iter::once(first)
        .chain(more.into_iter().take(4))
        .enumerate()
        .map(|(i, mut contents)| {
            contents.truncate(MAX_FILE);
            (dir.join(format!("{i}.txt")), contents)
        })
        .collect();
    let write = |files: &[(PathBuf, Vec<u8>)]| -> Vec<InputFile> {
        files
            .iter()
            .map(|(path, contents)| {
                std::fs::write(path, contents).expect("write a fuzz input file");
                InputFile { path: path.clone(), len: contents.len() as u64, modified_ns: None, name: None }
            })
            .collect()
    };
    if format == InputFormat::Tera && files.iter().any(|(_, c)| c.len() as u64 % TERA_RECORD != 0) {
        let planned = plan_splits(&write(&files), split_size, format);
        assert!(planned.is_err(), "tera files of a partial record accepted");
        for (_, contents) in &mut files {
            contents.truncate(contents.len() - contents.len() % TERA_RECORD as usize);
        }
    }
    let inputs = write(&files);
    let total: u64 = inputs.iter().map(|f| f.len).sum();

    // The splits: contiguous ranges covering each non-empty file in file order, packed up to
    // the split size (a range of its own may exceed it: a whole file, or whole tera records).
    let cut = plan(&inputs, split_size, format);
    let ranges: Vec<&FileRange> = cut.iter().flat_map(|s| &s.ranges).collect();
    let mut next = ranges.iter().peekable();
    for file in inputs.iter().filter(|f| f.len > 0) {
        let mut start = 0;
        while start < file.len {
            let range = next.next().unwrap_or_else(|| panic!("{} not covered past byte {start}", file.path.display()));
            assert_eq!((&range.path, range.start), (&file.path, start), "ranges are contiguous");
            assert!(range.start < range.end && range.end <= file.len, "{range} of a {}-byte file", file.len);
            match format {
                InputFormat::Jsonl | InputFormat::Csv => unreachable!("the target reads text, tera and whole-file input"),
                InputFormat::WholeFile => assert_eq!((range.start, range.end), (0, file.len)),
                InputFormat::Tera => {
                    assert_eq!(range.end % TERA_RECORD, 0);
                    assert!(range.end - range.start <= split_size.max(1).div_ceil(TERA_RECORD) * TERA_RECORD);
                }
                InputFormat::Text => assert!(range.end - range.start <= split_size.max(1)),
            }
            start = range.end;
        }
    }
    assert!(next.next().is_none(), "a range beyond the files");
    for split in &cut {
        assert!(!split.ranges.is_empty(), "an empty split");
        assert!(split.len() <= split_size.max(1) || split.ranges.len() == 1, "{split} over {split_size} bytes");
    }
    assert_eq!(cut.iter().map(Split::len).sum::<u64>(), total);

    // The same files as one split of whole files.
    let whole = if total == 0 { Vec::new() } else { plan(&inputs, total, format) };
    let expected_whole: Vec<FileRange> = inputs
        .iter()
        .filter(|f| f.len > 0)
        .map(|f| FileRange {
            path: f.path.clone(),
            start: 0,
            end: f.len,
            first_line: u64::from(format == InputFormat::Text),
            stamp: None,
            name: None,
        })
        .collect();
    match whole.as_slice() {
        [] => assert!(expected_whole.is_empty()),
        [one] => assert_eq!(one.ranges, expected_whole, "one split of whole files"),
        _ => panic!("{} bytes planned as {} splits of {total} bytes", total, whole.len()),
    }

    let expected = read(&whole, format, limit);
    assert_eq!(read(&cut, format, limit), expected, "split size {split_size}, limit {limit}");
    assert_eq!(expected, oracle(&files, format, limit), "limit {limit}");
});
