//! What `mr submit` asks the cluster to run: the job, its inputs and output, and every setting
//! of `mr run` that decides how it runs, as JSON (`SubmitRequest.submission`), and the job as
//! `mr submit` planned it (`SubmitRequest.plan`, a `JobPlan`). The cluster keeps both in its
//! store, so a restarted service runs the same plan again.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::plan::Draft;
use crate::data::compression::OutputCompression;
use crate::data::input::InputFormat;
use crate::exec::fault::Faults;
use crate::exec::task::TaskSettings;
use crate::job::Prepared;
use crate::net::rpc::pb;
use crate::settings::FaultTolerance;

/// A job as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// The job's name in the registry.
    pub job: String,
    /// Its own arguments, as given.
    pub job_args: Vec<String>,
    /// Input files or directories, as absolute paths (or URLs).
    pub inputs: Vec<PathBuf>,
    /// The output directory, absolute (or a URL).
    pub output: PathBuf,
    /// How input files are read.
    pub input_format: InputFormat,
    /// How part files are compressed.
    pub output_compression: OutputCompression,
    /// `--split-size`.
    pub split_size: Option<u64>,
    /// `--reduce-tasks`.
    pub reduce_tasks: Option<u32>,
    /// The number of workers the plan's defaults assume (split size, reduce tasks).
    pub workers: u32,
    /// `--overwrite`.
    pub overwrite: bool,
    /// `--sort-buffer`.
    pub sort_buffer: u64,
    /// `--merge-fan-in`.
    pub merge_fan_in: u32,
    /// `--max-record-bytes`.
    pub max_record_bytes: u64,
    /// `--worker-timeout`, in ms.
    pub worker_timeout_ms: u64,
    /// `--task-timeout`, in ms.
    pub task_timeout_ms: u64,
    /// `--max-attempts`.
    pub max_attempts: u32,
    /// `--speculative`.
    pub speculative: bool,
    /// `--skip-bad-records`.
    pub skip_bad_records: bool,
    /// Faults to inject (testing).
    pub faults: Faults,
    /// The command line of `mr submit` (a `--token` value replaced), for `_job.json`.
    #[serde(default)]
    pub command: Vec<String>,
    /// Every setting the job runs with, as `_job.json` records it (`config`).
    #[serde(default)]
    pub config: serde_json::Value,
}

impl Submission {
    /// The job as planned by `mr submit`, from what it sent.
    pub fn draft(&self, plan: pb::JobPlan) -> Draft {
        Draft {
            inputs: self.inputs.clone(),
            splits: plan.splits.into_iter().map(Into::into).collect(),
            reduce_tasks: plan.reduce_tasks,
            job_args: self.job_args.clone(),
            prepared: Prepared { state: plan.state.into_iter().map(|e| (e.key, e.value)).collect() },
            input_bytes: plan.input_bytes,
            input_format: self.input_format,
            settings: TaskSettings {
                partitions: plan.reduce_tasks,
                sort_buffer: self.sort_buffer.max(1),
                merge_fan_in: self.merge_fan_in.max(2) as usize,
                max_record_bytes: self.max_record_bytes.max(1),
                output_compression: self.output_compression,
            },
            notes: plan.notes,
        }
    }

    /// The scheduler's rules for the job.
    pub fn tolerance(&self) -> FaultTolerance {
        FaultTolerance {
            worker_timeout: Duration::from_millis(self.worker_timeout_ms),
            task_timeout: Duration::from_millis(self.task_timeout_ms),
            max_attempts: self.max_attempts.max(1),
            max_restarts: 0,
            speculative: self.speculative,
            skip_bad_records: self.skip_bad_records,
            verify_inputs: false,
        }
    }
}

/// What `mr submit` sends of its plan.
pub fn plan_message(draft: &Draft) -> pb::JobPlan {
    pb::JobPlan {
        splits: draft.splits.iter().map(Into::into).collect(),
        reduce_tasks: draft.reduce_tasks,
        state: draft
            .prepared
            .state
            .iter()
            .map(|(key, value)| pb::StateEntry { key: key.clone(), value: value.clone() })
            .collect(),
        input_bytes: draft.input_bytes,
        notes: draft.notes.clone(),
    }
}
