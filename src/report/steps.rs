//! The summary of a multi-step job (streaming's `--steps`): each step's own summary, in order,
//! as text or as JSON (`--json`, and `_job.json`).

use serde::Serialize;

use crate::report::summary::Summary;
use crate::types::Millis;

/// One step of a multi-step job.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    /// The step's number, from 1.
    pub step: usize,
    /// The step's own argument list.
    pub args: Vec<String>,
    /// True when an earlier run of the job, continued with `--resume`, committed the step:
    /// `config` and `summary` are then the ones that run recorded.
    pub earlier_run: bool,
    /// The step's settings, as `_job.json` records a job's.
    pub config: serde_json::Value,
    /// The step's summary, as a job's (`--json`).
    pub summary: serde_json::Value,
    /// The step's summary as text, when this run ran it.
    #[serde(skip)]
    pub text: Option<String>,
}

impl StepSummary {
    /// A step this run ran.
    pub fn ran(step: usize, args: Vec<String>, config: serde_json::Value, summary: &Summary) -> StepSummary {
        StepSummary {
            step,
            args,
            earlier_run: false,
            config,
            summary: serde_json::to_value(summary).unwrap_or(serde_json::Value::Null),
            text: Some(summary.to_string()),
        }
    }
}

/// Everything the summary says about a multi-step job.
#[derive(Debug, Clone, Serialize)]
pub struct StepsSummary {
    /// The job's name.
    pub job: String,
    /// "distributed" or "local".
    pub mode: &'static str,
    /// True when the last step's output committed.
    pub succeeded: bool,
    /// True when SIGINT or SIGTERM stopped the job (a summary is printed only for a job that
    /// committed: false).
    pub interrupted: bool,
    /// Why the job did not commit (none: it committed).
    pub error: Option<String>,
    /// The job's output directory: the last step's output.
    pub output: String,
    /// This run, from planning to the last commit.
    pub wall_ms: Millis,
    /// Every step, in order.
    pub steps: Vec<StepSummary>,
}

impl std::fmt::Display for StepsSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.succeeded { "succeeded" } else { "FAILED" };
        let n = self.steps.len();
        let secs = self.wall_ms as f64 / 1000.0;
        writeln!(f, "job {} ({}), {n} steps, {verdict} in {secs:.2} s", self.job, self.mode)?;
        for step in &self.steps {
            writeln!(f, "step {} of {n}: {}", step.step, step.args.join(" "))?;
            match &step.text {
                Some(text) => {
                    for line in text.lines() {
                        writeln!(f, "  {line}")?;
                    }
                }
                None => writeln!(f, "  committed by an earlier run of the job")?,
            }
        }
        write!(f, "output: {}", self.output)
    }
}
