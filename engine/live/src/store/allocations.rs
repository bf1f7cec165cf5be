//! Which proxies serve which seller's lanes: allocations taken all or nothing, replacements
//! for dead proxies, and subscriptions ended.

use rotor_engine::{Module, ProxyId, Split, UserId};

use super::error::{Abort, ctx};
use super::sql::{Conn, DbError, Dialect, Fault};
use super::{Store, StoreError, opt_uint, text, uint};

impl Store {
    /// Allocates `split` of free, live, unexpired proxies to `user` in one transaction, all or
    /// nothing: the readiest first (shortest rest), locked with `FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL so that concurrent allocations take different proxies. `None`: too few free.
    pub fn allocate(
        &mut self,
        user: UserId,
        split: Split,
        now_ms: u64,
    ) -> Result<Option<[Vec<ProxyId>; 4]>, StoreError> {
        let total = split.total();
        retry_on_conflict(|| {
            self.tx(|c| {
            let picked = pick_free(c, total, now_ms)?;
            let mut ids = picked.into_iter();
            let mut by_module: [Vec<ProxyId>; 4] = Default::default();
            for m in Module::ALL {
                for id in ids.by_ref().take(split.get(m) as usize) {
                    c.exec(
                        "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                        &[id.0.into(), user.0.into(), m.name().into(), now_ms.into()],
                    )?;
                    by_module[m.index()].push(id);
                }
            }
            Ok(by_module)
        })
        })
        .map(Some)
        .or_else(|e| if matches!(e, Abort::Short) { Ok(None) } else { Err(e.during("allocate")) })
    }

    /// Moves `dead` out of `user`'s `module` lane and gives it as many free proxies, in one
    /// transaction, all or nothing (locked as in [`Store::allocate`]). `None`: too few free.
    pub fn replace(
        &mut self,
        user: UserId,
        module: Module,
        dead: &[ProxyId],
        now_ms: u64,
    ) -> Result<Option<Vec<ProxyId>>, StoreError> {
        retry_on_conflict(|| {
            self.tx(|c| {
                let picked = pick_free(c, dead.len() as u64, now_ms)?;
                for id in dead {
                    c.exec(
                        "DELETE FROM allocations WHERE proxy_id = $1 AND user_id = $2",
                        &[id.0.into(), user.0.into()],
                    )?;
                }
                let fresh = picked;
                for id in &fresh {
                    c.exec(
                    "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                    &[id.0.into(), user.0.into(), module.name().into(), now_ms.into()],
                )?;
                }
                Ok(fresh)
            })
        })
        .map(Some)
        .or_else(|e| if matches!(e, Abort::Short) { Ok(None) } else { Err(e.during("replace dead proxies")) })
    }

    /// Adds `n` free proxies to `user`'s `module` lane, all or nothing (locked as in
    /// [`Store::allocate`]). `None`: too few free.
    pub fn grow(
        &mut self,
        user: UserId,
        module: Module,
        n: u64,
        now_ms: u64,
    ) -> Result<Option<Vec<ProxyId>>, StoreError> {
        retry_on_conflict(|| {
            self.tx(|c| {
                let picked = pick_free(c, n, now_ms)?;
                for id in &picked {
                    c.exec(
                        "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                        &[id.0.into(), user.0.into(), module.name().into(), now_ms.into()],
                    )?;
                }
                Ok(picked)
            })
        })
        .map(Some)
        .or_else(|e| if matches!(e, Abort::Short) { Ok(None) } else { Err(e.during("grow a lane")) })
    }

