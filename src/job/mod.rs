//! Jobs: the public Job API ([`Job`], [`Codec`], the contexts), the built-in jobs, and the
//! [`Registry`] that finds a job by name in both the coordinator and the workers.
//!
//! Keys and values cross task boundaries as bytes; a job decides how to encode them.

mod api;
pub(crate) mod buffer;
mod grep;
mod index;
pub mod partition;
mod short_key;
mod sort;
pub(crate) mod streaming;
pub(crate) mod streaming_args;
mod streaming_steps;
mod word_search;
mod wordcount;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use clap::ArgMatches;

use crate::data::input::{InputFormat, Split};
use crate::error::{Error, Result};

pub use crate::types::UserCounters;
pub use api::{
    AttemptInfo, Codec, Decoded, InputRange, Job, Json, MapContext, Record, ReduceContext, SortedPairs, Values,
};
pub(crate) use api::{Output, ValueSource, add_count};
pub use grep::Grep;
pub use index::InvertedIndex;
pub use short_key::{ShortKey, ShortKeyBytes};
pub use sort::Sort;
pub use streaming::Streaming;
pub use streaming_args::StreamingArgs;
pub use word_search::WordSearch;
pub use wordcount::{WordCount, WordSink, for_each_word, for_each_word_key};

/// What the coordinator prepares for a job before its tasks run: the entries it puts in the
/// shared state store, which workers read when they build the job.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Entries for the state store, read by the workers when they build the job.
    pub state: Vec<(String, Vec<u8>)>,
}

/// What a job's preparation can see of the planned job.
pub struct PlanView<'a> {
    /// The job's own arguments and flags, parsed by its [`JobFactory::command`].
    pub args: &'a ArgMatches,
    /// How input files are read (`--input-format`).
    pub input_format: InputFormat,
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

/// Makes a job: declares its own arguments and flags, checks them and prepares shared state on
/// the coordinator, and builds the job on every worker.
///
/// A job's arguments are a clap command of its own: `mr run JOB` is that command, with
/// `mr run`'s flags around it, so `mr run JOB -h` shows the job's flags and `mr run -h` lists
/// the jobs. The flags given reach every worker as an argument list that the same command
/// parses again, so [`JobFactory::prepare`] and [`JobFactory::build`] see the same matches.
pub trait JobFactory: Send + Sync {
    /// Adds the job's own arguments and flags, and its description (`about`), to `command`,
    /// which is named after the job. The default adds none: a job without arguments.
    fn command(&self, command: clap::Command) -> clap::Command {
        command
    }
    /// Coordinator side, before any task runs: checks what clap cannot, and makes the state
    /// store's entries.
    fn prepare(&self, _plan: &PlanView<'_>) -> Result<Prepared> {
        Ok(Prepared::default())
    }
    /// Worker side, once per worker process.
    fn build(&self, args: &ArgMatches, state: &mut dyn StateReader) -> Result<Arc<dyn Job>>;
    /// Whether the job may run map-only (`--reduce-tasks 0`): its map output, written as
    /// `key<TAB>value` lines, is output that makes sense.
    fn allows_map_only(&self) -> bool {
        true
    }
    /// The number of reduce tasks the job's own flags ask for, used when `--reduce-tasks` is
    /// not given (streaming's `-D mapreduce.job.reduces=N`). The default asks for none.
    fn reduce_tasks(&self, _args: &ArgMatches) -> Result<Option<u32>> {
        Ok(None)
    }
    /// Whether records of the job with these arguments need line numbers (see
    /// [`Job::needs_line_numbers`]).
    fn needs_line_numbers(&self, _args: &ArgMatches) -> bool {
        false
    }
    /// The steps of a multi-step job (streaming's `--steps FILE`), each run as a job of its own
    /// with the step's arguments, its input the previous step's output; none for a job of one
    /// step, the default. Every step's arguments are checked here, before the first one runs.
    fn steps(&self, _args: &ArgMatches) -> Result<Option<Vec<JobStep>>> {
        Ok(None)
    }
}

/// One step of a multi-step job ([`JobFactory::steps`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobStep {
    /// The step's own argument list, for the same job's command.
    pub args: Vec<String>,
    /// The reduce tasks the step asks for (0: map-only); none: as for a job of one step.
    pub reduce_tasks: Option<u32>,
}

