//! The data layer: finding input and reading records, object stores, and the map output file
//! format. It knows nothing of jobs, tasks or RPC.

pub mod compression;
pub mod input;
pub mod mapout;
pub mod storage;
pub mod structured;
