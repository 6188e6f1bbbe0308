//! The configuration file, `mr.toml`. Each setting of `mr run` and `mr worker` comes from, in
//! order: a flag, an `MR_*` environment variable, this file (`--config FILE` or `MR_CONFIG`),
//! or its default. Flags and variables are clap's, in [`crate::cli`]; this module reads and
//! checks the file. Its keys are the flags' names in snake_case: `mr run`'s and `log_format` at
//! the top level, `mr worker`'s in a `[worker]` table, fault injection in `[faults]`,
//! `[faults.map]` and `[faults.reduce]`. `mr.example.toml` lists them all.
//!
//! An unknown key, a wrong type or an invalid value is an [`Error::Config`] that names the file,
//! the line where the parser knows it, and the key's dotted path (`faults.map.failure`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::data::input::InputFormat;
use crate::error::{Error, Result};
use crate::exec::fault::Faults;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The contents of a configuration file. A key that is absent leaves its setting to the
/// environment variable or the default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Worker processes (`--workers`).
    pub workers: Option<u32>,
    /// Reduce tasks, hence part files (`--reduce-tasks`).
    pub reduce_tasks: Option<u32>,
    /// Bytes per map task's split (`--split-size`).
    #[serde(with = "size")]
    pub split_size: Option<u64>,
    /// Intermediate data a map task holds in memory before it spills (`--sort-buffer`).
    #[serde(with = "size")]
    pub sort_buffer: Option<u64>,
    /// Most sorted runs merged at once (`--merge-fan-in`).
    pub merge_fan_in: Option<u32>,
    /// Largest input record a map task reads (`--max-record-bytes`).
    #[serde(with = "size")]
    pub max_record_bytes: Option<u64>,
    /// Address of the coordinator's gRPC server (`--listen`).
    pub listen: Option<String>,
    /// Address of the status server, or "off" (`--http`).
    pub http: Option<String>,
    /// A worker silent this long is dead (`--worker-timeout`).
    #[serde(with = "duration")]
    pub worker_timeout: Option<Duration>,
    /// An attempt without progress this long is abandoned (`--task-timeout`).
    #[serde(with = "duration")]
    pub task_timeout: Option<Duration>,
    /// Failed attempts of one task that fail the job (`--max-attempts`).
    pub max_attempts: Option<u32>,
    /// Worker deaths in a row that fail the job (`--max-restarts`).
    pub max_restarts: Option<u32>,
    /// Backup attempts of slow tasks (`--speculative`).
    pub speculative: Option<bool>,
    /// Skip records on which two attempts failed (`--skip-bad-records`).
    pub skip_bad_records: Option<bool>,
    /// Record a content hash of every input file, checked by `--resume` (`--verify-inputs`).
    pub verify_inputs: Option<bool>,
    /// How input files are read (`--input-format`).
    pub input_format: Option<InputFormat>,
    /// Log format (`--log-format`).
    pub log_format: Option<LogFormat>,
    /// TLS: the PEM certificate chain (`--tls-cert`). A relative path is relative to the
    /// config file's directory, as are the other TLS files.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// TLS: the PEM CA certificate (`--tls-ca`).
    pub tls_ca: Option<PathBuf>,
    /// Fault injection, per phase (`[faults.map]`, `[faults.reduce]`, `faults.seed`); the
    /// `--inject-*` flags and their variables override it for both phases.
    pub faults: Faults,
    /// Settings of `mr worker` (`[worker]`).
    pub worker: WorkerFileConfig,
}

/// The `[worker]` table: settings of `mr worker`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerFileConfig {
    /// The coordinator's URL (`--coordinator`).
    pub coordinator: Option<String>,
    /// How long to retry the first connection (`--connect-timeout`).
    #[serde(with = "duration")]
    pub connect_timeout: Option<Duration>,
    /// Exit when the coordinator has been unreachable this long (`--lost-timeout`).
    #[serde(with = "duration")]
    pub lost_timeout: Option<Duration>,
    /// TLS: the PEM certificate chain (`--tls-cert`).
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key (`--tls-key`).
    pub tls_key: Option<PathBuf>,
    /// TLS: the PEM CA certificate (`--tls-ca`).
    pub tls_ca: Option<PathBuf>,
}

/// The three TLS files: certificate chain, private key, CA certificate.
pub type TlsFiles = (Option<PathBuf>, Option<PathBuf>, Option<PathBuf>);

impl WorkerFileConfig {
    /// The `[worker]` table's TLS files.
    pub fn tls(&self) -> TlsFiles {
        (self.tls_cert.clone(), self.tls_key.clone(), self.tls_ca.clone())
    }
}

impl FileConfig {
    /// The file's TLS files, for `mr run` and `mr coordinator`.
    pub fn tls(&self) -> TlsFiles {
        (self.tls_cert.clone(), self.tls_key.clone(), self.tls_ca.clone())
    }

    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read the config file {}: {e}", path.display())))?;
        let mut config = FileConfig::parse(&text).map_err(|e| Error::Config(format!("{}{e}", path.display())))?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Makes the file's relative paths relative to `dir`, the file's directory.
    fn resolve_paths(&mut self, dir: &Path) {
        let w = &mut self.worker;
        for path in
            [&mut self.tls_cert, &mut self.tls_key, &mut self.tls_ca, &mut w.tls_cert, &mut w.tls_key, &mut w.tls_ca]
                .into_iter()
                .flatten()
        {
            if path.is_relative() {
                *path = dir.join(&*path);
            }
        }
    }