/// A factory for jobs that need nothing but their arguments: `F` makes the job from the
/// parsed matches. It declares no arguments; [`ArgsFactory`] declares them with a clap
/// `Args` struct.
pub struct SimpleFactory<F>(pub F);

impl<F, J> JobFactory for SimpleFactory<F>
where
    F: Fn(&ArgMatches) -> Result<J> + Send + Sync,
    J: Job + 'static,
{
    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        (self.0)(plan.args)?;
        Ok(Prepared::default())
    }

    fn build(&self, args: &ArgMatches, _state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        Ok(Arc::new((self.0)(args)?))
    }

    fn needs_line_numbers(&self, args: &ArgMatches) -> bool {
        (self.0)(args).is_ok_and(|job| job.needs_line_numbers())
    }
}

/// A factory for a job whose own flags and arguments are a clap `Args` struct `A`, with a
/// one-line description: `make` builds the job from the parsed `A`, on the coordinator (to
/// check it) and on every worker.
///
/// ```no_run
/// use mr::job::{ArgsFactory, Grep, Registry};
///
/// #[derive(clap::Args)]
/// struct Flags {
///     /// The regular expression.
///     #[arg(long)]
///     pattern: String,
/// }
///
/// fn main() -> std::process::ExitCode {
///     let factory = ArgsFactory::new("grep, with --pattern", |flags: Flags| Grep::new(&flags.pattern));
///     mr::cli::main_with(Registry::builtin().with("my-grep", factory))
/// }
/// ```
pub struct ArgsFactory<A, F> {
    about: &'static str,
    make: F,
    args: std::marker::PhantomData<fn() -> A>,
}

impl<A, F> ArgsFactory<A, F> {
    /// A factory that describes its job with `about` and makes it with `make`.
    pub fn new(about: &'static str, make: F) -> ArgsFactory<A, F> {
        ArgsFactory { about, make, args: std::marker::PhantomData }
    }
}

impl<A, F, J> ArgsFactory<A, F>
where
    A: clap::Args + clap::FromArgMatches,
    F: Fn(A) -> Result<J>,
{
    fn job(&self, matches: &ArgMatches) -> Result<J> {
        let args = A::from_arg_matches(matches).map_err(|e| Error::Job(format!("the job's arguments: {e}")))?;
        (self.make)(args)
    }
}

impl<A, F, J> JobFactory for ArgsFactory<A, F>
where
    A: clap::Args + clap::FromArgMatches,
    F: Fn(A) -> Result<J> + Send + Sync,
    J: Job + 'static,
{
    fn command(&self, command: clap::Command) -> clap::Command {
        // After the derive, which makes the struct's doc comment the about.
        A::augment_args(command).about(self.about).long_about(None)
    }

    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        self.job(plan.args)?;
        Ok(Prepared::default())
    }

    fn build(&self, args: &ArgMatches, _state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        Ok(Arc::new(self.job(args)?))
    }

    fn needs_line_numbers(&self, args: &ArgMatches) -> bool {
        self.job(args).is_ok_and(|job| job.needs_line_numbers())
    }
}

/// The arguments of a job that takes none.
#[derive(Debug, clap::Args)]
pub struct NoArgs {}

/// The jobs a binary knows, by name. Workers are processes of the same binary, so a job
/// registered here runs in them too.
///
/// ```no_run
/// use mr::job::{Registry, SimpleFactory, WordCount};
///
/// fn main() -> std::process::ExitCode {
///     let registry = Registry::builtin().with("my-wordcount", SimpleFactory(|_args: &clap::ArgMatches| Ok(WordCount)));
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
            .with("wordcount", NoMapOnly(ArgsFactory::new("Count words: word<TAB>count", |_: NoArgs| Ok(WordCount))))
            .with("word-search", word_search::Factory)
            .with("grep", grep::Factory)
            .with(
                "index",
                NoMapOnly(ArgsFactory::new("Inverted index: word<TAB>the files that contain it", |_: NoArgs| {
                    Ok(InvertedIndex)
                })),
            )
            .with("sort", sort::Factory)
            .with("streaming", streaming::Factory)
    }

    /// Adds (or replaces) a job.
    pub fn with(mut self, name: &str, factory: impl JobFactory + 'static) -> Registry {
        self.jobs.insert(name.to_string(), Box::new(factory));
        self
    }

    /// The names of the jobs, in order.
    pub fn names(&self) -> Vec<&str> {
        self.jobs.keys().map(String::as_str).collect()
    }

    /// The factory of a job.
    pub fn get(&self, name: &str) -> Result<&dyn JobFactory> {
        self.jobs
            .get(name)
            .map(|f| f.as_ref())
            .ok_or_else(|| Error::UnknownJob(name.to_string(), self.names().join(", ")))
    }

    /// The clap command of a job's own arguments and flags, named after it.
    pub fn command(&self, name: &str) -> Result<clap::Command> {
        Ok(self.get(name)?.command(clap::Command::new(name.to_string())))
    }

    /// Parses a job's argument list (as [`job_argv`] makes it) with the job's command.
    pub fn parse(&self, name: &str, args: &[String]) -> Result<ArgMatches> {
        let command = self.command(name)?.no_binary_name(true);
        command.try_get_matches_from(args).map_err(|e| Error::JobArgs {
            job: name.to_string(),
            message: e.render().to_string().trim_start_matches("error: ").trim_end().to_string(),
        })
    }

    /// Builds a job on a worker from its argument list and the state store.
    pub fn build(&self, name: &str, args: &[String], state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        self.get(name)?.build(&self.parse(name, args)?, state)
    }
}

