//! Map-only jobs (`--reduce-tasks 0`), as Hadoop runs them: a map attempt writes what map
//! emits straight to its part file, `part-m-NNNNN`, as `key<TAB>value` lines (`key` alone for
//! an empty value), in emission order, with no sort, combine or shuffle. The part file is
//! committed like a reduce task's: only the attempt granted the commit moves it into the output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::data::compression::{Encoder, OutputCompression};
use crate::data::input::{InputFormat, RecordReader, Split};
use crate::error::{Error, Result};
use crate::exec::task::{AttemptProgress, TaskSettings};
use crate::job::{Emit, Job, MapContext, Record, UserCounters};
use crate::types::TaskCounters;

/// Records between two progress checkpoints.
const CHECKPOINT: u64 = 1024;

/// The name of map task `task`'s part file in a map-only job: `part-m-NNNNN`, with the
/// compression's extension.
pub fn part_name(task: u32, compression: OutputCompression) -> String {
    format!("part-m-{task:05}{}", compression.extension())
}

/// Writes emitted pairs as lines; the first write error is kept.
struct Lines {
    out: BufWriter<Encoder<File>>,
    records: u64,
    error: Option<std::io::Error>,
}

impl Emit for Lines {
    fn emit(&mut self, key: &[u8], value: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let written = if value.is_empty() {
            self.out.write_all(key)
        } else {
            self.out.write_all(key).and_then(|_| self.out.write_all(b"\t")).and_then(|_| self.out.write_all(value))
        };
        match written.and_then(|_| self.out.write_all(b"\n")) {
            Ok(()) => self.records += 1,
            Err(e) => self.error = Some(e),
        }
    }
}

/// Runs a map-only attempt over `split`, writing its part file to `output` (synced; the caller
/// commits it). Records whose numbers are in `skip` are skipped and counted; a failed record's
/// number is left in `progress`, as [`crate::exec::task::run_map`] does.
pub fn run_map_only(
    job: &dyn Job,
    split: &Split,
    format: InputFormat,
    settings: &TaskSettings,
    skip: &[u64],
    output: &Path,
    progress: &AttemptProgress,
) -> Result<TaskCounters> {
    let mut reader = RecordReader::open(split, format, settings.max_record_bytes)?;
    let file = File::create(output).map_err(Error::io("cannot create output file", output))?;
    let encoder = settings.output_compression.encoder(file)?;
    let mut lines = Lines { out: BufWriter::with_capacity(256 * 1024, encoder), records: 0, error: None };
    let (mut user, mut scratch) = (UserCounters::new(), (Vec::new(), Vec::new()));
    let mut counters = TaskCounters::default();
    crate::exec::task::guarded(|| job.map_setup())?;
    loop {
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
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
        let mut ctx = MapContext { sink: &mut lines, counters: &mut user, scratch: &mut scratch };
        if let Err(e) = crate::exec::task::guarded(|| job.map(record, &mut ctx)) {
            progress.bad_record.store(number, Ordering::Relaxed);
            return Err(Error::Job(format!("record at {path}:{offset}: {e}")));
        }
        counters.input_records += 1;
        if counters.input_records % CHECKPOINT == 0 {
            progress.checkpoint(counters.input_records, reader.consumed(), false)?;
        }
    }
    let mut ctx = MapContext { sink: &mut lines, counters: &mut user, scratch: &mut scratch };
    crate::exec::task::guarded(|| job.map_cleanup(&mut ctx))?;
    counters.input_bytes = reader.consumed();
    progress.checkpoint(counters.input_records, counters.input_bytes, true)?;
    if let Some(e) = lines.error {
        return Err(Error::io("cannot write output", output)(e));
    }
    let encoder = lines.out.into_inner().map_err(|e| Error::io("cannot write output", output)(e.into_error()))?;
    let file = encoder.finish().map_err(Error::io("cannot write output", output))?;
    file.sync_all().map_err(Error::io("cannot sync output", output))?;
    counters.output_records = lines.records;
    counters.output_bytes = file.metadata().map_err(Error::io("cannot read output", output))?.len();
    counters.user = user;
    Ok(counters)
}
