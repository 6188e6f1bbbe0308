//! Word count: a word is a maximal run of alphabetic characters (`char::is_alphabetic`),
//! lowercased with `str::to_lowercase`; its value is how many times it occurs.

use super::{Job, MapContext, ONE, Record, ReduceContext, ShortKey, Values};
use crate::error::Result;

/// The word count job, with a folding combiner that sums counts inside each map task.
pub struct WordCount;

impl Job for WordCount {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        for_each_word_key(record.text, &mut Counts(ctx));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        ctx.write_sum(key, values)
    }

    fn sums_counts(&self) -> bool {
        true
    }
}

/// Emits each word with a count of 1.
struct Counts<'c, 'a>(&'c mut MapContext<'a>);

impl WordSink for Counts<'_, '_> {
    #[inline(always)]
    fn short(&mut self, key: ShortKey) {
        self.0.emit_short(key, &ONE);
    }

    #[inline(never)]
    fn text(&mut self, word: &str) {
        self.0.emit(word.as_bytes(), &ONE);
    }
}

/// Longest word lowercased on the stack; longer ones are lowercased into a `String`.
const STACK_WORD: usize = 64;

/// What the tokenizer hands each word to, lowercased.
pub trait WordSink {
    /// An ASCII word of at most [`ShortKey::MAX`] bytes, as the integers built while scanning
    /// it. Called from the tokenizer's loop: keep it small, so that it is inlined there.
    fn short(&mut self, key: ShortKey);
    /// Any other word: longer, or with a non-ASCII letter.
    fn text(&mut self, word: &str);
}

/// Calls `f` with every word of `text`, lowercased: every maximal run of alphabetic characters
/// (`char::is_alphabetic`), lowercased as `str::to_lowercase` does.
///
/// ASCII is read 8 bytes at a time as an integer: a few arithmetic operations find which of
/// the 8 bytes are ASCII letters and lowercase them all at once, so a word of up to 16 ASCII
/// letters is found with two loads and reaches `f` as a [`WordSink::short`], its integers already
/// built: it is never copied or read again. Only non-ASCII characters are decoded; a word with
/// one, or longer than 16 bytes, reaches `f` as [`WordSink::text`], lowercased on the stack
/// when it fits. Nothing is allocated for words of up to 64 bytes.
#[inline]
pub fn for_each_word_key(text: &str, f: &mut impl WordSink) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    while i < n {
        // Skip to the next ASCII letter or non-ASCII byte.
        let x = load(bytes, i);
        let stop = letters(x).0 | (x & HIGH);
        if stop == 0 {
            i += 8;
            continue;
        }
        i += stop.trailing_zeros() as usize / 8;
        if bytes[i] >= 0x80 {
            i = non_ascii_start(text, i, f);
            continue;
        }
        let start = i;
        let (words, end) = ascii_run(bytes, i);
        i = end;
        if i < n && bytes[i] >= 0x80 && char_at(text, i).is_alphabetic() {
            // The word goes on past ASCII.
            i = other_word(text, start, f);
        } else if i - start <= ShortKey::MAX {
            f.short(ShortKey::from_padded(words, i - start));
        } else {
            long_ascii_word(&text[start..i], f);
        }
    }
}

/// A byte whose high bit is set, in each of 8 bytes.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// A byte of 1 in each of 8 bytes.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The 8 bytes of `bytes` from `i` as a little-endian integer, zero past its end. Near the
/// end, the last 8 bytes are loaded and shifted down: no copy.
#[inline(always)]
fn load(bytes: &[u8], i: usize) -> u64 {
    let n = bytes.len();
    let load8 = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    if i + 8 <= n {
        load8(i)
    } else if n >= 8 {
        load8(n - 8).checked_shr(8 * (i + 8 - n) as u32).unwrap_or(0)
    } else {
        short_load(bytes, i)
    }
}

/// [`load`] from a text of fewer than 8 bytes.
#[inline(never)]
fn short_load(bytes: &[u8], i: usize) -> u64 {
    let rest = bytes.get(i..).unwrap_or_default();
    rest.iter().rev().fold(0, |v, &b| (v << 8) | u64::from(b))
}

/// Of 8 bytes: the high bit of each one that is an ASCII letter, and each one lowercased if it
/// is (other bytes hold anything). A byte is cut to 7 bits before the additions, so that no
/// byte carries into the next; a letter ORed with 0x20 is its lowercase.
#[inline(always)]
fn letters(x: u64) -> (u64, u64) {
    let lower = (x | (0x20 * ONES)) & (0x7f * ONES);
    let from_a = lower + (0x80 - u64::from(b'a')) * ONES;
    let past_z = lower + (0x80 - u64::from(b'z') - 1) * ONES;
    (from_a & !past_z & !x & HIGH, lower)
}

/// The number of letters that lead 8 bytes whose letters are `mask` ([`letters`]), and the
/// lowercase of those bytes, zero after them.
#[inline(always)]
fn leading(mask: u64, lower: u64) -> (usize, u64) {
    // The high bit of each byte that is not a letter; the lowest marks the end of the run.
    let others = !mask & HIGH;
    if others == 0 {
        return (8, lower);
    }
    let keep = ((others & others.wrapping_neg()) >> 7) - 1;
    (others.trailing_zeros() as usize / 8, lower & keep)
}

