//! rotor-kaspi-model: Kaspi's behaviour as rotor models it, with no clock and no I/O of its own.
//!
//! The simulator (`rotor-sim`) asks it on its virtual clock, and the fake Kaspi
//! (`rotor-mock-kaspi`, the HTTP shell around it) on a scaled real clock, so a hypothesis
//! answers the same request sequence the same way in both. It depends on neither.
//!
//! # Example
//!
//! ```
//! use rotor_kaspi_model::{Limiter, PenaltyStatus, Scope, key, seed_hypothesis};
//!
//! // The seed's hypothesis: 250 requests per 30 minutes per IP, then 429.
//! let mut limiter = Limiter::new(seed_hypothesis());
//! let ip = key(Scope::Ip, 0x0a00_0001, 1, 0);
//! for t in 0..250 {
//!     assert!(limiter.check(ip, t, "kz").is_ok());
//!     limiter.record(ip, t);
//! }
//! let (penalty, _) = limiter.check(ip, 250, "kz").unwrap_err();
//! assert_eq!(penalty.status, PenaltyStatus::TooManyRequests);
//! ```
//!
//! # Modules
//!
//! - `hypothesis`: what a limit counts ([`Scope`], [`Rule`]), what it answers past the limit
//!   ([`Penalty`]), and the named sets ([`preset`]): [`seed_hypothesis`],
//!   [`community_hypotheses`], [`measured_hypotheses`].
//! - `limiter`: one hypothesis at work, counters per key and bans ([`Limiter`], [`key`]).
//! - `instants`: the instants inside a trailing window, stored compactly ([`Instants`]).
//! - `latency`: response-time distributions ([`Latency`]) and their seeded draws ([`Sampler`]).
//! - `orders`: the order lifecycle's final statuses ([`ORDER_FINAL_STATUSES`]).
//! - `gate`: everything in front of the endpoints, in Kaspi's order: bans, blocked IPs,
//!   expired sessions, storms, server errors, then the limiters ([`Gate`]).
//! - [`mod@file`]: the `[[kaspi.limiter]]` table as scenario files and `rotor calibrate` write it
//!   ([`file::LimiterTable`]), and its one reading into a [`Hypothesis`].
//! - `cause`: why a request was refused ([`Cause`]), one name per cause for every world.
//! - `refusals`: answers outside the limits: a blocked IP's 405 ([`blocked_ip`]) and an
//!   expired cabinet session ([`ExpiredSession`]).

mod cause;
pub mod file;
mod gate;
mod hypothesis;
mod instants;
mod latency;
mod limiter;
mod orders;
mod refusals;

pub use cause::Cause;
pub use gate::{Answer, Arrival, FOREVER, Gate, Net, SERVER_ERROR_STATUS};
pub use hypothesis::{
    BANNED_IP_BODY, Hypothesis, Observed, PRESETS, Penalty, PenaltyBody, PenaltyStatus, Rule, Scope,
    community_hypotheses, measured_hypotheses, preset, seed_hypothesis,
};
pub use instants::{Instants, LONGEST_WINDOW_MS};
pub use latency::{Latency, Sampler};
pub use limiter::{Limiter, Limits, Refused, key};
pub use orders::{ORDER_FINAL_STATUSES, order_is_open};
pub use refusals::{
    BLOCKED_IP_CAUSE, BLOCKED_IP_STATUS, EXPIRED_SESSION_CAUSE, ExpiredSession, LOGIN_LOCATION, blocked_ip,
};
