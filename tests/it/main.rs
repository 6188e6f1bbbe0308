//! Tests through the `mr` binary, in the spirit of the MIT 6.824 lab's test script: every
//! distributed run is compared byte for byte with `--local` and with an independent reference.

mod cli;
mod cluster;
mod config;
mod data;
mod engine;
mod faults;
mod formats;
mod fuzz_regressions;
mod hardening;
mod harness;
mod jobs;
mod journal;
mod layout;
mod load;
mod multijob;
mod progress;
mod reliability;
mod rpc;
mod status;
mod steps;
mod storage;
mod streaming_compat;
mod tls;
mod usage;
mod watch;
