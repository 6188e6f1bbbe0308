//! The sample run (`mr run` with no job, `--input` or `--output`): word count on a corpus that
//! the binary generates (the same bytes as the repository's `sample/`, made with `mr gen text
//! --out sample --size 2MiB --files 4 --seed 2026`), so that an installed binary needs no
//! source tree.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The corpus's size, file count and seed.
pub const SIZE: u64 = 2 << 20;
/// Files in the corpus.
pub const FILES: u32 = 4;
/// Seed of the corpus.
pub const SEED: u64 = 2026;

/// The sample's input (a private temporary directory, removed when dropped) and the path of
/// its output (`mr-sample-XXXXXX` in the temp dir, absent until the job creates it, kept).
pub struct Sample {
    input: tempfile::TempDir,
    output: PathBuf,
}

impl Sample {
    /// Generates the corpus and picks the output's name.
    pub fn create() -> Result<Sample> {
        let tmp = std::env::temp_dir();
        let input = tempfile::Builder::new()
            .prefix("mr-sample-input-")
            .tempdir()
            .map_err(Error::io("cannot create the sample's input directory in", &tmp))?;
        crate::tools::datagen::text(input.path(), SIZE, FILES, SEED)?;
        // A fresh name, left to the job to create: a job that fails removes a directory it
        // created, so nothing empty is left behind.
        let output = tempfile::Builder::new()
            .prefix("mr-sample-")
            .tempdir()
            .map_err(Error::io("cannot create the sample's output directory in", &tmp))?;
        let output = output.path().to_path_buf();
        Ok(Sample { input, output })
    }

    /// The corpus's directory.
    pub fn input(&self) -> &Path {
        self.input.path()
    }

    /// The output directory.
    pub fn output(&self) -> &Path {
        &self.output
    }
}
