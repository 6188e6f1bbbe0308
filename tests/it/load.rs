//! Load: a job with 10,000 map tasks on 64 worker processes, on loopback, must finish and
//! write what `--local` writes. It pins the coordinator's scaling: a scheduler that scanned
//! every task on every call, or a limit sized for a handful of workers, shows up here.

use crate::harness::*;

/// Bytes of input per map task; the input is cut to exactly `MAPS * SPLIT` bytes.
const SPLIT: u64 = 1_000;
const MAPS: u64 = 10_000;

#[test]
fn ten_thousand_map_tasks_on_64_workers_match_local() {
    let dir = Dir::new();
    let input = dir.path("in");
    run_ok(
        mr().arg("gen").arg("text").arg("--out").arg(&input).args(["--size", "11MB", "--files", "1", "--seed", "3"]),
    );
    let file = input.join("part-000.txt");
    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    assert!(f.metadata().unwrap().len() >= MAPS * SPLIT, "mr gen wrote too little");
    // A cut mid-line is fine: both modes read the same bytes.
    f.set_len(MAPS * SPLIT).unwrap();

    let run = |output: &str, extra: &[&str]| {
        let mut cmd = mr();
        cmd.args(["run", "wordcount", "--input"]).arg(&input).arg("--output").arg(dir.path(output));
        cmd.args(["--reduce-tasks", "8", "--json", "--http", "off"]).args(extra);
        run_ok(&mut cmd)
    };
    let started = std::time::Instant::now();
    let distributed =
        summary(&run("distributed", &["--workers", "64", "--oversubscribe", "--split-size", &SPLIT.to_string()]));
    let took = started.elapsed();
    assert_eq!(distributed["map"]["tasks"], MAPS, "the input must make {MAPS} map tasks");
    assert_eq!(distributed["reduce"]["tasks"], 8);
    let pids: std::collections::HashSet<_> =
        distributed["workers"].as_array().unwrap().iter().map(|w| &w["pid"]).collect();
    assert!(pids.len() >= 64, "64 worker processes ran: {}", pids.len());
    // Local mode runs its tasks one after another, each map output fsynced: with 10,000 of
    // them it takes minutes. The output does not depend on the split size, so the oracle
    // reads the same input in 1 MiB splits.
    run("local", &["--local", "--split-size", "1MiB"]);
    assert_same_output(&dir.path("distributed"), &dir.path("local"));
    eprintln!("10,000 map tasks on 64 workers: {:.1} s", took.as_secs_f64());
}
