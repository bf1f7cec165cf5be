//! rotor-engine: the sans-IO core that decides which proxy carries each request to Kaspi, and
//! when a request must wait.
//!
//! It does no I/O, reads no clock, has no async and spawns nothing. Every call that depends on
//! time takes `now` ([`Instant`], milliseconds on the caller's clock), and all randomness comes
//! from a seeded `ChaCha8` stream per lane. The simulator (`rotor-sim`) and live mode drive this
//! same code.
//!
//! # Example
//!
//! ```
//! use rotor_engine::{
//!     Completion, Decision, Endpoint, Engine, EngineConfig, Instant, Module, Outcome, ProxySpec,
//!     RequestSpec, Split, UserId,
//! };
//!
//! let mut engine = Engine::new(EngineConfig::default()).unwrap();
//! for i in 0..100u8 {
//!     engine.add_proxy(ProxySpec {
//!         host: format!("10.0.0.{i}"),
//!         port: 8080,
//!         credentials: None,
//!         egress_ip: format!("203.0.113.{i}").parse().unwrap(),
//!         subnet: "203.0.113.0/24".into(),
//!     })
//!     .unwrap();
//! }
//! let user = UserId(1);
//! engine.allocate(user, 100, Split::default()).unwrap();
//!
//! let now = Instant::from_millis(0);
//! let req = RequestSpec::new(user, Module::Demper, Endpoint::StorefrontOffers);
//! let Decision::Send(ticket) = engine.acquire(&req, now) else { panic!("a fresh lane sends") };
//! // ... send through engine.proxy(ticket.proxy()) ...
//! assert_eq!(engine.complete(ticket, Outcome::Ok, now), Completion::Done);
//! while let Some(event) = engine.poll_event() {
//!     println!("{event:?}");
//! }
//! ```
//!
//! # Modules
//!
//! - [`engine`](Engine): the call protocol (`acquire` / `complete` / `poll_event` /
//!   `next_wakeup`); its `pool` part adds, allocates, deallocates, replaces and revives proxies
//!   (each change of a lane's proxies is an [`Event::LaneMembers`]), and its `requests` part is
//!   one request's path: the gate, the pick and its charge, the completion.
//! - `lane`: one (user, module) lane and its rotation order.
//! - `pool`: every proxy's record and the free set.
//! - `policy`: the lease policies, `rest` (249 then 40 minutes) and `window` (exact sliding window).
//! - `health`: the dead rule. `backoff`: retry delays. `circuit`: the lane circuit breaker.
//!   `slowdown`: the lane rate cut after a 429. `throttle`: per-account throttles and cooldowns.
//! - [`config`], [`decision`], [`event`], [`outcome`], [`error`]: the values that cross the API.
//! - [`time`], [`ids`], [`proxy`], [`secret`], [`split`], [`seed`]: the vocabulary.

pub mod answers;
mod backoff;
mod circuit;
pub mod config;
pub mod decision;
mod engine;
pub mod error;
pub mod event;
mod health;
pub mod ids;
mod lane;
#[cfg(feature = "mutants")]
pub mod mutant;
pub mod outcome;
mod policy;
mod pool;
pub mod proxy;
pub mod secret;
pub mod seed;
mod slowdown;
pub mod split;
mod throttle;
pub mod time;

pub use answers::{AnswerError, AnswerRule, AnswerTable, Body, Meaning, RawAnswerRule, Reply, StatusMatch};
pub use config::{
    AccountThrottle, Backoff, BorrowRule, Circuit, ConfigError, DeadRule, EngineConfig,
    ORDERS_FOLLOW_PER_POLL, Policy, RatePolicy, RestPolicy, Slowdown, WindowPolicy,
};
pub use decision::{Completion, Decision, FailReason, RequestSpec, Ticket, WaitReason};
pub use engine::{Allocation, Engine, LaneView, ProxyView, Restored, Revoked};
pub use error::{AllocError, PoolError, ReviveError, Shortage};
pub use event::Event;
pub use ids::{Endpoint, Host, LaneKey, Module, ProxyId, UnknownName, UserId};
#[cfg(feature = "mutants")]
pub use mutant::Mutant;
pub use outcome::{LimitScope, Outcome, OutcomeKind, ProxyFailure};
pub use pool::ProxyState;
pub use proxy::{Credentials, ProxySpec};
pub use secret::Secret;
pub use seed::{mix_seed, spread_slot};
pub use split::Split;
pub use time::{Duration, Instant};
