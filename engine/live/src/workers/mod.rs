//! The workers, one set per seller, each on its own lane: [`demper`] reprices, [`orders`]
//! stores new orders, [`catalog`] mirrors the cabinet's offer list.

pub mod catalog;
pub mod demper;
pub mod orders;

use rotor_engine::{FailReason, Module};

use super::driver::CallError;
use super::kaspi::ApiError;

/// One stint of serving a seller: the workers started for it hold a tenure, and the claims loop
/// ends it when the seller's lanes are lost, handed over or freed. A worker whose tenure ended
/// stops at its next step (before a SKU, a page, or a pass), so a seller lost and claimed again
/// runs exactly one set of loops.
#[derive(Debug, Clone)]
pub struct Tenure {
    shared: std::sync::Arc<std::sync::atomic::AtomicU64>,
    mine: u64,
}

impl Tenure {
    /// The tenure that starts now for the seller whose counter is `shared`.
    pub fn begin(shared: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Tenure {
            shared: std::sync::Arc::clone(shared),
            mine: shared.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// Ends every tenure begun on `shared` so far.
    pub fn end_all(shared: &std::sync::atomic::AtomicU64) {
        shared.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether this tenure still holds.
    pub fn holds(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire) == self.mine
    }
}

/// Counts a running worker loop in the driver's metrics for as long as it lives, and records
/// each cycle that made progress (what `/health` reads to tell a stalled lane). Each loop is a
/// run of its own, so one that ends after its successor started leaves the successor's record;
/// one that ends by a panic leaves its lane reported.
pub(crate) struct Running<'a> {
    metrics: &'a crate::metrics::Metrics,
    user: rotor_engine::UserId,
    module: Module,
    run: u64,
}

impl<'a> Running<'a> {
    pub(crate) fn new(
        metrics: &'a crate::metrics::Metrics,
        user: rotor_engine::UserId,
        module: Module,
    ) -> Self {
        let run = metrics.loop_started(user, module, crate::clock::now().as_millis());
        Running { metrics, user, module, run }
    }

    /// A cycle that took `seconds` ended; `progressed` if it got work through (not every
    /// request failed).
    pub(crate) fn cycle(&self, seconds: f64, progressed: bool) {
        self.metrics.cycle(self.module, seconds);
        if progressed {
            self.metrics.cycle_done(self.user, self.module, self.run, crate::clock::now().as_millis());
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let panic = std::thread::panicking().then(|| crate::clock::now().as_millis());
        self.metrics.loop_ended(self.user, self.module, self.run, panic);
    }
}

/// What a worker does after an error.
pub(crate) enum Next {
    /// Go on with the next item.
    Continue,
    /// Stop the worker: shutdown, or the seller's proxies are gone.
    Stop,
}

/// Logs `e` for `what` and says whether the worker goes on.
pub(crate) fn triage(user: rotor_engine::UserId, module: Module, what: &str, e: &ApiError) -> Next {
    match e {
        ApiError::Call(CallError::Stopped | CallError::LaneLost) => Next::Stop,
        ApiError::Call(CallError::Failed(FailReason::NotAllocated | FailReason::Deallocated, _)) => {
            tracing::info!("user {user}/{module}: no proxies allocated; worker stops");
            Next::Stop
        }
        ApiError::Call(CallError::Failed(FailReason::Unauthorized, _)) => {
            // The driver alerted once when the engine saw the refusal; the engine fails every
            // other request of this seller, so the worker stops rather than spin.
            tracing::info!("user {user}/{module}: {what}: credentials refused; worker stops");
            Next::Stop
        }
        // The ban was logged once when it started (with its end); each update it fails is in
        // the decisions table, not one warning per SKU per pass. A call skipped past a batch's
        // --max-wait is counted by the driver and reported once at the end of the batch.
        ApiError::Call(
            CallError::Failed(FailReason::AccountCoolingDown, _) | CallError::WaitTooLong { .. },
        ) => Next::Continue,
        other => {
            let status = match other {
                ApiError::Call(CallError::Failed(_, status)) => *status,
                ApiError::Status(_, status) => Some(*status),
                _ => None,
            };
            tracing::warn!(status, "user {user}/{module}: {what}: {other}");
            Next::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_goes_on_through_an_account_ban_and_stops_on_refused_credentials() {
        let failed = |reason| ApiError::Call(CallError::Failed(reason, None));
        let user = rotor_engine::UserId(1);
        let next = |e: &ApiError| triage(user, Module::Demper, "price update of A", e);
        assert!(matches!(next(&failed(FailReason::AccountCoolingDown)), Next::Continue));
        assert!(matches!(next(&failed(FailReason::Unauthorized)), Next::Stop));
        assert!(matches!(next(&failed(FailReason::NotAllocated)), Next::Stop));
        assert!(matches!(next(&ApiError::Call(CallError::LaneLost)), Next::Stop));
        assert!(matches!(next(&failed(FailReason::NoLiveProxies)), Next::Continue));
    }

    #[test]
    fn an_old_loop_ending_leaves_the_new_ones_record_and_a_panic_leaves_its_lane_reported() {
        let metrics = crate::metrics::Metrics::default();
        let user = rotor_engine::UserId(1);
        let old = Running::new(&metrics, user, Module::Demper);
        let new = Running::new(&metrics, user, Module::Demper);
        drop(old);
        new.cycle(1.0, true);
        let progress = metrics.progress();
        assert!(progress[&(user, Module::Demper)].last_ok_ms.is_some(), "the new loop's record stays");
        assert_eq!(metrics.loops(Module::Demper), 1);
        drop(new);
        assert!(metrics.progress().is_empty() && metrics.failures().is_empty());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _running = Running::new(&metrics, user, Module::Orders);
            panic!("a bug");
        }));
        assert!(panicked.is_err());
        let failing = metrics.failures();
        assert!(failing[&(user, Module::Orders)].contains("ended by a panic"), "{failing:?}");
        assert_eq!(metrics.loops(Module::Orders), 0);
        // A new loop for the lane clears it.
        let again = Running::new(&metrics, user, Module::Orders);
        assert!(metrics.failures().is_empty());
        drop(again);
    }

    #[test]
    fn a_tenure_ends_for_every_worker_begun_before_and_none_after() {
        let shared = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let first = Tenure::begin(&shared);
        let also_first = first.clone();
        assert!(first.holds() && also_first.holds());
        Tenure::end_all(&shared);
        assert!(!first.holds() && !also_first.holds());
        let second = Tenure::begin(&shared);
        assert!(second.holds(), "a new claim's workers run");
        assert!(!first.holds(), "the old ones stay stopped");
    }
}
