//! The catalogue worker: page through the cabinet's offer list (on sale and removed from sale)
//! and store it, at start when the store holds none or `--sync-catalog` asks, and on a schedule.
//! The demper prices only what the stored catalogue lists, at the price and with the model it
//! lists, so an answer that cannot be trusted (no `total`, rows that do not add up to it, an
//! empty list where offers are stored, a list that shrank by more than `[catalog]
//! max_shrink_percent`) is not stored: it is logged with its figures, counted, named on
//! `/health`, and tried again, while the previous catalogue stays.

use std::sync::Arc;

use rotor_engine::{Duration, Module};
use tokio::sync::watch;

use super::triage;
use crate::clock;
use crate::config::KaspiUrls;
use crate::driver::Driver;
use crate::kaspi::{self, Account, ApiError};

/// Where the seller's catalogue stands for the demper of the same tenure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogState {
    /// No catalogue the demper may use yet: it waits.
    Pending,
    /// A catalogue is stored that the demper may price from.
    Ready,
    /// This run will not get one (a one-pass run whose sync failed): the demper prices nothing.
    GaveUp,
}

/// The first pause before a failed sync is tried again; it doubles up to the interval.
const RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest pause between tries when there is no schedule.
const RETRY_CAP: Duration = Duration::from_mins(5);

/// What a catalogue worker needs.
pub struct Catalog {
    /// The shared driver.
    pub driver: Arc<Driver>,
    /// Kaspi's hosts.
    pub urls: KaspiUrls,
    /// The seller.
    pub account: Account,
    /// Sync interval; `None`: no schedule.
    pub interval: Option<Duration>,
    /// `--sync-catalog`: the demper waits for a catalogue synced in this run, not a stored one.
    pub fresh: bool,
    /// A one-pass run: one try, no retries.
    pub once: bool,
    /// A stored catalogue may shrink by at most this percent.
    pub max_shrink_percent: u32,
    /// Tells the demper when it may price.
    pub state: watch::Sender<CatalogState>,
    /// The stint of serving this seller the worker belongs to.
    pub tenure: super::Tenure,
}

/// Why a catalogue answer is not stored: its reason (one of
/// [`crate::metrics::CATALOG_REFUSALS`]) and what was seen. `None` when `rows` offers may replace
/// a stored catalogue of `stored` offers.
pub fn untrusted(rows: u64, stored: Option<u64>, max_shrink_percent: u32) -> Option<(&'static str, String)> {
    let stored = stored.filter(|&n| n > 0)?;
    if rows == 0 {
        return Some(("empty", format!("the cabinet listed no offers where {stored} are stored")));
    }
    // rows < stored × (1 − share), in integers.
    if rows * 100 < stored * u64::from(100 - max_shrink_percent.min(100)) {
        return Some((
            "shrunk",
            format!(
                "the cabinet listed {rows} offers where {stored} are stored, fewer by more than \
                 {max_shrink_percent}%"
            ),
        ));
    }
    None
}

/// How one sync ended.
enum Synced {
    /// Stored, with this many offers.
    Stored(usize),
    /// The worker must stop.
    Stop,
    /// Not stored, for this reason.
    Failed(String),
}

