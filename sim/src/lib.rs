//! rotor-sim: a deterministic discrete-event simulator for rotor.
//!
//! It replays a scenario (users, SKUs, workloads, limit hypotheses, faults) on a virtual
//! millisecond clock, driving `rotor-engine` itself, the same code live mode runs. It contains
//! no second copy of any rotation, rest, dead or backoff rule: it plays the world around the
//! engine (workloads, Kaspi, proxies, the provider) and measures the safety rules from what it
//! observes.
//!
//! # Example
//!
//! ```
//! use rotor_sim::run::{run, RunOptions};
//! use rotor_sim::scenario::Scenario;
//! use rotor_sim::verdict::{all_pass, verdicts};
//!
//! let text = "seed = 1\nduration = \"30m\"\n[users]\ncount = 2\nskus = 100\n";
//! let scenario = Scenario::parse("tiny", "tiny.toml", text).unwrap();
//! let report = run(&scenario, RunOptions::default()).unwrap();
//! assert!(report.summary.accounting.balanced());
//! assert!(all_pass(&verdicts(&scenario, &report.summary)));
//! ```
//!
//! # Modules
//!
//! - [`scenario`]: scenario files, their defaults and located errors.
//! - [`run`]: the event loop (pop, dispatch, check the step bound); its parts are the state,
//!   the world (sellers, pool, faults), the workloads (cycles) and one request's lifecycle.
//! - [`kaspi`]: Kaspi as the simulator asks it: `rotor-kaspi-model`'s limiters and latency
//!   (shared with `rotor-mock-kaspi`), plus storms and subnet bans.
//! - `world`: proxies with their egress and faults, and the provider.
//! - [`observe`], [`events`]: the checker (`rotor-check`, re-exported), which the request path
//!   feeds with `Observation`s; [`summary`], [`verdict`]: its figures and verdicts for a
//!   scenario's run (the scenario states what the checker judges by).
//! - [`output`], [`trace`]: what a run writes; [`report`]: its charts, HTML and Markdown.
//! - [`claims`]: the seed plan's numeric claims against the simulator.
//! - [`sweep`]: a scenario over a grid, in parallel, and the frontier; [`plan`]: one seller's
//!   pool three ways (the seed's arithmetic, steady state, simulation), and `plan::robust`:
//!   the cheapest pool safe under every limit hypothesis at once.
//! - [`suite`]: scenario files as a test suite over seeds (`rotor test`), with JUnit;
//!   [`shrink`]: a failed scenario made small; [`diff`]: two runs' figures compared.
//! - `queue`, `rng`: the `(time, seq)` event heap and the per-owner seeded streams.

pub mod claims;
pub mod diff;
pub mod output;
pub mod plan;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod suite;
pub mod summary;
pub mod sweep;
pub mod trace;
pub mod verdict;

/// The checker's books and event names (`rotor-check`), as the simulator feeds them.
pub use rotor_check::{events, observe};

pub mod kaspi;
mod queue;
pub mod rng;
mod world;
