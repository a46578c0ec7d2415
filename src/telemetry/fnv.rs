//! FNV-1a, 64 bits: the one stable hash of the code base (advice IDs, snapshot digests, the LLM
//! cache's request keys). Stable across builds and platforms, where std's hasher is not, and no
//! dependency. Here, in the lowest layer, so every layer above can use the same function.

/// The FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `fnv1a64` of `text` as 16 lower-case hex digits.
pub fn fnv1a64_hex(text: &str) -> String {
    format!("{:016x}", fnv1a64(text.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published FNV-1a 64 test vectors: a change here would change every advice ID and digest.
    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64("".bytes()), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a".bytes()), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64_hex("foobar"), "85944171f73967e8");
    }
}
