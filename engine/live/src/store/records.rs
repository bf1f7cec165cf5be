//! The business records: price decisions, orders with their entries, the orders watermark, the
//! catalogue, and the journal of alerts and unfinished requests.

use rotor_engine::{Endpoint, UserId};

use super::error::ctx;
use super::sql::Dialect;
use super::{PriceDecision, Store, StoreError, int, opt_uint, real, text, uint};

/// What the store knows of one of a seller's offers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Whether the seller's last accepted catalogue lists it (on sale or removed from sale).
    pub listed: bool,
    /// Whether it is on sale (`false`: removed from sale, or not listed).
    pub on_sale: bool,
    /// Its current price: the newer of our last push and the cabinet's catalogue.
    pub price: Option<f64>,
    /// Its model (product name) as the cabinet's catalogue has it.
    pub model: Option<String>,
    /// The drop guard's reference: the highest price known for it since the later of the
    /// window's start and the last price set outside rotor or confirmed by an operator, the
    /// current price included.
    pub reference: Option<f64>,
}

/// A catalogue the cabinet answered, as stored: (sku, model, price, on sale).
pub type CatalogRows = [(String, Option<String>, Option<f64>, bool)];

impl Store {
    /// Records a repricing decision; a pushed price becomes the SKU's current price in the same
    /// transaction.
    pub fn record_decision(&mut self, d: &PriceDecision) -> Result<(), StoreError> {
        self.tx(|c| {
            // Decisions become visible in the order of their ids (docs/decisions/event-order.md).
            if c.dialect() == Dialect::Postgres {
                c.batch("LOCK TABLE price_decisions IN SHARE ROW EXCLUSIVE MODE")?;
            }
            c.exec(
                "INSERT INTO price_decisions (at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    d.at_ms.into(),
                    d.user.0.into(),
                    d.sku.as_str().into(),
                    d.old_price.into(),
                    d.new_price.into(),
                    d.competitor_min.into(),
                    d.reason.as_str().into(),
                    d.pushed.into(),
                    d.dry_run.into(),
                ],
            )?;
            if let (true, Some(price)) = (d.pushed, d.new_price) {
                // A push that an operator confirmed restarts the drop guard's budget from it.
                let confirmed = c.query(
                    "SELECT confirmed_ms FROM held_drops WHERE user_id = $1 AND sku = $2 AND confirmed_ms IS NOT NULL",
                    &[d.user.0.into(), d.sku.as_str().into()],
                )?;
                let kind = if confirmed.is_empty() { "pushed" } else { "confirmed" };
                c.exec(
                    "INSERT INTO price_marks (user_id, sku, price, at_ms, kind) VALUES ($1, $2, $3, $4, $5)",
                    &[d.user.0.into(), d.sku.as_str().into(), price.into(), d.at_ms.into(), kind.into()],
                )?;
            }
            // A push, or a price already where the demper wants it, ends any held drop.
            if d.pushed || d.reason == "unchanged" {
                c.exec(
                    "DELETE FROM held_drops WHERE user_id = $1 AND sku = $2",
                    &[d.user.0.into(), d.sku.as_str().into()],
                )?;
            }
            if let (true, Some(price)) = (d.pushed, d.new_price) {
                c.exec(
                    "INSERT INTO current_prices (user_id, sku, price, at_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (user_id, sku) DO UPDATE SET price = excluded.price, at_ms = excluded.at_ms",
                    &[d.user.0.into(), d.sku.as_str().into(), price.into(), d.at_ms.into()],
                )?;
            }
            Ok(())
        })
        .map_err(ctx("record a price decision"))
    }

    /// Every decision, oldest first.
    pub fn decisions(&mut self) -> Result<Vec<PriceDecision>, StoreError> {
        Ok(self.decisions_after(0, 0, u64::MAX >> 1)?.into_iter().map(|(_, d)| d).collect())
    }

    /// Up to `limit` decisions after id `after` (0 for all) and at or after `from_ms`, oldest
    /// first, with their ids (the export's cursor).
    pub fn decisions_after(
        &mut self,
        after: u64,
        from_ms: u64,
        limit: u64,
    ) -> Result<Vec<(u64, PriceDecision)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT at_ms, user_id, sku, old_price, new_price, competitor_min, reason, pushed, dry_run, id
                 FROM price_decisions WHERE id > $1 AND at_ms >= $2 ORDER BY id LIMIT $3",
                &[after.into(), from_ms.into(), limit.into()],
            )
            .map_err(ctx("read decisions"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let d = PriceDecision {
                    at_ms: uint(r, 0),
                    user: UserId(uint(r, 1) as u32),
                    sku: text(r, 2).unwrap_or_default(),
                    old_price: real(r, 3),
                    new_price: real(r, 4),
                    competitor_min: real(r, 5),
                    reason: text(r, 6).unwrap_or_default(),
                    pushed: int(r, 7) != 0,
                    dry_run: int(r, 8) != 0,
                };
                (uint(r, 9), d)
            })
            .collect())
    }

    /// What the store knows of a SKU: whether the catalogue lists it, its current price (the
    /// newer of the price last pushed and the catalogue's: a price changed in the cabinet after
    /// our push wins), the catalogue's model, and the drop guard's reference from `since_ms` on
    /// (see [`Listing::reference`]).
    pub fn listing(&mut self, user: UserId, sku: &str, since_ms: u64) -> Result<Listing, StoreError> {
        let pushed = self
            .conn
            .query(
                "SELECT price, at_ms FROM current_prices WHERE user_id = $1 AND sku = $2",
                &[user.0.into(), sku.into()],
            )
            .map_err(ctx("read the current price"))?;
        let pushed = pushed.first().and_then(|r| Some((real(r, 0)?, uint(r, 1))));
        let listed = self
            .conn
            .query(
                "SELECT price, synced_ms, model, available FROM catalog WHERE user_id = $1 AND sku = $2",
                &[user.0.into(), sku.into()],
            )
            .map_err(ctx("read the catalogue price"))?;
        let row = listed.first();
        let catalogued = row.and_then(|r| real(r, 0).map(|p| (p, uint(r, 1))));
        let price = match (pushed, catalogued) {
            (Some((p, at)), Some((l, synced))) => Some(if synced > at { l } else { p }),
            (Some((p, _)), None) => Some(p),
            (None, Some((l, _))) => Some(l),
            (None, None) => None,
        };
        let marks = self
            .conn
            .query(
                "SELECT price, at_ms, kind FROM price_marks WHERE user_id = $1 AND sku = $2 AND at_ms >= $3",
                &[user.0.into(), sku.into(), since_ms.into()],
            )
            .map_err(ctx("read the price marks"))?;
        let marks: Vec<(f64, u64, String)> =
            marks.iter().filter_map(|r| Some((real(r, 0)?, uint(r, 1), text(r, 2)?))).collect();
        // The budget runs from the last price set outside rotor or confirmed by an operator.
        let start = marks.iter().filter(|m| m.2 != "pushed").map(|m| m.1).max().unwrap_or(since_ms);
        let reference =
            marks.iter().filter(|m| m.1 >= start).map(|m| m.0).chain(price).max_by(f64::total_cmp);
        Ok(Listing {
            listed: row.is_some(),
            on_sale: row.is_some_and(|r| int(r, 3) != 0),
            price,
            model: row.and_then(|r| text(r, 2)),
            reference,
        })
    }

    /// Whether an order is stored.
    pub fn has_order(&mut self, id: &str) -> Result<bool, StoreError> {
        let rows = self
            .conn
            .query("SELECT id FROM orders WHERE id = $1", &[id.into()])
            .map_err(ctx("look up an order"))?;
        Ok(!rows.is_empty())
    }

    /// Stored order ids with their entry counts, in id order.
    pub fn orders(&mut self) -> Result<Vec<(String, u32)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT o.id, (SELECT COUNT(*) FROM order_entries e WHERE e.order_id = o.id) FROM orders o ORDER BY o.id", &[])
            .map_err(ctx("read orders"))?;
        Ok(rows.iter().map(|r| (text(r, 0).unwrap_or_default(), uint(r, 1) as u32)).collect())
    }

    /// Up to when `user`'s orders are known complete (the end of the last full poll's window).
    pub fn orders_synced(&mut self, user: UserId) -> Result<Option<u64>, StoreError> {
        let rows = self
            .conn
            .query("SELECT synced_ms FROM order_sync WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("read the orders watermark"))?;
        Ok(rows.first().and_then(|r| opt_uint(r, 0)))
    }

    /// Records that every order of `user` created up to `synced_ms` is stored.
    pub fn set_orders_synced(&mut self, user: UserId, synced_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO order_sync (user_id, synced_ms) VALUES ($1, $2)
                 ON CONFLICT (user_id) DO UPDATE SET synced_ms = excluded.synced_ms",
                &[user.0.into(), synced_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("move the orders watermark"))
    }

    /// Replaces `user`'s catalogue with one that passed its checks, and records when and how
    /// many offers it held. A listed price that rotor did not push (the seller changed it, or it
    /// is the first seen) is a price mark: the drop guard's budget starts again from it.
    pub fn store_catalog(&mut self, user: UserId, rows: &CatalogRows, now_ms: u64) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec("DELETE FROM catalog WHERE user_id = $1", &[user.0.into()])?;
            for (sku, model, price, available) in rows {
                c.exec(
                    "INSERT INTO catalog (user_id, sku, model, price, available, synced_ms) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (user_id, sku) DO UPDATE SET model = excluded.model, price = excluded.price,
                     available = excluded.available",
                    &[user.0.into(), sku.as_str().into(), model.clone().into(), (*price).into(), (*available).into(), now_ms.into()],
                )?;
                let Some(price) = price.filter(|_| *available) else { continue };
                let known = c.query(
                    "SELECT kind FROM price_marks WHERE user_id = $1 AND sku = $2 AND price > $3 AND price < $4
                     AND (kind = 'pushed' OR at_ms = (SELECT MAX(at_ms) FROM price_marks WHERE user_id = $1 AND sku = $2))",
                    &[user.0.into(), sku.as_str().into(), (price - 0.005).into(), (price + 0.005).into()],
                )?;
                if known.is_empty() {
                    c.exec(
                        "INSERT INTO price_marks (user_id, sku, price, at_ms, kind) VALUES ($1, $2, $3, $4, 'catalog')",
                        &[user.0.into(), sku.as_str().into(), price.into(), now_ms.into()],
                    )?;
                }
            }
            c.exec(
                "INSERT INTO catalog_sync (user_id, synced_ms, offers) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET synced_ms = excluded.synced_ms, offers = excluded.offers",
                &[user.0.into(), now_ms.into(), (rows.len() as u64).into()],
            )?;
            Ok(())
        })
        .map_err(ctx("store the catalogue"))
    }

    /// When `user`'s last accepted catalogue was stored and how many offers it held.
    pub fn catalog_synced(&mut self, user: UserId) -> Result<Option<(u64, u64)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT synced_ms, offers FROM catalog_sync WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("read the catalogue's sync"))?;
        Ok(rows.first().map(|r| (uint(r, 0), uint(r, 1))))
    }

    /// How many catalogue rows `user` has.
    pub fn catalog_len(&mut self, user: UserId) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM catalog WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("count the catalogue"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0) as u32))
    }

    /// Appends to the journal (`unfinished` requests at shutdown, `alert`s).
    pub fn journal(&mut self, kind: &str, detail: &str, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO journal (at_ms, kind, detail) VALUES ($1, $2, $3)",
                &[now_ms.into(), kind.into(), detail.into()],
            )
            .map(|_| ())
            .map_err(ctx("write the journal"))
    }

    /// Journal entries of `kind`, oldest first.
    pub fn journal_entries(&mut self, kind: &str) -> Result<Vec<String>, StoreError> {
        let rows = self
            .conn
            .query("SELECT detail FROM journal WHERE kind = $1 ORDER BY id", &[kind.into()])
            .map_err(ctx("read the journal"))?;
        Ok(rows.iter().filter_map(|r| text(r, 0)).collect())
    }

    /// Records that `user` may not call `endpoint` before `until_ms` (kept if later than the
    /// stored one).
    pub fn set_cooldown(
        &mut self,
        user: UserId,
        endpoint: Endpoint,
        until_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO account_cooldowns (user_id, endpoint, until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, endpoint) DO UPDATE SET until_ms =
                 CASE WHEN account_cooldowns.until_ms > excluded.until_ms THEN account_cooldowns.until_ms ELSE excluded.until_ms END",
                &[user.0.into(), endpoint.name().into(), until_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("record an account cooldown"))
    }

    /// The account cooldowns still running at `now_ms`: (user, endpoint, until).
    pub fn cooldowns(&mut self, now_ms: u64) -> Result<Vec<(UserId, Endpoint, u64)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT user_id, endpoint, until_ms FROM account_cooldowns WHERE until_ms > $1 ORDER BY user_id, endpoint",
                &[now_ms.into()],
            )
            .map_err(ctx("read account cooldowns"))?;
        rows.iter()
            .map(|r| {
                let name = text(r, 1).unwrap_or_default();
                let endpoint: Endpoint = name.parse().map_err(|_| StoreError::Corrupt {
                    what: "read account cooldowns",
                    message: format!("endpoint {name:?}"),
                })?;
                Ok((UserId(uint(r, 0) as u32), endpoint, uint(r, 2)))
            })
            .collect()
    }
}
