//! The demper: for each SKU, read the competitor offers, compute the new price (the lowest
//! competitor minus a step, in whole tenge within the SKU's floor and ceiling), and push it
//! through the cabinet when it changed. It prices only what it knows: nothing before the
//! seller's catalogue is stored, no SKU the catalogue lacks or lists as removed from sale, always
//! with the catalogue's model, and no drop beyond the guard (a budget over a window, measured
//! from the highest price known in it) without an operator's confirmation. Every decision is
//! stored; `--dry-run` stores them and pushes nothing.

use std::path::Path;
use std::sync::Arc;

use std::collections::BTreeSet;
use std::sync::Mutex;

use rotor_engine::{Duration, Module};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::catalog::CatalogState;
use super::{Next, triage};
use crate::clock;
use crate::config::KaspiUrls;
use crate::driver::Driver;
use crate::kaspi::{self, Account};
use crate::store::PriceDecision;

/// One SKU the seller reprices.
#[derive(Debug, Clone, PartialEq)]
pub struct Sku {
    /// The merchant SKU.
    pub sku: String,
    /// The Kaspi product id whose offers are read.
    pub product_id: String,
    /// Never price below.
    pub floor: f64,
    /// Never price above.
    pub ceiling: f64,
}

impl Sku {
    /// The whole-tenge prices the SKU may take: its floor rounded up and its ceiling rounded
    /// down, so that rounding never leaves the band.
    pub fn band(&self) -> (f64, f64) {
        (self.floor.ceil(), self.ceiling.floor())
    }
}

/// What is wrong with a SKU file: `file:line` and the valid form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SkuError(String);

/// Reads `sku,product_id,floor,ceiling[,model]` rows (with that header line). A `model` column
/// is accepted and not used: the name pushed with a price is always the catalogue's.
pub fn load_skus(path: &Path) -> Result<Vec<Sku>, SkuError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(path)
        .map_err(|e| SkuError(format!("{}: cannot read: {e}", path.display())))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| SkuError(format!("{}: {e}", path.display())))?
        .iter()
        .map(str::to_owned)
        .collect();
    let expected = ["sku", "product_id", "floor", "ceiling"];
    if header.len() < 4 || header[..4] != expected {
        return Err(SkuError(format!(
            "{}:1: header is `{}`; valid: sku,product_id,floor,ceiling[,model]",
            path.display(),
            header.join(",")
        )));
    }
    let mut out = Vec::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| SkuError(format!("{}:{line}: {e}", path.display())))?;
        let field = |k: usize| row.get(k).unwrap_or("").to_owned();
        let number = |k: usize| -> Result<f64, SkuError> {
            let text = field(k);
            // A floor of 0 would let one bad competitor offer give the product away.
            text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 1.0).ok_or_else(|| {
                SkuError(format!(
                    "{}:{line}: {} is `{text}`; valid: a price in tenge, 1 or more",
                    path.display(),
                    expected[k]
                ))
            })
        };
        let (floor, ceiling) = (number(2)?, number(3)?);
        if floor > ceiling {
            return Err(SkuError(format!(
                "{}:{line}: floor {floor} is above ceiling {ceiling}",
                path.display()
            )));
        }
        if floor.ceil() > ceiling.floor() {
            return Err(SkuError(format!(
                "{}:{line}: floor {floor} and ceiling {ceiling} hold no whole tenge; prices go out in whole \
                 tenge, so give a band that holds one",
                path.display()
            )));
        }
        if field(0).is_empty() || field(1).is_empty() {
            return Err(SkuError(format!("{}:{line}: sku and product_id must not be empty", path.display())));
        }
        out.push(Sku { sku: field(0), product_id: field(1), floor, ceiling });
    }
    Ok(out)
}

/// The new price and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Repricing {
    /// The price to set, if one is known.
    pub price: Option<f64>,
    /// `undercut`, `floor`, `ceiling`, `unchanged` or `no_competitors`.
    pub reason: &'static str,
    /// Whether an update should be sent.
    pub push: bool,
}

