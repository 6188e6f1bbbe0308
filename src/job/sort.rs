//! sort: records in byte order, with a sampled range partitioner (as TeraSort does), so that
//! the part files concatenated in order are globally sorted.
//!
//! Text records are lines, the whole line being the key; the output is the lines. Tera
//! records (`--input-format tera`) are keyed by their first 10 bytes; the output is the
//! 100-byte records. Before the job runs, the coordinator samples keys from the splits and
//! picks R-1 cut points, which reach the workers through the state store.

use std::sync::Arc;

use super::{Job, JobFactory, MapContext, PlanView, Prepared, Record, ReduceContext, StateReader, Values, no_args};
use crate::data::input::{InputFormat, RecordReader};
use crate::error::{Error, Result};

/// State key of the cut points.
const CUTS_KEY: &str = "sort/cuts";
/// State key of the input format.
const FORMAT_KEY: &str = "sort/format";
/// Keys sampled in all, spread over up to this many splits.
const SAMPLES: usize = 10_000;
const SAMPLED_SPLITS: usize = 20;
/// Length of a tera key.
const TERA_KEY: usize = 10;

/// The sort job.
pub struct Sort {
    /// Sorted cut points: partition i holds the keys k with cuts[i-1] <= k < cuts[i].
    cuts: Vec<Vec<u8>>,
    tera: bool,
}

pub(crate) struct Factory;

impl JobFactory for Factory {
    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        no_args("sort", plan.args)?;
        let format = plan.options.input_format;
        if format == InputFormat::WholeFile {
            return Err(Error::JobArgs { job: "sort".into(), message: "sorts text lines or tera records".into() });
        }
        let cuts = sample_cuts(plan, format)?;
        let mut encoded = Vec::new();
        for cut in &cuts {
            encoded.extend_from_slice(&(cut.len() as u32).to_be_bytes());
            encoded.extend_from_slice(cut);
        }
        let state = vec![(CUTS_KEY.to_string(), encoded), (FORMAT_KEY.to_string(), format.name().as_bytes().to_vec())];
        Ok(Prepared { worker_args: Vec::new(), state })
    }

    fn build(&self, _args: &[String], state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        let missing = || Error::Job("sort: the cut points are missing from the state store".into());
        let mut values = state.get(&[CUTS_KEY.to_string(), FORMAT_KEY.to_string()])?.into_iter();
        let encoded = values.next().flatten().ok_or_else(missing)?;
        let format = values.next().flatten().ok_or_else(missing)?;
        let mut cuts = Vec::new();
        let mut rest = &encoded[..];
        while rest.len() >= 4 {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let cut = rest.get(4..4 + len).ok_or_else(missing)?;
            cuts.push(cut.to_vec());
            rest = &rest[4 + len..];
        }
        Ok(Arc::new(Sort { cuts, tera: format == b"tera" }))
    }
}

/// Samples keys evenly from up to `SAMPLED_SPLITS` splits and returns R-1 cut points.
fn sample_cuts(plan: &PlanView<'_>, format: InputFormat) -> Result<Vec<Vec<u8>>> {
    let splits = plan.splits;
    let chosen = splits.len().min(SAMPLED_SPLITS);
    let per_split = SAMPLES / chosen.max(1);
    let mut samples = Vec::new();
    for i in 0..chosen {
        let split = &splits[i * splits.len() / chosen];
        let mut reader = RecordReader::open(split, format, plan.max_record_bytes)?;
        let mut taken = 0;
        while taken < per_split {
            let Some(record) = reader.next_record()? else { break };
            samples.push(key_of(record.bytes, format == InputFormat::Tera).to_vec());
            taken += 1;
        }
    }
    samples.sort_unstable();
    let r = plan.reduce_tasks as usize;
    if samples.is_empty() {
        return Ok(Vec::new());
    }
    Ok((1..r).map(|i| samples[i * samples.len() / r].clone()).collect())
}

fn key_of(record: &[u8], tera: bool) -> &[u8] {
    if tera { &record[..TERA_KEY.min(record.len())] } else { record }
}

impl Job for Sort {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        let key = key_of(record.bytes, self.tera);
        ctx.emit(key, &record.bytes[key.len()..]);
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        while let Some(rest) = values.next_value() {
            if self.tera {
                let mut record = Vec::with_capacity(key.len() + rest.len());
                record.extend_from_slice(key);
                record.extend_from_slice(rest);
                ctx.write_record(&record, b"")?;
            } else {
                ctx.write_record(key, b"\n")?;
            }
        }
        Ok(())
    }

    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        // Keys equal to a cut go right, so equal keys always share a partition.
        (self.cuts.partition_point(|cut| cut.as_slice() <= key) as u32).min(partitions - 1)
    }
}
