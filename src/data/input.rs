//! Input: finding the files, cutting them into splits, and reading a split's records.
//!
//! A split is one or more file ranges, each a byte range `[start, end)` of one file: a large
//! file is cut into ranges of the split size, and small files (or the tails of large ones) are
//! packed together until a split holds the split size, as Hadoop's `CombineFileInputFormat`
//! does, so the number of map tasks follows the input's bytes, not its file count. A line
//! belongs to the range that holds its first byte: a range that starts mid-line skips to the
//! next line start, and the last line of a range is read past `end` to its newline. So every
//! line is read exactly once, whatever the split size, as Hadoop's line record reader does.
//!
//! Input formats: text lines (the default; a `.gz`, `.bz2`, `.zst` or `.xz` file is decompressed and is one split),
//! whole files (one record per file), and TeraGen's 100-byte records (splits aligned on
//! records).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// One input file and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The path, as found from the input arguments.
    pub path: PathBuf,
    /// Size in bytes when the job was planned.
    pub len: u64,
    /// Modification time of a local file when the job was planned, in nanoseconds since the
    /// Unix epoch; `None` for an object.
    pub modified_ns: Option<i64>,
    /// The file as reached from the input as given, when that differs from `path`: jobs see
    /// this name ([`FileRange::name`]).
    pub name: Option<PathBuf>,
}

/// What a local input file was when the job was planned. A map task checks it when it opens a
/// range of the file and when it reaches the range's end: a file whose size or modification
/// time changed since, or that ends before the range does, fails the task with
/// [`Error::InputChanged`], instead of giving counts of neither the old nor the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time, in nanoseconds since the Unix epoch.
    pub modified_ns: i64,
}

impl FileStamp {
    /// The stamp of a local file now.
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: meta.len(),
            modified_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
        }
    }
}

/// How input files are cut into records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Lines of UTF-8 text ("\n" or "\r\n"); `.gz`, `.bz2`, `.zst` and `.xz` files are decompressed.
    #[default]
    Text,
    /// One record per file: its whole contents (UTF-8).
    WholeFile,
    /// TeraGen records of 100 bytes, keyed by their first 10 bytes.
    Tera,
    /// One JSON value per line, checked; split like text.
    Jsonl,
    /// RFC 4180 records (quoted newlines included), each as a JSON array of its fields; a
    /// file is read whole by one map task.
    Csv,
}

/// Size of a TeraGen record.
pub const TERA_RECORD: u64 = 100;

impl InputFormat {
    /// The name used on the command line and the wire.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::WholeFile => "whole-file",
            InputFormat::Tera => "tera",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Csv => "csv",
        }
    }

    /// The format with this name.
    pub fn from_name(name: &str) -> Option<InputFormat> {
        [InputFormat::Text, InputFormat::WholeFile, InputFormat::Tera, InputFormat::Jsonl, InputFormat::Csv]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// A byte range of one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRange {
    /// The file.
    pub path: PathBuf,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
    /// Line number of the range's first line, when line numbers were asked for; else 0.
    pub first_line: u64,
    /// The file as planned (local files only): checked when the range is opened and read.
    pub stamp: Option<FileStamp>,
    /// The file as reached from the input as given (`in/a.txt` for `--input in`), when that
    /// differs from `path`.
    pub name: Option<PathBuf>,
}

impl FileRange {
    /// The file's name as jobs see it (`Record::path`): relative to the input as given.
    pub fn name(&self) -> &Path {
        self.name.as_deref().unwrap_or(&self.path)
    }
}

impl std::fmt::Display for FileRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes {}..{}", self.path.display(), self.start, self.end)
    }
}

/// The input of one map task: file ranges, read in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The ranges, never empty in a planned split.
    pub ranges: Vec<FileRange>,
}

impl Split {
    /// A split of one range.
    pub fn single(path: PathBuf, start: u64, end: u64) -> Split {
        Split { ranges: vec![FileRange { path, start, end, first_line: 0, stamp: None, name: None }] }
    }

    /// Bytes of input the split covers.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// Whether the split covers no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Most file ranges packed into one split: bounds a map task's message and its open files
/// when the input is many tiny files.
pub const MAX_RANGES_PER_SPLIT: usize = 4096;

/// Whether a text file is compressed (read whole, as one stream, by one map task); an error for
/// a compressed format mr does not read.
fn is_compressed(path: &Path) -> Result<bool> {
    Ok(crate::data::compression::InputCompression::of(path)?.is_some())
}

impl std::fmt::Display for Split {
    /// Up to three ranges in full; more as the first, the last and a count.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ranges.as_slice() {
            [] => write!(f, "no input"),
            ranges if ranges.len() <= 3 => {
                for (i, range) in ranges.iter().enumerate() {
                    write!(f, "{}{range}", if i == 0 { "" } else { ", " })?;
                }
                Ok(())
            }
            [first, .., last] => {
                write!(f, "{first} ... {last} ({} file ranges, {} bytes)", self.ranges.len(), self.len())
            }
            _ => Ok(()),
        }
    }
}

/// Finds the input files: files as given, directories walked recursively in path order,
/// entries whose name starts with `_` or `.` skipped ([`is_skipped_name`](crate::layout::is_skipped_name)). Only regular
/// files (or symbolic links to them) are input: a FIFO, a socket or a device is refused by
/// name, before anything would block on it. Every file is opened once, so that an unreadable
/// file is reported before the job starts.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
    discover_as(inputs, inputs)
}

/// [`discover`], naming each file as reached from the input as the user gave it
/// (`given[i]` for `inputs[i]`, which is its absolute form): a file given directly is named as
/// given, a file found under a directory D as D joined with its path inside the directory.
pub fn discover_as(inputs: &[PathBuf], given: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for (input, given) in inputs.iter().zip(given) {
        let found = files.len();
        discover_one(input, &mut files)?;
        if given == input {
            continue;
        }
        for file in &mut files[found..] {
            let name = match file.path.strip_prefix(input) {
                Ok(inside) if inside.as_os_str().is_empty() => given.clone(),
                Ok(inside) => given.join(inside),
                Err(_) => continue,
            };
            file.name = Some(name);
        }
    }
    if files.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| format!("'{}'", p.display())).collect();
        return Err(Error::NoInputFiles(names.join(", ")));
    }
    Ok(files)
}

