//! The csv and jsonl input formats on files where the rules differ (a byte-order mark, CRLF,
//! quoted newlines and quotes, splits far smaller than a record), distributed and `--local`,
//! against Python's csv and json modules (`tests/reference/formats.py`).

use std::path::Path;

use crate::harness::*;

/// Runs `mr run sort` over `input` in `format`, distributed (with `--split-size 64`, which would
/// cut through records) and local; checks that both give the reference's records, sorted.
fn sorted_records(dir: &Dir, format: &str, input: &Path, files: &[&Path]) {
    let (dist, local) = (dir.path(&format!("{format}-dist")), dir.path(&format!("{format}-local")));
    for (out, mode) in [(&dist, &["--workers", "2"][..]), (&local, &["--local"][..])] {
        let mut cmd = mr();
        cmd.args(["run", "sort", "--input-format", format, "--split-size", "64", "--reduce-tasks", "3", "--quiet"])
            .args(mode)
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(out);
        run_ok(&mut cmd);
    }
    assert_same_output(&dist, &local);
    let got: Vec<u8> = parts(&dist).into_iter().flat_map(|(_, bytes)| bytes).collect();
    let mut args: Vec<&Path> = vec![Path::new(format)];
    args.extend(files);
    let expected = reference("formats.py", &args);
    assert!(expected.len() > 200, "the reference read almost nothing");
    assert!(
        got == expected,
        "{format} differs from Python's:\n--- mr\n{}--- python\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
}

#[test]
fn csv_records_match_python_s_csv_module_across_tiny_splits() {
    let dir = Dir::new();
    let mut tricky = String::from("\u{feff}id,name,notes\r\n");
    for i in 0..40 {
        let row = match i % 5 {
            0 => format!("{i},plain,\"a, b and c\"\r\n"),
            1 => format!("{i},\"two\nlines\",\"crlf\r\ninside\"\r\n"),
            2 => format!("{i},\"say \"\"hi\"\"\",Straße über ٣\n"),
            3 => format!("{i},,\"\"\r\n"),
            _ => format!("{i},tab\there,\"lone \r cr\",extra field\n"),
        };
        tricky.push_str(&row);
    }
    let a = dir.write("in/a.csv", tricky);
    let b = dir.write("in/b.csv", "x,\"last, no newline\nat the end\"");
    sorted_records(&dir, "csv", &dir.path("in"), &[&a, &b]);
}

#[test]
fn jsonl_records_match_python_s_json_module_and_a_bad_line_is_named() {
    let dir = Dir::new();
    let mut lines = String::from("\u{feff}{\"id\":0,\"text\":\"bom before me\"}\r\n");
    for i in 1..60 {
        let line = match i % 4 {
            0 => format!("{{\"id\":{i},\"text\":\"crlf line\\r\\n escaped\"}}\r\n"),
            1 => format!("[{i}, \"Straße\", {{\"nested\": [1, 2.5, null, true]}}]\n"),
            2 => format!("\"just a string {i}, with ٣ and \\u00e9\"\n"),
            _ => format!("{i}\n"),
        };
        lines.push_str(&line);
    }
    lines.push_str("{\"last\":\"no newline\"}");
    let input = dir.write("in/a.jsonl", lines);
    sorted_records(&dir, "jsonl", &dir.path("in"), &[&input]);

    let bad = dir.write("bad/b.jsonl", "{\"ok\":1}\n[2]\n{\"unclosed\":\n4\n");
    for mode in ["--workers=2", "--local"] {
        let mut cmd = mr();
        cmd.args(["run", "sort", "--input-format", "jsonl", "--max-attempts", "1", mode, "--input"])
            .arg(&bad)
            .arg("--output")
            .arg(dir.path("bad-out"));
        let err = run_fail(&mut cmd);
        assert!(err.contains(&format!("bad jsonl record in '{}' at line 3", bad.display())), "{err}");
        assert!(!dir.path("bad-out").exists());
    }
}
