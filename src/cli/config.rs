//! The configuration file, `mr.toml`. Each setting of `mr run` and `mr worker` comes from, in
//! order: a flag, an `MR_*` environment variable, this file (`--config FILE` or `MR_CONFIG`),
//! or its default. The file's keys are not listed here: they are the clap arguments of the
//! command that have an `MR_*` variable (but `config` and `token`), by their ids, which are the
//! flags' names in snake_case. `mr run`'s and `mr`'s own (`log_format`) are at the top level,
//! `mr worker`'s in a `[worker]` table; fault injection per phase is in `[faults]`,
//! `[faults.map]` and `[faults.reduce]`, which have no flags (the `inject_*` keys, as the flags,
//! override them for both phases). `mr.example.toml` lists them all.
//!
//! Each value is checked by its argument's own value parser, as the same value on the command
//! line would be, and becomes the argument's default ([`FileConfig::layer`]), so that a flag
//! and a variable still beat it. An unknown key, a wrong type or an invalid value is an
//! [`Error::Config`] that names the file, the line and the key's dotted path
//! (`faults.map.failure`).

use std::any::TypeId;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction, Command};
use serde::{Deserialize, Serialize};

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

/// The table of the file a setting is in, hence the commands it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// The top level: `mr`'s own settings, and those of `mr run` and `mr coordinator`.
    Top,
    /// `[worker]`: `mr worker`'s.
    Worker,
}

/// The subcommands whose settings the top level holds; the first one's arguments are the keys.
const JOB_COMMANDS: [&str; 3] = ["run", "coordinator", "submit"];

/// The flags with a variable that are not keys of the file: the file's own path, and the
/// token, a secret given in `MR_TOKEN` (or `mr worker`'s `--token-file`).
const NOT_KEYS: [&str; 2] = ["config", "token"];

/// One setting of the file: an argument's id and its value, checked, as the command line
/// would give it.
#[derive(Debug, Clone, PartialEq)]
struct Setting {
    table: Table,
    id: String,
    value: String,
}

/// A configuration file, read and checked against the command whose settings it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileConfig {
    settings: Vec<Setting>,
    /// Fault injection, per phase (`[faults.map]`, `[faults.reduce]`, `faults.seed`); the
    /// `--inject-*` flags and their variables override it for both phases.
    pub faults: Faults,
}

impl FileConfig {
    /// Reads and checks a configuration file, whose keys are the settings of `command` (`mr`'s).
    pub fn load(path: &Path, command: &Command) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read the config file {}: {e}", path.display())))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        FileConfig::parse(&text, command, dir).map_err(|e| Error::Config(format!("{}{e}", path.display())))
    }

    /// Makes each setting of the file the default of its argument in `command` (`mr`'s), under
    /// the flags and the variables.
    pub fn layer(&self, mut command: Command) -> Command {
        for setting in &self.settings {
            let set = |arg: Arg| arg.default_value(setting.value.clone());
            let has = |c: &Command| c.get_arguments().any(|a| a.get_id() == setting.id.as_str());
            command = match setting.table {
                Table::Top if has(&command) => command.mut_arg(&setting.id, set),
                Table::Top => JOB_COMMANDS.iter().fold(command, |command, name| {
                    command.mut_subcommand(name, |sub| if has(&sub) { sub.mut_arg(&setting.id, set) } else { sub })
                }),
                Table::Worker => command.mut_subcommand("worker", |sub| sub.mut_arg(&setting.id, set)),
            };
        }
        command
    }

    /// Parses and checks the text of a configuration file; relative paths in it are made
    /// relative to `dir`. The error starts where the file's name would end: with its line, or
    /// with ": ".
    fn parse(text: &str, command: &Command, dir: &Path) -> std::result::Result<FileConfig, String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map(|span| format!(", line {}", line_of(text, span.start))).unwrap_or_default();
            format!("{line}: {}", e.message().trim_end())
        })?;
        let mut config = FileConfig::default();
        // In the file's order, so that the first error in the file is the one reported.
        let mut entries: Vec<(&String, &toml::Value)> = table.iter().collect();
        entries.sort_by_key(|(key, _)| line_of_key(text, key));
        for (key, value) in entries {
            match (key.as_str(), value) {
                ("faults", value) => config.faults = faults(text, value)?,
                ("worker", toml::Value::Table(worker)) => {
                    let mut entries: Vec<(&String, &toml::Value)> = worker.iter().collect();
                    entries.sort_by_key(|(key, _)| line_of_key(text, &format!("worker.{key}")));
                    for (key, value) in entries {
                        config.settings.push(setting(text, command, Table::Worker, key, value, dir)?);
                    }
                }
                ("worker", value) => {
                    return Err(located(text, "worker", format!("worker = {value}: expected a table ([worker])")));
                }
                _ => config.settings.push(setting(text, command, Table::Top, key, value, dir)?),
            }
        }
        Ok(config)
    }
}