/// The files of one input path.
fn discover_one(input: &PathBuf, files: &mut Vec<InputFile>) -> Result<()> {
    {
        if crate::data::storage::is_url(input) {
            let objects = crate::data::storage::Object::parse(&input.to_string_lossy())?.list()?;
            if objects.is_empty() {
                return Err(Error::InputMissing(input.clone()));
            }
            for (object, len) in objects {
                files.push(InputFile { path: PathBuf::from(object.url()), len, modified_ns: None, name: None });
            }
            return Ok(());
        }
        let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::InputMissing(input.clone()),
            _ => Error::io("cannot read input", input)(e),
        })?;
        if meta.is_dir() {
            walk(input, files)?;
        } else {
            files.push(open_checked(input, &meta)?);
        }
    }
    Ok(())
}

fn walk(dir: &Path, files: &mut Vec<InputFile>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("cannot list input directory", dir))? {
        let entry = entry.map_err(Error::io("cannot list input directory", dir))?;
        if crate::layout::is_skipped_name(entry.file_name().as_encoded_bytes()) {
            continue;
        }
        entries.push(entry.path());
    }
    entries.sort();
    for path in entries {
        let meta = std::fs::metadata(&path).map_err(Error::io("cannot read input", &path))?;
        if meta.is_dir() {
            walk(&path, files)?;
        } else {
            files.push(open_checked(&path, &meta)?);
        }
    }
    Ok(())
}

/// What kind of file `meta` describes, for an error about a file that is not regular.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn open_checked(path: &Path, meta: &std::fs::Metadata) -> Result<InputFile> {
    // Opening a FIFO would block until a writer comes, and a device has no size: refused
    // before they are opened.
    if !meta.is_file() {
        return Err(Error::NotRegularFile { path: path.to_path_buf(), kind: file_kind(meta) });
    }
    let file = File::open(path).map_err(Error::io("cannot read input file", path))?;
    let meta = file.metadata().map_err(Error::io("cannot read input file", path))?;
    let stamp = FileStamp::of(&meta);
    Ok(InputFile { path: path.to_path_buf(), len: stamp.len, modified_ns: Some(stamp.modified_ns), name: None })
}

/// Checks a local range's file against its stamp: the same size and modification time as
/// when the job was planned, and, at the end of the range (`reached`: the offset the reader
/// got to), not shorter than the range.
fn check_unchanged(range: &FileRange, reached: Option<u64>) -> Result<()> {
    let Some(stamp) = range.stamp else { return Ok(()) };
    let changed = |what: String| Error::InputChanged { path: range.path.clone(), what };
    if let Some(reached) = reached
        && reached < range.end
    {
        return Err(changed(format!(
            "it ended at byte {reached}, within the range {}..{} planned",
            range.start, range.end
        )));
    }
    let meta = std::fs::metadata(&range.path).map_err(Error::io("cannot read input file", &range.path))?;
    let now = FileStamp::of(&meta);
    if now.len != stamp.len {
        return Err(changed(format!("{} bytes when planned, {} bytes now", stamp.len, now.len)));
    }
    if now.modified_ns != stamp.modified_ns {
        return Err(changed("its modification time changed".into()));
    }
    Ok(())
}

/// Cuts files into ranges of at most `split_size` bytes and packs them, in file order, into
/// splits of at most `split_size` bytes and [`MAX_RANGES_PER_SPLIT`] ranges. Empty files have
/// no range; a compressed file and a whole-file input file are one range each (a split of its own
/// when larger than `split_size`); tera ranges hold whole records.
pub fn plan_splits(files: &[InputFile], split_size: u64, format: InputFormat) -> Result<Vec<Split>> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    let mut current = Split { ranges: Vec::new() };
    let mut current_len = 0u64;
    for file in files {
        // A csv file is read whole: a quote changes the meaning of all that follows it.
        let whole = matches!(format, InputFormat::WholeFile | InputFormat::Csv)
            || (format == InputFormat::Text && is_compressed(&file.path)?);
        let size = match format {
            _ if whole => file.len.max(1),
            InputFormat::Tera => {
                if file.len % TERA_RECORD != 0 {
                    return Err(Error::Job(format!(
                        "'{}' is {} bytes, not a whole number of {TERA_RECORD}-byte tera records",
                        file.path.display(),
                        file.len
                    )));
                }
                split_size.div_ceil(TERA_RECORD).max(1) * TERA_RECORD
            }
            _ => split_size,
        };
        let mut start = 0;
        while start < file.len {
            let end = (start + size).min(file.len);
            let len = end - start;
            if !current.ranges.is_empty()
                && (current_len + len > split_size || current.ranges.len() >= MAX_RANGES_PER_SPLIT)
            {
                splits.push(std::mem::replace(&mut current, Split { ranges: Vec::new() }));
                current_len = 0;
            }
            let stamp = file.modified_ns.map(|modified_ns| FileStamp { len: file.len, modified_ns });
            let name = file.name.clone();
            current.ranges.push(FileRange { path: file.path.clone(), start, end, first_line: 0, stamp, name });
            current_len += len;
            start = end;
        }
    }
    if !current.ranges.is_empty() {
        splits.push(current);
    }
    Ok(splits)
}

