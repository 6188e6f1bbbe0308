//! Jobs: what a map and a reduce function are, and the registry of built-in jobs by name.
//!
//! Keys and values cross task boundaries as bytes, and a job decides how to encode them.
//! Output lines are `key<TAB>value`.

mod word_search;
mod wordcount;

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};

pub use word_search::WordSearch;
pub use wordcount::WordCount;

/// One input record: a line of text and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The input file, as found from the input arguments.
    pub path: &'a str,
    /// Byte offset of the line in the file.
    pub offset: u64,
    /// The line, without its terminator.
    pub line: &'a str,
}

/// Where map emits its key/value pairs.
pub trait Emit {
    /// Emits one intermediate pair.
    fn emit(&mut self, key: &[u8], value: &[u8]);
}

/// The values of one key, in a deterministic order (map task order, then emission order).
/// It is a lending iterator: each value is valid until the next call.
pub struct Values<'a> {
    source: &'a mut dyn ValueSource,
}

impl<'a> Values<'a> {
    pub(crate) fn new(source: &'a mut dyn ValueSource) -> Values<'a> {
        Values { source }
    }

    /// The next value of this key, or `None` when they are all consumed.
    pub fn next_value(&mut self) -> Option<&[u8]> {
        self.source.next_value()
    }
}

/// Anything that yields the values of one key.
pub(crate) trait ValueSource {
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// Where reduce writes its output lines.
pub trait Output {
    /// Writes the line `key<TAB>value`.
    fn write(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
}

/// A MapReduce job: a map function, a reduce function and an optional combiner.
pub trait Job: Send + Sync {
    /// Maps one input record to intermediate pairs.
    fn map(&self, record: Record<'_>, out: &mut dyn Emit) -> Result<()>;

    /// Reduces all the values of one key to output lines.
    fn reduce(&self, key: &[u8], values: &mut Values<'_>, out: &mut dyn Output) -> Result<()>;

    /// Whether [`Job::combine`] should run on map output before it is written.
    fn has_combiner(&self) -> bool {
        false
    }

    /// Combines the values of one key in one map task into fewer values, each passed to `out`.
    /// Must be associative and commutative with reduce, as in Hadoop.
    fn combine(&self, _key: &[u8], _values: &mut Values<'_>, _out: &mut dyn FnMut(&[u8])) -> Result<()> {
        Ok(())
    }
}

/// What the coordinator prepares for a job before its tasks run: the arguments workers receive,
/// and the entries it puts in the shared state store.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Arguments passed to every worker.
    pub worker_args: Vec<String>,
    /// Entries for the state store, read by the workers when they build the job.
    pub state: Vec<(String, Vec<u8>)>,
}

/// Options that a job may need when it is prepared.
#[derive(Debug, Default, Clone)]
pub struct JobOptions {
    /// word-search: the file of target words.
    pub targets: Option<std::path::PathBuf>,
}

/// The names of the built-in jobs.
pub const BUILT_IN: &[&str] = &["wordcount", "word-search"];

fn unknown(name: &str) -> Error {
    Error::UnknownJob(name.to_string(), BUILT_IN.join(", "))
}

/// Coordinator side: checks a job's arguments and prepares what its workers need.
pub fn prepare(name: &str, args: &[String], options: &JobOptions) -> Result<Prepared> {
    match name {
        "wordcount" => {
            no_args(name, args)?;
            Ok(Prepared::default())
        }
        "word-search" => {
            no_args(name, args)?;
            word_search::prepare(options)
        }
        _ => Err(unknown(name)),
    }
}

/// Read access to the job's shared state store, with batched gets.
pub trait StateReader {
    /// Returns the value of each key, in order; `None` for an absent key.
    fn get(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;
}

impl StateReader for HashMap<String, Vec<u8>> {
    fn get(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        Ok(keys.iter().map(|k| HashMap::get(self, k).cloned()).collect())
    }
}

/// Worker side: builds the job from its name, its arguments and the shared state it needs.
pub fn build(name: &str, args: &[String], state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
    no_args(name, args)?;
    match name {
        "wordcount" => Ok(Arc::new(WordCount)),
        "word-search" => Ok(Arc::new(WordSearch::from_state(state)?)),
        _ => Err(unknown(name)),
    }
}

fn no_args(name: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(Error::JobArgs { job: name.to_string(), message: format!("takes no arguments, got {args:?}") })
    }
}

/// Parses a decimal or little-endian u64 count value written by [`encode_count`].
pub(crate) fn decode_count(value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value
        .try_into()
        .map_err(|_| Error::Job(format!("expected an 8-byte count value, got {} bytes", value.len())))?;
    Ok(u64::from_le_bytes(bytes))
}

/// Encodes a count as an intermediate value.
pub(crate) fn encode_count(count: u64) -> [u8; 8] {
    count.to_le_bytes()
}

/// Sums count values: the shared reduce and combine of counting jobs.
pub(crate) fn sum_counts(values: &mut Values<'_>) -> Result<u64> {
    let mut total = 0u64;
    while let Some(v) = values.next_value() {
        total += decode_count(v)?;
    }
    Ok(total)
}