    /// Takes `ids` from `user`: a lease still open on one of them is spent (it rests until at
    /// least `rest_until_ms`).
    pub fn shrink(
        &mut self,
        user: UserId,
        ids: &[ProxyId],
        now_ms: u64,
        rest_until_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            for id in ids {
                c.exec(
                    "UPDATE leases SET finished_ms = $1, closed_by = 'shrunk' WHERE finished_ms IS NULL AND proxy_id = $2
                     AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id
                     AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
                    &[now_ms.into(), id.0.into()],
                )?;
                c.exec(
                    "UPDATE proxy_state SET lease_open = 0,
                     rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                     WHERE lease_open = 1 AND proxy_id = $2",
                    &[rest_until_ms.into(), id.0.into()],
                )?;
                c.exec(
                    "DELETE FROM allocations WHERE proxy_id = $1 AND user_id = $2",
                    &[id.0.into(), user.0.into()],
                )?;
            }
            Ok(())
        })
        .map_err(ctx("shrink a lane"))
    }

    /// Live, unexpired proxies no seller holds, no lease keeps open and no calibration holds:
    /// what an allocation could take.
    pub fn free_count(&mut self, now_ms: u64) -> Result<u32, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT COUNT(*) FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id
                 WHERE p.dead = 0 AND s.lease_open = 0 AND s.held_until_ms <= $1
                 AND (p.expires_ms IS NULL OR p.expires_ms = 0 OR p.expires_ms > $1)
                 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = p.id)",
                &[now_ms.into()],
            )
            .map_err(ctx("count free proxies"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0) as u32))
    }

    /// Records `user`'s proxies per module, replacing what it had.
    pub fn set_allocation(
        &mut self,
        user: UserId,
        by_module: &[(Module, Vec<ProxyId>)],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            c.exec("DELETE FROM allocations WHERE user_id = $1", &[user.0.into()])?;
            for (module, ids) in by_module {
                for id in ids {
                    c.exec(
                        "INSERT INTO allocations (proxy_id, user_id, module, since_ms) VALUES ($1, $2, $3, $4)",
                        &[id.0.into(), user.0.into(), module.name().into(), now_ms.into()],
                    )?;
                }
            }
            Ok(())
        })
        .map_err(ctx("record an allocation"))
    }

    /// `user`'s allocation, per module.
    pub fn allocation_of(&mut self, user: UserId) -> Result<[Vec<ProxyId>; 4], StoreError> {
        let mut out: [Vec<ProxyId>; 4] = Default::default();
        for (p, u, m) in self.allocations()? {
            if u == user {
                out[m.index()].push(p);
            }
        }
        Ok(out)
    }

    /// Every allocation: (proxy, user, module).
    pub fn allocations(&mut self) -> Result<Vec<(ProxyId, UserId, Module)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT proxy_id, user_id, module FROM allocations ORDER BY user_id, module, since_ms, proxy_id", &[])
            .map_err(ctx("read allocations"))?;
        rows.iter()
            .map(|r| {
                let name = text(r, 2).unwrap_or_default();
                let module: Module = name.parse().map_err(|_| {
                    Abort::Corrupt(format!("an allocation row names module {name:?}"))
                        .during("read allocations")
                })?;
                Ok((ProxyId(uint(r, 0) as u32), UserId(uint(r, 1) as u32), module))
            })
            .collect()
    }

    /// Frees `user`'s proxies and records that its subscription ended. A lease still open on
    /// one of them (a request may be in flight) is spent in the same transaction: the proxy
    /// rests until at least `rest_until_ms`, so no allocation can take it as fresh while that
    /// request is on the wire (the owner's later completion only lengthens the rest).
    pub fn free_user(&mut self, user: UserId, now_ms: u64, rest_until_ms: u64) -> Result<(), StoreError> {
        self.tx(|c| {
            unallocate(c, user, now_ms, rest_until_ms, "freed")?;
            c.exec(
                "INSERT INTO subscriptions (user_id, freed_ms) VALUES ($1, $2) ON CONFLICT (user_id) DO UPDATE SET freed_ms = excluded.freed_ms",
                &[user.0.into(), now_ms.into()],
            )?;
            Ok(())
        })
        .map_err(ctx("free a user"))
    }

    /// Whether `user`'s subscription was already ended and its proxies freed.
    pub fn user_freed(&mut self, user: UserId) -> Result<bool, StoreError> {
        let rows = self
            .conn
            .query("SELECT freed_ms FROM subscriptions WHERE user_id = $1", &[user.0.into()])
            .map_err(ctx("read a subscription"))?;
        Ok(rows.first().is_some_and(|r| opt_uint(r, 0).is_some()))
    }
}

/// Takes every proxy from `user`, in transaction `c`. A lease still open on one of them is
/// closed as `closed_by` and its proxy rests until at least `rest_until_ms`.
pub(super) fn unallocate(
    c: &mut dyn Conn,
    user: UserId,
    now_ms: u64,
    rest_until_ms: u64,
    closed_by: &str,
) -> Result<(), Abort> {
    c.exec(
        "UPDATE leases SET finished_ms = $1, closed_by = $2 WHERE finished_ms IS NULL
         AND proxy_id IN (SELECT proxy_id FROM allocations WHERE user_id = $3)
         AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id
         AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
        &[now_ms.into(), closed_by.into(), user.0.into()],
    )?;
    c.exec(
        "UPDATE proxy_state SET lease_open = 0,
         rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
         WHERE lease_open = 1 AND proxy_id IN (SELECT proxy_id FROM allocations WHERE user_id = $2)",
        &[rest_until_ms.into(), user.0.into()],
    )?;
    c.exec("DELETE FROM allocations WHERE user_id = $1", &[user.0.into()])?;
    Ok(())
}

/// Picks `n` free, live, unexpired proxies whose last lease is closed, the readiest first
/// (shortest rest), locking them on
/// PostgreSQL with `FOR UPDATE SKIP LOCKED` so that a concurrent transaction takes others.
/// [`Abort::Short`] when fewer are free.
fn pick_free(c: &mut dyn Conn, n: u64, now_ms: u64) -> Result<Vec<ProxyId>, Abort> {
    let lock = if c.dialect() == Dialect::Postgres { " FOR UPDATE OF p SKIP LOCKED" } else { "" };
    let rows = c.query(
        &format!(
            "SELECT p.id FROM proxies p JOIN proxy_state s ON s.proxy_id = p.id
             WHERE p.dead = 0 AND s.lease_open = 0 AND s.held_until_ms <= $1
             AND (p.expires_ms IS NULL OR p.expires_ms = 0 OR p.expires_ms > $1)
             AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = p.id)
             ORDER BY s.rest_until_ms, p.id LIMIT $2{lock}"
        ),
        &[now_ms.into(), n.into()],
    )?;
    if (rows.len() as u64) < n {
        return Err(Abort::Short);
    }
    Ok(rows.iter().map(|r| ProxyId(uint(r, 0) as u32)).collect())
}

/// Runs `f` again when it lost a race on a unique key. Under `FOR UPDATE SKIP LOCKED` a proxy
/// another transaction allocated and committed after this statement's snapshot can still be
/// locked here; the `allocations` key refuses the second insert, and a fresh attempt sees the
/// commit and picks other proxies.
fn retry_on_conflict<R>(mut f: impl FnMut() -> Result<R, Abort>) -> Result<R, Abort> {
    let mut attempt = 0;
    loop {
        match f() {
            Err(Abort::Db(DbError { fault: Fault::Conflict, .. })) if attempt < 8 => attempt += 1,
            other => return other,
        }
    }
}
