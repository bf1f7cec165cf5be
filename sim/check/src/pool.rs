//! The world's pool over a run, as its provider reports it: what the report shows beside the
//! checker's own books.

use std::collections::BTreeMap;

/// The pool over the run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PoolFigures {
    /// Proxies at the start.
    pub initial: u32,
    /// Proxies bought during the run.
    pub bought: u32,
    /// Purchases made.
    pub purchases: u32,
    /// Purchases the provider refused.
    pub refused_purchases: u32,
    /// Refused purchases by reason (`out_of_stock`, `out_of_money`).
    pub refused_by_reason: BTreeMap<String, u32>,
    /// Money spent on purchases (USD).
    pub spent_usd: f64,
    /// Proxies handed to lanes in place of dead ones.
    pub replaced: u32,
    /// Proxies owned at the largest.
    pub peak_owned: u32,
    /// What the largest pool costs per 30 days (USD).
    pub monthly_cost_usd: f64,
    /// Users still waiting for proxies at the end.
    pub users_waiting: u32,
}
