//! Control: planning a job, the scheduler (a pure state machine), the journal, and the coordinator
//! that drives the scheduler from gRPC calls and timers.

pub mod coordinator;
pub mod journal;
pub mod plan;
pub mod scheduler;
