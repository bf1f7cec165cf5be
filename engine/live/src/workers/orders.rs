//! The orders worker: every interval, page through the Shop API over a window of at most 14
//! days, fetch the entries of each order not yet stored, and store order and entries in one
//! transaction with a `new` event; an order already stored whose state or status changed
//! (completed, cancelled, returned) is updated with a `changed` event. An order is stored once
//! (its id is the key). The window reaches back to the earlier of just before the end of the
//! last poll that went through every page (so a poll cut short by a crash or a lost lane is
//! simply done again: a restart or a failover loses none and duplicates none) and the recheck
//! window, within which every order is looked at again for changes. An order created before
//! the window that is not final yet (completed, cancelled, returned) is followed by itself
//! (`GET /v2/orders/{id}`), at most `follow` per poll, least recently looked at first, so every
//! order reaches its final state in the store at a bounded cost.

use std::sync::Arc;

use rotor_engine::{Duration, Module};

use super::{Next, triage};
use crate::clock;
use crate::config::KaspiUrls;
use crate::driver::Driver;
use crate::kaspi::{self, Account};
use crate::store::OrderWrite;

/// How far before the newest stored order each poll looks again, for orders that appear late.
const OVERLAP: Duration = Duration::from_mins(60);

/// What an orders worker needs.
pub struct Orders {
    /// The shared driver.
    pub driver: Arc<Driver>,
    /// Kaspi's hosts.
    pub urls: KaspiUrls,
    /// The seller.
    pub account: Account,
    /// Poll interval.
    pub interval: Duration,
    /// The window (at most 14 days).
    pub lookback: Duration,
    /// Orders created this recently are looked at again, each poll, for changes.
    pub recheck: Duration,
    /// Open orders created before the window looked at by themselves per poll.
    pub follow: u32,
    /// Stop after this many polls (`None`: until shutdown).
    pub polls: Option<u32>,
    /// The stint of serving this seller the worker belongs to.
    pub tenure: super::Tenure,
}

impl Orders {
    /// Polls until shutdown, the seller's expiry, or `polls`.
    pub async fn run(self) {
        let running = super::Running::new(&self.driver.metrics, self.account.user, Module::Orders);
        let mut done = 0;
        loop {
            if !self.tenure.holds() {
                return;
            }
            let start = clock::now();
            let Poll { stored, stop, complete } = self.poll().await;
            if stop {
                return;
            }
            let seconds = clock::now().saturating_since(start).as_millis() as f64 / 1000.0;
            running.cycle(seconds, complete);
            tracing::info!(
                "user {}/orders: poll stored {stored} new orders in {seconds:.1} s",
                self.account.user
            );
            done += 1;
            if self.polls.is_some_and(|p| done >= p)
                || !self.driver.sleep_until(clock::now() + self.interval).await
            {
                return;
            }
        }
    }

    /// One poll.
    async fn poll(&self) -> Poll {
        let user = self.account.user;
        let now = clock::now().as_millis();
        let oldest = now.saturating_sub(self.lookback.as_millis());
        // From a little before the end of the last poll that went through every page: a poll cut
        // short (a crash, a lost lane) leaves the watermark where it was, so nothing is skipped.
        let synced = self.driver.records().orders_synced(user).unwrap_or(None);
        let recheck = now.saturating_sub(self.recheck.as_millis());
        let ge = synced.map_or(oldest, |n| n.saturating_sub(OVERLAP.as_millis()).min(recheck).max(oldest));
        let mut stored = 0;
        let mut page = 0;
        let mut complete = true;
        loop {
            if !self.tenure.holds() {
                return Poll { stored, stop: true, complete: false };
            }
            let (orders, pages) =
                match kaspi::orders_page(&self.driver, &self.urls, &self.account, ge, now, page).await {
                    Ok(r) => r,
                    Err(e) => {
                        let next = triage(user, Module::Orders, &format!("orders page {page}"), &e);
                        return Poll { stored, stop: matches!(next, Next::Stop), complete: false };
                    }
                };
            for listed in &orders {
                let Ok(known) = self.driver.records().has_order(&listed.order.id) else {
                    complete = false;
                    continue;
                };
                let order = if known {
                    // A known order: only its state and status may have moved on.
                    listed.order.clone()
                } else {
                    match kaspi::order_entries(&self.driver, &self.account, listed).await {
                        Ok(o) => o,
                        Err(e) => {
                            let what = format!("entries of order {}", listed.order.code);
                            if let Next::Stop = triage(user, Module::Orders, &what, &e) {
                                return Poll { stored, stop: true, complete: false };
                            }
                            complete = false;
                            continue;
                        }
                    }
                };
                match self.driver.records().order(user, &order) {
                    Ok(OrderWrite::New) => {
                        stored += 1;
                        self.driver.metrics.order_stored();
                    }
                    Ok(OrderWrite::Changed) => {
                        tracing::info!(
                            "user {user}/orders: order {} is now {} ({})",
                            order.code,
                            order.status.as_deref().unwrap_or("-"),
                            order.state.as_deref().unwrap_or("-")
                        );
                    }
                    Ok(OrderWrite::Same) => {}
                    Err(e) => {
                        complete = false;
                        tracing::error!("cannot store order {}: {e}", order.code);
                    }
                }
            }
            page += 1;
            if orders.is_empty() || page >= pages {
                if complete && let Err(e) = self.driver.records().set_orders_synced(user, now) {
                    complete = false;
                    tracing::error!("cannot record the orders watermark: {e}");
                }
                let stop = self.follow_open(ge).await;
                return Poll { stored, stop, complete };
            }
        }
    }

    /// Looks at up to `follow` of the seller's orders created before `ge` (the poll's window)
    /// that are not final, one request each; a change is stored with its event. True if the
    /// worker must stop.
    async fn follow_open(&self, ge: u64) -> bool {
        let user = self.account.user;
        if self.follow == 0 {
            return false;
        }
        let open = match self.driver.records().open_orders(user, ge, u64::from(self.follow)) {
            Ok(o) => o,
            Err(e) => {
                tracing::error!("user {user}/orders: cannot read the open orders: {e}");
                return false;
            }
        };
        for id in open {
            if !self.tenure.holds() {
                return true;
            }
            match kaspi::order_by_id(&self.driver, &self.urls, &self.account, &id).await {
                Ok(listed) => {
                    let order = listed.order;
                    if let Ok(OrderWrite::Changed) = self.driver.records().order(user, &order) {
                        tracing::info!(
                            "user {user}/orders: order {} is now {} ({})",
                            order.code,
                            order.status.as_deref().unwrap_or("-"),
                            order.state.as_deref().unwrap_or("-")
                        );
                    }
                    if let Err(e) = self.driver.records().order_checked(&id) {
                        tracing::error!("cannot record the check of order {}: {e}", order.code);
                    }
                }
                Err(e) => {
                    if let Next::Stop = triage(user, Module::Orders, &format!("order {id}"), &e) {
                        return true;
                    }
                }
            }
        }
        false
    }
}

/// How a poll ended.
struct Poll {
    /// New orders stored.
    stored: u32,
    /// The worker must stop.
    stop: bool,
    /// Every page and every new order's entries came through and were stored.
    complete: bool,
}
