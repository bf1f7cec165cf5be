//! The workloads: each user's per-module cycles (demper, orders, catalog, reserve), started on
//! schedule, pumped up to their concurrency, and ended when their last request finishes.

use rand::Rng;
use rotor_engine::Module;

use crate::observe::Observation;
use crate::observe::metrics::CycleRecord;

use super::state::{Cycle, Ev, Phase, Sim, Step};

impl Sim<'_, '_> {
    pub(super) fn cycle_due(&mut self, w: u32) {
        let duration = self.sc.duration.as_millis();
        let work = &mut self.works[w as usize];
        if !work.active {
            return;
        }
        let next = self.now + work.interval;
        if next < duration {
            self.queue.push(next, Ev::CycleDue(w));
        }
        if work.cycle.is_some() {
            if work.overdue.is_some() {
                self.obs.observe(self.now, Observation::CycleSkipped(work.lane.module));
            }
            work.overdue = Some(self.now);
            return;
        }
        self.start_cycle(w, self.now);
    }

    pub(super) fn start_cycle(&mut self, w: u32, scheduled: u64) {
        let sc = self.sc;
        let work = &mut self.works[w as usize];
        let phase = match work.lane.module {
            Module::Orders => {
                let (pages, orders) = sc.orders.as_ref().map_or((1, 0), |o| {
                    let n = work.rng.random_range(o.orders_per_poll.lo..=o.orders_per_poll.hi);
                    (n.div_ceil(o.page_size).max(1), n)
                });
                Phase::Pages { left: pages, total: pages, orders }
            }
            Module::Catalog => {
                let pages = sc.catalog.map_or(1, |c| c.pages);
                Phase::Pages { left: pages, total: pages, orders: 0 }
            }
            Module::Demper | Module::Reserve => Phase::Skus,
        };
        let queued = match (phase, work.lane.module) {
            (Phase::Skus, Module::Reserve) => sc.reserve.map_or(0, |r| r.requests),
            (Phase::Skus, _) => work.skus,
            _ => 0,
        };
        let follow = match work.lane.module {
            Module::Orders => sc.orders.map_or(0, |o| o.follow_per_poll),
            _ => 0,
        };
        work.cycle = Some(Cycle {
            scheduled,
            started: self.now,
            queued,
            unlocked: 0,
            follow,
            running: 0,
            phase,
            requests: 0,
            skus: work.skus,
        });
        self.pump(w);
    }

    /// Starts jobs until the cycle's concurrency is used or nothing is left.
    pub(super) fn pump(&mut self, w: u32) {
        loop {
            let work = &mut self.works[w as usize];
            let concurrency = work.concurrency;
            let share = self.sc.demper.map_or(1.0, |d| d.price_change_share);
            let page_size = self.sc.orders.map_or(1, |o| o.page_size);
            let active = work.active;
            let Some(cycle) = work.cycle.as_mut() else { return };
            if !active {
                // The subscription expired: the cycle issues nothing more and ends with what
                // it has in flight.
                cycle.queued = 0;
                cycle.phase = Phase::Entries;
            }
            let mut entries = 0;
            let step = match cycle.phase {
                Phase::Pages { left, total, orders } => {
                    if cycle.running > 0 {
                        return;
                    }
                    if left == 0 {
                        cycle.phase = Phase::Entries;
                        cycle.queued = cycle.unlocked + cycle.follow;
                        continue;
                    }
                    let page = total - left;
                    entries = orders.saturating_sub(page * page_size).min(page_size);
                    cycle.phase = Phase::Pages { left: left - 1, total, orders };
                    if work.lane.module == Module::Catalog { Step::CatalogPage } else { Step::OrdersPage }
                }
                Phase::Skus | Phase::Entries => {
                    if cycle.queued == 0 || cycle.running >= concurrency {
                        break;
                    }
                    // A spread cycle's next check waits for its slot.
                    let next = cycle.skus.saturating_sub(cycle.queued) as usize;
                    if cycle.phase == Phase::Skus
                        && let Some(&slot) = work.slots.get(next)
                        && cycle.scheduled + slot > self.now
                    {
                        let at = cycle.scheduled + slot;
                        if work.wake.is_none_or(|t| t > at) {
                            work.wake = Some(at);
                            self.queue.push(at, Ev::Pump(w));
                        }
                        break;
                    }
                    cycle.queued -= 1;
                    match cycle.phase {
                        Phase::Skus => Step::Offers,
                        // The entries first, then the orders followed by id.
                        _ if cycle.queued >= cycle.follow => Step::OrderEntries,
                        _ => Step::OrderLookup,
                    }
                }
            };
            cycle.running += 1;
            let then_update = step == Step::Offers
                && work.lane.module == Module::Demper
                && (share >= 1.0 || work.rng.random::<f64>() < share);
            self.issue(w, step, then_update, entries);
        }
        self.maybe_end_cycle(w);
    }

    pub(super) fn maybe_end_cycle(&mut self, w: u32) {
        let work = &mut self.works[w as usize];
        let Some(cycle) = work.cycle.as_ref() else { return };
        let pages_left = matches!(cycle.phase, Phase::Pages { .. });
        if cycle.running > 0 || cycle.queued > 0 || pages_left {
            return;
        }
        let duration_ms = self.now - cycle.started;
        let rec = CycleRecord {
            module: work.lane.module,
            user: work.lane.user,
            scheduled_ms: cycle.scheduled,
            start_ms: cycle.started,
            duration_ms,
            lag_ms: cycle.started - cycle.scheduled,
            requests: cycle.requests,
            missed: self.now > cycle.scheduled + work.interval,
        };
        work.cycle = None;
        let overdue = work.overdue.take();
        let active = work.active;
        self.obs.observe(self.now, Observation::CycleEnded(rec));
        if let Some(scheduled) = overdue
            && active
            && self.now < self.sc.duration.as_millis()
        {
            self.start_cycle(w, scheduled);
        }
    }

    pub(super) fn job_done(&mut self, w: u32) {
        if let Some(c) = self.works[w as usize].cycle.as_mut() {
            c.running -= 1;
        }
        self.pump(w);
    }
}
