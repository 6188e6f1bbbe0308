//! The command line: `mr run`, `mr worker`, `mr gen`. Errors reach the user here, once, with
//! their whole chain. Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted.

mod cluster;
pub mod config;
mod steps;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::control::plan::{self, JobRequest};
use crate::data::compression::OutputCompression;
use crate::data::input::InputFormat;
use crate::error::Error;
use crate::exec::fault::Faults;
use crate::exec::task::{AttemptProgress, TaskSettings};
use crate::job::Registry;
use crate::launch::run::RunConfig;
use crate::report::progress::ProgressMode;
use crate::report::summary::Summary;
use crate::settings::{
    Addresses, ConfigFile, FaultInjection, FaultTolerance, Resources, Security, heading, parse_on_off, parse_size,
};
use crate::tools::datagen;
use crate::worker::WorkerOptions;
use config::{FileConfig, LogFormat};

/// A MapReduce engine: count, index, grep and sort files with worker processes.
#[derive(Debug, Parser)]
#[command(name = "mr", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format: text (human-readable lines) or json (one object per line).
    #[arg(long, global = true, value_enum, env = "MR_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a job: `mr run JOB [FLAGS]`, the flags before or after the job's name. With no job,
    /// wordcount; with no job, --input or --output, word count on a generated sample corpus.
    Run(Box<RunArgs>),
    /// Run a job's coordinator alone, for workers that join from any host (`mr worker
    /// --coordinator URL`); local workers only with --workers N. Exits with the job's status.
    Coordinator(Box<JobArgs>),
    /// Run a worker that pulls tasks from a coordinator (started by `mr run`, or by hand).
    Worker(WorkerArgs),
    /// Run a cluster: a long-running service that queues jobs (`mr submit`) and runs them on
    /// long-lived workers (`mr worker --cluster URL`), sharing their slots between the running
    /// jobs, and keeps every job's history under --state-dir.
    Cluster(cluster::ClusterArgs),
    /// Submit a job to a cluster: `mr submit --cluster URL JOB [FLAGS]`, with the flags of
    /// `mr run` that apply to a job. Shows its progress and summary and exits with its status,
    /// unless --detach.
    Submit(Box<cluster::SubmitArgs>),
    /// List a cluster's jobs: id, job, state, progress, submitted, duration, output.
    Jobs(cluster::JobsArgs),
    /// Kill a cluster's job: its attempts stop and its output is removed.
    Kill(cluster::KillArgs),
    /// Print the state of a running job, from its status server (the `status:` URL that
    /// `mr run` prints, or a cluster job's page, http://HOST:PORT/jobs/ID/), or of a finished
    /// one, from its output's `_job.json`.
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
    #[arg(long, default_value = crate::settings::SORT_BUFFER, value_parser = parse_size)]
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

/// The flags of `mr run` and `mr coordinator`; `mr run` adds `--local`. Each group is defined
/// once, in `crate::settings` or here, and flattened where it applies.
#[derive(Debug, Args)]
struct JobArgs {
    #[command(flatten)]
    file: ConfigFile,
    #[command(flatten)]
    io: InputOutput,
    #[command(flatten)]
    resources: Resources,
    #[command(flatten)]
    tolerance: FaultTolerance,
    #[command(flatten)]
    injection: FaultInjection,
    #[command(flatten)]
    addresses: Addresses,
    #[command(flatten)]
    security: Security,
    #[command(flatten)]
    format: OutputFormat,
    /// Fault injection as the config file sets it, under the flags.
    #[arg(skip)]
    file_faults: Faults,
}

/// Where a job reads and writes.
#[derive(Debug, Args)]
#[command(next_help_heading = heading::INPUT_OUTPUT)]
struct InputOutput {
    /// Input files or directories (walked recursively; names starting with `_` or `.`
    /// skipped).
    #[arg(short, long = "input", num_args = 1.., value_name = "PATH")]
    input: Vec<PathBuf>,
    /// Output directory; must be empty or absent unless --overwrite.
    #[arg(short, long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// How input files are read: text lines (`.gz` files decompressed), whole files, or
    /// 100-byte TeraGen records.
    #[arg(long, value_name = "FORMAT", value_enum, env = "MR_INPUT_FORMAT", default_value_t = InputFormat::Text)]
    input_format: InputFormat,
    /// Compress part files: `gzip` writes part-r-NNNNN.gz, `zstd` part-r-NNNNN.zst (read back
    /// as input like any compressed file).
    #[arg(long, value_name = "none|gzip|zstd", value_enum, default_value_t = OutputCompression::None)]
    output_compression: OutputCompression,
    /// Replace the contents of a non-empty output directory.
    #[arg(long)]
    overwrite: bool,
    /// Continue a job whose coordinator was killed: the same command with --resume reads the
    /// journal in the output directory and runs only the tasks that had not committed.
    #[arg(long, conflicts_with = "overwrite")]
    resume: bool,
}

/// What `mr run` and `mr coordinator` print.
#[derive(Debug, Args)]
#[command(next_help_heading = heading::OUTPUT_FORMAT)]
struct OutputFormat {
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// `mr run`: the flags of `mr coordinator`, and `--local`.
#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Run sequentially in this process, without workers or RPC.
    #[arg(long, conflicts_with = "resume", help_heading = heading::RESOURCES)]
    local: bool,
}

/// teragen's own flags.
#[derive(Debug, Args)]
struct TeragenArgs {
    /// Number of 100-byte records to write.
    #[arg(long, value_name = "N", required = true)]
    records: u64,
    /// Seed of the records.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
}

