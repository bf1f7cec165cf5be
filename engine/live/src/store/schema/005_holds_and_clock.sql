-- rotor live store, schema 5: a lane's open circuit and slowdown, kept across restarts and
-- failovers like account cooldowns; and the clock's anchor per boot, so that a restart on the
-- same machine times every rest by the monotonic clock, not by a wall clock that may have jumped.
CREATE TABLE lane_holds (
    user_id          BIGINT NOT NULL,
    module           TEXT NOT NULL,
    circuit_until_ms BIGINT NOT NULL DEFAULT 0,
    slow_until_ms    BIGINT NOT NULL DEFAULT 0,
    slow_interval_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, module)
);
CREATE TABLE clock_anchors (
    boot_id   TEXT PRIMARY KEY,            -- /proc/sys/kernel/random/boot_id
    uptime_ms BIGINT NOT NULL,             -- the boot clock when the anchor was taken
    engine_ms BIGINT NOT NULL              -- the engine's instant at that moment
);
