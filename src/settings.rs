//! The settings of a job and of its processes, each defined once: its flag, its `MR_*`
//! variable, its help text and its default are the clap attributes below; the command line
//! (`cli`) flattens these groups into the subcommands they apply to, the config file
//! (`cli::config`) layers under them, `_job.json` serializes them, and the scheduler, the
//! coordinator and `run::run_job` take them as they are. A group's `Default` is its clap defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches};
use serde::{Serialize, Serializer};

/// Help headings, in the order the help shows them.
pub mod heading {
    /// The job and its own flags.
    pub const JOB: &str = "Job";
    /// Where the job reads and writes.
    pub const INPUT_OUTPUT: &str = "Input and output";
    /// Processes, tasks and memory.
    pub const RESOURCES: &str = "Resources";
    /// Timeouts, retries, backups, resuming.
    pub const FAULT_TOLERANCE: &str = "Fault tolerance";
    /// Injected faults, for testing.
    pub const FAULT_INJECTION: &str = "Fault injection (testing)";
    /// Addresses, token, TLS.
    pub const CLUSTER: &str = "Cluster and security";
    /// What is printed, and how.
    pub const OUTPUT_FORMAT: &str = "Output format";
}

/// A group's values when no flag, variable or file sets them: its clap defaults, read with
/// the variables ignored.
pub fn defaults<T: Args + FromArgMatches>() -> T {
    let command = T::augment_args(clap::Command::new("defaults")).mut_args(|a| a.env(None::<&str>));
    let matches =
        command.try_get_matches_from(["defaults"]).unwrap_or_else(|e| panic!("a default does not parse: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("a default does not parse: {e}"))
}

/// The configuration file, the layer under the flags and the variables.
#[derive(Debug, Clone, Default, PartialEq, Args)]
pub struct ConfigFile {
    /// Configuration file (TOML) for the settings that no flag and no MR_* variable sets (`mr
    /// worker` reads its [worker] table); see mr.example.toml.
    #[arg(long, value_name = "FILE", env = "MR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The default of `--sort-buffer` (also `mr bench`'s, for its `mr run` variants).
pub const SORT_BUFFER: &str = "64MiB";

/// Processes, tasks and memory of a job.
#[derive(Debug, Clone, PartialEq, Args, Serialize)]
#[command(next_help_heading = heading::RESOURCES)]
pub struct Resources {
    /// Number of worker processes; default: the number of cores. At most 8 per core unless
    /// --oversubscribe. For teragen, the number of files.
    #[arg(short, long, value_name = "W", env = "MR_WORKERS", value_parser = clap::value_parser!(u32).range(1..))]
    #[serde(skip)]
    pub workers: Option<u32>,
    /// Start more than 8 local worker processes per core when --workers asks for them.
    #[arg(long, env = "MR_OVERSUBSCRIBE", value_parser = clap::builder::BoolishValueParser::new())]
    #[serde(skip)]
    pub oversubscribe: bool,
    /// Number of reduce tasks (and part files); default: the number of workers. 0: a map-only
    /// job, whose map tasks write the part files (part-m-NNNNN).
    #[arg(short, long, value_name = "R", env = "MR_REDUCE_TASKS", value_parser = clap::value_parser!(u32))]
    #[serde(skip)]
    pub reduce_tasks: Option<u32>,
    /// Bytes per input split (e.g. 64MiB); default: input size / (4 x workers), clamped to
    /// 1-64 MiB.
    #[arg(long, value_name = "BYTES", env = "MR_SPLIT_SIZE", value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub split_size: Option<u64>,
    /// Intermediate data a map task holds in memory before it spills a sorted run to disk.
    #[arg(long, value_name = "BYTES", env = "MR_SORT_BUFFER", default_value = SORT_BUFFER, value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub sort_buffer: u64,
    /// Most sorted runs merged at once (map spills, reduce inputs); more merge in passes.
    #[arg(long, value_name = "N", env = "MR_MERGE_FAN_IN", default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..), allow_negative_numbers = true)]
    pub merge_fan_in: u32,
    /// Largest input record (a line, or a whole file with --input-format whole-file) a map
    /// task reads; a larger one fails its task with an error that names it. Memory grows
    /// with it.
    #[arg(long, value_name = "BYTES", env = "MR_MAX_RECORD_BYTES", default_value = "64MiB", value_parser = parse_positive_size, allow_hyphen_values = true)]
    pub max_record_bytes: u64,
}

/// How a distributed job survives failures: the scheduler's, the coordinator's and `mr run`'s
/// rules.
#[derive(Debug, Clone, PartialEq, Args, Serialize)]
#[command(next_help_heading = heading::FAULT_TOLERANCE)]
pub struct FaultTolerance {
    /// A worker silent for this long is declared dead and its tasks rerun.
    #[arg(long, value_name = "DURATION", env = "MR_WORKER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    #[serde(rename = "worker_timeout_ms", serialize_with = "millis")]
    pub worker_timeout: Duration,
    /// An attempt that reports no progress for this long is abandoned and rerun.
    #[arg(long, value_name = "DURATION", env = "MR_TASK_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    #[serde(rename = "task_timeout_ms", serialize_with = "millis")]
    pub task_timeout: Duration,
    /// A task that fails this many times fails the job.
    #[arg(long, value_name = "N", env = "MR_MAX_ATTEMPTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub max_attempts: u32,
    /// Dead worker processes are replaced; this many dying in a row with no task committed
    /// in between fail the job.
    #[arg(long, value_name = "N", env = "MR_MAX_RESTARTS", default_value_t = 8, allow_negative_numbers = true)]
    pub max_restarts: u32,
    /// Backup attempts of slow tasks near the end of each phase.
    #[arg(long, value_name = "on|off", env = "MR_SPECULATIVE", default_value = "on", value_parser = parse_on_off, action = clap::ArgAction::Set)]
    pub speculative: bool,
    /// Skip a record on which two attempts of its map task failed, and count it.
    #[arg(long, env = "MR_SKIP_BAD_RECORDS", value_parser = clap::builder::BoolishValueParser::new())]
    pub skip_bad_records: bool,
    /// Hash every input file's contents (xxh3) when planning, a full read of the input, and
    /// record the hashes in the journal: --resume then refuses an input whose contents
    /// changed even if its size and modification time did not. Off by default: --resume
    /// compares size and modification time only. A resumed job whose journal holds hashes is
    /// always checked.
    #[arg(long, env = "MR_VERIFY_INPUTS", value_parser = clap::builder::BoolishValueParser::new())]
    pub verify_inputs: bool,
}

impl Default for FaultTolerance {
    fn default() -> FaultTolerance {
        defaults()
    }
}

/// Faults injected into a distributed job's attempts, for testing; they override the config
/// file's `[faults]` for both phases.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[command(next_help_heading = heading::FAULT_INJECTION)]
pub struct FaultInjection {
    /// Probability in [0, 1] that a worker exits abruptly mid-attempt.
    #[arg(long, value_name = "P", env = "MR_INJECT_FAILURE", value_parser = parse_probability, allow_hyphen_values = true)]
    pub inject_failure: Option<f64>,
    /// Probability in [0, 1] that an attempt straggles.
    #[arg(long, value_name = "P", env = "MR_INJECT_STRAGGLER", value_parser = parse_probability, allow_hyphen_values = true)]
    pub inject_straggler: Option<f64>,
    /// How long a straggling attempt sleeps, e.g. 500ms or 2s (a bare number is
    /// milliseconds).
    #[arg(long, value_name = "DURATION", env = "MR_STRAGGLER_DELAY", value_parser = parse_delay, allow_hyphen_values = true)]
    pub straggler_delay: Option<Duration>,
    /// Seed of the decisions, to reproduce a run.
    #[arg(long, value_name = "N", env = "MR_INJECT_SEED", allow_negative_numbers = true)]
    pub inject_seed: Option<u64>,
}

/// The token and the TLS files of a job's processes: the same for `mr run`, `mr coordinator`
/// and `mr worker`.
#[derive(Debug, Clone, Default, PartialEq, Args)]
#[command(next_help_heading = heading::CLUSTER)]
pub struct Security {
    /// Shared secret of the job's services: every call between the coordinator and its
    /// workers is signed with it. A command line is visible to every user of the host:
    /// prefer MR_TOKEN. `mr run` makes a random one for its own workers when none is given.
    #[arg(long, value_name = "TOKEN", env = "MR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// TLS on every service and call: the PEM certificate chain this process presents, as a
    /// server and as a client. With --tls-key and --tls-ca; every process of the job has the
    /// same three files.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of the --tls-cert certificate.
    #[arg(long, value_name = "FILE", env = "MR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// TLS: the PEM certificate of the CA that signed the job's certificates, the only one
    /// trusted; servers also require a client certificate that it signed.
    #[arg(long, value_name = "FILE", env = "MR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// The addresses a job's coordinator serves on.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize)]
#[command(next_help_heading = heading::CLUSTER)]
pub struct Addresses {
    /// Address of the coordinator's gRPC server; default: a free port on 127.0.0.1.
    #[arg(long, value_name = "ADDR", env = "MR_LISTEN")]
    pub listen: Option<String>,
    /// Address of the status server (HTML page at /, JSON at /api/v1/job, Prometheus metrics
    /// at /metrics), or `off`; default: a free port on 127.0.0.1.
    #[arg(long, value_name = "ADDR", env = "MR_HTTP", value_parser = parse_http)]
    pub http: Option<String>,
}

/// `--http`: `off`, or an address with a port.
pub fn parse_http(s: &str) -> Result<String, String> {
    if s == "off" {
        return Ok(s.into());
    }
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.into()),
        _ => Err(format!("expected HOST:PORT (e.g. 127.0.0.1:8080, port 0 for a free one) or off, got '{s}'")),
    }
}

/// `on` or `off` (or `true` or `false`).
pub fn parse_on_off(s: &str) -> Result<bool, String> {
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

/// A duration with a unit (`500ms`, `2s`), or a bare number of milliseconds.
fn parse_delay(s: &str) -> Result<Duration, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s).map_err(|e| format!("expected a duration such as 500ms or 2s, got '{s}': {e}"))
}

/// A size with a unit (`64MiB`, `1GB`) or a number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("invalid size '{s}': a size cannot be negative"));
    }
    s.parse::<bytesize::ByteSize>().map(|b| b.as_u64()).map_err(|e| format!("invalid size '{s}': {e}"))
}