/// The job that `mr run` or `mr coordinator` runs.
#[derive(Debug, Clone, PartialEq)]
enum Selected {
    /// No job named: the sample word count without --input and --output, else wordcount.
    Default,
    /// A job of the registry, with its own arguments as [`crate::job::job_argv`] writes them.
    Job { name: String, argv: Vec<String> },
    /// `mr run teragen`.
    Teragen { records: u64, seed: u64 },
    /// `mr run teravalidate`.
    Teravalidate,
}

/// The job subcommands of `mr run` (with teragen and teravalidate) or `mr coordinator`: one
/// per job of the registry, each with the job's own flags; the command's own flags are
/// global, so they go before or after the job's name.
fn with_jobs(command: clap::Command, registry: &Registry, tera: bool) -> clap::Command {
    let mut command = command
        .mut_args(|a| a.global(true))
        .subcommand_value_name("JOB")
        .subcommand_help_heading("Jobs")
        .disable_help_subcommand(true)
        .subcommand_precedence_over_arg(true);
    for name in registry.names() {
        if let Ok(job) = registry.command(name) {
            command = command.subcommand(job);
        }
    }
    if tera {
        let teragen = TeragenArgs::augment_args(clap::Command::new("teragen").next_help_heading(heading::JOB))
            .about("Write N deterministic 100-byte records (10-byte key) into W files, and print their checksum")
            .long_about(None);
        let teravalidate = clap::Command::new("teravalidate")
            .about("Check that a sort's part files are in key order, and print their checksum");
        command = command.subcommand(teragen).subcommand(teravalidate);
    }
    command
}

/// `mr`'s command: the derived one, with the registry's jobs under `mr run` and
/// `mr coordinator`, and the help of the flags whose meaning `mr coordinator` changes. Its
/// arguments are the configuration file's keys ([`config::FileConfig::load`]).
pub fn command(registry: &Registry) -> clap::Command {
    Cli::command()
        .mut_subcommand("run", |run| with_jobs(run, registry, true))
        .mut_subcommand("submit", |submit| {
            NOT_FOR_SUBMIT.iter().fold(with_jobs(submit, registry, false), |c, id| c.mut_arg(*id, |a| a.hide(true)))
        })
        .mut_subcommand("cluster", |c| {
            c.mut_arg("listen", |a| a.help("Address of the cluster's gRPC server, which workers and submitters reach (required)"))
                .mut_arg("http", |a| {
                    a.help("Address of the cluster's web pages (jobs at /, /workers, JSON at /api/v1/jobs, metrics at /metrics), or `off`; default: a free port on 127.0.0.1")
                })
        })
        .mut_subcommand("worker", |w| {
            w.mut_arg("cluster", |a| {
                a.conflicts_with("coordinator").help(
                    "The cluster's URL (`mr cluster`), instead of a coordinator: a long-lived worker that runs the \
                     tasks of every job the cluster runs, and survives their end",
                )
            })
        })
        .mut_subcommand("submit", |submit| {
            submit.mut_arg("workers", |a| {
                a.help("The number of workers the plan's defaults assume (split size, reduce tasks); default: the number of cores")
            })
        })
        .mut_subcommand("coordinator", |c| {
        with_jobs(c, registry, false)
            .mut_arg("workers", |a| a.help("Number of local worker processes to start besides the remote ones; default: none"))
            .mut_arg("listen", |a| {
                a.help("Address of the coordinator's gRPC server, which workers join (required: this flag, MR_LISTEN or listen in the config file)")
            })
    })
}

/// The job the matches of `mr run` or `mr coordinator` name.
fn selected(matches: &ArgMatches, registry: &Registry) -> anyhow::Result<Selected> {
    let Some((name, job)) = matches.subcommand() else { return Ok(Selected::Default) };
    match name {
        "teragen" => {
            let args = TeragenArgs::from_arg_matches(job)?;
            Ok(Selected::Teragen { records: args.records, seed: args.seed })
        }
        "teravalidate" => Ok(Selected::Teravalidate),
        _ => Ok(Selected::Job { name: name.to_string(), argv: crate::job::job_argv(&registry.command(name)?, job)? }),
    }
}

