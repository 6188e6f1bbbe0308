//! The library's error type. Every variant names the thing that went wrong and, where there is
//! one, the fix; the binary adds nothing but the exit code.

use std::path::PathBuf;

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `mr`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input path given on the command line does not exist.
    #[error("input path '{0}' does not exist")]
    InputMissing(PathBuf),

    /// The input paths hold no file to read (only directories or hidden files).
    #[error("no input files found in {0}: give files, or directories that contain non-hidden files")]
    NoInputFiles(String),

    /// A file or directory could not be read, written or listed.
    #[error("{action} '{path}': {cause}")]
    Io {
        /// What was being done, e.g. "cannot read".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error, already in the message (so not a `source`, which
        /// would print it twice in an error chain).
        cause: std::io::Error,
    },

    /// A text input file is compressed in a format mr does not read.
    #[error(
        "input file '{path}' is compressed with {format}, which mr does not read: decompress it, or recompress it \
         with gzip (.gz), bzip2 (.bz2), zstd (.zst) or xz (.xz)"
    )]
    UnsupportedCompression {
        /// The input file.
        path: PathBuf,
        /// The format's name.
        format: &'static str,
    },

    /// A flag or a `-D` property of the command line has a value that cannot work; the
    /// message names it and the fix.
    #[error("{flag}: {message}")]
    BadOption {
        /// The flag, e.g. `--files`.
        flag: String,
        /// What is wrong, and the fix.
        message: String,
    },

    /// An input file holds bytes that are not UTF-8 in a text record.
    #[error(
        "invalid UTF-8 in '{path}' at byte offset {offset}: text input must be UTF-8 (convert it, e.g. with iconv)"
    )]
    InvalidUtf8 {
        /// The input file.
        path: PathBuf,
        /// Offset of the first invalid byte in the file.
        offset: u64,
    },

    /// A csv or jsonl record that does not parse.
    #[error("bad {format} record in '{path}' at line {line}: {reason}")]
    BadRecord {
        /// The input format.
        format: &'static str,
        /// The input file.
        path: PathBuf,
        /// The record's first line, from 1.
        line: u64,
        /// What is wrong.
        reason: String,
    },

    /// An input record is larger than `--max-record-bytes`.
    #[error(
        "the record at byte offset {offset} of '{path}' is {size} bytes, more than --max-record-bytes ({limit} bytes): \
         check the input (a file with no newlines is one line), or raise --max-record-bytes (MR_MAX_RECORD_BYTES, \
         max_record_bytes in the config file); a map task holds one record in memory"
    )]
    RecordTooLarge {
        /// The input file.
        path: PathBuf,
        /// Offset of the record in the file.
        offset: u64,
        /// Size of the record in bytes (without its line terminator).
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// An input path is not a regular file (a FIFO, a socket, a device), e.g. `-i <(cmd)`,
    /// `-i /dev/stdin` or `-i /dev/zero`.
    #[error(
        "input '{path}' is {kind}: input must be regular files (or directories of them), which map tasks can read \
         in ranges and read again on a retry; save the data to a file first (e.g. `cmd > data.txt`)"
    )]
    NotRegularFile {
        /// The input path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },

    /// An input file changed after the job was planned.
    #[error(
        "input file '{path}' changed while the job ran ({what}): a job's input must not change until it commits; \
         run the job again once the file is complete (or on a copy of it)"
    )]
    InputChanged {
        /// The input file.
        path: PathBuf,
        /// What changed.
        what: String,
    },

    /// Another job holds the output directory.
    #[error(
        "output directory '{0}' is in use by another running job (it holds the directory's lock): wait for that \
         job to end, or choose another output"
    )]
    OutputBusy(PathBuf),

    /// The output directory holds the journal of an interrupted job.
    #[error(
        "output directory '{0}' holds an interrupted job (its journal is in _temporary): run the same command with \
         --resume to continue it, or pass --overwrite to replace it"
    )]
    OutputInterrupted(PathBuf),

    /// `--overwrite` on a directory that holds files no job wrote.
    #[error(
        "output directory '{output}' holds files that are not a job's output ({files}): --overwrite replaces only a \
         previous job's output (_SUCCESS, _job.json, _temporary, part-*); choose another output directory, or move \
         those files away"
    )]
    OverwriteForeign {
        /// The output directory.
        output: PathBuf,
        /// The first few names that are not a job's output.
        files: String,
    },

    /// More local worker processes than the host can run sensibly.
    #[error(
        "--workers {workers} is more than {limit} ({per_core} per core on {cores} cores): lower --workers, or pass \
         --oversubscribe to start them anyway"
    )]
    TooManyWorkers {
        /// The worker processes asked for.
        workers: u32,
        /// The host's cores.
        cores: u32,
        /// Workers allowed per core.
        per_core: u32,
        /// The most workers allowed without --oversubscribe.
        limit: u32,
    },

    /// The output directory already holds files.
    #[error("output directory '{0}' is not empty: choose another one, or pass --overwrite to replace its contents")]
    OutputNotEmpty(PathBuf),

    /// The job's journal cannot be created, read or written.
    #[error("journal '{path}': {reason}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// `--resume` with a journal that another job wrote.
    #[error(
        "cannot resume: the journal '{path}' was written by another job ({difference}); run the same command as the \
         interrupted run (same inputs, --workers, --split-size, --reduce-tasks and job arguments) with --resume, or remove \
         the output directory and run without --resume"
    )]
    JournalMismatch {
        /// The journal file.
        path: PathBuf,
        /// The first fact that differs.
        difference: String,
    },

    /// `--resume` with a journal that this build cannot read: written by another version of mr.
    #[error(
        "cannot resume into '{output}': its journal '{journal}' is in format {found}, written by another version of \
         mr, and this build resumes format {expected} only; remove '{output}' and rerun without --resume, or rerun \
         with --overwrite instead of --resume to replace it"
    )]
    JournalFormat {
        /// The output directory.
        output: PathBuf,
        /// The journal file.
        journal: PathBuf,
        /// The format the journal is in.
        found: u32,
        /// The format this build reads.
        expected: u32,
    },

    /// `--resume` with nothing to resume.
    #[error("cannot resume into '{output}': {reason}")]
    NothingToResume {
        /// The output directory.
        output: PathBuf,
        /// Why there is nothing to resume, and what to do.
        reason: String,
    },

    /// The output directory is an input, or contains one.
    #[error("output directory '{output}' would contain the input '{input}': choose an output outside the input")]
    OutputOverlapsInput {
        /// The output directory.
        output: PathBuf,
        /// The input path it overlaps.
        input: PathBuf,
    },

    /// The output directory is inside an input directory.
    #[error(
        "output directory '{output}' is inside the input directory '{input}': a later run over that input would \
         read this job's output as data; choose an output outside the input"
    )]
    OutputInsideInput {
        /// The output directory.
        output: PathBuf,
        /// The input directory that contains it.
        input: PathBuf,
    },

    /// A job name that the registry does not know.
    #[error("unknown job '{0}': the jobs are {1}")]
    UnknownJob(String, String),

    /// A job was given arguments it cannot use.
    #[error("job '{job}': {message}")]
    JobArgs {
        /// The job's name.
        job: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A map output file is not in the format this version writes.
    #[error("map output '{path}' is corrupt: {reason}")]
    CorruptMapOutput {
        /// The map output file.
        path: PathBuf,
        /// What check failed.
        reason: String,
    },

    /// The address given to --listen could not be bound.
    #[error(
        "cannot listen on {addr}: {cause}: choose another address (--listen, --http), or port 0 to let the OS pick one"
    )]
    Listen {
        /// The address.
        addr: String,
        /// The operating system's error.
        cause: std::io::Error,
    },

    /// The coordinator could not be reached.
    #[error("cannot reach the coordinator at {url}: {reason}: check the address and that the coordinator is running")]
    Unreachable {
        /// The coordinator's URL.
        url: String,
        /// The last error seen.
        reason: String,
    },

    /// A status server could not be reached, or did not answer as one.
    #[error(
        "cannot reach the status server at {url}: {reason}: check the address (the `status:` URL that mr run prints); \
         the server stops with its job, and a finished job's history is in its output: mr status OUT"
    )]
    StatusUnreachable {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A job history (`_job.json`) that cannot be read or shown.
    #[error("job history '{path}': {reason}")]
    History {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// A service refused this process's token.
    #[error(
        "{url} refused the token: give every process of the job the same --token (or MR_TOKEN), the one the coordinator was started with"
    )]
    Unauthenticated {
        /// The service's URL.
        url: String,
    },

    /// A URL that is not a valid `http://` or `https://` address.
    #[error("invalid URL '{url}': {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A TLS file (certificate, key or CA) cannot be read, is not PEM, or does not fit the
    /// other two.
    #[error("{setting} '{path}': {reason}")]
    TlsFile {
        /// The flag and variable that named the file, e.g. "--tls-key (MR_TLS_KEY)".
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A URL's scheme does not match this process's TLS settings: `https://` without TLS
    /// files, or `http://` with them.
    #[error("{url}: {}", scheme_mismatch(*.tls))]
    TlsScheme {
        /// The URL.
        url: String,
        /// Whether this process has TLS on.
        tls: bool,
    },

    /// A TLS handshake failed: a certificate was refused, or the other side does not speak TLS.
    #[error(
        "TLS handshake with {url} failed: {reason}: every process of the job needs a certificate signed by the CA \
         that the others trust (--tls-ca), valid for the host it is reached at"
    )]
    TlsHandshake {
        /// The URL of the server.
        url: String,
        /// The TLS error.
        reason: String,
    },

    /// A server answered a call without TLS with TLS.
    #[error(
        "{url} answers with TLS: use its https:// URL, as the coordinator prints it, and give this process the \
         cluster's TLS files, --tls-cert, --tls-key and --tls-ca (MR_TLS_CERT, MR_TLS_KEY, MR_TLS_CA)"
    )]
    ServerUsesTls {
        /// The URL called without TLS.
        url: String,
    },

    /// A reduce attempt could not fetch a map output from the worker that holds it.
    #[error("cannot fetch the output of map task {map_task} attempt {attempt} from {url}: {reason}")]
    LostMapOutput {
        /// The map task.
        map_task: u32,
        /// Its committed attempt.
        attempt: u32,
        /// The worker's Shuffle service.
        url: String,
        /// The last error.
        reason: String,
    },

    /// An object store refused or failed a request.
    #[error(
        "object store {url}: {reason}: check the URL and the store's settings in the environment (e.g. AWS_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_ALLOW_HTTP)"
    )]
    ObjectStore {
        /// The object or prefix.
        url: String,
        /// The store's error.
        reason: String,
    },

    /// The cluster's store of jobs (`mr cluster --state-dir`) cannot be opened, read or written.
    #[error("cluster store '{path}': {reason}")]
    ClusterStore {
        /// The store's file (`--state-dir`/cluster.redb).
        path: PathBuf,
        /// What failed, and the fix where there is one.
        reason: String,
    },

    /// A remote call failed.
    #[error("{call} failed: {status}")]
    Rpc {
        /// The RPC's name.
        call: &'static str,
        /// The gRPC status.
        status: Box<tonic::Status>,
    },

    /// A task failed more times than allowed, which fails the job.
    #[error(
        "{task} failed, {attempts} attempts out of {attempts} allowed (last error: {last_error}); the job is stopped"
    )]
    TaskFailed {
        /// The task and its input, e.g. "map task 3 (input.txt bytes 0..1024)".
        task: String,
        /// How many attempts failed.
        attempts: u32,
        /// The error of the last failed attempt.
        last_error: String,
    },

    /// Worker processes kept dying.
    #[error(
        "worker processes died {0} times in a row with no task committed (more than --max-restarts); see the worker errors above"
    )]
    WorkersDied(u32),

    /// The job was stopped by a signal (Ctrl-C).
    #[error("interrupted: the job was stopped and its partial output removed")]
    Interrupted,

    /// The job was stopped by a signal (Ctrl-C, SIGTERM), and its journal and committed tasks
    /// are kept, so that it can go on with `--resume`.
    #[error("interrupted: resume with the same command and --resume, or remove {}", .0.display())]
    InterruptedResumable(PathBuf),

    /// A job failed; its worker processes' logs are kept for a look.
    #[error("{error}\nworker logs: {}", logs.display())]
    WithLogs {
        /// Why the job failed.
        error: Box<Error>,
        /// The directory of the worker log files.
        logs: PathBuf,
    },

    /// The command line asks for something that cannot be done as asked: what is missing or
    /// wrong, and the fix.
    #[error("{0}")]
    Usage(String),

    /// A configuration file or option is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A job's map or reduce function reported an error.
    #[error("{0}")]
    Job(String),
}

fn scheme_mismatch(tls: bool) -> &'static str {
    if tls {
        "this process has TLS on (--tls-cert, --tls-key, --tls-ca) but the URL is http://: give the https:// URL \
         that the coordinator prints, and start the coordinator with the same TLS settings"
    } else {
        "the URL is https://: give this process the cluster's TLS files, --tls-cert, --tls-key and --tls-ca \
         (MR_TLS_CERT, MR_TLS_KEY, MR_TLS_CA)"
    }
}

impl Error {
    /// True for an error in what the command asked for (exit code 2), rather than in what
    /// happened when it ran.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::OutputOverlapsInput { .. }
                | Error::OutputInsideInput { .. }
                | Error::UnsupportedCompression { .. }
                | Error::BadOption { .. }
                | Error::Usage(_)
                | Error::UnknownJob(..)
                | Error::JobArgs { .. }
                | Error::TooManyWorkers { .. }
                | Error::OverwriteForeign { .. }
                | Error::JournalFormat { .. }
        )
    }

    /// True for a job stopped by a signal (exit code 130).
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted | Error::InterruptedResumable(_))
    }

    /// Wraps an I/O error with what was being done and the path involved.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |cause| Error::Io { action, path, cause }
    }
}
