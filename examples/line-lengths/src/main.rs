//! A custom job in its own crate: a histogram of line lengths (in bytes), with the number of
//! lines and of words for each length.
//!
//! It shows the pieces of the Job API: typed keys and values through codecs (a `u64` key that
//! sorts numerically, a serde value as JSON), a folding combiner, a custom partitioner that keeps the
//! part files in length order, a user counter, and a flag of the job's own (`--round N`,
//! declared with a clap `Args` struct, shown by `line-lengths run line-lengths -h`). The binary
//! is `mr` plus this job: worker processes are started from it, so they run this code.
//!
//! ```text
//! line-lengths run line-lengths --input sample --output /tmp/lengths [--round 10]
//! ```

use std::process::ExitCode;

use mr::job::{ArgsFactory, Codec, Job, Json, MapContext, Record, ReduceContext, Registry, Values};
use serde::{Deserialize, Serialize};

/// Lines and words seen for one length.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    lines: u64,
    words: u64,
}

/// Lengths up to this many bytes per partition, so that part files are in length order.
const BUCKET: u64 = 32;

/// The job's own flags.
#[derive(Debug, clap::Args)]
struct Flags {
    /// Count lengths rounded down to a multiple of N bytes (1: exact lengths).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    round: u64,
}

struct LineLengths {
    round: u64,
}

impl LineLengths {
    fn sum(values: &mut Values<'_>) -> mr::Result<Tally> {
        let mut total = Tally::default();
        for Json(t) in values.decoded::<Json<Tally>>() {
            total.lines += t.lines;
            total.words += t.words;
        }
        Ok(total)
    }
}

impl Job for LineLengths {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> mr::Result<()> {
        let words = record.text.split_whitespace().count() as u64;
        let length = record.text.len() as u64 / self.round * self.round;
        ctx.emit_encoded(&length, &Json(Tally { lines: 1, words }));
        if words == 0 {
            ctx.counter("line-lengths", "blank lines", 1);
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> mr::Result<()> {
        let length = u64::decode(key)?;
        let total = Self::sum(values)?;
        ctx.write(length.to_string().as_bytes(), format!("{} {}", total.lines, total.words).as_bytes())
    }

    fn folds(&self) -> bool {
        true
    }

    fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> mr::Result<()> {
        let Json(mut total) = Json::<Tally>::decode(acc)?;
        let Json(more) = Json::<Tally>::decode(value)?;
        total.lines += more.lines;
        total.words += more.words;
        acc.clear();
        Json(total).encode(acc);
        Ok(())
    }

    fn partition(&self, key: &[u8], partitions: u32) -> u32 {
        let length = u64::decode(key).unwrap_or(0);
        (length / BUCKET).min(u64::from(partitions) - 1) as u32
    }
}

fn main() -> ExitCode {
    let factory = ArgsFactory::new("A histogram of line lengths: length<TAB>lines words", |flags: Flags| {
        Ok(LineLengths { round: flags.round })
    });
    let registry = Registry::builtin().with("line-lengths", factory);
    mr::cli::main_with(registry)
}
