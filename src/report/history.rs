//! `_job.json`, the record a committed job leaves in its output next to `_SUCCESS`: its
//! command line, its resolved settings, its summary and the status page's last view of it.
//! `mr run` and `mr cluster` write it the same way; `mr status OUT` reads it.

use std::path::Path;

use crate::data::storage;
use crate::error::{Error, Result};
use crate::layout::HISTORY;

/// Writes a job's `_job.json`, `history`, into its committed output: through a temporary file
/// renamed into place in a directory, as one object in an object store.
pub fn write(output: &Path, history: &serde_json::Value) -> Result<()> {
    let bytes =
        serde_json::to_vec_pretty(history).map_err(|e| Error::Job(format!("cannot encode the job history: {e}")))?;
    if storage::is_url(output) {
        return storage::write(&storage::join(output, HISTORY), bytes);
    }
    let path = output.join(HISTORY);
    let tmp = output.join(format!(".{HISTORY}.tmp"));
    std::fs::write(&tmp, bytes).map_err(Error::io("cannot write the job history", &path))?;
    storage::follow_umask(&tmp)?;
    std::fs::rename(&tmp, &path).map_err(Error::io("cannot write the job history", &path))
}
