//! index: an inverted index, word -> the sorted, de-duplicated list of the documents (input
//! files, as found from the input arguments) that contain it, as `word<TAB>doc,doc,...`.
//! Words are those of word count.

use std::collections::BTreeSet;

use super::{Job, MapContext, Record, ReduceContext, Values, for_each_word};
use crate::error::Result;

/// The inverted index job, with a combiner that drops duplicate documents.
pub struct InvertedIndex;

impl Job for InvertedIndex {
    fn map(&self, record: Record<'_>, ctx: &mut MapContext<'_>) -> Result<()> {
        let path = record.path.as_bytes();
        for_each_word(record.text, |word| ctx.emit(word.as_bytes(), path));
        Ok(())
    }

    fn reduce(&self, key: &[u8], values: &mut Values<'_>, ctx: &mut ReduceContext<'_>) -> Result<()> {
        let mut docs = BTreeSet::new();
        while let Some(doc) = values.next_value() {
            if !docs.contains(doc) {
                docs.insert(doc.to_vec());
            }
        }
        ctx.write(key, &docs.into_iter().collect::<Vec<_>>().join(&b","[..]))
    }

    fn has_combiner(&self) -> bool {
        true
    }

    fn combine(&self, _key: &[u8], values: &mut Values<'_>, out: &mut dyn FnMut(&[u8])) -> Result<()> {
        let mut docs = BTreeSet::new();
        while let Some(doc) = values.next_value() {
            if !docs.contains(doc) {
                docs.insert(doc.to_vec());
            }
        }
        docs.iter().for_each(|d| out(d));
        Ok(())
    }
}
