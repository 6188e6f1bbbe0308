//! Word count: a word is a maximal run of alphabetic characters (`char::is_alphabetic`),
//! lowercased with `str::to_lowercase`; its value is how many times it occurs.

use super::{Job, MapContext, ONE, Record, ReduceContext, Values, sum_counts};
use crate::error::{Error, Result};

/// The word count job, with a folding combiner that sums counts inside each map task.
pub struct WordCount;

impl Job for WordCount {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        for_each_word(record.text, |word| ctx.emit(word.as_bytes(), &ONE));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let total = sum_counts(values)?;
        ctx.write(key, itoa::Buffer::new().format(total).as_bytes())
    }

    fn folds(&self) -> bool {
        true
    }

    fn sums_counts(&self) -> bool {
        true
    }

    fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<()> {
        add_count(acc, value)
    }
}

/// Adds the count `value` to the count `acc` (both u64, see [`super::Codec`]), in place.
#[inline]
pub(crate) fn add_count(acc: &mut [u8], value: &[u8]) -> Result<()> {
    let acc_len = acc.len();
    match (<&mut [u8; 8]>::try_from(acc), <[u8; 8]>::try_from(value)) {
        (Ok(acc), Ok(value)) => {
            *acc = u64::from_be_bytes(*acc).saturating_add(u64::from_be_bytes(value)).to_be_bytes();
            Ok(())
        }
        (_, Ok(_)) => Err(Error::Job(format!("a count value has {} bytes, not 8", acc_len))),
        (_, Err(_)) => Err(Error::Job(format!("a count value has {} bytes, not 8", value.len()))),
    }
}

/// Longest word lowercased on the stack; longer ones are lowercased into a `String`.
const STACK_WORD: usize = 64;

/// Byte classes of the tokenizer: an ASCII lowercase letter, an ASCII capital, a byte of a
/// non-ASCII character, anything else.
const OTHER: u8 = 0;
const LOWER: u8 = 1;
const UPPER: u8 = 2;
const MULTI: u8 = 4;

static CLASS: [u8; 256] = {
    let mut table = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            b'a'..=b'z' => LOWER,
            b'A'..=b'Z' => UPPER,
            0x80.. => MULTI,
            _ => OTHER,
        };
        b += 1;
    }
    table
};

/// Calls `f` with every word of `text`, lowercased: every maximal run of alphabetic characters
/// (`char::is_alphabetic`), lowercased as `str::to_lowercase` does.
///
/// ASCII bytes are classified by a table; only non-ASCII characters are decoded. A word that
/// is already lowercase is passed as a slice of `text`, and an ASCII one of at most 64 bytes
/// is lowercased into a buffer on the stack: no allocation for such words. `f` is called from
/// one place for those, so that it can be inlined into the loop.
#[inline]
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut buf = [0u8; STACK_WORD];
    let mut i = 0;
    while i < n {
        // Find the start of a word.
        let class = CLASS[bytes[i] as usize];
        if class == OTHER {
            i += 1;
            continue;
        }
        if class == MULTI {
            let c = char_at(text, i);
            if !c.is_alphabetic() {
                i += c.len_utf8();
                continue;
            }
        }
        // Find its end, noting the classes of its bytes.
        let start = i;
        let mut seen = 0;
        loop {
            while i < n {
                let c = CLASS[bytes[i] as usize];
                if c.wrapping_sub(LOWER) > UPPER - LOWER {
                    break;
                }
                seen |= c;
                i += 1;
            }
            if i < n && CLASS[bytes[i] as usize] == MULTI {
                let c = char_at(text, i);
                if c.is_alphabetic() {
                    seen |= MULTI;
                    i += c.len_utf8();
                    continue;
                }
            }
            break;
        }
        let word = &text[start..i];
        let word = if seen == LOWER {
            word
        } else if seen & MULTI == 0 && word.len() <= STACK_WORD {
            let lower = &mut buf[..word.len()];
            lower.copy_from_slice(word.as_bytes());
            lower.make_ascii_lowercase();
            // ASCII stays ASCII.
            std::str::from_utf8(lower).unwrap_or_default()
        } else {
            other_word(word, &mut f);
            continue;
        };
        f(word);
    }
}

/// Calls `f` with a word that is not ASCII, or is longer than `STACK_WORD`, lowercased.
#[inline(never)]
fn other_word(word: &str, f: &mut dyn FnMut(&str)) {
    if word.is_ascii() {
        f(&word.to_ascii_lowercase());
    } else {
        lowercase_unicode(word, f);
    }
}

/// The character that starts at byte `i` of `text` (a character boundary).
#[inline]
fn char_at(text: &str, i: usize) -> char {
    text[i..].chars().next().unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// Calls `f` with `word.to_lowercase()`, built on the stack when it fits. `str::to_lowercase`
/// maps each character by `char::to_lowercase` except a capital sigma, whose lowercase depends
/// on its place in the word: such words take `str::to_lowercase` itself.
fn lowercase_unicode(word: &str, f: &mut dyn FnMut(&str)) {
    if word.len() <= STACK_WORD && !word.contains('\u{3a3}') {
        let mut buf = [0u8; STACK_WORD * 2];
        let mut len = 0;
        for c in word.chars().flat_map(char::to_lowercase) {
            if len + c.len_utf8() > buf.len() {
                return f(&word.to_lowercase());
            }
            len += c.encode_utf8(&mut buf[len..]).len();
        }
        // Whole characters were encoded.
        return f(std::str::from_utf8(&buf[..len]).unwrap_or_default());
    }
    f(&word.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut v = Vec::new();
        for_each_word(line, |w| v.push(w.to_string()));
        v
    }

    /// The word rule, simply: maximal runs of `char::is_alphabetic`, `str::to_lowercase`d.
    fn simple_words(text: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_alphabetic() {
                word.push(c);
            } else if !word.is_empty() {
                words.push(word.to_lowercase());
                word.clear();
            }
        }
        words
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The fast tokenizer gives the words of the simple rule on any text.
        #[test]
        fn fast_tokenizer_equals_the_simple_rule(text in "\\PC{0,80}") {
            proptest::prop_assert_eq!(words(&text), simple_words(&text));
        }

        /// Mixed scripts, capitals (sigma, dotted I), combining marks, letter numbers, circled
        /// letters, 4-byte letters, digits and punctuation between them, and long words.
        #[test]
        fn fast_tokenizer_equals_the_simple_rule_on_mixed_scripts(
            pieces in proptest::collection::vec(
                proptest::sample::select(vec![
                    "a", "Z", "Hello", "ΣΑΣ", "σ", "ς", "İ", "ß", "ẞ", "Ⅻ", "Ⓐ", "स्ते", "ﬃ", "𐍁", "〇", "x",
                    "ǅ", "Ⱥ", "é", "É", " ", ".", "1", "-", "\u{301}", "\u{200d}", "日本語", "Привет",
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOP",
                ]),
                0..40,
            )
        ) {
            let text = pieces.concat();
            proptest::prop_assert_eq!(words(&text), simple_words(&text));
        }
    }

    #[test]
    fn words_are_alphabetic_runs_lowercased() {
        assert_eq!(words("Hello, world! It's 2024-x"), ["hello", "world", "it", "s", "x"]);
        assert_eq!(words("Ünïcödé ÉTÉ café"), ["ünïcödé", "été", "café"]);
        assert_eq!(words(""), Vec::<String>::new());
        assert_eq!(words("123 ... ---"), Vec::<String>::new());
        assert_eq!(words("a1b2c"), ["a", "b", "c"]);
    }
}
