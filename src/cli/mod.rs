//! The command line: `mr run`, `mr worker`, `mr gen`. Errors reach the user here, once, with
//! their whole chain. Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.

pub mod config;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::control::plan::{self, JobRequest};
use crate::data::input::InputFormat;
use crate::error::Error;
use crate::exec::fault::Faults;
use crate::exec::task::{AttemptProgress, TaskSettings};
use crate::job::{JobOptions, Registry};
use crate::launch::run::RunConfig;
use crate::report::progress::ProgressMode;
use crate::report::summary::Summary;
use crate::tools::datagen;
use crate::worker::WorkerOptions;
use config::{FileConfig, LogFormat, WorkerFileConfig};

/// A MapReduce engine: count, index, grep and sort files with worker processes.
#[derive(Debug, Parser)]
#[command(name = "mr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr (and in worker log files): text or json.
    #[arg(long, global = true, value_enum, env = "MR_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job. With no arguments: word count on a generated sample corpus.
    Run(Box<RunArgs>),
    /// Run a job's coordinator alone, for workers that join from any host (`mr worker
    /// --coordinator URL`); local workers only with --workers N. Exits with the job's status.
    Coordinator(Box<RunArgs>),
    /// Run a worker that pulls tasks from a coordinator (started by `mr run`, or by hand).
    Worker(WorkerArgs),
    /// Print the state of a running job, from its status server (the `status:` URL that
    /// `mr run` prints), or of a finished one, from its output's `_job.json`.
    Status {
        /// The status server's URL, e.g. http://127.0.0.1:40123/; or a job's output directory
        /// (or its `_job.json`).
        target: String,
        /// Print the status page's HTML instead of text (offline, for a finished job).
        #[arg(long)]
        html: bool,
    },
    /// Generate deterministic sample data.
    #[command(subcommand)]
    Gen(GenCommand),
    /// Benchmark `mr run wordcount` against baselines on a generated corpus.
    Bench(BenchArgs),
    /// Measure the coordinator's cost per task: simulated workers over loopback gRPC that do
    /// no task work, against empty calls; with --job, also a real `mr run` of many map tasks.
    BenchCoordinator(BenchCoordinatorArgs),
    /// Simulate the MapReduce paper's cluster, driving mr's real scheduler with simulated
    /// time: a preset (sort-normal, sort-no-backup, sort-kill-200, grep, scale), or `check`
    /// for randomized fault schedules checked against the scheduler's invariants.
    Simulate(SimulateArgs),
    /// Run a command and print its resource usage as JSON (used by `mr bench`).
    #[command(hide = true)]
    BenchExec {
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
    /// Runs a streaming command as a guard that kills the command's processes when it ends
    /// or its parent dies (used by the streaming job).
    #[command(hide = true)]
    StreamGuard {
        /// The process (the worker) whose death ends the command.
        #[arg(long)]
        parent: u32,
        /// The command, run with `sh -c`.
        #[arg(last = true, required = true)]
        command: String,
    },
    /// The Unicode-correct word count baseline of `mr bench` (no code shared with the engine).
    #[command(hide = true)]
    BenchWordcount {
        /// Threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Input files or directories.
        #[arg(long, num_args = 1.., required = true)]
        input: Vec<PathBuf>,
        /// Output file.
        #[arg(long)]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Size of the generated corpus.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    size: u64,
    /// Directory for the corpus and outputs (kept, and reused on the next run); a temporary
    /// directory by default.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Sort buffer of the `mr run` variants.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    sort_buffer: u64,
    /// Strings of the word-search workload (the original's default: 500000).
    #[arg(long, default_value_t = 500_000)]
    word_search_strings: u64,
    /// Skip the coreutils pipeline (slow on large corpora).
    #[arg(long)]
    no_pipeline: bool,
    /// Print the rows as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// A corpus directory to use instead of generating one (e.g. the real-text corpus of
    /// scripts/real-text-corpus.sh).
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// The ASCII-only word count to measure as well (`PROGRAM DIR --threads N` printing
    /// `word count` lines), e.g. target/peers/release/wc_rust; it runs only on an ASCII corpus.
    #[arg(long, value_name = "PROGRAM")]
    ascii_count: Option<PathBuf>,
    /// Runs of each command, alternating; the table shows medians.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only the word counts: no pipeline, word search or 1 KB job.
    #[arg(long)]
    wordcount_only: bool,
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// sort-normal, sort-no-backup, sort-kill-200, grep, scale, or check.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(crate::tools::simulate::presets::NAMES.iter().copied().chain(["check"])))]
    scenario: String,
    /// Seed of everything random in the simulation (check: run this one seed, verbosely).
    #[arg(long)]
    seed: Option<u64>,
    /// check: the seeds to run, FIRST..END (END excluded).
    #[arg(long, default_value = "0..1000", value_parser = parse_seed_range)]
    seeds: std::ops::Range<u64>,
    /// Write the input, shuffle and output rates over time to this SVG file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Write the event trace to this file.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Override the preset's fraction of slowed machines (0 to 1).
    #[arg(long, value_name = "FRACTION", value_parser = parse_fraction)]
    slow_fraction: Option<f64>,
    /// Override the preset's slowdown of those machines' disk and CPU (at least 1).
    #[arg(long, value_name = "FACTOR", value_parser = parse_slowdown)]
    slow_factor: Option<f64>,
    /// Override the time at which the preset's workers are killed, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    kill_at: Option<f64>,
    /// Override the bandwidth through the root switch, in Gbps (the paper: 100-200).
    #[arg(long, value_name = "GBPS", value_parser = parse_gbps)]
    root_gbps: Option<f64>,
    /// Turn backup attempts on or off, whatever the preset says.
    #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
    speculative: Option<bool>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_number(s: &str, ok: impl Fn(f64) -> bool, what: &str) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("{s:?} is not a number: {e}"))?;
    if ok(v) && v.is_finite() { Ok(v) } else { Err(format!("{s} is out of range: give {what}")) }
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    parse_number(s, |v| (0.0..=1.0).contains(&v), "a fraction from 0 to 1")
}

fn parse_slowdown(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v >= 1.0, "a factor of at least 1 (1 = not slowed)")
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v >= 0.0, "seconds from the job's start, 0 or more")
}

fn parse_gbps(s: &str) -> Result<f64, String> {
    parse_number(s, |v| v > 0.0, "a positive number of Gbps")
}

fn parse_seed_range(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or_else(|| format!("{s:?} is not a range FIRST..END, e.g. 0..1000"))?;
    let a: u64 = a.trim().parse().map_err(|e| format!("{a:?} in --seeds: {e}"))?;
    let b: u64 = b.trim().parse().map_err(|e| format!("{b:?} in --seeds: {e}"))?;
    if a >= b {
        return Err(format!("--seeds {s} is empty: END must be above FIRST"));
    }
    Ok(a..b)
}

