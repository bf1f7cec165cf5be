//! The pool and the records: proxies joining this worker's engine, read-only views for the
//! status endpoint, and the business records (prices, orders, catalogue) the workers keep.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use rotor_engine::{Engine, PoolError, ProxyId, ProxySpec, UserId};

use super::{Driver, STATUS_STORE_CALLS, lock, lock_store};
use crate::clock;
use crate::store::{NewOrder, NewProxy, PriceDecision, StoreError, StoredProxy};

impl Driver {
    /// How many proxies this worker's engine knows (ids below this are known).
    pub fn proxy_count(&self) -> u32 {
        lock(&self.engine).proxy_count()
    }

    /// Proxies the store holds with ids from `from` on (another worker or the provisioner
    /// recorded them).
    pub fn stored_proxies_from(&self, from: u32) -> Result<Vec<StoredProxy>, StoreError> {
        lock_store(&self.store).proxies_from(from)
    }

    /// Records a proxy in the store and returns its id (`store`).
    pub fn record_proxy(&self, proxy: &NewProxy<'_>) -> Result<ProxyId, StoreError> {
        lock_store(&self.store).upsert_proxy(proxy, clock::now().as_millis())
    }

    /// Adds a proxy to the engine with the client that connects through it, so that the
    /// engine's id and the client's index agree. Locks: `engine` → `clients` → `books`.
    pub fn join(&self, spec: ProxySpec, client: reqwest::Client) -> Result<ProxyId, PoolError> {
        let joined = {
            let mut engine = lock(&self.engine);
            engine.add_proxy(spec).inspect(|&id| {
                let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
                debug_assert_eq!(clients.len(), id.0 as usize);
                clients.push(client);
                self.books.push();
            })
        };
        self.absorb_events();
        joined
    }

    /// Whether the store answers now (`store`), within `patience`; a failure or a wait past
    /// it counts as a store error. See [`Driver::store_within`].
    pub async fn store_reachable(self: &Arc<Self>, patience: std::time::Duration) -> Result<(), String> {
        let result = self.store_within(patience, |s| s.ping().map_err(|e| e.to_string())).await;
        if result.is_err() {
            self.metrics.store_error();
        }
        result
    }

    /// Runs `f` on the store on a blocking thread and waits for it at most `patience`, so that
    /// the status endpoint answers even while a store call hangs (a paused PostgreSQL, a
    /// locked SQLite file): past it, the answer is an error that says so, and `f` finishes on
    /// its own thread. At most `STATUS_STORE_CALLS` such calls are outstanding; more are
    /// refused at once rather than piling threads onto a hung store.
    pub async fn store_within<R: Send + 'static>(
        self: &Arc<Self>,
        patience: std::time::Duration,
        f: impl FnOnce(&mut crate::store::Store) -> Result<R, String> + Send + 'static,
    ) -> Result<R, String> {
        let outstanding = self.status_calls.fetch_add(1, Ordering::AcqRel);
        if outstanding >= STATUS_STORE_CALLS {
            self.status_calls.fetch_sub(1, Ordering::AcqRel);
            return Err(format!(
                "{outstanding} earlier store calls of the status endpoint have not returned"
            ));
        }
        let me = Arc::clone(self);
        let task = tokio::task::spawn_blocking(move || {
            let r = f(&mut lock_store(&me.store));
            me.status_calls.fetch_sub(1, Ordering::AcqRel);
            r
        });
        match tokio::time::timeout(patience, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(format!("the store call failed: {e}")),
            Err(_) => Err(format!(
                "the store has not answered in {} ms (a write holds it, or the database hangs)",
                patience.as_millis()
            )),
        }
    }

    /// The store's proxy rows and lease counts, for `/health/proxies` (`store`).
    pub fn stored_view(
        &self,
    ) -> Result<(Vec<StoredProxy>, std::collections::BTreeMap<ProxyId, u64>), StoreError> {
        let mut store = lock_store(&self.store);
        Ok((store.proxies()?, store.lease_counts()?))
    }

    /// Runs `f` on the store, off the runtime's core (`store`): for services with their own
    /// records, such as the webhook's cursor.
    pub fn store_call<R>(&self, f: impl FnOnce(&mut crate::store::Store) -> R) -> R {
        super::blocking(|| f(&mut lock_store(&self.store)))
    }

    /// Swaps the client of proxy `id` for one built with its new credentials (`clients`).
    pub fn replace_client(&self, id: ProxyId, client: reqwest::Client) {
        let mut clients = self.clients.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = clients.get_mut(id.0 as usize) {
            *slot = client;
        }
    }

    /// A read-only view of the engine, for status pages (`engine`).
    pub fn view<R>(&self, f: impl FnOnce(&Engine) -> R) -> R {
        f(&lock(&self.engine))
    }

    /// The business records the workers keep.
    pub fn records(&self) -> Records<'_> {
        Records(self)
    }
}

