//! The store's contract, run against both backends: SQLite (a file) and PostgreSQL (a fresh
//! database, see common/pg.rs). Allocation is all or nothing and never hands a proxy to two
//! users, even from concurrent connections; lane leases fence out a worker whose lease lapsed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use rotor_engine::{Module, ProxyId, Secret, Split, UserId};
use rotor_live::secrets::Cipher;
use rotor_live::store::{History, LeaseUsage, NewOrder, NewProxy, OrderWrite, Store, StoreError};

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Opens new connections to one store.
struct Backend {
    location: String,
    dir: PathBuf,
    _db: Option<pg::TestDb>,
}

impl Backend {
    fn sqlite(name: &str) -> Backend {
        let dir = std::env::temp_dir().join(format!("rotor-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Backend { location: "state.db".into(), dir, _db: None }
    }

    fn postgres(name: &str) -> Backend {
        let db = pg::TestDb::new(name);
        Backend { location: db.url.clone(), dir: std::env::temp_dir(), _db: Some(db) }
    }

    fn open(&self) -> Store {
        Store::open(&self.location, &self.dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap()
    }
}

fn both(name: &str, check: impl Fn(&Backend)) {
    check(&Backend::sqlite(name));
    check(&Backend::postgres(name));
}

fn add_proxies(store: &mut Store, n: u32) {
    for i in 0..n {
        let url = format!("http://127.0.0.1:{}", 20_000 + i);
        let password = Secret::new(format!("secret-{i}"));
        let ip: IpAddr = format!("127.0.1.{}", i + 1).parse().unwrap();
        let new = NewProxy {
            url: &url,
            username: Some("u"),
            password: Some(&password),
            egress_ip: ip,
            source: "config",
            proxy6: None,
        };
        assert_eq!(store.upsert_proxy(&new, 1).unwrap(), ProxyId(i));
    }
}

#[test]
fn proxies_get_dense_ids_and_sealed_passwords() {
    both("proxies", |b| {
        let mut s = b.open();
        assert_eq!(s.schema_version().unwrap(), 12);
        // An id of its own, drawn once, the same on every connection.
        let id = s.store_id().unwrap();
        assert!(id > 0 && id == b.open().store_id().unwrap());
        add_proxies(&mut s, 3);
        add_proxies(&mut s, 3); // the same URLs again keep their ids
        let all = s.proxies().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].password.as_ref().unwrap().expose(), "secret-2");
        assert_eq!(s.proxies_from(2).unwrap().len(), 1);
        s.mark_dead(ProxyId(1), "test").unwrap();
        assert!(s.proxies().unwrap()[1].dead);
        // A second connection reads the same, and reopening does not migrate again.
        assert_eq!(b.open().proxies().unwrap().len(), 3);
    });
}

/// A proxy is known by its identity (its egress IP when configured, Proxy6's id when bought),
/// not by its URL: a new URL or login for the same IP updates the row and keeps its state; a URL
/// reused for another IP is a new proxy; the reconcile's rows say which are dead and why.
#[test]
fn a_proxy_keeps_its_row_when_its_url_changes_and_a_reused_url_is_a_new_proxy() {
    both("identity", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 2);
        s.rest_until(ProxyId(0), 9_000).unwrap();
        let pw = Secret::new("rotated");
        let ip0: IpAddr = "127.0.1.1".parse().unwrap();
        let moved = NewProxy {
            url: "http://localhost:20999",
            username: Some("v"),
            password: Some(&pw),
            egress_ip: ip0,
            source: "config",
            proxy6: None,
        };
        assert_eq!(s.upsert_proxy(&moved, 2).unwrap(), ProxyId(0), "same egress IP, same proxy");
        let all = s.proxies().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!((all[0].url.as_str(), all[0].username.as_deref()), ("http://localhost:20999", Some("v")));
        assert_eq!(all[0].password.as_ref().unwrap().expose(), "rotated");
        assert_eq!(all[0].rest_until_ms, 9_000, "its rest is kept");
        // Proxy 1's URL now egresses elsewhere: a new proxy; the old row gives up the URL.
        let ip9: IpAddr = "127.0.1.9".parse().unwrap();
        let reused = NewProxy { url: "http://127.0.0.1:20001", egress_ip: ip9, ..moved };
        assert_eq!(s.upsert_proxy(&reused, 3).unwrap(), ProxyId(2));
        let all = s.proxies().unwrap();
        assert_eq!(all[1].url, "http://127.0.0.1:20001#p1");
        assert_eq!((all[2].url.as_str(), all[2].egress_ip), ("http://127.0.0.1:20001", ip9));
        // A dead row of an identity does not take a new listing's place from the live one.
        s.mark_dead(ProxyId(2), "test").unwrap();
        let again = NewProxy { url: "http://127.0.0.1:20002", ..reused };
        assert_eq!(s.upsert_proxy(&again, 4).unwrap(), ProxyId(2), "the newest row of the identity");
        let rows = s.config_proxies().unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[2].dead && rows[2].dead_reason.as_deref() == Some("test"));
        // A bought proxy is known by Proxy6's id, whatever its URL.
        let bought = |url: &'static str| NewProxy {
            url,
            username: None,
            password: None,
            egress_ip: "127.0.2.1".parse().unwrap(),
            source: "proxy6",
            proxy6: Some(("p6-1", 99)),
        };
        assert_eq!(s.upsert_proxy(&bought("http://127.0.0.1:30000"), 5).unwrap(), ProxyId(3));
        assert_eq!(s.upsert_proxy(&bought("http://127.0.0.1:30001"), 6).unwrap(), ProxyId(3));
        assert_eq!(s.proxies().unwrap().len(), 4);
    });
}

