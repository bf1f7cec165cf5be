//! Live mode: the engine over real HTTP.
//!
//! - [`config`] reads `live.toml`.
//! - [`secrets`] holds secret sources and the store's encryption.
//! - [`store`] keeps durable state in SQLite.

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