/// Sets each text range's `first_line`: a range at the start of its file starts at line 1;
/// for the others, one pass over their file counts newlines.
pub fn number_lines(splits: &mut [Split]) -> Result<()> {
    let mut ranges: Vec<&mut FileRange> = splits.iter_mut().flat_map(|s| s.ranges.iter_mut()).collect();
    let mut i = 0;
    while i < ranges.len() {
        let path = ranges[i].path.clone();
        let mut file: Option<BufReader<Box<dyn crate::data::storage::Source>>> = None;
        let (mut pos, mut newlines) = (0u64, 0u64);
        while i < ranges.len() && ranges[i].path == path {
            let range = &mut *ranges[i];
            if range.start == 0 {
                range.first_line = 1;
            } else {
                let file = match &mut file {
                    Some(file) => file,
                    None => file.insert(BufReader::with_capacity(1 << 20, crate::data::storage::open(&path)?)),
                };
                // Newlines before byte start - 1; the line after the next one is the first.
                let target = range.start - 1;
                while pos < target {
                    let buf = file.fill_buf().map_err(Error::io("cannot read input file", &path))?;
                    if buf.is_empty() {
                        break;
                    }
                    let take = buf.len().min((target - pos) as usize);
                    newlines += memchr::memchr_iter(b'\n', &buf[..take]).count() as u64;
                    file.consume(take);
                    pos += take as u64;
                }
                range.first_line = newlines + 2;
            }
            i += 1;
        }
    }
    Ok(())
}

/// A file's name as text that names it alone: the path as it is, except that `%`, `,`,
/// control characters (such as a newline or a tab) and bytes that are not UTF-8 are
/// percent-encoded (`%25`, `%2C`, `%0A`, `%E9`), so that every file has its own text, and
/// output that lists file names (grep's `path:line`, index's `doc,doc`) stays one record
/// per line and parses back. A name with none of these is unchanged.
pub fn path_text(path: &Path) -> std::borrow::Cow<'_, str> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let plain = |c: char| c != '%' && c != ',' && !c.is_control();
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.chars().all(plain)
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    let escape = |out: &mut String, bytes: &[u8]| {
        for b in bytes {
            out.push_str(&format!("%{b:02X}"));
        }
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if plain(c) {
                out.push(c);
            } else {
                escape(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes());
            }
        }
        escape(&mut out, chunk.invalid());
    }
    std::borrow::Cow::Owned(out)
}

/// One record as read from a split.
pub struct RawRecord<'a> {
    /// The record's file, as text ([`path_text`]: a name that is not UTF-8, or holds `%`, `,`
    /// or a control character, is percent-encoded).
    pub path: &'a str,
    /// Offset of the record in its file.
    pub offset: u64,
    /// Number of the record in its split, from 0, counting records that failed to read: the
    /// identity of a bad record that later attempts skip (`--skip-bad-records`).
    pub number: u64,
    /// 1-based line number, or 0 when unknown.
    pub line_number: u64,
    /// The record's bytes, without a line terminator.
    pub bytes: &'a [u8],
    /// The record as text; empty for a tera record that is not UTF-8.
    pub text: &'a str,
}

/// Reads the records of a split in any input format, one file range after the other.
pub struct RecordReader {
    ranges: Vec<FileRange>,
    format: InputFormat,
    max_record_bytes: u64,
    /// Index in `ranges` of the range `current` reads.
    index: usize,
    current: Option<RangeReader>,
    /// `ranges[index].path` as text, for the records.
    path: String,
    /// Bytes consumed by the ranges before `index`.
    done_bytes: u64,
    /// Records read or rejected so far; the last one's number is this minus 1.
    records: u64,
}

/// Reads the records of one file range.
enum RangeReader {
    /// Lines of text, possibly compressed.
    Lines(LineReader),
    /// Lines of JSON, checked.
    Jsonl(LineReader),
    /// A whole csv file.
    Csv(crate::data::structured::CsvRecords),
    /// One whole file.
    Whole {
        /// The file.
        path: PathBuf,
        /// Its contents, once read.
        contents: Option<String>,
        /// Whether the file was read (or failed to).
        done: bool,
        /// Largest file read.
        limit: u64,
    },
    /// Fixed-size tera records.
    Tera {
        /// The file.
        path: PathBuf,
        /// Reader positioned at the next record.
        reader: BufReader<std::io::Take<Box<dyn crate::data::storage::Source>>>,
        /// Offset of the next record.
        pos: u64,
        /// The current record.
        buf: [u8; TERA_RECORD as usize],
    },
}

impl RangeReader {
    fn open(range: &FileRange, format: InputFormat, max_record_bytes: u64) -> Result<RangeReader> {
        let path = &range.path;
        match format {
            InputFormat::Text => Ok(RangeReader::Lines(LineReader::open(range, max_record_bytes)?)),
            InputFormat::Jsonl => Ok(RangeReader::Jsonl(LineReader::open(range, max_record_bytes)?)),
            InputFormat::Csv => {
                Ok(RangeReader::Csv(crate::data::structured::CsvRecords::open(path, max_record_bytes)?))
            }
            InputFormat::WholeFile => {
                Ok(RangeReader::Whole { path: path.clone(), contents: None, done: false, limit: max_record_bytes })
            }
            InputFormat::Tera => {
                let mut file = crate::data::storage::open(path)?;
                file.seek(SeekFrom::Start(range.start)).map_err(Error::io("cannot read input file", path))?;
                let reader = BufReader::with_capacity(256 * 1024, file.take(range.end - range.start));
                Ok(RangeReader::Tera { path: path.clone(), reader, pos: range.start, buf: [0; TERA_RECORD as usize] })
            }
        }
    }

