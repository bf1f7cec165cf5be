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
    /// Rule 1: the per-IP rate kept beside the rest or window policy is not applied.
    IgnoreIpRate,
}

impl Mutant {
    /// Every mutant.
    pub const ALL: [Mutant; 6] = [
        Mutant::OverBudget,
        Mutant::ShortRest,
        Mutant::ReuseDead,
        Mutant::LendProxy,
        Mutant::DropRequest,
        Mutant::IgnoreIpRate,
    ];
}

/// The mutant an engine carries, if any, with its request count.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Armed(Option<(Mutant, u64)>);

impl Armed {
    pub(crate) fn new(m: Mutant) -> Self {
        Armed(Some((m, 0)))
    }

    /// Whether the engine breaks `m`'s rule.
    pub(crate) fn is(self, m: Mutant) -> bool {
        self.0.is_some_and(|(x, _)| x == m)
    }

    /// `LendProxy`: whether `module`'s requests go through demper's proxies.
    pub(crate) fn lends(self, module: crate::ids::Module) -> bool {
        module == crate::ids::Module::Orders && self.is(Mutant::LendProxy)
    }

    /// `DropRequest`: the thousandth request is parked where nothing will wake it.
    pub(crate) fn drop_request(&mut self) -> Option<crate::decision::Decision> {
        let Some((Mutant::DropRequest, n)) = &mut self.0 else { return None };
        *n += 1;
        (*n == 1_000).then(|| crate::decision::Decision::Park {
            lane: crate::ids::LaneKey::new(crate::ids::UserId(u32::MAX), crate::ids::Module::Reserve),
            reason: crate::decision::WaitReason::ProxiesDraining,
        })
    }
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