/// The arguments of `command` that `table` may set, and the commands they come from.
fn keys(command: &Command, table: Table) -> Vec<&Arg> {
    let subcommands: &[&str] = match table {
        Table::Top => &JOB_COMMANDS[..1],
        Table::Worker => &["worker"],
    };
    let own = command.get_arguments().filter(move |_| table == Table::Top);
    let sub = subcommands.iter().filter_map(|name| command.find_subcommand(name)).flat_map(|c| c.get_arguments());
    own.chain(sub).collect()
}

/// Whether an argument is a setting of the file.
fn is_key(arg: &Arg) -> bool {
    arg.get_env().is_some() && !NOT_KEYS.contains(&arg.get_id().as_str()) && !arg.is_hide_set()
}

/// The dotted path of a key in `table`.
fn dotted(table: Table, key: &str) -> String {
    match table {
        Table::Top => key.to_string(),
        Table::Worker => format!("worker.{key}"),
    }
}

/// Reads one setting: its key must be an argument of its table, its value a string, a number
/// or a boolean that the argument's value parser accepts.
fn setting(
    text: &str,
    command: &Command,
    table: Table,
    key: &str,
    value: &toml::Value,
    dir: &Path,
) -> std::result::Result<Setting, String> {
    let path = dotted(table, key);
    let args = keys(command, table);
    let Some(arg) = args.iter().find(|a| a.get_id() == key && is_key(a)) else {
        return Err(located(text, &path, unknown_key(&path, key, &args, table)));
    };
    let mut raw = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => {
            let kind = other.type_str();
            return Err(located(
                text,
                &path,
                format!("{path}: expected a string, a number or a boolean, not a {kind}"),
            ));
        }
    };
    if arg.get_value_parser().type_id() == TypeId::of::<PathBuf>() && Path::new(&raw).is_relative() {
        raw = dir.join(&raw).to_string_lossy().into_owned();
    }
    check_value(arg, &raw).map_err(|e| located(text, &path, format!("{path} = {value}: {e}")))?;
    Ok(Setting { table, id: key.to_string(), value: raw })
}

/// Why a key is not one: a flag without a key, or an unknown key, with the closest one.
fn unknown_key(path: &str, key: &str, args: &[&Arg], table: Table) -> String {
    if let Some(long) = args.iter().find(|a| a.get_id() == key).and_then(|a| a.get_long()) {
        return format!("{path}: --{long} is a flag only, not a key of the config file");
    }
    let tables: &[&str] = if table == Table::Top { &["faults", "worker"] } else { &[] };
    let candidates = args.iter().filter(|a| is_key(a)).map(|a| a.get_id().as_str()).chain(tables.iter().copied());
    let closest = candidates.max_by(|a, b| strsim::jaro_winkler(key, a).total_cmp(&strsim::jaro_winkler(key, b)));
    match closest {
        Some(closest) => {
            format!("{path}: unknown key (the closest is {}; mr.example.toml lists them all)", dotted(table, closest))
        }
        None => format!("{path}: unknown key (mr.example.toml lists them all)"),
    }
}

/// Parses a value as the argument's flag would parse it on the command line; the error is
/// clap's, which names the flag.
fn check_value(arg: &Arg, value: &str) -> std::result::Result<(), String> {
    let long = arg.get_long().unwrap_or(arg.get_id().as_str()).to_string();
    let mut probe = Arg::new(arg.get_id().clone())
        .long(long.clone())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        probe = probe.value_names(names.to_vec());
    }
    let command = Command::new("config").no_binary_name(true).arg(probe);
    command.try_get_matches_from([format!("--{long}={value}")]).map(drop).map_err(|e| {
        let text = e.render().to_string();
        let reason = text.split("\n\n").next().unwrap_or_default();
        reason.trim_start_matches("error: ").split_whitespace().collect::<Vec<_>>().join(" ")
    })
}

/// The `[faults]` table, and its probabilities checked.
fn faults(text: &str, value: &toml::Value) -> std::result::Result<Faults, String> {
    let faults: Faults = serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { "faults".to_string() } else { format!("faults.{path}") };
        located(text, &key, format!("{key}: {}", e.inner().message().trim_end()))
    })?;
    for (key, p) in faults.probabilities() {
        if !(0.0..=1.0).contains(&p) {
            return Err(located(text, key, format!("{key} = {p}: must be a probability in [0, 1]")));
        }
    }
    Ok(faults)
}

