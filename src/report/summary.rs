//! The end-of-job summary: tasks, attempts, records and bytes in and out, wall time of each
//! phase. Printed as text, or as JSON with `--json`.

use serde::Serialize;

use crate::control::scheduler::{AttemptRecord, Outcome};
use crate::types::TaskCounters;
use crate::types::{Millis, Phase};

/// One phase of a job.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseSummary {
    /// Number of tasks.
    pub tasks: u32,
    /// Number of attempts, including failed, lost and discarded ones.
    pub attempts: u32,
    /// Counters summed over the committed attempts.
    pub counters: TaskCounters,
    /// From the first attempt's start to the last attempt's end.
    pub wall_ms: Millis,
}

/// A worker process, as the supervisor saw it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSummary {
    /// The worker's process id.
    pub pid: u32,
    /// When it exited, in ms since the job started.
    pub exit_ms: Option<Millis>,
    /// How it exited, e.g. "exit status: 0".
    pub status: String,
}

/// Everything the summary says about a job.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The job's name.
    pub job: String,
    /// "distributed", "local", or "cluster" (a job of `mr cluster`).
    pub mode: &'static str,
    /// True when the output committed.
    pub succeeded: bool,
    /// True when a signal (Ctrl-C, SIGTERM) stopped the job.
    pub interrupted: bool,
    /// The error that ended the job, if it failed.
    pub error: Option<String>,
    /// The output directory.
    pub output: String,
    /// The map phase.
    pub map: PhaseSummary,
    /// The reduce phase.
    pub reduce: PhaseSummary,
    /// Whole job, from planning to commit.
    pub wall_ms: Millis,
    /// When the job committed (`_SUCCESS` written), in ms since the job started.
    pub committed_ms: Option<Millis>,
    /// Worker processes (distributed mode).
    pub workers: Vec<WorkerSummary>,
    /// Number of speculative (backup) attempts.
    pub speculative_attempts: u32,
    /// Every attempt, in order of assignment.
    pub attempts: Vec<AttemptRecord>,
    /// What the plan chose that the command line did not say (e.g. fewer reduce tasks than
    /// workers for a small input).
    pub notes: Vec<String>,
    /// The status server's last view of a distributed job, for `_job.json`.
    #[serde(skip)]
    pub view: Option<crate::report::status::JobView>,
}

impl PhaseSummary {
    /// Builds a phase's summary from the attempt records.
    pub fn from_attempts(phase: Phase, tasks: u32, counters: TaskCounters, attempts: &[AttemptRecord]) -> PhaseSummary {
        let of_phase = || attempts.iter().filter(move |a| a.id.task.phase == phase);
        let start = of_phase().map(|a| a.start_ms).min();
        let end = of_phase().filter_map(|a| a.end_ms).max();
        PhaseSummary {
            tasks,
            attempts: of_phase().count() as u32,
            counters,
            wall_ms: match (start, end) {
                (Some(s), Some(e)) => e.saturating_sub(s),
                _ => 0,
            },
        }
    }
}

fn bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// A phase's line of records and bytes in and out.
fn in_out(f: &mut std::fmt::Formatter<'_>, c: &TaskCounters) -> std::fmt::Result {
    writeln!(
        f,
        "          in {} records ({}), out {} records ({})",
        c.input_records,
        bytes(c.input_bytes),
        c.output_records,
        bytes(c.output_bytes),
    )
}

fn secs(ms: Millis) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

impl std::fmt::Display for Summary {
    /// Lines of at most 100 columns (but the output's path), whatever the counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = match (self.succeeded, self.interrupted) {
            (true, _) => "succeeded",
            (false, true) => "INTERRUPTED",
            (false, false) => "FAILED",
        };
        writeln!(f, "job {} ({}) {verdict} in {}", self.job, self.mode, secs(self.wall_ms))?;
        let (m, r) = (&self.map, &self.reduce);
        writeln!(f, "  map:    {} tasks, {} attempts, {}", m.tasks, m.attempts, secs(m.wall_ms))?;
        in_out(f, &m.counters)?;
        writeln!(
            f,
            "  reduce: {} tasks, {} attempts, {} keys, {}",
            r.tasks,
            r.attempts,
            r.counters.groups,
            secs(r.wall_ms)
        )?;
        in_out(f, &r.counters)?;
        if m.counters.combine_input_records > 0 {
            writeln!(
                f,
                "  combine: {} records in, {} records out",
                m.counters.combine_input_records, m.counters.combine_output_records
            )?;
        }
        let mut user = m.counters.user.clone();
        crate::types::merge_counters(&mut user, &r.counters.user);
        for (group, names) in &user {
            for (name, amount) in names {
                writeln!(f, "  counter {group}/{name}: {amount}")?;
            }
        }
        let failed = self.attempts.iter().filter(|a| matches!(a.outcome, Outcome::Failed(_))).count();
        let lost = self.attempts.iter().filter(|a| a.outcome == Outcome::Lost).count();
        let speculative = self.attempts.iter().filter(|a| a.speculative).count();
        let skipped = self.map.counters.skipped_records;
        if failed + lost + speculative > 0 || skipped > 0 {
            writeln!(
                f,
                "  faults: {failed} failed, {lost} lost, {speculative} speculative attempts; {skipped} skipped records"
            )?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        write!(f, "  output: {}", self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_stay_within_100_columns_at_large_counts() {
        let big = TaskCounters {
            input_records: 999_999_999_999,
            input_bytes: 999_999_999_999_999,
            output_records: 999_999_999_999,
            output_bytes: 999_999_999_999_999,
            groups: 999_999_999_999,
            combine_input_records: 999_999_999_999,
            combine_output_records: 999_999_999_999,
            skipped_records: 999_999_999,
            ..TaskCounters::default()
        };
        let phase = PhaseSummary { tasks: 999_999, attempts: 9_999_999, counters: big, wall_ms: 999_999_999 };
        let summary = Summary {
            job: "word-search".into(),
            mode: "distributed",
            succeeded: false,
            interrupted: true,
            error: None,
            output: "/tmp/out".into(),
            map: phase.clone(),
            reduce: phase,
            wall_ms: 999_999_999,
            committed_ms: None,
            workers: Vec::new(),
            speculative_attempts: 0,
            attempts: Vec::new(),
            notes: vec![crate::control::plan::reduce_cap_note(9_999, 9_999)],
            view: None,
        };
        let text = summary.to_string();
        assert!(text.lines().count() >= 7, "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
        }
    }
}
