//! The kinds of fault a scenario schedules, by name: the checker counts the answers and
//! purchases each decided (`fault:NAME` events).

/// The kinds of fault, by the names scenario files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// `storm_429`.
    Storm429,
    /// `proxy_death`.
    ProxyDeath,
    /// `flaky`.
    Flaky,
    /// `slow`.
    Slow,
    /// `subnet_ban`.
    SubnetBan,
    /// `provider_out_of_stock`.
    ProviderOutOfStock,
    /// `provider_out_of_money`.
    ProviderOutOfMoney,
    /// `blocked_ip`.
    BlockedIp,
    /// `expired_session`.
    ExpiredSession,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::Storm429,
        FaultKind::ProxyDeath,
        FaultKind::Flaky,
        FaultKind::Slow,
        FaultKind::SubnetBan,
        FaultKind::ProviderOutOfStock,
        FaultKind::ProviderOutOfMoney,
        FaultKind::BlockedIp,
        FaultKind::ExpiredSession,
    ];

    /// The name scenario files use.
    pub const fn name(self) -> &'static str {
        match self {
            FaultKind::Storm429 => "storm_429",
            FaultKind::ProxyDeath => "proxy_death",
            FaultKind::Flaky => "flaky",
            FaultKind::Slow => "slow",
            FaultKind::SubnetBan => "subnet_ban",
            FaultKind::ProviderOutOfStock => "provider_out_of_stock",
            FaultKind::ProviderOutOfMoney => "provider_out_of_money",
            FaultKind::BlockedIp => "blocked_ip",
            FaultKind::ExpiredSession => "expired_session",
        }
    }
}