#[test]
fn allocation_is_all_or_nothing_and_skips_dead_and_held_proxies() {
    both("alloc", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 6);
        s.mark_dead(ProxyId(0), "test").unwrap();
        let a = s.allocate(UserId(1), Split::new(2, 1, 0, 0), 10).unwrap().unwrap();
        assert_eq!(a[0], vec![ProxyId(1), ProxyId(2)]);
        assert_eq!(a[1], vec![ProxyId(3)]);
        assert_eq!(s.free_count(10).unwrap(), 2);
        // Three more are not free: nothing is taken.
        assert_eq!(s.allocate(UserId(2), Split::new(3, 0, 0, 0), 10).unwrap(), None);
        assert_eq!(s.free_count(10).unwrap(), 2);
        assert_eq!(s.allocation_of(UserId(2)).unwrap().iter().flatten().count(), 0);
        // Replacing a dead proxy moves a free one in, all or nothing.
        s.mark_dead(ProxyId(1), "test").unwrap();
        assert_eq!(s.replace(UserId(1), Module::Demper, &[ProxyId(1)], 10).unwrap(), Some(vec![ProxyId(4)]));
        assert_eq!(s.allocation_of(UserId(1)).unwrap()[0], vec![ProxyId(2), ProxyId(4)]);
        assert_eq!(s.replace(UserId(1), Module::Demper, &[ProxyId(2), ProxyId(4)], 10).unwrap(), None);
        s.free_user(UserId(1), 20, 20).unwrap();
        assert!(s.user_freed(UserId(1)).unwrap());
        assert_eq!(s.free_count(20).unwrap(), 4, "2, 3, 4 and 5; 0 and 1 are dead");
    });
}

#[test]
fn a_proxy_whose_lease_is_open_is_never_handed_out_as_fresh() {
    both("open_lease", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 4);
        s.allocate(UserId(1), Split::new(2, 0, 0, 0), 0).unwrap().unwrap();
        let (fences, _) = s.claim_user("A", UserId(1), 1_000, 0, false, 0).unwrap().unwrap();
        s.open_lease(&fences[0], ProxyId(0), 1, 16, 10).unwrap();
        // The subscription ends with a request in flight on proxy 0: its lease is spent.
        s.free_user(UserId(1), 20, 9_999).unwrap();
        let p0 = s.proxies().unwrap()[0].clone();
        assert!(!p0.lease_open);
        assert_eq!(p0.rest_until_ms, 9_999, "the freed proxy rests a full rest from the freeing");
        assert_eq!(s.leases().unwrap()[0].7.as_deref(), Some("freed"));
        // Taken by the next seller, the rested proxies come last: 1, 2 and 3 are readier.
        let a = s.allocate(UserId(2), Split::new(3, 0, 0, 0), 30).unwrap().unwrap();
        assert_eq!(a[0], vec![ProxyId(1), ProxyId(2), ProxyId(3)]);
        // A lease left open on a proxy no seller holds keeps it out of every allocation.
        let (fences, _) = s.claim_user("A", UserId(2), 1_000, 30, false, 0).unwrap().unwrap();
        s.open_lease(&fences[0], ProxyId(3), 1, 16, 40).unwrap();
        s.set_allocation(UserId(2), &[(Module::Demper, vec![ProxyId(1), ProxyId(2)])], 50).unwrap();
        assert_eq!(s.free_count(50).unwrap(), 1, "proxy 0 only; 3 has its lease open");
        assert_eq!(s.allocate(UserId(3), Split::new(2, 0, 0, 0), 50).unwrap(), None);
        assert_eq!(s.allocate(UserId(3), Split::new(1, 0, 0, 0), 50).unwrap().unwrap()[0], vec![ProxyId(0)]);
    });
}

#[test]
fn concurrent_allocations_never_share_a_proxy() {
    both("race", |b| {
        add_proxies(&mut b.open(), 30);
        let results: Vec<Option<[Vec<ProxyId>; 4]>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8u32)
                .map(|u| {
                    scope.spawn(move || b.open().allocate(UserId(u), Split::new(4, 1, 0, 0), 5).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let granted: Vec<ProxyId> =
            results.iter().flatten().flat_map(|a| a.iter().flatten().copied()).collect();
        let distinct: BTreeSet<ProxyId> = granted.iter().copied().collect();
        assert_eq!(granted.len(), distinct.len(), "a proxy was handed to two users");
        assert_eq!(
            results.iter().filter(|r| r.is_some()).count(),
            6,
            "30 proxies make six allocations of five"
        );
        assert_eq!(b.open().allocations().unwrap().len(), 30);
    });
}

#[test]
fn a_lapsed_lease_is_taken_over_and_its_old_owner_is_fenced_out() {
    both("lease", |b| {
        let mut a = b.open();
        let mut other = b.open();
        add_proxies(&mut a, 2);
        a.allocate(UserId(7), Split::new(2, 0, 0, 0), 0).unwrap().unwrap();
        let (fences, _) = a.claim_user("A", UserId(7), 1_000, 0, false, 0).unwrap().unwrap();
        let demper = fences[Module::Demper.index()];
        a.open_lease(&demper, ProxyId(0), 1, 16, 10).unwrap();
        a.reserve(&demper, ProxyId(0), 1, 32, LeaseUsage { requests: 20, successes: 20, failures: 0 })
            .unwrap();
        // B cannot claim while A's lease runs.
        assert!(other.claim_user("B", UserId(7), 2_000, 500, false, 0).unwrap().is_none());
        assert!(a.renew_user("A", UserId(7), &fences, 1_500).unwrap());
        // After the expiry, B claims: tokens move on and A's open lease is spent.
        let (taken, closed) = other.claim_user("B", UserId(7), 3_000, 1_600, false, 9_999).unwrap().unwrap();
        assert_eq!(closed, 1);
        assert_eq!(taken[0].token, demper.token + 1);
        let p0 = other.proxies().unwrap()[0].clone();
        assert!(!p0.lease_open);
        assert_eq!(p0.rest_until_ms, 9_999, "the proxy rests a full rest from the takeover");
        // A's writes fail, and so does its renewal.
        let stale = a.reserve(&demper, ProxyId(0), 1, 48, LeaseUsage::default());
        assert_eq!(stale, Err(StoreError::Fenced { user: UserId(7), module: Module::Demper }));
        assert!(a.open_lease(&demper, ProxyId(1), 1, 16, 1_700).is_err());
        assert!(!a.renew_user("A", UserId(7), &fences, 4_000).unwrap());
        assert_eq!(other.lane_owner(UserId(7)).unwrap().unwrap().0, "B");
        // B releases on a clean stop; A may then claim at once.
        other.release_user("B", UserId(7)).unwrap();
        assert!(a.claim_user("A", UserId(7), 5_000, 1_800, false, 0).unwrap().is_some());
        let log = a.leases().unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].6.requests, 20);
        assert_eq!(log[0].7.as_deref(), Some("takeover"));
    });
}