    /// Reads the next record into the reader; false at the end of the range.
    fn advance(&mut self) -> Result<bool> {
        match self {
            RangeReader::Lines(lines) => lines.advance(),
            RangeReader::Jsonl(lines) => {
                if !lines.advance()? {
                    return Ok(false);
                }
                let line = lines.line();
                let text = crate::data::structured::jsonl_text(line.offset, line.text);
                crate::data::structured::check_jsonl(&lines.path, line.line_number, text)?;
                Ok(true)
            }
            RangeReader::Csv(records) => records.advance(),
            RangeReader::Whole { path, contents, done, limit } => {
                if *done {
                    return Ok(false);
                }
                // A file that fails is done all the same: a skipped bad file is not read again.
                *done = true;
                let mut bytes = Vec::new();
                // Reads one byte past the limit, to tell a file that is too large.
                crate::data::storage::open(path)?
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(Error::io("cannot read input file", &*path))?;
                if bytes.len() as u64 > *limit {
                    drop(bytes);
                    let size = crate::data::storage::open(path)?
                        .seek(SeekFrom::End(0))
                        .map_err(Error::io("cannot read input file", &*path))?;
                    return Err(Error::RecordTooLarge { path: path.clone(), offset: 0, size, limit: *limit });
                }
                let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
                    path: path.clone(),
                    offset: e.utf8_error().valid_up_to() as u64,
                })?;
                *contents = Some(text);
                Ok(true)
            }
            RangeReader::Tera { path, reader, pos, buf } => {
                match reader.read_exact(buf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
                    Err(e) => return Err(Error::io("cannot read input file", &*path)(e)),
                }
                *pos += TERA_RECORD;
                Ok(true)
            }
        }
    }

    /// The record `advance` read: (offset, line number, bytes, text).
    fn record(&self) -> (u64, u64, &[u8], &str) {
        match self {
            RangeReader::Lines(lines) => {
                let line = lines.line();
                (line.offset, line.line_number, line.text.as_bytes(), line.text)
            }
            RangeReader::Jsonl(lines) => {
                let line = lines.line();
                let text = crate::data::structured::jsonl_text(line.offset, line.text);
                (line.offset, line.line_number, text.as_bytes(), text)
            }
            RangeReader::Csv(records) => {
                let (offset, line, text) = records.record();
                (offset, line, text.as_bytes(), text)
            }
            RangeReader::Whole { contents, .. } => {
                let text = contents.as_deref().unwrap_or("");
                (0, 0, text.as_bytes(), text)
            }
            RangeReader::Tera { pos, buf, .. } => {
                (pos.saturating_sub(TERA_RECORD), 0, &buf[..], std::str::from_utf8(buf).unwrap_or(""))
            }
        }
    }

    /// Offset of the record last read or rejected.
    fn record_offset(&self) -> u64 {
        match self {
            RangeReader::Lines(lines) | RangeReader::Jsonl(lines) => lines.line_offset(),
            RangeReader::Csv(records) => records.offset(),
            RangeReader::Whole { .. } => 0,
            RangeReader::Tera { pos, .. } => pos.saturating_sub(TERA_RECORD),
        }
    }

    /// The offset in the file that reading the range got to, where it is known (not for a
    /// whole file or a compressed range).
    fn reached(&self) -> Option<u64> {
        match self {
            RangeReader::Lines(lines) | RangeReader::Jsonl(lines) => (lines.end != u64::MAX).then_some(lines.pos),
            RangeReader::Whole { .. } | RangeReader::Csv(_) => None,
            RangeReader::Tera { pos, .. } => Some(*pos),
        }
    }

    /// Bytes of the range consumed so far.
    fn consumed(&self, range: &FileRange) -> u64 {
        match self {
            RangeReader::Lines(lines) | RangeReader::Jsonl(lines) => lines.position() - lines.first_line_offset,
            RangeReader::Csv(records) => records.consumed(),
            RangeReader::Whole { contents, .. } => contents.as_ref().map_or(0, |c| c.len() as u64),
            RangeReader::Tera { pos, .. } => pos - range.start,
        }
    }
}

impl RecordReader {
    /// Opens a split; its files are opened one at a time as the reader reaches them. A record
    /// (line or whole file) larger than `max_record_bytes` is an error.
    pub fn open(split: &Split, format: InputFormat, max_record_bytes: u64) -> Result<RecordReader> {
        Ok(RecordReader {
            ranges: split.ranges.clone(),
            format,
            max_record_bytes,
            index: 0,
            current: None,
            path: String::new(),
            done_bytes: 0,
            records: 0,
        })
    }

    /// The next record, or `None` at the end of the split. An error is the record numbered
    /// [`RecordReader::record_number`]; reading on after it goes to the next record.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        loop {
            let Some(reader) = self.current.as_mut() else {
                let Some(range) = self.ranges.get(self.index) else { return Ok(None) };
                self.path = path_text(range.name()).into_owned();
                match check_unchanged(range, None)
                    .and_then(|()| RangeReader::open(range, self.format, self.max_record_bytes))
                {
                    Ok(reader) => self.current = Some(reader),
                    Err(e) => {
                        // The range counts as one record that failed, and is not opened again.
                        self.records += 1;
                        self.index += 1;
                        return Err(e);
                    }
                }
                continue;
            };
            self.records += 1;
            if reader.advance()? {
                break;
            }
            self.records -= 1;
            check_unchanged(&self.ranges[self.index], reader.reached())?;
            self.done_bytes += reader.consumed(&self.ranges[self.index]);
            self.current = None;
            self.index += 1;
        }
        let Some(reader) = self.current.as_ref() else { return Ok(None) };
        let (offset, line_number, bytes, text) = reader.record();
        Ok(Some(RawRecord { path: &self.path, offset, number: self.records - 1, line_number, bytes, text }))
    }

    /// Number of the record last read or rejected, from 0.
    pub fn record_number(&self) -> u64 {
        self.records.saturating_sub(1)
    }

    /// The file of the record last read or rejected, as text.
    pub fn record_path(&self) -> &str {
        &self.path
    }

    /// Offset in its file of the record last read or rejected.
    pub fn record_offset(&self) -> u64 {
        self.current.as_ref().map_or(0, RangeReader::record_offset)
    }

    /// Bytes of the split consumed so far.
    pub fn consumed(&self) -> u64 {
        let current = match (&self.current, self.ranges.get(self.index)) {
            (Some(reader), Some(range)) => reader.consumed(range),
            _ => 0,
        };
        self.done_bytes + current
    }
}

/// Bytes a line reader reads at a time (less for a shorter range).
pub const BLOCK: usize = 1 << 20;

