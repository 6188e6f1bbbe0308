//! `mr bench`: measures `mr run wordcount` against baselines on a generated or given corpus, all
//! in one run on one machine, alternating, and reports the medians of wall time, CPU time and
//! peak RSS, as ratios to an independent Unicode-correct word count with 2 threads and, when it
//! runs, to an ASCII-only count.
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

/// Bytes a baseline thread reads at a time: a segment of a file, extended to the next
/// newline.
const SEGMENT: u64 = 16 << 20;

type Counts = HashMap<Box<str>, u64, foldhash::fast::RandomState>;

/// The baseline of `mr bench` (the body of `mr bench-wordcount`): a single-process word count
/// with `threads` threads that shares no code with the engine. Same word rule as `wordcount`
/// (maximal runs of `char::is_alphabetic`, lowercased as `str::to_lowercase` does); output
/// `word<TAB>count` lines in byte order.
///
/// Files (regular files under `inputs`, walked in path order, names starting with `.` or `_`
/// skipped) are cut into 16 MiB segments aligned on newlines; each thread takes the next
/// segment, reads it with one read, checks it is UTF-8, and counts its words in its own hash
/// map (an ASCII fast path; a word already counted is found without allocating). The maps
/// are merged at the end.
pub fn hand_written_wordcount(inputs: &[PathBuf], threads: usize, output: &Path) -> Result<()> {
    let mut files = Vec::new();
    for input in inputs {
        baseline_walk(input, &mut files)?;
    }
    let mut segments = Vec::new();
    for (i, (_, len)) in files.iter().enumerate() {
        let mut start = 0;
        while start < *len {
            segments.push((i, start, (start + SEGMENT).min(*len)));
            start += SEGMENT;
        }
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let counts: Vec<Result<Counts>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut counts = Counts::default();
                    let mut buf = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(file, start, end)) = segments.get(i) else { return Ok(counts) };
                        let path = &files[file].0;
                        let text = read_segment(path, start, end, &mut buf)?;
                        count_words(text, &mut counts);
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(Error::Job("a thread panicked".into())))).collect()
    });
    let mut counts = counts.into_iter();
    let mut total = counts.next().transpose()?.unwrap_or_default();
    for c in counts {
        for (word, n) in c? {
            *total.entry(word).or_default() += n;
        }
    }
    let mut words: Vec<(Box<str>, u64)> = total.into_iter().collect();
    words.sort_unstable();
    let file = std::fs::File::create(output).map_err(Error::io("cannot create", output))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for (word, n) in words {
        writeln!(out, "{word}\t{n}").map_err(Error::io("cannot write", output))?;
    }
    out.flush().map_err(Error::io("cannot write", output))
}

/// The baseline's input files: regular files in path order, `.` and `_` names skipped.
fn baseline_walk(path: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(Error::io("cannot read", path))?;
    if meta.is_file() {
        files.push((path.to_path_buf(), meta.len()));
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(Error::io("cannot list", path))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io("cannot list", path))?;
    entries.sort();
    for entry in entries {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !name.starts_with('.') && !name.starts_with('_') {
            baseline_walk(&entry, files)?;
        }
    }
    Ok(())
}

/// Reads the lines that start in `[start, end)` of a file (the first partial line belongs to
/// the previous segment; the last line is read to its end) into `buf`, as text.
fn read_segment<'b>(path: &Path, start: u64, end: u64, buf: &'b mut Vec<u8>) -> Result<&'b str> {
    use std::io::{Read, Seek, SeekFrom};
    let io = || Error::io("cannot read", path);
    let mut file = std::fs::File::open(path).map_err(io())?;
    let from = start.saturating_sub(1);
    file.seek(SeekFrom::Start(from)).map_err(io())?;
    buf.clear();
    (&mut file).take(end - from).read_to_end(buf).map_err(io())?;
    // Past the end: the rest of the last line.
    if buf.last() != Some(&b'\n') {
        let mut rest = std::io::BufReader::with_capacity(64 << 10, file);
        std::io::BufRead::read_until(&mut rest, b'\n', buf).map_err(io())?;
    }
    let skip = if start == 0 { 0 } else { memchr::memchr(b'\n', buf).map_or(buf.len(), |i| i + 1) };
    std::str::from_utf8(&buf[skip..]).map_err(|e| {
        Error::Job(format!("{}: not UTF-8 near byte {}", path.display(), from + (skip + e.valid_up_to()) as u64))
    })
}

