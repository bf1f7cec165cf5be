//! rotor-mock-kaspi: fakes of Kaspi and Proxy6 for testing live mode end to end, on loopback
//! only.
//!
//! [`KaspiMock`] (on its own small HTTP/1.1 server, `http`) answers the same paths, methods,
//! headers, status codes and JSON shapes as the real services (`shared/kaspi-api.md`): storefront offers, the merchant cabinet's offer list
//! and price update, and the Shop API's orders and entries. In front of every endpoint sit the
//! simulator's limit hypotheses (`rotor_kaspi_model::Limiter`, the same code, from the crate
//! both share) keyed on the
//! client IP from `X-Forwarded-For`, and faults a test can switch at runtime.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use rotor_mock_kaspi::{KaspiConfig, KaspiMock};
//!
//! let kaspi = KaspiMock::start(KaspiConfig::default()).await.unwrap();
//! assert!(kaspi.uri().starts_with("http://127.0.0.1:"));
//! assert_eq!(kaspi.products().len(), 50);
//! # }
//! ```
//!
//! # Modules
//!
//! - `kaspi`: the fake, its state (`state`), and one module per API surface (`storefront`,
//!   `cabinet`, `shop`).
//! - `proxy`: [`ForwardProxy`], loopback forward proxies with their own egress addresses and
//!   switchable [`ProxyMode`]s.
//! - `proxy6`: [`Proxy6Mock`], the Proxy6 API, selling proxies from a stock of running ones.

mod http;
mod kaspi;
mod proxy;
mod proxy6;

pub use kaspi::{
    CatalogFault, Faults, KaspiConfig, KaspiMock, Merchant, Offer, Order, OwnOffer, PriceUpdate, Seen,
    price_update_limit,
};
pub use proxy::{ForwardProxy, HeadHook, ProxyMode};
pub use proxy6::{Proxy6Config, Proxy6Mock};
/// How the fake's cabinet answers an expired session (`Faults::expired_sessions`).
pub use rotor_kaspi_model::ExpiredSession;
