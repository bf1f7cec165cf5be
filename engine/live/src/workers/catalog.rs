//! The catalogue worker: page through the cabinet's offer list and store it, on demand
//! (`--sync-catalog`) or on a schedule. The demper reads current prices from it.

use std::sync::Arc;

use rotor_engine::{Duration, Module};

use super::triage;
use crate::clock;
use crate::config::KaspiUrls;
use crate::driver::Driver;
use crate::kaspi::{self, Account};

/// What a catalogue worker needs.
pub struct Catalog {
    /// The shared driver.
    pub driver: Arc<Driver>,
    /// Kaspi's hosts.
    pub urls: KaspiUrls,
    /// The seller.
    pub account: Account,
    /// Sync interval; `None`: one sync.
    pub interval: Option<Duration>,
    /// The stint of serving this seller the worker belongs to.
    pub tenure: super::Tenure,
}

impl Catalog {
    /// Syncs once, or on its schedule until shutdown.
    pub async fn run(self) {
        let user = self.account.user;
        let running = super::Running::new(&self.driver.metrics, user, Module::Catalog);
        loop {
            if !self.tenure.holds() {
                return;
            }
            let start = clock::now();
            match kaspi::catalog(&self.driver, &self.urls, &self.account).await {
                Ok(rows) => {
                    let n = rows.len();
                    let stored = self.driver.records().catalog(user, &rows);
                    if let Err(e) = &stored {
                        tracing::error!("cannot store the catalogue of user {user}: {e}");
                    }
                    let seconds = clock::now().saturating_since(start).as_millis() as f64 / 1000.0;
                    running.cycle(seconds, stored.is_ok());
                    tracing::info!("user {user}/catalog: stored {n} offers in {seconds:.1} s");
                }
                Err(e) => {
                    if let super::Next::Stop = triage(user, Module::Catalog, "offer list", &e) {
                        return;
                    }
                }
            }
            let Some(every) = self.interval else { return };
            if !self.driver.sleep_until(clock::now() + every).await {
                return;
            }
        }
    }
}