#[derive(Debug, Args)]
struct BenchCoordinatorArgs {
    /// Map tasks of the job.
    #[arg(long, default_value_t = 10_000)]
    maps: u32,
    /// Reduce tasks of the job.
    #[arg(long, default_value_t = 8)]
    reduces: u32,
    /// Numbers of concurrent simulated workers, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    clients: Vec<u32>,
    /// Also run `mr run wordcount` with this many worker processes on a corpus of --maps
    /// splits, and report the CPU time of the `mr run` process alone.
    #[arg(long, value_name = "WORKERS")]
    job: Option<u32>,
    /// Directory for the --job corpus and outputs (kept, and reused); a temporary directory
    /// by default.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Print the results as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The job: wordcount, word-search, grep PATTERN, index, sort, streaming (or a job of
    /// this binary's registry); or teragen / teravalidate.
    job: Option<String>,
    /// Arguments of the job.
    job_args: Vec<String>,
    /// Input files or directories (walked recursively; names starting with `_` or `.` skipped).
    #[arg(short, long = "input", num_args = 1.., value_name = "PATH")]
    input: Vec<PathBuf>,
    /// Output directory; must be empty or absent unless --overwrite.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Bytes per input split (e.g. 64MiB); by default derived from the input size.
    #[arg(long, value_name = "BYTES", env = "MR_SPLIT_SIZE", value_parser = parse_positive_size)]
    split_size: Option<u64>,
    /// Number of reduce tasks (and part files); default: the number of workers.
    #[arg(short, long, value_name = "R", env = "MR_REDUCE_TASKS", value_parser = clap::value_parser!(u32).range(1..))]
    reduce_tasks: Option<u32>,
    /// Number of worker processes; default: the number of cores. At most 8 per core unless
    /// --oversubscribe.
    #[arg(short, long, value_name = "W", env = "MR_WORKERS", value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,
    /// Start more than 8 local worker processes per core when --workers asks for them.
    #[arg(long, env = "MR_OVERSUBSCRIBE", value_parser = clap::builder::BoolishValueParser::new())]
    oversubscribe: bool,
    /// Intermediate data a map task holds in memory before it spills a sorted run to disk.
    #[arg(
        long,
        value_name = "BYTES",
        env = "MR_SORT_BUFFER",
        default_value = "64MiB",
        value_parser = parse_positive_size,
    )]
    sort_buffer: u64,
    /// Most sorted runs merged at once (map spills, reduce inputs); more merge in passes.
    #[arg(
        long,
        value_name = "N",
        env = "MR_MERGE_FAN_IN",
        default_value_t = 64,
        value_parser = clap::value_parser!(u32).range(2..),
    )]
    merge_fan_in: u32,
    /// Largest input record (a line, or a whole file with --input-format whole-file) a map task
    /// reads; a larger one fails its task with an error that names it. Memory grows with it.
    #[arg(
        long,
        value_name = "BYTES",
        env = "MR_MAX_RECORD_BYTES",
        default_value = "64MiB",
        value_parser = parse_positive_size,
    )]
    max_record_bytes: u64,
    /// Address of the coordinator's gRPC server; default: a free port on 127.0.0.1.
    #[arg(long, value_name = "ADDR", env = "MR_LISTEN")]
    listen: Option<String>,
    /// Address of the status server (HTML page at /, JSON at /api/v1/job, Prometheus metrics
    /// at /metrics), or `off`; default: a free port on 127.0.0.1.
    #[arg(long, value_name = "ADDR", env = "MR_HTTP")]
    http: Option<String>,
    /// Shared secret that every call between the coordinator and its workers carries; `mr run`
    /// makes a random one for its own workers when none is given.
    #[arg(long, value_name = "TOKEN", env = "MR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// TLS on every service and call: the PEM certificate chain this process presents, as a
    /// server and as a client. With --tls-key and --tls-ca; every process of the job has the
    /// same three files.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of the --tls-cert certificate.
    #[arg(long, value_name = "FILE", env = "MR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// TLS: the PEM certificate of the CA that signed the job's certificates, the only one
    /// trusted; servers also require a client certificate that it signed.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Run sequentially in this process, without workers or RPC.
    #[arg(long)]
    local: bool,
    /// Replace the contents of a non-empty output directory.
    #[arg(long)]
    overwrite: bool,
    /// Continue a job whose coordinator was killed: the same command with --resume reads the
    /// journal in the output directory and runs only the tasks that had not committed.
    #[arg(long, conflicts_with_all = ["overwrite", "local"])]
    resume: bool,
    /// word-search: file of target words, one per line.
    #[arg(long, value_name = "FILE")]
    targets: Option<PathBuf>,
    /// How input files are read: text lines (`.gz` files decompressed), whole files, or
    /// 100-byte TeraGen records.
    #[arg(long, value_name = "FORMAT", value_enum, env = "MR_INPUT_FORMAT", default_value_t = InputFormat::Text)]
    input_format: InputFormat,
    /// streaming: the mapper command (run with `sh -c`).
    #[arg(long, value_name = "CMD")]
    mapper: Option<String>,
    /// streaming: the reducer command.
    #[arg(long, value_name = "CMD")]
    reducer: Option<String>,
    /// streaming: the combiner command.
    #[arg(long, value_name = "CMD")]
    combiner: Option<String>,
    /// teragen: number of 100-byte records to write.
    #[arg(long, value_name = "N")]
    records: Option<u64>,
    /// teragen: seed of the records.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// A worker silent for this long is declared dead and its tasks rerun.
    #[arg(
        long,
        value_name = "DURATION",
        env = "MR_WORKER_TIMEOUT",
        default_value = "10s",
        value_parser = humantime::parse_duration,
    )]
    worker_timeout: Duration,
    /// A task that fails this many times fails the job.
    #[arg(
        long,
        value_name = "N",
        env = "MR_MAX_ATTEMPTS",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..),
    )]
    max_attempts: u32,
    /// Dead worker processes are replaced; this many dying in a row with no task committed in
    /// between fail the job.
    #[arg(long, value_name = "N", env = "MR_MAX_RESTARTS", default_value_t = 8)]
    max_restarts: u32,
    /// An attempt that reports no progress for this long is abandoned and rerun.
    #[arg(
        long,
        value_name = "DURATION",
        env = "MR_TASK_TIMEOUT",
        default_value = "60s",
        value_parser = humantime::parse_duration,
    )]
    task_timeout: Duration,
    /// Backup attempts of slow tasks near the end of each phase.
    #[arg(
        long,
        value_name = "on|off",
        env = "MR_SPECULATIVE",
        default_value = "on",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set,
    )]
    speculative: bool,
    /// Skip a record on which two attempts of its map task failed, and count it.
    #[arg(long, env = "MR_SKIP_BAD_RECORDS", value_parser = clap::builder::BoolishValueParser::new())]
    skip_bad_records: bool,
    /// Hash every input file's contents (xxh3) when planning, a full read of the input, and
    /// record the hashes in the journal: --resume then refuses an input whose contents changed
    /// even if its size and modification time did not. Off by default: --resume compares size
    /// and modification time only. A resumed job whose journal holds hashes is always checked.
    #[arg(long, env = "MR_VERIFY_INPUTS", value_parser = clap::builder::BoolishValueParser::new())]
    verify_inputs: bool,
    /// Configuration file (TOML) for the settings that no flag and no MR_* variable sets; see
    /// mr.example.toml.
    #[arg(long, value_name = "FILE", env = "MR_CONFIG")]
    config: Option<PathBuf>,
    /// Fault injection: probability in [0, 1] that a worker exits abruptly mid-attempt.
    #[arg(long, value_name = "P", env = "MR_INJECT_FAILURE", value_parser = parse_probability)]
    inject_failure: Option<f64>,
    /// Fault injection: probability in [0, 1] that an attempt straggles.
    #[arg(long, value_name = "P", env = "MR_INJECT_STRAGGLER", value_parser = parse_probability)]
    inject_straggler: Option<f64>,
    /// Fault injection: how long a straggling attempt sleeps, in milliseconds.
    #[arg(long, value_name = "MS", env = "MR_STRAGGLER_DELAY")]
    straggler_delay: Option<u64>,
    /// Fault injection: seed of the decisions, to reproduce a run.
    #[arg(long, value_name = "N", env = "MR_INJECT_SEED")]
    inject_seed: Option<u64>,
    /// Fault injection as the config file sets it, under the flags above.
    #[arg(skip)]
    file_faults: Faults,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// The coordinator's URL, e.g. http://127.0.0.1:7000.
    #[arg(long, value_name = "URL", env = "MR_COORDINATOR")]
    coordinator: Option<String>,
    /// How long to retry the first connection.
    #[arg(
        long,
        value_name = "DURATION",
        env = "MR_CONNECT_TIMEOUT",
        default_value = "10s",
        value_parser = humantime::parse_duration,
    )]
    connect_timeout: Duration,
    /// Exit when the coordinator has been unreachable this long.
    #[arg(
        long,
        value_name = "DURATION",
        env = "MR_LOST_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration,
    )]
    lost_timeout: Duration,
    /// Configuration file (TOML): its [worker] table, for the settings that no flag and no MR_*
    /// variable sets.
    #[arg(long, value_name = "FILE", env = "MR_CONFIG")]
    config: Option<PathBuf>,
    /// The coordinator's token (see `mr coordinator --token`). On a command line other users
    /// can read it: prefer MR_TOKEN or --token-file.
    #[arg(long, value_name = "TOKEN", env = "MR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the coordinator's token (its first line), instead of --token.
    #[arg(long, value_name = "FILE", env = "MR_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// TLS on every service and call: the PEM certificate chain this process presents, as a
    /// server and as a client. With --tls-key and --tls-ca; every process of the job has the
    /// same three files.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of the --tls-cert certificate.
    #[arg(long, value_name = "FILE", env = "MR_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// TLS: the PEM certificate of the CA that signed the job's certificates, the only one
    /// trusted; servers also require a client certificate that it signed.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Host name or IP address other workers reach this one at; default: the local address of
    /// its connection to the coordinator.
    #[arg(long, value_name = "HOST", env = "MR_ADVERTISE")]
    advertise: Option<String>,
    /// Where to make the worker's work directory (map outputs it serves, fetched partitions);
    /// default: the system temp dir. It is removed when the worker exits, and a worker starting
    /// in the same DIR removes those of workers that died without removing theirs (SIGKILL).
    #[arg(long, value_name = "DIR", env = "MR_WORK_DIR")]
    work_dir: Option<PathBuf>,
    /// Set by `mr run` on the workers it starts, which die with it: they wait for a coordinator
    /// that stopped answering (a paused or overloaded `mr run`) for at least
    /// `SUPERVISED_LOST_TIMEOUT`, whatever --lost-timeout says.
    #[arg(long, hide = true)]
    supervised: bool,
}

