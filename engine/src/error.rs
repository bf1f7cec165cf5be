//! Errors of the pool operations: allocation, replacement, revival.

use std::fmt;

use crate::ids::{Module, ProxyId, UserId};

/// Why an allocation (or a replacement) was refused. Nothing was allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The split's modules do not add up to the count asked for.
    #[error("split adds up to {split_total} proxies but {count} were asked for")]
    SplitMismatch {
        /// The split's total.
        split_total: u64,
        /// The count asked for.
        count: u32,
    },
    /// The user already holds proxies; deallocate first.
    #[error("user {0} already holds proxies")]
    AlreadyAllocated(UserId),
    /// The user holds no proxies.
    #[error("user {0} holds no proxies")]
    NotAllocated(UserId),
    /// The pool has too few available proxies.
    #[error("{0}")]
    Shortage(Shortage),
    /// A proxy named in a restored allocation is unknown, held, draining or dead.
    #[error("proxy {0} is not free, so it cannot be given back to its lane")]
    NotFree(ProxyId),
}

/// Why a proxy was not added to the pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Another proxy in the pool already egresses through this IP. Kaspi counts per IP, so two
    /// entries would each spend the one budget in full.
    #[error("egress IP {ip} is already proxy {existing}'s; each proxy needs an egress IP of its own")]
    SharedEgress {
        /// The egress IP.
        ip: std::net::IpAddr,
        /// The proxy that has it.
        existing: ProxyId,
    },
}

/// A shortage, with how many proxies each module lacks when modules are filled in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// Proxies available in the pool.
    pub available: u32,
    /// Proxies asked for.
    pub needed: u32,
    /// Missing proxies per module, indexed by [`Module::index`].
    pub lacking: [u32; 4],
}

impl Shortage {
    /// Missing proxies for `module`.
    pub fn lacking(&self, module: Module) -> u32 {
        self.lacking[module.index()]
    }
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool has {} available proxies but {} are needed; lacking:", self.available, self.needed)?;
        for m in Module::ALL {
            write!(f, " {m} {}", self.lacking(m))?;
            if m != Module::Reserve {
                f.write_str(",")?;
            }
        }
        Ok(())
    }
}

/// Why a revive was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviveError {
    /// No proxy has this id.
    #[error("no proxy {0} in the pool")]
    UnknownProxy(ProxyId),
    /// The proxy is not dead.
    #[error("proxy {0} is not dead")]
    NotDead(ProxyId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortage_names_each_module() {
        let s = Shortage { available: 80, needed: 100, lacking: [0, 15, 5, 0] };
        assert_eq!(
            AllocError::Shortage(s).to_string(),
            "pool has 80 available proxies but 100 are needed; lacking: demper 0, orders 15, \
             catalog 5, reserve 0"
        );
    }
}
