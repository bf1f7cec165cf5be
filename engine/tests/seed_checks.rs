//! The seed plan's own checks, `test_rotation` and `test_concurrent_modules`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::{at, demper, engine_with, quiet, req, send};
use rotor_engine::{Completion, Decision, Endpoint, Module, Outcome, Split, UserId};

#[test]
fn test_rotation() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let mut used = Vec::new();
    for i in 0..250u64 {
        let t = send(&mut e, &demper(1), at(i * 100));
        used.push(t.proxy());
        assert_eq!(e.complete(t, Outcome::Ok, at(i * 100 + 50)), Completion::Done);
    }
    let first = used[0];
    assert!(used[..249].iter().all(|&p| p == first), "requests 1-249 use the first proxy");
    assert_ne!(used[249], first, "request 250 uses another proxy");
}

#[test]
fn test_concurrent_modules() {
    let mut e = engine_with(quiet(), 100);
    e.allocate(UserId(1), 100, Split::default()).unwrap();
    let orders = req(1, Module::Orders, Endpoint::ShopOrders);
    let mut demper_in_flight = Vec::new();
    let mut orders_sent = 0;
    // Demper sends 650 requests, all in flight at once; orders sends 2 in the middle.
    for i in 0..650u64 {
        demper_in_flight.push(send(&mut e, &demper(1), at(i)));
        if i == 300 || i == 600 {
            match e.acquire(&orders, at(i)) {
                Decision::Send(t) => {
                    assert!(e.lane(orders.lane()).unwrap().proxies.contains(&t.proxy()));
                    assert_eq!(e.complete(t, Outcome::Ok, at(i)), Completion::Done);
                    orders_sent += 1;
                }
                other => panic!("orders waited for demper: {other:?}"),
            }
        }
    }
    assert_eq!(orders_sent, 2);
    let demper_lane = e.lane(demper(1).lane()).unwrap().proxies.to_vec();
    let mut distinct: Vec<_> = demper_in_flight.iter().map(rotor_engine::Ticket::proxy).collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "650 requests take three leases of at most 249");
    assert!(distinct.iter().all(|p| demper_lane.contains(p)));
    for t in demper_in_flight {
        e.complete(t, Outcome::Ok, at(700));
    }
}
