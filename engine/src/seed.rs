//! Seed derivation shared by everything that needs its own stream from one seed.

/// Mixes a 64-bit value (splitmix64's finaliser): nearby inputs give unrelated outputs, so
/// `mix_seed(seed ^ mix_seed(owner))` gives each owner its own stream seed.
pub const fn mix_seed(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where in a cycle `user`'s check of `sku` goes when a seller's checks are spread (a cold
/// start with nothing due, and each cycle after it): an offset in `0..window`, from a stable
/// hash of the seller and the SKU (FNV-1a, then [`mix_seed`]). The same seller and SKU get the
/// same slot in every run, on every machine and after every restart, so sellers' checks
/// interleave instead of firing at once, and each SKU keeps its rhythm.
pub fn spread_slot(
    user: crate::ids::UserId,
    sku: &str,
    window: crate::time::Duration,
) -> crate::time::Duration {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in u64::from(user.0).to_le_bytes().into_iter().chain(sku.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
    }
    let w = window.as_millis();
    crate::time::Duration::from_millis(if w == 0 { 0 } else { mix_seed(h) % w })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::time::Duration;

    #[test]
    fn spread_slots_are_stable_and_cover_the_window() {
        let w = Duration::from_mins(3);
        let a = spread_slot(UserId(1), "SKU-1", w);
        assert_eq!(a, spread_slot(UserId(1), "SKU-1", w), "stable");
        assert_ne!(a, spread_slot(UserId(2), "SKU-1", w), "another seller, another slot");
        assert_eq!(spread_slot(UserId(1), "SKU-1", Duration::ZERO), Duration::ZERO);
        // 1000 SKUs fill each sixth of the window about evenly.
        let mut sixths = [0u32; 6];
        for k in 0..1000 {
            let s = spread_slot(UserId(7), &k.to_string(), w).as_millis();
            assert!(s < w.as_millis());
            sixths[(s * 6 / w.as_millis()) as usize] += 1;
        }
        assert!(sixths.iter().all(|&n| (120..=215).contains(&n)), "{sixths:?}");
    }

    #[test]
    fn is_splitmix64() {
        // The first output of splitmix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(mix_seed(0), 0xE220_A839_7B1D_CDAF);
        assert_ne!(mix_seed(1), mix_seed(2));
    }
}
