//! What must outlast a restart besides leases and rests: each lane's open circuit and slowdown
//! (as the engine announced them), and the clock's anchor per boot.

use rotor_engine::{LaneKey, Module, UserId};

use super::error::{Abort, ctx};
use super::{Store, StoreError, text, uint};

/// A lane's holds as stored: circuit open until, and a slowdown (gap, until), each 0 if none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneHolds {
    /// The lane.
    pub lane: LaneKey,
    /// No request before this (0: closed).
    pub circuit_until_ms: u64,
    /// One send per this many ms...
    pub slow_interval_ms: u64,
    /// ...until this (0: none).
    pub slow_until_ms: u64,
}

impl Store {
    /// Records that `lane`'s circuit is open until `until_ms` (only ever lengthened).
    pub fn set_circuit(&mut self, lane: LaneKey, until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO lane_holds (user_id, module, circuit_until_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, module) DO UPDATE SET circuit_until_ms =
                 CASE WHEN lane_holds.circuit_until_ms > excluded.circuit_until_ms THEN lane_holds.circuit_until_ms
                 ELSE excluded.circuit_until_ms END",
                &[lane.user.0.into(), lane.module.name().into(), until_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("record an open circuit"))
    }

    /// Records that `lane` sends once per `interval_ms` until `until_ms`.
    pub fn set_slowdown(&mut self, lane: LaneKey, interval_ms: u64, until_ms: u64) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO lane_holds (user_id, module, slow_interval_ms, slow_until_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, module) DO UPDATE SET slow_interval_ms = excluded.slow_interval_ms,
                 slow_until_ms = excluded.slow_until_ms",
                &[lane.user.0.into(), lane.module.name().into(), interval_ms.into(), until_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("record a slowdown"))
    }

    /// `user`'s lanes with a circuit or slowdown still holding at `now_ms`.
    pub fn lane_holds(&mut self, user: UserId, now_ms: u64) -> Result<Vec<LaneHolds>, StoreError> {
        let rows = self
            .conn
            .query(
                "SELECT module, circuit_until_ms, slow_interval_ms, slow_until_ms FROM lane_holds
                 WHERE user_id = $1 AND (circuit_until_ms > $2 OR slow_until_ms > $2) ORDER BY module",
                &[user.0.into(), now_ms.into()],
            )
            .map_err(ctx("read lane holds"))?;
        rows.iter()
            .map(|r| {
                let name = text(r, 0).unwrap_or_default();
                let module: Module = name.parse().map_err(|_| {
                    Abort::Corrupt(format!("a lane hold names module {name:?}")).during("read lane holds")
                })?;
                Ok(LaneHolds {
                    lane: LaneKey::new(user, module),
                    circuit_until_ms: uint(r, 1),
                    slow_interval_ms: uint(r, 2),
                    slow_until_ms: uint(r, 3),
                })
            })
            .collect()
    }

    /// The clock's anchor for boot `boot_id`: (boot clock ms, engine ms) taken together.
    pub fn clock_anchor(&mut self, boot_id: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let rows = self
            .conn
            .query("SELECT uptime_ms, engine_ms FROM clock_anchors WHERE boot_id = $1", &[boot_id.into()])
            .map_err(ctx("read the clock anchor"))?;
        Ok(rows.first().map(|r| (uint(r, 0), uint(r, 1))))
    }

    /// Records the clock's anchor for boot `boot_id` if it has none yet.
    pub fn set_clock_anchor(
        &mut self,
        boot_id: &str,
        uptime_ms: u64,
        engine_ms: u64,
    ) -> Result<(), StoreError> {
        self.conn
            .exec(
                "INSERT INTO clock_anchors (boot_id, uptime_ms, engine_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (boot_id) DO NOTHING",
                &[boot_id.into(), uptime_ms.into(), engine_ms.into()],
            )
            .map(|_| ())
            .map_err(ctx("record the clock anchor"))
    }
}