/// The lowest competitor minus `step`, rounded down to whole tenge, kept within the SKU's
/// whole-tenge band ([`Sku::band`]). Without competitors the price stays, unless it is outside
/// the band: then it is brought back to the nearer edge.
pub fn reprice(current: Option<f64>, competitor_min: Option<f64>, sku: &Sku, step: f64) -> Repricing {
    let (lo, hi) = sku.band();
    let Some(min) = competitor_min else {
        return match current {
            Some(c) if c < lo - 0.005 => Repricing { price: Some(lo), reason: "floor", push: true },
            Some(c) if c > hi + 0.005 => Repricing { price: Some(hi), reason: "ceiling", push: true },
            _ => Repricing { price: current, reason: "no_competitors", push: false },
        };
    };
    let target = (min - step).floor();
    let (price, reason) = if target < lo {
        (lo, "floor")
    } else if target > hi {
        (hi, "ceiling")
    } else {
        (target, "undercut")
    };
    if current.is_some_and(|c| (c - price).abs() < 0.005) {
        return Repricing { price: Some(price), reason: "unchanged", push: false };
    }
    Repricing { price: Some(price), reason, push: true }
}

/// Whether pushing `price` goes more than `percent` below `reference` (the drop guard's
/// reference: the highest price known within the window). `percent` 100 never holds.
pub fn beyond_guard(reference: f64, price: f64, percent: u32) -> bool {
    percent < 100 && price < reference * (1.0 - f64::from(percent) / 100.0) - 0.005
}

/// The order `user`'s SKUs are checked in, each with its offset from the pass's start: every
/// SKU at once, or, when `spread`, at its slot over the first four fifths of `interval`
/// (`rotor_engine::spread_slot`: the same slot in every pass and after every restart).
pub fn schedule(
    user: rotor_engine::UserId,
    skus: &[Sku],
    interval: Duration,
    spread: bool,
) -> Vec<(Duration, usize)> {
    let window = Duration::from_millis(interval.as_millis() / 5 * 4);
    let mut order: Vec<_> = skus
        .iter()
        .enumerate()
        .map(|(i, sku)| {
            let slot =
                if spread { rotor_engine::spread_slot(user, &sku.sku, window) } else { Duration::ZERO };
            (slot, i)
        })
        .collect();
    order.sort_unstable();
    order
}

/// What a demper worker needs.
pub struct Demper {
    /// The shared driver.
    pub driver: Arc<Driver>,
    /// Kaspi's hosts.
    pub urls: KaspiUrls,
    /// The seller.
    pub account: Account,
    /// Merchants to ignore, besides the seller.
    pub excluded: Vec<String>,
    /// Its SKUs.
    pub skus: Vec<Sku>,
    /// Tenge under the lowest competitor.
    pub step: f64,
    /// Log and store decisions, push nothing.
    pub dry_run: bool,
    /// Pause between passes.
    pub interval: Duration,
    /// SKUs worked on at once.
    pub concurrency: u32,
    /// Each SKU's check waits for its slot in the interval (a stable hash of seller and SKU
    /// over its first four fifths), and passes start one interval apart: sellers started
    /// together never stampede, and a restart keeps each SKU's rhythm. Without it a pass checks
    /// every SKU at once and the next starts `interval` after it ends.
    pub spread: bool,
    /// Stop after this many passes (`None`: until shutdown).
    pub passes: Option<u32>,
    /// Drops that together go more than this percent below the highest price known within
    /// `drop_window` wait for `rotor ctl confirm` (100: never).
    pub max_drop_percent: u32,
    /// The window the drop guard's budget spans.
    pub drop_window: Duration,
    /// Where the seller's catalogue stands: the demper prices nothing before it is ready.
    pub catalog: watch::Receiver<CatalogState>,
    /// SKUs already reported as not priced in this tenure (each is logged once).
    pub reported: Mutex<BTreeSet<String>>,
    /// This pass's price pushes: how many were sent, how many failed, and the last failure.
    pub pushes: Mutex<(u32, u32, Option<String>)>,
    /// The stint of serving this seller the worker belongs to.
    pub tenure: super::Tenure,
}

/// Whether the demper may price: a catalogue is ready, none will come, or the worker stops.
enum Catalogue {
    Ready,
    None,
    Stop,
}

