//! Streaming's multi-step jobs (`--steps FILE.toml`): a TOML file of `[[step]]` tables, each a
//! streaming job of its own whose input is the previous step's output, as mrjob's steps and
//! chained Hadoop Streaming jobs are. A step has an optional mapper (`cat`, the identity, if
//! absent), combiner and reducer (map-only if absent), and the per-step settings Hadoop has:
//! `reduce_tasks`, `key_fields`, `partition_fields`, `partitioner`, `jobconf` (`-D`) and
//! `cmdenv`. The command line's `--files`, `-D`, `--cmdenv` and key-field flags apply to every
//! step, under the step's own.
//!
//! ```toml
//! [[step]]
//! mapper = "python3 job.py --step-num=0 --mapper"
//! reducer = "python3 job.py --step-num=0 --reducer"
//! reduce_tasks = 4
//!
//! [[step]]
//! reducer = "python3 job.py --step-num=1 --reducer"
//! jobconf = { "stream.num.map.output.key.fields" = "2" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::JobStep;
use super::streaming_args::StreamingArgs;
use crate::error::{Error, Result};

/// The file: its steps, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepsFile {
    #[serde(default)]
    step: Vec<StepTable>,
}

/// One `[[step]]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepTable {
    mapper: Option<String>,
    combiner: Option<String>,
    reducer: Option<String>,
    reduce_tasks: Option<u32>,
    key_fields: Option<u32>,
    partition_fields: Option<u32>,
    partitioner: Option<String>,
    #[serde(default)]
    jobconf: BTreeMap<String, String>,
    #[serde(default)]
    cmdenv: BTreeMap<String, String>,
}

fn bad(message: String) -> Error {
    Error::BadOption { flag: "--steps".into(), message }
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line where the `i`th `[[step]]` table starts.
fn step_line(text: &str, i: usize) -> Option<usize> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let (_, steps) = root.get_ref().iter().find(|(k, _)| k.get_ref().as_ref() == "step")?;
    let step = steps.get_ref().as_array()?.get(i)?;
    Some(line_of(text, step.span().start))
}

/// Parses the text of a steps file; the error names the line and the key (`step[1].mapper`).
fn parse(path: &Path, text: &str) -> Result<Vec<StepTable>> {
    let file = path.display();
    let located = |e: &toml::de::Error, key: Option<String>| {
        let line = e.span().map(|span| format!(", line {}", line_of(text, span.start))).unwrap_or_default();
        let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
        bad(format!("{file}{line}: {key}{}", e.message().trim_end()))
    };
    let document = toml::Deserializer::parse(text).map_err(|e| located(&e, None))?;
    let parsed: StepsFile = serde_path_to_error::deserialize(document).map_err(|e| {
        let key = Some(e.path().to_string()).filter(|key| key != ".");
        located(e.inner(), key)
    })?;
    if parsed.step.is_empty() {
        return Err(bad(format!(
            "{file} has no [[step]] table: give at least one, e.g. [[step]] with mapper = \"cat\" and reducer = \
             \"uniq -c\""
        )));
    }
    Ok(parsed.step)
}

/// Checks one step's table against the rules the job's flags cannot express.
fn check_table(step: &StepTable, at: &str) -> Result<()> {
    if step.mapper.is_none() && step.reducer.is_none() {
        return Err(bad(format!("{at}: the step has no mapper and no reducer: give at least one")));
    }
    match (&step.reducer, step.reduce_tasks) {
        (Some(_), Some(0)) => Err(bad(format!(
            "{at}: reduce_tasks = 0, but the step has a reducer: give 1 or more, or leave the reducer out for a \
             map-only step"
        ))),
        (None, Some(n)) if n > 0 => Err(bad(format!(
            "{at}: reduce_tasks = {n}, but the step has no reducer (a step without one is map-only): give a reducer"
        ))),
        _ if step.combiner.is_some() && step.reducer.is_none() => Err(bad(format!(
            "{at}: the step has a combiner but no reducer: a map-only step combines nothing; give a reducer"
        ))),
        _ => Ok(()),
    }
}

/// The argument list of one step: its commands and settings over `global`'s (the command line's
/// `--files`, `-D`, `--cmdenv` and key-field flags).
fn step_args(step: &StepTable, global: &StreamingArgs) -> Vec<String> {
    let mut args = vec![format!("--mapper={}", step.mapper.as_deref().unwrap_or("cat"))];
    let mut flag = |name: &str, value: &str| args.push(format!("--{name}={value}"));
    if let Some(combiner) = &step.combiner {
        flag("combiner", combiner);
    }
    if let Some(reducer) = &step.reducer {
        flag("reducer", reducer);
    }
    for file in global.files.iter().filter(|f| !f.is_empty()) {
        flag("files", file);
    }
    // The step's properties and variables come after the command line's, so they win.
    for (key, value) in global.jobconf.iter().map(|(k, v)| (k, v)).chain(step.jobconf.iter()) {
        flag("jobconf", &format!("{key}={value}"));
    }
    for (name, value) in global.cmdenv.iter().map(|(k, v)| (k, v)).chain(step.cmdenv.iter()) {
        flag("cmdenv", &format!("{name}={value}"));
    }
    if let Some(n) = step.key_fields.or(global.key_fields) {
        flag("key-fields", &n.to_string());
    }
    if let Some(k) = step.partition_fields.or(global.partition_fields) {
        flag("partition-fields", &k.to_string());
    }
    if let Some(class) = step.partitioner.as_ref().or(global.partitioner.as_ref()) {
        flag("partitioner", class);
    }
    args
}