/// Reads the lines of one file range. Line terminators ("\n" or "\r\n") are not part of the
/// line.
///
/// The range is read in blocks of up to [`BLOCK`] bytes: lines are found in a block with
/// `memchr`, and UTF-8 is checked (`simdutf8`) over all the whole lines a block holds at once,
/// not line by line. A line is lent from the block, never copied; a line longer than a block
/// grows the block, up to the longest line allowed.
pub struct LineReader {
    reader: Box<dyn Read + Send>,
    path: PathBuf,
    /// The block: bytes `start..filled` are read and not yet consumed.
    buf: Vec<u8>,
    start: usize,
    filled: usize,
    /// Bytes of `buf` before this index are known to be UTF-8 (from a line start on).
    checked: usize,
    /// Whether the reader has reached the end of its input.
    eof: bool,
    /// Offset in the file of the next unread byte (`buf[start]`).
    pos: u64,
    /// Offset of the range's first line: the bytes before it belong to the previous range.
    first_line_offset: u64,
    end: u64,
    /// Longest line read, without its terminator.
    limit: u64,
    /// The line last read, without its terminator: a range of `buf`.
    line: (usize, usize),
    line_offset: u64,
    line_number: u64,
    next_line_number: u64,
}

/// One line of input and where it starts in its file.
pub struct Line<'a> {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// 1-based line number, or 0 when unknown.
    pub line_number: u64,
    /// The line, without its terminator.
    pub text: &'a str,
}

impl LineReader {
    /// Opens a file range and positions the reader on its first line. A compressed file is one
    /// range read through its decoder. A line longer than `limit` bytes is an error.
    pub fn open(range: &FileRange, limit: u64) -> Result<LineReader> {
        Self::open_with_block(range, limit, BLOCK)
    }

    /// [`LineReader::open`] with blocks of `block` bytes.
    pub fn open_with_block(range: &FileRange, limit: u64, block: usize) -> Result<LineReader> {
        let path = &range.path;
        let mut file = crate::data::storage::open(path)?;
        let mut pos = range.start;
        let mut end = range.end;
        // A range needs its own bytes and the rest of its last line: a small range, a small block.
        let mut block = block.max(1);
        let reader: Box<dyn Read + Send> =
            if let Some(compression) = crate::data::compression::InputCompression::of(path)? {
                end = u64::MAX;
                compression.decoder(Box::new(file))?
            } else {
                block = block.min((range.end - range.start).saturating_add(4096).try_into().unwrap_or(usize::MAX));
                if range.start > 0 {
                    // The previous byte tells whether a line starts exactly at `start`.
                    file.seek(SeekFrom::Start(range.start - 1)).map_err(Error::io("cannot read input file", path))?;
                    pos = range.start - 1;
                }
                Box::new(file)
            };
        let mut lines = LineReader {
            reader,
            path: path.clone(),
            buf: vec![0; block],
            start: 0,
            filled: 0,
            checked: 0,
            eof: false,
            pos,
            first_line_offset: pos,
            end,
            limit,
            line: (0, 0),
            line_offset: pos,
            line_number: 0,
            next_line_number: range.first_line,
        };
        if pos < range.start {
            // If no line starts at `start`, the partial line belongs to the previous range. It is
            // skipped without being kept.
            lines.skip_line(None)?;
            lines.first_line_offset = lines.pos;
            lines.line_offset = lines.pos;
        }
        Ok(lines)
    }

