//! Live mode: the engine over real HTTP.
//!
//! - [`config`] reads `live.toml`; [`secrets`] resolves secrets and seals the store's.
//! - [`run`] is one worker's life: recovery, the claim loop, shutdown. `claims.rs` decides
//!   which sellers it serves (lane leases with fencing tokens).
//! - [`driver`] is the adapter between the engine and the network: it waits as the engine
//!   says, makes each charge durable, sends through [`transport`], and records every event.
//! - [`workers`] are the demper, orders and catalog loops; [`kaspi`] is the API they call.
//! - [`store`] keeps durable state in SQLite or PostgreSQL.
//! - [`status`] and [`metrics`] serve `/health/proxies` and `/metrics`; [`provision`] buys
//!   from Proxy6; [`probe`] is `rotor probe`; [`clock`] and [`log`] read the wall clock.

mod claims;
pub mod clock;
pub mod config;
pub mod driver;
pub mod kaspi;
pub mod log;
pub mod metrics;
pub mod provision;
pub mod run;
pub mod secrets;
pub mod status;
pub mod store;
pub mod transport;
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
pub mod probe;
