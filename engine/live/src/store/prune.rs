//! Every table bounded: history older than its retention goes, in batches of a few thousand
//! rows, each batch its own short transaction, so pruning a year of history never holds the
//! store for long (the caller loops, and other writers run between batches).
//!
//! What is never pruned: current state (proxies, allocations, current prices, the catalogue),
//! an open lease, an undelivered order event or a dead letter's event, an order that is not
//! final, and a Proxy6 order still pending.

use super::error::ctx;
use super::sql::{Dialect, Value};
use super::{Store, StoreError};

/// A kind of history, pruned by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// Price decisions (`[store] decisions_retention`).
    Decisions,
    /// Price marks outside the drop guard's window.
    Marks,
    /// Finished leases of the usage log.
    Leases,
    /// Alerts and unfinished-request records.
    Journal,
    /// Operator commands (applied within seconds by every worker).
    Commands,
    /// Settled Proxy6 purchases and renewals (the spending caps look back 30 days).
    Proxy6Orders,
    /// Order events handed on (at or below the webhook's cursor, when it has one), not a dead
    /// letter's.
    OrderEvents,
    /// Final orders, with their entries, whose events are gone.
    Orders,
    /// Rows of workers whose heartbeat ended.
    Workers,
}

impl History {
    /// Every kind, in the order they are pruned (an order's events before the order).
    pub const ALL: [History; 9] = [
        History::Decisions,
        History::Marks,
        History::Leases,
        History::Journal,
        History::Commands,
        History::Proxy6Orders,
        History::OrderEvents,
        History::Orders,
        History::Workers,
    ];

    /// Its name in the log.
    pub fn name(self) -> &'static str {
        match self {
            History::Decisions => "price decisions",
            History::Marks => "price marks",
            History::Leases => "leases",
            History::Journal => "journal entries",
            History::Commands => "operator commands",
            History::Proxy6Orders => "Proxy6 orders",
            History::OrderEvents => "order events",
            History::Orders => "orders",
            History::Workers => "worker rows",
        }
    }
}

impl Store {
    /// Deletes up to `batch` rows of `what` older than `before_ms`, in one transaction;
    /// returns how many went (fewer than `batch`: nothing older is left).
    pub fn prune_batch(&mut self, what: History, before_ms: u64, batch: u64) -> Result<u64, StoreError> {
        // A row's own handle: SQLite's rowid, PostgreSQL's ctid.
        let row = match self.conn.dialect() {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "ctid",
        };
        let [a, b, c] = rotor_kaspi_model::ORDER_FINAL_STATUSES;
        // (table, row key, the age column its index serves, what else must hold, more values)
        let (table, key, age, filter, more): (&str, &str, &str, &str, Vec<Value>) = match what {
            History::Decisions => ("price_decisions", "id", "at_ms", "", vec![]),
            History::Marks => ("price_marks", row, "at_ms", "", vec![]),
            History::Leases => ("leases", row, "finished_ms", "", vec![]),
            History::Journal => ("journal", "id", "at_ms", "", vec![]),
            History::Commands => ("operator_commands", "id", "at_ms", "", vec![]),
            History::Proxy6Orders => ("proxy6_orders", "tag", "started_ms", "AND state <> 'pending'", vec![]),
            History::OrderEvents => (
                "order_events",
                "seq",
                "at_ms",
                "AND seq <= COALESCE((SELECT seq FROM outbox WHERE name = 'orders_webhook'), seq)
                 AND seq NOT IN (SELECT seq FROM webhook_dead_letters)",
                vec![],
            ),
            History::Orders => (
                "orders",
                "id",
                "stored_ms",
                "AND status IN ($2, $3, $4) AND NOT EXISTS (SELECT 1 FROM order_events e WHERE e.order_id = orders.id)",
                vec![a.into(), b.into(), c.into()],
            ),
            History::Workers => ("workers", "id", "expires_ms", "", vec![]),
        };
        // Oldest first along the age column's index (a leases log of millions is never scanned
        // whole), then by key, so that the two statements of an orders batch pick the same rows.
        // A finished lease has its `finished_ms`; an open one (NULL) is never below the cut.
        // (Parameters are numbered in the order they first appear, as the SQLite side needs.)
        let limit = more.len() + 2;
        let pick = format!(
            "SELECT {key} FROM {table} WHERE {age} < $1 {filter} ORDER BY {age}, {key} LIMIT ${limit}"
        );
        let mut params: Vec<Value> = vec![before_ms.into()];
        params.extend(more);
        params.push(batch.into());
        self.tx(|c| {
            if what == History::Orders {
                c.exec(&format!("DELETE FROM order_entries WHERE order_id IN ({pick})"), &params)?;
            }
            Ok(c.exec(&format!("DELETE FROM {table} WHERE {key} IN ({pick})"), &params)?)
        })
        .map_err(ctx("prune history"))
    }
}
