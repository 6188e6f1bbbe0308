//! The network: the gRPC contract and its conversions, authentication and TLS (`rpc`), and the
//! Shuffle service with the reduce side's fetch (`shuffle`).

pub mod convert;
pub mod rpc;
pub mod shuffle;
