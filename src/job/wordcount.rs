//! Word count: a word is a maximal run of alphabetic characters (`char::is_alphabetic`),
//! lowercased with `str::to_lowercase`; its value is how many times it occurs.

use super::{Job, MapContext, ONE, Record, ReduceContext, Values, sum_counts};
use crate::error::Result;

/// The word count job, with a combiner that sums counts inside each map task.
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

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut Values<'_>, out: &mut dyn FnMut(&[u8])) -> Result<()> {
        out(&sum_counts(values)?.to_be_bytes());
        Ok(())
    }
}

/// Calls `f` with every word of `text`, lowercased.
pub fn for_each_word(text: &str, mut f: impl FnMut(&str)) {
    let mut lower = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let Some(start) = rest.find(char::is_alphabetic) else { return };
        rest = &rest[start..];
        let end = rest.find(|c: char| !c.is_alphabetic()).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if word.is_ascii() {
            lower.clear();
            lower.push_str(word);
            lower.make_ascii_lowercase();
            f(&lower);
        } else {
            f(&word.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        let mut v = Vec::new();
        for_each_word(line, |w| v.push(w.to_string()));
        v
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
