//! What `mr submit` asks the cluster to run: the job, its inputs and output, and every setting
//! of `mr run` that decides how it runs. It travels as JSON (`SubmitRequest.submission`) and is
//! kept as such in the cluster's store, so a restarted service plans the same job again.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::control::plan::JobRequest;
use crate::data::compression::OutputCompression;
use crate::data::input::InputFormat;
use crate::exec::fault::Faults;
use crate::exec::task::TaskSettings;
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
}

impl Submission {
    /// The request the cluster plans: a new job, or (`resume`) the same job continued from
    /// its journal after the service restarted.
    pub fn request(&self, resume: bool) -> JobRequest {
        JobRequest {
            job: self.job.clone(),
            job_args: self.job_args.clone(),
            input_format: self.input_format,
            inputs: self.inputs.clone(),
            output: self.output.clone(),
            split_size: self.split_size,
            reduce_tasks: self.reduce_tasks,
            workers: self.workers.max(1),
            overwrite: self.overwrite && !resume,
            resume,
            settings: TaskSettings {
                partitions: 0,
                sort_buffer: self.sort_buffer.max(1),
                merge_fan_in: self.merge_fan_in.max(2) as usize,
                max_record_bytes: self.max_record_bytes.max(1),
                output_compression: self.output_compression,
            },
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
