//! Random streams. Each is derived from the scenario seed and a tag naming its owner, so adding
//! a user or a fault never shifts the draws of another lane. `rotor load` draws its workload
//! from the same streams.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rotor_engine::mix_seed;

/// What a stream belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// One lane's draws: latencies, fault and storm hits, price changes, order counts.
    Lane {
        /// The user.
        user: u32,
        /// The module's index (`Module::index`).
        module: u8,
    },
    /// One user's draws: their SKU count.
    User(u32),
    /// Draws that pick fault targets.
    Faults,
}

/// The stream for `owner` under `seed`.
pub fn stream(seed: u64, owner: Stream) -> ChaCha8Rng {
    let tag = match owner {
        Stream::Lane { user, module } => (1u64 << 56) | (u64::from(user) << 8) | u64::from(module),
        Stream::User(user) => (2u64 << 56) | u64::from(user),
        Stream::Faults => 3u64 << 56,
    };
    ChaCha8Rng::seed_from_u64(mix_seed(seed ^ mix_seed(tag)))
}

/// `n` distinct proxies out of `total`, drawn by a partial Fisher–Yates shuffle on `rng`, in
/// id order (how faults pick their targets, in the simulator and in `rotor load`).
pub fn pick_distinct(rng: &mut ChaCha8Rng, total: u32, n: u32) -> Vec<rotor_engine::ProxyId> {
    let n = n.min(total) as usize;
    let mut ids: Vec<u32> = (0..total).collect();
    for i in 0..n {
        let j = rand::Rng::random_range(rng, i..ids.len());
        ids.swap(i, j);
    }
    let mut picked: Vec<rotor_engine::ProxyId> = ids[..n].iter().map(|&i| rotor_engine::ProxyId(i)).collect();
    picked.sort();
    picked
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