/// A message about the key at a dotted path, with the key's line in front when it is found.
fn located(text: &str, key: &str, message: String) -> String {
    match line_of_key(text, key) {
        Some(line) => format!(", line {line}: {message}"),
        None => format!(": {message}"),
    }
}

/// The 1-based line of a dotted key (`faults.map.failure`) in a file's text.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, value) = table.iter().find(|(k, _)| k.get_ref().as_ref() == part)?;
        if parts.peek().is_none() {
            let span = if value.get_ref().as_table().is_some() { name.span() } else { value.span() };
            return Some(line_of(text, span.start));
        }
        table = value.get_ref().as_table()?;
    }
    None
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        super::super::command(&crate::job::Registry::builtin())
    }

    fn parse(text: &str) -> std::result::Result<FileConfig, String> {
        FileConfig::parse(text, &command(), Path::new("/etc/mr"))
    }

    fn value(config: &FileConfig, table: Table, id: &str) -> Option<String> {
        config.settings.iter().find(|s| s.table == table && s.id == id).map(|s| s.value.clone())
    }

    #[test]
    fn per_phase_faults() {
        let c = parse("[faults]\nseed = 3\n[faults.map]\nfailure = 0.25\n").unwrap();
        assert_eq!((c.faults.seed, c.faults.map.failure, c.faults.reduce.failure), (3, 0.25, 0.0));
        assert_eq!(value(&c, Table::Top, "workers"), None, "absent keys are left to the environment and defaults");
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mr.toml");
        std::fs::write(&path, "workers = 2\n\n[faults.map]\nfailur = 0.25\n").unwrap();
        let e = FileConfig::load(&path, &command()).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&format!("{}, line 4: faults.map.failur: unknown field `failur`", path.display())), "{e}");

        std::fs::write(&path, "[faults.map]\nfailure = \"high\"\n").unwrap();
        let e = FileConfig::load(&path, &command()).unwrap_err().to_string();
        assert!(e.contains("mr.toml, line 2: faults.map.failure: invalid type: string \"high\", expected f64"), "{e}");

        let e = FileConfig::load(&dir.path().join("absent.toml"), &command()).unwrap_err().to_string();
        assert!(e.contains("cannot read the config file") && e.contains("absent.toml: No such file"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named_with_the_closest_one() {
        let e = parse("\nsort_bufer = \"1MiB\"\n").unwrap_err();
        assert_eq!(e, ", line 2: sort_bufer: unknown key (the closest is sort_buffer; mr.example.toml lists them all)");
        let e = parse("[worker]\nlost_timout = \"1s\"\n").unwrap_err();
        assert!(e.starts_with(", line 2: worker.lost_timout: unknown key (the closest is worker.lost_timeout;"), "{e}");
        let e = parse("fault = 1\n").unwrap_err();
        assert!(e.contains("fault: unknown key (the closest is faults;"), "{e}");
        // A worker's setting at the top level, a job's in [worker]: not keys there.
        assert!(parse("lost_timeout = \"1s\"\n").unwrap_err().contains("lost_timeout: unknown key"));
        assert!(parse("[worker]\nsort_buffer = 1\n").unwrap_err().contains("worker.sort_buffer: unknown key"));
        for (text, flag) in [("output = \"out\"", "--output"), ("token = \"s\"", "--token"), ("json = true", "--json")]
        {
            let e = parse(text).unwrap_err();
            assert!(e.ends_with(&format!("{flag} is a flag only, not a key of the config file")), "{e}");
        }
    }

    #[test]
    fn values_are_parsed_as_their_flags_parse_them() {
        for (text, expected) in [
            ("workers = 0", ", line 1: workers = 0: invalid value '0' for '--workers <W>': 0 is not in 1..=4294967295"),
            ("workers = -1", "workers = -1: invalid value '-1' for '--workers <W>'"),
            (
                "# a comment\n\nmerge_fan_in = 1",
                ", line 3: merge_fan_in = 1: invalid value '1' for '--merge-fan-in <N>'",
            ),
            ("max_attempts = 0", "max_attempts = 0: invalid value '0' for '--max-attempts <N>'"),
            ("sort_buffer = 0", "sort_buffer = 0: invalid value '0' for '--sort-buffer <BYTES>': invalid size '0'"),
            (
                "sort_buffer = -5",
                "sort_buffer = -5: invalid value '-5' for '--sort-buffer <BYTES>': invalid size '-5': a size cannot be negative",
            ),
            (
                "sort_buffer = \"64 lemons\"",
                "sort_buffer = \"64 lemons\": invalid value '64 lemons' for '--sort-buffer",
            ),
            ("task_timeout = 60", "task_timeout = 60: invalid value '60' for '--task-timeout <DURATION>'"),
            ("task_timeout = \"soon\"", "task_timeout = \"soon\": invalid value 'soon' for '--task-timeout"),
            ("speculative = \"maybe\"", "speculative = \"maybe\": invalid value 'maybe' for '--speculative <on|off>'"),
            ("input_format = \"xml\"", "input_format = \"xml\": invalid value 'xml' for '--input-format <FORMAT>'"),
            ("inject_failure = 1.5", "inject_failure = 1.5: invalid value '1.5' for '--inject-failure <P>'"),
            (
                "workers = 2\nhttp = \"nonsense\"",
                ", line 2: http = \"nonsense\": invalid value 'nonsense' for '--http <ADDR>': expected HOST:PORT",
            ),
            (
                "[worker]\nconnect_timeout = \"x\"",
                ", line 2: worker.connect_timeout = \"x\": invalid value 'x' for '--connect-timeout",
            ),
            ("workers = [1]", ", line 1: workers: expected a string, a number or a boolean, not a array"),
            ("worker = 1", ", line 1: worker = 1: expected a table ([worker])"),
            (
                "[faults.map]\nstraggler = 0.5\n[faults.reduce]\nstraggler = 1.5",
                ", line 4: faults.reduce.straggler = 1.5: must be a probability in [0, 1]",
            ),
            ("[faults]\nmap = 1\n", ", line 2: faults.map: invalid type: integer `1`"),
            ("workers = \n", ", line 1: "),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(expected) && e.starts_with(", line"), "{text:?}: {e}");
        }
    }

    #[test]
    fn values_are_kept_as_the_command_line_would_give_them() {
        let c = parse("sort_buffer = \"64MiB\"\nsplit_size = 4096\nworker_timeout = \"1m 30s\"\nspeculative = false\n")
            .unwrap();
        assert_eq!(value(&c, Table::Top, "sort_buffer").as_deref(), Some("64MiB"));
        assert_eq!(value(&c, Table::Top, "split_size").as_deref(), Some("4096"));
        assert_eq!(value(&c, Table::Top, "speculative").as_deref(), Some("false"));
        let c = parse("tls_ca = \"ca.pem\"\n[worker]\ntls_cert = \"/abs/c.pem\"\nwork_dir = \"work\"\n").unwrap();
        assert_eq!(value(&c, Table::Top, "tls_ca").as_deref(), Some("/etc/mr/ca.pem"), "relative to the file");
        assert_eq!(value(&c, Table::Worker, "tls_cert").as_deref(), Some("/abs/c.pem"));
        assert_eq!(value(&c, Table::Worker, "work_dir").as_deref(), Some("/etc/mr/work"));
    }

    /// `mr.example.toml` loads, and lists every key: commented-out ones (settings whose default
    /// depends on the machine or the job) load too once uncommented.
    #[test]
    fn example_file_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("mr.example.toml");
        let example = FileConfig::load(&path, &command()).unwrap();
        assert_eq!(value(&example, Table::Top, "workers"), None, "the machine-dependent settings are commented out");
        let text = std::fs::read_to_string(&path).unwrap();
        let commented_key = regex::Regex::new(r"^# ?[a-z_]+ = ").unwrap();
        let uncommented: String = text
            .lines()
            .map(|line| if commented_key.is_match(line) { line.trim_start_matches('#').trim_start() } else { line })
            .flat_map(|line| [line, "\n"])
            .collect();
        let all = parse(&uncommented).unwrap_or_else(|e| panic!("mr.example.toml uncommented{e}\n{uncommented}"));
        let command = command();
        for table in [Table::Top, Table::Worker] {
            for arg in keys(&command, table).into_iter().filter(|a| is_key(a)) {
                let id = arg.get_id().as_str();
                assert!(value(&all, table, id).is_some(), "mr.example.toml does not list {}", dotted(table, id));
            }
        }
        let faults: toml::Table = toml::from_str(&uncommented).unwrap();
        let faults = serde_json::to_value(faults["faults"].clone()).unwrap();
        assert_eq!(faults, serde_json::to_value(Faults::default()).unwrap(), "every [faults] key, at its default");
    }
}
