//! `live.toml`: what live mode connects to, which proxies and sellers it serves, and every
//! engine number. Errors name the file, line, key and valid choices.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use rotor_engine::{AnswerTable, Duration, EngineConfig, Module, Split, UserId};

use super::secrets::SecretSource;
pub use sections::{load, parse};

pub mod defaults;
mod raw;
mod sections;

/// A configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {message}")]
pub struct ConfigError {
    /// `file:line` or `file`.
    pub place: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

/// Where the real services live; the defaults are the production hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KaspiUrls {
    /// The public storefront (`/yml/offer-view/offers/{id}`).
    pub storefront: String,
    /// The merchant cabinet (`/bff/offer-view/list`, `/pricefeed/upload/merchant/process`).
    pub cabinet: String,
    /// The Shop API base, ending in `/v2`.
    pub shop_api: String,
    /// The city whose offers and prices are read and set.
    pub city_id: String,
}

/// One proxy of the pool, as configured.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// `http://host:port`.
    pub url: String,
    /// Host part of `url`.
    pub host: String,
    /// Port part of `url`.
    pub port: u16,
    /// Proxy login, if any.
    pub user: Option<String>,
    /// Where its password comes from.
    pub password: Option<SecretSource>,
    /// The address Kaspi sees.
    pub egress_ip: IpAddr,
}

/// One seller served.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// Its id in the engine and the store.
    pub id: UserId,
    /// The merchant uid (`merchantUid`, `m=`); also our own id among competitor offers.
    pub merchant_uid: String,
    /// Proxies it is allocated when it subscribes.
    pub proxies: u32,
    /// The Shop API token.
    pub token: SecretSource,
    /// The cabinet `mc-session` cookie.
    pub session: SecretSource,
    /// SKUs, floors and ceilings (CSV: `sku,product_id,floor,ceiling[,model]`).
    pub skus: PathBuf,
    /// Merchants whose offers the demper ignores, besides our own.
    pub excluded_merchants: Vec<String>,
    /// When its subscription ends (epoch ms); its proxies are freed then.
    pub subscribed_until_ms: Option<u64>,
}

/// Proxy6 provisioning.
#[derive(Debug, Clone)]
pub struct Proxy6Settings {
    /// API base, without the key: `https://px6.link/api`.
    pub api: String,
    /// The API key.
    pub key: SecretSource,
    /// 4 (IPv4), 3 (IPv4 shared) or 6 (IPv6).
    pub version: u8,
    /// ISO-3166 alpha-2, lower case.
    pub country: String,
    /// Days each purchase runs.
    pub period_days: u32,
    /// Buy when fewer proxies than this are free; 0 turns buying off.
    pub min_pool: u32,
    /// How often the pool level is checked.
    pub check_every: Duration,
    /// A bought proxy that expires sooner than this is renewed (`prolong`) for `period_days`.
    /// Defaults to 3 days; shorter than the period.
    pub prolong_before: Duration,
    /// A bought proxy missing from Proxy6's list is *suspect*; it is taken as gone only when a
    /// list at least this much later lacks it too, and a purchase whose answer was lost is taken
    /// as never made only after this long. Defaults to 5 minutes; 1 s to 1 day.
    pub gone_after: Duration,
    /// Spending caps, in the account's currency: no purchase or renewal starts that would take
    /// the last 24 hours' (or 30 days') spend above them. Default 20 and 200.
    pub max_spend_per_day: f64,
    /// See `max_spend_per_day`.
    pub max_spend_per_month: f64,
    /// Per API call. Defaults to 30 s.
    pub timeout: Duration,
}