/// A factory whose job needs its reduce: its map output is an encoding of its own.
struct NoMapOnly<F>(F);

impl<F: JobFactory> JobFactory for NoMapOnly<F> {
    fn command(&self, command: clap::Command) -> clap::Command {
        self.0.command(command)
    }

    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        self.0.prepare(plan)
    }

    fn build(&self, args: &ArgMatches, state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        self.0.build(args, state)
    }

    fn allows_map_only(&self) -> bool {
        false
    }

    fn reduce_tasks(&self, args: &ArgMatches) -> Result<Option<u32>> {
        self.0.reduce_tasks(args)
    }

    fn needs_line_numbers(&self, args: &ArgMatches) -> bool {
        self.0.needs_line_numbers(args)
    }

    fn steps(&self, args: &ArgMatches) -> Result<Option<Vec<JobStep>>> {
        self.0.steps(args)
    }
}

/// The argument list that gives `command` (a job's own command) the values that `matches`
/// holds from the command line or the environment: options first, as `--flag=value`, then the
/// positional arguments (after `--` when one starts with `-` or an option took several
/// values). Defaults are left out; the same command supplies them.
pub fn job_argv(command: &clap::Command, matches: &ArgMatches) -> Result<Vec<String>> {
    use clap::parser::ValueSource;
    let (mut options, mut positionals, mut several) = (Vec::new(), Vec::new(), false);
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if !matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let flag = match (arg.get_long(), arg.get_short()) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => String::new(),
        };
        if !arg.get_action().takes_values() {
            let times = if matches!(arg.get_action(), clap::ArgAction::Count) { matches.get_count(id) } else { 1 };
            options.extend(std::iter::repeat_n(flag, usize::from(times)));
            continue;
        }
        for occurrence in matches.get_raw_occurrences(id).into_iter().flatten() {
            let values = occurrence
                .map(|v| {
                    v.to_str().map(str::to_string).ok_or_else(|| Error::JobArgs {
                        job: command.get_name().to_string(),
                        message: format!("the value of {} is not UTF-8", if flag.is_empty() { id } else { &flag }),
                    })
                })
                .collect::<Result<Vec<String>>>()?;
            match (arg.is_positional(), values.as_slice()) {
                (true, _) => positionals.extend(values),
                (false, [one]) => options.push(format!("{flag}={one}")),
                // Values split on a delimiter (`--files a,b`) go back joined by it.
                (false, _) if arg.get_value_delimiter().is_some() => {
                    let delimiter = arg.get_value_delimiter().map(String::from).unwrap_or_default();
                    options.push(format!("{flag}={}", values.join(&delimiter)));
                }
                (false, _) => {
                    several = true;
                    options.extend(std::iter::once(flag.clone()).chain(values));
                }
            }
        }
    }
    if several || positionals.iter().any(|p: &String| p.starts_with('-')) {
        options.push("--".into());
    }
    options.extend(positionals);
    Ok(options)
}

/// The encoding of a count of one.
pub(crate) const ONE: [u8; 8] = 1u64.to_be_bytes();

/// Runs the job's code, turning a panic into an error.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => Err(Error::Job(format!("panicked: {}", panic_message(panic.as_ref())))),
    }
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
