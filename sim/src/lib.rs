//! rotor-sim: the deterministic simulator.
mod kaspi;
pub mod observe;
pub mod output;
mod queue;
mod rng;
pub mod run;
pub mod scenario;
pub mod summary;
pub mod trace;
pub mod verdict;
mod world;