    /// Parses and checks the text of a configuration file. The error starts where the file's
    /// name would end: with its line, or with ": ".
    fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        let located = |e: &toml::de::Error, key: Option<String>| {
            let line = e.span().map(|span| format!(", line {}", line_of(text, span.start))).unwrap_or_default();
            match key {
                Some(key) => format!("{line}: {key}: {}", e.message()),
                None => format!("{line}: {}", e.message()),
            }
        };
        let document = toml::Deserializer::parse(text).map_err(|e| located(&e, None))?;
        let config: FileConfig = serde_path_to_error::deserialize(document).map_err(|e| {
            let key = Some(e.path().to_string()).filter(|key| key != ".");
            located(e.inner(), key)
        })?;
        config.check().map_err(|(key, e)| match line_of_key(text, key) {
            Some(line) => format!(", line {line}: {e}"),
            None => format!(": {e}"),
        })?;
        Ok(config)
    }

    /// Checks the values that their types allow but the engine does not. The error is the
    /// key's dotted path, and what is wrong.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        let at_least = |key: &'static str, value: Option<u64>, min: u64| match value {
            Some(v) if v < min => Err((key, format!("{key} = {v}: must be at least {min}"))),
            _ => Ok(()),
        };
        at_least("workers", self.workers.map(u64::from), 1)?;
        at_least("reduce_tasks", self.reduce_tasks.map(u64::from), 1)?;
        at_least("split_size", self.split_size, 1)?;
        at_least("sort_buffer", self.sort_buffer, 1)?;
        at_least("merge_fan_in", self.merge_fan_in.map(u64::from), 2)?;
        at_least("max_record_bytes", self.max_record_bytes, 1)?;
        at_least("max_attempts", self.max_attempts.map(u64::from), 1)?;
        for (key, p) in self.faults.probabilities() {
            if !(0.0..=1.0).contains(&p) {
                return Err((key, format!("{key} = {p}: must be a probability in [0, 1]")));
            }
        }
        if let Some(http) = &self.http {
            crate::settings::parse_http(http).map_err(|e| ("http", format!("http = {http:?}: {e}")))?;
        }
        Ok(())
    }
}

/// The 1-based line of the value of a dotted key (`faults.map.failure`) in a file's text.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (_, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            return Some(line_of(text, value.span().start));
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Sizes: a string with a unit (`"64MiB"`, `"1GB"`) or an integer number of bytes.
mod size {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    struct Size;

    impl Visitor<'_> for Size {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as \"64MiB\", or a number of bytes")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
            Ok(Some(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
            u64::try_from(v).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
            v.parse::<bytesize::ByteSize>()
                .map(|b| Some(b.as_u64()))
                .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        d.deserialize_any(Size)
    }

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
}

/// Durations: a string as `humantime` reads it (`"10s"`, `"500ms"`, `"1m 30s"`).
mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    struct HumanDuration;

