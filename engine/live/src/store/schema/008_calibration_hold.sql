-- rotor live store, schema 8: a proxy held by `rotor calibrate`. Until `held_until_ms` no
-- allocation takes it; the hold is renewed while the calibration runs and released at its end,
-- so a calibration that crashed frees the proxy by itself (its rest, set with the hold, still
-- covers the longest ban it may have caused).
ALTER TABLE proxy_state ADD COLUMN held_until_ms BIGINT NOT NULL DEFAULT 0;