/// Everything live mode needs.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// Where state lives: an SQLite path (relative to the config, created on first run),
    /// `sqlite://path`, or `postgres://user@host:port/db` for several workers. Defaults to
    /// `rotor-state.db`.
    pub store_url: String,
    /// Where the PostgreSQL password comes from (`[store] password_file` / `password_env`); a
    /// password inside `store_url` is refused at load.
    pub store_password: Option<SecretSource>,
    /// How long price decisions are kept as history; older ones are pruned hourly (each SKU's
    /// current price is kept apart). Defaults to 30 days.
    pub decisions_retention: Duration,
    /// How long the rest of the history is kept (finished leases, the journal, operator
    /// commands, settled Proxy6 orders, delivered order events and final orders); pruned
    /// hourly in batches. Defaults to 90 days; at least 31.
    pub history_retention: Duration,
    /// This worker's name in lane leases. Defaults to the host name and process id.
    pub worker_id: Option<String>,
    /// How long a lane lease lasts unless renewed; a dead worker's lanes move after it.
    /// Defaults to 60 s.
    pub lease_ttl: Duration,
    /// The version of this config's proxy list (`[workers] config_version`, default 0): raised
    /// with each edit of the `[[proxy]]` entries when several workers share a store, so that a
    /// worker still holding an older file never retires what a newer one added (it is refused
    /// instead). See docs/deploy.md.
    pub config_version: u64,
    /// Where the store's encryption key comes from (32 bytes, hex or base64). Defaults to
    /// `$ROTOR_STORE_KEY`.
    pub store_key: SecretSource,
    /// The status endpoint's address. Defaults to 127.0.0.1:9464.
    pub status_listen: SocketAddr,
    /// `/health` calls a worker loop stalled when it finished no cycle for this many of its
    /// intervals plus the longest rest. Defaults to 3.
    pub stall_intervals: u32,
    /// The Kaspi hosts. Defaults to the real ones.
    pub kaspi: KaspiUrls,
    /// Whole-request timeout. Defaults to 20 s.
    pub timeout: Duration,
    /// TCP connect timeout (through the proxy). Defaults to 5 s.
    pub connect_timeout: Duration,
    /// The engine's configuration. Defaults to the seed plan's numbers, a 1.5/s price-update
    /// throttle per account and no pool-low threshold.
    pub engine: EngineConfig,
    /// What Kaspi's answers mean: the `[[answers]]` rows, then the defaults
    /// (`rotor_engine::answers`).
    pub answers: AnswerTable,
    /// Sends reserved per durable write: a restart treats a reserved block as spent. Defaults
    /// to 16.
    pub reserve_block: u32,
    /// Percentages of a user's proxies per module. Defaults to 70/25/5/0.
    pub split_percent: [u32; 4],
    /// Pause between demper cycles. Defaults to 3 minutes.
    pub demper_interval: Duration,
    /// Tenge under the lowest competitor. Defaults to 1.
    pub demper_step: f64,
    /// Concurrent SKUs per demper lane. Defaults to 4.
    pub demper_concurrency: u32,
    /// Each SKU's check at its slot in the interval, passes one interval apart (see
    /// `workers::demper::Demper::spread`). Defaults to true.
    pub demper_spread: bool,
    /// A drop of more than this percent of the current price in one pass waits for `rotor ctl
    /// confirm` (100: never). Defaults to 30.
    pub demper_max_drop_percent: u32,
    /// Successive drops within this window together may not go more than
    /// `demper_max_drop_percent` below the highest price known in it unconfirmed. Defaults to 24 h.
    pub demper_drop_window: Duration,
    /// Orders polling interval. Defaults to 10 minutes.
    pub orders_interval: Duration,
    /// The orders window (at most 14 days). Defaults to 14 days.
    pub orders_lookback: Duration,
    /// Orders created this recently are looked at again each poll, for a change of state or
    /// status. Defaults to 3 days (at most the lookback).
    pub orders_recheck: Duration,
    /// Open orders created before a poll's window looked at one by one (`GET /v2/orders/{id}`)
    /// per poll, least recently looked at first, until each is final. Defaults to 20; 0 stops
    /// following them.
    pub orders_follow_per_poll: u32,
    /// Where each order event is posted, if anywhere.
    pub orders_webhook: Option<Webhook>,
    /// Catalog sync interval; `None` ("0s" in the file): only at start, when the store holds no
    /// catalogue of the seller, and with `--sync-catalog`. Defaults to 1 hour.
    pub catalog_interval: Option<Duration>,
    /// A catalogue answer with fewer offers than the stored one by more than this percent is
    /// refused. Defaults to 20.
    pub catalog_max_shrink_percent: u32,
    /// Proxy6, if provisioning is on. Defaults to `None`.
    pub proxy6: Option<Proxy6Settings>,
    /// The pool. Defaults to empty.
    pub proxies: Vec<ProxyConfig>,
    /// The sellers. Defaults to none.
    pub users: Vec<UserConfig>,
    /// The directory relative paths are resolved against: the config file's.
    pub base_dir: PathBuf,
}