    impl Visitor<'_> for HumanDuration {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as \"10s\" or \"500ms\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<Duration>, E> {
            humantime::parse_duration(v).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        d.deserialize_str(HumanDuration)
    }

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|d| humantime::format_duration(d).to_string()).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        FileConfig::parse(text)
    }

    #[test]
    fn per_phase_faults() {
        let c = parse("[faults]\nseed = 3\n[faults.map]\nfailure = 0.25\n").unwrap();
        assert_eq!((c.faults.seed, c.faults.map.failure, c.faults.reduce.failure), (3, 0.25, 0.0));
        assert_eq!(c.workers, None, "absent keys are left to the environment and defaults");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mr.toml");
        std::fs::write(&path, "workers = 2\n\n[faults.map]\nfailur = 0.25\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&format!("{}, line 4: faults.map.failur: unknown field `failur`", path.display())), "{e}");

        std::fs::write(&path, "[faults.map]\nfailure = \"high\"\n").unwrap();
        let e = FileConfig::load(&path).unwrap_err().to_string();
        assert!(e.contains("mr.toml, line 2: faults.map.failure: invalid type: string \"high\", expected f64"), "{e}");

        let e = FileConfig::load(&dir.path().join("absent.toml")).unwrap_err().to_string();
        assert!(e.contains("cannot read the config file") && e.contains("absent.toml: No such file"), "{e}");
    }

    #[test]
    fn unknown_and_mistyped_keys() {
        let e = parse("sort_bufer = \"1MiB\"\n").unwrap_err();
        assert!(e.starts_with(", line 1: sort_bufer: unknown field `sort_bufer`, expected one of"), "{e}");
        let e = parse("[worker]\ncoordinator = 7\n").unwrap_err();
        assert!(e.contains("worker.coordinator: invalid type: integer `7`, expected a string"), "{e}");
        let e = parse("workers = \"4\"\n").unwrap_err();
        assert!(e.contains("workers: invalid type: string \"4\", expected u32"), "{e}");
        let e = parse("workers = -1\n").unwrap_err();
        assert!(e.contains("workers: invalid value: integer `-1`, expected u32"), "{e}");
        let e = parse("speculative = \"on\"\n").unwrap_err();
        assert!(e.contains("speculative: invalid type: string \"on\", expected a boolean"), "{e}");
        let e = parse("input_format = \"xml\"\n").unwrap_err();
        assert!(e.contains("input_format: unknown variant `xml`"), "{e}");
        let e = parse("[faults]\nmap = 1\n").unwrap_err();
        assert!(e.contains("faults.map: invalid type: integer `1`"), "{e}");
        let e = parse("workers = \n").unwrap_err();
        assert!(e.starts_with(", line 1: "), "a syntax error has a line but no key: {e}");
    }

    #[test]
    fn sizes_and_durations() {
        let c = parse("sort_buffer = \"64MiB\"\nsplit_size = 4096\nworker_timeout = \"1m 30s\"\n").unwrap();
        assert_eq!((c.sort_buffer, c.split_size), (Some(64 << 20), Some(4096)));
        assert_eq!(c.worker_timeout, Some(Duration::from_secs(90)));
        let c = parse("split_size = \"1.5KiB\"\n[worker]\nlost_timeout = \"250ms\"\n").unwrap();
        assert_eq!((c.split_size, c.worker.lost_timeout), (Some(1536), Some(Duration::from_millis(250))));
        let e = parse("sort_buffer = \"64 lemons\"\n").unwrap_err();
        assert!(e.contains("sort_buffer: invalid value: string \"64 lemons\", expected a size such as"), "{e}");
        let e = parse("sort_buffer = -5\n").unwrap_err();
        assert!(e.contains("sort_buffer: invalid value: integer `-5`, expected a size"), "{e}");
        let e = parse("task_timeout = 60\n").unwrap_err();
        assert!(e.contains("task_timeout: invalid type: integer `60`, expected a duration such as \"10s\""), "{e}");
        let e = parse("task_timeout = \"soon\"\n").unwrap_err();
        assert!(e.contains("task_timeout: invalid value: string \"soon\", expected a duration"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        for (text, expected) in [
            ("workers = 0", ", line 1: workers = 0: must be at least 1"),
            ("reduce_tasks = 0", ", line 1: reduce_tasks = 0: must be at least 1"),
            ("sort_buffer = 0", ", line 1: sort_buffer = 0: must be at least 1"),
            ("# a comment\n\nmerge_fan_in = 1", ", line 3: merge_fan_in = 1: must be at least 2"),
            ("max_attempts = 0", ", line 1: max_attempts = 0: must be at least 1"),
            (
                "[faults.map]\nstraggler = 0.5\n[faults.reduce]\nstraggler = 1.5",
                ", line 4: faults.reduce.straggler = 1.5: must be a probability in [0, 1]",
            ),
            ("workers = 2\nhttp = \"nonsense\"", ", line 2: http = \"nonsense\": expected HOST:PORT"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(expected), "{e}");
        }
    }

    /// The leaf keys of a JSON object, as dotted paths.
    fn leaf_keys(value: &serde_json::Value, prefix: &str, keys: &mut Vec<String>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                match v {
                    serde_json::Value::Object(_) => leaf_keys(v, &path, keys),
                    _ => keys.push(path),
                }
            }
        }
    }

    /// `mr.example.toml` loads, and lists every key: commented-out ones (settings whose default
    /// depends on the machine or the job) load too once uncommented.
    #[test]
    fn example_file_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mr.example.toml");
        let example = FileConfig::load(&path).unwrap();
        assert_eq!(example.workers, None, "the example leaves the machine-dependent settings commented out");
        let text = std::fs::read_to_string(&path).unwrap();
        let commented_key = regex::Regex::new(r"^# ?[a-z_]+ = ").unwrap();
        let uncommented: String = text
            .lines()
            .map(|line| if commented_key.is_match(line) { line.trim_start_matches('#').trim_start() } else { line })
            .flat_map(|line| [line, "\n"])
            .collect();
        let table: toml::Table =
            uncommented.parse().unwrap_or_else(|e| panic!("mr.example.toml uncommented: {e}\n{uncommented}"));
        parse(&uncommented).unwrap_or_else(|e| panic!("mr.example.toml uncommented{e}\n{uncommented}"));
        let mut keys = Vec::new();
        leaf_keys(&serde_json::to_value(FileConfig::default()).unwrap(), "", &mut keys);
        assert!(keys.len() > 20, "{keys:?}");
        for key in &keys {
            let (tables, leaf) = key.rsplit_once('.').map_or((None, key.as_str()), |(t, l)| (Some(t), l));
            let table =
                tables.into_iter().flat_map(|t| t.split('.')).try_fold(&table, |t, part| t.get(part)?.as_table());
            assert!(table.is_some_and(|t| t.contains_key(leaf)), "mr.example.toml does not list {key}");
        }
    }
}
