//! What an interrupted distributed job (Ctrl-C, SIGTERM) keeps for `--resume`: the journal, the
//! committed part files, the committed map outputs its journal names, and the log directory.
//! Everything else it wrote is removed: attempt files in `_temporary`, and in the work
//! directory every file that is not a committed map output (spills, fetched partitions,
//! unfinished part files, lock files of the dead workers).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::control::journal::Journal;

/// Prunes an interrupted job's output and work directory down to what `--resume` reads. The
/// job's workers must have exited. Failures are logged, not returned: what is left over is
/// removed by the resume (or by `--overwrite`), so it never makes a resumed job wrong.
pub fn keep_for_resume(work_dir: &Path, journal: &Path) {
    let keep = match committed_map_outputs(journal) {
        Ok(keep) => keep,
        Err(e) => {
            tracing::warn!("cannot read the journal to prune the work directory ({e}); it is kept whole");
            return;
        }
    };
    if let Err(e) = prune(work_dir, &keep) {
        tracing::warn!(dir = %work_dir.display(), "cannot prune the work directory: {e}");
    }
    if let Some(tmp) = journal.parent() {
        remove_all_but(tmp, journal);
    }
}

/// The files of the committed map outputs the journal names.
fn committed_map_outputs(journal: &Path) -> crate::Result<HashSet<PathBuf>> {
    let recovered = Journal::inspect(journal)?;
    Ok(recovered.done.iter().filter_map(|(_, done)| done.map_output.as_ref()).map(|l| PathBuf::from(&l.path)).collect())
}

/// Removes every file under `dir` that is not in `keep`, then the directories left empty.
/// Returns whether `dir` itself is left empty (and was removed).
fn prune(dir: &Path, keep: &HashSet<PathBuf>) -> std::io::Result<bool> {
    let mut empty = true;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            empty &= prune(&path, keep)?;
        } else if keep.contains(&path) {
            empty = false;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    if empty {
        std::fs::remove_dir(dir)?;
    }
    Ok(empty)
}

/// Removes everything in `dir` but `file`.
fn remove_all_but(dir: &Path, file: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == file {
            continue;
        }
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(e) = removed {
            tracing::warn!(path = %path.display(), "cannot remove an interrupted attempt's file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_only_the_named_files_and_their_directories() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("mr-work-x");
        let kept = work.join("mr-worker-1/map-00000-0.out");
        let gone = [work.join("mr-worker-1/worker.lock"), work.join("mr-worker-2/output/part-r-00000.attempt-0")];
        for file in gone.iter().chain([&kept]) {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"x").unwrap();
        }
        let keep: HashSet<PathBuf> = [kept.clone()].into();
        assert!(!prune(&work, &keep).unwrap());
        assert!(kept.exists());
        assert!(gone.iter().all(|g| !g.exists()));
        assert!(!work.join("mr-worker-2").exists(), "an emptied directory is removed");
    }
}
