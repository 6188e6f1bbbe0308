//! `mr cluster`: a long-running service that runs many jobs on long-lived workers. `queue.rs`
//! is the jobs' state machine (first in, first out; fair shares of the workers' slots; kill;
//! restore), `store.rs` the durable history under `--state-dir`, `submission.rs` what `mr
//! submit` sends.

pub mod queue;
pub mod rpc;
pub mod service;
pub mod store;
pub mod submission;
pub mod web;
