//! Live mode: the rotor engine over real HTTP, as quinn keeps its async shell apart from its
//! protocol core. The engine (`rotor-engine`) decides; this crate waits, sends, and remembers,
//! through one client per proxy, with durable state in SQLite (one process) or PostgreSQL
//! (several workers). It depends on neither the simulator nor any fake: those are for tests.
//!
//! # Modules
//!
//! - [`config`] reads `live.toml` (its defaults in [`config::defaults`]); [`secrets`] resolves
//!   secrets and seals the store's; [`options`] are the run's flags.
//! - [`run`] is one worker's life: recovery, the claim loop, shutdown. `claims.rs` decides
//!   which sellers it serves (lane leases with fencing tokens). [`error`]: why a run stopped.
//! - [`driver`] is the adapter between the engine and the network, split by job (the call
//!   loop, lane ownership, lease books, event effects, the pool and records) with one written
//!   lock order: it waits as the engine says, makes each charge durable, sends through
//!   [`transport`], and records every event.
//! - [`workers`] are the demper, orders and catalog loops; [`kaspi`] is the API they call.
//! - [`store`] keeps durable state in SQLite or PostgreSQL; its errors are typed
//!   ([`store::StoreError`]: fenced, conflict, unavailable, corrupt).
//! - [`status`] and [`metrics`] serve `/health/proxies` and `/metrics`; [`provision`] buys
//!   from Proxy6; [`probe`] is `rotor probe`; [`clock`] and [`log`] read the wall clock.
//!
//! # Example
//!
//! Read a live configuration; its defaults are the seed plan's numbers and the real hosts.
//!
//! ```
//! use std::path::Path;
//!
//! let text = r#"
//! [[user]]
//! id = 1
//! merchant_uid = "30067228"
//! proxies = 100
//! token_env = "KASPI_TOKEN"
//! session_env = "KASPI_SESSION"
//! skus = "skus.csv"
//! "#;
//! let config = rotor_live::config::parse(text, Path::new("live.toml")).unwrap();
//! assert_eq!(config.kaspi.storefront, "https://kaspi.kz");
//! assert_eq!(config.split_for(100), rotor_engine::Split::new(70, 25, 5, 0));
//! ```

pub mod answer;
pub mod calibrate;
mod claims;
pub mod clock;
pub mod config;
pub mod ctl;
pub mod driver;
pub mod error;
pub mod export;
pub mod kaspi;
pub mod log;
pub mod metrics;
pub mod options;
pub mod probe;
pub mod provision;
mod reconcile;
pub mod run;
pub mod secrets;
pub mod status;
pub mod store;
pub mod transport;
pub mod webhook;
pub mod workers;

/// The subnet label of an egress address: its /24 (IPv4) or /64 (IPv6).
pub fn subnet_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}
