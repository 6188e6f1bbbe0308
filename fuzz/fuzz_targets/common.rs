//! What more than one fuzz target uses; each includes it with `mod common;`.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The directory a target writes its input files into: one per process, removed at exit.
pub fn dir() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir for the fuzz input");
        let path = dir.path().to_path_buf();
        (dir, path)
    });
    path
}
