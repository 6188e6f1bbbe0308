//! Input: finding the files, cutting them into splits, and reading a split's records.
//!
//! A split is a byte range `[start, end)` of one file. A line belongs to the split that holds
//! its first byte: a split that starts mid-line skips to the next line start, and the last line
//! of a split is read past `end` to its newline. So every line is read exactly once, whatever
//! the split size, as Hadoop's line record reader does.
//!
//! Input formats: text lines (the default; a `.gz` file is read through gzip and is one split),
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
}

/// How input files are cut into records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// Lines of UTF-8 text ("\n" or "\r\n"); `.gz` files are decompressed.
    #[default]
    Text,
    /// One record per file: its whole contents (UTF-8).
    WholeFile,
    /// TeraGen records of 100 bytes, keyed by their first 10 bytes.
    Tera,
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
        }
    }

    /// The format with this name.
    pub fn from_name(name: &str) -> Option<InputFormat> {
        [InputFormat::Text, InputFormat::WholeFile, InputFormat::Tera].into_iter().find(|f| f.name() == name)
    }
}

/// A byte range of one input file: the input of one map task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The file.
    pub path: PathBuf,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
    /// Line number of the split's first line, when line numbers were asked for; else 0.
    pub first_line: u64,
}

fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes {}..{}", self.path.display(), self.start, self.end)
    }
}

/// Finds the input files: files as given, directories walked recursively in path order,
/// hidden entries (names starting with '.') skipped. Every file is opened once, so that an
/// unreadable file is reported before the job starts.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<InputFile>> {
    let mut files = Vec::new();
    for input in inputs {
        if crate::storage::is_url(input) {
            let objects = crate::storage::Object::parse(&input.to_string_lossy())?.list()?;
            if objects.is_empty() {
                return Err(Error::InputMissing(input.clone()));
            }
            for (object, len) in objects {
                files.push(InputFile { path: PathBuf::from(object.url()), len });
            }
            continue;
        }
        let meta = std::fs::metadata(input).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::InputMissing(input.clone()),
            _ => Error::io("cannot read input", input)(e),
        })?;
        if meta.is_dir() {
            walk(input, &mut files)?;
        } else {
            files.push(open_checked(input)?);
        }
    }
    if files.is_empty() {
        let names: Vec<String> = inputs.iter().map(|p| format!("'{}'", p.display())).collect();
        return Err(Error::NoInputFiles(names.join(", ")));
    }
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<InputFile>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("cannot list input directory", dir))? {
        let entry = entry.map_err(Error::io("cannot list input directory", dir))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
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
            files.push(open_checked(&path)?);
        }
    }
    Ok(())
}

fn open_checked(path: &Path) -> Result<InputFile> {
    let file = File::open(path).map_err(Error::io("cannot read input file", path))?;
    let len = file.metadata().map_err(Error::io("cannot read input file", path))?.len();
    Ok(InputFile { path: path.to_path_buf(), len })
}

/// Cuts files into splits of at most `split_size` bytes. Empty files have no split; gzip
/// files and whole-file input have one split per file; tera splits hold whole records.
pub fn plan_splits(files: &[InputFile], split_size: u64, format: InputFormat) -> Result<Vec<Split>> {
    let mut splits = Vec::new();
    for file in files {
        let whole = format == InputFormat::WholeFile || (format == InputFormat::Text && is_gzip(&file.path));
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
            _ => split_size.max(1),
        };
        let mut start = 0;
        while start < file.len {
            let end = (start + size).min(file.len);
            splits.push(Split { path: file.path.clone(), start, end, first_line: 0 });
            start = end;
        }
    }
    Ok(splits)
}

/// Sets each text split's `first_line`: one pass over each file counting newlines.
pub fn number_lines(splits: &mut [Split]) -> Result<()> {
    let mut i = 0;
    while i < splits.len() {
        let path = splits[i].path.clone();
        let mut file = BufReader::with_capacity(1 << 20, crate::storage::open(&path)?);
        let (mut pos, mut newlines) = (0u64, 0u64);
        while i < splits.len() && splits[i].path == path {
            let split = &mut splits[i];
            if split.start == 0 {
                split.first_line = 1;
            } else {
                // Newlines before byte start - 1; the line after the next one is the first.
                let target = split.start - 1;
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
                split.first_line = newlines + 2;
            }
            i += 1;
        }
    }
    Ok(())
}

/// One record as read from a split.
pub struct RawRecord<'a> {
    /// Offset of the record in its file.
    pub offset: u64,
    /// 1-based line number, or 0 when unknown.
    pub line_number: u64,
    /// The record's bytes, without a line terminator.
    pub bytes: &'a [u8],
    /// The record as text; empty for a tera record that is not UTF-8.
    pub text: &'a str,
}

/// Reads the records of a split in any input format.
pub enum RecordReader {
    /// Lines of text, possibly gzip-compressed.
    Lines(LineReader),
    /// One whole file.
    Whole {
        /// The file.
        path: PathBuf,
        /// Its contents, once read.
        contents: Option<String>,
    },
    /// Fixed-size tera records.
    Tera {
        /// The file.
        path: PathBuf,
        /// Reader positioned at the next record.
        reader: BufReader<std::io::Take<Box<dyn crate::storage::Source>>>,
        /// Offset of the next record.
        pos: u64,
        /// The current record.
        buf: [u8; TERA_RECORD as usize],
    },
}