impl Demper {
    /// Runs passes until shutdown, the seller's expiry, or `passes`.
    pub async fn run(self: Arc<Self>) {
        let user = self.account.user;
        let running = super::Running::new(&self.driver.metrics, user, Module::Demper);
        let mut done = 0;
        loop {
            if !self.tenure.holds() {
                return;
            }
            match self.catalogue().await {
                Catalogue::Ready => {}
                Catalogue::Stop => return,
                Catalogue::None => {
                    tracing::warn!(
                        "user {user}/demper: no catalogue of the seller could be synced in this run; nothing \
                         is priced (the catalog lane's log says why)"
                    );
                    return;
                }
            }
            let start = clock::now();
            *crate::driver::lock(&self.pushes) = (0, 0, None);
            let (stop, read) = self.pass(start).await;
            let seconds = clock::now().saturating_since(start).as_millis() as f64 / 1000.0;
            if stop {
                return;
            }
            running.cycle(seconds, read > 0 || self.skus.is_empty());
            self.judge_pushes();
            tracing::info!("user {user}/demper: pass over {} SKUs took {seconds:.1} s", self.skus.len());
            done += 1;
            // Spread passes keep their rhythm (one interval from start to start, or at once if
            // a pass overran); otherwise the interval is a pause after the pass.
            let next = if self.spread { start + self.interval } else { clock::now() + self.interval };
            if self.passes.is_some_and(|p| done >= p) || !self.driver.sleep_until(next).await {
                return;
            }
        }
    }

    /// Pushes `price` for `sku` (the catalogue's `model`), counted in this pass's tally.
    async fn push(&self, sku: &str, model: &str, price: f64) -> Result<(), kaspi::ApiError> {
        let result = kaspi::push_price(&self.driver, &self.urls, &self.account, sku, model, price).await;
        let mut tally = crate::driver::lock(&self.pushes);
        tally.0 += 1;
        if let Err(e) = &result {
            tally.1 += 1;
            tally.2 = Some(e.to_string());
        }
        result
    }

    /// After a pass: a demper whose every push failed (prices decided, none changed) is
    /// reported on `/health` until a pass gets one through.
    fn judge_pushes(&self) {
        let (sent, failed, last) = crate::driver::lock(&self.pushes).clone();
        let why = (sent > 0 && failed == sent).then(|| {
            format!(
                "every price push of its last pass failed ({failed} of {sent}; the last: {}); no price changes",
                last.unwrap_or_default()
            )
        });
        self.driver.metrics.failing(self.account.user, Module::Demper, why);
    }

