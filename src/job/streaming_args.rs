//! Streaming's own flags, as Hadoop Streaming spells them (`-files`, `-D`, `-cmdenv`, the key
//! fields of secondary sort), and what the coordinator makes of them for the workers: the
//! [`Conf`] every worker's job is built from, and the shipped files' contents in the job's
//! state store.

use serde::{Deserialize, Serialize};

use super::PlanView;
use crate::error::{Error, Result};

/// Streaming's own flags (`mr run streaming -h`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StreamingArgs {
    /// The mapper command, run with `sh -c`: records on stdin, `key<TAB>value` lines on
    /// stdout. Required unless --steps gives the commands.
    #[arg(long, value_name = "CMD", required_unless_present = "steps")]
    pub mapper: Option<String>,
    /// The reducer command: its partition's pairs, sorted by key, on stdin; its stdout is the
    /// output. Not needed with --reduce-tasks 0 (map-only).
    #[arg(long, value_name = "CMD")]
    pub reducer: Option<String>,
    /// The combiner command, run once per map task on its sorted pairs.
    #[arg(long, value_name = "CMD")]
    pub combiner: Option<String>,
    /// streaming: files every task finds in its working directory, as Hadoop's -files:
    /// `PATH` (under its base name) or `PATH#NAME`, comma-separated or repeated; a local path
    /// or an object store URL.
    #[arg(long = "files", value_name = "PATH[#NAME],...", value_delimiter = ',')]
    pub files: Vec<String>,
    /// streaming: a job configuration property, as Hadoop's -D: every command sees it in its
    /// environment, with every character but letters and digits replaced by `_`.
    #[arg(short = 'D', long = "jobconf", value_name = "KEY=VALUE", value_parser = parse_property)]
    pub jobconf: Vec<(String, String)>,
    /// streaming: an environment variable of every command, as Hadoop's -cmdenv.
    #[arg(long = "cmdenv", value_name = "NAME=VALUE", value_parser = parse_cmdenv)]
    pub cmdenv: Vec<(String, String)>,
    /// streaming: the first N tab-separated fields of a mapper's output line are its key, sorted
    /// and grouped on (Hadoop's stream.num.map.output.key.fields); default 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub key_fields: Option<u32>,
    /// streaming: the first K fields of the key pick the reduce task, as Hadoop's
    /// KeyFieldBasedPartitioner with -k1,K; default: the whole key.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub partition_fields: Option<u32>,
    /// streaming: Hadoop's -partitioner: org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner
    /// (with -D mapreduce.partition.keypartitioner.options=-k1,K) or HashPartitioner.
    #[arg(long, value_name = "CLASS")]
    pub partitioner: Option<String>,
    /// streaming: a multi-step job: a TOML file of `[[step]]` tables (mapper, combiner,
    /// reducer, reduce_tasks, key_fields, partition_fields, partitioner, jobconf, cmdenv), run
    /// in order, each step's output the next one's input; instead of --mapper, --combiner and
    /// --reducer. The other flags apply to every step.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["mapper", "combiner", "reducer"])]
    pub steps: Option<std::path::PathBuf>,
}

