//! `mr bench`: measures `mr run wordcount` against baselines on a generated corpus, all in one
//! run on one machine, and reports wall time, CPU time and peak RSS, each as a ratio to a
//! tight hand-written word count with 2 threads.
//!
//! Every measured command runs under `mr bench-exec`, a small process that starts it, waits,
//! and reports the resource usage of the command and all its descendants (so the peak RSS of
//! `mr run` covers its worker processes, and is the largest of them).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Resources one command used.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Usage {
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// User plus system CPU seconds of the command and its descendants.
    pub cpu_s: f64,
    /// Largest resident set of the command or any descendant, in MiB.
    pub peak_rss_mib: f64,
}

/// Runs `argv`, waits, and returns its usage (the body of `mr bench-exec`). Its stdout is
/// discarded; its stderr is kept.
pub fn exec(argv: &[String]) -> Result<Usage> {
    let (program, args) = argv.split_first().ok_or_else(|| Error::Job("bench-exec: no command".into()))?;
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| Error::Job(format!("bench-exec: cannot run {program}: {e}")))?;
    let wall_s = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(Error::Job(format!("bench-exec: {argv:?} failed ({status})")));
    }
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_err(|e| Error::Job(format!("getrusage: {e}")))?;
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(Usage {
        wall_s,
        cpu_s: secs(usage.user_time()) + secs(usage.system_time()),
        // Linux reports ru_maxrss in KiB.
        peak_rss_mib: usage.max_rss() as f64 / 1024.0,
    })
}

/// A tight single-process word count with `threads` threads (the body of
/// `mr bench-wordcount`): the baseline. Same word definition as the `wordcount` job; output
/// `word<TAB>count` lines in byte order.
pub fn hand_written_wordcount(inputs: &[PathBuf], threads: usize, output: &Path) -> Result<()> {
    let files = crate::input::discover(inputs)?;
    // Cut the input into one chunk of lines per thread and file part, by byte ranges.
    let splits = {
        let total: u64 = files.iter().map(|f| f.len).sum();
        let size = (total / (threads as u64 * 4)).max(1 << 20);
        crate::input::plan_splits(&files, size, crate::input::InputFormat::Text)?
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let counts: Vec<Result<HashMap<String, u64, foldhash::fast::RandomState>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut counts: HashMap<String, u64, foldhash::fast::RandomState> = HashMap::default();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(split) = splits.get(i) else { return Ok(counts) };
                        // The baseline reads whatever lines the corpus has.
                        let mut reader =
                            crate::input::RecordReader::open(split, crate::input::InputFormat::Text, u64::MAX)?;
                        while let Some(line) = reader.next_record()? {
                            crate::job::for_each_word(line.text, |w| match counts.get_mut(w) {
                                Some(c) => *c += 1,
                                None => {
                                    counts.insert(w.to_string(), 1);
                                }
                            });
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Job("a thread panicked".into())))).collect()
    });
    let mut total: HashMap<String, u64, foldhash::fast::RandomState> = HashMap::default();
    for c in counts {
        for (word, n) in c? {
            *total.entry(word).or_default() += n;
        }
    }
    let mut words: Vec<(String, u64)> = total.into_iter().collect();
    words.sort_unstable();
    let file = std::fs::File::create(output).map_err(Error::io("cannot create", output))?;
    let mut out = std::io::BufWriter::new(file);
    for (word, n) in words {
        writeln!(out, "{word}\t{n}").map_err(Error::io("cannot write", output))?;
    }
    out.flush().map_err(Error::io("cannot write", output))
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What ran.
    pub name: String,
    /// What it used.
    pub usage: Usage,
    /// Wall time divided by the baseline's.
    pub wall_ratio: f64,
}

/// Settings of `mr bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Corpus size in bytes.
    pub size: u64,
    /// Where the corpus and outputs go (a temporary directory when absent).
    pub dir: Option<PathBuf>,
    /// Sort buffer of the `mr run` variants.
    pub sort_buffer: u64,
    /// Strings of the word-search workload.
    pub word_search_strings: u64,
    /// Skip the coreutils pipeline (slow on large corpora).
    pub no_pipeline: bool,
}

