//! Seed derivation shared by everything that needs its own stream from one seed.

/// Mixes a 64-bit value (splitmix64's finaliser): nearby inputs give unrelated outputs, so
/// `mix_seed(seed ^ mix_seed(owner))` gives each owner its own stream seed.
pub const fn mix_seed(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_splitmix64() {
        // The first output of splitmix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(mix_seed(0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(mix_seed(1), mix_seed(2));
    }
}
