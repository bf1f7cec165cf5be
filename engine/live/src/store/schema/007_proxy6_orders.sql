-- rotor live store, schema 7: every Proxy6 purchase and renewal, written before the API call
-- (pending) and settled after it (done, failed), so that a call whose answer was lost is
-- reconciled with `getproxy` instead of repeated, and spending is capped per day and month.
CREATE TABLE proxy6_orders (
    tag        TEXT PRIMARY KEY,   -- a purchase's `descr` at Proxy6; a renewal's own name
    kind       TEXT NOT NULL,      -- buy | prolong
    count      BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    state      TEXT NOT NULL,      -- pending | done | failed
    price      DOUBLE PRECISION NOT NULL   -- the estimate while pending, the price when done
);
CREATE INDEX proxy6_orders_by_time ON proxy6_orders (started_ms);
