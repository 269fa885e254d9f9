//! FNV-1a 64: the one stable, dependency-free hash behind data splits, data
//! fingerprints, cache names and n-gram buckets (all must stay the same
//! across runs and machines, which std's hasher does not promise).

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Continues the hash `h` (start from `FNV_OFFSET`) over `bytes`.
pub fn fnv1a(h: u64, bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes
        .into_iter()
        .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_published_test_vectors() {
        assert_eq!(super::fnv1a(super::FNV_OFFSET, *b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(
            super::fnv1a(super::FNV_OFFSET, *b"a"),
            0xaf63_dc4c_8601_ec8c
        );
    }
}
