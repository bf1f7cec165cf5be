//! The rest policy: a lease carries at most `budget` sends, charged as they are sent, so requests
//! in flight can never push a proxy past its budget. The rest itself is timed from the lease's
//! last completion (see `Policy::ready_after_lease`).

use super::AfterSend;
use crate::config::RestPolicy;

/// The state after the lease's `charged`-th send.
pub(crate) fn after_send(p: &RestPolicy, charged: u32) -> AfterSend {
    if charged >= p.budget.get() { AfterSend::LeaseSpent } else { AfterSend::Continue }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_249th_send_spends_the_lease() {
        let p = RestPolicy::default();
        assert_eq!(after_send(&p, 1), AfterSend::Continue);
        assert_eq!(after_send(&p, 248), AfterSend::Continue);
        assert_eq!(after_send(&p, 249), AfterSend::LeaseSpent);
    }
}
