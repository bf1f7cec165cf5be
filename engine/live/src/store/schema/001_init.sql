-- rotor live store, schema 1, for SQLite and PostgreSQL alike ({serial} is the dialect's
-- auto-increment key). Times are UTC epoch milliseconds; flags are 0/1 integers.
CREATE TABLE proxies (
    id           BIGINT PRIMARY KEY,       -- the engine's ProxyId: dense, rows never deleted
    url          TEXT NOT NULL UNIQUE,
    username     TEXT,
    password_enc TEXT,                     -- AES-256-GCM, see secrets.rs
    egress_ip    TEXT NOT NULL,
    source       TEXT NOT NULL,            -- config | proxy6
    proxy6_id    TEXT,
    expires_ms   BIGINT,
    dead         BIGINT NOT NULL DEFAULT 0,
    dead_reason  TEXT,
    added_ms     BIGINT NOT NULL
);
-- One row per proxy: the lease in progress and the rest that follows it.
CREATE TABLE proxy_state (
    proxy_id      BIGINT PRIMARY KEY REFERENCES proxies(id),
    lease_no      BIGINT NOT NULL DEFAULT 0,
    lease_open    BIGINT NOT NULL DEFAULT 0,  -- sends were reserved and the rest has not begun
    reserved      BIGINT NOT NULL DEFAULT 0,  -- sends reserved in the open lease (blocks)
    rest_until_ms BIGINT NOT NULL DEFAULT 0
);
-- A proxy belongs to at most one user: the primary key is what makes allocation safe.
CREATE TABLE allocations (
    proxy_id BIGINT PRIMARY KEY REFERENCES proxies(id),
    user_id  BIGINT NOT NULL,
    module   TEXT NOT NULL,
    since_ms BIGINT NOT NULL
);
-- Lane ownership: one owner per (user, module), an expiry, and a fencing token that each
-- claim raises. Writes that guard sends check the token.
CREATE TABLE lane_leases (
    user_id    BIGINT NOT NULL,
    module     TEXT NOT NULL,
    owner      TEXT NOT NULL DEFAULT '',
    token      BIGINT NOT NULL DEFAULT 0,
    expires_ms BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, module)
);
-- Workers alive: each renews its row every tick; the count sets each worker's share of sellers.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
-- The usage log: one row per lease.
CREATE TABLE leases (
    proxy_id    BIGINT NOT NULL,
    lease_no    BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    module      TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    finished_ms BIGINT,
    requests    BIGINT NOT NULL DEFAULT 0,
    successes   BIGINT NOT NULL DEFAULT 0,
    failures    BIGINT NOT NULL DEFAULT 0,
    closed_by   TEXT,                       -- rest | restart | takeover
    PRIMARY KEY (proxy_id, lease_no)
);
CREATE TABLE price_decisions (
    id             {serial},
    at_ms          BIGINT NOT NULL,
    user_id        BIGINT NOT NULL,
    sku            TEXT NOT NULL,
    old_price      DOUBLE PRECISION,
    new_price      DOUBLE PRECISION,
    competitor_min DOUBLE PRECISION,
    reason         TEXT NOT NULL,
    pushed         BIGINT NOT NULL,
    dry_run        BIGINT NOT NULL
);
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,           -- the JSON:API id: an order is stored once
    user_id     BIGINT NOT NULL,
    code        TEXT NOT NULL,
    state       TEXT,
    status      TEXT,
    total_price DOUBLE PRECISION,
    creation_ms BIGINT NOT NULL,
    stored_ms   BIGINT NOT NULL
);
-- How far each seller's orders are known complete: a poll that went through every page moves it.
CREATE TABLE order_sync (
    user_id   BIGINT PRIMARY KEY,
    synced_ms BIGINT NOT NULL
);
CREATE TABLE order_entries (
    order_id   TEXT NOT NULL REFERENCES orders(id),
    entry_no   BIGINT NOT NULL,
    sku        TEXT,
    name       TEXT,
    quantity   BIGINT,
    base_price DOUBLE PRECISION,
    PRIMARY KEY (order_id, entry_no)
);
CREATE TABLE catalog (
    user_id   BIGINT NOT NULL,
    sku       TEXT NOT NULL,
    model     TEXT,
    price     DOUBLE PRECISION,
    available BIGINT,
    synced_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, sku)
);
CREATE TABLE subscriptions (
    user_id  BIGINT PRIMARY KEY,
    freed_ms BIGINT
);
-- Requests still in flight when a shutdown's grace ran out, and operator alerts.
CREATE TABLE journal (
    id     {serial},
    at_ms  BIGINT NOT NULL,
    kind   TEXT NOT NULL,                   -- unfinished | alert
    detail TEXT NOT NULL
);