/// Counts the words of `text` into `counts`.
fn count_words(text: &str, counts: &mut Counts) {
    let bytes = text.as_bytes();
    let mut lower = [0u8; 128];
    let mut i = 0;
    let add = |word: &str, counts: &mut Counts| match counts.get_mut(word) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.into(), 1);
        }
    };
    while i < bytes.len() {
        let b = bytes[i];
        let alphabetic = |i: usize| -> (bool, usize) {
            let b = bytes[i];
            if b.is_ascii() {
                (b.is_ascii_alphabetic(), 1)
            } else {
                let c = text[i..].chars().next().unwrap_or(' ');
                (c.is_alphabetic(), c.len_utf8())
            }
        };
        if b.is_ascii() && !b.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let (yes, len) = alphabetic(i);
        if !yes {
            i += len;
            continue;
        }
        let start = i;
        let mut ascii = true;
        while i < bytes.len() {
            let b = bytes[i];
            if b.is_ascii_alphabetic() {
                i += 1;
            } else if b.is_ascii() {
                break;
            } else {
                let (yes, len) = alphabetic(i);
                if !yes {
                    break;
                }
                ascii = false;
                i += len;
            }
        }
        let word = &text[start..i];
        if ascii && word.len() <= lower.len() {
            let lower = &mut lower[..word.len()];
            for (l, b) in lower.iter_mut().zip(word.bytes()) {
                *l = b.to_ascii_lowercase();
            }
            add(std::str::from_utf8(lower).unwrap_or_default(), counts);
        } else if word.len() * 3 <= lower.len() && !word.contains('\u{3a3}') {
            // Each character lowercases on its own (a capital sigma does not: it takes
            // `str::to_lowercase`), to at most three times its UTF-8 length.
            let mut len = 0;
            for c in word.chars().flat_map(char::to_lowercase) {
                len += c.encode_utf8(&mut lower[len..]).len();
            }
            add(std::str::from_utf8(&lower[..len]).unwrap_or_default(), counts);
        } else {
            add(&word.to_lowercase(), counts);
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What ran.
    pub name: String,
    /// What it used: the median run's wall time, and the medians of CPU time and peak RSS.
    pub usage: Usage,
    /// Every run's usage, in the order they ran.
    pub runs: Vec<Usage>,
    /// Median wall time divided by the Unicode-correct 2-thread baseline's.
    pub wall_ratio: f64,
    /// Median wall time divided by the ASCII-only 2-thread count's, when it ran.
    pub wall_ratio_ascii: Option<f64>,
    /// Median CPU time divided by the ASCII-only 2-thread count's, when it ran.
    pub cpu_ratio_ascii: Option<f64>,
}

/// Settings of `mr bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Corpus size in bytes (of the generated corpus).
    pub size: u64,
    /// A corpus to use instead of generating one (e.g. real text).
    pub corpus: Option<PathBuf>,
    /// Where the corpus and outputs go (a temporary directory when absent).
    pub dir: Option<PathBuf>,
    /// Sort buffer of the `mr run` variants.
    pub sort_buffer: u64,
    /// Strings of the word-search workload.
    pub word_search_strings: u64,
    /// Skip the coreutils pipeline (slow on large corpora).
    pub no_pipeline: bool,
    /// The ASCII-only word count (`wc_rust DIR --threads N`), run only on an ASCII corpus.
    pub ascii_count: Option<PathBuf>,
    /// Runs of each command, alternating (round-robin over the commands).
    pub repeat: usize,
    /// Only the word counts (no pipeline, word search or small job).
    pub wordcount_only: bool,
}

