//! `mr`: a MapReduce engine. A coordinator splits a job into map and reduce tasks; worker
//! processes pull tasks over gRPC, run the job's code, and commit its output exactly once.
//!
//! Layout, in the order a record travels:
//! - [`input`]: finding input files, cutting line-aligned splits, reading records.
//! - [`structured`]: the csv and jsonl input formats.
//! - [`storage`]: input and output in object stores (`s3://`, `gs://`, `az://`, `file://`).
//! - [`job`]: the `Job` trait and the built-in jobs.
//! - [`partition`]: the stable hash partitioner.
//! - [`task`]: running one map or reduce attempt (sort buffer, combiner, merge, part file).
//! - [`mapout`]: the map output file format and the k-way merge.
//! - [`shuffle`]: each worker's Shuffle service, and the reduce side's fetch.
//! - [`scheduler`]: the pure state machine that assigns attempts and decides commits.
//! - [`coordinator`]: the gRPC services around the scheduler, and the job commit.
//! - [`worker`]: the worker process's loop.
//! - [`run`]: `mr run`: a coordinator plus supervised worker processes.
//! - [`local`]: the sequential local mode, the tests' oracle.
//! - [`plan`]: checking a request and preparing the output directory.
//! - [`interrupted`]: what an interrupted job keeps for `--resume`.
//! - [`sample`]: the corpus of `mr run` with no arguments.
//! - [`progress`]: progress bars (or plain lines) while a job runs.
//! - [`status`]: the status page, JSON API and metrics served while a job runs; `mr status`.
//! - [`bench`]: `mr bench`; [`loadbench`]: `mr bench-coordinator`.
//! - [`config`]: the config file, the layer of settings under flags and MR_* variables.
//! - [`summary`], [`datagen`], [`rpc`], [`error`], [`cli`].
#![deny(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod coordinator;
pub mod datagen;
pub mod error;
pub mod fault;
pub mod input;
pub mod interrupted;
pub mod job;
pub mod journal;
pub mod loadbench;
pub mod local;
pub mod mapout;
pub mod partition;
pub mod plan;
pub mod progress;
pub mod rpc;
pub mod run;
pub mod sample;
pub mod scheduler;
pub mod shuffle;
pub mod simulate;
pub mod status;
pub mod storage;
pub mod structured;
pub mod summary;
pub mod task;
pub mod tera;
pub mod worker;

pub use error::{Error, Result};
