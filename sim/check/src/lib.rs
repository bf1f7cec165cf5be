//! rotor-check: the independent checker. It judges a run from what a world saw, and from nothing
//! else: the simulator and the load harness (`rotor load`) both hand it [`Observation`]s, so a
//! run is measured by one definition wherever it happened. It never sees the engine's own
//! figures (docs/decisions/independent-checker.md) nor a scenario: the scenario builds its
//! [`SafetyRules`], [`summary::RunInfo`] and [`verdict::Checks`].
//!
//! # Modules
//!
//! - [`observe`]: [`Observation`], the one input, and the [`Observer`]'s private books: the
//!   safety invariants, the counters, the per-minute timeline, each proxy's record.
//! - [`summary`]: a run's figures and records ([`summary::RunReport`]), drawn from the books,
//!   beside the world's [`pool`] figures; [`units`]: figures in words.
//! - [`verdict`]: each check's stable id, figure, requirement and pass.
//! - The vocabulary of checks a scenario can state: [`expect`] (`[expect]` metrics and
//!   `[expect.events]` lines), [`threshold`] (`"<= 3m"`), [`fault`] (fault names) and
//!   [`events`] (every event name `[expect.events]` may require); [`names`]: an unknown name
//!   answered with the closest valid ones.
//!
//! # Example
//!
//! ```
//! use rotor_check::observe::{LeaseRule, Observation, Observer, SafetyRules};
//! use rotor_engine::{Endpoint, Event, LaneKey, Module, ProxyId, UserId};
//!
//! let rules = SafetyRules {
//!     lease: LeaseRule::Rest { budget: 2, rest_ms: 1_000 },
//!     counted: [true; Endpoint::ALL.len()],
//!     limits: Vec::new(),
//!     borrow: Vec::new(),
//!     ip_window_ms: 60_000,
//!     ip_ceiling: None,
//!     ip_rate: None,
//! };
//! let mut obs = Observer::new(rules, None);
//! let lane = LaneKey { user: UserId(1), module: Module::Demper };
//! let p = ProxyId(0);
//! obs.observe(0, Observation::ProxyJoined { proxy: p, ip: [10, 0, 0, 1].into() });
//! obs.observe(0, Observation::Engine(&Event::LaneMembers { lane, joined: vec![p], left: vec![] }));
//! for t in 0..3 {
//!     let sent = Observation::Sent { proxy: p, origin: lane, serving: lane, endpoint: Endpoint::StorefrontOffers };
//!     obs.observe(t, sent);
//!     obs.observe(t, Observation::Completed { proxy: p, endpoint: Endpoint::StorefrontOffers });
//! }
//! // Three sends with no rest between them: a lease of 3 against a budget of 2.
//! assert_eq!(obs.safety_figures().largest_lease, 3);
//! ```

pub mod events;
pub mod expect;
pub mod fault;
pub mod names;
pub mod observe;
pub mod pool;
pub mod summary;
pub mod threshold;
pub mod units;
pub mod verdict;

pub use observe::{Failure, Observation, Observer, SafetyRules};
