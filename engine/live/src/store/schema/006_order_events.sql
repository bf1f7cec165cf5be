-- rotor live store, schema 6: what a seller tool needs of an order (delivery mode, pickup point,
-- planned date), and an append-only log of order events (new, changed) that the JSON Lines
-- export and the webhook hand on in order; the webhook's progress is a cursor into that log.
ALTER TABLE orders ADD COLUMN delivery_mode TEXT;
ALTER TABLE orders ADD COLUMN pickup_point TEXT;
ALTER TABLE orders ADD COLUMN planned_delivery_ms BIGINT;
ALTER TABLE orders ADD COLUMN updated_ms BIGINT;
CREATE TABLE order_events (
    seq      {serial},
    order_id TEXT NOT NULL REFERENCES orders(id),
    user_id  BIGINT NOT NULL,
    at_ms    BIGINT NOT NULL,
    kind     TEXT NOT NULL,                -- new | changed
    state    TEXT,
    status   TEXT
);
CREATE INDEX order_events_by_time ON order_events (at_ms);
-- How far each consumer of a log has taken it: `orders_webhook` -> the last event delivered.
CREATE TABLE outbox (
    name TEXT PRIMARY KEY,
    seq  BIGINT NOT NULL
);
-- Orders stored before this schema: one `new` event each, so an export from the start holds all.
INSERT INTO order_events (order_id, user_id, at_ms, kind, state, status)
    SELECT id, user_id, stored_ms, 'new', state, status FROM orders ORDER BY stored_ms, id;