/// Whether every byte of the files under `dir` is ASCII.
fn corpus_is_ascii(dir: &Path) -> Result<bool> {
    let mut files = Vec::new();
    baseline_walk(dir, &mut files)?;
    for (path, _) in files {
        let bytes = std::fs::read(&path).map_err(Error::io("cannot read", &path))?;
        if !bytes.is_ascii() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Rewrites the generated text under `dir` in ASCII: each accented letter of the generator's
/// vocabulary becomes its base letter (`ß` becomes `ss`), any other non-ASCII character `x`.
fn fold_to_ascii(dir: &Path) -> Result<()> {
    let mut files = Vec::new();
    baseline_walk(dir, &mut files)?;
    for (path, _) in files {
        let text = std::fs::read_to_string(&path).map_err(Error::io("cannot read", &path))?;
        let mut ascii = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                _ if c.is_ascii() => ascii.push(c),
                'é' | 'É' => ascii.push('e'),
                'ï' => ascii.push('i'),
                'ç' => ascii.push('c'),
                'ü' | 'Ü' => ascii.push('u'),
                'ñ' => ascii.push('n'),
                'å' | 'Å' => ascii.push('a'),
                'ö' => ascii.push('o'),
                'ß' => ascii.push_str("ss"),
                _ => ascii.push('x'),
            }
        }
        std::fs::write(&path, ascii).map_err(Error::io("cannot write", &path))?;
    }
    Ok(())
}

/// The median of some numbers.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A benchmark variant: its name, and the command line that `bench-exec` measures.
type Variant = (String, Vec<String>);

/// The files the variants write, which must hold the baseline's answer.
struct Outputs {
    /// The baseline's, with 2 threads and with 1.
    baselines: [PathBuf; 2],
    /// The output directories of `mr run wordcount`.
    jobs: Vec<PathBuf>,
    /// The ASCII-only count's files.
    ascii: Vec<PathBuf>,
}

/// The command lines of a benchmark: this executable, the corpus and the directory the
/// variants write into.
struct Commands {
    exe: String,
    corpus: String,
    sort_buffer: String,
    dir: PathBuf,
}

impl Commands {
    /// A path in the benchmark's directory, with what a previous run left there removed.
    fn out(&self, name: &str) -> PathBuf {
        let p = self.dir.join(name);
        let _ = std::fs::remove_dir_all(&p);
        let _ = std::fs::remove_file(&p);
        p
    }

    /// `mr run wordcount` with `workers` worker processes (or `local`).
    fn mr_run(&self, workers: &str, input: &str, output: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            [&self.exe, "run", "wordcount", "--input", input, "--quiet", "--sort-buffer", &self.sort_buffer]
                .map(String::from)
                .to_vec();
        v.push("--output".into());
        v.push(output.to_string_lossy().into_owned());
        match workers {
            "local" => v.push("--local".into()),
            w => v.extend(["--workers".into(), w.into(), "--reduce-tasks".into(), "2".into()]),
        }
        v
    }

    /// The hand-written baseline with `threads` threads.
    fn hand(&self, threads: &str, output: &Path) -> Vec<String> {
        let output = output.to_string_lossy();
        [&self.exe, "bench-wordcount", "--threads", threads, "--input", &self.corpus, "--output", &output]
            .map(String::from)
            .to_vec()
    }
}

/// Runs the benchmark and returns its rows, the Unicode-correct 2-thread baseline first.
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
    std::fs::create_dir_all(&dir).map_err(Error::io("cannot create", &dir))?;
    let corpus = corpus(options, &dir, progress)?;
    let commands = Commands {
        exe: exe.to_string_lossy().into_owned(),
        corpus: corpus.to_string_lossy().into_owned(),
        sort_buffer: options.sort_buffer.to_string(),
        dir,
    };
    let (mut variants, outputs) = wordcount_variants(&commands, options, &corpus, progress)?;
    if !options.wordcount_only {
        variants.extend(other_variants(&commands, options)?);
    }
    let runs = measure(&exe, &variants, options.repeat.max(1), progress)?;
    check_outputs(&outputs)?;
    Ok(rows(variants, runs))
}

