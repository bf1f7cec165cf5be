-- rotor live store, schema 2: per-account cooldowns (a 429 on an account-limited endpoint, such
-- as cabinet price updates), kept across restarts so that a restarted worker does not call the
-- account again before Kaspi's ban is over.
CREATE TABLE account_cooldowns (
    user_id  BIGINT NOT NULL,
    endpoint TEXT NOT NULL,               -- the engine's endpoint name
    until_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, endpoint)
);
