//! Random streams. Each is derived from the scenario seed and a tag naming its owner, so adding
//! a user or a fault never shifts the draws of another lane.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rotor_engine::mix_seed;

/// What a stream belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    /// One lane's draws: latencies, fault and storm hits, price changes, order counts.
    Lane { user: u32, module: u8 },
    /// One user's draws: their SKU count.
    User(u32),
    /// Draws that pick fault targets.
    Faults,
}

/// The stream for `owner` under `seed`.
pub(crate) fn stream(seed: u64, owner: Stream) -> ChaCha8Rng {
    let tag = match owner {
        Stream::Lane { user, module } => (1u64 << 56) | (u64::from(user) << 8) | u64::from(module),
        Stream::User(user) => (2u64 << 56) | u64::from(user),
        Stream::Faults => 3u64 << 56,
    };
    ChaCha8Rng::seed_from_u64(mix_seed(seed ^ mix_seed(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_are_stable_and_distinct() {
        let draw = |s| stream(7, s).next_u64();
        assert_eq!(draw(Stream::User(1)), draw(Stream::User(1)));
        assert_ne!(draw(Stream::User(1)), draw(Stream::User(2)));
        assert_ne!(draw(Stream::Lane { user: 1, module: 0 }), draw(Stream::Lane { user: 1, module: 1 }));
        assert_ne!(draw(Stream::User(1)), draw(Stream::Lane { user: 1, module: 0 }));
        assert_ne!(stream(7, Stream::Faults).next_u64(), stream(8, Stream::Faults).next_u64());
    }
}
