//! Compressed files: text input compressed with gzip, bzip2, zstd or xz, recognized by the
//! file name's extension and decompressed as one stream by one map task; and job output
//! compressed with gzip or zstd (`--output-compression`).

use std::io::{BufReader, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// A compression format mr reads input in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputCompression {
    /// `.gz`: gzip, several concatenated members read as one stream.
    Gzip,
    /// `.bz2`: bzip2, several concatenated streams read as one.
    Bzip2,
    /// `.zst`: Zstandard, several frames read as one stream.
    Zstd,
    /// `.xz`: xz, several concatenated streams read as one.
    Xz,
}

/// Extensions of compressed formats mr does not read, with the format's name.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("lz4", "LZ4"),
    ("lzo", "LZO"),
    ("lzma", "LZMA (legacy .lzma)"),
    ("snappy", "Snappy"),
    ("sz", "Snappy (framed)"),
    ("z", "Unix compress (.Z)"),
    ("7z", "7-Zip"),
    ("zip", "ZIP"),
    ("br", "Brotli"),
    ("lz", "lzip"),
    ("deflate", "raw DEFLATE"),
    ("rar", "RAR"),
    ("tgz", "a gzip-compressed tar archive"),
    ("tbz2", "a bzip2-compressed tar archive"),
];

impl InputCompression {
    /// The compression of a text input file by its name: `None` for a plain file, an error
    /// naming the format for a compressed format mr does not read.
    pub fn of(path: &Path) -> Result<Option<InputCompression>> {
        let Some(ext) = path.extension().and_then(|e| e.to_str()) else { return Ok(None) };
        let found = match ext {
            "gz" => Some(InputCompression::Gzip),
            "bz2" => Some(InputCompression::Bzip2),
            "zst" => Some(InputCompression::Zstd),
            "xz" => Some(InputCompression::Xz),
            _ => None,
        };
        if found.is_some() {
            return Ok(found);
        }
        // Matched in any case: `.Z`, `.ZIP`.
        let lower = ext.to_ascii_lowercase();
        match UNSUPPORTED.iter().find(|(e, _)| *e == lower) {
            Some((_, name)) => Err(Error::UnsupportedCompression { path: path.to_path_buf(), format: name }),
            None => Ok(None),
        }
    }

    /// A reader of the decompressed bytes of `compressed`.
    pub fn decoder(self, compressed: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>> {
        let buffered = BufReader::new(compressed);
        Ok(match self {
            InputCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
            InputCompression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(buffered)),
            InputCompression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| Error::Job(format!("cannot start a zstd decoder: {e}")))?,
            ),
            InputCompression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(buffered)),
        })
    }
}

/// How part files are compressed (`--output-compression`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputCompression {
    /// Plain part files.
    #[default]
    None,
    /// `part-r-NNNNN.gz`, gzip.
    Gzip,
    /// `part-r-NNNNN.zst`, Zstandard.
    Zstd,
}

impl OutputCompression {
    /// The spelling of the flag and of the wire.
    pub fn name(self) -> &'static str {
        match self {
            OutputCompression::None => "none",
            OutputCompression::Gzip => "gzip",
            OutputCompression::Zstd => "zstd",
        }
    }

    /// The compression named `name` (as [`OutputCompression::name`] spells it; empty: none).
    pub fn from_name(name: &str) -> Option<OutputCompression> {
        match name {
            "" | "none" => Some(OutputCompression::None),
            "gzip" => Some(OutputCompression::Gzip),
            "zstd" => Some(OutputCompression::Zstd),
            _ => None,
        }
    }

    /// The extension part files get, with its dot (empty for none).
    pub fn extension(self) -> &'static str {
        match self {
            OutputCompression::None => "",
            OutputCompression::Gzip => ".gz",
            OutputCompression::Zstd => ".zst",
        }
    }

    /// A writer that compresses into `out`; [`Encoder::finish`] ends the stream.
    pub fn encoder<W: Write>(self, out: W) -> Result<Encoder<W>> {
        Ok(match self {
            OutputCompression::None => Encoder::Plain(out),
            OutputCompression::Gzip => {
                Encoder::Gzip(flate2::write::GzEncoder::new(out, flate2::Compression::default()))
            }
            OutputCompression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(out, 3)
                    .map_err(|e| Error::Job(format!("cannot start a zstd encoder: {e}")))?,
            ),
        })
    }
}

/// A part file's writer: plain or compressed.
pub enum Encoder<W: Write> {
    /// No compression.
    Plain(W),
    /// gzip.
    Gzip(flate2::write::GzEncoder<W>),
    /// Zstandard.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Ends the compressed stream and returns the inner writer.
    pub fn finish(self) -> std::io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        let of = |p: &str| InputCompression::of(Path::new(p));
        assert_eq!(of("a.txt").unwrap(), None);
        assert_eq!(of("a").unwrap(), None);
        assert_eq!(of("a.gz").unwrap(), Some(InputCompression::Gzip));
        assert_eq!(of("a.bz2").unwrap(), Some(InputCompression::Bzip2));
        assert_eq!(of("a.zst").unwrap(), Some(InputCompression::Zstd));
        assert_eq!(of("a.xz").unwrap(), Some(InputCompression::Xz));
        for (name, format) in [("a.lz4", "LZ4"), ("a.Z", "Unix compress"), ("a.7z", "7-Zip"), ("a.snappy", "Snappy")] {
            let err = of(name).unwrap_err().to_string();
            assert!(err.contains(format) && err.contains(name), "{err}");
        }
    }

    #[test]
    fn output_compression_round_trips() {
        for c in [OutputCompression::None, OutputCompression::Gzip, OutputCompression::Zstd] {
            let mut e = c.encoder(Vec::new()).unwrap();
            e.write_all(b"a\tb\n").unwrap();
            let bytes = e.finish().unwrap();
            let decoded = match c {
                OutputCompression::None => bytes,
                OutputCompression::Gzip | OutputCompression::Zstd => {
                    let kind =
                        if c == OutputCompression::Gzip { InputCompression::Gzip } else { InputCompression::Zstd };
                    let mut out = Vec::new();
                    kind.decoder(Box::new(std::io::Cursor::new(bytes))).unwrap().read_to_end(&mut out).unwrap();
                    out
                }
            };
            assert_eq!(decoded, b"a\tb\n");
            assert_eq!(OutputCompression::from_name(c.name()), Some(c));
        }
    }
}
