//! Word search: for each target word, the number of input
//! lines that contain it as a substring. The targets reach the workers through the state store:
//! the coordinator sets one entry per target, and each worker reads them in one batched get.

use std::sync::Arc;

use clap::ArgMatches;

use super::{Job, JobFactory, MapContext, ONE, PlanView, Prepared, Record, ReduceContext, StateReader, Values};
use crate::error::{Error, Result};

/// State key holding the number of targets.
pub(crate) const TARGET_COUNT_KEY: &str = "word-search/targets";

fn target_key(i: usize) -> String {
    format!("word-search/target/{i}")
}

/// The word search job. All targets are found in one pass over a line (Aho-Corasick, with
/// overlapping matches), not one pass per target.
pub struct WordSearch {
    targets: Vec<String>,
    automaton: aho_corasick::AhoCorasick,
}

/// Makes the word-search job.
pub(crate) struct Factory;

impl JobFactory for Factory {
    fn allows_map_only(&self) -> bool {
        false
    }

    fn command(&self, command: clap::Command) -> clap::Command {
        command.about("For each target word, the lines that contain it: target<TAB>lines").arg(
            clap::Arg::new("targets")
                .long("targets")
                .value_name("FILE")
                .required(true)
                .value_parser(clap::value_parser!(std::path::PathBuf))
                .help("The target words, one per line (`mr gen word-search` writes one)"),
        )
    }

    fn prepare(&self, plan: &PlanView<'_>) -> Result<Prepared> {
        prepare(plan.args.get_one::<std::path::PathBuf>("targets").map(|p| p.as_path()))
    }

    fn build(&self, _args: &ArgMatches, state: &mut dyn StateReader) -> Result<Arc<dyn Job>> {
        Ok(Arc::new(WordSearch::from_state(state)?))
    }
}

/// Reads the targets file (one target per line; blank lines ignored, duplicates dropped) and
/// makes the state entries for it.
fn prepare(targets: Option<&std::path::Path>) -> Result<Prepared> {
    let path = targets.ok_or_else(|| Error::JobArgs {
        job: "word-search".into(),
        message: "needs --targets FILE (one target word per line; `mr gen word-search` writes one)".into(),
    })?;
    let text = std::fs::read(path).map_err(Error::io("cannot read targets file", path))?;
    let text = String::from_utf8(text)
        .map_err(|e| Error::InvalidUtf8 { path: path.to_path_buf(), offset: e.utf8_error().valid_up_to() as u64 })?;
    let mut targets: Vec<&str> = text.lines().map(str::trim).filter(|t| !t.is_empty()).collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        return Err(Error::JobArgs {
            job: "word-search".into(),
            message: format!("targets file '{}' has no targets", path.display()),
        });
    }
    let mut state = vec![(TARGET_COUNT_KEY.to_string(), targets.len().to_string().into_bytes())];
    state.extend(targets.iter().enumerate().map(|(i, t)| (target_key(i), t.as_bytes().to_vec())));
    Ok(Prepared { state })
}

impl WordSearch {
    /// Builds the job from the targets in the state store.
    pub fn from_state(state: &mut dyn StateReader) -> Result<WordSearch> {
        let missing = || Error::Job("word-search: the targets are missing from the state store".into());
        let count = state.get(&[TARGET_COUNT_KEY.to_string()])?.pop().flatten().ok_or_else(missing)?;
        let count: usize = std::str::from_utf8(&count).ok().and_then(|c| c.parse().ok()).ok_or_else(missing)?;
        let keys: Vec<String> = (0..count).map(target_key).collect();
        let mut targets = Vec::with_capacity(count);
        for value in state.get(&keys)? {
            targets.push(String::from_utf8(value.ok_or_else(missing)?).map_err(|_| missing())?);
        }
        let automaton = aho_corasick::AhoCorasick::new(&targets)
            .map_err(|e| Error::Job(format!("word-search: cannot build the target matcher: {e}")))?;
        Ok(WordSearch { targets, automaton })
    }
}

impl Job for WordSearch {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        // A line counts once per target, however often the target occurs in it. The targets
        // seen are kept on the stack, up to a point.
        let mut seen = [0usize; 16];
        let mut seen_count = 0;
        let mut more: Vec<usize> = Vec::new();
        for found in self.automaton.find_overlapping_iter(record.bytes) {
            let target = found.pattern().as_usize();
            if seen[..seen_count].contains(&target) || more.contains(&target) {
                continue;
            }
            if seen_count < seen.len() {
                seen[seen_count] = target;
                seen_count += 1;
            } else {
                more.push(target);
            }
            ctx.emit(self.targets[target].as_bytes(), &ONE);
        }
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        ctx.write_sum(key, values)
    }

    fn sums_counts(&self) -> bool {
        true
    }
}
