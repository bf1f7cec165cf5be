//! The simulated world outside the engine: proxies with their egress and faults, users, and the
//! provider that sells more proxies.

use std::collections::BTreeMap;

use rotor_engine::{Credentials, ProxySpec};

use crate::scenario::{DeathMode, PoolSpec, Scenario, subnet_label};
use crate::summary::PoolFigures;

/// One proxy as the world sees it.
#[derive(Debug, Clone)]
pub(crate) struct SimProxy {
    pub(crate) ip: u32,
    pub(crate) country: &'static str,
    pub(crate) dead: Option<DeathMode>,
    pub(crate) flaky: f64,
    pub(crate) slow_ms: u64,
}

/// Builds the `index`-th proxy: its spec for the engine and its world state.
pub(crate) fn make_proxy(index: u32, pool: &PoolSpec) -> (ProxySpec, SimProxy) {
    let s = index / pool.subnet_size;
    let host = index % pool.subnet_size + 1;
    // Subnets count up from 10.0.0.0/24 without wrapping (past 10.255.255.0 into 11.0.0.0);
    // a scenario's pool is bounded far below the 16 million subnets that leaves
    // (`scenario::MAX_PROXIES`), so no two proxies ever share an egress IP.
    let ip = crate::scenario::subnet_base(s) + host;
    let kz = ((u64::from(index) + 1) as f64 * pool.kz_share).floor()
        > (u64::from(index) as f64 * pool.kz_share).floor();
    let spec = ProxySpec {
        host: format!("proxy{index}.sim"),
        port: 8080,
        credentials: Some(Credentials::new(format!("u{index}"), format!("sim-secret-{index}"))),
        egress_ip: std::net::Ipv4Addr::from(ip).into(),
        subnet: subnet_label(index, pool.subnet_size),
    };
    let world = SimProxy { ip, country: if kz { "kz" } else { "nl" }, dead: None, flaky: 0.0, slow_ms: 0 };
    (spec, world)
}

/// The proxy provider (Proxy6): stock, money, and one purchase at a time.
#[derive(Debug)]
pub(crate) struct Provider {
    pub(crate) stock: u32,
    pub(crate) balance_usd: f64,
    pub(crate) out_of_stock_until: u64,
    pub(crate) purchase_pending: bool,
    pub(crate) bought: u32,
    pub(crate) purchases: u32,
    /// Refused purchases by reason.
    pub(crate) refused: BTreeMap<&'static str, u32>,
    pub(crate) spent_usd: f64,
    /// Whether a fault emptied the account.
    pub(crate) money_fault: bool,
}

/// Why the provider refused a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    OutOfStock,
    OutOfMoney,
}

impl Refusal {
    fn name(self) -> &'static str {
        match self {
            Refusal::OutOfStock => "out_of_stock",
            Refusal::OutOfMoney => "out_of_money",
        }
    }
}

impl Provider {
    /// The pool's figures for the report: what was bought, and what the largest pool costs.
    pub(crate) fn figures(&self, sc: &Scenario, peak_owned: u32, users_waiting: u32) -> PoolFigures {
        PoolFigures {
            initial: sc.pool.initial,
            bought: self.bought,
            purchases: self.purchases,
            refused_purchases: self.refused.values().sum(),
            refused_by_reason: self.refused.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
            spent_usd: self.spent_usd,
            // The observer counts replacements (`Observation::Replaced`).
            replaced: 0,
            peak_owned,
            monthly_cost_usd: f64::from(peak_owned) / 100.0 * sc.pool.price_per_100_usd,
            users_waiting,
        }
    }

    pub(crate) fn new(pool: &PoolSpec) -> Self {
        Provider {
            stock: pool.provider_stock,
            balance_usd: pool.balance_usd,
            out_of_stock_until: 0,
            purchase_pending: false,
            bought: 0,
            purchases: 0,
            refused: BTreeMap::new(),
            spent_usd: 0.0,
            money_fault: false,
        }
    }

    /// Tries to buy `count` at `now`; the reason on refusal.
    pub(crate) fn buy(&mut self, count: u32, now: u64, pool: &PoolSpec) -> Result<(), Refusal> {
        let cost = f64::from(count) / 100.0 * pool.price_per_100_usd;
        let refusal = if now < self.out_of_stock_until || self.stock < count {
            Some(Refusal::OutOfStock)
        } else if self.balance_usd + 1e-9 < cost {
            Some(Refusal::OutOfMoney)
        } else {
            None
        };
        if let Some(reason) = refusal {
            *self.refused.entry(reason.name()).or_default() += 1;
            return Err(reason);
        }
        self.stock -= count;
        self.balance_usd -= cost;
        self.spent_usd += cost;
        self.bought += count;
        self.purchases += 1;
        self.purchase_pending = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolSpec {
        PoolSpec {
            initial: 10,
            min_available: 5,
            purchase_batch: 100,
            purchase_delay: rotor_engine::Duration::from_mins(5),
            provider_stock: 150,
            balance_usd: 20.0,
            price_per_100_usd: 11.0,
            subnet_size: 4,
            kz_share: 0.25,
        }
    }

    #[test]
    fn proxies_get_distinct_ips_in_their_subnet_and_a_share_of_kz() {
        let p = pool();
        let all: Vec<_> = (0..8).map(|i| make_proxy(i, &p)).collect();
        assert_eq!(all[0].0.egress_ip.to_string(), "10.0.0.1");
        assert_eq!(all[5].0.egress_ip.to_string(), "10.0.1.2");
        assert_eq!(all[5].0.subnet, "10.0.1.0/24");
        assert_eq!(all.iter().filter(|(_, w)| w.country == "kz").count(), 2);
        assert!(!format!("{:?}", all[0].0).contains("sim-secret"));
    }

    #[test]
    fn egress_ips_never_wrap_however_many_subnets() {
        let p = PoolSpec { subnet_size: 1, ..pool() };
        let (a, b) = (make_proxy(0, &p).0, make_proxy(65_536, &p).0);
        assert_ne!(a.egress_ip, b.egress_ip, "the 65,537th subnet is not the first again");
        assert_eq!(b.egress_ip.to_string(), "11.0.0.1");
        assert_eq!(b.subnet, "11.0.0.0/24");
        let last = make_proxy(crate::scenario::MAX_PROXIES - 1, &PoolSpec { subnet_size: 1, ..pool() }).0;
        assert_eq!(last.egress_ip.to_string(), "25.66.63.1");
    }

    #[test]
    fn the_provider_refuses_without_stock_or_money() {
        let p = pool();
        let mut prov = Provider::new(&p);
        assert_eq!(prov.buy(100, 0, &p), Ok(()));
        assert!((prov.balance_usd - 9.0).abs() < 1e-9);
        assert_eq!(prov.buy(100, 0, &p), Err(Refusal::OutOfStock));
        prov.stock = 1_000;
        assert_eq!(prov.buy(100, 0, &p), Err(Refusal::OutOfMoney));
        prov.out_of_stock_until = 10;
        assert_eq!(prov.buy(1, 5, &p), Err(Refusal::OutOfStock));
        assert_eq!(prov.refused.get("out_of_stock"), Some(&2));
        assert_eq!(prov.refused.get("out_of_money"), Some(&1));
    }
}