/// `-D KEY=VALUE`: a non-empty key without spaces or `=`.
fn parse_property(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) =
        text.split_once('=').ok_or_else(|| format!("'{text}' is not KEY=VALUE (e.g. -D mapreduce.job.name=wc)"))?;
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return Err(format!("'{key}' is not a property name: give KEY=VALUE, the key without spaces"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// `--cmdenv NAME=VALUE`: a name an environment can hold.
fn parse_cmdenv(text: &str) -> std::result::Result<(String, String), String> {
    let (name, value) =
        text.split_once('=').ok_or_else(|| format!("'{text}' is not NAME=VALUE (e.g. --cmdenv LC_ALL=C)"))?;
    if name.is_empty() || name.contains('\0') || value.contains('\0') {
        return Err(format!("'{text}' is not NAME=VALUE with a non-empty name and no NUL byte"));
    }
    Ok((name.to_string(), value.to_string()))
}

/// The name of the environment variable of a job configuration property, as Hadoop Streaming
/// makes it: every character but an ASCII letter or digit becomes `_`.
pub(crate) fn env_name(property: &str) -> String {
    property.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// What every worker builds the streaming job from (the state entry [`CONF_KEY`], as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Conf {
    /// The mapper command; none: identity (each line is a pair).
    pub mapper: Option<String>,
    /// The reducer command.
    pub reducer: Option<String>,
    /// The combiner command.
    pub combiner: Option<String>,
    /// Fields of a mapper's output line that make its key (at least 1).
    pub key_fields: u32,
    /// Fields of the key that pick the reduce task; none: the whole key.
    pub partition_fields: Option<u32>,
    /// The byte between a mapper's output fields (`stream.map.output.field.separator`).
    pub separator: u8,
    /// The byte between the key's fields for the partitioner (`map.output.key.field.separator`).
    pub key_separator: u8,
    /// Variables every command gets: the job configuration's properties, then `--cmdenv`.
    pub env: Vec<(String, String)>,
    /// Files every attempt's working directory holds.
    pub files: Vec<ShippedFile>,
    /// The job's id, in Hadoop's form (`job_<digits>_0001`).
    pub job_id: String,
    /// Map tasks of the job.
    pub maps: u32,
    /// Reduce tasks of the job.
    pub reduces: u32,
}

/// A file of `--files`: its name in working directories, where workers get it, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShippedFile {
    /// Its name in the working directory.
    pub name: String,
    /// The state store key that holds its bytes, or (`from_store`) the object store URL.
    pub source: String,
    /// Whether `source` is an object store URL, read by each worker, rather than a state key.
    pub from_store: bool,
    /// Its size in bytes.
    pub len: u64,
    /// XXH3-64 of its bytes, in hex.
    pub checksum: String,
}

/// Entries of the job's state store: key, bytes.
type StateEntries = Vec<(String, Vec<u8>)>;

/// Largest file shipped through the state store (a gRPC message holds at most 16 MiB); larger
/// ones must come from an object store.
const MAX_SHIPPED: u64 = 15 << 20;

/// The state store key of the job's [`Conf`], which every worker builds the job from.
pub(crate) const CONF_KEY: &str = "streaming/conf";

/// The state store key of the `i`th shipped file.
fn file_key(i: usize) -> String {
    format!("streaming/files/{i}")
}

/// The hex XXH3-64 of `bytes`.
pub(crate) fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn bad(flag: &str, message: String) -> Error {
    Error::BadOption { flag: flag.to_string(), message }
}

/// The Hadoop properties that set a flag, and their value for it.
struct FromProperties {
    key_fields: Option<u32>,
    separator: Option<u8>,
    key_separator: Option<u8>,
    reduces: Option<u32>,
    partition_fields: Option<u32>,
    key_partitioner: bool,
}

/// Reads the properties `-D` gives that mean what a flag means.
fn from_properties(jobconf: &[(String, String)]) -> Result<FromProperties> {
    let mut found = FromProperties {
        key_fields: None,
        separator: None,
        key_separator: None,
        reduces: None,
        partition_fields: None,
        key_partitioner: false,
    };
    for (key, value) in jobconf {
        let number = |what: &str| {
            value.trim().parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(|| {
                bad("-D", format!("{key}={value}: {what} must be a whole number of at least 1 (e.g. {key}=2)"))
            })
        };
        match key.as_str() {
            "stream.num.map.output.key.fields" => found.key_fields = Some(number("the number of key fields")?),
            "mapreduce.partition.keypartitioner.options" | "mapred.text.key.partitioner.options" => {
                found.partition_fields = Some(partition_option(key, value)?)
            }
            "mapreduce.job.partitioner.class" => found.key_partitioner = is_key_partitioner(key, value)?,
            "stream.map.output.field.separator" => found.separator = Some(separator(key, value)?),
            "map.output.key.field.separator" | "mapreduce.map.output.key.field.separator" => {
                found.key_separator = Some(separator(key, value)?)
            }
            "mapreduce.job.reduces" => {
                found.reduces = Some(value.trim().parse::<u32>().map_err(|_| {
                    bad(
                        "-D",
                        format!("{key}={value}: the number of reduce tasks must be a whole number (e.g. {key}=4)"),
                    )
                })?)
            }
            "stream.reduce.input.field.separator"
            | "stream.map.input.field.separator"
            | "stream.reduce.output.field.separator"
                if value != "\t" =>
            {
                return Err(bad("-D", format!("{key}={value:?}: mr separates these fields with a tab; leave it out")));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// A field separator: one byte.
fn separator(key: &str, value: &str) -> Result<u8> {
    match value.as_bytes() {
        [b] => Ok(*b),
        _ => Err(bad("-D", format!("{key}={value:?}: mr takes a separator of one byte (e.g. {key}=.)"))),
    }
}

/// The number of reduce tasks `-D mapreduce.job.reduces=N` asks for.
pub fn reduce_tasks(jobconf: &[(String, String)]) -> Result<Option<u32>> {
    Ok(from_properties(jobconf)?.reduces)
}

/// `-k1,K` (KeyFieldBasedPartitioner's option) → K.
fn partition_option(key: &str, value: &str) -> Result<u32> {
    let k = value
        .trim()
        .strip_prefix("-k1,")
        .and_then(|k| k.parse::<u32>().ok())
        .filter(|&k| k >= 1)
        .or_else(|| (value.trim() == "-k1").then_some(1));
    k.ok_or_else(|| {
        bad("-D", format!("{key}={value}: mr takes -k1,K (the first K fields pick the reducer), e.g. {key}=-k1,2"))
    })
}

/// Whether a partitioner class is KeyFieldBasedPartitioner (true) or the default hash (false).
fn is_key_partitioner(flag: &str, class: &str) -> Result<bool> {
    match class.rsplit('.').next().unwrap_or(class) {
        "KeyFieldBasedPartitioner" => Ok(true),
        "HashPartitioner" => Ok(false),
        _ => Err(bad(
            flag,
            format!(
                "'{class}': mr has org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner and HashPartitioner \
                 (or --partition-fields K)"
            ),
        )),
    }
}

/// The key fields, the partition fields, and the `-D` properties that set flags: checked
/// against each other.
fn fields(args: &StreamingArgs) -> Result<(u32, Option<u32>, FromProperties)> {
    let props = from_properties(&args.jobconf)?;
    let key_fields = match (args.key_fields, props.key_fields) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad("--key-fields", format!("{a}, but -D stream.num.map.output.key.fields={b}: give one")));
        }
        (a, b) => a.or(b).unwrap_or(1),
    };
    let key_partitioner = match &args.partitioner {
        Some(class) => is_key_partitioner("--partitioner", class)?,
        None => props.key_partitioner,
    };
    // As in Hadoop, the partitioner's options count only with KeyFieldBasedPartitioner.
    let partition_fields = args.partition_fields.or(props.partition_fields.filter(|_| key_partitioner));
    if let Some(k) = partition_fields
        && k > key_fields
    {
        return Err(bad(
            "--partition-fields",
            format!("{k} is more than the key's {key_fields} field(s): give at most --key-fields, or raise it"),
        ));
    }
    Ok((key_fields, partition_fields, props))
}

/// Checks streaming's flags as far as they can be checked before the job is planned (key
/// fields, partitioner, the `-D` properties that set them), as every step of a multi-step
/// job is before its first step runs.
pub(crate) fn check(args: &StreamingArgs) -> Result<()> {
    fields(args).map(drop)
}

/// Checks streaming's flags against a planned job and makes the workers' [`Conf`] and the
/// state entries of the shipped files. Every bad value is an error here, before a task runs.
pub(crate) fn prepare(args: &StreamingArgs, plan: &PlanView<'_>) -> Result<(Conf, StateEntries)> {
    let mapper = args.mapper.clone().ok_or_else(|| {
        bad("--steps", "a multi-step job runs each step as a job of its own: run it with mr run".into())
    })?;
    let (key_fields, partition_fields, props) = fields(args)?;
    let mut env: Vec<(String, String)> = args.jobconf.iter().map(|(k, v)| (env_name(k), v.clone())).collect();
    env.extend(args.cmdenv.iter().cloned());
    let (files, state) = ship_files(&args.files)?;
    let identity = format!("{key_fields} {partition_fields:?} {env:?} {files:?} {}", plan.splits.len());
    // Hadoop's form, job_<cluster start>_<sequence>: here digits that depend only on the job,
    // so that a resumed run has the same id.
    let job_id = format!("job_{:013}_0001", xxhash_rust::xxh3::xxh3_64(identity.as_bytes()) % 10_000_000_000_000);
    let conf = Conf {
        mapper: Some(mapper),
        reducer: args.reducer.clone(),
        combiner: args.combiner.clone(),
        key_fields,
        partition_fields,
        separator: props.separator.unwrap_or(b'\t'),
        key_separator: props.key_separator.unwrap_or(b'\t'),
        env,
        files,
        job_id,
        maps: plan.splits.len() as u32,
        reduces: plan.reduce_tasks,
    };
    Ok((conf, state))
}

/// Reads the `--files` entries: each local file's bytes go into the state store; an object
/// store URL is checked to exist, and read for its checksum.
fn ship_files(entries: &[String]) -> Result<(Vec<ShippedFile>, StateEntries)> {
    let mut files: Vec<ShippedFile> = Vec::new();
    let mut state = Vec::new();
    for entry in entries.iter().filter(|e| !e.is_empty()) {
        let (path, name) = match entry.rsplit_once('#') {
            Some((path, name)) => (path, name.to_string()),
            None => {
                let base = entry.trim_end_matches('/').rsplit('/').next().unwrap_or(entry);
                (entry.as_str(), base.to_string())
            }
        };
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(bad("--files", format!("'{entry}': '{name}' is not a file name: give PATH#NAME")));
        }
        if let Some(other) = files.iter().find(|f| f.name == name) {
            return Err(bad(
                "--files",
                format!("two files are named '{name}' ({} and {path}): rename one with PATH#NAME", other.source),
            ));
        }
        let from_store = crate::data::storage::is_url(std::path::Path::new(path));
        let bytes = read_shipped(path, from_store)?;
        let source = if from_store { path.to_string() } else { file_key(files.len()) };
        let file = ShippedFile { name, source, from_store, len: bytes.len() as u64, checksum: checksum(&bytes) };
        if !from_store {
            state.push((file.source.clone(), bytes));
        }
        files.push(file);
    }
    Ok((files, state))
}

/// The bytes of a `--files` entry.
fn read_shipped(path: &str, from_store: bool) -> Result<Vec<u8>> {
    use std::io::Read;
    let missing = |e: &dyn std::fmt::Display| bad("--files", format!("cannot read '{path}': {e}"));
    if from_store {
        let mut bytes = Vec::new();
        crate::data::storage::open(std::path::Path::new(path))
            .and_then(|mut r| r.read_to_end(&mut bytes).map_err(Error::io("cannot read", path)))
            .map_err(|e| missing(&e))?;
        return Ok(bytes);
    }
    let meta = std::fs::metadata(path).map_err(|e| missing(&e))?;
    if !meta.is_file() {
        return Err(bad(
            "--files",
            format!("'{path}' is not a regular file: give files (directories are not shipped)"),
        ));
    }
    if meta.len() > MAX_SHIPPED {
        return Err(bad(
            "--files",
            format!(
                "'{path}' is {} bytes, more than the {} MiB mr ships itself: put it in an object store and give \
                 its URL",
                meta.len(),
                MAX_SHIPPED >> 20
            ),
        ));
    }
    std::fs::read(path).map_err(|e| missing(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_names() {
        assert_eq!(parse_property("a.b=c=d"), Ok(("a.b".into(), "c=d".into())));
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=x").is_err());
        assert!(parse_cmdenv("=x").is_err());
        assert_eq!(env_name("mapreduce.map.input-file"), "mapreduce_map_input_file");
        assert_eq!(partition_option("k", "-k1,2").unwrap(), 2);
        assert_eq!(partition_option("k", "-k1").unwrap(), 1);
        assert!(partition_option("k", "-k2,3").is_err());
        assert!(is_key_partitioner("p", "org.apache.hadoop.mapred.lib.KeyFieldBasedPartitioner").unwrap());
        assert!(!is_key_partitioner("p", "org.apache.hadoop.mapreduce.lib.partition.HashPartitioner").unwrap());
        assert!(is_key_partitioner("p", "com.example.Mine").is_err());
    }
}