/// The run of ASCII letters of `bytes` from `start`: its first 16 bytes lowercased as two
/// little-endian integers (zero past its end), and where it ends.
#[inline(always)]
fn ascii_run(bytes: &[u8], start: usize) -> ([u64; 2], usize) {
    let (mask, lower) = letters(load(bytes, start));
    let (run, lo) = leading(mask, lower);
    if run < 8 {
        return ([lo, 0], start + run);
    }
    let (mask, lower) = letters(load(bytes, start + 8));
    let (run, hi) = leading(mask, lower);
    let mut end = start + 8 + run;
    if run == 8 {
        while end < bytes.len() && bytes[end].is_ascii_alphabetic() {
            end += 1;
        }
    }
    ([lo, hi], end)
}

/// Calls `f` with every word of `text`, lowercased, as text: the words of
/// [`for_each_word_key`].
#[inline]
pub fn for_each_word(text: &str, f: impl FnMut(&str)) {
    /// Hands every word to a closure as text.
    struct Text<F>(F);
    impl<F: FnMut(&str)> WordSink for Text<F> {
        fn short(&mut self, key: ShortKey) {
            // A short key of the tokenizer is ASCII.
            (self.0)(std::str::from_utf8(key.bytes().as_slice()).unwrap_or_default());
        }
        fn text(&mut self, word: &str) {
            (self.0)(word);
        }
    }
    for_each_word_key(text, &mut Text(f));
}

/// At byte `i` of `text`, the start of a non-ASCII character: if it is a letter, hands the
/// word that starts there to `f`. Returns where scanning goes on.
#[inline(never)]
fn non_ascii_start(text: &str, i: usize, f: &mut dyn WordSink) -> usize {
    let c = char_at(text, i);
    if c.is_alphabetic() { other_word(text, i, f) } else { i + c.len_utf8() }
}

/// Hands `f` the word of `text` that starts at byte `start` and holds a non-ASCII letter,
/// lowercased. Returns its end.
#[inline(never)]
fn other_word(text: &str, start: usize, f: &mut dyn WordSink) -> usize {
    let end = text[start..].char_indices().find(|(_, c)| !c.is_alphabetic()).map_or(text.len(), |(i, _)| start + i);
    lowercase_unicode(&text[start..end], &mut |word| f.text(word));
    end
}

/// Hands `f` an ASCII word longer than a short key, lowercased.
#[inline(never)]
fn long_ascii_word(word: &str, f: &mut dyn WordSink) {
    let mut buf = [0u8; STACK_WORD];
    if let Some(lower) = buf.get_mut(..word.len()) {
        lower.copy_from_slice(word.as_bytes());
        lower.make_ascii_lowercase();
        // ASCII stays ASCII.
        f.text(std::str::from_utf8(lower).unwrap_or_default());
    } else {
        f.text(&word.to_ascii_lowercase());
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

    /// The words of `for_each_word_key`, checking that each short ASCII word comes as a
    /// short key and every other as text.
    fn words(line: &str) -> Vec<String> {
        struct Check(Vec<String>, bool);
        impl WordSink for Check {
            fn short(&mut self, key: ShortKey) {
                let word = String::from_utf8(key.bytes().as_slice().to_vec()).unwrap();
                assert!(word.is_ascii() && word.len() <= ShortKey::MAX, "{word:?}");
                assert_eq!(ShortKey::new(word.as_bytes()), Some(key));
                self.0.push(word);
            }
            fn text(&mut self, word: &str) {
                // A short ASCII word as text only from a non-ASCII line: a letter such as
                // the Kelvin sign (U+212A) lowercases to ASCII.
                assert!(!word.is_ascii() || word.len() > ShortKey::MAX || !self.1, "{word:?}");
                self.0.push(word.to_string());
            }
        }
        let mut check = Check(Vec::new(), line.is_ascii());
        for_each_word_key(line, &mut check);
        let v = check.0;
        let mut text = Vec::new();
        for_each_word(line, |w| text.push(w.to_string()));
        assert_eq!(text, v);
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

    /// ASCII text where the 8-byte loads fall everywhere: words of 0 to 40 letters, any ASCII
    /// byte between them (capitals, the bytes next to the letters: `@`, `[`, `` ` ``, `{`),
    /// and a non-ASCII letter or not next to a word.
    fn ascii_piece() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "[a-zA-Z]{0,40}",
            "[\\x00-\\x7f]{0,12}",
            proptest::sample::select(vec!["@", "[", "`", "{", "Z", "z", "A", "a", "é", "É", "ß", "1", "€", "\u{300}"])
                .prop_map(str::to_string),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The 8-byte ASCII loop gives the words of the simple rule at every alignment and
        /// length, at the end of the text, and where ASCII words run into non-ASCII letters.
        #[test]
        fn word_keys_equal_the_simple_rule_on_mostly_ascii_text(
            pieces in proptest::collection::vec(ascii_piece(), 0..12)
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
        assert_eq!(words("@ABCDEFGHIJKLMNOP[qrstuvwxyzabcdefg`Zz{"), ["abcdefghijklmnop", "qrstuvwxyzabcdefg", "zz"]);
        assert_eq!(words("abcdefghé abcdefgh"), ["abcdefghé", "abcdefgh"]);
        // The Kelvin sign lowercases to an ASCII k: the word is text, and counts as "k".
        assert_eq!(words("\u{212a} \u{212a}elvin \u{212a}\u{fffc}"), ["k", "kelvin", "k"]);
    }
}
