//! Jobs: the public Job API ([`Job`], [`Codec`], the contexts), the built-in jobs, and the
//! [`Registry`] that finds a job by name in both the coordinator and the workers.
//!
//! Keys and values cross task boundaries as bytes; a job decides how to encode them.

mod api;
mod grep;
mod index;
pub mod partition;
mod sort;
pub(crate) mod streaming;
mod word_search;
mod wordcount;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use crate::data::input::{InputFormat, Split};
use crate::error::{Error, Result};

pub use crate::types::UserCounters;
pub use api::{Codec, Decoded, Job, Json, MapContext, Record, ReduceContext, SortedPairs, Values};
pub(crate) use api::{Emit, Output, ValueSource};
pub use grep::Grep;
pub use index::InvertedIndex;
pub use sort::Sort;
pub use streaming::Streaming;
pub use word_search::WordSearch;
pub use wordcount::{WordCount, for_each_word};

/// What the coordinator prepares for a job before its tasks run: the arguments workers
/// receive, and the entries it puts in the shared state store.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Arguments passed to every worker.
    pub worker_args: Vec<String>,
    /// Entries for the state store, read by the workers when they build the job.
    pub state: Vec<(String, Vec<u8>)>,
}

/// Options of `mr run` that some jobs use.
#[derive(Debug, Default, Clone)]
pub struct JobOptions {
    /// word-search: the file of target words.
    pub targets: Option<PathBuf>,
    /// streaming: the mapper command.
    pub mapper: Option<String>,
    /// streaming: the reducer command.
    pub reducer: Option<String>,
    /// streaming: the combiner command.
    pub combiner: Option<String>,
    /// How input files are read.
    pub input_format: InputFormat,
}

/// What a job's preparation can see of the planned job.
pub struct PlanView<'a> {
    /// The job's arguments.
    pub args: &'a [String],
    /// The options of `mr run`.
    pub options: &'a JobOptions,
    /// The input splits.
    pub splits: &'a [Split],
    /// The number of reduce tasks.
    pub reduce_tasks: u32,
    /// Largest input record to read (`--max-record-bytes`).
    pub max_record_bytes: u64,
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

/// Makes a job: checks its arguments and prepares shared state on the coordinator, and
/// builds the job on every worker.
pub trait JobFactory: Send + Sync {
    /// Coordinator side, before any task runs.
    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared>;
    /// Worker side, once per worker process.
    fn build(&self, args: &[String], state: &mut dyn StateReader) -> Result<Arc<dyn Job>>;
    /// Whether records of the job with these arguments need line numbers (see
    /// [`Job::needs_line_numbers`]).
    fn needs_line_numbers(&self, _args: &[String]) -> bool {
        false
    }
}

/// A factory for jobs that need nothing but their arguments.
pub struct SimpleFactory<F>(pub F);

impl<F, J> JobFactory for SimpleFactory<F>
where
    F: Fn(&[String]) -> Result<J> + Send + Sync,
    J: Job + 'static,
{
    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        (self.0)(plan.args)?;
        Ok(Prepared { worker_args: plan.args.to_vec(), state: Vec::new() })
    }

    fn build(&self, args: &[String], _state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        Ok(Arc::new((self.0)(args)?))
    }

    fn needs_line_numbers(&self, args: &[String]) -> bool {
        (self.0)(args).is_ok_and(|job| job.needs_line_numbers())
    }
}

/// The jobs a binary knows, by name. Workers are processes of the same binary, so a job
/// registered here runs in them too.
///
/// ```no_run
/// use mr::job::{Registry, SimpleFactory, WordCount};
///
/// fn main() -> std::process::ExitCode {
///     let registry = Registry::builtin().with("my-wordcount", SimpleFactory(|_args: &[String]| Ok(WordCount)));
///     mr::cli::main_with(registry)
/// }
/// ```
pub struct Registry {
    jobs: BTreeMap<String, Box<dyn JobFactory>>,
}

impl Registry {
    /// No jobs.
    pub fn empty() -> Registry {
        Registry { jobs: BTreeMap::new() }
    }

    /// The built-in jobs: wordcount, word-search, grep, index, sort, streaming.
    pub fn builtin() -> Registry {
        Registry::empty()
            .with("wordcount", SimpleFactory(|args: &[String]| no_args("wordcount", args).map(|_| WordCount)))
            .with("word-search", word_search::Factory)
            .with("grep", grep::Factory)
            .with("index", SimpleFactory(|args: &[String]| no_args("index", args).map(|_| InvertedIndex)))
            .with("sort", sort::Factory)
            .with("streaming", streaming::Factory)
    }

    /// Adds (or replaces) a job.
    pub fn with(mut self, name: &str, factory: impl JobFactory + 'static) -> Registry {
        self.jobs.insert(name.to_string(), Box::new(factory));
        self
    }

    /// The factory of a job.
    pub fn get(&self, name: &str) -> Result<&dyn JobFactory> {
        self.jobs.get(name).map(|f| f.as_ref()).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.keys().map(String::as_str).collect();
            Error::UnknownJob(name.to_string(), names.join(", "))
        })
    }
}

pub(crate) fn no_args(name: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(Error::JobArgs { job: name.to_string(), message: format!("takes no arguments, got {args:?}") })
    }
}

/// Sums count values (u64, see [`Codec`]): the shared reduce and combine of counting jobs.
pub(crate) fn sum_counts(values: &mut Values<'_>) -> Result<u64> {
    let total = values.decoded::<u64>().sum();
    match values.take_error() {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// The encoding of a count of one.
pub(crate) const ONE: [u8; 8] = 1u64.to_be_bytes();