/// Reads a steps file into the steps of a multi-step job. `parse_step` parses and checks a
/// step's argument list as the job does. Every error names the file, and the line and key or
/// the step.
pub(crate) fn load(
    path: &Path,
    global: &StreamingArgs,
    parse_step: &dyn Fn(&[String]) -> Result<StreamingArgs>,
) -> Result<Vec<JobStep>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read the steps file {}: {e}", path.display())))?;
    let tables = parse(path, &text)?;
    let mut steps = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let line = step_line(&text, i).map(|l| format!(", line {l}")).unwrap_or_default();
        let at = format!("{}{line}, step {} of {}", path.display(), i + 1, tables.len());
        check_table(table, &at)?;
        let args = step_args(table, global);
        let parsed = parse_step(&args).map_err(|e| bad(format!("{at}: {e}")))?;
        super::streaming_args::check(&parsed).map_err(|e| bad(format!("{at}: {e}")))?;
        let jobconf: Vec<(String, String)> = table.jobconf.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let from_jobconf = super::streaming_args::reduce_tasks(&jobconf).map_err(|e| bad(format!("{at}: {e}")))?;
        let reduce_tasks = match &table.reducer {
            None => Some(0),
            Some(_) => table.reduce_tasks.or(from_jobconf.filter(|&n| n > 0)),
        };
        steps.push(JobStep { args, reduce_tasks });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<JobStep>> {
        let dir = tempfile::tempdir().map_err(Error::io("tempdir", "."))?;
        let path = dir.path().join("steps.toml");
        std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        let global = StreamingArgs {
            files: vec!["a.txt".into()],
            jobconf: vec![("x.y".into(), "1".into())],
            ..StreamingArgs::default()
        };
        load(&path, &global, &|args| {
            use clap::{Args, FromArgMatches};
            let command = StreamingArgs::augment_args(clap::Command::new("streaming").no_binary_name(true));
            let matches = command.try_get_matches_from(args).map_err(|e| Error::Job(e.to_string()))?;
            StreamingArgs::from_arg_matches(&matches).map_err(|e| Error::Job(e.to_string()))
        })
    }

    #[test]
    fn steps_and_their_settings() {
        let steps = parsed(
            "[[step]]\nmapper = \"m0\"\nreducer = \"r0\"\nreduce_tasks = 3\njobconf = { \"x.y\" = \"2\" }\n\n\
             [[step]]\nreducer = \"r1\"\nkey_fields = 2\n\n[[step]]\nmapper = \"m2\"\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0].args,
            ["--mapper=m0", "--reducer=r0", "--files=a.txt", "--jobconf=x.y=1", "--jobconf=x.y=2"]
        );
        assert_eq!(steps[0].reduce_tasks, Some(3));
        assert_eq!(
            steps[1].args,
            ["--mapper=cat", "--reducer=r1", "--files=a.txt", "--jobconf=x.y=1", "--key-fields=2"]
        );
        assert_eq!(steps[1].reduce_tasks, None);
        assert_eq!(steps[2].reduce_tasks, Some(0), "a step without a reducer is map-only");
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let e =
            parsed("[[step]]\nmapper = \"m\"\n\n[[step]]\nmapper = \"m\"\nreduser = \"r\"\n").unwrap_err().to_string();
        assert!(e.contains("line 6") && e.contains("step[1].reduser"), "{e}");
        let e = parsed("[[step]]\nmapper = 3\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("step[0].mapper"), "{e}");
        let e = parsed("[[step]\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = parsed("").unwrap_err().to_string();
        assert!(e.contains("no [[step]]"), "{e}");
        let e = parsed("[[step]]\nreduce_tasks = 2\n").unwrap_err().to_string();
        assert!(e.contains("step 1 of 1") && e.contains("no mapper and no reducer"), "{e}");
        let e =
            parsed("[[step]]\nmapper = \"m\"\n[[step]]\nreducer = \"r\"\nkey_fields = 0\n").unwrap_err().to_string();
        assert!(e.contains("line 3, step 2 of 2") && e.contains("key-fields"), "{e}");
        let e = parsed("[[step]]\nreducer = \"r\"\nkey_fields = 1\npartition_fields = 2\n").unwrap_err().to_string();
        assert!(e.contains("partition-fields"), "{e}");
        let e = parsed("[[step]]\nmapper = \"m\"\nreduce_tasks = 2\n").unwrap_err().to_string();
        assert!(e.contains("no reducer"), "{e}");
    }
}