/// How long the workers that `mr run` starts wait for their coordinator at least: `mr run` is
/// their parent, and they die with it (`PR_SET_PDEATHSIG`), so a coordinator that does not
/// answer is paused or overloaded, not gone.
const SUPERVISED_LOST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
enum GenCommand {
    /// The original system's workload: random lowercase strings and a targets file.
    WordSearch {
        /// Directory to write strings.txt and targets.txt into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Number of strings.
        #[arg(long, default_value_t = 500_000)]
        strings: u64,
        /// Longest string.
        #[arg(long, default_value_t = 15)]
        max_len: u32,
        /// Number of targets.
        #[arg(long, default_value_t = 100)]
        targets: u32,
        /// Length of each target.
        #[arg(long, default_value_t = 3)]
        target_len: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// English-like text, for word counts and benchmarks.
    Text {
        /// Directory to write part-NNN.txt files into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Total size, e.g. 256MiB.
        #[arg(long, default_value = "4MiB", value_parser = parse_size)]
        size: u64,
        /// Number of files.
        #[arg(long, default_value_t = 4)]
        files: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the characters and line ends where text rules differ: combining marks,
        /// letter numbers, circled and 4-byte letters, a lone `\r` in a line, `\r\n`, and a
        /// last line ending with `\r`.
        #[arg(long)]
        unicode: bool,
    },
}

fn parse_on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(format!("expected on or off (or true or false), got '{s}'")),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("expected a probability in [0, 1], got '{s}'")),
    }
}

/// Whether a flag or an environment variable set a setting; if not, the config file may.
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Sets a setting from the config file, unless a flag or an environment variable set it.
fn layer<T>(setting: &mut T, file: Option<T>, matches: &ArgMatches, id: &str) {
    if let Some(value) = file
        && !explicit(matches, id)
    {
        *setting = value;
    }
}

impl RunArgs {
    /// Takes from the config file the settings that no flag and no environment variable set.
    fn layer_file(&mut self, file: &FileConfig, matches: &ArgMatches) {
        layer(&mut self.workers, file.workers.map(Some), matches, "workers");
        layer(&mut self.reduce_tasks, file.reduce_tasks.map(Some), matches, "reduce_tasks");
        layer(&mut self.split_size, file.split_size.map(Some), matches, "split_size");
        layer(&mut self.sort_buffer, file.sort_buffer, matches, "sort_buffer");
        layer(&mut self.merge_fan_in, file.merge_fan_in, matches, "merge_fan_in");
        layer(&mut self.max_record_bytes, file.max_record_bytes, matches, "max_record_bytes");
        layer(&mut self.listen, file.listen.clone().map(Some), matches, "listen");
        layer(&mut self.http, file.http.clone().map(Some), matches, "http");
        layer(&mut self.worker_timeout, file.worker_timeout, matches, "worker_timeout");
        layer(&mut self.task_timeout, file.task_timeout, matches, "task_timeout");
        layer(&mut self.max_attempts, file.max_attempts, matches, "max_attempts");
        layer(&mut self.max_restarts, file.max_restarts, matches, "max_restarts");
        layer(&mut self.speculative, file.speculative, matches, "speculative");
        layer(&mut self.skip_bad_records, file.skip_bad_records, matches, "skip_bad_records");
        layer(&mut self.verify_inputs, file.verify_inputs, matches, "verify_inputs");
        layer(&mut self.input_format, file.input_format, matches, "input_format");
        layer(&mut self.tls_cert, file.tls_cert.clone().map(Some), matches, "tls_cert");
        layer(&mut self.tls_key, file.tls_key.clone().map(Some), matches, "tls_key");
        layer(&mut self.tls_ca, file.tls_ca.clone().map(Some), matches, "tls_ca");
    }
}

