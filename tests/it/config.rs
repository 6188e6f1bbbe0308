//! Configuration through the binary: flags beat MR_* variables, which beat the config file,
//! which beats the defaults; and the errors of each layer name what is wrong and where.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

fn wordcount(input: &Path, output: &Path) -> Command {
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--quiet", "--input"]).arg(input).arg("--output").arg(output);
    cmd
}

fn small_input(dir: &Dir) -> PathBuf {
    dir.write("in/a.txt", "the quick brown fox\njumps over the lazy dog\n".repeat(20));
    dir.path("in")
}

/// The `config` object of a committed job's `_job.json`.
fn job_config(output: &Path) -> serde_json::Value {
    let history = std::fs::read(output.join("_job.json")).unwrap();
    serde_json::from_slice::<serde_json::Value>(&history).unwrap()["config"].clone()
}

/// (max_attempts, sort_buffer, speculative) as a job recorded them.
fn three_settings(config: &serde_json::Value) -> (u64, u64, bool) {
    (config["max_attempts"].as_u64().unwrap(), config["sort_buffer"].as_u64().unwrap(), config["speculative"] == true)
}

const MIB: u64 = 1 << 20;

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let file = dir.write("mr.toml", "max_attempts = 7\nsort_buffer = \"1MiB\"\nspeculative = false\n");
    let env = [("MR_MAX_ATTEMPTS", "5"), ("MR_SORT_BUFFER", "2097152"), ("MR_SPECULATIVE", "on")];
    let flags = ["--max-attempts", "3", "--sort-buffer", "3MiB", "--speculative", "off"];

    let out = dir.path("defaults");
    run_ok(wordcount(&input, &out).arg("--local"));
    assert_eq!(three_settings(&job_config(&out)), (4, 64 * MIB, true));
    assert_eq!(job_config(&out)["config_file"], serde_json::Value::Null);

    let out = dir.path("file");
    run_ok(wordcount(&input, &out).arg("--local").arg("--config").arg(&file));
    assert_eq!(three_settings(&job_config(&out)), (7, MIB, false));

    let out = dir.path("env-file");
    run_ok(wordcount(&input, &out).arg("--local").arg("--config").arg(&file).envs(env));
    assert_eq!(three_settings(&job_config(&out)), (5, 2 * MIB, true));

    let out = dir.path("flags-env-file");
    run_ok(wordcount(&input, &out).arg("--local").arg("--config").arg(&file).envs(env).args(flags));
    assert_eq!(three_settings(&job_config(&out)), (3, 3 * MIB, false));

    // MR_CONFIG names the file when --config does not.
    let out = dir.path("mr-config");
    run_ok(wordcount(&input, &out).arg("--local").env("MR_CONFIG", &file));
    assert_eq!(three_settings(&job_config(&out)), (7, MIB, false));
    assert_eq!(job_config(&out)["config_file"], file.to_str().unwrap());
}

#[test]
fn a_distributed_run_takes_its_shape_from_the_file_and_environment() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let file =
        dir.write("mr.toml", "workers = 1\nreduce_tasks = 3\nsplit_size = 300\n[worker]\nlost_timeout = \"2s\"\n");
    let out = dir.path("file");
    run_ok(wordcount(&input, &out).arg("--config").arg(&file));
    let config = job_config(&out);
    assert_eq!((config["workers"].as_u64(), config["reduce_tasks"].as_u64()), (Some(1), Some(3)), "{config}");
    assert!(config["map_tasks"].as_u64().unwrap() > 1, "{config}");
    assert_eq!(parts(&out).len(), 3);

    let out = dir.path("env");
    run_ok(wordcount(&input, &out).arg("--config").arg(&file).env("MR_REDUCE_TASKS", "2"));
    assert_eq!(parts(&out).len(), 2);
    assert_eq!(job_config(&out)["workers"], 1);
}

#[test]
fn a_worker_takes_its_coordinator_from_flag_environment_or_file() {
    let dir = Dir::new();
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let file = dir.write(
        "mr.toml",
        format!("[worker]\ncoordinator = \"http://127.0.0.1:{file_port}\"\nconnect_timeout = \"200ms\"\n"),
    );
    let worker = || {
        let mut cmd = mr();
        cmd.args(["worker", "--config"]).arg(&file);
        cmd
    };
    let unreachable = |port: u16| format!("cannot reach the coordinator at http://127.0.0.1:{port}");
    let err = run_fail(&mut worker());
    assert!(err.contains(&unreachable(file_port)), "{err}");
    let env_url = format!("http://127.0.0.1:{env_port}");
    let err = run_fail(worker().env("MR_COORDINATOR", &env_url));
    assert!(err.contains(&unreachable(env_port)), "{err}");
    let flag_url = format!("http://127.0.0.1:{flag_port}");
    let err = run_fail(worker().env("MR_COORDINATOR", &env_url).args(["--coordinator", &flag_url]));
    assert!(err.contains(&unreachable(flag_port)), "{err}");

    let err = run_fail(mr().arg("worker"));
    assert!(err.contains("--coordinator URL, MR_COORDINATOR, or coordinator in the [worker] table"), "{err}");
}

