//! A proxy held by `rotor calibrate`: taken only when it is spare (live, unallocated, its lease
//! closed, not resting, not held), kept out of every allocation while held, and released with the
//! rest the calibration decided.

use rotor_engine::ProxyId;

use super::error::{Abort, ctx};
use super::sql::Conn;
use super::{Store, StoreError, int, text, uint};

/// Why a proxy cannot be held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSpare {
    /// The dead rule or an operator retired it.
    Dead,
    /// A seller's lane has it (user, module name).
    Allocated(u32, String),
    /// A lease on it is open.
    LeaseOpen,
    /// It rests until this instant (epoch ms).
    Resting(u64),
    /// Another calibration holds it until this instant.
    Held(u64),
    /// The store has no such proxy.
    Unknown,
}

/// Why `id` is not spare at `now_ms`, if it is not: the one reading of the rule, for the hold
/// and for a dry run alike.
fn not_spare(c: &mut dyn Conn, id: ProxyId, now_ms: u64) -> Result<Option<NotSpare>, Abort> {
    let rows = c.query(
        "SELECT p.dead, s.lease_open, s.rest_until_ms, s.held_until_ms FROM proxies p
         JOIN proxy_state s ON s.proxy_id = p.id WHERE p.id = $1",
        &[id.0.into()],
    )?;
    let Some(row) = rows.first() else { return Ok(Some(NotSpare::Unknown)) };
    let allocated = c.query("SELECT user_id, module FROM allocations WHERE proxy_id = $1", &[id.0.into()])?;
    Ok(if int(row, 0) != 0 {
        Some(NotSpare::Dead)
    } else if let Some(a) = allocated.first() {
        Some(NotSpare::Allocated(uint(a, 0) as u32, text(a, 1).unwrap_or_default()))
    } else if int(row, 1) != 0 {
        Some(NotSpare::LeaseOpen)
    } else if uint(row, 3) > now_ms {
        Some(NotSpare::Held(uint(row, 3)))
    } else if uint(row, 2) > now_ms {
        Some(NotSpare::Resting(uint(row, 2)))
    } else {
        None
    })
}

impl Store {
    /// Whether proxy `id` is spare at `now_ms` (a calibration could hold it), changing nothing:
    /// what `rotor calibrate --dry-run` checks.
    pub fn spare_for_calibration(
        &mut self,
        id: ProxyId,
        now_ms: u64,
    ) -> Result<Result<(), NotSpare>, StoreError> {
        self.tx(|c| Ok(not_spare(c, id, now_ms)?.map_or(Ok(()), Err)))
            .map_err(ctx("check a proxy for calibration"))
    }

    /// Holds proxy `id` for a calibration until `until_ms`, resting it until at least
    /// `rest_until_ms`, in one transaction with the checks that it is spare at `now_ms`.
    pub fn hold_for_calibration(
        &mut self,
        id: ProxyId,
        now_ms: u64,
        until_ms: u64,
        rest_until_ms: u64,
    ) -> Result<Result<(), NotSpare>, StoreError> {
        self.tx(|c| {
            if let Some(r) = not_spare(c, id, now_ms)? {
                return Ok(Err(r));
            }
            c.exec(
                "UPDATE proxy_state SET held_until_ms = $1,
                 rest_until_ms = CASE WHEN rest_until_ms > $2 THEN rest_until_ms ELSE $2 END WHERE proxy_id = $3",
                &[until_ms.into(), rest_until_ms.into(), id.0.into()],
            )?;
            Ok(Ok(()))
        })
        .map_err(ctx("hold a proxy for calibration"))
    }

    /// Lengthens a calibration's hold on `id` (and its rest); never shortens either.
    pub fn renew_hold(&mut self, id: ProxyId, until_ms: u64, rest_until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxy_state SET
                 held_until_ms = CASE WHEN held_until_ms > $1 THEN held_until_ms ELSE $1 END,
                 rest_until_ms = CASE WHEN rest_until_ms > $2 THEN rest_until_ms ELSE $2 END
                 WHERE proxy_id = $3 AND held_until_ms > 0",
                &[until_ms.into(), rest_until_ms.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(|e| Abort::from(e).during("renew a calibration hold"))
    }

    /// Ends a calibration's hold on `id`: the proxy rests until `rest_until_ms` (which may be
    /// sooner than the hold's conservative rest) and can be allocated after that.
    pub fn end_hold(&mut self, id: ProxyId, rest_until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "UPDATE proxy_state SET held_until_ms = 0, rest_until_ms = $1 WHERE proxy_id = $2 AND held_until_ms > 0",
                &[rest_until_ms.into(), id.0.into()],
            )
            .map(|_| ())
            .map_err(|e| Abort::from(e).during("end a calibration hold"))
    }

    /// Until when `id` is held for a calibration (0: not held).
    pub fn held_until(&mut self, id: ProxyId) -> Result<u64, StoreError> {
        let rows = self
            .conn
            .query("SELECT held_until_ms FROM proxy_state WHERE proxy_id = $1", &[id.0.into()])
            .map_err(ctx("read a calibration hold"))?;
        Ok(rows.first().map_or(0, |r| uint(r, 0)))
    }
}
