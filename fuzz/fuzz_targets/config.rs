//! Arbitrary text as an `mr.toml`: `FileConfig::load` answers a config or an
//! `Error::Config` that names the file, never a panic.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mr::cli::config::FileConfig;

fn path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir for the fuzz input");
        let path = dir.path().join("mr.toml");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write the fuzz input");
    match FileConfig::load(path) {
        Ok(config) => {
            let dir = path.parent().expect("the file is in a dir");
            for tls in [&config.tls_cert, &config.tls_key, &config.tls_ca].into_iter().flatten() {
                assert!(tls.is_absolute() || dir.is_relative(), "relative TLS path left unresolved");
            }
            for (key, p) in config.faults.probabilities() {
                assert!((0.0..=1.0).contains(&p), "{key} = {p} accepted");
            }
            assert!(config.split_size != Some(0) && config.workers != Some(0), "zero accepted");
        }
        Err(mr::Error::Config(message)) => {
            let name = path.display().to_string();
            assert!(message.contains(&name), "error does not name the file: {message}");
        }
        Err(other) => panic!("not a config error: {other}"),
    }
});