#[test]
fn orders_are_stored_once_and_decisions_and_journal_round_trip() {
    both("orders", |b| {
        let mut s = b.open();
        let order = NewOrder {
            id: "o1".into(),
            code: "528000001".into(),
            state: Some("NEW".into()),
            status: Some("ACCEPTED_BY_MERCHANT".into()),
            total_price: Some(1500.0),
            creation_ms: 42,
            delivery_mode: Some("DELIVERY_PICKUP".into()),
            pickup_point: Some("30067228_PP1".into()),
            planned_delivery_ms: Some(90),
            entries: vec![(Some("SKU-1".into()), Some("Phone".into()), Some(2), Some(750.0))],
        };
        assert_eq!(s.write_order(UserId(1), &order, 50).unwrap(), OrderWrite::New);
        assert_eq!(
            b.open().write_order(UserId(1), &order, 60).unwrap(),
            OrderWrite::Same,
            "a second store is a no-op"
        );
        // Completed later: the order is updated and the change logged once.
        let done =
            NewOrder { state: Some("ARCHIVE".into()), status: Some("COMPLETED".into()), ..order.clone() };
        assert_eq!(s.write_order(UserId(1), &done, 70).unwrap(), OrderWrite::Changed);
        assert_eq!(s.write_order(UserId(1), &done, 80).unwrap(), OrderWrite::Same);
        let events = s.order_events(0, 0, 10).unwrap();
        let kinds: Vec<(&str, Option<&str>)> =
            events.iter().map(|e| (e.kind.as_str(), e.status.as_deref())).collect();
        assert_eq!(kinds, vec![("new", Some("ACCEPTED_BY_MERCHANT")), ("changed", Some("COMPLETED"))]);
        assert_eq!(events[1].order.entries, order.entries, "an event carries the order as stored now");
        assert_eq!(events[1].order.pickup_point.as_deref(), Some("30067228_PP1"));
        assert_eq!(s.order_events(events[0].seq, 0, 10).unwrap().len(), 1, "after a seq");
        assert_eq!(s.order_events(0, 70, 10).unwrap().len(), 1, "from an instant");
        assert_eq!(s.outbox_cursor("orders_webhook").unwrap(), 0);
        s.set_outbox_cursor("orders_webhook", events[1].seq).unwrap();
        assert_eq!(b.open().outbox_cursor("orders_webhook").unwrap(), events[1].seq);
        assert!(s.hold_outbox().unwrap());
        assert_eq!(s.orders().unwrap(), vec![("o1".to_owned(), 1)]);
        assert_eq!(s.orders_synced(UserId(1)).unwrap(), None);
        s.set_orders_synced(UserId(1), 100).unwrap();
        s.set_orders_synced(UserId(1), 200).unwrap();
        assert_eq!(b.open().orders_synced(UserId(1)).unwrap(), Some(200));
        assert!(s.has_order("o1").unwrap());
        assert_eq!(s.catalog_synced(UserId(1)).unwrap(), None, "no catalogue yet");
        assert!(!s.listing(UserId(1), "SKU-1", 0).unwrap().listed);
        let catalogue = [
            ("SKU-1".into(), Some("Phone".into()), Some(990.0), true),
            ("SKU-2".into(), Some("Case".into()), Some(50.0), false),
        ];
        s.store_catalog(UserId(1), &catalogue, 70).unwrap();
        assert_eq!(b.open().catalog_synced(UserId(1)).unwrap(), Some((70, 2)));
        let listing = s.listing(UserId(1), "SKU-1", 0).unwrap();
        assert_eq!((listing.price, listing.model.as_deref()), (Some(990.0), Some("Phone")));
        assert!(listing.listed && listing.on_sale);
        let removed = s.listing(UserId(1), "SKU-2", 0).unwrap();
        assert!(removed.listed && !removed.on_sale, "removed from sale is known: {removed:?}");
        // A pushed price is current until the catalogue shows a newer one (set in the cabinet).
        let decision = |at_ms, price: f64, pushed| rotor_live::store::PriceDecision {
            at_ms,
            user: UserId(1),
            sku: "SKU-1".into(),
            old_price: None,
            new_price: Some(price),
            competitor_min: None,
            reason: "undercut".into(),
            pushed,
            dry_run: false,
        };
        s.record_decision(&decision(75, 980.0, true)).unwrap();
        s.record_decision(&decision(76, 970.0, false)).unwrap();
        assert_eq!(
            b.open().listing(UserId(1), "SKU-1", 0).unwrap().price,
            Some(980.0),
            "the last push, not a dry decision"
        );
        s.store_catalog(UserId(1), &[("SKU-1".into(), Some("Phone".into()), Some(1_200.0), true)], 77)
            .unwrap();
        assert_eq!(
            s.listing(UserId(1), "SKU-1", 0).unwrap().price,
            Some(1_200.0),
            "a newer cabinet price wins"
        );
        // Pruning the history keeps the current price.
        assert_eq!(s.prune_batch(History::Decisions, 76, 1_000).unwrap(), 1);
        assert_eq!(s.decisions().unwrap().len(), 1);
        s.record_decision(&decision(78, 1_190.0, true)).unwrap();
        assert_eq!(s.prune_batch(History::Decisions, 1_000, 1_000).unwrap(), 2);
        assert_eq!(s.listing(UserId(1), "SKU-1", 0).unwrap().price, Some(1_190.0));
        s.journal("alert", "no money", 80).unwrap();
        assert_eq!(s.journal_entries("alert").unwrap(), vec!["no money".to_owned()]);
    });
}

