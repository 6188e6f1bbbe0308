//! index: an inverted index, word -> the sorted, de-duplicated list of the documents (input
//! files, as found from the input arguments) that contain it, as `word<TAB>doc,doc,...`.
//! Words are those of word count.

use std::collections::BTreeSet;

use super::{Job, MapContext, Record, ReduceContext, Values, for_each_word};
use crate::error::Result;

/// The inverted index job, with a folding combiner that merges document lists. A value is a
/// sorted list of distinct documents separated by NUL (which no path holds); map emits lists
/// of one document.
pub struct InvertedIndex;

impl Job for InvertedIndex {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        let path = record.path.as_bytes();
        for_each_word(record.text, |word| ctx.emit(word.as_bytes(), path));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let mut docs = BTreeSet::new();
        while let Some(list) = values.next_value() {
            for doc in list.split(|&b| b == 0) {
                if !docs.contains(doc) {
                    docs.insert(doc.to_vec());
                }
            }
        }
        ctx.write(key, &docs.into_iter().collect::<Vec<_>>().join(&b","[..]))
    }

    fn folds(&self) -> bool {
        true
    }

    fn fold(&self, _key: &[u8], acc: &mut Vec<u8>, value: &[u8]) -> Result<()> {
        // Records of one file come together, in file order: the common case is a document
        // already last in the list.
        let last = acc.rsplit(|&b| b == 0).next().unwrap_or_default();
        if last == value {
            return Ok(());
        }
        let mut docs: BTreeSet<&[u8]> = acc.split(|&b| b == 0).collect();
        let before = docs.len();
        docs.extend(value.split(|&b| b == 0));
        if docs.len() == before {
            return Ok(());
        }
        let merged = docs.into_iter().collect::<Vec<_>>().join(&0u8);
        *acc = merged;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_merges_sorted_distinct_document_lists() {
        let fold = |acc: &[u8], value: &[u8]| {
            let mut acc = acc.to_vec();
            InvertedIndex.fold(b"w", &mut acc, value).unwrap();
            acc
        };
        assert_eq!(fold(b"b", b"b"), b"b");
        assert_eq!(fold(b"b", b"a"), b"a\0b");
        assert_eq!(fold(b"a\0c", b"b\0c\0d"), b"a\0b\0c\0d");
        assert_eq!(fold(b"a\0b", b"a"), b"a\0b");
    }
}
