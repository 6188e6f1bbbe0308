//! Faults and bad input not covered elsewhere: many small files.
//! Each run either matches `--local` (and a reference), or fails with a clear error, exit code
//! 1, no output, and no temporary file or process left.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;

fn wordcount(input: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = mr();
    cmd.args(["run", "wordcount", "--input"]).arg(input).arg("--output").arg(output).args(extra);
    cmd
}

/// Lists what is left under `dir`, recursively.
fn left_in(dir: &Path) -> Vec<PathBuf> {
    let mut left = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        left.push(entry.path());
        if entry.path().is_dir() {
            left.extend(left_in(&entry.path()));
        }
    }
    left
}

/// 100,000 files of one to three short lines, in 100 directories (the last holds empty files).
fn many_small_files(dir: &Dir) -> PathBuf {
    const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "Épsilon", "zeta", "eta", "theta"];
    let root = dir.path("many");
    let mut rng = Lcg(11);
    for d in 0..100 {
        let sub = root.join(format!("d{d:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..1000 {
            let mut text = String::new();
            if d < 99 {
                for _ in 0..1 + rng.below(3) {
                    for _ in 0..1 + rng.below(4) {
                        text.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
                        text.push(' ');
                    }
                    text.push_str(&format!("file{d}x{f}\n"));
                }
            }
            std::fs::write(sub.join(format!("f{f:04}.txt")), text).unwrap();
        }
    }
    root
}

#[test]
fn a_hundred_thousand_small_files_pack_into_few_map_tasks() {
    let dir = Dir::new();
    let started = Instant::now();
    let input = many_small_files(&dir);
    eprintln!("generated 100,000 files in {:?}", started.elapsed());
    let expected = reference("jobs.py", &[Path::new("wordcount"), &input]);
    let (dist, local) = (dir.path("dist"), dir.path("local"));
    let job = Background::start(
        wordcount(&input, &dist, &["--workers", "2", "--reduce-tasks", "2", "--split-size", "1MiB", "--json"]),
        &dir,
        "many-files",
    );
    let work = job.work.clone();
    let (status, stdout, stderr) = job.finish();
    assert!(status.success(), "status {status}\n{stderr}");
    eprintln!("distributed run after {:?}", started.elapsed());
    let summary = summary(&stdout);
    // About 3.6 MB in 99,000 non-empty files: packed into splits of at most 1 MiB and 4096 files.
    let maps = summary["map"]["tasks"].as_u64().unwrap();
    assert!((25..=30).contains(&maps), "{maps} map tasks for 100,000 files\n{stdout}");
    run_ok(&mut wordcount(&input, &local, &["--reduce-tasks", "2", "--split-size", "1MiB", "--local", "--quiet"]));
    eprintln!("local run after {:?}", started.elapsed());
    assert_same_output(&dist, &local);
    assert!(sorted_lines(&dist) == expected, "output differs from the reference");
    assert!(left_in(&work).is_empty(), "left behind: {:?}", left_in(&work));
}
