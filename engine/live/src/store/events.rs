//! Orders as they are stored and changed, and the append-only log of their events (`new`,
//! `changed`) that the JSON Lines export and the webhook hand on; the webhook's cursor.

use rotor_engine::UserId;

use super::error::ctx;
use super::sql::Dialect;
use super::{Entry, NewOrder, Store, StoreError, opt_uint, real, text, uint};

/// What storing a listed order did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderWrite {
    /// It was new: stored with its entries, and a `new` event logged.
    New,
    /// It was known and its state or status changed: updated, and a `changed` event logged.
    Changed,
    /// Known, and unchanged.
    Same,
}

/// One event of the order log, with the order as it stands now.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderEvent {
    /// Its place in the log: the export's cursor and the webhook's idempotency key.
    pub seq: u64,
    /// `new` or `changed`.
    pub kind: String,
    /// When it was logged (epoch ms).
    pub at_ms: u64,
    /// The seller.
    pub user: UserId,
    /// The state and status the event saw.
    pub state: Option<String>,
    /// The lifecycle status the event saw.
    pub status: Option<String>,
    /// The order as stored now (its entries included).
    pub order: NewOrder,
}

impl Store {
    /// Stores a new order with its entries and a `new` event, in one transaction; or, for a
    /// known one, records a change of state or status with a `changed` event.
    pub fn write_order(&mut self, user: UserId, o: &NewOrder, now_ms: u64) -> Result<OrderWrite, StoreError> {
        self.tx(|c| {
            let n = c.exec(
                "INSERT INTO orders (id, user_id, code, state, status, total_price, creation_ms, stored_ms,
                 delivery_mode, pickup_point, planned_delivery_ms, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING",
                &[
                    o.id.as_str().into(),
                    user.0.into(),
                    o.code.as_str().into(),
                    o.state.clone().into(),
                    o.status.clone().into(),
                    o.total_price.into(),
                    o.creation_ms.into(),
                    now_ms.into(),
                    o.delivery_mode.clone().into(),
                    o.pickup_point.clone().into(),
                    o.planned_delivery_ms.into(),
                    now_ms.into(),
                ],
            )?;
            let kind = if n == 1 {
                for (i, (sku, name, qty, price)) in o.entries.iter().enumerate() {
                    c.exec(
                        "INSERT INTO order_entries (order_id, entry_no, sku, name, quantity, base_price) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[o.id.as_str().into(), (i as u64).into(), sku.clone().into(), name.clone().into(), (*qty).into(), (*price).into()],
                    )?;
                }
                OrderWrite::New
            } else {
                let changed = c.exec(
                    "UPDATE orders SET state = $1, status = $2, planned_delivery_ms = $3, updated_ms = $4
                     WHERE id = $5 AND (state IS DISTINCT FROM $1 OR status IS DISTINCT FROM $2)",
                    &[
                        o.state.clone().into(),
                        o.status.clone().into(),
                        o.planned_delivery_ms.into(),
                        now_ms.into(),
                        o.id.as_str().into(),
                    ],
                )?;
                if changed == 0 {
                    return Ok(OrderWrite::Same);
                }
                OrderWrite::Changed
            };
            // Events become visible in the order of their numbers (docs/decisions/event-order.md):
            // on PostgreSQL a sequence value is taken when the row is inserted but seen when its
            // transaction commits, so writers take their numbers one at a time, each holding
            // the lock until it commits.
            if c.dialect() == Dialect::Postgres {
                c.batch("LOCK TABLE order_events IN SHARE ROW EXCLUSIVE MODE")?;
            }
            c.exec(
                "INSERT INTO order_events (order_id, user_id, at_ms, kind, state, status) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    o.id.as_str().into(),
                    user.0.into(),
                    now_ms.into(),
                    (if kind == OrderWrite::New { "new" } else { "changed" }).into(),
                    o.state.clone().into(),
                    o.status.clone().into(),
                ],
            )?;
            Ok(kind)
        })
        .map_err(ctx("store an order"))
    }

    /// Up to `limit` events after `after` (a seq; 0 for all) and at or after `from_ms`, in log
    /// order, each with its order as stored now.
    pub fn order_events(
        &mut self,
        after: u64,
        from_ms: u64,
        limit: u64,
    ) -> Result<Vec<OrderEvent>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT e.seq, e.kind, e.at_ms, e.user_id, e.state, e.status,
                        o.id, o.code, o.state, o.status, o.total_price, o.creation_ms, o.delivery_mode,
                        o.pickup_point, o.planned_delivery_ms
                 FROM order_events e JOIN orders o ON o.id = e.order_id
                 WHERE e.seq > $1 AND e.at_ms >= $2 ORDER BY e.seq LIMIT $3",
                &[after.into(), from_ms.into(), limit.into()],
            )
            .map_err(ctx("read order events"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id = text(r, 6).unwrap_or_default();
            let entries = self.entries_of(&id)?;
            out.push(OrderEvent {
                seq: uint(r, 0),
                kind: text(r, 1).unwrap_or_default(),
                at_ms: uint(r, 2),
                user: UserId(uint(r, 3) as u32),
                state: text(r, 4),
                status: text(r, 5),
                order: NewOrder {
                    id,
                    code: text(r, 7).unwrap_or_default(),
                    state: text(r, 8),
                    status: text(r, 9),
                    total_price: real(r, 10),
                    creation_ms: uint(r, 11),
                    delivery_mode: text(r, 12),
                    pickup_point: text(r, 13),
                    planned_delivery_ms: opt_uint(r, 14),
                    entries,
                },
            });
        }
        Ok(out)
    }

    fn entries_of(&mut self, order: &str) -> Result<Vec<Entry>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT sku, name, quantity, base_price FROM order_entries WHERE order_id = $1 ORDER BY entry_no",
                &[order.into()],
            )
            .map_err(ctx("read order entries"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    text(r, 0),
                    text(r, 1),
                    Some(super::int(r, 2)).filter(|_| opt_uint(r, 2).is_some()),
                    real(r, 3),
                )
            })
            .collect())
    }

    /// Up to `limit` of `user`'s orders created before `before_ms` whose status is not final
    /// (`rotor_kaspi_model::ORDER_FINAL_STATUSES`), least recently looked at first: the ones a
    /// poll follows by id. Their ids.
    pub fn open_orders(
        &mut self,
        user: UserId,
        before_ms: u64,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let [a, b, c] = rotor_kaspi_model::ORDER_FINAL_STATUSES;
        let rows = self
            .conn
            .query(
                "SELECT id FROM orders WHERE user_id = $1 AND creation_ms < $2
                 AND (status IS NULL OR status NOT IN ($3, $4, $5))
                 ORDER BY COALESCE(checked_ms, 0), creation_ms, id LIMIT $6",
                &[user.0.into(), before_ms.into(), a.into(), b.into(), c.into(), limit.into()],
            )
            .map_err(ctx("read open orders"))?;
        Ok(rows.iter().filter_map(|r| text(r, 0)).collect())
    }

    /// Records that order `id` was looked at by itself at `now_ms`.
    pub fn order_checked(&mut self, id: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec("UPDATE orders SET checked_ms = $1 WHERE id = $2", &[now_ms.into(), id.into()])
            .map(|_| ())
            .map_err(ctx("record an order's check"))
    }

    /// Whether this connection may deliver the order log now: on PostgreSQL one worker at a
    /// time holds a session lock for it (freed with its connection, so another takes over);
    /// SQLite has one process.
    pub fn hold_outbox(&mut self) -> Result<bool, StoreError> {
        if self.conn.dialect() == Dialect::Sqlite {
            return Ok(true);
        }
        let rows = self
            .conn
            .query("SELECT pg_try_advisory_lock(7272002)", &[])
            .map_err(ctx("take the outbox lock"))?;
        Ok(rows.first().is_some_and(|r| super::int(r, 0) != 0))
    }

    /// How far the consumer `name` has taken its log (0: nothing yet).
    pub fn outbox_cursor(&mut self, name: &str) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT seq FROM outbox WHERE name = $1", &[name.into()])
            .map_err(ctx("read an outbox cursor"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }

    /// Records that `name` has taken its log up to `seq`.
    pub fn set_outbox_cursor(&mut self, name: &str, seq: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO outbox (name, seq) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
                &[name.into(), seq.into()],
            )
            .map(|_| ())
            .map_err(ctx("move an outbox cursor"))
    }
}
