-- rotor live store, schema 3: each SKU's current price in its own keyed row, so that the lookup
-- every demper check makes is one primary-key read, not a scan of the decisions' history; and an
-- index for the history's queries and its pruning.
CREATE TABLE current_prices (
    user_id BIGINT NOT NULL,
    sku     TEXT NOT NULL,
    price   DOUBLE PRECISION NOT NULL,
    at_ms   BIGINT NOT NULL,                -- when it was pushed
    PRIMARY KEY (user_id, sku)
);
INSERT INTO current_prices (user_id, sku, price, at_ms)
    SELECT d.user_id, d.sku, d.new_price, d.at_ms FROM price_decisions d
    WHERE d.pushed = 1 AND d.new_price IS NOT NULL AND d.id = (
        SELECT MAX(e.id) FROM price_decisions e WHERE e.user_id = d.user_id AND e.sku = d.sku AND e.pushed = 1
    );
CREATE INDEX price_decisions_by_time ON price_decisions (at_ms);
CREATE INDEX price_decisions_by_sku ON price_decisions (user_id, sku, id);