impl WorkerArgs {
    /// Takes from the config file's `[worker]` table the settings that no flag and no
    /// environment variable set.
    fn layer_file(&mut self, file: &WorkerFileConfig, matches: &ArgMatches) {
        layer(&mut self.coordinator, file.coordinator.clone().map(Some), matches, "coordinator");
        layer(&mut self.connect_timeout, file.connect_timeout, matches, "connect_timeout");
        layer(&mut self.lost_timeout, file.lost_timeout, matches, "lost_timeout");
        layer(&mut self.tls_cert, file.tls_cert.clone().map(Some), matches, "tls_cert");
        layer(&mut self.tls_key, file.tls_key.clone().map(Some), matches, "tls_key");
        layer(&mut self.tls_ca, file.tls_ca.clone().map(Some), matches, "tls_ca");
    }
}

/// The faults to inject: the config file's, overridden for both phases by the `--inject-*`
/// flags or their environment variables.
fn faults(args: &RunArgs, mut faults: Faults) -> Faults {
    for phase in [&mut faults.map, &mut faults.reduce] {
        if let Some(p) = args.inject_failure {
            phase.failure = p;
        }
        if let Some(p) = args.inject_straggler {
            phase.straggler = p;
        }
        if let Some(ms) = args.straggler_delay {
            phase.straggler_delay_ms = ms;
        }
    }
    if let Some(seed) = args.inject_seed {
        faults.seed = seed;
    }
    faults
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| format!("invalid size '{s}': {e}"))
}

fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("invalid size '{s}': must be at least 1 byte")),
        size => Ok(size),
    }
}

/// Entry point of the `mr` binary: the built-in jobs.
pub fn main() -> ExitCode {
    main_with(Registry::builtin())
}

/// Entry point of a binary with its own jobs: `mr`'s command line, with the jobs of
/// `registry`. Worker processes are started from the same binary, so they know them too.
pub fn main_with(registry: Registry) -> ExitCode {
    // The matches tell which settings a flag or an MR_* variable set, so that the config file
    // fills in only the others.
    let matches = parse_command_line();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut Cli::command()).exit());
    if let Command::StreamGuard { parent, command } = &cli.command {
        return stream_guard(*parent, command);
    }
    // Streaming commands run under this binary's `stream-guard`.
    if let Ok(exe) = std::env::current_exe() {
        crate::job::streaming::set_guard(exe);
    }
    let result = configure(cli, &matches).and_then(|cli| dispatch(cli, registry));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mr: error: {e:#}");
            if e.downcast_ref::<Error>().is_some_and(Error::is_interrupted) {
                ExitCode::from(130)
            } else if e.downcast_ref::<Error>().is_some_and(Error::is_usage) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Parses the flags and the MR_* variables; exits with code 2 on a bad value. clap's message
/// names the flag; when the bad value came from its environment variable, a tip names that.
fn parse_command_line() -> ArgMatches {
    let mut command = Cli::command();
    command.try_get_matches_from_mut(std::env::args_os()).unwrap_or_else(|mut e| {
        if let Some(var) = bad_env_var(&command, &e) {
            let tip = format!("the value comes from the environment variable {var}");
            e.insert(ContextKind::Suggested, ContextValue::StyledStrs(vec![tip.into()]));
        }
        e.exit()
    })
}

/// The environment variable that gave the value a parse error is about, unless the flag is on
/// the command line.
fn bad_env_var(command: &clap::Command, e: &clap::Error) -> Option<String> {
    if !matches!(e.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let (Some(ContextValue::String(flag)), Some(ContextValue::String(value))) =
        (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue))
    else {
        return None;
    };
    let args = command.get_arguments().chain(command.get_subcommands().flat_map(|c| c.get_arguments()));
    let arg = args
        .filter(|a| a.get_env().is_some())
        .find(|a| a.get_long().is_some_and(|long| flag.split(' ').next() == Some(&format!("--{long}"))))?;
    let (long, short) = (format!("--{}", arg.get_long()?), arg.get_short());
    let on_command_line = std::env::args_os().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == long
            || a.starts_with(&format!("{long}="))
            || short.is_some_and(|s| !a.starts_with("--") && a.starts_with('-') && a.contains(s))
    });
    let var = arg.get_env()?;
    (!on_command_line && std::env::var_os(var).is_some_and(|v| v == value.as_str()))
        .then(|| var.to_string_lossy().into_owned())
}

