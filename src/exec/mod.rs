//! The data path of one attempt, synchronous and without RPC: a map attempt (read, map, sort
//! buffer, combine, spill, merge into one map output) and a reduce attempt (merge, reduce, part
//! file); and fault injection inside attempts.

pub mod fault;
pub mod task;
