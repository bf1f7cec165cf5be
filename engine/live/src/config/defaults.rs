//! Every default of `live.toml`, written once: the parser applies them, and the docs
//! (docs/live.md), `rotor mock`'s printed config and the load harness name them from here.

use std::net::SocketAddr;

use rotor_engine::Duration;

/// The public storefront.
pub const STOREFRONT: &str = "https://kaspi.kz";
/// The merchant cabinet.
pub const CABINET: &str = "https://mc.shop.kaspi.kz";
/// The Shop API.
pub const SHOP_API: &str = "https://kaspi.kz/shop/api/v2";
/// Almaty's city id, which the storefront prices by.
pub const CITY_ID: &str = "750000000";
/// The SQLite file, relative to the config.
pub const STORE_PATH: &str = "rotor-state.db";
/// The variable holding the store's encryption key.
pub const STORE_KEY_ENV: &str = "ROTOR_STORE_KEY";
/// The variable holding the Proxy6 API key.
pub const PROXY6_KEY_ENV: &str = "ROTOR_PROXY6_KEY";
/// The status endpoint.
pub const STATUS_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464));
/// Whole-request timeout.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// TCP connect timeout, through the proxy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a lane lease lasts unless renewed.
pub const LEASE_TTL: Duration = Duration::from_secs(60);
/// Sends reserved per durable write.
pub const RESERVE_BLOCK: u32 = 16;
/// Percentages of a user's proxies per module (demper, orders, catalog, reserve).
pub const SPLIT_PERCENT: [u32; 4] = [70, 25, 5, 0];
/// Pause between demper cycles.
pub const DEMPER_INTERVAL: Duration = Duration::from_mins(3);
/// Tenge under the lowest competitor.
pub const DEMPER_STEP: f64 = 1.0;
/// Concurrent SKUs per demper lane.
pub const DEMPER_CONCURRENCY: u32 = 4;
/// The largest price drop one pass may push without an operator's confirmation, in percent of
/// the current price.
pub const DEMPER_MAX_DROP_PERCENT: u32 = 30;
/// The window over which successive drops together may not exceed `max_drop_percent` unconfirmed.
pub const DEMPER_DROP_WINDOW: Duration = Duration::from_mins(24 * 60);
/// The largest share by which a catalogue answer may shrink against the stored one before it
/// is refused as untrustworthy, in percent.
pub const CATALOG_MAX_SHRINK_PERCENT: u32 = 20;
/// How often each seller's catalogue is synced from the cabinet.
pub const CATALOG_INTERVAL: Duration = Duration::from_mins(60);
/// Orders polling interval.
pub const ORDERS_INTERVAL: Duration = Duration::from_mins(10);
/// The orders window, and its longest: Kaspi refuses windows over 14 days.
pub const ORDERS_LOOKBACK: Duration = Duration::from_mins(14 * 24 * 60);
/// Open orders created before a poll's window followed by id per poll.
pub use rotor_engine::ORDERS_FOLLOW_PER_POLL;
/// Price updates per second per account.
pub const PRICE_UPDATES_PER_SECOND: f64 = 1.5;
/// How long an account's price updates pause after a 429.
pub const PRICE_UPDATE_COOLDOWN: Duration = Duration::from_mins(30);
/// Proxy6's API.
pub const PROXY6_API: &str = "https://px6.link/api";
/// Proxy6 proxy version: 4 (IPv4).
pub const PROXY6_VERSION: u8 = 4;
/// Proxy6 country.
pub const PROXY6_COUNTRY: &str = "kz";
/// Proxy6 rental period, days.
pub const PROXY6_PERIOD_DAYS: u32 = 30;
/// How often the provisioner checks the pool.
pub const PROXY6_CHECK_EVERY: Duration = Duration::from_mins(5);

/// `[store] decisions_retention`.
pub const DECISIONS_RETENTION: Duration = Duration::from_mins(30 * 24 * 60);
/// `[store] history_retention`.
pub const HISTORY_RETENTION: Duration = Duration::from_mins(90 * 24 * 60);
