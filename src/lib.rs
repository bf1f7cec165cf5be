//! The `rotor` package's library: the load harness, `rotor load`, which replays a scenario
//! through live mode ([`rotor_live`]) over loopback sockets, against the fake Kaspi
//! (`rotor-mock-kaspi`), and judges it with the simulator's own observer (`rotor-sim`). The
//! `rotor` binary's commands live in `main.rs` and `commands/`.
//!
//! Module map: [`load`] (see its docs for the parts).
//!
//! # Example
//!
//! A load run refuses a time scale it cannot keep, before it starts anything.
//!
//! ```
//! assert!(rotor::load::check_time_scale(20.0).is_ok());
//! assert!(rotor::load::check_time_scale(0.0).is_err());
//! ```

pub mod load;