impl Catalog {
    /// Syncs as its settings say, until shutdown or the end of its tenure.
    pub async fn run(self) {
        let user = self.account.user;
        let running = super::Running::new(&self.driver.metrics, user, Module::Catalog);
        let stored = self.driver.records().catalog_synced(user);
        if !self.fresh && matches!(stored, Ok(Some(_))) {
            // The stored catalogue serves until the next sync replaces it; without a schedule
            // nothing asks for one now.
            self.state.send_replace(CatalogState::Ready);
            if self.once || self.interval.is_none() {
                return;
            }
        }
        let mut retry = RETRY_FIRST;
        loop {
            if !self.tenure.holds() {
                return;
            }
            let start = clock::now();
            let next = match self.sync().await {
                Synced::Stop => {
                    self.driver.metrics.hold(user, Module::Catalog, None);
                    return;
                }
                Synced::Stored(n) => {
                    let seconds = clock::now().saturating_since(start).as_millis() as f64 / 1000.0;
                    running.cycle(seconds, true);
                    self.driver.metrics.hold(user, Module::Catalog, None);
                    self.state.send_replace(CatalogState::Ready);
                    tracing::info!("user {user}/catalog: stored {n} offers in {seconds:.1} s");
                    retry = RETRY_FIRST;
                    match self.interval {
                        Some(every) if !self.once => every,
                        _ => return,
                    }
                }
                Synced::Failed(why) => {
                    self.driver.metrics.hold(
                        user,
                        Module::Catalog,
                        Some(format!("catalogue not synced: {why}")),
                    );
                    if self.once {
                        if *self.state.borrow() == CatalogState::Pending {
                            self.state.send_replace(CatalogState::GaveUp);
                        }
                        return;
                    }
                    let wait = retry;
                    let cap = self.interval.unwrap_or(RETRY_CAP).max(RETRY_FIRST);
                    retry = Duration::from_millis((retry.as_millis() * 2).min(cap.as_millis()));
                    tracing::info!("user {user}/catalog: trying again in {wait}");
                    wait
                }
            };
            if !self.driver.sleep_until(clock::now() + next).await {
                return;
            }
        }
    }

    /// One sync: read every page, check the answer, store it.
    async fn sync(&self) -> Synced {
        let user = self.account.user;
        let rows = match kaspi::catalog(&self.driver, &self.urls, &self.account).await {
            Ok(rows) => rows,
            Err(ApiError::Untrusted(reason, why)) => return self.refuse(reason, &why),
            Err(e) => {
                return match triage(user, Module::Catalog, "offer list", &e) {
                    super::Next::Stop => Synced::Stop,
                    super::Next::Continue => Synced::Failed(e.to_string()),
                };
            }
        };
        let stored = match self.driver.records().catalog_synced(user) {
            Ok(s) => s.map(|(_, n)| n),
            Err(e) => {
                tracing::error!("user {user}/catalog: cannot read the stored catalogue's size: {e}");
                return Synced::Failed(format!("store: {e}"));
            }
        };
        if let Some((reason, why)) = untrusted(rows.len() as u64, stored, self.max_shrink_percent) {
            return self.refuse(reason, &why);
        }
        match self.driver.records().catalog(user, &rows) {
            Ok(()) => Synced::Stored(rows.len()),
            Err(e) => {
                tracing::error!("cannot store the catalogue of user {user}: {e}");
                Synced::Failed(format!("store: {e}"))
            }
        }
    }

    /// Logs and counts an answer that is not stored.
    fn refuse(&self, reason: &'static str, why: &str) -> Synced {
        self.driver.metrics.catalog_refused(reason);
        tracing::warn!(
            "user {}/catalog: answer not stored ({reason}): {why}; the stored catalogue stays",
            self.account.user
        );
        Synced::Failed(format!("answer not stored ({reason}): {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::untrusted;

    #[test]
    fn an_empty_or_shrunk_list_is_not_trusted_against_a_stored_one() {
        assert_eq!(untrusted(0, None, 20), None, "a first catalogue may be empty");
        assert_eq!(untrusted(0, Some(0), 20), None);
        assert_eq!(untrusted(0, Some(3), 20).map(|r| r.0), Some("empty"));
        assert_eq!(untrusted(80, Some(100), 20), None, "exactly the share allowed");
        assert_eq!(untrusted(79, Some(100), 20).map(|r| r.0), Some("shrunk"));
        assert_eq!(untrusted(1, Some(100), 100), None, "100% accepts any shrink but an empty list");
        assert_eq!(untrusted(0, Some(100), 100).map(|r| r.0), Some("empty"));
        assert_eq!(untrusted(500, Some(100), 0), None, "growing is fine");
        assert_eq!(untrusted(99, Some(100), 0).map(|r| r.0), Some("shrunk"));
        let (_, why) = untrusted(7, Some(600), 20).unwrap_or(("", String::new()));
        assert_eq!(why, "the cabinet listed 7 offers where 600 are stored, fewer by more than 20%");
    }
}
