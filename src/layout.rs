//! Names `mr` gives to things other processes look at: the files a job leaves in its output
//! directory, the names input discovery skips, and the name a worker process registers under. A leaf module: the coordinator,
//! local mode, the journal, storage and the worker agree on these names through it.

/// Name of the file that marks a committed job.
pub const SUCCESS: &str = "_SUCCESS";
/// Name of the job history file written next to `_SUCCESS`.
pub const HISTORY: &str = "_job.json";
/// Directory under the output dir where attempts write before they commit, and where the
/// journal lives while the job runs.
pub const TEMPORARY: &str = "_temporary";

/// The name a worker process registers under.
pub fn process_name(pid: u32) -> String {
    format!("pid {pid}")
}

/// True for a name that input discovery skips inside a directory or an object-store prefix:
/// one that starts with `_` or `.`, as Hadoop's `FileInputFormat` skips them. So a job's output
/// directory (`_SUCCESS`, `_job.json`, `_temporary`) is read as its part files only, and
/// hidden files and directories are not read.
pub fn is_skipped_name(name: &[u8]) -> bool {
    name.starts_with(b"_") || name.starts_with(b".")
}
