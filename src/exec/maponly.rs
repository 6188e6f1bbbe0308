//! Map-only jobs (`--reduce-tasks 0`), as Hadoop runs them: a map attempt writes what map
//! emits straight to its part file, `part-m-NNNNN`, as `key<TAB>value` lines (`key` alone for
//! an empty value), in emission order, with no sort, combine or shuffle. The part file is
//! committed like a reduce task's: only the attempt granted the commit moves it into the output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::data::compression::OutputCompression;
use crate::data::input::{InputFormat, RecordReader, Split};
use crate::error::{Error, Result};
use crate::exec::task::{AttemptProgress, MapState, TaskSettings, map_records};
use crate::job::Job;
use crate::job::buffer::{LineSink, MapBuffer};
use crate::types::TaskCounters;

/// The name of map task `task`'s part file in a map-only job: `part-m-NNNNN`, with the
/// compression's extension.
pub fn part_name(task: u32, compression: OutputCompression) -> String {
    format!("part-m-{task:05}{}", compression.extension())
}

/// Moves the lines map emitted into the part file.
fn drain(buffer: &mut MapBuffer, out: &mut impl Write, output: &Path) -> Result<()> {
    if let MapBuffer::Lines(sink) = buffer {
        out.write_all(&sink.lines).map_err(Error::io("cannot write output", output))?;
        sink.lines.clear();
    }
    Ok(())
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
    let mut out = BufWriter::with_capacity(256 * 1024, encoder);
    let mut state = MapState::new(MapBuffer::Lines(LineSink::default()));
    map_records(job, &mut reader, skip, progress, &mut state, |s| drain(&mut s.buffer, &mut out, output))?;
    drain(&mut state.buffer, &mut out, output)?;
    let MapState { buffer, mut counters, user, .. } = state;
    let encoder = out.into_inner().map_err(|e| Error::io("cannot write output", output)(e.into_error()))?;
    let file = encoder.finish().map_err(Error::io("cannot write output", output))?;
    file.sync_all().map_err(Error::io("cannot sync output", output))?;
    counters.output_records = buffer.records();
    counters.output_bytes = file.metadata().map_err(Error::io("cannot read output", output))?.len();
    counters.user = user;
    Ok(counters)
}
