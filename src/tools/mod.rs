//! Tools around the engine: benchmarks, the coordinator load test, data generators, TeraSort's
//! generator and validator, and the cluster simulator.

pub mod bench;
pub mod datagen;
pub mod loadbench;
pub mod sample;
pub mod simulate;
pub mod tera;
