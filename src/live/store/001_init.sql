-- rotor live store, schema 1. Times are UTC epoch milliseconds.
CREATE TABLE proxies (
    id           INTEGER PRIMARY KEY,      -- the engine's ProxyId: rows are never deleted
    url          TEXT NOT NULL UNIQUE,
    username     TEXT,
    password_enc TEXT,                     -- AES-256-GCM, see secrets.rs
    egress_ip    TEXT NOT NULL,
    source       TEXT NOT NULL,            -- config | proxy6
    proxy6_id    TEXT,
    expires_ms   INTEGER,
    dead         INTEGER NOT NULL DEFAULT 0,
    dead_reason  TEXT,
    added_ms     INTEGER NOT NULL
);
-- One row per proxy: the lease in progress and the rest that follows it.
CREATE TABLE proxy_state (
    proxy_id      INTEGER PRIMARY KEY REFERENCES proxies(id),
    lease_no      INTEGER NOT NULL DEFAULT 0,
    lease_open    INTEGER NOT NULL DEFAULT 0,  -- sends were reserved and the rest has not begun
    reserved      INTEGER NOT NULL DEFAULT 0,  -- sends reserved in the open lease (blocks)
    rest_until_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE allocations (
    proxy_id INTEGER PRIMARY KEY REFERENCES proxies(id),
    user_id  INTEGER NOT NULL,
    module   TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
-- The usage log: one row per lease.
CREATE TABLE leases (
    proxy_id    INTEGER NOT NULL,
    lease_no    INTEGER NOT NULL,
    user_id     INTEGER NOT NULL,
    module      TEXT NOT NULL,
    started_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    requests    INTEGER NOT NULL DEFAULT 0,
    successes   INTEGER NOT NULL DEFAULT 0,
    failures    INTEGER NOT NULL DEFAULT 0,
    closed_by   TEXT,                       -- rest | restart | shutdown
    PRIMARY KEY (proxy_id, lease_no)
);
CREATE TABLE price_decisions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          INTEGER NOT NULL,
    user_id        INTEGER NOT NULL,
    sku            TEXT NOT NULL,
    old_price      REAL,
    new_price      REAL,
    competitor_min REAL,
    reason         TEXT NOT NULL,
    pushed         INTEGER NOT NULL,
    dry_run        INTEGER NOT NULL
);
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,           -- the JSON:API id: an order is stored once
    user_id     INTEGER NOT NULL,
    code        TEXT NOT NULL,
    state       TEXT,
    status      TEXT,
    total_price REAL,
    creation_ms INTEGER NOT NULL,
    stored_ms   INTEGER NOT NULL
);
CREATE TABLE order_entries (
    order_id   TEXT NOT NULL REFERENCES orders(id),
    entry_no   INTEGER NOT NULL,
    sku        TEXT,
    name       TEXT,
    quantity   INTEGER,
    base_price REAL,
    PRIMARY KEY (order_id, entry_no)
);
CREATE TABLE catalog (
    user_id   INTEGER NOT NULL,
    sku       TEXT NOT NULL,
    model     TEXT,
    price     REAL,
    available INTEGER,
    synced_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, sku)
);
CREATE TABLE subscriptions (
    user_id     INTEGER PRIMARY KEY,
    until_ms    INTEGER,
    freed_ms    INTEGER
);
-- Requests still in flight when a shutdown's grace ran out, and operator alerts.
CREATE TABLE journal (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  INTEGER NOT NULL,
    kind   TEXT NOT NULL,                   -- unfinished | alert
    detail TEXT NOT NULL
);
