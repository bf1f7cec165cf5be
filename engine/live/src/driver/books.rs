//! The lease books: what the store knows of each proxy's current lease (its number, the sends
//! reserved, the usage so far), and the writes that keep it ahead of the sends.

use std::sync::{Mutex, MutexGuard};

use rotor_engine::{LaneKey, ProxyId, ProxyState};

use super::{CallError, Driver, lock, lock_store};
use crate::log::{self, Level};
use crate::store::{LeaseUsage, StoreError};

/// The lease bookkeeping of one proxy.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Book {
    pub(super) lease_no: u32,
    pub(super) reserved: u32,
    pub(super) usage: LeaseUsage,
}

/// Every proxy's book (index = id), and how many sends a reservation covers.
pub(super) struct Books {
    by_proxy: Mutex<Vec<Book>>,
    reserve_block: u32,
    budget: u32,
}

impl Books {
    pub(super) fn new(books: &[(u32, LeaseUsage)], reserve_block: u32, budget: u32) -> Self {
        let books = books.iter().map(|&(lease_no, usage)| Book { lease_no, reserved: 0, usage }).collect();
        Books { by_proxy: Mutex::new(books), reserve_block: reserve_block.max(1), budget }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Book>> {
        lock(&self.by_proxy)
    }

    /// A book for a proxy that just joined.
    pub(super) fn push(&self) {
        self.lock().push(Book::default());
    }

    /// Counts one finished send of `proxy`.
    pub(super) fn count(&self, proxy: ProxyId, ok: bool) {
        let mut books = self.lock();
        let u = &mut books[proxy.0 as usize].usage;
        u.requests += 1;
        if ok {
            u.successes += 1;
        } else {
            u.failures += 1;
        }
    }

    /// The proxy's lease is the store's `lease_no`, with nothing reserved by this worker.
    pub(super) fn reset(&self, proxy: ProxyId, lease_no: u32) {
        if let Some(book) = self.lock().get_mut(proxy.0 as usize) {
            book.lease_no = lease_no;
            book.reserved = 0;
        }
    }
}

impl Driver {
    /// Makes the send that made the proxy's lease `lease_requests` long durable before it goes
    /// out: within the reserved block nothing is written; past it, the next block is reserved.
    /// Locks: `owned` (released), then `books` → `store`.
    pub(super) fn charge(&self, lane: LaneKey, proxy: ProxyId, lease_requests: u32) -> Result<(), CallError> {
        let fence = self.fence(lane).ok_or(CallError::LaneLost)?;
        let mut books = self.books.lock();
        let book = &mut books[proxy.0 as usize];
        if lease_requests <= book.reserved {
            return Ok(());
        }
        let reserved =
            (lease_requests - 1 + self.books.reserve_block).min(self.books.budget.max(lease_requests));
        super::blocking(|| {
            lock_store(&self.store).reserve(&fence, proxy, book.lease_no, reserved, book.usage)
        })
        .map_err(|e| match e {
            StoreError::Fenced { .. } => CallError::LaneLost,
            other => CallError::Store(other),
        })?;
        book.reserved = reserved;
        Ok(())
    }

    /// A lane started a lease on `to`: the lease is opened in the store with its first block
    /// reserved, before the send that started it goes out. Locks: `owned` (released), then
    /// `books` → `store`.
    pub(super) fn lease_opened(&self, lane: LaneKey, from: Option<ProxyId>, to: ProxyId, now: u64) {
        self.metrics.rotation(lane.module);
        let fence = self.fence(lane);
        let mut books = self.books.lock();
        let book = &mut books[to.0 as usize];
        book.lease_no += 1;
        book.usage = LeaseUsage::default();
        book.reserved = self.books.reserve_block.min(self.books.budget);
        let r = match fence {
            Some(fence) => lock_store(&self.store).open_lease(&fence, to, book.lease_no, book.reserved, now),
            None => Err(StoreError::Fenced { user: lane.user, module: lane.module }),
        };
        if let Err(e) = r {
            // `charge` will write the reservation again before any send (and, fenced, refuse it).
            book.reserved = 0;
            // A lane being handed over or lost is fenced out by design: no send follows.
            let level = if matches!(e, StoreError::Fenced { .. }) { Level::Warn } else { Level::Error };
            log::line(level, &format!("cannot record lease {} of {to}: {e}", book.lease_no));
        }
        let from = from.map_or_else(|| "none".to_owned(), |p| p.to_string());
        tracing::info!("lane {lane}: rotated from {from} to {to}");
    }

    /// A proxy's lease is over and its rest began. Locks: `owned`, `books` (each released),
    /// then `store`.
    pub(super) fn rest_started(
        &self,
        proxy: ProxyId,
        lane: Option<LaneKey>,
        until: rotor_engine::Instant,
        now: u64,
    ) {
        let fence = lane.and_then(|l| self.fence(l));
        let book = self.books.lock()[proxy.0 as usize];
        if let Err(e) = lock_store(&self.store).start_rest(
            fence.as_ref(),
            proxy,
            book.lease_no,
            until.as_millis(),
            book.usage,
            now,
        ) {
            tracing::error!("cannot record the rest of {proxy}: {e}");
        }
        let lane = lane.map_or_else(|| "pool".to_owned(), |l| l.to_string());
        let until = log::utc(until.as_millis());
        tracing::info!("{proxy} ({lane}) rests until {until} after {} requests", book.usage.requests);
    }

    /// At shutdown: writes the usage of every lease still open. Locks: `owned` (a snapshot,
    /// released), then `engine` → `books` (a snapshot, released), then `store`.
    pub(super) fn flush_books(&self) {
        let fences = self.owned.sending_fences();
        let open: Vec<(ProxyId, LaneKey, Book)> = {
            let engine = lock(&self.engine);
            let books = self.books.lock();
            books
                .iter()
                .enumerate()
                .filter_map(|(i, book)| {
                    let id = ProxyId(i as u32);
                    let view = engine.proxy(id)?;
                    let open = matches!(view.state, ProxyState::Active | ProxyState::Draining);
                    (open && book.reserved > 0).then_some((id, view.lane?, *book))
                })
                .collect()
        };
        let mut store = lock_store(&self.store);
        for (id, lane, book) in open {
            if let Some(fence) = fences.get(&lane.user).map(|f| f[lane.module.index()]) {
                let _ = store.reserve(&fence, id, book.lease_no, book.reserved, book.usage);
            }
        }
    }
}
