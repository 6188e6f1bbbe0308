//! A key of at most 16 bytes held as two integers and a length: what a map that builds its
//! keys byte by byte (a tokenizer) hands the map buffer, which finds such a key by comparing
//! integers and never reads its bytes again.

/// A key of at most [`ShortKey::MAX`] bytes: bytes 0 to 7 and 8 to 15 as two little-endian
/// integers, zero past the key's length, and the length. Two short keys are equal exactly
/// when their bytes are.
///
/// ```
/// use mr::job::ShortKey;
/// let key = ShortKey::new(b"hello").unwrap();
/// assert_eq!(key.words(), [u64::from_le_bytes(*b"hello\0\0\0"), 0]);
/// assert_eq!(ShortKey::from_words([key.words()[0], 0], 5), key);
/// assert_eq!(key.bytes().as_slice(), b"hello");
/// assert!(ShortKey::new(b"seventeen letters").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortKey {
    words: [u64; 2],
    len: u32,
}

/// A short key's bytes, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct ShortKeyBytes {
    bytes: [u8; ShortKey::MAX],
    len: usize,
}

impl ShortKeyBytes {
    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl ShortKey {
    /// The longest short key, in bytes.
    pub const MAX: usize = 16;

    /// The short key of `bytes`, or `None` when it is longer than [`ShortKey::MAX`].
    #[inline]
    pub fn new(bytes: &[u8]) -> Option<ShortKey> {
        (bytes.len() <= Self::MAX).then(|| ShortKey { words: padded_words(bytes), len: bytes.len() as u32 })
    }

    /// The key of length `len` (at most [`ShortKey::MAX`], else cut to it) whose bytes are
    /// `words` in little-endian order; bytes of `words` past `len` are ignored (cleared).
    #[inline(always)]
    pub fn from_words(words: [u64; 2], len: usize) -> ShortKey {
        let len = len.min(Self::MAX);
        let keep = |bytes: usize| if bytes >= 8 { u64::MAX } else { (1u64 << (8 * bytes)) - 1 };
        let lo = words[0] & keep(len);
        let hi = words[1] & keep(len.saturating_sub(8));
        ShortKey { words: [lo, hi], len: len as u32 }
    }

    /// [`ShortKey::from_words`] of words already zero past `len`, which is at most
    /// [`ShortKey::MAX`]: what a tokenizer builds.
    #[inline(always)]
    pub(crate) fn from_padded(words: [u64; 2], len: usize) -> ShortKey {
        debug_assert!(len <= Self::MAX && ShortKey::from_words(words, len).words == words);
        ShortKey { words, len: len as u32 }
    }

    /// The key's bytes 0 to 7 and 8 to 15, little-endian, zero past its length.
    #[inline(always)]
    pub fn words(&self) -> [u64; 2] {
        self.words
    }

    /// The key's length in bytes.
    #[inline(always)]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The key's bytes.
    #[inline]
    pub fn bytes(&self) -> ShortKeyBytes {
        let mut bytes = [0u8; Self::MAX];
        bytes[..8].copy_from_slice(&self.words[0].to_le_bytes());
        bytes[8..].copy_from_slice(&self.words[1].to_le_bytes());
        ShortKeyBytes { bytes, len: self.len as usize }
    }
}

/// The bytes of a key of at most 16 bytes as two little-endian integers, zero past its end (a
/// longer key: its first 16 bytes). It reads the key with at most four loads, overlapping,
/// and shifts out the overlap; no loop and no copy.
#[inline(always)]
pub(crate) fn padded_words(key: &[u8]) -> [u64; 2] {
    let n = key.len();
    let load8 = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
    let load4 = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().expect("4 bytes")));
    if n >= 16 {
        [load8(0), load8(8)]
    } else if n >= 8 {
        // The last 8 bytes hold bytes 8..n at their top: shifted down, the overlap is gone.
        let hi = load8(n - 8).checked_shr(8 * (16 - n) as u32).unwrap_or(0);
        [load8(0), hi]
    } else if n >= 4 {
        // The two 4-byte loads overlap on equal bytes.
        [load4(0) | (load4(n - 4) << (8 * (n - 4))), 0]
    } else if n > 0 {
        let b = |i: usize| u64::from(key[i]) << (8 * i);
        [b(0) | b(n / 2) | b(n - 1), 0]
    } else {
        [0, 0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simple_words(key: &[u8]) -> [u64; 2] {
        let mut padded = [0u8; 16];
        let n = key.len().min(16);
        padded[..n].copy_from_slice(&key[..n]);
        [u64::from_le_bytes(padded[..8].try_into().unwrap()), u64::from_le_bytes(padded[8..].try_into().unwrap())]
    }

    proptest::proptest! {
        /// The words are the key's bytes, zero-padded, for every length, and the bytes come
        /// back from them.
        #[test]
        fn words_are_the_zero_padded_bytes(key in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            proptest::prop_assert_eq!(padded_words(&key), simple_words(&key));
            match ShortKey::new(&key) {
                Some(short) => {
                    proptest::prop_assert!(key.len() <= 16);
                    let bytes = short.bytes();
                    proptest::prop_assert_eq!(bytes.as_slice(), &key[..]);
                    proptest::prop_assert_eq!(short.len(), key.len());
                }
                None => proptest::prop_assert!(key.len() > 16),
            }
        }

        /// `from_words` ignores the bytes past the length.
        #[test]
        fn from_words_clears_bytes_past_the_length(lo: u64, hi: u64, len in 0usize..=16) {
            let key = ShortKey::from_words([lo, hi], len);
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&lo.to_le_bytes());
            bytes[8..].copy_from_slice(&hi.to_le_bytes());
            proptest::prop_assert_eq!(Some(key), ShortKey::new(&bytes[..len]));
        }
    }
}
