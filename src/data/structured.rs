//! Structured input formats: `csv` (RFC 4180 records, read with the `csv` crate) and `jsonl`
//! (one JSON value per line, checked with `serde_json`).
//!
//! A csv file is read whole by one map task, as a `.gz` file is: a quote changes the meaning of
//! every byte after it, so where a record starts can only be known by parsing from the file's
//! start, and a split that resynchronised by parsing its file's prefix would read that prefix
//! once per split. A record's fields reach the job as one JSON array of strings (`["a","b,c"]`):
//! one line whatever the fields hold (quoted newlines, commas, tabs), and any JSON parser gives
//! the fields back. A UTF-8 byte-order mark at the start of a file is dropped; CRLF and LF end
//! records alike; a header is a record like any other.
//!
//! jsonl is split like text (records are lines); each line must be one JSON value (a UTF-8
//! byte-order mark that starts the file is dropped), else it is a bad record that names the file
//! and the line.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// The records of one csv file.
pub struct CsvRecords {
    path: PathBuf,
    reader: csv::Reader<Box<dyn crate::data::storage::Source>>,
    record: csv::ByteRecord,
    json: String,
    offset: u64,
    line: u64,
    limit: u64,
}

impl CsvRecords {
    /// Opens a csv file; records larger than `limit` bytes are errors.
    pub fn open(path: &std::path::Path, limit: u64) -> Result<CsvRecords> {
        let source = crate::data::storage::open(path)?;
        let reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(source);
        Ok(CsvRecords {
            path: path.to_path_buf(),
            reader,
            record: csv::ByteRecord::new(),
            json: String::new(),
            offset: 0,
            line: 0,
            limit,
        })
    }

    /// Reads the next record; false at the end of the file.
    pub fn advance(&mut self) -> Result<bool> {
        self.json.clear();
        let read = self.reader.read_byte_record(&mut self.record);
        let (offset, line) = match self.record.position() {
            Some(p) => (p.byte(), p.line()),
            None => (self.reader.position().byte(), self.reader.position().line()),
        };
        (self.offset, self.line) = (offset, line);
        match read {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            Err(e) => return Err(bad(&self.path, "csv", line, e.to_string())),
        }
        let size = self.record.as_slice().len() as u64;
        if size > self.limit {
            return Err(Error::RecordTooLarge { path: self.path.clone(), offset, size, limit: self.limit });
        }
        let mut fields = Vec::with_capacity(self.record.len());
        for field in &self.record {
            let text = std::str::from_utf8(field)
                .map_err(|e| Error::InvalidUtf8 { path: self.path.clone(), offset: offset + e.valid_up_to() as u64 })?;
            fields.push(text);
        }
        self.json = serde_json::to_string(&fields).map_err(|e| bad(&self.path, "csv", line, e.to_string()))?;
        Ok(true)
    }

    /// The record last read, as a JSON array of its fields, with its offset and line number.
    pub fn record(&self) -> (u64, u64, &str) {
        (self.offset, self.line, &self.json)
    }

    /// Offset of the record last read or rejected.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes of the file parsed so far.
    pub fn consumed(&self) -> u64 {
        self.reader.position().byte()
    }
}

/// A jsonl line as the job sees it: without a byte-order mark that starts the file.
pub fn jsonl_text(offset: u64, text: &str) -> &str {
    if offset == 0 { text.strip_prefix('\u{feff}').unwrap_or(text) } else { text }
}

/// Checks that a jsonl line is one JSON value.
pub fn check_jsonl(path: &std::path::Path, line: u64, text: &str) -> Result<()> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| bad(path, "jsonl", line, format!("not one JSON value: {e}")))
}

fn bad(path: &std::path::Path, format: &'static str, line: u64, reason: String) -> Error {
    Error::BadRecord { format, path: path.to_path_buf(), line, reason }
}
