//! Arbitrary bytes as a map output file: `read_index`, `SegmentReader` and `Merger` must answer
//! `Err` or records, never panic, hang, or allocate more than the file holds.
//!
//! Input: one byte choosing the partition count (1..=4), then the file's bytes.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use mr::data::mapout::{Merger, SegmentReader, read_index};

/// Reads a segment to its end; returns the records read, or None on an error. Every record
/// takes at least two bytes, so more calls than that mean the reader does not stop.
fn drain(mut reader: SegmentReader, file_len: u64) -> Option<u64> {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut records = 0;
    loop {
        match reader.next_into(&mut key, &mut value) {
            Ok(true) => {
                records += 1;
                assert!(key.len() + value.len() <= file_len as usize, "a record larger than its file");
                assert!(records <= file_len / 2 + 1, "more records than the file can hold");
            }
            Ok(false) => {
                // The end stays the end.
                assert!(matches!(reader.next_into(&mut key, &mut value), Ok(false)));
                return Some(records);
            }
            Err(_) => return None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let partitions = u32::from(selector & 3) + 1;
    let path = &common::dir().join("map.out");
    std::fs::write(path, bytes).expect("write the fuzz input");
    let file_len = bytes.len() as u64;

    let index = read_index(path, partitions);
    if let Ok(segments) = &index {
        assert_eq!(segments.len(), partitions as usize);
        let mut offset = 0;
        for s in segments {
            assert_eq!(s.offset, offset, "segments are contiguous from 0");
            offset += s.len;
        }
        assert!(offset <= file_len, "segments beyond the end of the file");
    }
    // One partition more than the file has: an error, not an index out of bounds.
    for partition in 0..=partitions {
        let opened = SegmentReader::open(path, partition, partitions);
        if partition == partitions {
            assert!(opened.is_err(), "partition {partition} of {partitions} opened");
            continue;
        }
        assert_eq!(opened.is_ok(), index.is_ok(), "open and read_index disagree");
        if let Ok(reader) = opened {
            let expected = reader.segment().records;
            if let Some(records) = drain(reader, file_len) {
                assert_eq!(records, expected, "a segment read without error has its record count");
            }
        }
    }
    let Ok(runs) = (0..partitions).map(|p| SegmentReader::open(path, p, partitions)).collect::<mr::Result<Vec<_>>>()
    else {
        return;
    };
    let Ok(mut merger) = Merger::new(runs) else { return };
    let mut merged = 0u64;
    while let Ok(true) = merger.advance() {
        merged += 1;
        assert!(merged <= file_len / 2 + 1, "the merge does not stop");
        let _ = (merger.key(), merger.value(), merger.peek_key());
    }
});
