//! `mr run JOB` for a multi-step job (streaming's `--steps FILE`): each step runs as a job of
//! its own, planned when the step before it has committed, its input that step's output.
//! Every step but the last writes into `OUT/_temporary/steps/step-N`, which holds its own
//! journal while it runs and `_SUCCESS` (and `_job.json`) once it committed; the last step
//! writes into OUT, and its commit removes `_temporary` with every step's output. The list of
//! steps is kept in `OUT/_temporary/steps/steps.json`, so that `--resume` continues the same
//! job: it skips the steps that committed and resumes the first that did not from its journal,
//! at the tasks that had not committed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{
    JobArgs, JobRecord, LogFormat, Mode, check_workers, command_line, execute, local_workers, request, usage,
    write_history, write_history_value,
};
use crate::control::plan::{self, JobRequest, OutputDir};
use crate::data::compression::OutputCompression;
use crate::data::input::InputFormat;
use crate::error::Error;
use crate::job::{JobStep, Registry};
use crate::layout::{HISTORY, STEPS, SUCCESS, TEMPORARY};
use crate::report::steps::{StepSummary, StepsSummary};

/// The file in `OUT/_temporary/steps` that names the job's steps.
const MANIFEST: &str = "steps.json";

/// What a resumed run must share with the run it continues, besides what each step's journal
/// checks: the job, its inputs and its steps.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    job: String,
    inputs: Vec<String>,
    steps: Vec<JobStep>,
    /// Whether the first run created the output directory (a failed job then removes it).
    output_created: bool,
}

/// How the steps run: the same for each.
struct Runner<'a> {
    args: &'a JobArgs,
    job: &'a str,
    registry: &'a Arc<Registry>,
    log_format: LogFormat,
    mode: Mode,
}

/// Runs a multi-step job, prints its summary and writes its `_job.json`.
pub(super) fn run(
    args: &JobArgs,
    job: &str,
    job_args: Vec<String>,
    steps: Vec<JobStep>,
    registry: &Arc<Registry>,
    log_format: LogFormat,
    mode: Mode,
) -> anyhow::Result<()> {
    let started = Instant::now();
    check(args, mode)?;
    let base = request(args, job, job_args.clone(), None, registry)?;
    check_workers(args, mode)?;
    if crate::data::storage::is_url(&base.output) {
        return Err(usage(
            "--steps keeps each step's output under OUT/_temporary until the last step commits: give a local --output \
             directory (the last step's output can be copied to an object store afterwards)",
        ));
    }
    if mode != (Mode::Run { local: true }) {
        // Checked before anything is written, as for a job of one step.
        args.security.tls()?;
    }
    // The job's output, until the last step takes it: dropped on an error, it removes what the
    // job wrote.
    let mut output = Some(claim(args, &base, job, &steps)?);
    let steps_dir = output.as_ref().map(|o| o.path().join(TEMPORARY).join(STEPS)).context("the job's output")?;
    let runner = Runner { args, job, registry, log_format, mode };
    let mut reports: Vec<StepSummary> = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let dir = steps_dir.join(format!("step-{i}"));
        if !last && dir.join(SUCCESS).exists() {
            reports.push(earlier(i, step, &dir));
            continue;
        }
        let inputs = if i == 0 { base.inputs.clone() } else { vec![steps_dir.join(format!("step-{}", i - 1))] };
        let request = step_request(&base, step, inputs, if last { base.output.clone() } else { dir.clone() }, last, i);
        let step_output = if last {
            output.take().context("the job's output directory")?.into_last_step()
        } else {
            OutputDir::step(&dir)
        };
        let report = step_output.map_err(Into::into).and_then(|o| runner.step(i, step, &request, o, last));
        match report {
            Ok(report) => reports.push(report),
            Err(e) => {
                // A step that refused to resume touched nothing, and one interrupted with a
                // journal is kept for --resume: the job's output is left as it is.
                let keep = matches!(
                    e.downcast_ref::<Error>(),
                    Some(Error::JournalMismatch { .. } | Error::Journal { .. } | Error::InterruptedResumable(_))
                );
                if let (true, Some(out)) = (keep, output.as_mut()) {
                    out.leave_alone();
                }
                return Err(e.context(format!("step {} of {}", i + 1, steps.len())));
            }
        }
    }
    finish(args, mode, (job, job_args), &base.output, reports, started)
}

/// Refuses what a multi-step job cannot do.
fn check(args: &JobArgs, mode: Mode) -> anyhow::Result<()> {
    if mode == Mode::Coordinator {
        return Err(usage(
            "--steps: mr coordinator runs a job of one step, whose workers leave when it ends; run a multi-step job \
             with mr run",
        ));
    }
    if args.resources.reduce_tasks == Some(0) {
        return Err(usage(
            "--reduce-tasks 0 with --steps: a step without a reducer is map-only; leave the reducer out of the steps \
             that need none",
        ));
    }
    Ok(())
}