/// Runs the benchmark and returns its rows, baseline first.
pub fn run(options: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>> {
    let exe = std::env::current_exe().map_err(|e| Error::Job(format!("cannot find this executable: {e}")))?;
    let tmp;
    let dir = match &options.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("mr-bench-").tempdir().map_err(Error::io("cannot create", "/tmp"))?;
            tmp.path().to_path_buf()
        }
    };
    let corpus = dir.join("corpus");
    if !corpus.is_dir() {
        progress(&format!("generating {} of text", bytesize::ByteSize::b(options.size).display().iec()));
        crate::datagen::text(&corpus, options.size, 8, 1)?;
    }
    let out = |name: &str| {
        let p = dir.join(name);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        p
    };
    let exe_s = exe.to_string_lossy().into_owned();
    let corpus_s = corpus.to_string_lossy().into_owned();
    let sort_buffer = options.sort_buffer.to_string();
    let mr_run = |workers: &str, output: &Path| -> Vec<String> {
        let mut v: Vec<String> =
            [&exe_s, "run", "wordcount", "--input", &corpus_s, "--quiet", "--sort-buffer", &sort_buffer]
                .map(String::from)
                .to_vec();
        v.push("--output".into());
        v.push(output.to_string_lossy().into_owned());
        match workers {
            "local" => v.push("--local".into()),
            w => v.extend(["--workers".into(), w.into(), "--reduce-tasks".into(), "2".into()]),
        }
        v
    };
    let hand = |threads: &str, output: &Path| -> Vec<String> {
        [&exe_s, "bench-wordcount", "--threads", threads, "--input", &corpus_s, "--output", &output.to_string_lossy()]
            .map(String::from)
            .to_vec()
    };
    let pipeline = format!(
        "cat {}/* | tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | LC_ALL=C sort | uniq -c > {}",
        corpus_s,
        out("pipeline.txt").display()
    );
    let ws = dir.join("word-search");
    let ws_strings = ws.join("strings.txt").to_string_lossy().into_owned();
    let ws_targets = ws.join("targets.txt").to_string_lossy().into_owned();
    crate::datagen::word_search(
        &ws,
        &crate::datagen::WordSearchSpec {
            strings: options.word_search_strings,
            max_len: 15,
            targets: 100,
            target_len: 3,
            seed: 1,
        },
    )?;
    let ws_out = out("word-search-out");
    let word_search: Vec<String> = [
        &exe_s,
        "run",
        "word-search",
        "--input",
        &ws_strings,
        "--targets",
        &ws_targets,
        "--quiet",
        "--output",
        &ws_out.to_string_lossy(),
    ]
    .map(String::from)
    .to_vec();

    let (hand2, hand1) = (out("hand-2.txt"), out("hand-1.txt"));
    let (mr2, mr1, local) = (out("mr-2"), out("mr-1"), out("mr-local"));
    let variants: Vec<(String, Vec<String>)> = vec![
        ("hand-written Rust, 2 threads (baseline)".into(), hand("2", &hand2)),
        ("hand-written Rust, 1 thread".into(), hand("1", &hand1)),
        ("mr run wordcount --workers 2".into(), mr_run("2", &mr2)),
        ("mr run wordcount --workers 1".into(), mr_run("1", &mr1)),
        ("mr run wordcount --local".into(), mr_run("local", &local)),
        ("tr \\| sort \\| uniq -c".into(), vec!["sh".into(), "-c".into(), pipeline]),
        (format!("mr run word-search ({} strings, 100 targets)", options.word_search_strings), word_search),
    ];
    let mut rows: Vec<Row> = Vec::new();
    for (name, argv) in variants {
        if options.no_pipeline && name.starts_with("tr ") {
            continue;
        }
        progress(&format!("running {name}"));
        let mut cmd = Command::new(&exe);
        cmd.arg("bench-exec").arg("--").args(&argv).stdout(Stdio::piped());
        let output = cmd.output().map_err(|e| Error::Job(format!("cannot run bench-exec: {e}")))?;
        if !output.status.success() {
            return Err(Error::Job(format!("benchmark '{name}' failed: {}", String::from_utf8_lossy(&output.stderr))));
        }
        let usage: Usage = serde_json::from_slice(&output.stdout)
            .map_err(|e| Error::Job(format!("bench-exec printed no usage for '{name}': {e}")))?;
        let baseline = rows.first().map_or(usage.wall_s, |r| r.usage.wall_s);
        rows.push(Row { name, usage, wall_ratio: usage.wall_s / baseline });
    }
    // The engine's answers must be the baseline's.
    let expected = std::fs::read(&hand2).map_err(Error::io("cannot read", &hand2))?;
    for dir in [&mr2, &mr1, &local] {
        if concat_sorted(dir)? != expected {
            return Err(Error::Job(format!("benchmark: the output in {} differs from the baseline's", dir.display())));
        }
    }
    Ok(rows)
}

/// The part files' lines, sorted.
fn concat_sorted(dir: &Path) -> Result<Vec<u8>> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("cannot list", dir))? {
        let path = entry.map_err(Error::io("cannot list", dir))?.path();
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("part-")) {
            let file = std::fs::File::open(&path).map_err(Error::io("cannot read", &path))?;
            for line in BufReader::new(file).split(b'\n') {
                lines.push(line.map_err(Error::io("cannot read", &path))?);
            }
        }
    }
    lines.sort();
    Ok(lines
        .into_iter()
        .flat_map(|mut l| {
            l.push(b'\n');
            l
        })
        .collect())
}

/// Renders the rows as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| command | wall (s) | CPU (s) | peak RSS (MiB) | wall / baseline |\n|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.2} |\n",
            r.name, r.usage.wall_s, r.usage.cpu_s, r.usage.peak_rss_mib, r.wall_ratio
        ));
    }
    s
}
