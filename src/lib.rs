//! rotor's production side: live mode, which drives the same engine the simulator runs, over
//! real HTTP, through one client per proxy, with durable state in SQLite (one process) or
//! PostgreSQL (several workers). The `rotor` binary's commands live in `main.rs` and
//! `commands/`; this library is what they and the end-to-end tests call.
//!
//! Module map: [`live`] holds live mode; see its docs for the parts. [`load`] replays a
//! scenario through live mode over loopback sockets (`rotor load`).
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
//! let config = rotor::live::config::parse(text, Path::new("live.toml")).unwrap();
//! assert_eq!(config.kaspi.storefront, "https://kaspi.kz");
//! assert_eq!(config.split_for(100), rotor_engine::Split::new(70, 25, 5, 0));
//! ```

pub mod live;
pub mod load;