/// The workers' records in the store: each method is one short write or read (`store`).
pub struct Records<'a>(&'a Driver);

impl Records<'_> {
    fn store(&self) -> parking_lot::FairMutexGuard<'_, crate::store::Store> {
        lock_store(&self.0.store)
    }

    /// Runs a read or write off the runtime's core ([`super::blocking`]) and counts a failure
    /// in `rotor_store_errors_total`.
    fn counted<T>(&self, call: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        let result = super::blocking(call);
        if result.is_err() {
            self.0.metrics.store_error();
        }
        result
    }

    /// Records a repricing decision.
    pub fn decision(&self, d: &PriceDecision) -> Result<(), StoreError> {
        self.counted(|| self.store().record_decision(d))
    }

    /// A SKU's current price (the newer of our last push and the catalogue's) and its model.
    /// What the store knows of `user`'s `sku`, with the drop guard's reference over the last
    /// `window`.
    pub fn listing(
        &self,
        user: UserId,
        sku: &str,
        window: rotor_engine::Duration,
    ) -> Result<crate::store::Listing, StoreError> {
        let since = clock::now().as_millis().saturating_sub(window.as_millis());
        self.counted(|| self.store().listing(user, sku, since))
    }

    /// When `user`'s last accepted catalogue was stored, and its offer count.
    pub fn catalog_synced(&self, user: UserId) -> Result<Option<(u64, u64)>, StoreError> {
        self.counted(|| self.store().catalog_synced(user))
    }

    /// The gate before a drop larger than the configured share (see [`crate::store::DropGate`]).
    pub fn drop_gate(
        &self,
        user: UserId,
        sku: &str,
        from_to: (Option<f64>, f64),
    ) -> Result<crate::store::DropGate, StoreError> {
        self.counted(|| self.store().drop_confirmed(user, sku, from_to, clock::now().as_millis()))
    }

    /// Prunes `what` older than `before_ms`, batches of a few thousand rows while `batches`
    /// lasts (each batch spends one), each a short transaction with the store free between
    /// them (other writes run in between); returns how many rows went and whether nothing
    /// older is left.
    pub fn prune(
        &self,
        what: crate::store::History,
        before_ms: u64,
        batches: &mut u32,
    ) -> Result<(u64, bool), StoreError> {
        const BATCH: u64 = 5_000;
        let mut total = 0;
        while *batches > 0 {
            *batches -= 1;
            let n = self.counted(|| self.store().prune_batch(what, before_ms, BATCH))?;
            total += n;
            if n < BATCH {
                return Ok((total, true));
            }
        }
        Ok((total, false))
    }

    /// Whether an order is stored.
    pub fn has_order(&self, id: &str) -> Result<bool, StoreError> {
        self.counted(|| self.store().has_order(id))
    }

    /// Stores a new order with its entries, or a known one's change of state or status, each
    /// with its event in the order log.
    pub fn order(&self, user: UserId, order: &NewOrder) -> Result<crate::store::OrderWrite, StoreError> {
        self.counted(|| self.store().write_order(user, order, clock::now().as_millis()))
    }

    /// Up to `limit` of `user`'s open orders created before `before_ms`, least recently
    /// looked at first.
    pub fn open_orders(&self, user: UserId, before_ms: u64, limit: u64) -> Result<Vec<String>, StoreError> {
        self.counted(|| self.store().open_orders(user, before_ms, limit))
    }

    /// Records that order `id` was looked at by itself now.
    pub fn order_checked(&self, id: &str) -> Result<(), StoreError> {
        self.counted(|| self.store().order_checked(id, clock::now().as_millis()))
    }

    /// Up to when `user`'s orders are known complete.
    pub fn orders_synced(&self, user: UserId) -> Result<Option<u64>, StoreError> {
        self.counted(|| self.store().orders_synced(user))
    }

    /// Records that every order of `user` created up to `synced_ms` is stored.
    pub fn set_orders_synced(&self, user: UserId, synced_ms: u64) -> Result<(), StoreError> {
        self.counted(|| self.store().set_orders_synced(user, synced_ms))
    }

    /// Replaces `user`'s catalogue: (sku, model, price, available).
    pub fn catalog(&self, user: UserId, rows: &crate::store::CatalogRows) -> Result<(), StoreError> {
        self.counted(|| self.store().store_catalog(user, rows, clock::now().as_millis()))
    }
}
