//! Arbitrary text as an `mr.toml`: `FileConfig::load` answers a config or an
//! `Error::Config` that names the file, never a panic; a config it accepts layers under `mr`'s
//! command with its paths resolved and no zero where the flag refuses one.
#![no_main]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mr::cli::config::FileConfig;

/// `mr`'s command with the built-in jobs, whose arguments are the file's keys.
fn command() -> &'static clap::Command {
    static COMMAND: OnceLock<clap::Command> = OnceLock::new();
    COMMAND.get_or_init(|| mr::cli::command(&mr::job::Registry::builtin()))
}

fuzz_target!(|data: &[u8]| {
    let path = &common::dir().join("mr.toml");
    std::fs::write(path, data).expect("write the fuzz input");
    match FileConfig::load(path, command()) {
        Ok(config) => {
            for (key, p) in config.faults.probabilities() {
                assert!((0.0..=1.0).contains(&p), "{key} = {p} accepted");
            }
            // The file's values become `mr run`'s defaults. A combination clap refuses is a
            // usage error, not a finding.
            let Ok(matches) = config.layer(command().clone()).try_get_matches_from(["mr", "run"]) else { return };
            let run = matches.subcommand_matches("run").expect("mr run's matches");
            for id in ["tls_cert", "tls_key", "tls_ca"] {
                if let Some(tls) = run.get_one::<PathBuf>(id) {
                    assert!(tls.is_absolute(), "relative TLS path left unresolved: {id} = {}", tls.display());
                }
            }
            assert!(run.get_one::<u64>("split_size") != Some(&0), "a zero split size accepted");
            assert!(run.get_one::<u32>("workers") != Some(&0), "zero workers accepted");
        }
        Err(mr::Error::Config(message)) => {
            let name = path.display().to_string();
            assert!(message.contains(&name), "error does not name the file: {message}");
        }
        Err(other) => panic!("not a config error: {other}"),
    }
});