/// Claims the job's output directory: a new one (absent, empty, or emptied by `--overwrite`),
/// or with `--resume` the one of the interrupted run, whose steps must be these.
fn claim(args: &JobArgs, base: &JobRequest, job: &str, steps: &[JobStep]) -> anyhow::Result<OutputDir> {
    let mut output = if args.io.resume {
        OutputDir::resume_steps(&base.output, &base.inputs)?
    } else {
        OutputDir::prepare(&base.output, &base.inputs, args.io.overwrite)?
    };
    // What this process and its workers create is private to the user; the output's files
    // follow the umask it was started with.
    crate::data::storage::private_umask();
    let text = |p: &Path| crate::data::input::path_text(p).into_owned();
    let inputs: Vec<String> =
        base.inputs.iter().map(|p| std::path::absolute(p).map(|a| text(&a)).unwrap_or_else(|_| text(p))).collect();
    let mut manifest =
        Manifest { job: job.to_string(), inputs, steps: steps.to_vec(), output_created: output.created() };
    let dir = output.path().join(TEMPORARY).join(STEPS);
    let path = dir.join(MANIFEST);
    if output.resuming() {
        let recorded: Option<Manifest> = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice(&b).ok());
        manifest.output_created = recorded.as_ref().is_some_and(|r| r.output_created);
        if recorded.as_ref() != Some(&manifest) {
            output.leave_alone();
            return Err(Error::NothingToResume {
                output: output.path().to_path_buf(),
                reason: format!(
                    "the interrupted run had other steps, job or inputs ({}): run the same command with the same \
                     --steps file and inputs, or pass --overwrite instead of --resume to replace it",
                    path.display()
                ),
            }
            .into());
        }
        output.set_created(manifest.output_created);
        return Ok(output);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write the list of steps {}", path.display()))?;
    Ok(output)
}

/// The request of step `i`: the job's, with the step's arguments, input and output. Only the
/// last step's output is compressed; the first reads the job's input format, the others text.
fn step_request(
    base: &JobRequest,
    step: &JobStep,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    last: bool,
    i: usize,
) -> JobRequest {
    let mut request = base.clone();
    request.job_args = step.args.clone();
    request.inputs = inputs;
    request.output = output;
    request.reduce_tasks = step.reduce_tasks.or(base.reduce_tasks);
    request.overwrite = false;
    request.resume = false;
    if i > 0 {
        request.input_format = InputFormat::Text;
    }
    if !last {
        request.settings.output_compression = OutputCompression::None;
    }
    request
}

impl Runner<'_> {
    /// Plans and runs step `i` into `output`, and records it.
    fn step(
        &self,
        i: usize,
        step: &JobStep,
        request: &JobRequest,
        output: OutputDir,
        last: bool,
    ) -> anyhow::Result<StepSummary> {
        let plan = plan::plan_into(request, self.registry, output)?;
        let local = self.mode == Mode::Run { local: true };
        let workers = local_workers(self.args, self.mode);
        let faults = self.args.faults();
        let record = JobRecord::new(self.args, request, plan.shape(), workers, local, self.log_format, faults);
        let record = serde_json::to_value(&record)?;
        let plan_output = plan.output.path().to_path_buf();
        let tls = if local { None } else { self.args.security.tls()? };
        let mut failed = None;
        let summary = execute(
            self.args,
            (self.job, plan),
            self.registry,
            (self.log_format, self.mode),
            tls,
            &record,
            &mut failed,
        )?;
        if !last {
            // What a resumed run reports of the step: a step committed without it is reported
            // as committed, with no numbers.
            if let Err(e) = write_history(&plan_output, record.clone(), &summary) {
                tracing::warn!("step {} committed, but {e:#}", i + 1);
            }
        }
        Ok(StepSummary::ran(i + 1, step.args.clone(), record, &summary))
    }
}

/// A step that an earlier run committed: reported from the `_job.json` it left.
fn earlier(i: usize, step: &JobStep, dir: &Path) -> StepSummary {
    let history: serde_json::Value =
        std::fs::read(dir.join(HISTORY)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    StepSummary {
        step: i + 1,
        args: step.args.clone(),
        earlier_run: true,
        config: history.get("config").cloned().unwrap_or_default(),
        summary: history.get("summary").cloned().unwrap_or_default(),
        text: None,
    }
}

/// Writes the job's `_job.json` (its configuration: the first step's, with the job's own
/// arguments and output; and the summary, every step's) and prints the summary.
fn finish(
    args: &JobArgs,
    mode: Mode,
    (job, job_args): (&str, Vec<String>),
    output: &Path,
    reports: Vec<StepSummary>,
    started: Instant,
) -> anyhow::Result<()> {
    let output = std::path::absolute(output).unwrap_or_else(|_| output.to_path_buf());
    let output_text = crate::data::input::path_text(&output).into_owned();
    let mut config = reports.first().map(|r| r.config.clone()).unwrap_or_default();
    if let Some(fields) = config.as_object_mut() {
        fields.insert("args".into(), serde_json::json!(job_args));
        fields.insert("output".into(), serde_json::json!(output_text));
        fields.insert("output_compression".into(), serde_json::json!(args.io.output_compression));
        fields.insert("steps".into(), serde_json::json!(reports.len()));
    }
    let summary = StepsSummary {
        job: job.to_string(),
        mode: if mode == (Mode::Run { local: true }) { "local" } else { "distributed" },
        succeeded: true,
        interrupted: false,
        error: None,
        output: output_text,
        wall_ms: started.elapsed().as_millis() as u64,
        steps: reports,
    };
    let history = serde_json::json!({ "command": command_line(), "config": config, "summary": &summary });
    if let Err(e) = write_history_value(&output, &history) {
        eprintln!("mr: warning: the job committed, but {e:#}");
    }
    if args.format.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.format.quiet {
        println!("{summary}");
    }
    Ok(())
}
