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
        // Pinned values, from the reference C implementation of XXH3 (Python's `xxhash`
        // package, `xxh3_64_intdigest`): if these change, map outputs of different versions
        // disagree.
        let all_bytes: Vec<u8> = (0..=255).collect();
        for (key, hash, of_1000, of_7) in [
            (&b""[..], 0x2D06_8005_38D3_94C2_u64, 138, 4),
            (b"the", 0xCB12_8363_1CF3_3D7D, 813, 5),
            (b"a", 0xE6C6_32B6_1E96_4E1F, 719, 1),
            (b"mapreduce", 0xC9BA_932B_629E_286C, 156, 3),
            ("über".as_bytes(), 0x8CD1_6EA4_F191_7FA7, 503, 2),
            (&all_bytes, 0x9408_A443_3B95_2D71, 113, 5),
        ] {
            assert_eq!(xxhash_rust::xxh3::xxh3_64(key), hash, "{key:?}");
            assert_eq!(partition(key, 1000), of_1000, "{key:?}");
            assert_eq!(partition(key, 7), of_7, "{key:?}");
            assert_eq!(partition(key, 1), 0);
        }
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
