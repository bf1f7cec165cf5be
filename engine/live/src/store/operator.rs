//! What an operator decides through `rotor ctl`, kept in the store so that every worker sees it:
//! price drops held for confirmation, drained sellers, and the commands (revive, retire) each
//! worker applies to its own engine in order.

use std::collections::BTreeSet;

use rotor_engine::{ProxyId, UserId};

use super::allocations::unallocate;
use super::error::{Abort, ctx};
use super::{Store, StoreError, int, opt_uint, real, text, uint};

/// A price drop waiting for an operator's confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldDrop {
    /// The seller.
    pub user: UserId,
    /// The SKU.
    pub sku: String,
    /// The price the drop is measured from (the guard's reference), `None` when the current
    /// price could not be read.
    pub from_price: Option<f64>,
    /// The price the demper asked for (the lowest since the hold began).
    pub to_price: f64,
    /// When it was first held.
    pub since_ms: u64,
    /// When `rotor ctl confirm` confirmed it, if it did.
    pub confirmed_ms: Option<u64>,
}

/// Where a large price drop stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropGate {
    /// An operator confirmed a drop to this price or lower: push it.
    Confirmed,
    /// Held from now on (first seen, or asked lower than what was confirmed).
    Held,
    /// Still held, as before.
    StillHeld,
}

/// What `rotor ctl confirm` confirms: named SKUs, or every held drop of the seller as the
/// operator saw them (the set's version from `rotor ctl status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm<'a> {
    /// These SKUs' held drops, each as held now.
    Skus(&'a [String]),
    /// Every held drop of the seller, if the held set is still the one with this version.
    All(&'a str),
}

/// The version of a seller's held drops: a digest of each SKU, its reference and the price
/// asked, so that a confirmation of "all" confirms exactly what the operator looked at.
pub fn held_version(drops: &[HeldDrop]) -> String {
    // FNV-1a: stable across builds and processes, which a std hasher does not promise.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut sorted: Vec<&HeldDrop> = drops.iter().collect();
    sorted.sort_by(|a, b| a.sku.cmp(&b.sku));
    for d in sorted {
        let text = format!(
            "{}|{:?}|{}\n",
            d.sku,
            d.from_price.map(|p| (p * 100.0).round()),
            (d.to_price * 100.0).round()
        );
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:08x}", h >> 32)
}

/// A command for the workers' engines, applied by each in id order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// A dead proxy may carry again, after a rest.
    Revive(ProxyId),
    /// A proxy is taken out of service for good.
    Retire(ProxyId),
}

impl Store {
    /// The gate before a drop from `from` to `to` larger than the configured share: confirmed
    /// if an operator confirmed a drop to `to` or lower, so the push may go. Otherwise the drop
    /// is held (a price asked lower than the held one needs a new confirmation).
    pub fn drop_confirmed(
        &mut self,
        user: UserId,
        sku: &str,
        (from, to): (Option<f64>, f64),
        now_ms: u64,
    ) -> Result<DropGate, StoreError> {
        self.tx(|c| {
            let rows = c.query(
                "SELECT to_price, confirmed_ms FROM held_drops WHERE user_id = $1 AND sku = $2",
                &[user.0.into(), sku.into()],
            )?;
            let held = rows.first().map(|r| (real(r, 0).unwrap_or(f64::MAX), opt_uint(r, 1)));
            match held {
                Some((asked, Some(_))) if to >= asked - 0.005 => Ok(DropGate::Confirmed),
                Some((asked, _)) if to >= asked - 0.005 => Ok(DropGate::StillHeld),
                Some(_) => {
                    c.exec(
                        "UPDATE held_drops SET to_price = $1, confirmed_ms = NULL WHERE user_id = $2 AND sku = $3",
                        &[to.into(), user.0.into(), sku.into()],
                    )?;
                    Ok(DropGate::Held)
                }
                None => {
                    c.exec(
                        "INSERT INTO held_drops (user_id, sku, from_price, to_price, since_ms, from_known) VALUES ($1, $2, $3, $4, $5, $6)",
                        &[user.0.into(), sku.into(), from.unwrap_or(0.0).into(), to.into(), now_ms.into(), from.is_some().into()],
                    )?;
                    Ok(DropGate::Held)
                }
            }
        })
        .map_err(ctx("hold a price drop"))
    }