/// The corpus to count: `--corpus`, or text generated into `dir` (kept for the next run).
fn corpus(options: &BenchOptions, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<PathBuf> {
    if let Some(c) = &options.corpus {
        return Ok(c.clone());
    }
    // With the ASCII-only count, the corpus is ASCII, so that both word rules agree.
    let ascii = options.ascii_count.is_some();
    let corpus = dir.join(if ascii { "corpus-ascii" } else { "corpus" });
    if !corpus.is_dir() {
        progress(&format!("generating {} of text", bytesize::ByteSize::b(options.size).display().iec()));
        crate::tools::datagen::text(&corpus, options.size, 8, 1)?;
        if ascii {
            fold_to_ascii(&corpus)?;
        }
    }
    Ok(corpus)
}

/// The word counts: the baselines, the ASCII-only count if asked for (and the corpus is
/// ASCII), and `mr run wordcount`; with the files they write.
fn wordcount_variants(
    commands: &Commands,
    options: &BenchOptions,
    corpus: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(Vec<Variant>, Outputs)> {
    let out = |name: &str| commands.out(name);
    let (hand2, hand1) = (out("baseline-2.txt"), out("baseline-1.txt"));
    let (mr2, mr1, local) = (out("mr-2"), out("mr-1"), out("mr-local"));
    let mut variants: Vec<Variant> = vec![
        ("Unicode-correct count, 2 threads (baseline)".into(), commands.hand("2", &hand2)),
        ("Unicode-correct count, 1 thread".into(), commands.hand("1", &hand1)),
    ];
    let mut ascii_outputs = Vec::new();
    if let Some(ascii) = &options.ascii_count {
        if corpus_is_ascii(corpus)? {
            for threads in ["2", "1"] {
                let output = out(&format!("ascii-{threads}.txt"));
                let command =
                    format!("'{}' '{}' --threads {threads} > '{}'", ascii.display(), commands.corpus, output.display());
                let name =
                    format!("ASCII-only count (wc_rust), {threads} thread{}", if threads == "1" { "" } else { "s" });
                variants.push((name, vec!["sh".into(), "-c".into(), command]));
                ascii_outputs.push(output);
            }
        } else {
            progress("the corpus is not ASCII: the ASCII-only count does not run (its word rule differs)");
        }
    }
    let corpus = &commands.corpus;
    variants.extend([
        ("mr run wordcount --workers 2".to_string(), commands.mr_run("2", corpus, &mr2)),
        ("mr run wordcount --workers 1".to_string(), commands.mr_run("1", corpus, &mr1)),
        ("mr run wordcount --local".to_string(), commands.mr_run("local", corpus, &local)),
    ]);
    Ok((variants, Outputs { baselines: [hand2, hand1], jobs: vec![mr2, mr1, local], ascii: ascii_outputs }))
}

/// The variants besides word count: the shell pipeline, word search, and a tiny job.
fn other_variants(commands: &Commands, options: &BenchOptions) -> Result<Vec<Variant>> {
    let mut variants = Vec::new();
    let dir = &commands.dir;
    if !options.no_pipeline {
        let pipeline = format!(
            "cat {}/* | tr -cs 'A-Za-z' '\\n' | tr 'A-Z' 'a-z' | LC_ALL=C sort | uniq -c > {}",
            commands.corpus,
            commands.out("pipeline.txt").display()
        );
        variants.push(("tr \\| sort \\| uniq -c".into(), vec!["sh".into(), "-c".into(), pipeline]));
    }
    let ws = dir.join("word-search");
    let ws_strings = ws.join("strings.txt").to_string_lossy().into_owned();
    let ws_targets = ws.join("targets.txt").to_string_lossy().into_owned();
    crate::tools::datagen::word_search(
        &ws,
        &crate::tools::datagen::WordSearchSpec {
            strings: options.word_search_strings,
            max_len: 15,
            targets: 100,
            target_len: 3,
            seed: 1,
        },
    )?;
    let ws_out = commands.out("word-search-out");
    let word_search: Vec<String> = [
        &commands.exe,
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
    variants.push((format!("mr run word-search ({} strings, 100 targets)", options.word_search_strings), word_search));
    let small = dir.join("small.txt");
    std::fs::write(&small, "the quick brown fox jumps over the lazy dog\n".repeat(23))
        .map_err(Error::io("cannot write", &small))?;
    let small_out = commands.out("small-out");
    variants.push((
        "mr run wordcount --workers 2 on 1 KB".into(),
        commands.mr_run("2", &small.to_string_lossy(), &small_out),
    ));
    Ok(variants)
}

/// Runs every variant `repeat` times, in rounds, each under `bench-exec`; returns each
/// variant's usages.
fn measure(exe: &Path, variants: &[Variant], repeat: usize, progress: &mut dyn FnMut(&str)) -> Result<Vec<Vec<Usage>>> {
    let mut runs: Vec<Vec<Usage>> = vec![Vec::new(); variants.len()];
    for round in 0..repeat {
        for (i, (name, argv)) in variants.iter().enumerate() {
            progress(&format!("run {}/{repeat}: {name}", round + 1));
            if argv.iter().any(|a| a == "--output") {
                // A job refuses an existing output directory.
                if let Some(o) = argv.iter().position(|a| a == "--output").and_then(|o| argv.get(o + 1)) {
                    let _ = std::fs::remove_dir_all(o);
                }
            }
            let mut cmd = Command::new(exe);
            cmd.arg("bench-exec").arg("--").args(argv).stdout(Stdio::piped());
            let output = cmd.output().map_err(|e| Error::Job(format!("cannot run bench-exec: {e}")))?;
            if !output.status.success() {
                return Err(Error::Job(format!(
                    "benchmark '{name}' failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            let usage: Usage = serde_json::from_slice(&output.stdout)
                .map_err(|e| Error::Job(format!("bench-exec printed no usage for '{name}': {e}")))?;
            runs[i].push(usage);
        }
    }
    Ok(runs)
}

/// Checks that every answer is the baseline's.
fn check_outputs(outputs: &Outputs) -> Result<()> {
    let [hand2, hand1] = &outputs.baselines;
    let expected = std::fs::read(hand2).map_err(Error::io("cannot read", hand2))?;
    if std::fs::read(hand1).map_err(Error::io("cannot read", hand1))? != expected {
        return Err(Error::Job("benchmark: the 1-thread baseline's output differs from the 2-thread one's".into()));
    }
    for dir in &outputs.jobs {
        if concat_sorted(dir)? != expected {
            return Err(Error::Job(format!("benchmark: the output in {} differs from the baseline's", dir.display())));
        }
    }
    for output in &outputs.ascii {
        // `word count` lines in byte order, as `word<TAB>count`.
        let text = std::fs::read_to_string(output).map_err(Error::io("cannot read", output))?;
        let mut lines: Vec<String> = text.lines().map(|l| l.replacen(' ', "\t", 1)).collect();
        lines.sort();
        let got: String = lines.iter().map(|l| format!("{l}\n")).collect();
        if got.as_bytes() != expected {
            return Err(Error::Job(format!(
                "benchmark: the ASCII-only count in {} differs from the baseline's",
                output.display()
            )));
        }
    }
    Ok(())
}

/// Each variant's row: the medians of its runs, and their ratios to the baselines'.
fn rows(variants: Vec<Variant>, runs: Vec<Vec<Usage>>) -> Vec<Row> {
    let summarize = |runs: &[Usage]| -> Usage {
        Usage {
            wall_s: median(runs.iter().map(|u| u.wall_s).collect()),
            cpu_s: median(runs.iter().map(|u| u.cpu_s).collect()),
            peak_rss_mib: median(runs.iter().map(|u| u.peak_rss_mib).collect()),
        }
    };
    let medians: Vec<Usage> = runs.iter().map(|r| summarize(r)).collect();
    let base = medians[0];
    let ascii = variants.iter().position(|(n, _)| n.starts_with("ASCII-only count (wc_rust), 2")).map(|i| medians[i]);
    variants
        .into_iter()
        .zip(runs)
        .zip(medians)
        .map(|(((name, _), runs), usage)| Row {
            name,
            usage,
            runs,
            wall_ratio: usage.wall_s / base.wall_s,
            wall_ratio_ascii: ascii.map(|a| usage.wall_s / a.wall_s),
            cpu_ratio_ascii: ascii.map(|a| usage.cpu_s / a.cpu_s),
        })
        .collect()
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

/// Renders the rows as a Markdown table: medians, and ratios to both baselines.
pub fn table(rows: &[Row]) -> String {
    let ascii = rows.iter().any(|r| r.wall_ratio_ascii.is_some());
    let mut s = String::from("| command | wall (s) | CPU (s) | peak RSS (MiB) | wall / Unicode baseline |");
    s.push_str(if ascii {
        " wall / ASCII count | CPU / ASCII count |\n|---|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n|---|---:|---:|---:|---:|\n"
    });
    let ratio = |r: Option<f64>| r.map_or("".to_string(), |r| format!(" {r:.2} |"));
    for r in rows {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.0} | {:.2} |{}{}\n",
            r.name,
            r.usage.wall_s,
            r.usage.cpu_s,
            r.usage.peak_rss_mib,
            r.wall_ratio,
            ratio(r.wall_ratio_ascii),
            ratio(r.cpu_ratio_ascii)
        ));
    }
    s
}
