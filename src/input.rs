//! Input: finding the files, cutting them into splits, and reading a split's records.
//!
//! A split is a byte range `[start, end)` of one file. A line belongs to the split that holds
//! its first byte: a split that starts mid-line skips to the next line start, and the last line
//! of a split is read past `end` to its newline. So every line is read exactly once, whatever
//! the split size, as Hadoop's line record reader does.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
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

/// A byte range of one input file: the input of one map task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The file.
    pub path: PathBuf,
    /// First byte of the range.
    pub start: u64,
    /// One past the last byte of the range.
    pub end: u64,
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

/// Cuts files into splits of at most `split_size` bytes. Empty files have no split.
pub fn plan_splits(files: &[InputFile], split_size: u64) -> Vec<Split> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    for file in files {
        let mut start = 0;
        while start < file.len {
            let end = (start + split_size).min(file.len);
            splits.push(Split { path: file.path.clone(), start, end });
            start = end;
        }
    }
    splits
}

/// Reads the lines of one split. Line terminators ("\n" or "\r\n") are not part of the line.
pub struct LineReader {
    reader: BufReader<File>,
    path: PathBuf,
    /// Offset in the file of the next unread byte.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    line_offset: u64,
}

/// One line of input and where it starts in its file.
pub struct Line<'a> {
    /// Byte offset of the line's first byte in the file.
    pub offset: u64,
    /// The line, without its terminator.
    pub text: &'a str,
}

impl LineReader {
    /// Opens a split and positions the reader on its first line.
    pub fn open(split: &Split) -> Result<LineReader> {
        let path = &split.path;
        let file = File::open(path).map_err(Error::io("cannot read input file", path))?;
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        let mut pos = split.start;
        let mut buf = Vec::new();
        if split.start > 0 {
            // The previous byte tells whether a line starts exactly at `start`; if not, the
            // partial line belongs to the previous split.
            reader.seek(SeekFrom::Start(split.start - 1)).map_err(Error::io("cannot read input file", path))?;
            let skipped = reader.read_until(b'\n', &mut buf).map_err(Error::io("cannot read input file", path))?;
            pos = split.start - 1 + skipped as u64;
        }
        Ok(LineReader { reader, path: path.clone(), pos, end: split.end, buf, line_offset: pos })
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
        let mut bytes = &self.buf[..];
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Some(Line { offset, text })),
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
        for split in plan_splits(&files, split_size) {
            let mut reader = LineReader::open(&split).unwrap();
            while let Some(line) = reader.next_line().unwrap() {
                out.push((line.offset, line.text.to_string()));
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
            for piece in text.split_inclusive('\n') {
                let line = piece.trim_end_matches('\n').trim_end_matches('\r');
                v.push((off, line.to_string()));
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
        let split = Split { path: path.clone(), start: 0, end: 9 };
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
