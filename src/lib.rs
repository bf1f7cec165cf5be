//! rotor's production side: live mode, which drives the same engine the simulator runs over real
//! HTTP, through per-proxy clients, with durable state. The `rotor` binary's commands live in
//! `main.rs` and `commands/`; this library is what they (and the end-to-end tests) call.

pub mod live;