    /// Confirms `user`'s held drops, as `what` names them, in one transaction: every named SKU
    /// must be held, and "all" must name the held set's current version; otherwise nothing is
    /// confirmed and the inner error says why. Returns the drops confirmed.
    pub fn confirm_drops(
        &mut self,
        user: UserId,
        what: Confirm<'_>,
        now_ms: u64,
    ) -> Result<Result<Vec<HeldDrop>, String>, StoreError> {
        let result = self.tx(|c| {
            let held: Vec<HeldDrop> =
                held_rows(&c.query(&format!("{HELD_SELECT} WHERE user_id = $1 ORDER BY sku"), &[user.0.into()])?);
            let chosen: Vec<HeldDrop> = match what {
                Confirm::All(version) => {
                    let now = held_version(&held);
                    if held.is_empty() {
                        return Ok(Err(format!("user {user}: no held price drop; `rotor ctl status` lists them")));
                    }
                    if now != version {
                        return Ok(Err(format!(
                            "user {user}: the held drops changed since version {version} (now {now}); \
                             look again with `rotor ctl status`"
                        )));
                    }
                    held
                }
                Confirm::Skus(skus) => {
                    let mut out = Vec::new();
                    for sku in skus {
                        match held.iter().find(|h| &h.sku == sku) {
                            Some(h) => out.push(h.clone()),
                            None => {
                                return Ok(Err(format!(
                                    "user {user}: no held price drop for SKU {sku}; `rotor ctl status` lists them"
                                )));
                            }
                        }
                    }
                    out
                }
            };
            for h in &chosen {
                // Confirmed at the price asked: a lower one needs a new confirmation.
                c.exec(
                    "UPDATE held_drops SET confirmed_ms = $1 WHERE user_id = $2 AND sku = $3 AND to_price = $4",
                    &[now_ms.into(), user.0.into(), h.sku.as_str().into(), h.to_price.into()],
                )?;
            }
            Ok(Ok(chosen))
        });
        result.map_err(ctx("confirm price drops"))
    }

    /// Proxies recorded from the config (not bought), dead or alive, in id order.
    pub fn config_proxies(&mut self) -> Result<Vec<ConfigRow>, StoreError> {
        let rows = self
            .conn
            .query("SELECT id, url, dead, dead_reason FROM proxies WHERE source = 'config' ORDER BY id", &[])
            .map_err(ctx("read configured proxies"))?;
        Ok(rows
            .iter()
            .map(|r| ConfigRow {
                id: ProxyId(uint(r, 0) as u32),
                url: text(r, 1).unwrap_or_default(),
                dead: int(r, 2) != 0,
                dead_reason: text(r, 3),
            })
            .collect())
    }

    /// How many held drops wait for an operator's confirmation.
    pub fn held_drops_waiting(&mut self) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM held_drops WHERE confirmed_ms IS NULL", &[])
            .map_err(ctx("count held drops"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }

    /// Every held drop, by seller and SKU.
    pub fn held_drops(&mut self) -> Result<Vec<HeldDrop>, StoreError> {
        let rows = self
            .conn
            .query(&format!("{HELD_SELECT} ORDER BY user_id, sku"), &[])
            .map_err(ctx("read held drops"))?;
        Ok(held_rows(&rows))
    }

    /// Drains `user` (no worker serves it) or resumes it.
    pub fn set_drained(&mut self, user: UserId, drained: bool, now_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO seller_controls (user_id, drained, changed_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET drained = excluded.drained, changed_ms = excluded.changed_ms",
                &[user.0.into(), drained.into(), now_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("drain a seller"))
    }

    /// The sellers an operator drained.
    pub fn drained(&mut self) -> Result<BTreeSet<UserId>, StoreError> {
        let rows = self
            .conn
            .query("SELECT user_id FROM seller_controls WHERE drained = 1", &[])
            .map_err(ctx("read drained sellers"))?;
        Ok(rows.iter().map(|r| UserId(uint(r, 0) as u32)).collect())
    }

    /// Gives a drained seller's proxies back to the pool: an open lease is spent, its proxy
    /// resting until at least `rest_until_ms`. Refused (`Conflict`) unless the seller is
    /// drained and no worker holds its lanes. Returns how many proxies went back.
    pub fn release_seller(
        &mut self,
        user: UserId,
        now_ms: u64,
        rest_until_ms: u64,
    ) -> Result<u64, StoreError> {
        self.tx(|c| {
            let drained = c.query(
                "SELECT 1 FROM seller_controls WHERE user_id = $1 AND drained = 1",
                &[user.0.into()],
            )?;
            let held = c.query(
                "SELECT owner FROM lane_leases WHERE user_id = $1 AND owner <> '' AND expires_ms >= $2",
                &[user.0.into(), now_ms.into()],
            )?;
            if drained.is_empty() || !held.is_empty() {
                return Err(Abort::Held);
            }
            let n = c.query("SELECT COUNT(*) FROM allocations WHERE user_id = $1", &[user.0.into()])?;
            unallocate(c, user, now_ms, rest_until_ms, "released")?;
            Ok(n.first().map_or(0, |r| uint(r, 0)))
        })
        .map_err(|e| match e {
            Abort::Held => StoreError::Conflict {
                what: "release a seller",
                message: format!(
                    "user {user} is served or not drained; run `rotor ctl drain {}` and wait until no worker holds its lanes",
                    user.0
                ),
            },
            other => other.during("release a seller"),
        })
    }

    /// Revives a dead proxy in the store (it rests until at least `rest_until_ms` first) and
    /// tells every worker. False if it was not dead.
    pub fn revive_proxy(&mut self, id: ProxyId, rest_until_ms: u64, now_ms: u64) -> Result<bool, StoreError> {
        self.tx(|c| {
            let n = c.exec(
                "UPDATE proxies SET dead = 0, dead_reason = NULL WHERE id = $1 AND dead = 1",
                &[id.0.into()],
            )?;
            if n == 0 {
                return Ok(false);
            }
            c.exec(
                "UPDATE proxy_state SET rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE proxy_id = $2",
                &[rest_until_ms.into(), id.0.into()],
            )?;
            issue(c, "revive", id, now_ms)?;
            Ok(true)
        })
        .map_err(ctx("revive a proxy"))
    }

    /// Retires a proxy for good (dead, for `reason`) and tells every worker. False if it was
    /// dead already.
    pub fn retire_proxy(&mut self, id: ProxyId, reason: &str, now_ms: u64) -> Result<bool, StoreError> {
        self.tx(|c| {
            let n = c.exec(
                "UPDATE proxies SET dead = 1, dead_reason = $1 WHERE id = $2 AND dead = 0",
                &[reason.into(), id.0.into()],
            )?;
            if n == 0 {
                return Ok(false);
            }
            issue(c, "retire", id, now_ms)?;
            Ok(true)
        })
        .map_err(ctx("retire a proxy"))
    }

    /// Workers with a heartbeat row: (id, alive until).
    pub fn workers(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT id, expires_ms FROM workers ORDER BY id", &[])
            .map_err(ctx("read workers"))?;
        Ok(rows.iter().map(|r| (text(r, 0).unwrap_or_default(), uint(r, 1))).collect())
    }

    /// Each seller's lane owner (its demper lane's): (user, owner, lease until, token).
    pub fn lane_owners(&mut self) -> Result<Vec<(UserId, String, u64)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT user_id, owner, expires_ms FROM lane_leases WHERE module = 'demper' ORDER BY user_id",
                &[],
            )
            .map_err(ctx("read lane owners"))?;
        Ok(rows
            .iter()
            .map(|r| (UserId(uint(r, 0) as u32), text(r, 1).unwrap_or_default(), uint(r, 2)))
            .collect())
    }

