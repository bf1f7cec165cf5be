//! Lane ownership (lease rows with fencing tokens, heartbeats) and the per-proxy leases whose
//! charges guard sends: each write that guards a send checks its fence in the same transaction.

use rotor_engine::{Module, ProxyId, UserId};

use super::error::{Abort, ctx};
use super::sql::{Conn, Dialect};
use super::{Fence, LeaseRow, LeaseUsage, Store, StoreError, opt_uint, text, uint};

impl Store {
    /// Claims all four lanes of `user` for `worker` until `expires_ms`, if they are free, lapsed
    /// (expiry before `now_ms`), already ours, or `steal` (one process, SQLite). Each claim
    /// raises the lanes' fencing tokens. In the same transaction, every lease the previous owner
    /// left open is treated as spent: its proxy rests until `rest_until_ms`. Returns the fences,
    /// or `None` if another worker holds the lanes.
    #[allow(clippy::too_many_arguments)] // one call site: the claim loop
    pub fn claim_user(
        &mut self,
        worker: &str,
        user: UserId,
        expires_ms: u64,
        now_ms: u64,
        steal: bool,
        rest_until_ms: u64,
    ) -> Result<Option<([Fence; 4], u32)>, StoreError> {
        self.tx(|c| {
            for m in Module::ALL {
                c.exec(
                    "INSERT INTO lane_leases (user_id, module) VALUES ($1, $2) ON CONFLICT (user_id, module) DO NOTHING",
                    &[user.0.into(), m.name().into()],
                )?;
            }
            let rows = c.query(
                "UPDATE lane_leases SET owner = $1, token = token + 1, expires_ms = $2
                 WHERE user_id = $3 AND (owner = $1 OR owner = '' OR expires_ms < $4 OR CAST($5 AS BIGINT) = 1)
                 RETURNING module, token",
                &[worker.into(), expires_ms.into(), user.0.into(), now_ms.into(), steal.into()],
            )?;
            if rows.len() != 4 {
                return Err(Abort::Held);
            }
            let mut fences = [Fence { user, module: Module::Demper, token: 0 }; 4];
            for r in &rows {
                let name = text(r, 0).unwrap_or_default();
                let module: Module =
                    name.parse().map_err(|_| Abort::Corrupt(format!("a lane row names module {name:?}")))?;
                fences[module.index()] = Fence { user, module, token: uint(r, 1) };
            }
            let closed = c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'takeover' WHERE finished_ms IS NULL
                 AND user_id = $2 AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id
                 AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
                &[now_ms.into(), user.0.into()],
            )?;
            c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE lease_open = 1 AND proxy_id IN (SELECT proxy_id FROM allocations WHERE user_id = $2)",
                &[rest_until_ms.into(), user.0.into()],
            )?;
            Ok((fences, closed as u32))
        })
        .map(Some)
        .or_else(|e| if matches!(e, Abort::Held) { Ok(None) } else { Err(e.during("claim lanes")) })
    }

    /// Extends `worker`'s lease on `user`'s lanes to `expires_ms`; false if it lost them.
    pub fn renew_user(
        &mut self,
        worker: &str,
        user: UserId,
        fences: &[Fence; 4],
        expires_ms: u64,
    ) -> Result<bool, StoreError> {
        self.tx(|c| {
            let mut renewed = 0;
            for f in fences {
                renewed += c.exec(
                    "UPDATE lane_leases SET expires_ms = $1 WHERE user_id = $2 AND module = $3 AND owner = $4 AND token = $5",
                    &[expires_ms.into(), user.0.into(), f.module.name().into(), worker.into(), f.token.into()],
                )?;
            }
            Ok(renewed == 4)
        })
        .map_err(ctx("renew lanes"))
    }

    /// Records that `worker` is alive until `expires_ms`; returns how many workers are alive at
    /// `now_ms`, this one included.
    pub fn heartbeat(&mut self, worker: &str, expires_ms: u64, now_ms: u64) -> Result<u32, StoreError> {
        self.conn
            .exec(
                "INSERT INTO workers (id, expires_ms) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET expires_ms = excluded.expires_ms",
                &[worker.into(), expires_ms.into()],
            )
            .map_err(ctx("write the heartbeat"))?;
        let rows = self
            .conn
            .query("SELECT COUNT(*) FROM workers WHERE expires_ms > $1", &[now_ms.into()])
            .map_err(ctx("count workers"))?;
        Ok(rows.first().map_or(1, |r| uint(r, 0) as u32).max(1))
    }

    /// Removes `worker`'s heartbeat (a clean stop).
    pub fn retire(&mut self, worker: &str) -> Result<(), StoreError> {
        self.conn
            .exec("DELETE FROM workers WHERE id = $1", &[worker.into()])
            .map(|_| ())
            .map_err(ctx("retire a worker"))
    }

    /// Gives up `user`'s lanes (a clean stop or an expiry), so another worker need not wait.
    pub fn release_user(&mut self, worker: &str, user: UserId) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE lane_leases SET owner = '', expires_ms = 0 WHERE owner = $1 AND user_id = $2",
                &[worker.into(), user.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("release lanes"))
    }

    /// Who holds `user`'s demper lane, and its token.
    pub fn lane_owner(&mut self, user: UserId) -> Result<Option<(String, u64)>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT owner, token FROM lane_leases WHERE user_id = $1 AND module = 'demper'",
                &[user.0.into()],
            )
            .map_err(ctx("read lane owner"))?;
        Ok(rows.first().map(|r| (text(r, 0).unwrap_or_default(), uint(r, 1))))
    }

    /// Checks in transaction `c` that `fence` still holds, locking the lease row against a
    /// concurrent claim until the transaction ends.
    fn check_fence(c: &mut dyn Conn, fence: &Fence) -> Result<(), Abort> {
        let lock = if c.dialect() == Dialect::Postgres { " FOR SHARE" } else { "" };
        let rows = c.query(
            &format!("SELECT token FROM lane_leases WHERE user_id = $1 AND module = $2{lock}"),
            &[fence.user.0.into(), fence.module.name().into()],
        )?;
        if rows.first().map(|r| uint(r, 0)) == Some(fence.token) {
            Ok(())
        } else {
            Err(Abort::Fenced(*fence))
        }
    }

    // ---- leases -----------------------------------------------------------------------------

    /// Opens lease `lease_no` of `id`, reserving `reserved` sends, before the first send.
    pub fn open_lease(
        &mut self,
        fence: &Fence,
        id: ProxyId,
        lease_no: u32,
        reserved: u32,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            Self::check_fence(c, fence)?;
            set_reservation(c, id, lease_no, reserved)?;
            c.exec(
                "INSERT INTO leases (proxy_id, lease_no, user_id, module, started_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (proxy_id, lease_no) DO UPDATE SET started_ms = excluded.started_ms",
                &[id.0.into(), lease_no.into(), fence.user.0.into(), fence.module.name().into(), now_ms.into()],
            )?;
            Ok(())
        })
        .map_err(ctx("open a lease"))
    }

    /// Raises the open lease's reservation to `reserved` sends and records its usage so far.
    pub fn reserve(
        &mut self,
        fence: &Fence,
        id: ProxyId,
        lease_no: u32,
        reserved: u32,
        usage: LeaseUsage,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            Self::check_fence(c, fence)?;
            set_reservation(c, id, lease_no, reserved)?;
            write_usage(c, id, lease_no, usage)
        })
        .map_err(ctx("reserve sends"))
    }

    /// The lease is over and the proxy rests until `rest_until_ms`. Without a fence (the proxy
    /// left its lane) the write is still safe: it only ever lengthens a rest.
    pub fn start_rest(
        &mut self,
        fence: Option<&Fence>,
        id: ProxyId,
        lease_no: u32,
        rest_until_ms: u64,
        usage: LeaseUsage,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.tx(|c| {
            if let Some(fence) = fence {
                Self::check_fence(c, fence)?;
            }
            c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END WHERE proxy_id = $2",
                &[rest_until_ms.into(), id.0.into()],
            )?;
            write_usage(c, id, lease_no, usage)?;
            c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'rest' WHERE proxy_id = $2 AND lease_no = $3 AND finished_ms IS NULL",
                &[now_ms.into(), id.0.into(), lease_no.into()],
            )?;
            Ok(())
        })
        .map_err(ctx("start a rest"))
    }

    /// Makes `id` rest until at least `rest_until_ms`, outside any lease: after `rotor probe`
    /// sent requests through it that no lease counted.
    pub fn rest_until(&mut self, id: ProxyId, rest_until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxy_state SET rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE proxy_id = $2",
                &[rest_until_ms.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(ctx("rest a proxy"))
    }

    /// At start-up: leases left open on proxies no seller holds (released mid-lease before a
    /// crash) are spent, so those proxies rest until `rest_until_ms`. Returns how many.
    pub fn spend_unowned_leases(&mut self, rest_until_ms: u64, now_ms: u64) -> Result<u32, StoreError> {
        self.tx(|c| {
            c.exec(
                "UPDATE leases SET finished_ms = $1, closed_by = 'restart' WHERE finished_ms IS NULL
                 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = leases.proxy_id)
                 AND EXISTS (SELECT 1 FROM proxy_state s WHERE s.proxy_id = leases.proxy_id AND s.lease_no = leases.lease_no AND s.lease_open = 1)",
                &[now_ms.into()],
            )?;
            let n = c.exec(
                "UPDATE proxy_state SET lease_open = 0,
                 rest_until_ms = CASE WHEN rest_until_ms > $1 THEN rest_until_ms ELSE $1 END
                 WHERE lease_open = 1 AND NOT EXISTS (SELECT 1 FROM allocations a WHERE a.proxy_id = proxy_state.proxy_id)",
                &[rest_until_ms.into()],
            )?;
            Ok(n as u32)
        })
        .map_err(ctx("spend unowned leases"))
    }

    /// The usage log, oldest first.
    pub fn leases(&mut self) -> Result<Vec<LeaseRow>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT proxy_id, lease_no, user_id, module, started_ms, finished_ms, requests, successes, failures, closed_by
                 FROM leases ORDER BY started_ms, proxy_id",
                &[],
            )
            .map_err(ctx("read the lease log"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    ProxyId(uint(r, 0) as u32),
                    uint(r, 1) as u32,
                    UserId(uint(r, 2) as u32),
                    text(r, 3).unwrap_or_default(),
                    uint(r, 4),
                    opt_uint(r, 5),
                    LeaseUsage {
                        requests: uint(r, 6) as u32,
                        successes: uint(r, 7) as u32,
                        failures: uint(r, 8) as u32,
                    },
                    text(r, 9),
                )
            })
            .collect())
    }
}

/// Marks `id`'s lease `lease_no` open with `reserved` sends reserved.
fn set_reservation(c: &mut dyn Conn, id: ProxyId, lease_no: u32, reserved: u32) -> Result<(), Abort> {
    c.exec(
        "UPDATE proxy_state SET lease_no = $1, lease_open = 1, reserved = $2 WHERE proxy_id = $3",
        &[lease_no.into(), reserved.into(), id.0.into()],
    )?;
    Ok(())
}

fn write_usage(c: &mut dyn Conn, id: ProxyId, lease_no: u32, u: LeaseUsage) -> Result<(), Abort> {
    c.exec(
        "UPDATE leases SET requests = $1, successes = $2, failures = $3 WHERE proxy_id = $4 AND lease_no = $5",
        &[u.requests.into(), u.successes.into(), u.failures.into(), id.0.into(), lease_no.into()],
    )
    .map(|_| ())
    .map_err(Abort::from)
}