#[test]
fn file_errors_name_the_key_and_the_file() {
    let dir = Dir::new();
    let input = small_input(&dir);
    for (name, text, expected) in [
        (
            "unknown.toml",
            "workers = 2\n[faults.map]\nfailur = 0.5\n",
            ", line 3: faults.map.failur: unknown field `failur`",
        ),
        (
            "type.toml",
            "[faults.map]\nfailure = \"high\"\n",
            ", line 2: faults.map.failure: invalid type: string \"high\"",
        ),
        (
            "size.toml",
            "sort_buffer = \"lots\"\n",
            ", line 1: sort_buffer = \"lots\": invalid value 'lots' for '--sort-buffer <BYTES>': invalid size 'lots'",
        ),
        ("value.toml", "merge_fan_in = 1\n", ", line 1: merge_fan_in = 1: invalid value '1' for '--merge-fan-in <N>'"),
        (
            "key.toml",
            "workers = 2\nmax_atempts = 3\n",
            ", line 2: max_atempts: unknown key (the closest is max_attempts; mr.example.toml lists them all)",
        ),
        (
            "flag.toml",
            "\noutput = \"elsewhere\"\n",
            ", line 2: output: --output is a flag only, not a key of the config file",
        ),
        (
            "probability.toml",
            "[faults.reduce]\nfailure = 2.0\n",
            ", line 2: faults.reduce.failure = 2: must be a probability",
        ),
    ] {
        let file = dir.write(name, text);
        let out = dir.path(&format!("out-{name}"));
        let err = run_fail(wordcount(&input, &out).arg("--config").arg(&file));
        let expected = format!("invalid configuration: {}{expected}", file.display());
        assert!(err.contains(&expected), "expected {expected:?} in\n{err}");
        assert!(!out.exists(), "no output for a bad configuration");
    }
    let missing = dir.path("missing.toml");
    let err = run_fail(wordcount(&input, &dir.path("missing")).env("MR_CONFIG", &missing));
    assert!(err.contains(&format!("cannot read the config file {}", missing.display())), "{err}");
}

#[test]
fn a_bad_environment_value_names_its_variable() {
    let dir = Dir::new();
    let input = small_input(&dir);
    for (var, value, flag) in [
        ("MR_MAX_ATTEMPTS", "many", "--max-attempts"),
        ("MR_SORT_BUFFER", "lots", "--sort-buffer"),
        ("MR_WORKERS", "0", "--workers"),
        ("MR_SPECULATIVE", "maybe", "--speculative"),
        ("MR_INJECT_FAILURE", "1.5", "--inject-failure"),
    ] {
        let mut cmd = wordcount(&input, &dir.path("out"));
        let output = cmd.env(var, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{}", describe(&cmd, &output));
        assert!(stderr.contains(&format!("invalid value '{value}' for '{flag}")), "{stderr}");
        assert!(stderr.contains(&format!("the value comes from the environment variable {var}")), "{stderr}");
    }
    // The same bad value on the command line is the flag's alone.
    let mut cmd = wordcount(&input, &dir.path("out"));
    let output = cmd.args(["--max-attempts", "many"]).env("MR_MAX_ATTEMPTS", "many").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("environment variable"), "{}", describe(&cmd, &output));
}

#[test]
fn help_shows_the_environment_variables() {
    let help = run_ok(mr().args(["run", "--help"]));
    for var in ["MR_SORT_BUFFER", "MR_WORKERS", "MR_SPECULATIVE", "MR_CONFIG", "MR_LOG_FORMAT", "MR_INJECT_SEED"] {
        assert!(help.contains(&format!("[env: {var}=")), "{var} missing from\n{help}");
    }
    let help = run_ok(mr().args(["worker", "--help"]));
    for var in ["MR_COORDINATOR", "MR_CONNECT_TIMEOUT", "MR_LOST_TIMEOUT", "MR_CONFIG"] {
        assert!(help.contains(&format!("[env: {var}=")), "{var} missing from\n{help}");
    }
}

/// A value out of range in the config file is an error that names the file, the line and the
/// key, as a wrong type is.
#[test]
fn a_range_error_in_the_file_names_its_line() {
    let dir = Dir::new();
    let input = small_input(&dir);
    let file = dir.write("mr.toml", "# settings\nworkers = 2\n\nmerge_fan_in = 1\n[faults.map]\nfailure = 2.5\n");
    let err = run_fail(wordcount(&input, &dir.path("out")).arg("--config").arg(&file));
    assert!(
        err.contains("mr.toml, line 4: merge_fan_in = 1: invalid value '1' for '--merge-fan-in <N>': 1 is not in 2.."),
        "{err}"
    );
    std::fs::write(&file, "[faults.map]\nstraggler = 0.5\nfailure = 2.5\n").unwrap();
    let err = run_fail(wordcount(&input, &dir.path("out")).arg("--config").arg(&file));
    assert!(err.contains("mr.toml, line 3: faults.map.failure = 2.5: must be a probability"), "{err}");
    assert!(!dir.path("out").exists());
}