    /// How many leases each proxy has had (index = proxy id; proxies without any are absent
    /// or 0).
    pub fn lease_counts(&mut self) -> Result<std::collections::BTreeMap<ProxyId, u64>, StoreError> {
        let rows = self
            .conn
            // A proxy's leases are numbered from 1: the last one's number is the count, kept
            // with its state (the usage log itself is pruned, and too long to count).
            .query("SELECT proxy_id, lease_no FROM proxy_state", &[])
            .map_err(ctx("count leases"))?;
        Ok(rows.iter().map(|r| (ProxyId(uint(r, 0) as u32), uint(r, 1))).collect())
    }

    /// Commands issued after `after` (an id; 0 for all), in order, with their ids.
    pub fn commands_after(&mut self, after: u64) -> Result<Vec<(u64, Command)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT id, kind, target FROM operator_commands WHERE id > $1 ORDER BY id",
                &[after.into()],
            )
            .map_err(ctx("read operator commands"))?;
        rows.iter()
            .map(|r| {
                let target = ProxyId(uint(r, 2) as u32);
                let command = match text(r, 1).as_deref() {
                    Some("revive") => Command::Revive(target),
                    Some("retire") => Command::Retire(target),
                    other => {
                        return Err(Abort::Corrupt(format!("an operator command is {other:?}"))
                            .during("read operator commands"));
                    }
                };
                Ok((uint(r, 0), command))
            })
            .collect()
    }

    /// The id of the newest command (0 if none): a starting worker's state already holds it.
    pub fn last_command(&mut self) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT MAX(id) FROM operator_commands", &[])
            .map_err(ctx("read operator commands"))?;
        Ok(rows.first().and_then(|r| opt_uint(r, 0)).unwrap_or(0))
    }
}

fn issue(c: &mut dyn super::sql::Conn, kind: &str, id: ProxyId, now_ms: u64) -> Result<(), Abort> {
    c.exec(
        "INSERT INTO operator_commands (at_ms, kind, target) VALUES ($1, $2, $3)",
        &[now_ms.into(), kind.into(), id.0.into()],
    )?;
    Ok(())
}

const HELD_SELECT: &str =
    "SELECT user_id, sku, from_price, to_price, since_ms, confirmed_ms, from_known FROM held_drops";

fn held_rows(rows: &[super::Row]) -> Vec<HeldDrop> {
    rows.iter()
        .map(|r| HeldDrop {
            user: UserId(uint(r, 0) as u32),
            sku: text(r, 1).unwrap_or_default(),
            from_price: (int(r, 6) != 0).then(|| real(r, 2).unwrap_or(0.0)),
            to_price: real(r, 3).unwrap_or(0.0),
            since_ms: uint(r, 4),
            confirmed_ms: opt_uint(r, 5),
        })
        .collect()
}

/// A proxy recorded from the config, as the config reconcile sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRow {
    /// Its id.
    pub id: ProxyId,
    /// Its URL.
    pub url: String,
    /// Whether it is dead or retired.
    pub dead: bool,
    /// Why.
    pub dead_reason: Option<String>,
}