impl RecordReader {
    /// Opens a split.
    pub fn open(split: &Split, format: InputFormat) -> Result<RecordReader> {
        let path = &split.path;
        match format {
            InputFormat::Text => Ok(RecordReader::Lines(LineReader::open(split)?)),
            InputFormat::WholeFile => Ok(RecordReader::Whole { path: path.clone(), contents: None }),
            InputFormat::Tera => {
                let mut file = crate::storage::open(path)?;
                file.seek(SeekFrom::Start(split.start)).map_err(Error::io("cannot read input file", path))?;
                let reader = BufReader::with_capacity(256 * 1024, file.take(split.end - split.start));
                Ok(RecordReader::Tera { path: path.clone(), reader, pos: split.start, buf: [0; TERA_RECORD as usize] })
            }
        }
    }

    /// The next record, or `None` at the end of the split.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        match self {
            RecordReader::Lines(lines) => Ok(lines.next_line()?.map(|l| RawRecord {
                offset: l.offset,
                line_number: l.line_number,
                bytes: l.text.as_bytes(),
                text: l.text,
            })),
            RecordReader::Whole { path, contents } => {
                if contents.is_some() {
                    return Ok(None);
                }
                let mut bytes = Vec::new();
                crate::storage::open(path)?
                    .read_to_end(&mut bytes)
                    .map_err(Error::io("cannot read input file", &*path))?;
                let text = String::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
                    path: path.clone(),
                    offset: e.utf8_error().valid_up_to() as u64,
                })?;
                let text = contents.insert(text).as_str();
                let bytes = text.as_bytes();
                Ok(Some(RawRecord { offset: 0, line_number: 0, bytes, text }))
            }
            RecordReader::Tera { path, reader, pos, buf } => {
                match reader.read_exact(buf) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(Error::io("cannot read input file", &*path)(e)),
                }
                let offset = *pos;
                *pos += TERA_RECORD;
                Ok(Some(RawRecord {
                    offset,
                    line_number: 0,
                    bytes: &buf[..],
                    text: std::str::from_utf8(buf).unwrap_or(""),
                }))
            }
        }
    }

    /// Offset of the record last read or rejected.
    pub fn record_offset(&self) -> u64 {
        match self {
            RecordReader::Lines(lines) => lines.line_offset(),
            RecordReader::Whole { .. } => 0,
            RecordReader::Tera { pos, .. } => pos.saturating_sub(TERA_RECORD),
        }
    }

    /// Bytes of the split consumed so far.
    pub fn consumed(&self, split: &Split) -> u64 {
        match self {
            RecordReader::Lines(lines) => lines.position().saturating_sub(split.start),
            RecordReader::Whole { contents, .. } => contents.as_ref().map_or(0, |c| c.len() as u64),
            RecordReader::Tera { pos, .. } => pos - split.start,
        }
    }
}

/// Reads the lines of one split. Line terminators ("\n" or "\r\n") are not part of the line.
pub struct LineReader {
    reader: Box<dyn BufRead + Send>,
    path: PathBuf,
    /// Offset in the file of the next unread byte.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    line_offset: u64,
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
    /// Opens a split and positions the reader on its first line. A `.gz` file is one split
    /// read through gzip.
    pub fn open(split: &Split) -> Result<LineReader> {
        let path = &split.path;
        let io = || Error::io("cannot read input file", path);
        let mut file = crate::storage::open(path)?;
        let mut pos = split.start;
        let mut buf = Vec::new();
        let mut end = split.end;
        let reader: Box<dyn BufRead + Send> = if is_gzip(path) {
            end = u64::MAX;
            Box::new(BufReader::with_capacity(256 * 1024, flate2::read::MultiGzDecoder::new(BufReader::new(file))))
        } else if split.start > 0 {
            // The previous byte tells whether a line starts exactly at `start`; if not, the
            // partial line belongs to the previous split.
            file.seek(SeekFrom::Start(split.start - 1)).map_err(io())?;
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            let skipped = reader.read_until(b'\n', &mut buf).map_err(io())?;
            pos = split.start - 1 + skipped as u64;
            Box::new(reader)
        } else {
            Box::new(BufReader::with_capacity(256 * 1024, file))
        };
        Ok(LineReader {
            reader,
            path: path.clone(),
            pos,
            end,
            buf,
            line_offset: pos,
            next_line_number: split.first_line,
        })
    }

    /// The next line of the split, or `None` at its end.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        self.buf.clear();
        let n =
            self.reader.read_until(b'\n', &mut self.buf).map_err(Error::io("cannot read input file", &self.path))?;
        if n == 0 {
            return Ok(None);
        }
        let offset = self.pos;
        self.line_offset = offset;
        self.pos += n as u64;
        let line_number = self.next_line_number;
        if line_number > 0 {
            self.next_line_number += 1;
        }
        let mut bytes = &self.buf[..];
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(Line { offset, line_number, text })),
            Err(e) => Err(Error::InvalidUtf8 { path: self.path.clone(), offset: offset + e.valid_up_to() as u64 }),
        }
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
        let files = [InputFile { path: path.to_path_buf(), len }];
        let mut out = Vec::new();
        let mut splits = plan_splits(&files, split_size, InputFormat::Text).unwrap();
        number_lines(&mut splits).unwrap();
        for split in splits {
            let mut reader = LineReader::open(&split).unwrap();
            while let Some(line) = reader.next_line().unwrap() {
                out.push((line.offset, format!("{}:{}", line.line_number, line.text)));
            }
        }
        out
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
    fn invalid_utf8_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.txt");
        std::fs::write(&path, b"ok\nab\xffcd\n").unwrap();
        let split = Split { path: path.clone(), start: 0, end: 9, first_line: 0 };
        let mut reader = LineReader::open(&split).unwrap();
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
        for name in ["b/sub/z.txt", "b/a.txt", "a.txt", ".hidden", ".git/x", "c.txt"] {
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
    fn missing_and_empty_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(discover(&[dir.path().join("nope")]), Err(Error::InputMissing(_))));
        assert!(matches!(discover(&[dir.path().to_path_buf()]), Err(Error::NoInputFiles(_))));
    }
}