/// The drop guard's reference: the highest price known since the later of the window's start and
/// the last price set outside rotor (a catalogue price rotor did not push) or confirmed.
#[test]
fn the_drop_guard_measures_from_the_highest_price_in_its_window() {
    both("marks", |b| {
        let mut s = b.open();
        let user = UserId(1);
        let row = |price: f64| [("A".to_owned(), Some("Phone".to_owned()), Some(price), true)];
        let push = |s: &mut Store, at_ms, price: f64| {
            s.record_decision(&rotor_live::store::PriceDecision {
                at_ms,
                user,
                sku: "A".into(),
                old_price: None,
                new_price: Some(price),
                competitor_min: None,
                reason: "undercut".into(),
                pushed: true,
                dry_run: false,
            })
            .unwrap();
        };
        s.store_catalog(user, &row(1_000.0), 10).unwrap();
        assert_eq!(s.listing(user, "A", 0).unwrap().reference, Some(1_000.0), "the first catalogue price");
        // A rival walking the price down: each push is lower, the reference stays.
        push(&mut s, 20, 950.0);
        push(&mut s, 30, 900.0);
        // The catalogue shows our own push: not a new start.
        s.store_catalog(user, &row(900.0), 35).unwrap();
        push(&mut s, 40, 850.0);
        let l = s.listing(user, "A", 0).unwrap();
        assert_eq!((l.price, l.reference), (Some(850.0), Some(1_000.0)));
        // Outside the window (from 15 on), the highest is the first push in it.
        assert_eq!(s.listing(user, "A", 15).unwrap().reference, Some(950.0));
        assert_eq!(s.listing(user, "A", 45).unwrap().reference, Some(850.0), "only the current price");
        // The seller set 700 in the cabinet: the budget starts again from it.
        s.store_catalog(user, &row(700.0), 50).unwrap();
        assert_eq!(s.listing(user, "A", 0).unwrap().reference, Some(700.0));
        push(&mut s, 60, 690.0);
        assert_eq!(s.listing(user, "A", 0).unwrap().reference, Some(700.0));
        // A confirmed drop starts it again from the confirmed price.
        assert_eq!(
            s.drop_confirmed(user, "A", (Some(700.0), 400.0), 61).unwrap(),
            rotor_live::store::DropGate::Held
        );
        let a = ["A".to_owned()];
        s.confirm_drops(user, rotor_live::store::Confirm::Skus(&a), 62).unwrap().unwrap();
        push(&mut s, 63, 400.0);
        assert_eq!(s.listing(user, "A", 0).unwrap().reference, Some(400.0));
        // Marks outside every window go.
        assert!(s.prune_batch(History::Marks, 63, 1_000).unwrap() >= 5);
        assert_eq!(s.listing(user, "A", 0).unwrap().reference, Some(400.0));
    });
}