#[derive(Debug, Args)]
struct WorkerArgs {
    /// The coordinator's URL, e.g. http://127.0.0.1:7000.
    #[arg(long, value_name = "URL", env = "MR_COORDINATOR")]
    coordinator: Option<String>,
    /// `--cluster URL` instead of a coordinator: a long-lived worker (its help is set in
    /// [`command`]).
    #[command(flatten)]
    cluster: cluster::ClusterUrl,
    /// With --cluster: attempts run at once, each in a slot process of its own; default: the
    /// number of cores.
    #[arg(long, value_name = "N", env = "MR_SLOTS", requires = "cluster", value_parser = clap::value_parser!(u32).range(1..))]
    slots: Option<u32>,
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
    #[command(flatten)]
    file: ConfigFile,
    /// Host name or IP address other workers reach this one at; default: the local address of
    /// its connection to the coordinator.
    #[arg(long, value_name = "HOST", env = "MR_ADVERTISE")]
    advertise: Option<String>,
    /// Where to make the worker's work directory (map outputs it serves, fetched partitions);
    /// default: the system temp dir. It is removed when the worker exits, and a worker starting
    /// in the same DIR removes those of workers that died without removing theirs (SIGKILL).
    #[arg(long, value_name = "DIR", env = "MR_WORK_DIR")]
    work_dir: Option<PathBuf>,
    #[command(flatten)]
    security: Security,
    /// A file holding the coordinator's token (its first line), instead of --token.
    #[arg(long, value_name = "FILE", env = "MR_TOKEN_FILE", conflicts_with = "token", help_heading = heading::CLUSTER)]
    token_file: Option<PathBuf>,
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
    /// Data for the word-search job and its benchmark: strings.txt, random lowercase strings
    /// one per line, and targets.txt, random lowercase target words (`mr run word-search
    /// --input strings.txt --targets targets.txt` counts, for each target, the lines that contain it).
    WordSearch {
        /// Directory to write strings.txt and targets.txt into (--out is an alias).
        #[arg(short, long = "output", visible_alias = "out", value_name = "DIR")]
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
        /// Replace strings.txt and targets.txt if they exist.
        #[arg(long)]
        overwrite: bool,
    },
    /// English-like text, for word counts and benchmarks.
    Text {
        /// Directory to write part-NNN.txt files into; it must hold no part-NNN.txt files
        /// unless --overwrite (--out is an alias).
        #[arg(short, long = "output", visible_alias = "out", value_name = "DIR")]
        out: PathBuf,
        /// Total size, e.g. 256MiB: the files hold at most this many bytes in all, and less
        /// than a line of text (under 200 bytes) fewer per file.
        #[arg(long, default_value = "4MiB", value_parser = parse_size)]
        size: u64,
        /// Number of files.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        files: u32,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also write the characters and line ends where text rules differ: combining marks,
        /// letter numbers, circled and 4-byte letters, a lone `\r` in a line, `\r\n`, and a
        /// last line ending with `\r`.
        #[arg(long)]
        unicode: bool,
        /// Remove the part-NNN.txt files already in the directory first.
        #[arg(long)]
        overwrite: bool,
    },
}

impl JobArgs {
    /// The faults to inject: the config file's, overridden for both phases by the `--inject-*`
    /// flags (or their variables).
    fn faults(&self) -> Faults {
        let (flags, mut faults) = (&self.injection, self.file_faults);
        for phase in [&mut faults.map, &mut faults.reduce] {
            if let Some(p) = flags.inject_failure {
                phase.failure = p;
            }
            if let Some(p) = flags.inject_straggler {
                phase.straggler = p;
            }
            if let Some(delay) = flags.straggler_delay {
                phase.straggler_delay_ms = delay.as_millis() as u64;
            }
        }
        if let Some(seed) = flags.inject_seed {
            faults.seed = seed;
        }
        faults
    }
}

