//! Deterministic sample data: the original system's word-search workload, and English-like
//! text for word counts and benchmarks. The same seed always gives the same bytes.

use std::io::{BufWriter, Write};
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Shape of the word-search workload.
#[derive(Debug, Clone)]
pub struct WordSearchSpec {
    /// Number of random strings (input lines).
    pub strings: u64,
    /// Longest string; lengths are uniform in 1..=max_len.
    pub max_len: u32,
    /// Number of target words.
    pub targets: u32,
    /// Length of each target word.
    pub target_len: u32,
    /// Seed of the generator.
    pub seed: u64,
}

fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    // Multiply-shift: unbiased enough for sample data, and deterministic.
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

fn lowercase_word(rng: &mut ChaCha8Rng, len: u32, out: &mut Vec<u8>) {
    for _ in 0..len {
        out.push(b'a' + below(rng, 26) as u8);
    }
}

/// Writes `DIR/strings.txt` (one random lowercase string per line) and `DIR/targets.txt`.
pub fn word_search(dir: &Path, spec: &WordSearchSpec) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut line = Vec::with_capacity(64);
    let strings = dir.join("strings.txt");
    write_file(&strings, |out| {
        for _ in 0..spec.strings {
            line.clear();
            let len = 1 + below(&mut rng, u64::from(spec.max_len.max(1))) as u32;
            lowercase_word(&mut rng, len, &mut line);
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    })?;
    let targets = dir.join("targets.txt");
    write_file(&targets, |out| {
        for _ in 0..spec.targets {
            line.clear();
            lowercase_word(&mut rng, spec.target_len.max(1), &mut line);
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    })
}

/// A vocabulary for English-like text: frequent words first, so that picking by a Zipf-like
/// law gives a realistic word-count distribution.
const VOCABULARY: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "that",
    "is",
    "was",
    "he",
    "for",
    "it",
    "with",
    "as",
    "his",
    "on",
    "be",
    "at",
    "by",
    "i",
    "this",
    "had",
    "not",
    "are",
    "but",
    "from",
    "or",
    "have",
    "an",
    "they",
    "which",
    "one",
    "you",
    "were",
    "her",
    "all",
    "she",
    "there",
    "would",
    "their",
    "we",
    "him",
    "been",
    "has",
    "when",
    "who",
    "will",
    "more",
    "no",
    "if",
    "out",
    "so",
    "said",
    "what",
    "up",
    "its",
    "about",
    "into",
    "than",
    "them",
    "can",
    "only",
    "other",
    "new",
    "some",
    "could",
    "time",
    "these",
    "two",
    "may",
    "then",
    "do",
    "first",
    "any",
    "my",
    "now",
    "such",
    "like",
    "our",
    "over",
    "man",
    "me",
    "even",
    "most",
    "made",
    "after",
    "also",
    "did",
    "many",
    "before",
    "must",
    "through",
    "back",
    "years",
    "where",
    "much",
    "your",
    "way",
    "well",
    "down",
    "should",
    "because",
    "each",
    "just",
    "those",
    "people",
    "how",
    "too",
    "little",
    "state",
    "good",
    "very",
    "make",
    "world",
    "still",
    "own",
    "see",
    "men",
    "work",
    "long",
    "get",
    "here",
    "between",
    "both",
    "life",
    "being",
    "under",
    "never",
    "day",
    "same",
    "another",
    "know",
    "while",
    "last",
    "might",
    "us",
    "great",
    "old",
    "year",
    "off",
    "come",
    "since",
    "against",
    "go",
    "came",
    "right",
    "used",
    "take",
    "three",
    "river",
    "mountain",
    "harbour",
    "lantern",
    "orchard",
    "whisper",
    "meadow",
    "voyage",
    "ember",
    "thistle",
    "granite",
    "willow",
    "cascade",
    "falcon",
    "quarry",
    "saffron",
    "tundra",
    "velvet",
    "zephyr",
    "juniper",
    "marble",
    "nectar",
    "obsidian",
    "pilgrim",
    "quill",
    "rampart",
    "sextant",
    "tapestry",
    "umber",
    "vintage",
    "wharf",
    "yonder",
    "zenith",
    "café",
    "naïve",
    "façade",
    "über",
    "señor",
    "éclair",
    "ångström",
    "smörgåsbord",
    "straße",
    "jalapeño",
];

/// Words where the word rule (Unicode's Alphabetic property, `str::to_lowercase`) differs
/// from narrower ones such as "letters": combining marks (a decomposed `ï`, a Devanagari
/// virama and vowel sign), letter numbers (Nl: `Ⅻ`, `ⅷ`, `〇`), circled letters (So: `Ⓐ`),
/// 4-byte letters, a final sigma, a titlecase letter, a dotted capital I, and a digit of
/// another script (`٣`, not alphabetic).
const TRICKY: &[&str] = &[
    "nai\u{308}ve",
    "Chapter\u{a0}Ⅻ",
    "ⅷ",
    "Ⓐbc",
    "namaस्ते",
    "〇",
    "x𐍁y",
    "𝔘nicode",
    "ΟΔΟΣ",
    "ǅemal",
    "İstanbul",
    "ÜBER",
    "über",
    "naïve",
    "٣",
];

