//! The world a load run talks to, all on loopback: the fake Kaspi with the scenario's limit
//! hypotheses and latency on the scaled clock, one forward proxy per pool proxy (each with its
//! own egress address in 127.0.0.0/8), and the scenario's faults played at their scaled times.

use std::net::Ipv4Addr;
use std::sync::Arc;

use rotor_engine::{LaneKey, ProxyId, Secret};
use rotor_mock_kaspi::{Faults, ForwardProxy, HeadHook, KaspiConfig, KaspiMock, Merchant, ProxyMode};
use rotor_sim::scenario::{DeathMode, Fault, Scenario, Target};

use super::LoadError;
use crate::live::clock;
use crate::live::driver::Driver;

/// The loopback address the `index`-th proxy egresses from: 127.10.0.1 upwards, never a .0
/// or .255 host.
pub(crate) fn egress(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 10 + (index / 64_000) as u8, ((index % 64_000) / 250) as u8, (index % 250 + 1) as u8)
}

/// The merchant of user `u`.
pub(crate) fn merchant(u: u32) -> Merchant {
    Merchant {
        uid: (30_000_000 + u).to_string(),
        session: Secret::new(format!("load-session-{u}")),
        token: Secret::new(format!("load-token-{u}")),
    }
}

/// The proxy login of the `index`-th proxy.
pub(crate) fn login(index: u32) -> (String, Secret) {
    (format!("load{index}"), Secret::new(format!("load-pass-{index}")))
}

/// Which scenario features a load run plays; the rest are refused with this list.
pub(crate) fn check_supported(sc: &Scenario) -> Result<(), LoadError> {
    for f in &sc.faults {
        let name = match f {
            Fault::Flaky { .. } => "flaky",
            Fault::ProviderOutOfStock { .. } => "provider_out_of_stock",
            Fault::ProviderOutOfMoney { .. } => "provider_out_of_money",
            _ => continue,
        };
        return Err(LoadError::Input(format!(
            "{}: fault `{name}` is not played by rotor load; valid: storm_429, proxy_death, slow, subnet_ban \
             (the loopback proxies cannot fail a share of requests, and no provider is faked)",
            sc.source
        )));
    }
    if !sc.subscriptions.is_empty() {
        return Err(LoadError::Input(format!(
            "{}: rotor load plays the users present from the start; [[subscription]] entries are simulator-only",
            sc.source
        )));
    }
    Ok(())
}

/// The fake Kaspi and the proxies.
pub(crate) struct World {
    pub(crate) kaspi: KaspiMock,
    pub(crate) proxies: Vec<ForwardProxy>,
}

impl World {
    /// Starts the fake Kaspi for `users` merchants and `proxies` forward proxies.
    pub(crate) async fn start(
        sc: &Scenario,
        time_scale: f64,
        products: u32,
        hook: Option<HeadHook>,
    ) -> Result<World, LoadError> {
        let orders = sc.orders.map_or(0, |o| o.orders_per_poll.hi);
        let config = KaspiConfig {
            seed: sc.seed,
            products: products.max(1),
            merchants: (1..=sc.users.count).map(merchant).collect(),
            orders_per_merchant: orders.max(1),
            hypotheses: sc.kaspi.hypotheses.clone(),
            time_scale,
            latency: Some(sc.kaspi.latency),
        };
        let kaspi = KaspiMock::start(config).await;
        let mut proxies = Vec::with_capacity(sc.pool.initial as usize);
        for i in 0..sc.pool.initial {
            let p = ForwardProxy::start_with_hook(egress(i), Some(login(i)), hook.clone())
                .await
                .map_err(|e| LoadError::Internal(format!("cannot start loopback proxy {i}: {e}")))?;
            proxies.push(p);
        }
        Ok(World { kaspi, proxies })
    }
}

/// Plays the scenario's faults at their scaled times until the run stops.
pub(crate) async fn play_faults(
    sc: Arc<Scenario>,
    world: Arc<World>,
    driver: Arc<Driver>,
    t0: rotor_engine::Instant,
) {
    // Timed steps: (scenario ms, fault index, whether it is the end of a span).
    let mut steps: Vec<(u64, usize, bool)> = Vec::new();
    for (i, f) in sc.faults.iter().enumerate() {
        match f {
            Fault::Storm429 { start, length, .. } => {
                steps.push((start.as_millis(), i, false));
                steps.push((start.as_millis() + length.as_millis(), i, true));
            }
            Fault::SubnetBan { at, length, .. } => {
                steps.push((at.as_millis(), i, false));
                if let Some(l) = length {
                    steps.push((at.as_millis() + l.as_millis(), i, true));
                }
            }
            Fault::ProxyDeath { at, .. } | Fault::Slow { at, .. } => steps.push((at.as_millis(), i, false)),
            _ => {}
        }
    }
    steps.sort_by_key(|s| (s.0, s.2));
    let mut rng = rotor_sim::rng::stream(sc.seed, rotor_sim::rng::Stream::Faults);
    let mut faults = Faults::default();
    for (at, i, end) in steps {
        if !driver.sleep_until(t0 + rotor_engine::Duration::from_millis(at)).await {
            return;
        }
        match &sc.faults[i] {
            Fault::Storm429 { share, .. } => {
                faults.storm_share = if end { 0.0 } else { *share };
                world.kaspi.set_faults(faults.clone());
            }
            Fault::SubnetBan { subnet, .. } => {
                let members = (0..sc.pool.initial)
                    .filter(|&p| rotor_sim::scenario::subnet_label(p, sc.pool.subnet_size) == *subnet);
                for p in members {
                    if end { world.kaspi.unban_ip(egress(p)) } else { world.kaspi.ban_ip(egress(p)) }
                }
            }
            Fault::ProxyDeath { mode, target, .. } => {
                let mode = match mode {
                    DeathMode::Refused => ProxyMode::Refused,
                    DeathMode::Timeout => ProxyMode::Timeout,
                    DeathMode::Auth => ProxyMode::AuthRequired,
                };
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    if let Some(proxy) = world.proxies.get(p.0 as usize) {
                        proxy.set_mode(mode);
                    }
                }
            }
            Fault::Slow { extra, target, .. } => {
                let extra = clock::real(extra.as_millis());
                for p in targets(&driver, *target, sc.pool.initial, &mut rng) {
                    if let Some(proxy) = world.proxies.get(p.0 as usize) {
                        proxy.set_mode(ProxyMode::Slow(extra));
                    }
                }
            }
            _ => {}
        }
    }
}

/// The simulator's target choice: a lane's proxies, or a partial Fisher–Yates shuffle of the
/// pool on the fault stream.
fn targets(driver: &Driver, target: Target, total: u32, rng: &mut rand_chacha::ChaCha8Rng) -> Vec<ProxyId> {
    let n = match target {
        Target::Lane(lane) => return lane_proxies(driver, lane),
        Target::Count(n) => n.min(total),
        Target::Share(s) => ((f64::from(total) * s).round() as u32).min(total),
    };
    rotor_sim::rng::pick_distinct(rng, total, n)
}

fn lane_proxies(driver: &Driver, lane: LaneKey) -> Vec<ProxyId> {
    driver.with_engine(|e| e.lane(lane).map(|l| l.proxies.to_vec()).unwrap_or_default())
}