    /// The next line of the range, or `None` at its end.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>> {
        Ok(if self.advance()? { Some(self.line()) } else { None })
    }

    /// Moves the unconsumed bytes to the front of the block, grows it if it is full, and reads
    /// more. Returns false at the end of the input.
    fn refill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.checked = self.checked.saturating_sub(self.start);
            self.start = 0;
        }
        if self.filled == self.buf.len() {
            let grown = (self.buf.len() * 2).max(4096);
            self.buf.resize(grown, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.filled += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("cannot read input file", &self.path)(e)),
            }
        }
    }

    /// Consumes `n` bytes of the block.
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.pos += n as u64;
    }

    /// Consumes the rest of a line, its terminator included, without keeping it. Returns the
    /// bytes consumed and how many of them are the terminator ("\n" or "\r\n"; 0 at the end of
    /// the input); `prev` is the byte before the rest, if any.
    fn skip_line(&mut self, mut prev: Option<u8>) -> Result<(u64, u64)> {
        let mut skipped = 0u64;
        loop {
            let avail = &self.buf[self.start..self.filled];
            if let Some(i) = memchr::memchr(b'\n', avail) {
                let before = if i > 0 { Some(avail[i - 1]) } else { prev };
                self.consume(i + 1);
                return Ok((skipped + i as u64 + 1, if before == Some(b'\r') { 2 } else { 1 }));
            }
            if let Some(&last) = avail.last() {
                prev = Some(last);
            }
            skipped += avail.len() as u64;
            self.consume(avail.len());
            if !self.refill()? {
                return Ok((skipped, 0));
            }
        }
    }

    /// Reads the next line into the reader; false at the end of the range.
    fn advance(&mut self) -> Result<bool> {
        if self.pos >= self.end {
            return Ok(false);
        }
        // At most the limit and a "\r\n" are looked at: memory is bounded by the limit.
        let window = usize::try_from(self.limit.saturating_add(2)).unwrap_or(usize::MAX);
        let mut searched = 0;
        let (n, terminated) = loop {
            let avail = &self.buf[self.start..self.filled];
            let upto = avail.len().min(window);
            if let Some(i) = memchr::memchr(b'\n', &avail[searched..upto]) {
                break (searched + i + 1, true);
            }
            searched = upto;
            if upto == window {
                break (upto, false);
            }
            if !self.refill()? {
                let left = self.filled - self.start;
                if left == 0 {
                    return Ok(false);
                }
                break (left, false);
            }
        };
        let offset = self.pos;
        self.line_offset = offset;
        let line_start = self.start;
        let bytes = &self.buf[line_start..line_start + n];
        let content = n - usize::from(terminated) - usize::from(terminated && bytes.ends_with(b"\r\n"));
        // Counted before the limit is checked: a line over it is a line all the same.
        self.line_number = self.next_line_number;
        if self.line_number > 0 {
            self.next_line_number += 1;
        }
        if content as u64 > self.limit {
            // The rest of the line is skipped, counted and not kept; reading on goes to the next.
            let last = bytes.last().copied();
            self.consume(n);
            let (rest, terminator) = if terminated { (0, 0) } else { self.skip_line(last)? };
            self.line = (self.start, self.start);
            if self.buf.len() > BLOCK && self.start == self.filled {
                self.buf = vec![0; BLOCK];
                (self.start, self.filled, self.checked) = (0, 0, 0);
                self.line = (0, 0);
            }
            let size = content as u64 + rest - terminator;
            return Err(Error::RecordTooLarge { path: self.path.clone(), offset, size, limit: self.limit });
        }
        let line_end = line_start + n;
        if line_end > self.checked {
            // Check every whole line the block holds at once.
            let whole = memchr::memrchr(b'\n', &self.buf[line_end..self.filled]).map_or(line_end, |i| line_end + i + 1);
            let block = &self.buf[line_start..whole];
            if simdutf8::basic::from_utf8(block).is_ok() {
                self.checked = whole;
            } else {
                let valid = simdutf8::compat::from_utf8(block).map_or_else(|e| e.valid_up_to(), |_| block.len());
                self.checked = line_start + valid;
                if valid < n {
                    self.consume(n);
                    self.line = (self.start, self.start);
                    return Err(Error::InvalidUtf8 { path: self.path.clone(), offset: offset + valid as u64 });
                }
            }
        }
        self.consume(n);
        self.line = (line_start, line_start + content);
        Ok(true)
    }

    /// The line `advance` read.
    fn line(&self) -> Line<'_> {
        let bytes = &self.buf[self.line.0..self.line.1];
        // SAFETY: `advance` checked that `buf[..checked]`, from a line start, is UTF-8, and the
        // line lies inside it, between character boundaries (a line starts after a "\n" and
        // ends before one, or at the end of the input). An empty range is the empty string.
        let text = unsafe { std::str::from_utf8_unchecked(bytes) };
        Line { offset: self.line_offset, line_number: self.line_number, text }
    }

    /// Offset in the file of the line last read (or rejected as invalid UTF-8).
    pub fn line_offset(&self) -> u64 {
        self.line_offset
    }

    /// Offset in the file of the next unread byte.
    pub fn position(&self) -> u64 {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(path: &Path, len: u64, split_size: u64) -> Vec<(u64, String)> {
        let files = [InputFile { path: path.to_path_buf(), len, modified_ns: None, name: None }];
        let mut out = Vec::new();
        let mut splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
        number_lines(&mut splits).unwrap();
        for split in splits {
            let mut reader = RecordReader::open(&split, InputFormat::Text, u64::MAX).unwrap();
            while let Some(line) = reader.next_record().unwrap() {
                out.push((line.offset, format!("{}:{}", line.line_number, line.text)));
            }
        }
        out
    }

    /// The documented line rule, simply: lines end at "\n", one "\r" before it dropped; a last
    /// line without "\n" is a line, as it is. (offset, 1-based number, text) of each line.
    fn simple_lines(text: &str) -> Vec<(u64, u64, String)> {
        let mut lines = Vec::new();
        let mut offset = 0;
        for (i, piece) in text.split_inclusive('\n').enumerate() {
            let line = match piece.strip_suffix('\n') {
                Some(l) => l.strip_suffix('\r').unwrap_or(l),
                None => piece,
            };
            lines.push((offset, i as u64 + 1, line.to_string()));
            offset += piece.len() as u64;
        }
        lines
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Block reading gives the lines of the simple rule for every split size and block
        /// size: CRLF, lone "\r", no final newline, lines longer than the block, and multi-byte
        /// characters across block edges.
        #[test]
        fn block_reading_gives_the_lines_of_the_simple_rule(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec!["a", "bc", "\n", "\r\n", "\r", "é", "ह", "𐍁", " ", "longer words here"]),
                0..60,
            ),
            block in 1usize..40,
        ) {
            let text: String = pieces.concat();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f.txt");
            std::fs::write(&path, &text).unwrap();
            let expected = simple_lines(&text);
            let len = text.len() as u64;
            for split_size in 1..=len.max(1) + 1 {
                let files = [InputFile { path: path.clone(), len, modified_ns: None, name: None }];
                let mut splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
                number_lines(&mut splits).unwrap();
                let mut got = Vec::new();
                for range in splits.iter().flat_map(|s| &s.ranges) {
                    let mut reader = LineReader::open_with_block(range, u64::MAX, block).unwrap();
                    while let Some(line) = reader.next_line().unwrap() {
                        got.push((line.offset, line.line_number, line.text.to_string()));
                    }
                }
                proptest::prop_assert_eq!(&got, &expected, "split size {}, block {}", split_size, block);
            }
        }
    }

    #[test]
    fn every_line_read_once_for_every_split_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let text = "alpha beta\r\n\ngamma\nlong line that crosses many splits\r\nlast without newline";
        std::fs::write(&path, text).unwrap();
        let expected: Vec<(u64, String)> = {
            let mut v = Vec::new();
            let mut off = 0u64;
            for (i, piece) in text.split_inclusive('\n').enumerate() {
                let line = piece.trim_end_matches('\n').trim_end_matches('\r');
                v.push((off, format!("{}:{line}", i + 1)));
                off += piece.len() as u64;
            }
            v
        };
        for split_size in 1..=text.len() as u64 + 1 {
            assert_eq!(lines_of(&path, text.len() as u64, split_size), expected, "split size {split_size}");
        }
    }

    #[test]
    fn packed_splits_read_every_line_of_every_file_once() {
        let dir = tempfile::tempdir().unwrap();
        // Files of 0 to 40 bytes: empty ones, ones without a final newline, CRLF, a long line.
        let mut files = Vec::new();
        let mut expected = Vec::new();
        for i in 0..40u64 {
            let text: String = match i % 5 {
                0 => String::new(),
                1 => format!("f{i} a\nf{i} b\n"),
                2 => format!("f{i} crlf\r\nf{i} last"),
                3 => format!("f{i} {}\n", "x".repeat(i as usize)),
                _ => format!("f{i}\n\nf{i} after blank\n"),
            };
            let path = dir.path().join(format!("{i:02}.txt"));
            std::fs::write(&path, &text).unwrap();
            let mut offset = 0;
            for (n, piece) in text.split_inclusive('\n').enumerate() {
                let line = piece.trim_end_matches('\n').trim_end_matches('\r');
                expected.push((path.clone(), offset, format!("{}:{line}", n + 1)));
                offset += piece.len() as u64;
            }
            files.push(InputFile { path, len: text.len() as u64, modified_ns: None, name: None });
        }
        let total: u64 = files.iter().map(|f| f.len).sum();
        for split_size in (1..=total + 1).step_by(7).chain([8, 64, total]) {
            let mut splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
            number_lines(&mut splits).unwrap();
            assert!(splits.iter().all(|s| !s.ranges.is_empty() && (s.len() <= split_size || s.ranges.len() == 1)));
            assert_eq!(splits.iter().map(Split::len).sum::<u64>(), total, "split size {split_size}");
            assert!(splits.len() as u64 >= total.div_ceil(split_size), "split size {split_size}");
            let (mut got, mut consumed) = (Vec::new(), 0);
            for split in &splits {
                let mut reader = RecordReader::open(split, InputFormat::Text, u64::MAX).unwrap();
                let mut number = 0;
                while let Some(r) = reader.next_record().unwrap() {
                    assert_eq!(r.number, number);
                    number += 1;
                    got.push((PathBuf::from(r.path), r.offset, format!("{}:{}", r.line_number, r.text)));
                }
                consumed += reader.consumed();
            }
            assert_eq!(got, expected, "split size {split_size}");
            assert_eq!(consumed, total, "split size {split_size}");
        }
    }

    #[test]
    fn many_tiny_files_pack_into_few_splits_of_bounded_ranges() {
        let files: Vec<InputFile> = (0..10_000)
            .map(|i| InputFile { path: PathBuf::from(format!("/in/{i:05}")), len: 10, modified_ns: None, name: None })
            .collect();
        let splits = plan_splits(&files, 1 << 20, InputFormat::Text).unwrap();
        assert_eq!(splits.len(), 10_000usize.div_ceil(MAX_RANGES_PER_SPLIT));
        let splits = plan_splits(&files, 1000, InputFormat::WholeFile).unwrap();
        assert_eq!(splits.len(), 100);
        assert!(splits[0].to_string().ends_with("(100 file ranges, 1000 bytes)"), "{}", splits[0]);
    }

    #[test]
    fn a_failed_record_is_numbered_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        std::fs::write(&a, b"one\n\xff\n").unwrap();
        std::fs::write(&b, b"\xfe").unwrap();
        let files = [
            InputFile { path: a.clone(), len: 5, modified_ns: None, name: None },
            InputFile { path: b.clone(), len: 1, modified_ns: None, name: None },
        ];
        for format in [InputFormat::Text, InputFormat::WholeFile] {
            let splits = plan_splits(&files, 100, format).unwrap();
            assert_eq!(splits.len(), 1);
            let mut reader = RecordReader::open(&splits[0], format, u64::MAX).unwrap();
            let mut seen = Vec::new();
            loop {
                match reader.next_record() {
                    Ok(Some(r)) => seen.push((r.number, r.text.to_string())),
                    Ok(None) => break,
                    Err(e) => {
                        let e = e.to_string();
                        let what = e.split(':').next().unwrap_or_default();
                        seen.push((reader.record_number(), format!("{}: {what}", reader.record_path())));
                    }
                }
            }
            let (a, b) = (a.display(), b.display());
            let expected: Vec<(u64, String)> = match format {
                InputFormat::Text => vec![
                    (0, "one".into()),
                    (1, format!("{a}: invalid UTF-8 in '{a}' at byte offset 4")),
                    (2, format!("{b}: invalid UTF-8 in '{b}' at byte offset 0")),
                ],
                _ => vec![
                    (0, format!("{a}: invalid UTF-8 in '{a}' at byte offset 4")),
                    (1, format!("{b}: invalid UTF-8 in '{b}' at byte offset 0")),
                ],
            };
            assert_eq!(seen, expected, "{format:?}");
        }
    }

    #[test]
    fn a_line_over_the_limit_is_named_sized_and_skipped_without_being_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.txt");
        let long = "y".repeat(100_000);
        let text = format!("short\n{long}\r\nexactly10!\n{long}x");
        std::fs::write(&path, &text).unwrap();
        let files = [InputFile { path: path.clone(), len: text.len() as u64, modified_ns: None, name: None }];
        for (split_size, limit) in [(1 << 20, 10), (7, 10), (1 << 20, 5000)] {
            let mut seen = Vec::new();
            for split in plan_splits(&files, split_size, InputFormat::Text).unwrap() {
                let mut reader = RecordReader::open(&split, InputFormat::Text, limit).unwrap();
                loop {
                    match reader.next_record() {
                        Ok(Some(r)) => seen.push(format!("{}: {}", r.offset, r.text)),
                        Ok(None) => break,
                        Err(Error::RecordTooLarge { offset, size, limit: l, .. }) => {
                            assert_eq!(l, limit);
                            seen.push(format!("{offset}: {size} bytes"));
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            let expected = ["0: short", "6: 100000 bytes", "100008: exactly10!", "100019: 100001 bytes"];
            assert_eq!(seen, expected, "split size {split_size}, limit {limit}");
        }
        let err = RecordReader::open(&Split::single(path.clone(), 0, text.len() as u64), InputFormat::WholeFile, 10)
            .unwrap()
            .next_record()
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains(&format!("'{}' is {} bytes", path.display(), text.len())), "{err}");
        assert!(err.contains("--max-record-bytes (10 bytes)") && err.contains("MR_MAX_RECORD_BYTES"), "{err}");
    }

    /// Found by the `record_reader` fuzz target: a line over the limit did not count as a line,
    /// so the lines after it in its range were numbered one less than when a split boundary
    /// fell after it (`number_lines` counts every newline).
    #[test]
    fn lines_over_the_limit_count_in_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let text = "too long\r\n\nok\nalso too long\nend";
        std::fs::write(&path, text).unwrap();
        let files = [InputFile { path: path.clone(), len: text.len() as u64, modified_ns: None, name: None }];
        for split_size in 1..=text.len() as u64 {
            let mut seen = Vec::new();
            let mut splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
            number_lines(&mut splits).unwrap();
            for split in &splits {
                let mut reader = RecordReader::open(split, InputFormat::Text, 3).unwrap();
                loop {
                    match reader.next_record() {
                        Ok(Some(r)) => seen.push(format!("{}:{}", r.line_number, r.text)),
                        Ok(None) => break,
                        Err(Error::RecordTooLarge { offset, .. }) => seen.push(format!("too large at {offset}")),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            assert_eq!(seen, ["too large at 0", "2:", "3:ok", "too large at 14", "5:end"], "split size {split_size}");
        }
    }

    #[test]
    fn invalid_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"ok\nab\xffcd\n").unwrap();
        let range = FileRange { path: path.clone(), start: 0, end: 9, first_line: 0, stamp: None, name: None };
        let mut reader = LineReader::open(&range, u64::MAX).unwrap();
        assert_eq!(reader.next_line().unwrap().unwrap().text, "ok");
        match reader.next_line() {
            Err(Error::InvalidUtf8 { offset, .. }) => assert_eq!(offset, 5),
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("invalid UTF-8 accepted"),
        }
    }

    #[test]
    fn discovery_walks_in_path_order_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("_temporary")).unwrap();
        for name in ["b/sub/z.txt", "b/a.txt", "a.txt", ".hidden", ".git/x", "c.txt", "_SUCCESS", "_temporary/y"] {
            std::fs::write(root.join(name), "x\n").unwrap();
        }
        let found: Vec<PathBuf> = discover(&[root.to_path_buf()])
            .unwrap()
            .into_iter()
            .map(|f| f.path.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        let expected: Vec<PathBuf> = ["a.txt", "b/a.txt", "b/sub/z.txt", "c.txt"].iter().map(PathBuf::from).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn path_text_escapes_separators_and_bytes_that_are_not_utf8() {
        use std::os::unix::ffi::OsStrExt;
        let text = |bytes: &[u8]| path_text(Path::new(std::ffi::OsStr::from_bytes(bytes))).into_owned();
        assert_eq!(text("/in/café ok.txt".as_bytes()), "/in/café ok.txt");
        assert_eq!(text(b"/in/caf\xe9.txt"), "/in/caf%E9.txt");
        assert_eq!(text("/in/caf\u{fffd}.txt".as_bytes()), "/in/caf\u{fffd}.txt");
        assert_eq!(text(b"a,b\tc\nd%e\x7f\xe2\x82"), "a%2Cb%09c%0Ad%25e%7F%E2%82");
    }

    /// A file cut, grown or touched after planning fails the range that reads it, at its
    /// start or at its end.
    #[test]
    fn a_file_that_changed_since_planning_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        let text = "one\ntwo\nthree\nfour\n";
        std::fs::write(&path, text).unwrap();
        let files = discover(std::slice::from_ref(&path)).unwrap();
        let read_all = |format| -> Result<usize> {
            let splits = plan_splits(&files, 8, format)?;
            let mut n = 0;
            for split in &splits {
                let mut reader = RecordReader::open(split, format, u64::MAX)?;
                while reader.next_record()?.is_some() {
                    n += 1;
                }
            }
            Ok(n)
        };
        assert_eq!(read_all(InputFormat::Text).unwrap(), 4);
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        let set = |bytes: &str| {
            std::fs::write(&path, bytes).unwrap();
            File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        };
        // Shorter, longer, or the same size and another modification time.
        for (contents, what) in [
            ("one\ntwo\n", "bytes now"),
            ("one\ntwo\nthree\nfour\nfive\n", "bytes now"),
            ("ONE\ntwo\nthree\nfour\n", ""),
        ] {
            set(contents);
            if what.is_empty() {
                File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(modified + std::time::Duration::from_secs(1))
                    .unwrap();
            }
            for format in [InputFormat::Text, InputFormat::WholeFile] {
                let err = read_all(format).unwrap_err();
                assert!(matches!(err, Error::InputChanged { .. }), "{err}");
                let message = err.to_string();
                assert!(message.contains(&format!("input file '{}' changed while the job ran", path.display())));
                let expected = if what.is_empty() { "modification time changed" } else { what };
                assert!(message.contains(expected), "{message}");
            }
        }
        // Cut while a range is read: its end is short of the range planned.
        set(text);
        let files = discover(std::slice::from_ref(&path)).unwrap();
        let split = &plan_splits(&files, 1 << 20, InputFormat::Text).unwrap()[0];
        let mut reader = RecordReader::open(split, InputFormat::Text, u64::MAX).unwrap();
        assert_eq!(reader.next_record().unwrap().unwrap().text, "one");
        File::options().write(true).open(&path).unwrap().set_len(4).unwrap();
        let mut err = None;
        for _ in 0..5 {
            if let Err(e) = reader.next_record() {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("a cut file read to its end without an error").to_string();
        assert!(err.contains("changed while the job ran"), "{err}");
    }

    #[test]
    fn only_regular_files_are_input() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for input in [dir.path().to_path_buf(), fifo.clone()] {
            let err = discover(&[input]).unwrap_err();
            assert!(matches!(&err, Error::NotRegularFile { path, .. } if *path == fifo), "{err}");
            assert!(err.to_string().contains("is a FIFO (named pipe): input must be regular files"), "{err}");
        }
        let err = discover(&[PathBuf::from("/dev/null")]).unwrap_err().to_string();
        assert!(err.contains("'/dev/null' is a character device"), "{err}");
    }

    #[test]
    fn missing_and_empty_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(discover(&[dir.path().join("nope")]), Err(Error::InputMissing(_))));
        assert!(matches!(discover(&[dir.path().to_path_buf()]), Err(Error::NoInputFiles(_))));
    }
}
