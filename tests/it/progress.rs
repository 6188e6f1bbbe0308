//! The progress display on a terminal: `mr run` under a pseudo-terminal (`script`, from
//! util-linux), its frames read back as text.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::harness::*;

/// The terminal's output with escape sequences, carriage returns and newlines turned into
/// line breaks, and each line cut into the terminal's 100-column rows.
pub(crate) fn frames(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw);
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n").unwrap();
    let mut rows = Vec::new();
    for line in escapes.split(&text) {
        let chars: Vec<char> = line.chars().collect();
        for row in chars.chunks(100) {
            let row: String = row.iter().collect::<String>().trim_end().to_string();
            if !row.is_empty() {
                rows.push(row);
            }
        }
    }
    rows
}

#[test]
fn the_progress_display_shows_elapsed_time_merged_bytes_and_an_eta_only_with_a_rate() {
    if !crate::harness::script_exists() {
        return;
    }
    let dir = Dir::new();
    let (go, mapper) = crate::harness::gated_job_input(&dir);
    let command = format!(
        "stty cols 100 rows 40; exec '{}' run streaming --mapper \"$MAPPER\" --reducer sort --input '{}' \
         --output '{}' --workers 2 --reduce-tasks 2 --split-size 32KiB",
        env!("CARGO_BIN_EXE_mr"),
        dir.path("in").display(),
        dir.path("out").display()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &command, "/dev/null"]).env("MAPPER", &mapper).env_remove("RUST_LOG");
    for var in outer_mr_vars() {
        cmd.env_remove(var);
    }
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                seen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    // Every mapper waits for `go`: no byte of input is committed yet.
    wait_for(60, "a frame of both bars", || {
        frames(&seen.lock().unwrap()).iter().any(|r| r.starts_with("reduce waiting for map outputs, 0/2 tasks"))
    });
    let early = frames(&seen.lock().unwrap());
    let map = early.iter().rev().find(|r| r.starts_with("map ")).unwrap().clone();
    assert!(map.contains("0 B/") && map.contains(" 0/6 tasks") && map.contains(" in "), "{map}");
    assert!(early.iter().all(|r| !r.contains("ETA")), "an ETA before there is a rate: {early:#?}");
    std::fs::write(&go, "").unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let rows = frames(&seen.lock().unwrap());
    assert!(status.success(), "{rows:#?}");
    let last = |prefix: &str| rows.iter().rev().find(|r| r.starts_with(prefix)).unwrap().clone();
    let (map, reduce) = (last("map "), last("reduce "));
    assert!(map.contains(" 6/6 tasks") && map.contains("ETA") && map.contains(" in "), "{map}");
    // Reduce progress is in bytes merged, all of them by the end.
    let merged = regex::Regex::new(r"^reduce \[=+\] ([0-9.]+ [KM]?i?B)/([0-9.]+ [KM]?i?B) 2/2 tasks .* in ").unwrap();
    let caps = merged.captures(&reduce).unwrap_or_else(|| panic!("{reduce}"));
    assert_eq!(&caps[1], &caps[2], "{reduce}");
    assert!(caps[2] != *"0 B", "{reduce}");
    // The summary fits in 100 columns (but the output's path).
    let raw = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    let start = raw.rfind("job streaming (distributed) succeeded").unwrap();
    let lines: Vec<&str> = raw[start..].lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(lines.iter().any(|l| l.starts_with("  reduce: 2 tasks")), "{lines:#?}");
    for line in lines.iter().filter(|l| !l.starts_with("  output: ")) {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
}