impl LiveConfig {
    /// A user's split of `count` proxies by the configured percentages, by largest remainder:
    /// each module gets its whole share, and the proxies left go to the largest fractions. A
    /// module with a share still gets one proxy when the pool is too small for its percentage.
    pub fn split_for(&self, count: u32) -> Split {
        split_of(self.split_percent, count)
    }
}

/// The split of `count` proxies by `percent` (demper, orders, catalog, reserve): see
/// [`LiveConfig::split_for`].
pub fn split_of(percent: [u32; 4], count: u32) -> Split {
    let exact = percent.map(|p| u64::from(count) * u64::from(p));
    let mut got = exact.map(|e| (e / 100) as u32);
    let mut order: Vec<usize> = (0..4).filter(|&i| exact[i] % 100 > 0).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(exact[i] % 100));
    let mut left = count - got.iter().sum::<u32>();
    for i in order {
        if left == 0 {
            break;
        }
        got[i] += 1;
        left -= 1;
    }
    // A module with a share but no proxy could never send; it takes one from the largest.
    for i in 0..4 {
        if percent[i] > 0 && got[i] == 0 {
            let (largest, &n) =
                got.iter().enumerate().max_by_key(|&(j, &n)| (n, std::cmp::Reverse(j))).unwrap_or((0, &0));
            if n > 1 {
                got[largest] -= 1;
                got[i] = 1;
            }
        }
    }
    Split::new(got[0], got[1], got[2], got[3])
}

/// The fewest proxies with which `percent` gives every working module it enables (demper,
/// orders, catalog) a proxy of its own; `None` when it never does within 1000.
pub fn fewest_proxies(percent: [u32; 4]) -> Option<u32> {
    (1..=1000).find(|&n| {
        let split = split_of(percent, n);
        [Module::Demper, Module::Orders, Module::Catalog]
            .into_iter()
            .all(|m| percent[m.index()] == 0 || split.get(m) > 0)
    })
}

