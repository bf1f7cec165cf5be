//! The store's hot paths with a year of history behind them: 200 proxies, 10 sellers, and
//! about 2.2 million finished leases (each proxy leased every 48 minutes for a year), on SQLite
//! and, when `ROTOR_BENCH_POSTGRES` names an empty database, on PostgreSQL too.
//!
//! - `claim`: a worker takes a seller's lanes over (the claim closes the old owner's open
//!   leases, the query a long usage log would slow down);
//! - `proxies`: what `/health/proxies` and `rotor ctl proxies` read (every proxy and its lease
//!   count);
//! - `lease`: one lease opened and rested, the per-lease writes;
//! - `prune_check`: the hourly prune finding nothing due.
//!
//! Target: each within a few milliseconds, and no figure growing with the history (the same
//! figures with 10 times less history, `ROTOR_BENCH_LEASES=220000`, are the comparison).
//! Run with `cargo bench -p rotor-live --bench store_history`; docs/performance.md has the
//! figures.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use rotor_engine::{ProxyId, Secret, Split, UserId};
use rotor_live::secrets::Cipher;
use rotor_live::store::{History, LeaseUsage, NewProxy, Store};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
const PROXIES: u32 = 200;
const SELLERS: u32 = 10;
const DAY_MS: u64 = 86_400_000;
/// "Now": a year after the history began.
const NOW_MS: u64 = 400 * DAY_MS;

fn leases() -> u64 {
    std::env::var("ROTOR_BENCH_LEASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2_200_000)
}

/// The history: lease `n` of proxy `p`, 48 minutes after the one before, all finished.
fn history_sql(leases: u64) -> String {
    let per_proxy = leases / u64::from(PROXIES);
    let start = NOW_MS - 365 * DAY_MS;
    format!(
        "INSERT INTO leases (proxy_id, lease_no, user_id, module, started_ms, finished_ms, requests, successes, failures, closed_by)
         SELECT p.i, n.i, 1 + p.i / {per_seller}, 'demper', {start} + n.i * 2880000, {start} + n.i * 2880000 + 600000, 249, 249, 0, 'rest'
         FROM s AS p, s AS n WHERE p.i < {PROXIES} AND n.i BETWEEN 1 AND {per_proxy}",
        per_seller = PROXIES / SELLERS,
    )
}

/// A store with the proxies allocated and the history written behind the store's back (one
/// statement, not two million transactions).
fn store(location: &str, dir: &std::path::Path, bulk: impl FnOnce(&str, u64)) -> Store {
    let cipher = Cipher::from_key_text(&Secret::new(KEY)).unwrap();
    let mut s = Store::open(location, dir, cipher).unwrap();
    let password = Secret::new("bench");
    for i in 0..PROXIES {
        let url = format!("http://127.0.0.1:{}", 20_000 + i);
        let ip: IpAddr = format!("127.0.{}.{}", i / 250, i % 250 + 1).parse().unwrap();
        let new = NewProxy {
            url: &url,
            username: Some("u"),
            password: Some(&password),
            egress_ip: ip,
            source: "config",
            proxy6: None,
        };
        s.upsert_proxy(&new, 1).unwrap();
    }
    let per_seller = PROXIES / SELLERS;
    for u in 1..=SELLERS {
        s.allocate(UserId(u), Split::new(per_seller, 0, 0, 0), 0).unwrap().unwrap();
    }
    let n = leases();
    let per_proxy = n / u64::from(PROXIES);
    let series = format!(
        "WITH RECURSIVE s(i) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM s WHERE i < {}) ",
        per_proxy.max(u64::from(PROXIES))
    );
    bulk(&format!("{series}{}", history_sql(n)), per_proxy);
    s
}

fn paths(c: &mut Criterion, name: &str, s: &mut Store) {
    let mut group = c.benchmark_group(format!("store_history/{name}"));
    group.sample_size(30);
    let mut expires = NOW_MS;
    group.bench_function("claim", |b| {
        b.iter(|| {
            expires += 1;
            black_box(s.claim_user("W", UserId(1), expires + 60_000, expires, true, expires).unwrap())
        });
    });
    group.bench_function("proxies", |b| {
        b.iter(|| black_box((s.proxies().unwrap().len(), s.lease_counts().unwrap().len())));
    });
    let (fences, _) = s.claim_user("W", UserId(2), u64::MAX / 2, NOW_MS, true, 0).unwrap().unwrap();
    let proxy = ProxyId(PROXIES / SELLERS);
    let mut lease_no = s.lease_counts().unwrap().get(&proxy).copied().unwrap_or(0) as u32;
    group.bench_function("lease", |b| {
        b.iter(|| {
            lease_no += 1;
            s.open_lease(&fences[0], proxy, lease_no, 249, NOW_MS).unwrap();
            s.start_rest(Some(&fences[0]), proxy, lease_no, NOW_MS, LeaseUsage::default(), NOW_MS).unwrap();
        });
    });
    group.bench_function("prune_check", |b| {
        b.iter(|| black_box(s.prune_batch(History::Leases, NOW_MS - 366 * DAY_MS, 5_000).unwrap()));
    });
    group.finish();
}

fn sqlite(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("rotor-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.db");
    let mut s = store("state.db", &dir, |sql, per_proxy| {
        let db = rusqlite::Connection::open(&file).unwrap();
        db.execute_batch(&format!("BEGIN; {sql}; UPDATE proxy_state SET lease_no = {per_proxy}; COMMIT;"))
            .unwrap();
        let n: i64 = db.query_row("SELECT count(*) FROM leases", [], |r| r.get(0)).unwrap();
        eprintln!("sqlite: {n} leases of history");
    });
    paths(c, "sqlite", &mut s);
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("ROTOR_BENCH_POSTGRES") else { return };
    let mut s = store(&url, &std::env::temp_dir(), |sql, per_proxy| {
        let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        db.batch_execute(&format!("{sql}; UPDATE proxy_state SET lease_no = {per_proxy}; ANALYZE")).unwrap();
        let n: i64 = db.query_one("SELECT count(*) FROM leases", &[]).unwrap().get(0);
        eprintln!("postgres: {n} leases of history");
    });
    paths(c, "postgres", &mut s);
}

criterion_group!(benches, sqlite, postgres);
criterion_main!(benches);