impl Security {
    /// Loads and checks the TLS files, if any are given.
    fn tls(&self) -> crate::Result<Option<crate::net::rpc::Tls>> {
        crate::net::rpc::Tls::load(self.tls_cert.as_deref(), self.tls_key.as_deref(), self.tls_ca.as_deref())
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
    let mut command = command(&registry);
    let matches = parse_command_line(&mut command, &registry);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit());
    if let Command::StreamGuard { parent, command } = &cli.command {
        return stream_guard(*parent, command);
    }
    // Streaming commands run under this binary's `stream-guard`.
    if let Ok(exe) = std::env::current_exe() {
        crate::job::streaming::set_guard(exe);
    }
    let configured = configure(cli, matches, &registry, |command| parse_command_line(command, &registry));
    let result = configured.and_then(|(cli, matches)| dispatch(cli, &matches, registry));
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
/// An unknown job is named, with the likely one and the list of jobs.
fn parse_command_line(command: &mut clap::Command, registry: &Registry) -> ArgMatches {
    command.try_get_matches_from_mut(std::env::args_os()).unwrap_or_else(|mut e| {
        if let Some(var) = bad_env_var(command, &e) {
            let tip = format!("the value comes from the environment variable {var}");
            e.insert(ContextKind::Suggested, ContextValue::StyledStrs(vec![tip.into()]));
        }
        if let Some(e) = unknown_job(command, &e, registry) {
            e.exit()
        }
        e.exit()
    })
}

/// The error for an unknown job of `mr run` or `mr coordinator`, in place of clap's unknown
/// subcommand: it says "did you mean" (clap's suggestion) and lists every job.
fn unknown_job(command: &mut clap::Command, e: &clap::Error, registry: &Registry) -> Option<clap::Error> {
    let ContextValue::String(name) = e.get(ContextKind::InvalidSubcommand)? else { return None };
    let usage = e.get(ContextKind::Usage).map(|u| u.to_string()).unwrap_or_default();
    let parent = ["run", "coordinator", "submit"].into_iter().find(|sub| usage.contains(&format!("mr {sub} ")))?;
    let suggestion = match e.get(ContextKind::SuggestedSubcommand) {
        Some(ContextValue::String(s)) => format!(" (did you mean '{s}'?)"),
        Some(ContextValue::Strings(s)) if !s.is_empty() => format!(" (did you mean '{}'?)", s.join("' or '")),
        _ => String::new(),
    };
    let mut jobs = registry.names();
    if parent == "run" {
        jobs.extend(["teragen", "teravalidate"]);
    }
    let message = format!("unknown job '{name}'{suggestion}: the jobs are {}", jobs.join(", "));
    let sub = command.find_subcommand_mut(parent)?;
    Some(sub.error(ErrorKind::InvalidSubcommand, message))
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

/// Layers the config file, if there is one, under the flags and environment variables: its
/// settings become the defaults of a new `mr` command, which `parse` parses the command line
/// with again.
fn configure(
    cli: Cli,
    matches: ArgMatches,
    registry: &Registry,
    parse: impl FnOnce(&mut clap::Command) -> ArgMatches,
) -> anyhow::Result<(Cli, ArgMatches)> {
    let path = match &cli.command {
        Command::Run(args) => args.job.file.config.clone(),
        Command::Coordinator(args) => args.file.config.clone(),
        Command::Worker(args) => args.file.config.clone(),
        Command::Submit(args) => args.job.file.config.clone(),
        _ => None,
    };
    let Some(path) = path else { return Ok((cli, matches)) };
    let file = FileConfig::load(&path, &command(registry))?;
    let mut command = file.layer(command(registry));
    let matches = parse(&mut command);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit());
    match &mut cli.command {
        Command::Run(args) => args.job.file_faults = file.faults,
        Command::Coordinator(args) => args.file_faults = file.faults,
        Command::Submit(args) => args.job.file_faults = file.faults,
        _ => {}
    }
    Ok((cli, matches))
}

fn dispatch(cli: Cli, matches: &ArgMatches, registry: Registry) -> anyhow::Result<()> {
    init_logging(cli.log_format);
    if token_on_command_line() {
        eprintln!(
            "mr: warning: --token on the command line can be read by every user of this host (ps, /proc): give it in \
             MR_TOKEN{}",
            if matches!(cli.command, Command::Worker(_)) { " or --token-file FILE" } else { "" }
        );
    }
    let sub = matches.subcommand().map(|(_, m)| m);
    match cli.command {
        Command::Run(args) => {
            let selected = selected(sub.context("mr run's matches")?, &registry)?;
            if args.local {
                warn_of_distributed_flags(sub.context("mr run's matches")?);
            }
            run(args.job, selected, registry, cli.log_format, Mode::Run { local: args.local })
        }
        Command::Coordinator(args) => {
            let selected = selected(sub.context("mr coordinator's matches")?, &registry)?;
            run(*args, selected, registry, cli.log_format, Mode::Coordinator)
        }
        Command::Worker(args) => worker(args, registry),
        Command::Cluster(args) => cluster::serve(args, registry),
        Command::Submit(args) => {
            let matches = sub.context("mr submit's matches")?;
            refuse_flags_not_for_submit(matches)?;
            let selected = selected(matches, &registry)?;
            cluster::submit(*args, selected, &registry, cli.log_format)
        }
        Command::Jobs(args) => cluster::jobs(args),
        Command::Kill(args) => cluster::kill(args),
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

/// The flags that only a distributed run uses: `mr run --local` warns that it ignores them
/// when they are on its command line (where a local run, the oracle, often repeats a
/// distributed run's flags); a config file or a variable may set them silently, for the
/// distributed runs that share them.
const DISTRIBUTED_ONLY: [&str; 15] = [
    "listen",
    "http",
    "token",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "worker_timeout",
    "task_timeout",
    "max_attempts",
    "max_restarts",
    "speculative",
    "inject_failure",
    "inject_straggler",
    "straggler_delay",
    "inject_seed",
];

/// Flags of `mr run` that have no part in `mr submit`: the cluster runs the job's services and
/// workers, and resumes its jobs by itself. Hidden from `mr submit -h`, and refused when given.
const NOT_FOR_SUBMIT: &[&str] = &["listen", "http", "oversubscribe", "max_restarts", "resume"];

fn refuse_flags_not_for_submit(matches: &ArgMatches) -> anyhow::Result<()> {
    let given: Vec<String> = NOT_FOR_SUBMIT
        .iter()
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(usage(format!(
        "{} {} for `mr run`: a cluster runs its jobs' services and workers, and resumes its jobs by itself \
         after a restart; drop {} from `mr submit`",
        given.join(", "),
        if given.len() == 1 { "is" } else { "are" },
        if given.len() == 1 { "it" } else { "them" },
    )))
}

fn warn_of_distributed_flags(matches: &ArgMatches) {
    let given: Vec<String> = DISTRIBUTED_ONLY
        .iter()
        .filter(|id| matches.value_source(id) == Some(ValueSource::CommandLine))
        .filter(|id| **id != "http" || matches.get_one::<String>("http").is_some_and(|h| h != "off"))
        .map(|id| format!("--{}", id.replace('_', "-")))
        .collect();
    if !given.is_empty() {
        eprintln!(
            "mr: warning: {} {} no effect with --local, which runs in this process without workers, services or \
             retries: ignored",
            given.join(", "),
            if given.len() == 1 { "has" } else { "have" },
        );
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

/// How a job runs: `mr run` (local or with worker processes) or `mr coordinator`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Run { local: bool },
    Coordinator,
}

/// Local worker processes allowed per core without --oversubscribe.
const WORKERS_PER_CORE: u32 = 8;

/// `mr run` or `mr coordinator`. With `--json`, a job that fails or is interrupted prints its
/// summary too (`succeeded` false, `error` set).
fn run(args: JobArgs, selected: Selected, registry: Registry, log_format: LogFormat, mode: Mode) -> anyhow::Result<()> {
    let json = args.format.json;
    let job = match &selected {
        Selected::Job { name, .. } => name.clone(),
        Selected::Teragen { .. } => "teragen".into(),
        Selected::Teravalidate => "teravalidate".into(),
        Selected::Default => "wordcount".into(),
    };
    let mut summary = None;
    let result = run_job(args, selected, registry, log_format, mode, &mut summary);
    if let (true, Err(e)) = (json, &result) {
        let interrupted = e.downcast_ref::<Error>().is_some_and(Error::is_interrupted);
        let failed = match summary {
            Some(summary) => serde_json::to_value(&summary)?,
            None => serde_json::json!({
                "job": job,
                "mode": if mode == (Mode::Run { local: true }) { "local" } else { "distributed" },
                "succeeded": false,
                "interrupted": interrupted,
                "error": format!("{e:#}"),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&failed)?);
    }
    result
}

/// Plans the job, runs it, records it and prints its summary. When it ran far enough to have a
/// summary and then failed, leaves that in `failed`.
fn run_job(
    args: JobArgs,
    selected: Selected,
    registry: Registry,
    log_format: LogFormat,
    mode: Mode,
    failed: &mut Option<Summary>,
) -> anyhow::Result<()> {
    if mode == Mode::Coordinator && args.addresses.listen.is_none() {
        return Err(usage(
            "mr coordinator needs --listen ADDR (e.g. 0.0.0.0:7000, or MR_LISTEN, or listen in the config file) so \
             that workers know where to join",
        ));
    }
    let (job, job_args) = match selected {
        Selected::Teragen { records, seed } => return teragen(&args, records, seed),
        Selected::Teravalidate => return teravalidate(&args),
        Selected::Job { name, argv } => (Some(name), argv),
        Selected::Default => (None, Vec::new()),
    };
    let sample = job.is_none() && args.io.input.is_empty() && args.io.output.is_none();
    let job = job.unwrap_or_else(|| "wordcount".into());
    let registry = Arc::new(registry);
    if let Some(steps) = registry.get(&job)?.steps(&registry.parse(&job, &job_args)?)? {
        return steps::run(&args, &job, job_args, steps, &registry, log_format, mode);
    }
    // The sample's corpus lives until the job ends.
    let sample_data = if sample { Some(crate::tools::sample::Sample::create()?) } else { None };
    let request = request(&args, &job, job_args, sample_data.as_ref(), &registry)?;
    let faults = args.faults();
    let local = mode == Mode::Run { local: true };
    let workers = local_workers(&args, mode);
    check_workers(&args, mode)?;
    // Checked before the plan touches the output directory; a local run has no services.
    let tls = if local { None } else { args.security.tls()? };
    let plan = plan::plan(&request, &registry)?;
    // From here on, what this process and its workers create is private to the user (work
    // files, logs, the journal); the output's files follow the umask it was started with.
    crate::data::storage::private_umask();
    let record = JobRecord::new(&args, &request, plan.shape(), workers, local, log_format, faults);
    let record = serde_json::to_value(&record)?;
    let plan_output = plan.output.path().to_path_buf();
    let summary = execute(&args, (&job, plan), &registry, (log_format, mode), tls, &record, failed)?;
    // The job's data is committed: a history that cannot be written is worth a warning, not a
    // failed command.
    if let Err(e) = write_history(plan_output.as_path(), record, &summary) {
        eprintln!("mr: warning: the job committed, but {e:#}");
    }
    report(&args.format, &summary, sample)
}

/// Refuses more worker processes than `WORKERS_PER_CORE` per core, unless `--oversubscribe`.
fn check_workers(args: &JobArgs, mode: Mode) -> anyhow::Result<()> {
    let (workers, cores) = (local_workers(args, mode), cores());
    let limit = WORKERS_PER_CORE.saturating_mul(cores);
    if mode != (Mode::Run { local: true }) && !args.resources.oversubscribe && workers > limit {
        return Err(Error::TooManyWorkers { workers, cores, per_core: WORKERS_PER_CORE, limit }.into());
    }
    Ok(())
}

/// Runs a planned job, in this process (`--local`) or with worker processes, to its summary.
fn execute(
    args: &JobArgs,
    (job, plan): (&str, plan::Plan),
    registry: &Arc<Registry>,
    (log_format, mode): (LogFormat, Mode),
    tls: Option<crate::net::rpc::Tls>,
    record: &serde_json::Value,
    failed: &mut Option<Summary>,
) -> anyhow::Result<Summary> {
    if mode == (Mode::Run { local: true }) {
        return run_local(registry.clone(), job, plan);
    }
    let config = RunConfig {
        workers: local_workers(args, mode),
        listen: args.addresses.listen.clone(),
        tolerance: args.tolerance.clone(),
        faults: args.faults(),
        worker_args: worker_args(args, log_format)?,
        progress: if args.format.quiet || args.format.json { ProgressMode::Off } else { ProgressMode::Auto },
        http: match args.addresses.http.as_deref() {
            Some("off") => None,
            Some(addr) => Some(addr.to_string()),
            None => Some("127.0.0.1:0".to_string()),
        },
        announce: !args.format.quiet,
        token: args.security.token.clone(),
        tls,
        about: crate::report::status::About { command: command_line(), settings: record.clone(), logs: None },
        standalone: mode == Mode::Coordinator,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(crate::launch::run::run_job(job, plan, config)) {
        Ok(summary) => Ok(summary),
        Err(crate::launch::run::Failed { error, summary }) => {
            *failed = summary.map(|s| *s);
            Err(error.into())
        }
    }
}

/// A usage error (exit code 2).
fn usage(message: impl Into<String>) -> anyhow::Error {
    Error::Usage(message.into()).into()
}

/// The number of cores of this host.
fn cores() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

/// The worker processes a distributed run starts: `--workers`, or one per core for `mr run`;
/// `mr coordinator` starts local workers only when asked.
fn local_workers(args: &JobArgs, mode: Mode) -> u32 {
    args.resources.workers.unwrap_or(if mode == Mode::Coordinator { 0 } else { cores() })
}

/// The request to plan: the job, its inputs and output (the sample's, or the flags'), and the
/// settings of its tasks.
fn request(
    args: &JobArgs,
    job: &str,
    job_args: Vec<String>,
    sample: Option<&crate::tools::sample::Sample>,
    registry: &Registry,
) -> anyhow::Result<JobRequest> {
    let (inputs, output) = if let Some(data) = sample {
        (vec![data.input().to_path_buf()], data.output().to_path_buf())
    } else {
        if args.io.input.is_empty() {
            return Err(usage(format!("job '{job}' needs --input PATH...")));
        }
        let Some(output) = args.io.output.clone() else { return Err(usage(format!("job '{job}' needs --output DIR"))) };
        check_inputs_are_not_jobs(&args.io.input, registry)?;
        (args.io.input.clone(), output)
    };
    let r = &args.resources;
    Ok(JobRequest {
        job: job.to_string(),
        job_args,
        input_format: args.io.input_format,
        inputs,
        output,
        split_size: r.split_size,
        reduce_tasks: r.reduce_tasks,
        // mr coordinator starts local workers only when asked; the plan's defaults still
        // assume about as many workers as this host has cores.
        workers: r.workers.unwrap_or_else(cores),
        overwrite: args.io.overwrite,
        resume: args.io.resume,
        settings: TaskSettings {
            partitions: 0,
            sort_buffer: r.sort_buffer.max(1),
            merge_fan_in: r.merge_fan_in as usize,
            max_record_bytes: r.max_record_bytes,
            output_compression: args.io.output_compression,
        },
    })
}

/// Refuses an input that does not exist and is named like a job: the job's name given after
/// `--input`'s paths, where it reads as one more input.
fn check_inputs_are_not_jobs(inputs: &[PathBuf], registry: &Registry) -> anyhow::Result<()> {
    for input in inputs {
        let name = input.to_string_lossy();
        let is_job = registry.names().contains(&name.as_ref()) || name == "teragen" || name == "teravalidate";
        if is_job && !crate::data::storage::is_url(input) && std::fs::symlink_metadata(input).is_err() {
            return Err(usage(format!(
                "--input {name}: there is no such file, and {name} is a job: give the job once, as `mr run JOB`, \
                 before its flags or after --input's paths (an input named like a job is ./{name})"
            )));
        }
    }
    Ok(())
}

/// What `_job.json` records of a job: what it ran on, and every setting it ran with, wherever
/// each came from. The groups serialize their own fields.
#[derive(serde::Serialize)]
struct JobRecord<'a> {
    job: &'a str,
    args: &'a [String],
    inputs: Vec<String>,
    output: String,
    input_format: InputFormat,
    output_compression: OutputCompression,
    input_bytes: u64,
    map_tasks: usize,
    reduce_tasks: u32,
    local: bool,
    workers: u32,
    #[serde(flatten)]
    resources: &'a Resources,
    #[serde(flatten)]
    tolerance: &'a FaultTolerance,
    #[serde(flatten)]
    addresses: &'a Addresses,
    log_format: LogFormat,
    config_file: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
    faults: Faults,
}

impl<'a> JobRecord<'a> {
    fn new(
        args: &'a JobArgs,
        request: &'a JobRequest,
        plan: plan::Shape<'_>,
        workers: u32,
        local: bool,
        log_format: LogFormat,
        faults: Faults,
    ) -> JobRecord<'a> {
        // Paths as text: a name that is not UTF-8 is percent-encoded, not an error.
        let text = |p: &Path| crate::data::input::path_text(p).into_owned();
        JobRecord {
            job: &request.job,
            args: &request.job_args,
            inputs: request.inputs.iter().map(|p| text(p)).collect(),
            output: text(plan.output),
            input_format: request.input_format,
            output_compression: request.settings.output_compression,
            input_bytes: plan.input_bytes,
            map_tasks: plan.map_tasks,
            reduce_tasks: plan.reduce_tasks,
            local,
            workers,
            resources: &args.resources,
            tolerance: &args.tolerance,
            addresses: &args.addresses,
            log_format,
            config_file: args.file.config.as_deref().map(text),
            tls_cert: args.security.tls_cert.as_deref().map(text),
            tls_key: args.security.tls_key.as_deref().map(text),
            tls_ca: args.security.tls_ca.as_deref().map(text),
            faults,
        }
    }
}

/// Prints a committed job's summary, as JSON, as text (with the top words for the sample), or
/// not at all.
fn report(format: &OutputFormat, summary: &Summary, sample: bool) -> anyhow::Result<()> {
    if format.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else if !format.quiet {
        println!("{summary}");
        if sample {
            print_top_words(summary, 20)?;
        }
    }
    Ok(())
}

/// The arguments of the `mr worker` processes that `mr run` starts, besides the coordinator's
/// URL: the log format, and the config file for its `[worker]` table. They also inherit the
/// environment, hence the MR_* variables.
fn worker_args(args: &JobArgs, log_format: LogFormat) -> anyhow::Result<Vec<String>> {
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    let mut worker_args = vec!["--log-format".into(), format.into()];
    if let Some(path) = &args.file.config {
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
    write_history_value(output, &history)
}

/// Writes a job's `_job.json`, `history`, into its committed output.
fn write_history_value(output: &Path, history: &serde_json::Value) -> anyhow::Result<()> {
    Ok(crate::report::history::write(output, history)?)
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
fn run_local(registry: Arc<Registry>, job: &str, plan: plan::Plan) -> anyhow::Result<Summary> {
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

fn teragen(args: &JobArgs, records: u64, seed: u64) -> anyhow::Result<()> {
    let Some(output) = &args.io.output else { return Err(usage("teragen needs --output DIR")) };
    let dir = plan::OutputDir::prepare(output, &[], args.io.overwrite)?;
    let files = args.resources.workers.unwrap_or_else(cores);
    let checksum = crate::tools::tera::generate(dir.path(), records, files, seed)?;
    std::fs::write(dir.path().join(crate::layout::SUCCESS), b"")?;
    if !args.format.quiet {
        println!("teragen: wrote {checksum} to {}", dir.path().display());
    }
    dir.keep();
    Ok(())
}

fn teravalidate(args: &JobArgs) -> anyhow::Result<()> {
    let [input] = args.io.input.as_slice() else {
        return Err(usage("teravalidate needs one --input DIR (a sort's output)"));
    };
    let checksum = crate::tools::tera::validate(input)?;
    println!("teravalidate: {checksum}, in order");
    Ok(())
}

fn worker(args: WorkerArgs, registry: Registry) -> anyhow::Result<()> {
    // Its work directory and map outputs are private; part files follow the umask.
    crate::data::storage::private_umask();
    let Some(coordinator) = args.coordinator.clone().or_else(|| args.cluster.cluster.clone()) else {
        bail!(
            "mr worker needs the coordinator's URL: --coordinator URL, MR_COORDINATOR, or coordinator in the \
             [worker] table of the config file (or a cluster's: --cluster URL)"
        )
    };
    let token = match &args.token_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {} (--token-file)", path.display()))?;
            text.lines().next().unwrap_or("").trim().to_string()
        }
        None => args.security.token.clone().unwrap_or_default(),
    };
    let options = WorkerOptions {
        coordinator,
        connect_timeout: args.connect_timeout,
        lost_timeout: if args.supervised { args.lost_timeout.max(SUPERVISED_LOST_TIMEOUT) } else { args.lost_timeout },
        token: crate::net::rpc::Token::new(&token)?,
        advertise: args.advertise,
        work_dir: args.work_dir,
        tls: args.security.tls()?,
        remove_dead_workers_directories: !args.supervised,
    };
    if args.cluster.cluster.is_some() {
        return cluster::worker(args.slots, options, registry);
    }
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
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
        if let (Some(seed), Some(path)) = (args.seed, &args.trace) {
            // The seed's run with its faults, again, with its event trace.
            let scenario = simulate::check::check_seed(seed).scenario;
            let mut trace = Vec::new();
            simulate::run(&scenario, Some(&mut trace));
            std::fs::write(path, &trace).with_context(|| format!("cannot write the trace {}", path.display()))?;
            println!("trace: {} ({} lines)", path.display(), trace.iter().filter(|&&b| b == b'\n').count());
        }
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
        GenCommand::WordSearch { out, strings, max_len, targets, target_len, seed, overwrite } => {
            clear_generated(&out, |name| name == "strings.txt" || name == "targets.txt", overwrite)?;
            let spec = datagen::WordSearchSpec { strings, max_len, targets, target_len, seed };
            datagen::word_search(&out, &spec)?;
            println!("wrote {} and {}", out.join("strings.txt").display(), out.join("targets.txt").display());
        }
        GenCommand::Text { out, size, files, seed, unicode, overwrite } => {
            let part = |name: &str| {
                name.strip_prefix("part-")
                    .and_then(|n| n.strip_suffix(".txt"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            };
            clear_generated(&out, part, overwrite)?;
            datagen::text_with(&out, size, files, seed, unicode)?;
            println!("wrote {files} files of text into {}", out.display());
        }
    }
    Ok(())
}

/// Removes, with `overwrite`, the files of an earlier `mr gen` in `dir` (the names `ours`
/// accepts), so that none is left stale; without it, refuses to write over them, naming them.
fn clear_generated(dir: &Path, ours: impl Fn(&str) -> bool, overwrite: bool) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot list", dir)(e).into()),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io("cannot list", dir))?;
        if entry.file_name().to_str().is_some_and(&ours) {
            found.push(entry.path());
        }
    }
    found.sort();
    if found.is_empty() {
        return Ok(());
    }
    if !overwrite {
        let names: Vec<String> = found.iter().take(3).map(|p| p.display().to_string()).collect();
        let more = if found.len() > 3 { format!(" and {} more", found.len() - 3) } else { String::new() };
        return Err(usage(format!(
            "{} already holds generated files ({}{more}): give --overwrite to replace them, or another directory",
            dir.display(),
            names.join(", ")
        )));
    }
    for path in found {
        std::fs::remove_file(&path).map_err(Error::io("cannot remove", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(argv: &[&str]) -> Cli {
        let registry = Registry::builtin();
        let matches = command(&registry).try_get_matches_from(argv).unwrap();
        let cli = Cli::from_arg_matches(&matches).unwrap();
        configure(cli, matches, &registry, |c| c.try_get_matches_from_mut(argv).unwrap()).unwrap().0
    }

    /// Every setting of `mr run`, resolved, for comparisons.
    fn run_settings(cli: Cli) -> String {
        let Command::Run(a) = cli.command else { panic!("not mr run") };
        let a = a.job;
        format!(
            "{:?}",
            (cli.log_format, &a.resources, &a.addresses, &a.tolerance, (a.io.input_format, a.faults()), &a.security)
        )
    }

    fn worker_settings(cli: Cli) -> String {
        let Command::Worker(a) = cli.command else { panic!("not mr worker") };
        format!("{:?}", (cli.log_format, a.coordinator, a.connect_timeout, a.lost_timeout, a.security))
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
        let (r, t) = (&a.job.resources, &a.job.tolerance);
        assert_eq!((r.workers, r.reduce_tasks, r.split_size, r.sort_buffer), (Some(5), Some(6), Some(1 << 20), 2048));
        assert_eq!((r.merge_fan_in, a.job.addresses.listen.as_deref()), (3, Some("127.0.0.1:7001")));
        assert_eq!((t.worker_timeout, t.task_timeout), (Duration::from_secs(1), Duration::from_secs(2)));
        assert_eq!((t.max_attempts, t.max_restarts, t.speculative, t.skip_bad_records), (7, 9, false, true));
        assert!(t.verify_inputs);
        assert_eq!(a.job.io.input_format, InputFormat::Tera);
        let s = &a.job.security;
        let tls = (s.tls_cert.as_deref(), s.tls_key.as_deref(), s.tls_ca.as_deref());
        assert_eq!(
            tls,
            (
                Some(Path::new("/etc/mr/cluster.pem")),
                Some(Path::new("/etc/mr/cluster.key")),
                Some(Path::new("/etc/mr/ca.pem"))
            )
        );
        let f = a.job.faults();
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
                    Security {
                        token: None,
                        tls_cert: Some(dir.path().join("worker.pem")),
                        tls_key: Some(PathBuf::from("/etc/mr/worker.key")),
                        tls_ca: Some(PathBuf::from("/etc/mr/worker-ca.pem"))
                    }
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

    /// Every flag of every subcommand, by its path (`mr run --workers`); hidden ones left out.
    fn flags(command: &clap::Command, path: &str, out: &mut Vec<(String, String)>) {
        for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(long) = arg.get_long().filter(|l| !matches!(*l, "help" | "version")) {
                out.push((path.to_string(), long.to_string()));
            }
        }
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
            flags(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    /// README.md documents every flag of every subcommand, and names every job.
    #[test]
    fn the_readme_names_every_flag_and_job() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let mut command = command(&Registry::builtin());
        command.build();
        let mut all = Vec::new();
        flags(&command, "mr", &mut all);
        assert!(all.len() > 60, "{all:?}");
        let mut missing = Vec::new();
        for (path, long) in &all {
            let flag = regex::Regex::new(&format!("--{}([^a-z0-9-]|$)", regex::escape(long))).unwrap();
            if !flag.is_match(&readme) {
                missing.push(format!("{path} --{long}"));
            }
        }
        missing.dedup();
        assert!(missing.is_empty(), "README.md does not mention {missing:?}");
        let run = command.find_subcommand("run").unwrap();
        for job in run.get_subcommands() {
            assert!(
                readme.contains(&format!("mr run {}", job.get_name())),
                "README.md has no `mr run {}`",
                job.get_name()
            );
        }
    }

    /// The `_job.json` keys that the docs, the tests and the status page's readers rely on.
    #[test]
    fn the_job_record_keeps_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a b\n").unwrap();
        let (input, output) = (dir.path().join("a.txt"), dir.path().join("out"));
        let argv = ["mr", "run", "wordcount", "-i", input.to_str().unwrap(), "-o", output.to_str().unwrap()];
        let Command::Run(args) = resolve(&argv).command else { panic!("not mr run") };
        let registry = Registry::builtin();
        let request = request(&args.job, "wordcount", Vec::new(), None, &registry).unwrap();
        let plan = plan::plan(&request, &registry).unwrap();
        let record = JobRecord::new(&args.job, &request, plan.shape(), 2, false, LogFormat::Text, args.job.faults());
        let value = serde_json::to_value(&record).unwrap();
        let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = "args config_file faults http input_bytes input_format inputs job listen local log_format \
                        map_tasks max_attempts max_record_bytes max_restarts merge_fan_in output output_compression reduce_tasks \
                        skip_bad_records sort_buffer speculative split_size task_timeout_ms tls_ca tls_cert tls_key \
                        verify_inputs worker_timeout_ms workers";
        assert_eq!(keys.join(" "), expected.split_whitespace().collect::<Vec<_>>().join(" "));
        assert_eq!((value["worker_timeout_ms"].as_u64(), value["workers"].as_u64()), (Some(10_000), Some(2)));
        assert!(value.get("token").is_none(), "the token is a secret");
    }

    /// What `mr run` gives a job's workers is what the job's own command parses back.
    #[test]
    fn a_job_s_arguments_travel_as_they_were_given() {
        let registry = Registry::builtin();
        for (job, argv, id, expected) in [
            ("grep", &["mr", "run", "grep", "-i", "x", "--", "-v+"][..], "pattern", "-v+"),
            (
                "streaming",
                &["mr", "run", "-w", "1", "streaming", "--mapper", "tr a b", "--reducer=cat"][..],
                "mapper",
                "tr a b",
            ),
            ("word-search", &["mr", "run", "-w", "2", "word-search", "--targets=t.txt"][..], "targets", "t.txt"),
        ] {
            let matches = command(&registry).try_get_matches_from(argv);
            let matches = matches.unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let (_, run) = matches.subcommand().unwrap();
            let Selected::Job { name, argv: job_argv } = selected(run, &registry).unwrap() else { panic!() };
            assert_eq!(name, job);
            let parsed = registry.parse(job, &job_argv).unwrap();
            let value = parsed.get_raw(id).unwrap().next().unwrap();
            assert_eq!(value.to_str(), Some(expected), "{job_argv:?}");
        }
    }
}