/// A store error says what kind of failure it is: the callers decide by kind, never by message.
#[test]
fn store_errors_are_typed_by_kind() {
    both("typed", |b| {
        {
            let mut st = b.open();
            add_proxies(&mut st, 1);
        }
        // Corrupt: a sealed password the key cannot open is refused, not returned as garbage.
        let other_key = Cipher::from_key_text(&Secret::new(KEY.replace('0', "f"))).unwrap();
        let mut wrong = Store::open(&b.location, &b.dir, other_key).unwrap();
        match wrong.proxies() {
            Err(StoreError::Corrupt { message, .. }) => {
                assert!(message.contains("ROTOR_STORE_KEY"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // Corrupt: a schema newer than this build is refused, not silently downgraded.
        let bump = "UPDATE rotor_meta SET value = 99 WHERE key = 'schema'";
        if b.location.starts_with("postgres") {
            postgres::Client::connect(&b.location, postgres::NoTls).unwrap().batch_execute(bump).unwrap();
        } else {
            rusqlite::Connection::open(b.dir.join(&b.location)).unwrap().execute_batch(bump).unwrap();
        }
        let cipher = Cipher::from_key_text(&Secret::new(KEY)).unwrap();
        match Store::open(&b.location, &b.dir, cipher) {
            Err(StoreError::Corrupt { message, .. }) => {
                assert!(message.contains("newer than this build"), "{message}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    });
}

/// A database that cannot be reached is `Unavailable`: nothing was written, try later.
#[test]
fn an_unreachable_database_is_unavailable() {
    let cipher = || Cipher::from_key_text(&Secret::new(KEY)).unwrap();
    // A closed loopback port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://postgres@127.0.0.1:{closed}/none");
    assert!(matches!(
        Store::open(&url, &std::env::temp_dir(), cipher()),
        Err(StoreError::Unavailable { .. })
    ));
    // An SQLite file under a path that is a file, not a directory.
    let dir = std::env::temp_dir().join(format!("rotor-store-unavailable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plain"), "not a directory").unwrap();
    let err = Store::open("plain/state.db", &dir, cipher()).unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Account cooldowns are kept across restarts: the later of two wins, and past ones are not read.
#[test]
fn account_cooldowns_round_trip_and_only_lengthen() {
    use rotor_engine::Endpoint;
    both("cooldowns", |b| {
        let mut st = b.open();
        assert_eq!(st.schema_version().unwrap(), 12);
        st.set_cooldown(UserId(3), Endpoint::CabinetPriceUpdate, 5_000).unwrap();
        st.set_cooldown(UserId(3), Endpoint::CabinetPriceUpdate, 4_000).unwrap();
        st.set_cooldown(UserId(4), Endpoint::CabinetPriceUpdate, 1_000).unwrap();
        drop(st);
        let mut st = b.open();
        assert_eq!(st.cooldowns(2_000).unwrap(), vec![(UserId(3), Endpoint::CabinetPriceUpdate, 5_000)]);
        assert!(st.cooldowns(5_000).unwrap().is_empty(), "over at its end");
    });
}

/// One process per SQLite file: a second lock on the same state file is refused with a message
/// that says what to do, and the lock is free again once its holder is gone.
#[test]
fn a_second_process_on_one_sqlite_file_is_refused() {
    use rotor_live::store::StateLock;
    let dir = std::env::temp_dir().join(format!("rotor-state-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let first = StateLock::take("state.db", &dir).unwrap();
    let second = StateLock::take("sqlite://state.db", &dir).unwrap_err();
    assert!(matches!(second, StoreError::Unavailable { .. }), "{second:?}");
    let text = second.to_string();
    assert!(text.contains("another rotor process") && text.contains("PostgreSQL"), "{text}");
    // Another file is another lock.
    let other = StateLock::take("other.db", &dir).unwrap();
    drop(first);
    StateLock::take("state.db", &dir).unwrap();
    drop(other);
    // PostgreSQL needs no file lock: workers share it through lane leases.
    StateLock::take("postgres://rotor@127.0.0.1:1/none", &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn operator_decisions_are_kept_for_every_worker() {
    use rotor_live::store::{Command, Confirm, DropGate, held_version};
    both("operator", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 3);
        // A large drop is held until confirmed; asked lower, it needs a new confirmation.
        let user = UserId(1);
        assert_eq!(s.drop_confirmed(user, "A", (Some(3000.0), 999.0), 10).unwrap(), DropGate::Held);
        assert_eq!(s.drop_confirmed(user, "A", (Some(3000.0), 999.0), 20).unwrap(), DropGate::StillHeld);
        let b_only = ["B".to_owned()];
        let refused = s.confirm_drops(user, Confirm::Skus(&b_only), 30).unwrap().unwrap_err();
        assert!(refused.contains("no held price drop for SKU B"), "{refused}");
        // "All" confirms only the set the operator saw: its version.
        let version = held_version(&s.held_drops().unwrap());
        let stale = s.confirm_drops(user, Confirm::All("00000000"), 30).unwrap().unwrap_err();
        assert!(stale.contains("changed since version 00000000") && stale.contains(&version), "{stale}");
        let confirmed = s.confirm_drops(user, Confirm::All(&version), 30).unwrap().unwrap();
        assert_eq!(
            confirmed.iter().map(|h| (h.sku.as_str(), h.to_price)).collect::<Vec<_>>(),
            vec![("A", 999.0)]
        );
        assert_eq!(s.drop_confirmed(user, "A", (Some(3000.0), 999.0), 40).unwrap(), DropGate::Confirmed);
        assert_eq!(s.drop_confirmed(user, "A", (Some(3000.0), 500.0), 50).unwrap(), DropGate::Held);
        // A drop held while the current price is unknown says so.
        assert_eq!(s.drop_confirmed(user, "U", (None, 700.0), 55).unwrap(), DropGate::Held);
        let unknown = s.held_drops().unwrap().into_iter().find(|h| h.sku == "U").unwrap();
        assert_eq!(unknown.from_price, None);
        let version_with_u = held_version(&s.held_drops().unwrap());
        assert_ne!(version, version_with_u, "a new hold changes the version");
        let u_only = ["U".to_owned()];
        assert_eq!(s.confirm_drops(user, Confirm::Skus(&u_only), 56).unwrap().unwrap().len(), 1);
        let held = s.held_drops().unwrap();
        assert_eq!((held.len(), held[0].to_price, held[0].confirmed_ms), (2, 500.0, None));
        // A waits again (asked lower), U was confirmed: one waits for the operator.
        assert_eq!(s.held_drops_waiting().unwrap(), 1);
        // A push ends the hold.
        s.record_decision(&rotor_live::store::PriceDecision {
            at_ms: 60,
            user,
            sku: "A".into(),
            old_price: Some(3000.0),
            new_price: Some(500.0),
            competitor_min: Some(501.0),
            reason: "undercut".into(),
            pushed: true,
            dry_run: false,
        })
        .unwrap();
        let left: Vec<String> = s.held_drops().unwrap().into_iter().map(|h| h.sku).collect();
        assert_eq!(left, vec!["U".to_owned()], "the push ended A's hold only");

        // Release needs a drained seller no worker holds; it spends an open lease.
        s.allocate(user, Split::new(2, 0, 0, 0), 0).unwrap().unwrap();
        let (fences, _) = s.claim_user("A", user, 1_000, 0, false, 0).unwrap().unwrap();
        s.open_lease(&fences[0], ProxyId(0), 1, 16, 10).unwrap();
        assert!(matches!(s.release_seller(user, 100, 5_000), Err(StoreError::Conflict { .. })));
        s.set_drained(user, true, 100).unwrap();
        assert_eq!(s.drained().unwrap().into_iter().collect::<Vec<_>>(), vec![user]);
        assert!(s.release_seller(user, 100, 5_000).is_err(), "worker A still holds the lanes");
        s.release_user("A", user).unwrap();
        assert_eq!(s.release_seller(user, 100, 5_000).unwrap(), 2);
        assert_eq!(s.proxies().unwrap()[0].rest_until_ms, 5_000);
        assert_eq!(s.leases().unwrap()[0].7.as_deref(), Some("released"));
        s.set_drained(user, false, 200).unwrap();
        assert!(s.drained().unwrap().is_empty());

        // Revive and retire reach every worker as commands, in order.
        let start = s.last_command().unwrap();
        assert!(!s.revive_proxy(ProxyId(1), 9_000, 300).unwrap(), "not dead");
        assert!(s.retire_proxy(ProxyId(1), "retired by the operator", 300).unwrap());
        assert!(!s.retire_proxy(ProxyId(1), "retired by the operator", 301).unwrap(), "already retired");
        s.mark_dead(ProxyId(1), "3 failures in its last 10 requests").unwrap();
        assert_eq!(s.proxies().unwrap()[1].dead_reason.as_deref(), Some("retired by the operator"));
        assert!(s.revive_proxy(ProxyId(1), 9_000, 400).unwrap());
        let p1 = s.proxies().unwrap()[1].clone();
        assert!(!p1.dead && p1.rest_until_ms == 9_000 && p1.dead_reason.is_none());
        let commands: Vec<Command> = s.commands_after(start).unwrap().into_iter().map(|c| c.1).collect();
        assert_eq!(commands, vec![Command::Retire(ProxyId(1)), Command::Revive(ProxyId(1))]);
        let last = s.last_command().unwrap();
        assert!(s.commands_after(last).unwrap().is_empty());
    });
}

/// A PostgreSQL restart fails the writes made while it is down (nothing is sent on them, and
/// none of them is written), and the store reconnects by itself once the server is back.
#[test]
fn a_postgres_restart_is_survived_by_reconnecting() {
    let db = pg::TestDb::own_server("restart");
    let dir = std::env::temp_dir();
    let open = || Store::open(&db.url, &dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap();
    let mut s = open();
    add_proxies(&mut s, 3);
    s.allocate(UserId(1), Split::new(1, 0, 0, 0), 0).unwrap().unwrap();
    db.stop();
    let down = s.allocate(UserId(2), Split::new(1, 0, 0, 0), 0);
    assert!(matches!(down, Err(StoreError::Unavailable { .. })), "{down:?}");
    assert!(matches!(s.ping(), Err(StoreError::Unavailable { .. })));
    db.start();
    let start = std::time::Instant::now();
    while s.ping().is_err() {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "no reconnection");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The allocation that failed wrote nothing; the one before the restart is kept.
    assert_eq!(s.allocations().unwrap().len(), 1);
    assert_eq!(s.allocate(UserId(2), Split::new(1, 0, 0, 0), 0).unwrap().unwrap()[0], vec![ProxyId(1)]);
    assert_eq!(open().allocations().unwrap().len(), 2);
}

#[test]
fn a_dead_letter_moves_the_cursor_is_listed_retried_and_dropped() {
    both("dead_letters", |b| {
        let mut s = b.open();
        let order = NewOrder {
            id: "o1".into(),
            code: "528000001".into(),
            state: Some("NEW".into()),
            status: None,
            total_price: None,
            creation_ms: 42,
            delivery_mode: None,
            pickup_point: None,
            planned_delivery_ms: None,
            entries: Vec::new(),
        };
        s.write_order(UserId(1), &order, 50).unwrap();
        s.write_order(UserId(1), &NewOrder { state: Some("ARCHIVE".into()), ..order.clone() }, 60).unwrap();
        let events = s.order_events(0, 0, 10).unwrap();
        // A dead letter moves the cursor with it (never back), is listed with its order, asked
        // again, set aside again with its tries added, and dropped once delivered.
        s.set_outbox_cursor("orders_webhook", 0).unwrap();
        s.dead_letter("orders_webhook", events[0].seq, (422, "unknown pickup point"), 5, 75).unwrap();
        assert_eq!(s.outbox_cursor("orders_webhook").unwrap(), events[0].seq);
        s.set_outbox_cursor("orders_webhook", events[1].seq).unwrap();
        s.dead_letter("orders_webhook", events[0].seq, (422, "again"), 5, 76).unwrap();
        assert_eq!(
            s.outbox_cursor("orders_webhook").unwrap(),
            events[1].seq,
            "a retry's refusal moves no cursor back"
        );
        let dead = b.open().dead_letters().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (dead[0].order_code.as_deref(), dead[0].status, dead[0].tries),
            (Some("528000001"), 422, 10)
        );
        assert_eq!((dead[0].message.as_str(), dead[0].retry_asked), ("again", false));
        assert_eq!(s.dead_letter_count().unwrap(), 1);
        assert_eq!(s.ask_retry(Some(&[events[1].seq])).unwrap(), 0, "not a dead letter: nothing asked");
        assert!(s.retries_asked().unwrap().is_empty());
        assert_eq!(s.ask_retry(None).unwrap(), 1);
        assert_eq!(s.retries_asked().unwrap(), vec![events[0].seq]);
        s.dead_letter_delivered(events[0].seq).unwrap();
        assert_eq!(s.dead_letter_count().unwrap(), 0);
    });
}

/// The PostgreSQL password comes from the config's secret source, never from the URL: a role
/// that must give one connects with it and is refused without it, and the refusal does not
/// echo it.
#[test]
fn a_postgres_password_is_given_apart_from_the_url() {
    let db = pg::TestDb::own_server("password");
    db.admin(&format!("CREATE ROLE {} LOGIN SUPERUSER PASSWORD 'pg-s3cret'", pg::PASSWORD_ROLE));
    let url = db.url.replacen("postgres@", &format!("{}@", pg::PASSWORD_ROLE), 1);
    let dir = std::env::temp_dir();
    let cipher = || Cipher::from_key_text(&Secret::new(KEY)).unwrap();
    let refused = Store::open(&url, &dir, cipher()).unwrap_err().to_string();
    assert!(refused.contains("password"), "{refused}");
    let wrong = Store::open_with(&url, &dir, cipher(), Some(&Secret::new("nope"))).unwrap_err().to_string();
    assert!(!wrong.contains("nope"), "{wrong}");
    let mut s = Store::open_with(&url, &dir, cipher(), Some(&Secret::new("pg-s3cret"))).unwrap();
    add_proxies(&mut s, 1);
    assert_eq!(s.proxies().unwrap().len(), 1);
}

/// A lock held past the lock timeout fails the write as unavailable, quickly, instead of
/// blocking the worker.
#[test]
fn a_lock_held_too_long_fails_the_write_as_unavailable() {
    let db = pg::TestDb::new("locked");
    let dir = std::env::temp_dir();
    let url = format!("{}?options=-c%20lock_timeout%3D300", db.url);
    let mut s = Store::open(&url, &dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap();
    add_proxies(&mut s, 2);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder_url = db.url.clone();
    let holder = std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&holder_url, postgres::NoTls).unwrap();
        let mut tx = c.transaction().unwrap();
        tx.batch_execute("LOCK TABLE allocations IN ACCESS EXCLUSIVE MODE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(std::time::Duration::from_secs(20));
        tx.rollback().unwrap();
    });
    locked_rx.recv().unwrap();
    let start = std::time::Instant::now();
    let r = s.allocate(UserId(1), Split::new(1, 0, 0, 0), 0);
    assert!(matches!(r, Err(StoreError::Unavailable { .. })), "{r:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    done_tx.send(()).unwrap();
    holder.join().unwrap();
    assert!(s.allocate(UserId(1), Split::new(1, 0, 0, 0), 0).unwrap().is_some(), "fine once released");
}

#[test]
fn lane_holds_and_the_clock_anchor_round_trip() {
    use rotor_engine::LaneKey;
    both("holds", |b| {
        let mut s = b.open();
        let lane = LaneKey::new(UserId(2), Module::Demper);
        s.set_circuit(lane, 5_000).unwrap();
        s.set_circuit(lane, 4_000).unwrap();
        s.set_slowdown(lane, 250, 9_000).unwrap();
        let holds = s.lane_holds(UserId(2), 1_000).unwrap();
        assert_eq!(holds.len(), 1);
        assert_eq!(
            (holds[0].circuit_until_ms, holds[0].slow_interval_ms, holds[0].slow_until_ms),
            (5_000, 250, 9_000)
        );
        assert_eq!(s.lane_holds(UserId(2), 6_000).unwrap().len(), 1, "the slowdown still holds");
        assert!(s.lane_holds(UserId(2), 9_000).unwrap().is_empty());
        assert!(s.lane_holds(UserId(3), 0).unwrap().is_empty());
        assert_eq!(s.clock_anchor("boot-a").unwrap(), None);
        s.set_clock_anchor("boot-a", 100, 1_000).unwrap();
        s.set_clock_anchor("boot-a", 200, 2_000).unwrap();
        assert_eq!(s.clock_anchor("boot-a").unwrap(), Some((100, 1_000)), "the first anchor of a boot stays");
    });
}

#[test]
fn proxy6_orders_add_up_to_the_spend_and_pending_ones_wait_for_reconciling() {
    both("p6orders", |b| {
        let mut s = b.open();
        s.p6_begin("rotor-1", "buy", 2, 0.22, 1_000).unwrap();
        s.p6_begin("prolong-2", "prolong", 1, 0.11, 2_000).unwrap();
        s.p6_begin("rotor-3", "buy", 5, 0.55, 3_000).unwrap();
        assert!((s.p6_spent_since(0).unwrap() - 0.88).abs() < 1e-9, "pending orders count at their estimate");
        s.p6_settle("rotor-1", true, 0.2).unwrap();
        s.p6_settle("rotor-3", false, 0.0).unwrap();
        assert!((s.p6_spent_since(0).unwrap() - 0.31).abs() < 1e-9, "a failed order costs nothing");
        assert!((s.p6_spent_since(1_500).unwrap() - 0.11).abs() < 1e-9);
        let pending: Vec<String> = s.p6_pending().unwrap().into_iter().map(|o| o.tag).collect();
        assert_eq!(pending, vec!["prolong-2".to_owned()]);
    });
}

#[test]
fn a_calibration_holds_only_a_spare_proxy_and_no_allocation_takes_it_while_held() {
    use rotor_live::store::NotSpare;
    both("calibration_hold", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 4);
        s.allocate(UserId(1), Split::new(1, 0, 0, 0), 0).unwrap().unwrap();
        s.mark_dead(ProxyId(1), "test").unwrap();
        s.rest_until(ProxyId(2), 500).unwrap();
        assert_eq!(
            s.hold_for_calibration(ProxyId(0), 100, 1_000, 1_000).unwrap(),
            Err(NotSpare::Allocated(1, "demper".into()))
        );
        assert_eq!(s.hold_for_calibration(ProxyId(1), 100, 1_000, 1_000).unwrap(), Err(NotSpare::Dead));
        assert_eq!(
            s.hold_for_calibration(ProxyId(2), 100, 1_000, 1_000).unwrap(),
            Err(NotSpare::Resting(500))
        );
        assert_eq!(s.hold_for_calibration(ProxyId(9), 100, 1_000, 1_000).unwrap(), Err(NotSpare::Unknown));
        // Proxy 3 is spare: held until 1000, resting until 5000 at least.
        assert_eq!(s.hold_for_calibration(ProxyId(3), 100, 1_000, 5_000).unwrap(), Ok(()));
        let listed = &s.proxies().unwrap()[3];
        assert_eq!((listed.held_until_ms, listed.rest_until_ms), (1_000, 5_000), "listed as held");
        assert_eq!(
            s.hold_for_calibration(ProxyId(3), 200, 2_000, 5_000).unwrap(),
            Err(NotSpare::Held(1_000))
        );
        assert_eq!(s.free_count(600).unwrap(), 1, "proxy 2 only: 3 is held");
        assert_eq!(
            s.allocate(UserId(2), Split::new(2, 0, 0, 0), 600).unwrap(),
            None,
            "the held proxy is not taken"
        );
        s.renew_hold(ProxyId(3), 3_000, 8_000).unwrap();
        s.renew_hold(ProxyId(3), 2_000, 6_000).unwrap();
        assert_eq!(s.held_until(ProxyId(3)).unwrap(), 3_000, "a renewal never shortens the hold");
        assert_eq!(s.proxies().unwrap()[3].rest_until_ms, 8_000);
        // Released with the rest the calibration decided, sooner than the hold's.
        s.end_hold(ProxyId(3), 4_000).unwrap();
        assert_eq!((s.held_until(ProxyId(3)).unwrap(), s.proxies().unwrap()[3].rest_until_ms), (0, 4_000));
        s.end_hold(ProxyId(3), 1).unwrap();
        assert_eq!(s.proxies().unwrap()[3].rest_until_ms, 4_000, "ending no hold changes nothing");
        assert_eq!(s.free_count(600).unwrap(), 2);
        // A hold that was never released lapses by itself.
        assert_eq!(s.hold_for_calibration(ProxyId(2), 700, 900, 900).unwrap(), Ok(()));
        assert_eq!(s.free_count(800).unwrap(), 1);
        assert_eq!(s.free_count(901).unwrap(), 2);
    });
}

/// On PostgreSQL a sequence number is taken at insert and seen at commit: a writer that took
/// number N and has not committed must keep N+1 (another worker's) from being seen, or a
/// reader that moved its cursor past N+1 would never deliver N. Here a transaction holds the
/// event log's lock with an uncommitted event while a store writes another; the reader sees a
/// log without a gap at every moment, and every event once both are done.
#[test]
fn order_events_become_visible_in_number_order_with_a_writer_held_open() {
    let b = Backend::postgres("event_order");
    let order = |id: &str| NewOrder {
        id: id.into(),
        code: id.into(),
        state: Some("NEW".into()),
        status: Some("ACCEPTED_BY_MERCHANT".into()),
        total_price: Some(10.0),
        creation_ms: 1,
        delivery_mode: None,
        pickup_point: None,
        planned_delivery_ms: None,
        entries: Vec::new(),
    };
    let mut s = b.open();
    s.write_order(UserId(1), &order("o1"), 10).unwrap();
    // Another writer, mid-transaction: it holds the log as `write_order` does and has taken
    // number 2 without committing.
    let mut held = postgres::Client::connect(&b.location, postgres::NoTls).unwrap();
    let mut tx = held.transaction().unwrap();
    tx.batch_execute(
        "LOCK TABLE order_events IN SHARE ROW EXCLUSIVE MODE;
         INSERT INTO order_events (order_id, user_id, at_ms, kind, state, status) VALUES ('o1', 1, 20, 'changed', 'NEW', 'X')",
    )
    .unwrap();
    let writer = {
        let location = b.location.clone();
        let dir = b.dir.clone();
        std::thread::spawn(move || {
            let mut s =
                Store::open(&location, &dir, Cipher::from_key_text(&Secret::new(KEY)).unwrap()).unwrap();
            s.write_order(UserId(1), &order("o2"), 30).unwrap();
        })
    };
    // Wait (bounded) until the store's write waits on the lock, or finished without waiting.
    let mut watcher = postgres::Client::connect(&b.location, postgres::NoTls).unwrap();
    let start = std::time::Instant::now();
    while !writer.is_finished() && start.elapsed() < std::time::Duration::from_secs(10) {
        let waiting: i64 =
            watcher.query_one("SELECT COUNT(*) FROM pg_locks WHERE NOT granted", &[]).unwrap().get(0);
        if waiting > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let seen: Vec<u64> = b.open().order_events(0, 0, 100).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seen, vec![1], "an event became visible past an uncommitted one");
    tx.commit().unwrap();
    writer.join().unwrap();
    let seen: Vec<u64> = b.open().order_events(0, 0, 100).unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seen, vec![1, 2, 3]);
}

/// Every kind of history goes once older than the cut, batch by batch, and what is still needed
/// stays: an open lease, an order event not yet handed on or set aside as a dead letter, an
/// order that is not final or still has events, a pending Proxy6 order.
#[test]
fn history_is_pruned_by_age_in_batches_and_what_is_still_needed_stays() {
    both("prune", |b| {
        let mut s = b.open();
        // Orders: o1 ends COMPLETED, o2 stays open, o3 is final but its event is not handed on.
        let order = |id: &str, status: &str| NewOrder {
            id: id.into(),
            code: format!("code-{id}"),
            state: None,
            status: Some(status.into()),
            total_price: None,
            creation_ms: 1,
            delivery_mode: None,
            pickup_point: None,
            planned_delivery_ms: None,
            entries: vec![(Some("SKU-1".into()), None, Some(1), Some(10.0))],
        };
        s.write_order(UserId(1), &order("o1", "ACCEPTED_BY_MERCHANT"), 50).unwrap();
        s.write_order(UserId(1), &order("o1", "COMPLETED"), 60).unwrap();
        s.write_order(UserId(1), &order("o2", "ACCEPTED_BY_MERCHANT"), 61).unwrap();
        s.write_order(UserId(1), &order("o3", "CANCELLED"), 62).unwrap();
        let seqs: Vec<u64> = s.order_events(0, 0, 10).unwrap().iter().map(|e| e.seq).collect();
        assert_eq!(seqs.len(), 4);
        s.set_outbox_cursor("orders_webhook", seqs[2]).unwrap();
        // o1's completion was refused for good: a dead letter, kept while it is one.
        s.dead_letter("orders_webhook", seqs[1], (422, "refused"), 5, 70).unwrap();
        assert_eq!(s.prune_batch(History::OrderEvents, 1_000, 100).unwrap(), 2, "o1's first, o2's");
        assert_eq!(s.prune_batch(History::Orders, 1_000, 100).unwrap(), 0, "o1 has its dead letter");
        s.dead_letter_delivered(seqs[1]).unwrap();
        assert_eq!(s.prune_batch(History::OrderEvents, 50, 100).unwrap(), 0, "younger than the cut");
        assert_eq!(s.prune_batch(History::OrderEvents, 1_000, 100).unwrap(), 1);
        assert_eq!(s.prune_batch(History::Orders, 1_000, 100).unwrap(), 1);
        let left: Vec<String> = s.orders().unwrap().into_iter().map(|o| o.0).collect();
        assert_eq!(left, vec!["o2".to_owned(), "o3".to_owned()]);
        assert_eq!(
            s.order_events(0, 0, 10).unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![seqs[3]]
        );
        // Leases: the finished one goes, the open one stays, and the lease count is kept.
        add_proxies(&mut s, 2);
        s.allocate(UserId(1), Split::new(2, 0, 0, 0), 0).unwrap().unwrap();
        let (fences, _) = s.claim_user("A", UserId(1), 10_000, 0, false, 0).unwrap().unwrap();
        s.open_lease(&fences[0], ProxyId(0), 1, 16, 10).unwrap();
        s.open_lease(&fences[0], ProxyId(1), 1, 16, 10).unwrap();
        s.start_rest(Some(&fences[0]), ProxyId(0), 1, 5_000, LeaseUsage::default(), 20).unwrap();
        assert_eq!(s.prune_batch(History::Leases, 1_000, 100).unwrap(), 1);
        let leases = s.leases().unwrap();
        assert_eq!((leases.len(), leases[0].0, leases[0].5), (1, ProxyId(1), None), "the open lease");
        assert_eq!(s.lease_counts().unwrap().get(&ProxyId(0)), Some(&1));
        // Journal entries go in batches: 5 old ones in batches of 2.
        for at in 1..=5 {
            s.journal("alert", &format!("old {at}"), at).unwrap();
        }
        s.journal("alert", "new", 2_000).unwrap();
        let batches: Vec<u64> = (0..4).map(|_| s.prune_batch(History::Journal, 1_000, 2).unwrap()).collect();
        assert_eq!(batches, vec![2, 2, 1, 0]);
        assert_eq!(s.journal_entries("alert").unwrap(), vec!["new".to_owned()]);
        // Operator commands, settled Proxy6 orders, ended workers.
        assert!(s.retire_proxy(ProxyId(1), "test", 90).unwrap());
        assert_eq!(s.prune_batch(History::Commands, 1_000, 100).unwrap(), 1);
        assert!(s.commands_after(0).unwrap().is_empty());
        s.p6_begin("rotor-1", "buy", 1, 0.1, 100).unwrap();
        s.p6_begin("rotor-2", "buy", 1, 0.1, 100).unwrap();
        s.p6_settle("rotor-1", true, 0.1).unwrap();
        assert_eq!(s.prune_batch(History::Proxy6Orders, 1_000, 100).unwrap(), 1);
        assert_eq!(s.p6_pending().unwrap().len(), 1, "the pending order stays");
        s.heartbeat("W", 500, 0).unwrap();
        s.heartbeat("V", 5_000, 0).unwrap();
        assert_eq!(s.prune_batch(History::Workers, 1_000, 100).unwrap(), 1);
        assert_eq!(s.workers().unwrap(), vec![("V".to_owned(), 5_000)]);
        // Every kind answers, nothing older being left.
        for what in History::ALL {
            assert_eq!(s.prune_batch(what, 1_000, 100).unwrap(), 0, "{}", what.name());
        }
    });
}

/// A store opened without its key (the `rotor ctl` views) reads every row but no secret, and
/// refuses to write one; opened with the key, the same rows carry their passwords.
#[test]
fn a_keyless_view_reads_rows_but_no_secret_and_writes_none() {
    both("keyless", |b| {
        let mut s = b.open();
        add_proxies(&mut s, 2);
        drop(s);
        let mut view = Store::open_keyless(&b.location, &b.dir, None).unwrap();
        let rows = view.proxies().unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|p| p.password.is_none() && p.username.as_deref() == Some("u")));
        let password = Secret::new("another");
        let new = NewProxy {
            url: "http://127.0.0.1:29999",
            username: Some("u"),
            password: Some(&password),
            egress_ip: "127.0.1.99".parse().unwrap(),
            source: "config",
            proxy6: None,
        };
        let e = view.upsert_proxy(&new, 5).unwrap_err();
        assert!(matches!(e, StoreError::Keyless { .. }), "{e}");
        assert!(e.to_string().contains("opened without its key"), "{e}");
        assert_eq!(view.proxies().unwrap().len(), 2, "nothing written");
        let keyed = b.open().proxies().unwrap();
        assert_eq!(keyed[0].password.as_ref().map(Secret::expose), Some("secret-0"));
    });
}
