//! grep: the input lines that match a regular expression, as `path:line-number<TAB>line`,
//! ordered by path then line number within each part file.

use std::sync::Arc;

use clap::ArgMatches;

use super::{Job, JobFactory, MapContext, PlanView, Prepared, Record, ReduceContext, StateReader, Values};
use crate::error::{Error, Result};

/// The grep job.
pub struct Grep {
    pattern: regex::Regex,
}

impl Grep {
    /// A grep for `pattern` (the `regex` crate's syntax).
    pub fn new(pattern: &str) -> Result<Grep> {
        let pattern = regex::Regex::new(pattern)
            .map_err(|e| Error::JobArgs { job: "grep".into(), message: format!("invalid pattern '{pattern}': {e}") })?;
        Ok(Grep { pattern })
    }

    fn from_args(args: &ArgMatches) -> Result<Grep> {
        let pattern = args.get_one::<String>("pattern").map_or("", String::as_str);
        Grep::new(pattern)
    }
}

pub(crate) struct Factory;

impl JobFactory for Factory {
    fn allows_map_only(&self) -> bool {
        false
    }

    fn command(&self, command: clap::Command) -> clap::Command {
        command.about("The lines that match a regular expression: path:line-number<TAB>line").arg(
            clap::Arg::new("pattern")
                .value_name("PATTERN")
                .required(true)
                .allow_hyphen_values(true)
                .help("The regular expression (the regex crate's syntax, Unicode-aware)"),
        )
    }

    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        Grep::from_args(plan.args)?;
        Ok(Prepared::default())
    }

    fn build(&self, args: &ArgMatches, _state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        Ok(Arc::new(Grep::from_args(args)?))
    }

    fn needs_line_numbers(&self, _args: &ArgMatches) -> bool {
        true
    }
}

impl Job for Grep {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        if self.pattern.is_match(record.text) {
            // The key sorts by path, then by line number.
            let mut key = Vec::with_capacity(record.path.len() + 9);
            key.extend_from_slice(record.path.as_bytes());
            key.push(0);
            key.extend_from_slice(&record.line_number.to_be_bytes());
            ctx.emit(&key, record.bytes);
            ctx.counter("grep", "matching lines", 1);
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let (path, line) = key.split_at(key.len().saturating_sub(9));
        let line = u64::from_be_bytes(line[1..].try_into().map_err(|_| Error::Job("malformed grep key".into()))?);
        let location = format!("{}:{line}", String::from_utf8_lossy(path));
        while let Some(text) = values.next_value() {
            ctx.write(location.as_bytes(), text)?;
        }
        Ok(())
    }

    fn needs_line_numbers(&self) -> bool {
        true
    }
}