/// Separators where line and trim rules differ: a unit separator (`\x1f`, not White_Space),
/// a no-break space (White_Space) and a lone carriage return inside a line.
const TRICKY_SEPARATORS: &[&str] = &[" \x1f", "\u{a0}", "\r", " ٣ "];

/// Writes about `bytes` bytes of English-like text into `files` files `DIR/part-NNN.txt`.
pub fn text(dir: &Path, bytes: u64, files: u32, seed: u64) -> Result<()> {
    text_with(dir, bytes, files, seed, false)
}

/// [`text`], and with `unicode` also words and separators where text rules differ
/// ([`TRICKY`], [`TRICKY_SEPARATORS`]), some `\r\n` line ends, and a last line of each file
/// that ends with a `\r` and no `\n`. Without `unicode`, the same bytes as [`text`].
pub fn text_with(dir: &Path, bytes: u64, files: u32, seed: u64, unicode: bool) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io("cannot create", dir))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let files = files.max(1);
    let per_file = bytes / u64::from(files);
    // Cumulative Zipf weights 1/(rank+1).
    let mut cumulative = Vec::with_capacity(VOCABULARY.len());
    let mut total = 0.0;
    for rank in 0..VOCABULARY.len() {
        total += 1.0 / (rank as f64 + 1.0);
        cumulative.push(total);
    }
    let mut line = String::with_capacity(128);
    for f in 0..files {
        let path = dir.join(format!("part-{f:03}.txt"));
        write_file(&path, |out| {
            let mut written = 0u64;
            while written < per_file {
                line.clear();
                let words = 4 + below(&mut rng, 14);
                for i in 0..words {
                    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                    let mut word = VOCABULARY[cumulative.partition_point(|&c| c < x).min(VOCABULARY.len() - 1)];
                    if unicode && below(&mut rng, 5) == 0 {
                        word = TRICKY[below(&mut rng, TRICKY.len() as u64) as usize];
                    }
                    if unicode && i > 0 && below(&mut rng, 8) == 0 {
                        line.push_str(TRICKY_SEPARATORS[below(&mut rng, TRICKY_SEPARATORS.len() as u64) as usize]);
                    }
                    if i == 0 {
                        let mut chars = word.chars();
                        if let Some(c) = chars.next() {
                            line.extend(c.to_uppercase());
                            line.push_str(chars.as_str());
                        }
                    } else {
                        line.push(' ');
                        line.push_str(word);
                    }
                    match below(&mut rng, 20) {
                        0 => line.push(','),
                        1 => line.push(';'),
                        _ => {}
                    }
                }
                line.push_str(if below(&mut rng, 4) == 0 { "?" } else { "." });
                line.push_str(if unicode && below(&mut rng, 8) == 0 { "\r\n" } else { "\n" });
                out.write_all(line.as_bytes())?;
                written += line.len() as u64;
            }
            if unicode {
                out.write_all("Last line, Ⅻ\r".as_bytes())?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn write_file(path: &Path, body: impl FnOnce(&mut BufWriter<std::fs::File>) -> std::io::Result<()>) -> Result<()> {
    let file = std::fs::File::create(path).map_err(Error::io("cannot create", path))?;
    let mut out = BufWriter::new(file);
    body(&mut out).and_then(|_| out.flush()).map_err(Error::io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = WordSearchSpec { strings: 1000, max_len: 15, targets: 10, target_len: 3, seed: 7 };
        word_search(a.path(), &spec).unwrap();
        word_search(b.path(), &spec).unwrap();
        for f in ["strings.txt", "targets.txt"] {
            assert_eq!(std::fs::read(a.path().join(f)).unwrap(), std::fs::read(b.path().join(f)).unwrap());
        }
        let strings = std::fs::read_to_string(a.path().join("strings.txt")).unwrap();
        assert_eq!(strings.lines().count(), 1000);
        assert!(strings.lines().all(|l| (1..=15).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase())));
        text(a.path(), 10_000, 2, 1).unwrap();
        text(b.path(), 10_000, 2, 1).unwrap();
        assert_eq!(
            std::fs::read(a.path().join("part-001.txt")).unwrap(),
            std::fs::read(b.path().join("part-001.txt")).unwrap()
        );
    }

    #[test]
    fn unicode_text_has_every_tricky_shape_and_plain_text_none() {
        let plain = tempfile::tempdir().unwrap();
        let unicode = tempfile::tempdir().unwrap();
        text(plain.path(), 200_000, 1, 5).unwrap();
        text_with(unicode.path(), 200_000, 1, 5, true).unwrap();
        let plain = std::fs::read_to_string(plain.path().join("part-000.txt")).unwrap();
        let unicode = std::fs::read_to_string(unicode.path().join("part-000.txt")).unwrap();
        for needle in TRICKY.iter().chain(TRICKY_SEPARATORS).chain(&["\r\n"]) {
            assert!(unicode.contains(needle), "no {needle:?} in the unicode text");
        }
        assert!(unicode.ends_with("\r"));
        assert!(!plain.contains(['\r', '\x1f', '\u{a0}', 'Ⅻ', '٣']), "plain text has a tricky character");
    }
}
