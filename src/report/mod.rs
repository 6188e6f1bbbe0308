//! Reporting on a job: the status server and `mr status`, terminal progress, and the final summary.

pub mod progress;
pub mod status;
pub mod summary;
