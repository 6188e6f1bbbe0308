//! The hash partitioner: which reduce task a key goes to.
//!
//! It uses XXH3, a hash with a published specification, so a key lands in the same partition
//! in every process, on every host and in every run (std's hasher is randomly seeded).

/// Returns the partition of `key` among `partitions` (> 0).
pub fn partition(key: &[u8], partitions: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(partitions)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_runs() {
        // Pinned values: if these change, map outputs of different versions disagree.
        assert_eq!(partition(b"the", 1000), (xxhash_rust::xxh3::xxh3_64(b"the") % 1000) as u32);
        assert_eq!(xxhash_rust::xxh3::xxh3_64(b""), 0x2D06_8005_38D3_94C2);
    }

    #[test]
    fn spreads_keys() {
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[partition(format!("key{i}").as_bytes(), 4) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
