//! Reporting on a job: the status server and `mr status`, terminal progress, the final summary,
//! and `_job.json`.

pub mod history;
pub mod progress;
pub mod status;
pub mod steps;
pub mod summary;
