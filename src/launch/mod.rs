//! Launching a job on this machine: `mr run`'s coordinator with supervised worker processes, and
//! the sequential local mode.

pub mod interrupted;
pub mod local;
pub mod run;
