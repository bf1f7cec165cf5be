//! How a user's proxies are divided among the modules.

use std::fmt;

use crate::ids::Module;

/// Proxies per module for one user. The default is the seed's 70/25/5/0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    counts: [u32; 4],
}

impl Split {
    /// A split of `demper`, `orders`, `catalog` and `reserve` proxies.
    pub const fn new(demper: u32, orders: u32, catalog: u32, reserve: u32) -> Self {
        Split { counts: [demper, orders, catalog, reserve] }
    }

    /// Proxies for `module`.
    pub const fn get(&self, module: Module) -> u32 {
        self.counts[module.index()]
    }

    /// Proxies over all modules.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

impl Default for Split {
    /// demper 70, orders 25, catalog 5, reserve 0: the seed's current split.
    fn default() -> Self {
        Split::new(70, 25, 5, 0)
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [demper, orders, catalog, reserve] = self.counts;
        write!(f, "demper {demper} / orders {orders} / catalog {catalog} / reserve {reserve}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_seed_split() {
        let s = Split::default();
        assert_eq!(s.total(), 100);
        assert_eq!(s.get(Module::Demper), 70);
        assert_eq!(s.get(Module::Orders), 25);
        assert_eq!(s.get(Module::Catalog), 5);
        assert_eq!(s.get(Module::Reserve), 0);
        assert_eq!(s.to_string(), "demper 70 / orders 25 / catalog 5 / reserve 0");
    }

    #[test]
    fn total_does_not_overflow() {
        assert_eq!(Split::new(u32::MAX, u32::MAX, 0, 0).total(), 2 * u64::from(u32::MAX));
    }
}