/// `mr stream-guard`: ends as the command ended, with its exit code or by its signal.
fn stream_guard(parent: u32, command: &str) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let status = match crate::job::streaming::guard(parent, command) {
        Ok(Some(status)) => status,
        Ok(None) => return ExitCode::from(143),
        Err(e) => {
            eprintln!("mr: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(code) = status.code() {
        return ExitCode::from(code as u8);
    }
    let Some(signal) = status.signal().and_then(|s| nix::sys::signal::Signal::try_from(s).ok()) else {
        return ExitCode::FAILURE;
    };
    // Dies by the same signal, without a core file of its own.
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    // SAFETY: restoring the default action of a signal.
    let _ = unsafe { nix::sys::signal::signal(signal, nix::sys::signal::SigHandler::SigDfl) };
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(signal);
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = nix::sys::signal::raise(signal);
    ExitCode::from(128 + signal as u8)
}

/// Whether the token was given as a flag, where other users see it in the process list.
fn token_on_command_line() -> bool {
    std::env::args_os().any(|a| a == "--token" || a.to_string_lossy().starts_with("--token="))
}

/// Layers the config file, if there is one, under the flags and environment variables.
fn configure(mut cli: Cli, matches: &ArgMatches) -> anyhow::Result<Cli> {
    let config = match &cli.command {
        Command::Run(args) | Command::Coordinator(args) => args.config.as_deref(),
        Command::Worker(args) => args.config.as_deref(),
        _ => None,
    };
    let Some(path) = config else { return Ok(cli) };
    let file = FileConfig::load(path)?;
    layer(&mut cli.log_format, file.log_format, matches, "log_format");
    if let Some((_, sub)) = matches.subcommand() {
        match &mut cli.command {
            Command::Run(args) | Command::Coordinator(args) => {
                args.layer_file(&file, sub);
                args.file_faults = file.faults;
            }
            Command::Worker(args) => args.layer_file(&file.worker, sub),
            _ => {}
        }
    }
    Ok(cli)
}

fn dispatch(cli: Cli, registry: Registry) -> anyhow::Result<()> {
    init_logging(cli.log_format);
    if token_on_command_line() {
        eprintln!(
            "mr: warning: --token on the command line can be read by every user of this host (ps, /proc): give it in \
             MR_TOKEN{}",
            if matches!(cli.command, Command::Worker(_)) { " or --token-file FILE" } else { "" }
        );
    }
    match cli.command {
        Command::Run(args) => run(*args, registry, cli.log_format, false),
        Command::Coordinator(args) => run(*args, registry, cli.log_format, true),
        Command::Worker(args) => worker(args, registry),
        Command::Status { target, html } => {
            crate::report::status::show(&target, html).map(|text| print!("{text}")).map_err(Into::into)
        }
        Command::Gen(cmd) => generate(cmd),
        Command::Bench(args) => bench(args),
        Command::BenchCoordinator(args) => bench_coordinator(args),
        Command::Simulate(args) => simulate(args),
        Command::BenchExec { argv } => bench_exec(&argv),
        Command::StreamGuard { .. } => bail!("mr stream-guard runs before logging is set up"),
        Command::BenchWordcount { threads, input, output } => {
            crate::tools::bench::hand_written_wordcount(&input, threads, &output).map_err(anyhow::Error::from)
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().init(),
    }
}

/// Local worker processes allowed per core without --oversubscribe.
const WORKERS_PER_CORE: u32 = 8;

/// `mr run`, or with `standalone` `mr coordinator`. With `--json`, a job that fails or is
/// interrupted prints its summary too (`succeeded` false, `error` set).
fn run(args: RunArgs, registry: Registry, log_format: LogFormat, standalone: bool) -> anyhow::Result<()> {
    let json = args.json;
    let (job, local) = (args.job.clone(), args.local);
    let mut summary = None;
    let result = run_job(args, registry, log_format, standalone, &mut summary);
    if let (true, Err(e)) = (json, &result) {
        let interrupted = e.downcast_ref::<Error>().is_some_and(Error::is_interrupted);
        let failed = match summary {
            Some(summary) => serde_json::to_value(&summary)?,
            None => serde_json::json!({
                "job": job.unwrap_or_else(|| "wordcount".into()),
                "mode": if local { "local" } else { "distributed" },
                "succeeded": false,
                "interrupted": interrupted,
                "error": format!("{e:#}"),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&failed)?);
    }
    result
}

/// Runs a job; when it ran far enough to have a summary and then failed, leaves that in
/// `failed`.
fn run_job(
    args: RunArgs,
    registry: Registry,
    log_format: LogFormat,
    standalone: bool,
    failed: &mut Option<Summary>,
) -> anyhow::Result<()> {
    if standalone && args.local {
        bail!("mr coordinator runs distributed; use mr run --local for a local run");
    }
    if standalone && args.listen.is_none() {
        bail!("mr coordinator needs --listen ADDR (e.g. 0.0.0.0:7000) so that workers know where to join");
    }
    match args.job.as_deref() {
        Some("teragen") => return teragen(&args),
        Some("teravalidate") => return teravalidate(&args),
        _ => {}
    }
    let sample = args.job.is_none() && args.input.is_empty() && args.output.is_none();
    let job = args.job.clone().unwrap_or_else(|| "wordcount".into());
    // The sample's corpus lives until the job ends.
    let sample_data = if sample { Some(crate::tools::sample::Sample::create()?) } else { None };
    let (inputs, output) = if let Some(data) = &sample_data {
        (vec![data.input().to_path_buf()], data.output().to_path_buf())
    } else {
        if args.input.is_empty() {
            bail!("job '{job}' needs --input PATH...");
        }
        let Some(output) = args.output.clone() else { bail!("job '{job}' needs --output DIR") };
        (args.input.clone(), output)
    };
    let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
    // mr coordinator starts local workers only when asked; the plan's defaults still assume
    // about as many workers as this host has cores.
    let workers = args.workers.unwrap_or(if standalone { 0 } else { cores });
    let planned_workers = args.workers.unwrap_or(cores);
    let limit = WORKERS_PER_CORE.saturating_mul(cores);
    if !args.local && !args.oversubscribe && workers > limit {
        return Err(Error::TooManyWorkers { workers, cores, per_core: WORKERS_PER_CORE, limit }.into());
    }
    let request = JobRequest {
        job: job.clone(),
        job_args: args.job_args.clone(),
        job_options: JobOptions {
            targets: args.targets.clone(),
            mapper: args.mapper.clone(),
            reducer: args.reducer.clone(),
            combiner: args.combiner.clone(),
            input_format: args.input_format,
        },
        inputs,
        output,
        split_size: args.split_size,
        reduce_tasks: args.reduce_tasks,
        workers: planned_workers,
        overwrite: args.overwrite,
        resume: args.resume,
        settings: TaskSettings {
            partitions: 0,
            sort_buffer: args.sort_buffer.max(1),
            merge_fan_in: args.merge_fan_in as usize,
            max_record_bytes: args.max_record_bytes,
        },
    };
    let faults = faults(&args, args.file_faults);
    // Checked before the plan touches the output directory; a local run has no services.
    let tls = if args.local {
        None
    } else {
        crate::net::rpc::Tls::load(args.tls_cert.as_deref(), args.tls_key.as_deref(), args.tls_ca.as_deref())?
    };
    let plan = plan::plan(&request, &registry)?;
    // Paths as text: a name that is not UTF-8 is percent-encoded, not an error.
    let text = |p: &Path| crate::data::input::path_text(p).into_owned();
    let optional_text = |p: &Option<PathBuf>| p.as_deref().map(text);
    // From here on, what this process and its workers create is private to the user (work
    // files, logs, the journal); the output's files follow the umask it was started with.
    crate::data::storage::private_umask();
    let config = serde_json::json!({
        "job": job,
        "args": args.job_args,
        "inputs": request.inputs.iter().map(|p| text(p)).collect::<Vec<_>>(),
        "output": text(plan.output.path()),
        "input_format": args.input_format,
        "input_bytes": plan.input_bytes,
        "map_tasks": plan.splits.len(),
        "reduce_tasks": plan.reduce_tasks,
        "local": args.local,
        "workers": workers,
        "split_size": args.split_size,
        "sort_buffer": args.sort_buffer,
        "merge_fan_in": args.merge_fan_in,
        "max_record_bytes": args.max_record_bytes,
        "worker_timeout_ms": args.worker_timeout.as_millis() as u64,
        "task_timeout_ms": args.task_timeout.as_millis() as u64,
        "max_attempts": args.max_attempts,
        "max_restarts": args.max_restarts,
        "speculative": args.speculative,
        "skip_bad_records": args.skip_bad_records,
        "verify_inputs": args.verify_inputs,
        "listen": args.listen,
        "http": args.http,
        "log_format": log_format,
        "config_file": optional_text(&args.config),
        "tls_cert": optional_text(&args.tls_cert),
        "tls_key": optional_text(&args.tls_key),
        "tls_ca": optional_text(&args.tls_ca),
        "faults": faults,
    });
    let plan_output = plan.output.path().to_path_buf();
    let summary = if args.local {
        run_local(registry, &job, plan)?
    } else {
        let config = RunConfig {
            workers,
            listen: args.listen.clone(),
            worker_timeout: args.worker_timeout,
            max_attempts: args.max_attempts,
            max_restarts: args.max_restarts,
            task_timeout: args.task_timeout,
            speculative: args.speculative,
            skip_bad_records: args.skip_bad_records,
            verify_inputs: args.verify_inputs,
            faults,
            worker_args: worker_args(&args, log_format)?,
            progress: if args.quiet || args.json { ProgressMode::Off } else { ProgressMode::Auto },
            http: match args.http.as_deref() {
                Some("off") => None,
                Some(addr) => Some(addr.to_string()),
                None => Some("127.0.0.1:0".to_string()),
            },
            announce: !args.quiet,
            token: args.token.clone(),
            tls,
            about: crate::report::status::About { command: command_line(), settings: config.clone(), logs: None },
            standalone,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        match runtime.block_on(crate::launch::run::run_job(&job, plan, config)) {
            Ok(summary) => summary,
            Err(crate::launch::run::Failed { error, summary }) => {
                *failed = summary.map(|s| *s);
                return Err(error.into());
            }
        }
    };
    // The job's data is committed: a history that cannot be written is worth a warning, not a
    // failed command.
    if let Err(e) = write_history(plan_output.as_path(), config, &summary) {
        eprintln!("mr: warning: the job committed, but {e:#}");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        println!("{summary}");
        if sample {
            print_top_words(&summary, 20)?;
        }
    }
    Ok(())
}

/// The arguments of the `mr worker` processes that `mr run` starts, besides the coordinator's
/// URL: the log format, and the config file for its `[worker]` table. They also inherit the
/// environment, hence the MR_* variables.
fn worker_args(args: &RunArgs, log_format: LogFormat) -> anyhow::Result<Vec<String>> {
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mut worker_args = vec!["--log-format".into(), format.into()];
    if let Some(path) = &args.config {
        let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
        let Some(absolute) = absolute.to_str() else {
            bail!("the config file's path {} is not UTF-8: rename it to run distributed", path.display())
        };
        worker_args.extend(["--config".into(), absolute.into()]);
    }
    Ok(worker_args)
}

/// Writes `_job.json` into a committed job's output: its configuration, counters, and every
/// attempt with its timings and outcome.
fn write_history(output: &Path, config: serde_json::Value, summary: &Summary) -> anyhow::Result<()> {
    let history =
        serde_json::json!({ "command": command_line(), "config": config, "summary": summary, "status": summary.view });
    if crate::data::storage::is_url(output) {
        let path = crate::data::storage::join(output, crate::layout::HISTORY);
        return Ok(crate::data::storage::write(&path, serde_json::to_vec_pretty(&history)?)?);
    }
    let path = output.join(crate::layout::HISTORY);
    let tmp = output.join(format!(".{}.tmp", crate::layout::HISTORY));
    std::fs::write(&tmp, serde_json::to_vec_pretty(&history)?)
        .with_context(|| format!("cannot write the job history {}", path.display()))?;
    crate::data::storage::follow_umask(&tmp)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write the job history {}", path.display()))
}

/// This process's command line, as the status page and `_job.json` show it: a `--token`'s
/// value is replaced by `***`.
fn command_line() -> Vec<String> {
    let mut args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    for i in 1..args.len() {
        if args[i - 1] == "--token" {
            args[i] = "***".into();
        } else if args[i].starts_with("--token=") {
            args[i] = "--token=***".into();
        }
    }
    args
}

/// Runs local mode on a blocking thread, so that Ctrl-C can cancel it and clean its output.
fn run_local(registry: Registry, job: &str, plan: plan::Plan) -> anyhow::Result<Summary> {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let progress = Arc::new(AttemptProgress::default());
    let result = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot install a signal handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot install a signal handler")?;
        let (job, p) = (job.to_string(), progress.clone());
        let mut task = tokio::task::spawn_blocking(move || crate::launch::local::run(&registry, &job, plan, &p));
        let joined = tokio::select! {
            joined = &mut task => joined,
            _ = interrupt.recv() => { progress.cancel(); task.await }
            _ = terminate.recv() => { progress.cancel(); task.await }
        };
        anyhow::Ok(joined.context("local run panicked")??)
    });
    runtime.shutdown_background();
    result
}

/// Prints the most frequent words of a word count's output, and the totals.
fn print_top_words(summary: &Summary, n: usize) -> anyhow::Result<()> {
    let mut counts: Vec<(u64, String)> = Vec::new();
    for entry in std::fs::read_dir(&summary.output)? {
        let path = entry?.path();
        if !path.file_name().is_some_and(|f| f.to_string_lossy().starts_with("part-")) {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let (word, count) = line.split_once('\t').context("a word count line has a tab")?;
            counts.push((count.parse()?, word.to_string()));
        }
    }
    counts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let total: u64 = counts.iter().map(|c| c.0).sum();
    println!("\ntop {n} words:");
    for (count, word) in counts.iter().take(n) {
        println!("  {count:>10}  {word}");
    }
    println!("{total} words, {} distinct; output in {}", counts.len(), summary.output);
    Ok(())
}

fn teragen(args: &RunArgs) -> anyhow::Result<()> {
    let Some(records) = args.records else { bail!("teragen needs --records N") };
    let Some(output) = &args.output else { bail!("teragen needs --output DIR") };
    let dir = plan::OutputDir::prepare(output, &[], args.overwrite)?;
    let files = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
    let checksum = crate::tools::tera::generate(dir.path(), records, files, args.seed)?;
    std::fs::write(dir.path().join(crate::layout::SUCCESS), b"")?;
    if !args.quiet {
        println!("teragen: wrote {checksum} to {}", dir.path().display());
    }
    dir.keep();
    Ok(())
}

fn teravalidate(args: &RunArgs) -> anyhow::Result<()> {
    let [input] = args.input.as_slice() else { bail!("teravalidate needs one --input DIR (a sort's output)") };
    let checksum = crate::tools::tera::validate(input)?;
    println!("teravalidate: {checksum}, in order");
    Ok(())
}

fn worker(args: WorkerArgs, registry: Registry) -> anyhow::Result<()> {
    // Its work directory and map outputs are private; part files follow the umask.
    crate::data::storage::private_umask();
    let Some(coordinator) = args.coordinator else {
        bail!(
            "mr worker needs the coordinator's URL: --coordinator URL, MR_COORDINATOR, or coordinator in the \
             [worker] table of the config file"
        )
    };
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {} (--token-file)", path.display()))?;
            text.lines().next().unwrap_or("").trim().to_string()
        }
        None => args.token.clone().unwrap_or_default(),
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let options = WorkerOptions {
        coordinator,
        connect_timeout: args.connect_timeout,
        lost_timeout: if args.supervised { args.lost_timeout.max(SUPERVISED_LOST_TIMEOUT) } else { args.lost_timeout },
        token: crate::net::rpc::Token::new(&token)?,
        advertise: args.advertise,
        work_dir: args.work_dir,
        tls: crate::net::rpc::Tls::load(args.tls_cert.as_deref(), args.tls_key.as_deref(), args.tls_ca.as_deref())?,
        remove_dead_workers_directories: !args.supervised,
    };
    let result = runtime.block_on(crate::worker::work(options, Arc::new(registry)));
    // A task still running on a blocking thread is abandoned, not awaited.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(result?)
}

fn bench_exec(argv: &[String]) -> anyhow::Result<()> {
    let usage = crate::tools::bench::exec(argv)?;
    println!("{}", serde_json::to_string(&usage)?);
    Ok(())
}

fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let options = crate::tools::bench::BenchOptions {
        size: args.size,
        dir: args.dir,
        sort_buffer: args.sort_buffer,
        word_search_strings: args.word_search_strings,
        no_pipeline: args.no_pipeline,
        corpus: args.corpus,
        ascii_count: args.ascii_count,
        repeat: args.repeat,
        wordcount_only: args.wordcount_only,
    };
    let rows = crate::tools::bench::run(&options, &mut |step| eprintln!("mr bench: {step}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!(
            "{}, {cores} cores, --sort-buffer {}, medians of {} alternating runs\n",
            match &options.corpus {
                Some(c) => format!("corpus {}", c.display()),
                None => format!("corpus {} of generated text", bytesize::ByteSize::b(args.size).display().iec()),
            },
            bytesize::ByteSize::b(args.sort_buffer).display().iec(),
            args.repeat.max(1)
        );
        print!("{}", crate::tools::bench::table(&rows));
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use crate::tools::simulate;
    if args.scenario == "check" {
        let seeds = args.seed.map_or(args.seeds.clone(), |s| s..s + 1);
        let verbose = args.seed.is_some();
        let failures = simulate::check::run_seeds(seeds.clone(), verbose, &mut |line| println!("{line}"));
        if failures > 0 {
            bail!(
                "{failures} of {} seeds broke an invariant (reproduce one with the command printed above it)",
                seeds.end - seeds.start
            );
        }
        return Ok(());
    }
    let seed = args.seed.unwrap_or(1);
    let mut scenario = simulate::presets::preset(&args.scenario, seed).context("unknown preset")?;
    if let Some(f) = args.slow_fraction {
        scenario.faults.slow_fraction = f;
    }
    if let Some(f) = args.slow_factor {
        scenario.faults.slow_factor = f;
    }
    if let Some(at) = args.kill_at {
        if scenario.faults.deaths.is_empty() {
            let message =
                format!("--kill-at: the preset {} kills no workers; use it with sort-kill-200", args.scenario);
            Cli::command().error(ErrorKind::ArgumentConflict, message).exit();
        }
        for d in &mut scenario.faults.deaths {
            d.at_ms = (at * 1e3) as u64;
        }
    }
    if let Some(g) = args.root_gbps {
        scenario.cluster.root_mb_s = g * 125.0;
    }
    if let Some(on) = args.speculative {
        scenario.policy.speculative = on;
    }
    let mut trace = Vec::new();
    let report = simulate::run(&scenario, args.trace.is_some().then_some(&mut trace));
    if let Some(path) = &args.trace {
        std::fs::write(path, &trace).with_context(|| format!("cannot write the trace {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let title = format!("mr simulate {} (seed {seed})", args.scenario);
        simulate::plot::write_svg(path, &title, &report)?;
    }
    if args.json {
        println!("{}", serde_json::json!({ "scenario": scenario, "report": report }));
    } else {
        print!("{}", simulate::render(&args.scenario, &scenario, &report));
        if let Some(path) = &args.plot {
            println!("plot: {}", path.display());
        }
        if let Some(path) = &args.trace {
            println!("trace: {} ({} lines)", path.display(), report.trace_lines);
        }
    }
    match &report.end {
        simulate::End::Succeeded(_) => Ok(()),
        simulate::End::Failed(why) => bail!("the simulated job failed: {why}"),
        simulate::End::TimedOut => bail!("the simulated job did not end within the time limit"),
    }
}

fn bench_coordinator(args: BenchCoordinatorArgs) -> anyhow::Result<()> {
    let options =
        crate::tools::loadbench::LoadOptions { maps: args.maps, reduces: args.reduces, clients: args.clients.clone() };
    let rows = crate::tools::loadbench::run(&options, &mut |step| eprintln!("mr bench-coordinator: {step}"))?;
    let job = match args.job {
        Some(workers) => {
            let tmp;
            let dir = match &args.dir {
                Some(d) => d.clone(),
                None => {
                    tmp = tempfile::Builder::new().prefix("mr-bench-").tempdir()?;
                    tmp.path().to_path_buf()
                }
            };
            eprintln!("mr bench-coordinator: mr run wordcount, {} map tasks, {workers} workers", args.maps);
            Some(crate::tools::loadbench::real_job(&dir, args.maps, workers, args.reduces)?)
        }
        None => None,
    };
    if args.json {
        println!("{}", serde_json::json!({ "simulated": rows, "job": job }));
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{} map tasks, {} reduce tasks, {cores} cores\n", args.maps, args.reduces);
    print!("{}", crate::tools::loadbench::table(&rows));
    if let Some(job) = job {
        let tasks = f64::from(job.maps + args.reduces);
        println!(
            "\nmr {}\nwall {:.2} s; CPU of the mr run process {:.2} s ({:.0} µs per task), of its workers {:.2} s",
            job.command.join(" "),
            job.wall_s,
            job.coordinator_cpu_s,
            job.coordinator_cpu_s * 1e6 / tasks,
            job.workers_cpu_s
        );
    }
    Ok(())
}

fn generate(cmd: GenCommand) -> anyhow::Result<()> {
    match cmd {
        GenCommand::WordSearch { out, strings, max_len, targets, target_len, seed } => {
            let spec = datagen::WordSearchSpec { strings, max_len, targets, target_len, seed };
            datagen::word_search(&out, &spec)?;
            println!("wrote {} and {}", out.join("strings.txt").display(), out.join("targets.txt").display());
        }
        GenCommand::Text { out, size, files, seed, unicode } => {
            datagen::text_with(&out, size, files, seed, unicode)?;
            println!("wrote {files} files of text into {}", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(argv: &[&str]) -> Cli {
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        configure(Cli::from_arg_matches(&matches).unwrap(), &matches).unwrap()
    }

    /// Every setting of `mr run`, resolved, for comparisons.
    fn run_settings(cli: Cli) -> String {
        let Command::Run(a) = cli.command else { panic!("not mr run") };
        let faults = faults(&a, a.file_faults);
        format!(
            "{:?}",
            (
                cli.log_format,
                (a.workers, a.reduce_tasks, a.split_size, a.sort_buffer, a.merge_fan_in, &a.listen),
                (a.worker_timeout, a.task_timeout, a.max_attempts, a.max_restarts, a.speculative, a.skip_bad_records),
                a.verify_inputs,
                (a.input_format, faults),
                (&a.tls_cert, &a.tls_key, &a.tls_ca),
            )
        )
    }

    fn worker_settings(cli: Cli) -> String {
        let Command::Worker(a) = cli.command else { panic!("not mr worker") };
        format!(
            "{:?}",
            (cli.log_format, a.coordinator, a.connect_timeout, a.lost_timeout, (a.tls_cert, a.tls_key, a.tls_ca))
        )
    }

    const FULL: &str = r#"
workers = 5
reduce_tasks = 6
split_size = "1MiB"
sort_buffer = 2048
merge_fan_in = 3
listen = "127.0.0.1:7001"
worker_timeout = "1s"
task_timeout = "2s"
max_attempts = 7
max_restarts = 9
speculative = false
skip_bad_records = true
verify_inputs = true
input_format = "tera"
log_format = "json"
tls_cert = "/etc/mr/cluster.pem"
tls_key = "/etc/mr/cluster.key"
tls_ca = "/etc/mr/ca.pem"
[faults]
seed = 11
[faults.map]
failure = 0.5
straggler = 0.25
straggler_delay_ms = 12
[faults.reduce]
failure = 0.125
[worker]
coordinator = "http://127.0.0.1:7001"
connect_timeout = "3s"
lost_timeout = "4s"
tls_cert = "worker.pem"
tls_key = "/etc/mr/worker.key"
tls_ca = "/etc/mr/worker-ca.pem"
"#;

    #[test]
    fn the_file_sets_what_flags_leave_unset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mr.toml");
        std::fs::write(&path, FULL).unwrap();
        let config = path.to_str().unwrap();
        let cli = resolve(&["mr", "run", "--config", config]);
        assert_eq!(cli.log_format, LogFormat::Json);
        let Command::Run(a) = cli.command else { panic!("not mr run") };
        assert_eq!((a.workers, a.reduce_tasks, a.split_size, a.sort_buffer), (Some(5), Some(6), Some(1 << 20), 2048));
        assert_eq!((a.merge_fan_in, a.listen.as_deref()), (3, Some("127.0.0.1:7001")));
        assert_eq!((a.worker_timeout, a.task_timeout), (Duration::from_secs(1), Duration::from_secs(2)));
        assert_eq!((a.max_attempts, a.max_restarts, a.speculative, a.skip_bad_records), (7, 9, false, true));
        assert!(a.verify_inputs);
        assert_eq!(a.input_format, InputFormat::Tera);
        let tls = (a.tls_cert.as_deref(), a.tls_key.as_deref(), a.tls_ca.as_deref());
        assert_eq!(
            tls,
            (
                Some(Path::new("/etc/mr/cluster.pem")),
                Some(Path::new("/etc/mr/cluster.key")),
                Some(Path::new("/etc/mr/ca.pem"))
            )
        );
        let f = faults(&a, a.file_faults);
        assert_eq!((f.seed, f.map.failure, f.map.straggler, f.map.straggler_delay_ms), (11, 0.5, 0.25, 12));
        assert_eq!((f.reduce.failure, f.reduce.straggler), (0.125, 0.0));

        let cli = resolve(&["mr", "worker", "--config", config]);
        assert_eq!(
            worker_settings(cli),
            format!(
                "{:?}",
                (
                    LogFormat::Json,
                    Some("http://127.0.0.1:7001"),
                    Duration::from_secs(3),
                    Duration::from_secs(4),
                    // A relative path in the file is relative to the file's directory.
                    (
                        Some(dir.path().join("worker.pem")),
                        Some(PathBuf::from("/etc/mr/worker.key")),
                        Some(PathBuf::from("/etc/mr/worker-ca.pem"))
                    )
                )
            )
        );
    }

    /// Each flag beats the file: a setting whose flag is looked up under a wrong id would not.
    #[test]
    fn flags_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mr.toml");
        let file = FULL.replace("skip_bad_records = true", "skip_bad_records = false");
        std::fs::write(&path, file.replace("verify_inputs = true", "verify_inputs = false")).unwrap();
        let flags = [
            "--log-format=text",
            "--workers=2",
            "--reduce-tasks=3",
            "--split-size=4KiB",
            "--sort-buffer=8KiB",
            "--merge-fan-in=4",
            "--listen=127.0.0.1:7002",
            "--worker-timeout=5s",
            "--task-timeout=6s",
            "--max-attempts=2",
            "--max-restarts=1",
            "--speculative=on",
            "--skip-bad-records",
            "--verify-inputs",
            "--input-format=whole-file",
            "--inject-failure=0.75",
            "--inject-straggler=0.5",
            "--straggler-delay=13",
            "--inject-seed=14",
            "--tls-cert=/tmp/c.pem",
            "--tls-key=/tmp/k.pem",
            "--tls-ca=/tmp/ca.pem",
        ];
        let with_file: Vec<&str> = ["mr", "run", "--config", path.to_str().unwrap()].into_iter().chain(flags).collect();
        let without: Vec<&str> = ["mr", "run"].into_iter().chain(flags).collect();
        assert_eq!(run_settings(resolve(&with_file)), run_settings(resolve(&without)));

        let flags = [
            "--coordinator=http://127.0.0.1:7002",
            "--connect-timeout=7s",
            "--lost-timeout=8s",
            "--tls-cert=/tmp/c.pem",
            "--tls-key=/tmp/k.pem",
            "--tls-ca=/tmp/ca.pem",
        ];
        let with_file: Vec<&str> =
            ["mr", "worker", "--config", path.to_str().unwrap()].into_iter().chain(flags).collect();
        let without: Vec<&str> = ["mr", "worker", "--log-format=json"].into_iter().chain(flags).collect();
        assert_eq!(worker_settings(resolve(&with_file)), worker_settings(resolve(&without)));
    }

    /// The values that mr.example.toml sets are the defaults.
    #[test]
    fn example_file_holds_the_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/mr.example.toml");
        assert_eq!(run_settings(resolve(&["mr", "run", "--config", example])), run_settings(resolve(&["mr", "run"])));
        let (with, without) = (["mr", "worker", "--config", example], ["mr", "worker"]);
        assert_eq!(worker_settings(resolve(&with)), worker_settings(resolve(&without)));
    }
}
