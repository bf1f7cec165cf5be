//! Deliberate rule breaks, to prove that a checker can fail: each [`Mutant`] makes the engine
//! break one safety rule in one small way. Only builds with the `mutants` feature have it (the
//! simulator's tests turn it on as a dev-dependency); a release build cannot reach it.

/// One rule to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutant {
    /// Rule 1: every lease carries one send over its budget.
    OverBudget,
    /// Rule 2: every rest ends 1 ms early.
    ShortRest,
    /// Rule 5: a proxy that dies while it carries its lane's lease stays current.
    ReuseDead,
    /// Rule 4: the orders lane sends through the same user's demper proxies.
    LendProxy,
    /// Rule 6: the thousandth request is parked on a lane that never completes anything.
    DropRequest,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 5] =
        [Mutant::OverBudget, Mutant::ShortRest, Mutant::ReuseDead, Mutant::LendProxy, Mutant::DropRequest];
}

/// What the `OverBudget` mutant makes of a send's result: the send that spent the lease lets one
/// more follow.
pub(crate) fn over_budget(
    on: bool,
    policy: crate::config::Policy,
    after: crate::policy::AfterSend,
    charged: u32,
) -> crate::policy::AfterSend {
    match policy {
        crate::config::Policy::Rest(r)
            if on && after == crate::policy::AfterSend::LeaseSpent && charged == r.budget.get() =>
        {
            crate::policy::AfterSend::Continue
        }
        _ => after,
    }
}