/// A size of at least one byte.
pub fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("invalid size '{s}': must be at least 1 byte")),
        size => Ok(size),
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    (d.as_millis() as u64).serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Args)]
    struct Only {
        #[arg(long, env = "MR_SETTINGS_TEST_ONLY", default_value_t = 1)]
        value: u32,
    }

    #[test]
    fn defaults_are_the_flags_defaults_whatever_the_environment() {
        // SAFETY: no other test reads or writes this variable.
        unsafe { std::env::set_var("MR_SETTINGS_TEST_ONLY", "9") };
        assert_eq!(defaults::<Only>().value, 1);
        unsafe { std::env::remove_var("MR_SETTINGS_TEST_ONLY") };
        let d = FaultTolerance::default();
        assert_eq!((d.worker_timeout, d.task_timeout), (Duration::from_secs(10), Duration::from_secs(60)));
        assert_eq!((d.max_attempts, d.max_restarts, d.speculative, d.skip_bad_records), (4, 8, true, false));
    }

    #[test]
    fn sizes_durations_and_addresses() {
        assert_eq!(parse_positive_size("1KiB"), Ok(1024));
        assert!(parse_positive_size("-1").unwrap_err().contains("cannot be negative"));
        assert!(parse_positive_size("0").unwrap_err().contains("at least 1 byte"));
        assert_eq!(parse_delay("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_delay("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_delay("soon").is_err());
        assert!(parse_http("nonsense").is_err());
        assert!(parse_http("127.0.0.1:0").is_ok() && parse_http("off").is_ok() && parse_http("[::1]:80").is_ok());
    }
}