    /// Waits until the seller's catalogue may be priced from: logged once, and named on
    /// `/health` while it waits.
    async fn catalogue(&self) -> Catalogue {
        let user = self.account.user;
        let mut rx = self.catalog.clone();
        let mut said = false;
        loop {
            let state = *rx.borrow_and_update();
            match state {
                CatalogState::Ready => {
                    self.driver.metrics.hold(user, Module::Demper, None);
                    return Catalogue::Ready;
                }
                CatalogState::GaveUp => {
                    self.driver.metrics.hold(user, Module::Demper, None);
                    return Catalogue::None;
                }
                CatalogState::Pending => {}
            }
            if !said {
                said = true;
                let why = "waits for the seller's catalogue to be synced; nothing is priced before it";
                tracing::info!("user {user}/demper: {why}");
                self.driver.metrics.hold(user, Module::Demper, Some(why.to_owned()));
            }
            if !self.tenure.holds() {
                self.driver.metrics.hold(user, Module::Demper, None);
                return Catalogue::Stop;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    // The catalogue worker ended without a catalogue for this run.
                    self.driver.metrics.hold(user, Module::Demper, None);
                    return if *rx.borrow() == CatalogState::Ready { Catalogue::Ready } else { Catalogue::None };
                },
                alive = self.driver.sleep_until(clock::now() + Duration::from_secs(1)) => if !alive {
                    self.driver.metrics.hold(user, Module::Demper, None);
                    return Catalogue::Stop;
                },
            }
        }
    }

    /// One pass over every SKU, started at `start`: whether the worker must stop, and how many
    /// SKUs' offers were read.
    async fn pass(self: &Arc<Self>, start: rotor_engine::Instant) -> (bool, usize) {
        let order = schedule(self.account.user, &self.skus, self.interval, self.spread);
        let mut tasks = JoinSet::new();
        let mut next = 0;
        let mut stop = false;
        let mut read = 0;
        loop {
            stop |= !self.tenure.holds();
            while !stop && next < order.len() && tasks.len() < self.concurrency as usize {
                if start + order[next].0 > clock::now() {
                    break;
                }
                let me = Arc::clone(self);
                let i = order[next].1;
                tasks.spawn(tracing::Instrument::in_current_span(async move { me.one(i).await }));
                next += 1;
            }
            // The next slot, if one is waiting for its time rather than for a free task.
            let slot = (!stop && next < order.len() && tasks.len() < self.concurrency as usize)
                .then(|| start + order[next].0);
            let joined = match (slot, tasks.is_empty()) {
                (None, true) => break,
                (Some(at), true) => {
                    stop |= !self.driver.sleep_until(at).await;
                    continue;
                }
                (Some(at), false) => tokio::select! {
                    r = tasks.join_next() => r,
                    alive = self.driver.sleep_until(at) => {
                        stop |= !alive;
                        continue;
                    }
                },
                (None, false) => tasks.join_next().await,
            };
            match joined {
                Some(Ok((next, offers_read))) => {
                    read += usize::from(offers_read);
                    stop |= matches!(next, Next::Stop);
                }
                Some(Err(e)) => tracing::error!("a demper task ended abnormally: {e}"),
                None => {}
            }
        }
        let unpriced = crate::driver::lock(&self.reported).len();
        self.driver.metrics.not_priced(self.account.user, unpriced);
        (stop, read)
    }

    /// Why `sku` is not priced at all, from what the store knows of it; logged once per SKU.
    fn unpriceable(&self, sku: &Sku, listing: &crate::store::Listing) -> Option<&'static str> {
        let why = if !listing.listed {
            "not_in_catalog"
        } else if !listing.on_sale {
            "removed_from_sale"
        } else if listing.model.is_none() {
            "no_model_in_catalog"
        } else {
            crate::driver::lock(&self.reported).remove(&sku.sku);
            return None;
        };
        if crate::driver::lock(&self.reported).insert(sku.sku.clone()) {
            let text = match why {
                "not_in_catalog" => "is not in the seller's catalogue",
                "removed_from_sale" => "is removed from sale in the catalogue",
                _ => "has no model in the catalogue",
            };
            tracing::warn!(
                sku = %sku.sku,
                "user {}/demper: SKU {} {text}; it is not priced",
                self.account.user,
                sku.sku
            );
        }
        Some(why)
    }

    /// One SKU: what the worker does next, and whether its offers were read.
    async fn one(&self, i: usize) -> (Next, bool) {
        let sku = &self.skus[i];
        let user = self.account.user;
        let decision = |reason: String| PriceDecision {
            at_ms: clock::now().as_millis(),
            user,
            sku: sku.sku.clone(),
            old_price: None,
            new_price: None,
            competitor_min: None,
            reason,
            pushed: false,
            dry_run: self.dry_run,
        };
        // What the store knows first: a SKU that cannot be priced costs no storefront request.
        let listing = match self.driver.records().listing(user, &sku.sku, self.drop_window) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(sku = %sku.sku, "user {user}/demper: {}: current price unreadable ({e}); held", sku.sku);
                self.driver.metrics.drop_held();
                self.record(&decision(format!("held: current price unreadable: {e}")));
                return (Next::Continue, false);
            }
        };
        if let Some(why) = self.unpriceable(sku, &listing) {
            self.record(&PriceDecision { old_price: listing.price, ..decision(why.to_owned()) });
            return (Next::Continue, false);
        }
        let offers = match kaspi::all_offers(&self.driver, &self.urls, user, &sku.product_id).await {
            Ok(o) => o,
            Err(e) => {
                let next = triage(user, Module::Demper, &format!("offers of {}", sku.sku), &e);
                if matches!(next, Next::Continue) {
                    self.record(&decision(format!("offers_failed: {e}")));
                }
                return (next, false);
            }
        };
        let competitor_min = offers
            .iter()
            .filter(|(m, _)| *m != self.account.merchant_uid && !self.excluded.contains(m))
            .map(|&(_, p)| p)
            .min_by(f64::total_cmp);
        let current = listing.price;
        let r = reprice(current, competitor_min, sku, self.step);
        let mut pushed = false;
        let mut reason = r.reason.to_owned();
        let mut next = Next::Continue;
        // The guard: an unknown current price holds any push; a known one holds a push beyond
        // the budget below the highest price known within the window.
        let guarded = self.max_drop_percent < 100;
        let beyond = match (r.price, current, listing.reference) {
            (Some(_), None, _) => guarded,
            (Some(p), Some(_), Some(reference)) => beyond_guard(reference, p, self.max_drop_percent),
            _ => false,
        };
        if r.push && beyond && self.dry_run {
            reason = format!("{reason}; a drop over {}% would wait for confirmation", self.max_drop_percent);
        }
        let held = match (r.push && beyond && !self.dry_run, r.price) {
            (true, Some(price)) => self.held(sku, current.and(listing.reference), price),
            _ => None,
        };
        if let Some(why) = held {
            self.driver.metrics.drop_held();
            reason = format!("held_drop ({reason}): {why}");
        } else if let (true, false, Some(price), Some(model)) =
            (r.push, self.dry_run, r.price, &listing.model)
        {
            match self.push(&sku.sku, model, price).await {
                Ok(()) => {
                    pushed = true;
                    self.driver.metrics.pushed();
                }
                Err(e) => {
                    reason = format!("{reason}; push failed: {e}");
                    next = triage(user, Module::Demper, &format!("price update of {}", sku.sku), &e);
                }
            }
        }
        self.decided(
            &PriceDecision {
                at_ms: clock::now().as_millis(),
                user,
                sku: sku.sku.clone(),
                old_price: current,
                new_price: r.price,
                competitor_min,
                reason,
                pushed,
                dry_run: self.dry_run,
            },
            r.push,
        );
        (next, true)
    }

    /// Logs a decision (its values as fields too) and stores it; `wanted` says whether the
    /// rule asked for a push (which a dry run does not make).
    fn decided(&self, d: &PriceDecision, wanted: bool) {
        let fmt = |p: Option<f64>| p.map_or_else(|| "-".to_owned(), |p| format!("{p:.0}"));
        tracing::info!(
            sku = %d.sku,
            old_price = d.old_price,
            price = d.new_price,
            competitor_min = d.competitor_min,
            pushed = d.pushed,
            "user {}/demper: {} {} -> {} (competitor min {}): {}{}",
            d.user,
            d.sku,
            fmt(d.old_price),
            fmt(d.new_price),
            fmt(d.competitor_min),
            d.reason,
            if self.dry_run && wanted { " [dry run: not pushed]" } else { "" }
        );
        self.record(d);
        self.driver.metrics.decided();
    }

    /// Why a drop of `sku` from `from` (the guard's reference; `None`: the current price is
    /// unknown) to `to` is not pushed now, or `None` if an operator confirmed it. A new hold is
    /// logged once as a warning; a store that cannot say holds the drop too (nothing beyond the
    /// guard is pushed unconfirmed).
    fn held(&self, sku: &Sku, from: Option<f64>, to: f64) -> Option<String> {
        let user = self.account.user;
        let confirm = format!("confirm with `rotor ctl confirm {} {}`", user.0, sku.sku);
        let what = match from {
            Some(from) => format!(
                "more than {}% below {from:.0}, the highest price within {}",
                self.max_drop_percent, self.drop_window
            ),
            None => "its current price is unknown".to_owned(),
        };
        match self.driver.records().drop_gate(user, &sku.sku, (from, to)) {
            Ok(crate::store::DropGate::Confirmed) => None,
            Ok(crate::store::DropGate::Held) => {
                let shown = from.map_or_else(|| "?".to_owned(), |f| format!("{f:.0}"));
                tracing::warn!(
                    sku = %sku.sku,
                    old_price = from,
                    price = to,
                    "user {user}/demper: {} would drop {shown} -> {to:.0}, {what}; held until an operator \
                     confirms ({confirm})",
                    sku.sku,
                );
                Some(format!("{what}; {confirm}"))
            }
            Ok(crate::store::DropGate::StillHeld) => Some(format!("{what}; {confirm}")),
            Err(e) => Some(format!("cannot read its confirmation: {e}")),
        }
    }

    fn record(&self, decision: &PriceDecision) {
        if let Err(e) = self.driver.records().decision(decision) {
            tracing::error!("cannot store a price decision: {e}");
        }
    }
}

#[cfg(test)]
#[path = "demper_tests.rs"]
mod tests;