/// The webhook that order events are posted to, one at a time, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>`, if given.
    pub token: Option<SecretSource>,
    /// Per attempt. Defaults to 10 s.
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::path::Path;

    use rotor_engine::{Policy, RestPolicy};

    use super::*;

    fn cfg(extra: &str) -> Result<LiveConfig, ConfigError> {
        parse(
            &format!(
                "[[user]]\nid = 1\nmerchant_uid = \"1\"\nproxies = 100\ntoken_env = \"T\"\nsession_env = \"S\"\nskus = \"s.csv\"\n{extra}"
            ),
            Path::new("live.toml"),
        )
    }

    #[test]
    fn defaults_are_the_seed_plan_and_the_real_hosts() {
        let c = cfg("").unwrap();
        assert_eq!(c.split_for(100), Split::new(70, 25, 5, 0));
        assert_eq!(c.kaspi.storefront, "https://kaspi.kz");
        assert_eq!(c.kaspi.cabinet, "https://mc.shop.kaspi.kz");
        assert_eq!(c.kaspi.shop_api, "https://kaspi.kz/shop/api/v2");
        assert_eq!(c.status_listen.to_string(), "127.0.0.1:9464");
        assert_eq!(c.engine.policy, Policy::Rest(RestPolicy::default()));
        assert_eq!(c.orders_interval, Duration::from_mins(10));
        assert_eq!(c.store_key, SecretSource::Env("ROTOR_STORE_KEY".into()));
        assert_eq!(c.decisions_retention, Duration::from_mins(30 * 24 * 60));
        assert!(c.demper_spread);
        assert_eq!(c.demper_max_drop_percent, 30);
        assert_eq!(c.stall_intervals, 3);
        assert_eq!(c.orders_recheck, Duration::from_mins(3 * 24 * 60));
        assert_eq!(c.orders_webhook, None);
        assert_eq!(c.catalog_interval, Some(Duration::from_mins(60)));
        assert_eq!(cfg("[catalog]\ninterval = \"0s\"\n").unwrap().catalog_interval, None);
        let c =
            cfg("[orders]\nwebhook = \"http://127.0.0.1:9/hook\"\nwebhook_token_env = \"HOOK\"\n").unwrap();
        let hook = c.orders_webhook.unwrap();
        assert_eq!(
            (hook.url.as_str(), hook.token, hook.timeout),
            ("http://127.0.0.1:9/hook", Some(SecretSource::Env("HOOK".into())), Duration::from_secs(10))
        );
        let e = cfg("[orders]\nwebhook = \"ftp://x\"\n").unwrap_err();
        assert!(e.message.contains("valid: an http:// or https:// URL"), "{e}");
        let e = cfg("[orders]\nrecheck = \"20d\"\n").unwrap_err();
        assert!(e.message.contains("at most the lookback"), "{e}");
        assert!(cfg("[status]\nstall_intervals = 0\n").is_err());
        assert_eq!(cfg("[demper]\nmax_drop_percent = 100\n").unwrap().demper_max_drop_percent, 100);
        let e = cfg("[demper]\nmax_drop_percent = 0\n").unwrap_err();
        assert!(e.message.contains("valid: 1 to 100"), "{e}");
        let c = cfg("[store]\ndecisions_retention = \"7d\"\n").unwrap();
        assert_eq!(c.decisions_retention, Duration::from_mins(7 * 24 * 60));
        let e = cfg("[store]\ndecisions_retention = \"10m\"\n").unwrap_err();
        assert!(e.message.contains("at least 1h"), "{e}");
        assert_eq!(c.history_retention, Duration::from_mins(90 * 24 * 60));
        let c = cfg("[store]\nhistory_retention = \"400d\"\n").unwrap();
        assert_eq!(c.history_retention, Duration::from_mins(400 * 24 * 60));
        let e = cfg("[store]\nhistory_retention = \"30d\"\n").unwrap_err();
        assert!(e.message.contains("[store] history_retention") && e.message.contains("at least 31d"), "{e}");
    }

    #[test]
    fn the_rate_policy_and_a_rate_kept_besides_a_lease() {
        let c = cfg("[engine]\npolicy = \"rate\"\nrate_per_s = 8.0\nburst = 2\n").unwrap();
        let Policy::Rate(r) = c.engine.policy else { panic!("{:?}", c.engine.policy) };
        assert_eq!((r.interval, r.burst.get()), (Duration::from_millis(125), 2));
        assert_eq!(c.engine.ip_rate, None);
        let c = cfg("[engine]\nrate_per_s = 10.0\n").unwrap();
        assert_eq!(c.engine.policy, Policy::Rest(RestPolicy::default()));
        assert_eq!(c.engine.ip_rate.map(|r| r.interval), Some(Duration::from_millis(100)));
        let e = cfg("[engine]\nburst = 2\n").unwrap_err();
        assert!(e.message.contains("burst needs rate_per_s"), "{e}");
        let e = cfg("[engine]\npolicy = \"rate\"\nrate_per_s = 0.0\n").unwrap_err();
        assert!(e.message.contains("valid: 0.001 to 1000"), "{e}");
    }

    #[test]
    fn ip_endpoints_name_what_the_per_ip_policy_counts() {
        assert_eq!(cfg("").unwrap().engine.ip_endpoints, [true; 5], "every endpoint by default");
        let c = cfg("[engine]\nip_endpoints = [\"offers\"]\n").unwrap();
        assert_eq!(c.engine.ip_endpoints, [true, false, false, false, false]);
        let e = cfg("[engine]\nip_endpoints = [\"offer\"]\n").unwrap_err();
        assert!(e.message.contains("price_update"), "{e}");
        let e = cfg("[engine]\nip_endpoints = []\n").unwrap_err();
        assert!(e.message.contains("at least one endpoint"), "{e}");
    }

    #[test]
    fn answer_rows_go_in_front_of_the_defaults_and_bad_ones_are_named() {
        let c = cfg("[[answers]]\nendpoint = \"offers\"\nstatus = 403\nanswer = \"ip_rest\"\n").unwrap();
        let reply = rotor_engine::Reply { status: 403, body: rotor_engine::Body::Json, retry_after: None };
        let offers = rotor_engine::Endpoint::StorefrontOffers;
        assert_eq!(c.answers.classify(offers, &reply), rotor_engine::Outcome::Forbidden { pause: None });
        assert_eq!(cfg("").unwrap().answers, AnswerTable::kaspi());
        let e = cfg("[[answers]]\nstatus = 403\nanswer = \"ban\"\n").unwrap_err();
        assert!(e.message.contains("[[answers]] #1") && e.message.contains("ip_pause"), "{e}");
        assert_eq!(e.place, "live.toml:8");
        let e = cfg("[[answers]]\nstatus = \"4x\"\nanswer = \"ok\"\n").unwrap_err();
        assert!(e.message.contains("\"4xx\""), "{e}");
    }

    #[test]
    fn small_pools_split_by_largest_remainder() {
        let c = cfg("[split]\ndemper = 40\norders = 30\ncatalog = 30\n").unwrap();
        assert_eq!(c.split_for(3), Split::new(1, 1, 1, 0));
        assert_eq!(c.split_for(10), Split::new(4, 3, 3, 0));
        let c = cfg("").unwrap();
        assert_eq!(c.split_for(3), Split::new(1, 1, 1, 0), "catalog's 5% still gets a proxy");
        assert_eq!(c.split_for(10), Split::new(6, 3, 1, 0));
        assert_eq!(c.split_for(2), Split::new(1, 1, 0, 0), "too few for every module");
    }

    #[test]
    fn a_seller_with_too_few_proxies_for_its_modules_is_refused_with_the_minimum() {
        let user = |n: u32, split: &str| {
            parse(
                &format!(
                    "{split}[[user]]\nid = 7\nmerchant_uid = \"1\"\nproxies = {n}\ntoken_env = \"T\"\nsession_env = \"S\"\nskus = \"s.csv\"\n"
                ),
                Path::new("live.toml"),
            )
        };
        assert_eq!(fewest_proxies(defaults::SPLIT_PERCENT), Some(3));
        for n in [1, 2] {
            let e = user(n, "").unwrap_err();
            assert!(
                e.message.contains(&format!("[[user]] id = 7: proxies = {n} is too few"))
                    && e.message.contains("valid: 3 or more"),
                "{}",
                e.message
            );
        }
        assert!(user(3, "").is_ok());
        // A split without orders needs two: a demper and a catalogue proxy.
        let no_orders = "[split]\ndemper = 90\norders = 0\ncatalog = 10\n";
        assert!(user(1, no_orders).unwrap_err().message.contains("valid: 2 or more"));
        assert!(user(2, no_orders).is_ok());
        // The demper prices from the catalogue: a split that gives the catalogue nothing is refused.
        let e = user(3, "[split]\ndemper = 100\norders = 0\ncatalog = 0\n").unwrap_err();
        assert!(e.message.contains("[split] catalog = 0 with demper = 100"), "{}", e.message);
        assert!(user(1, "[split]\ndemper = 0\norders = 100\ncatalog = 0\n").is_ok(), "orders alone");
    }

    #[test]
    fn errors_name_the_line_and_the_valid_choices() {
        let e = cfg("[engine]\npolicy = \"gcra\"\n").unwrap_err();
        assert_eq!(e.place, "live.toml:9");
        assert!(e.message.contains("rest") && e.message.contains("window"), "{}", e.message);
        let e = cfg("[engine]\nrest = \"forty\"\n").unwrap_err();
        assert!(e.message.contains("invalid duration"), "{}", e.message);
        let e = cfg("[split]\ndemper = 70\norders = 20\ncatalog = 5\n").unwrap_err();
        assert!(e.message.contains("add up to 100"), "{}", e.message);
        let e = cfg("[orders]\nlookback = \"15d\"\n").unwrap_err();
        assert!(e.message.contains("at most 14d"), "{}", e.message);
        let e = cfg(
            "[[proxy]]\nurl = \"http://10.0.0.1:80\"\n[[proxy]]\nurl = \"http://proxy.example:81\"\negress_ip = \"10.0.0.1\"\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("http://10.0.0.1:80") && e.message.contains("http://proxy.example:81"),
            "{}",
            e.message
        );
        assert!(e.message.contains("egress IP 10.0.0.1"), "{}", e.message);
        assert_eq!(e.place, "live.toml:10", "{e:?}");
        let e = cfg("[[proxy]]\nurl = \"socks5://h:1\"\n").unwrap_err();
        assert!(e.message.contains("valid: http://host:port"), "{}", e.message);
        let e = cfg("[[proxy]]\nurl = \"http://name.example:80\"\n").unwrap_err();
        assert!(e.message.contains("egress_ip"), "{}", e.message);
        let e = cfg("[[proxy]]\nurl = \"http://1.2.3.4:80\"\nuser = \"u\"\n").unwrap_err();
        assert!(e.message.contains("password_env"), "{}", e.message);
        // A password in the URL is refused and never echoed back.
        for url in ["http://u:hunter2@1.2.3.4:80", "http://u:hunter2@1.2.3.4:80/"] {
            let e = cfg(&format!("[[proxy]]\nurl = \"{url}\"\n")).unwrap_err();
            assert!(e.message.contains("password_file") && e.message.contains("`user`"), "{}", e.message);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        // The store's password: never in the URL (either form), from a file or a variable.
        for url in ["postgres://rotor:hunter2@db/rotor", "postgres://rotor@db/rotor?password=hunter2"] {
            let e = cfg(&format!("[store]\nurl = \"{url}\"\n")).unwrap_err();
            assert!(e.message.contains("password_file") && e.message.contains("[store]"), "{}", e.message);
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let e = cfg("[store]\nurl = \"mysql://u:hunter2@db/x\"\n").unwrap_err();
        assert!(e.message.contains("`mysql://`") && e.message.contains("valid: a path"), "{}", e.message);
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let c = cfg("[store]\nurl = \"postgres://rotor@db/rotor\"\npassword_file = \"pg.pass\"\n").unwrap();
        assert_eq!(c.store_password, Some(SecretSource::File(PathBuf::from("pg.pass"))));
        assert_eq!(cfg("").unwrap().store_password, None);
        let e = cfg("[store]\npath = \"s.db\"\npassword_env = \"PG\"\n").unwrap_err();
        assert!(e.message.contains("only a PostgreSQL store has a password"), "{}", e.message);
        let e = cfg(
            "[store]\nurl = \"postgres://rotor@db/rotor\"\npassword_env = \"PG\"\npassword_file = \"f\"\n",
        )
        .unwrap_err();
        assert!(e.message.contains("not both"), "{}", e.message);
        assert_eq!(cfg("").unwrap().orders_follow_per_poll, 20);
        let e = cfg("[orders]\nfollow_per_poll = 101\n").unwrap_err();
        assert!(e.message.contains("[orders] follow_per_poll is 101; valid: 0 to 100"), "{}", e.message);
        let e = cfg("[kaspi]\nstorefront = \"kaspi.kz\"\n").unwrap_err();
        assert!(e.message.contains("valid: an https:// URL"), "{}", e.message);
        // The token and cookies travel to these hosts: plain http only to a loopback fake.
        let e = cfg("[kaspi]\ncabinet = \"http://mc.shop.kaspi.kz\"\n").unwrap_err();
        assert!(e.message.contains("http:// only to a loopback host"), "{}", e.message);
        assert!(cfg("[kaspi]\ncabinet = \"http://127.0.0.1:4000\"\n").is_ok());
        let e = cfg("[demper]\ndrop_window = \"0s\"\n").unwrap_err();
        assert!(
            e.message.contains("[demper] drop_window") && e.message.contains("1m or more"),
            "{}",
            e.message
        );
        assert_eq!(cfg("").unwrap().demper_drop_window, Duration::from_mins(24 * 60));
        let e = cfg("[catalog]\nmax_shrink_percent = 101\n").unwrap_err();
        assert!(e.message.contains("valid: 0 to 100"), "{}", e.message);
        assert_eq!(cfg("").unwrap().catalog_max_shrink_percent, 20);
        let e = cfg("[proxy6]\nversion = 5\n").unwrap_err();
        assert!(e.message.contains("valid: 4 (IPv4)"), "{}", e.message);
        let e = cfg("bogus = 1\n").unwrap_err();
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }
}
