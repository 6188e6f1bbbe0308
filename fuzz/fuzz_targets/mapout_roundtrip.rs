//! Arbitrary records written with `MapOutputWriter` read back identical: each partition
//! through `SegmentReader`, and two files' partitions through `Merger` in (key, file, order)
//! order.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mr::data::mapout::{MapOutputWriter, Merger, SegmentReader};

#[derive(Debug, Arbitrary)]
struct Input {
    partitions: u8,
    records: Vec<Record>,
}

#[derive(Debug, Arbitrary)]
struct Record {
    partition: u8,
    /// Which of the two files holds the record.
    second: bool,
    key: Vec<u8>,
    value: Vec<u8>,
}

type Pair = (Vec<u8>, Vec<u8>);

/// Writes `parts` (already sorted by key within each partition) as one map output file.
fn write(path: &std::path::Path, parts: &[Vec<Pair>]) {
    let mut w = MapOutputWriter::create(path).expect("create map output");
    for part in parts {
        w.start_partition();
        for (k, v) in part {
            w.write(k, v).expect("write record");
        }
    }
    let size = w.finish().expect("finish map output");
    assert_eq!(size, std::fs::metadata(path).expect("stat map output").len());
}

fn read(reader: &mut SegmentReader) -> Vec<Pair> {
    let (mut k, mut v) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    while reader.next_into(&mut k, &mut v).expect("read back what was written") {
        out.push((k.clone(), v.clone()));
    }
    out
}

fuzz_target!(|input: Input| {
    let partitions = u32::from(input.partitions % 8) + 1;
    let mut files: [Vec<Vec<Pair>>; 2] = std::array::from_fn(|_| vec![Vec::new(); partitions as usize]);
    for r in input.records {
        let p = usize::from(r.partition) % partitions as usize;
        files[usize::from(r.second)][p].push((r.key, r.value));
    }
    for file in &mut files {
        for part in file.iter_mut() {
            // Stable: equal keys keep their emit order, as the sort buffer does.
            part.sort_by(|a, b| a.0.cmp(&b.0));
        }
    }
    let paths = [common::dir().join("a.out"), common::dir().join("b.out")];
    for (path, parts) in paths.iter().zip(&files) {
        write(path, parts);
    }
    for p in 0..partitions {
        let mut runs = Vec::new();
        for (path, parts) in paths.iter().zip(&files) {
            let mut reader = SegmentReader::open(path, p, partitions).expect("open partition");
            assert_eq!(reader.segment().records, parts[p as usize].len() as u64);
            assert_eq!(read(&mut reader), parts[p as usize], "partition {p} of {}", path.display());
            runs.push(SegmentReader::open(path, p, partitions).expect("open partition"));
        }
        let mut expected: Vec<Pair> = files.iter().flat_map(|f| f[p as usize].iter().cloned()).collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let mut merger = Merger::new(runs).expect("start merge");
        let mut merged = Vec::new();
        while merger.advance().expect("merge") {
            merged.push((merger.key().to_vec(), merger.value().to_vec()));
        }
        assert_eq!(merged, expected, "merge of partition {p}");
    }
});
