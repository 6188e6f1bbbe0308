//! How a worker ends, and what it leaves: its own directory (`mr-worker-*` in its work dir),
//! held under a lock for as long as the worker lives and removed when it exits, whether the
//! job ended, the coordinator was lost, or a signal came; the removal of the directories that
//! workers killed without a chance to clean up left behind; and the signals that end it.

use std::path::Path;

use crate::error::{Error, Result};

/// Waits for SIGINT or SIGTERM; an error if their handlers cannot be installed.
pub(super) async fn interrupted() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind| signal(kind).map_err(|e| Error::Job(format!("cannot install a signal handler: {e}")));
    let (mut interrupt, mut terminate) = (handler(SignalKind::interrupt())?, handler(SignalKind::terminate())?);
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

/// How the name of a worker's own directory begins (in its work dir).
pub const DIR_PREFIX: &str = "mr-worker-";

/// The lock file in a worker's own directory: the worker holds an exclusive lock on it
/// (`flock`) for as long as the directory exists, so a directory whose lock can be taken
/// belongs to a worker that is dead.
pub const LOCK_FILE: &str = "worker.lock";

/// A worker's own directory (`mr-worker-*` in its work dir) and the lock that tells that the
/// worker is alive. Dropping it removes the directory, then lets go of the lock.
pub(super) struct OwnDir {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
}

impl OwnDir {
    /// Makes the directory in `base` and takes its lock. The lock file gets its name only once
    /// it is locked (a rename), so no other worker can find it unlocked while this one lives.
    pub(super) fn create(base: &Path) -> Result<OwnDir> {
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(base)
            .map_err(Error::io("cannot create the worker's work directory in", base))?;
        let fresh = dir.path().join(format!(".{LOCK_FILE}.new"));
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&fresh)
            .map_err(Error::io("cannot create the worker's lock file", &fresh))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let busy = std::io::Error::from(std::io::ErrorKind::WouldBlock);
                return Err(Error::io("cannot lock the worker's lock file", &fresh)(busy));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock the worker's lock file", &fresh)(e));
            }
        }
        let named = dir.path().join(LOCK_FILE);
        std::fs::rename(&fresh, &named).map_err(Error::io("cannot name the worker's lock file", &named))?;
        Ok(OwnDir { dir, _lock: lock })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes what workers killed without a chance to clean up (SIGKILL, a crash of the host)
/// left in `base`: every `mr-worker-*` directory of this user, other than `own`, whose lock
/// file this process can lock. A live worker holds its lock, so its directory is never
/// removed; nor is a directory without a lock file (a worker still making it). Failures are
/// logged: they do not stop the worker.
pub fn remove_dead_workers_directories(base: &Path, own: &Path) {
    use std::os::unix::fs::MetadataExt;
    let entries = match std::fs::read_dir(base) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %base.display(), "cannot list the work dir to remove dead workers' directories: {e}");
            return;
        }
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let path = entry.path();
        let named = entry.file_name().as_encoded_bytes().starts_with(DIR_PREFIX.as_bytes());
        if !named || path == own {
            continue;
        }
        // Not a symbolic link, and this user's.
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir() && meta.uid() == uid);
        if !ours {
            continue;
        }
        let lock_path = path.join(LOCK_FILE);
        let Ok(lock) = std::fs::File::open(&lock_path) else { continue };
        match lock.try_lock() {
            Ok(()) => match std::fs::remove_dir_all(&path) {
                Ok(()) => tracing::info!(dir = %path.display(), "removed a dead worker's directory"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %path.display(), "cannot remove a dead worker's directory: {e}"),
            },
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(file = %lock_path.display(), "cannot lock a worker's lock file: {e}");
            }
        }
    }
}
