-- rotor live store, schema 9: what the demper must know before it prices (docs/live.md, "What
-- rotor does when it does not know").
-- Each seller's last catalogue that passed its checks: the demper prices nothing before the
-- first, and a new answer is compared with the offer count stored here.
CREATE TABLE catalog_sync (
    user_id   BIGINT PRIMARY KEY,
    synced_ms BIGINT NOT NULL,
    offers    BIGINT NOT NULL
);
-- Prices each SKU was known at: `catalog` (a synced catalogue), `pushed` (our update) and
-- `confirmed` (an operator confirmed a drop to it). The drop guard's budget runs from the
-- highest since the later of the window's start and the last confirmation.
CREATE TABLE price_marks (
    user_id BIGINT NOT NULL,
    sku     TEXT NOT NULL,
    price   DOUBLE PRECISION NOT NULL,
    at_ms   BIGINT NOT NULL,
    kind    TEXT NOT NULL
);
CREATE INDEX price_marks_by_sku ON price_marks (user_id, sku, at_ms);
CREATE INDEX price_marks_by_time ON price_marks (at_ms);
-- A drop held because the current price could not be read has no `from_price` worth showing.
ALTER TABLE held_drops ADD COLUMN from_known BIGINT NOT NULL DEFAULT 1;
