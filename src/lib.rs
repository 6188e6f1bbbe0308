//! `mr`: a MapReduce engine. A coordinator splits a job into map and reduce tasks; worker
//! processes pull tasks over gRPC, run the job's code, and commit its output exactly once.
//!
//! The tree, from the bottom layer up; a module imports only from the layers above it in this
//! list (`tests/it/layout.rs` checks it):
//! - [`error`], [`types`] (ids, phases, counters), [`layout`] (names in the output directory),
//!   [`settings`] (each setting's flag, variable, help and default, in groups): leaves that
//!   import nothing from the crate.
//! - [`data`]: input files, splits and record readers; object stores; the map output format.
//! - [`job`]: the `Job` API, the partitioner and the built-in jobs.
//! - [`exec`]: one map or reduce attempt, synchronous, with no RPC; fault injection.
//! - [`net`]: the gRPC contract and conversions, authentication, TLS, and the Shuffle service.
//! - [`control`]: planning, the scheduler (a pure state machine), the journal, the coordinator.
//! - [`worker`]: the worker process's loop.
//! - [`report`]: the status server, terminal progress and the summary.
//! - [`launch`]: `mr run`'s supervisor and the sequential local mode, the tests' oracle.
//! - [`cluster`]: `mr cluster`, the service that queues and runs many jobs on long-lived
//!   workers, and its store.
//! - [`tools`]: benchmarks, load test, generators, TeraSort's tools, the simulator.
//! - [`cli`]: flags, the config file, and the commands.
#![deny(missing_docs)]

pub mod error;
pub mod layout;
pub mod settings;
pub mod types;

pub mod data;
pub mod job;

pub mod exec;
pub mod net;

pub mod control;
pub mod worker;

pub mod report;

pub mod launch;

pub mod cluster;

pub mod tools;

pub mod cli;

pub use error::{Error, Result};
